"""Streaming separation with a causal SepMamba, in either model form (SpeechBrain's streaming shape).

    context = model.make_streaming_context(batch_size=1)
    for chunk in chunks:                             # [B, n] each, any n >= 1
        est = model.forward_streaming(chunk, context)  # [B, n, S]

What a stream carries (a :class:`StreamingContext`): every Mamba block's conv and SSM states, every
strided conv's pending inputs, every transposed conv's overlap-add tail, the U-Net's skip and up-path
frames waiting for each other and, for the masking form, the Encoder's frames waiting for their masks.
Its size does not grow with the stream.

Timing. With ``strict_causal=True`` an output sample depends on no later input, and each chunk's
output is the offline output of the same samples (the model computes up to a frame ahead, which waits
in ``out``). The paper's causal model keeps unpadded convs, which look ahead: the stream then returns
the offline output delayed by ``context.delay`` samples (its look-ahead, the largest gap between the
inputs received and the outputs computable, found from the frame counts), its first ``delay`` samples
being zeros.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from sepmamba_sb.lobes.unet import UNetStreamingContext
from sepmamba_sb.nnet.streaming import take


@dataclass
class StreamingContext:
    """The state of a batch of streams through a causal SepMamba.

    Attributes
    ----------
    batch_size : int
        Streams separated together.
    delay : int
        Samples by which the output lags the offline output (the model's look-ahead; 0 if strictly causal).
    body : UNetStreamingContext
        The U-Net's state.
    tail : torch.Tensor
        The output transposed conv's overlap-add tail.
    out : torch.Tensor
        Output samples computed but not returned yet, (B, S, t).
    encoder : torch.Tensor, optional
        Masking form: the Encoder's pending input samples.
    frames : torch.Tensor, optional
        Masking form: Encoder frames waiting for their masks, (B, N, t).
    """

    batch_size: int
    delay: int
    body: UNetStreamingContext
    tail: torch.Tensor
    out: torch.Tensor
    encoder: torch.Tensor | None = None
    frames: torch.Tensor | None = None

    def check(self, chunk: torch.Tensor) -> torch.Tensor:
        """Return ``chunk`` if it is a [batch_size, n >= 1] finite float tensor on the context's device,
        else raise a ValueError saying what is wrong."""
        if not isinstance(chunk, torch.Tensor) or chunk.dim() != 2 or chunk.shape[-1] == 0:
            shape = tuple(chunk.shape) if isinstance(chunk, torch.Tensor) else type(chunk).__name__
            raise ValueError(f"forward_streaming: chunk must be [batch, samples] with samples >= 1, got {shape}")
        if chunk.shape[0] != self.batch_size:
            raise ValueError(f"forward_streaming: chunk has batch size {chunk.shape[0]}, but the streaming context "
                             f"was made for {self.batch_size} streams")
        if not chunk.is_floating_point():
            raise ValueError(f"forward_streaming: chunk must be floating point, got {chunk.dtype}")
        if chunk.device != self.out.device:
            raise ValueError(f"forward_streaming: chunk is on {chunk.device}, the model on {self.out.device}")
        if not torch.isfinite(chunk).all():
            raise ValueError("forward_streaming: chunk holds NaN or Inf samples")
        return chunk.to(self.out.dtype)


def lookahead(streamed_samples: Callable[[int], int], period: int) -> int:
    """The largest number of input samples by which a stream's computable output lags its input.

    Parameters
    ----------
    streamed_samples : callable
        Output samples computable after ``T`` inputs.
    period : int
        The product of the strides: once every level has a frame, the lag repeats with this period.

    Returns
    -------
    int
        ``max_T (T - streamed_samples(T))``, at least 0.
    """
    worst, first, length = 0, None, 0
    while first is None or length < first + 2 * period:
        length += 1
        produced = streamed_samples(length)
        worst = max(worst, length - produced)
        if produced > 0 and first is None:
            first = length
    return worst


def new_context(model, batch_size: int, body: UNetStreamingContext, tail: torch.Tensor, period: int,
                num_spks: int, **extra) -> StreamingContext:
    """A model's zero context: its delay from ``model.streamed_samples``, ``delay`` zeros to output first."""
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"make_streaming_context: batch_size must be an int >= 1, got {batch_size!r}")
    delay = lookahead(model.streamed_samples, period)
    out = tail.new_zeros(batch_size, num_spks, delay)
    return StreamingContext(batch_size, delay, body, tail, out, **extra)


def emit(context: StreamingContext, samples: torch.Tensor, count: int) -> torch.Tensor:
    """Queue newly computed output samples (B, S, t) and return the next ``count`` as [B, count, S]."""
    context.out = torch.cat([context.out, samples], dim=-1)
    if context.out.shape[-1] < count:  # cannot happen when delay is the look-ahead
        raise RuntimeError(f"streaming: {context.out.shape[-1]} output samples ready for a chunk of {count}; "
                           f"the delay of {context.delay} samples is too short")
    ready, context.out = take(context.out, count)
    return ready.transpose(1, 2)
