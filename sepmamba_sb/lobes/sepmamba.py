"""SepMamba, the paper's model: waveform in, separated waveforms out (no mask)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sepmamba_sb.lobes.streaming import StreamingContext, emit, new_context
from sepmamba_sb.lobes.unet import SepMambaUNet, remember_config
from sepmamba_sb.nnet.streaming import transposed_conv_stream


class SepMamba(SepMambaUNet):
    """SepMamba (Avenstrup et al., arXiv 2410.20997): a time-domain U-Net of bidirectional Mamba
    layers whose last transposed conv outputs the sources directly.

    The architecture, parameter names and initialisation are the authors' (checkpoints of their code
    load with :func:`sepmamba_sb.convert.load_original_checkpoint`). Unlike the original, any input
    length works and the output is exactly as long as the input: the mixture is zero-padded at its end
    to the nearest length the unpadded convs accept (odd lengths, and lengths under about 100 samples
    for the paper's kernels), and the output is cut back.

    The defaults are the paper's S; ``SepMamba(**CONFIGS[name])`` builds any of its four
    configurations (``CONFIGS`` in :mod:`sepmamba_sb.lobes`: S, M, S-causal, M-causal) or their 16 kHz
    counterparts (``S-16k``, ...).

    Parameters
    ----------
    dim : int
        Channels of the first level (64 for S, 128 for M).
    kernel_sizes, strides : sequence of int
        Per level; the paper uses (16, 16, 16) and (2, 2, 2).
    num_blocks : int
        Mamba blocks per direction and layer.
    act_fn : str
        relu (paper), silu, mish or prelu.
    num_spks : int
        Sources to output (2 or 3).
    causal : bool
        Forward-only Mamba layers.
    strict_causal : bool
        Left-padded convs too: no output sample depends on a future input sample.
    d_state, d_conv, expand : int
        Mamba settings (16, 4, 2 in the paper).
    backend : str, optional
        Selective-scan backend of every Mamba block: ``"mamba_ssm"``, ``"cpu"`` or ``"reference"``;
        ``None`` (default) lets :func:`sepmamba_sb.ops.resolve_backend` choose for the input's device.

    Example
    -------
    >>> model = SepMamba(dim=16, num_blocks=1)
    >>> model(torch.randn(2, 8001)).shape
    torch.Size([2, 8001, 2])
    """

    @remember_config
    def __init__(self, dim: int = 64, kernel_sizes: Sequence[int] = (16, 16, 16), strides: Sequence[int] = (2, 2, 2),
                 num_blocks: int = 4, act_fn: str = "relu", num_spks: int = 2, causal: bool = False,
                 strict_causal: bool = False, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 backend: str | None = None):
        super().__init__(dim, kernel_sizes, strides, num_blocks, act_fn, causal, strict_causal, first_conv=True,
                         d_state=d_state, d_conv=d_conv, expand=expand, backend=backend)
        if num_spks < 1:
            raise ValueError(f"num_spks must be >= 1, got {num_spks}")
        self.num_spks = num_spks
        self.decoder = nn.ConvTranspose1d(dim, num_spks, self.kernel_sizes[0], self.strides[0])

    @classmethod
    def from_config(cls, config: dict, **kwargs) -> SepMamba:
        """``SepMamba(**config, **kwargs)``: for a yaml whose configuration is chosen when it is loaded
        (``!apply:sepmamba_sb.lobes.paper.config_for``, the sample rate's), which ``!new:`` cannot unpack.

        Example
        -------
        >>> from sepmamba_sb.lobes.paper import config_for
        >>> SepMamba.from_config(config_for("S", 16000, {"dim": 8, "num_blocks": 1}), num_spks=3).strides
        [4, 2, 2]
        """
        return cls(**config, **kwargs)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate.

        Parameters
        ----------
        mix : torch.Tensor
            Mixtures, [B, T] (T >= 1).

        Returns
        -------
        torch.Tensor
            Estimated sources, [B, T, S] (SpeechBrain's layout).
        """
        if mix.dim() != 2 or mix.shape[-1] == 0:
            raise ValueError(f"SepMamba expects mixtures [batch, time] with time >= 1, got shape {tuple(mix.shape)}")
        length = mix.shape[-1]
        padded = self.valid_length(length, first_level=0)
        x = F.pad(mix, (0, padded - length)).unsqueeze(1)
        est = self.decoder(self.body(x))
        return est[..., :length].transpose(1, 2)

    def streamed_samples(self, length: int) -> int:
        """Output samples :meth:`forward_streaming` has computed once ``length`` inputs have arrived."""
        return self.strides[0] * self.streamed_frames(length)

    def make_streaming_context(self, batch_size: int = 1) -> StreamingContext:
        """Start a stream (causal models only); see :mod:`sepmamba_sb.lobes.streaming`.

        Parameters
        ----------
        batch_size : int
            Streams separated together (every chunk then has this batch size).

        Returns
        -------
        StreamingContext
            Zero states; its ``delay`` is the model's look-ahead in samples (0 when ``strict_causal``).

        Raises
        ------
        ValueError
            For a bidirectional model (``causal=False``), saying why it cannot stream.
        """
        body = self.make_body_context(batch_size)
        tail = self.activation_reference().new_zeros(batch_size, self.num_spks, self.kernel_sizes[0] - self.strides[0])
        return new_context(self, batch_size, body, tail, math.prod(self.strides), self.num_spks)

    def forward_streaming(self, chunk: torch.Tensor, context: StreamingContext) -> torch.Tensor:
        """Separate the next chunk of a stream.

        Parameters
        ----------
        chunk : torch.Tensor
            The next samples of each stream, [B, n], n >= 1.
        context : StreamingContext
            From :meth:`make_streaming_context`; updated in place.

        Returns
        -------
        torch.Tensor
            [B, n, S]: the next ``n`` samples of the offline output delayed by ``context.delay`` (the first
            ``delay`` samples of a stream are zeros).
        """
        frames = self.body_streaming(context.check(chunk).unsqueeze(1), context.body)
        samples, context.tail = transposed_conv_stream(self.decoder, frames, context.tail)
        return emit(context, samples, chunk.shape[-1])
