"""Resampling a stream chunk by chunk, with the same output as resampling the whole signal at once.

:class:`StreamResampler` applies torchaudio's windowed-sinc resampler (``torchaudio.functional.resample``
with its defaults, the one :func:`sepmamba_sb.audio.read_audio` uses) to a stream. That resampler is a
strided convolution: with the rates reduced by their gcd to ``orig`` and ``new``, each frame of ``orig``
input samples (plus ``width`` on either side) makes ``new`` output samples. The stream keeps the inputs
the next frame needs and outputs a frame as soon as its inputs have arrived; :meth:`StreamResampler.flush`
pads the end as the whole-signal resampler does and cuts the output to ``ceil(length * new / orig)``.
Output sample i therefore waits for about ``width + orig`` input samples after the one it is centred on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchaudio.functional.functional import _get_sinc_resample_kernel


class StreamResampler:
    """Resample [channels, n] chunks of a stream from ``orig_rate`` to ``new_rate``.

    Parameters
    ----------
    orig_rate, new_rate : int
        Sample rates in Hz.
    channels : int
        Rows of every chunk (independent signals resampled together).
    dtype : torch.dtype
        The chunks' dtype.

    Example
    -------
    >>> resampler = StreamResampler(44100, 8000, channels=1)
    >>> parts = [resampler(chunk) for chunk in torch.randn(1, 4410).split(1000, dim=1)] + [resampler.flush()]
    >>> torch.cat(parts, dim=1).shape
    torch.Size([1, 800])
    """

    def __init__(self, orig_rate: int, new_rate: int, channels: int = 1, dtype: torch.dtype = torch.float32):
        if orig_rate <= 0 or new_rate <= 0 or int(orig_rate) != orig_rate or int(new_rate) != new_rate:
            raise ValueError(f"StreamResampler: rates must be positive integers, got {orig_rate} and {new_rate}")
        gcd = math.gcd(int(orig_rate), int(new_rate))
        self.orig, self.new = int(orig_rate) // gcd, int(new_rate) // gcd
        # torchaudio's own kernel (private helper): the stream then equals its whole-signal resample
        self.kernel, self.width = _get_sinc_resample_kernel(int(orig_rate), int(new_rate), gcd, dtype=dtype)
        self.channels = channels
        self.lookahead_seconds = (self.width + self.orig) / orig_rate  # the inputs an output waits for, at most
        self.pending = torch.zeros(channels, self.width, dtype=dtype)  # the left padding, then unused inputs
        self.length = 0  # inputs received
        self.emitted = 0  # outputs returned

    def __call__(self, chunk: torch.Tensor) -> torch.Tensor:
        """The output samples that the inputs so far complete: [channels, n] -> [channels, m], m >= 0."""
        if chunk.dim() != 2 or chunk.shape[0] != self.channels:
            raise ValueError(f"StreamResampler: chunks must be [channels={self.channels}, n], got {tuple(chunk.shape)}")
        self.length += chunk.shape[-1]
        self.pending = torch.cat([self.pending, chunk.to(self.pending.dtype)], dim=-1)
        return self._frames()

    def flush(self) -> torch.Tensor:
        """The rest of the output, the end padded as the whole-signal resampler pads it; the stream ends."""
        self.pending = F.pad(self.pending, (0, self.width + self.orig))
        rest = self._frames()
        total = math.ceil(self.new * self.length / self.orig)
        return rest[:, : max(0, total - (self.emitted - rest.shape[-1]))]

    def _frames(self) -> torch.Tensor:
        span = 2 * self.width + self.orig  # the inputs one frame reads
        frames = (self.pending.shape[-1] - span) // self.orig + 1 if self.pending.shape[-1] >= span else 0
        if frames == 0:
            return self.pending.new_zeros(self.channels, 0)
        used = self.pending[:, : (frames - 1) * self.orig + span]
        out = F.conv1d(used[:, None], self.kernel, stride=self.orig)  # (channels, new, frames)
        out = out.transpose(1, 2).reshape(self.channels, -1)
        self.pending = self.pending[:, frames * self.orig:]
        self.emitted += out.shape[-1]
        return out
