"""Strided and transposed convolutions on a stream: each chunk's output, concatenated, equals the
output of the whole signal at once.

A strided conv (kernel ``k``, stride ``s``, left padding ``p``) keeps the inputs its next frames need
(initially ``p`` zeros) and makes a frame as soon as its ``k`` inputs have arrived. A transposed conv
emits the ``s`` samples of each new frame that no later frame touches, and keeps the overlap-add tail
(``k - s`` samples) that the next frame completes. Both take and return channel-first tensors
(batch, channels, time) and accept chunks of any length, including empty ones.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def stream_frames(length: int, kernel_size: int, stride: int, left_pad: int) -> int:
    """Frames a strided conv has made once ``length`` inputs of a stream have arrived.

    Parameters
    ----------
    length : int
        Inputs so far.
    kernel_size, stride, left_pad : int
        The conv's, ``left_pad`` being the zeros in front of the stream.

    Returns
    -------
    int
        ``(left_pad + length - kernel_size) // stride + 1``, or 0 before the first frame.
    """
    filled = left_pad + length
    return (filled - kernel_size) // stride + 1 if filled >= kernel_size else 0


def _plain(conv: nn.Module, name: str) -> tuple[int, int]:
    """Kernel size and stride of a conv with no padding, dilation or groups (what the streams handle)."""
    output_padding = getattr(conv, "output_padding", (0,))
    if conv.padding != (0,) or conv.dilation != (1,) or conv.groups != 1 or output_padding != (0,):
        raise ValueError(f"{name}: streaming handles unpadded, undilated, ungrouped convs only")
    return conv.kernel_size[0], conv.stride[0]


def strided_conv_stream(conv: nn.Conv1d, x: torch.Tensor, pending: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The frames of ``conv`` that the new inputs complete.

    Parameters
    ----------
    conv : nn.Conv1d
        Unpadded (a left padding is the zeros ``pending`` starts with).
    x : torch.Tensor
        New inputs, (batch, C_in, n), n >= 0.
    pending : torch.Tensor
        Inputs kept from before, starting at the next frame's first input, (batch, C_in, m).

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The new frames (batch, C_out, f) and the inputs to keep for the next call.
    """
    kernel, stride = _plain(conv, "strided_conv_stream")
    x = torch.cat([pending, x], dim=-1)
    frames = stream_frames(x.shape[-1], kernel, stride, 0)
    if frames == 0:
        return x.new_zeros(x.shape[0], conv.out_channels, 0), x
    # one GEMM with the wide side on the output channels: a chunk has few frames, and a GEMM as narrow
    # as its frame count runs up to 3x slower (what conv1d's im2col does)
    patches = x[..., : (frames - 1) * stride + kernel].unfold(-1, kernel, stride)  # (batch, C_in, f, k)
    patches = patches.transpose(1, 2).reshape(x.shape[0], frames, -1)  # (batch, f, C_in * k)
    weight = conv.weight.view(conv.out_channels, -1)  # products in the weight's dtype (bf16: to_precision)
    out = torch.matmul(patches.to(weight.dtype), weight.t()).to(x.dtype).transpose(1, 2)
    if conv.bias is not None:
        out = out + conv.bias.to(x.dtype).unsqueeze(-1)
    return out, x[..., frames * stride:]


def transposed_conv_stream(conv: nn.ConvTranspose1d, x: torch.Tensor,
                           tail: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The output samples of ``conv`` that the new frames complete.

    Parameters
    ----------
    conv : nn.ConvTranspose1d
        Unpadded, kernel ``k`` >= stride ``s``.
    x : torch.Tensor
        New frames, (batch, C_in, f), f >= 0.
    tail : torch.Tensor
        The earlier frames' overlap-add contributions (without bias) to samples not yet output,
        (batch, C_out, k - s); zeros at the start.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``s * f`` new samples (batch, C_out, s * f) and the new tail.
    """
    kernel, stride = _plain(conv, "transposed_conv_stream")
    frames, batch, channels = x.shape[-1], x.shape[0], conv.out_channels
    if frames == 0:
        return tail.new_zeros(batch, channels, 0), tail
    # Each frame's k output taps from one GEMM (wide on C_out * k: conv_transpose1d's narrow GEMM is up to
    # 7x slower on a chunk's few frames), then overlap-added: tap j = q s + r of frame i lands on sample
    # (i + q) s + r, so each shift q adds one (frames, s) block per channel.
    shifts = -(-kernel // stride)
    weight = conv.weight.view(conv.in_channels, -1)  # products in the weight's dtype (bf16: to_precision)
    taps = torch.matmul(x.transpose(1, 2).to(weight.dtype), weight).to(x.dtype)  # (batch, f, C_out * k)
    taps = F.pad(taps.view(batch, frames, channels, kernel), (0, shifts * stride - kernel))
    taps = taps.view(batch, frames, channels, shifts, stride).permute(0, 2, 3, 1, 4)  # (batch, C_out, q, f, s)
    y = x.new_zeros(batch, channels, frames + shifts, stride)
    for q in range(shifts):
        y[:, :, q:q + frames] += taps[:, :, q]
    y = y.view(batch, channels, -1)[..., : (frames - 1) * stride + kernel]  # (batch, C_out, (f - 1) s + k)
    overlap = tail.shape[-1]
    y = torch.cat([y[..., :overlap] + tail, y[..., overlap:]], dim=-1)
    out = y[..., : frames * stride]
    if conv.bias is not None:
        out = out + conv.bias.to(x.dtype).unsqueeze(-1)
    return out, y[..., frames * stride:]


def take(queue: torch.Tensor, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``count`` time steps of a (batch, C, t) queue, and the rest."""
    return queue[..., :count], queue[..., count:]
