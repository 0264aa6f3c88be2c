"""SepMamba's U-Net body, shared by the direct model and the SpeechBrain masking modules.

Per level l (channels ``dim * 2**l``): a strided conv + activation + bidirectional Mamba layer on the
way down; on the way up a transposed conv + activation, the skip concatenated in front, a 1x1
fusion conv + activation and a Mamba layer. Module and parameter names are those of the authors'
code (``down.{l}.conv1d``, ``down.{l}.mamba_layer``, ``down.{l}.act``, ``up.{j}.convT1d``,
``up.{j}.conv1d_fusion``, ``up.{j}.mamba_layer``, ``up.{j}.act``), so their checkpoints load as is.

Timing: the original convs are unpadded ("valid"); the causal variant keeps them, so each output
sample still sees about 100 future samples. ``strict_causal=True`` left-pads every strided conv by
``kernel - 1`` so that frame j of a level ends at input sample ``stride * j`` of the level above, and
cuts every transposed conv's output at its end: then nothing depends on the future, with the same
parameters.

Streaming (causal models): :meth:`SepMambaUNet.body_streaming` runs the body on a stream, chunk by
chunk, from a :class:`UNetStreamingContext`. Every level makes its frames as soon as their inputs have
arrived; an up level fuses a transposed-conv position with its skip frame once both exist (in the
strict model the up path runs ahead of the skips, in the paper's causal model behind them), so the
frames it outputs are exactly the offline body's, in order.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from sepmamba_sb.nnet import BiMamba
from sepmamba_sb.nnet.streaming import stream_frames, strided_conv_stream, take, transposed_conv_stream
from sepmamba_sb.ops import MambaState


def remember_config(init):
    """Decorate ``__init__`` so that the module keeps its constructor arguments in ``self.config``
    (sequences as lists): enough to rebuild it, e.g. in an exported hyperparams.yaml. With
    subclasses, the outermost constructor's arguments win."""

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = inspect.signature(init).bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        self.config = {k: list(v) if isinstance(v, (tuple, list)) else v
                       for k, v in bound.arguments.items() if k != "self"}

    return wrapper


ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "mish": nn.Mish, "prelu": nn.PReLU}


def make_activation(name: str) -> nn.Module:
    """``relu``, ``silu``, ``mish`` or ``prelu`` (one learnt slope, as ``nn.PReLU()``)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"act_fn must be one of {sorted(ACTIVATIONS)}, got {name!r}")
    return ACTIVATIONS[name]()


def fit_length(x: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad or cut the last dimension of ``x`` at its end to ``length``."""
    if x.shape[-1] >= length:
        return x[..., :length]
    return F.pad(x, (0, length - x.shape[-1]))


@dataclass
class UNetStreamingContext:
    """Everything :meth:`SepMambaUNet.body_streaming` carries from one chunk to the next.

    Attributes
    ----------
    pending : list of torch.Tensor or None
        Per down level, the inputs its strided conv keeps (None: no conv).
    down, up : list of list of MambaState
        Per down level and per up block, the Mamba layer's block states.
    skips : list of torch.Tensor
        Per level but the deepest, down frames (batch, C_l, t) not yet fused on the way up.
    tails : list of torch.Tensor
        Per up block, its transposed conv's overlap-add tail.
    ups : list of torch.Tensor
        Per up block, transposed-conv positions (after the activation) not yet fused with their skip.
    """

    pending: list[torch.Tensor | None]
    down: list[list[MambaState]]
    skips: list[torch.Tensor]
    tails: list[torch.Tensor]
    ups: list[torch.Tensor]
    up: list[list[MambaState]]


class DownBlock(nn.Module):
    """Strided conv -> activation -> bidirectional Mamba layer; (B, C_in, L) -> (B, C_out, L').

    With ``with_conv=False`` only the Mamba layer remains (the first level of the masking MaskNet,
    whose conv is the SpeechBrain Encoder).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, num_blocks: int,
                 act_fn: str, causal: bool, strict_causal: bool, with_conv: bool = True, **mamba_kwargs):
        super().__init__()
        self.left_pad = kernel_size - 1 if strict_causal else 0
        self.conv1d = nn.Conv1d(in_channels, out_channels, kernel_size, stride) if with_conv else None
        self.mamba_layer = BiMamba(out_channels, num_blocks, causal=causal, **mamba_kwargs)
        self.act = make_activation(act_fn) if with_conv else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.conv1d is not None:
            x = self.act(self.conv1d(F.pad(x, (self.left_pad, 0))))
        return self.mamba_layer(x)


class UpBlock(nn.Module):
    """Transposed conv -> activation -> fit to the skip -> cat([skip, x]) -> 1x1 conv -> activation
    -> bidirectional Mamba layer. The activation module (and a PReLU's slope) is shared by both uses,
    as in the original."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, num_blocks: int,
                 act_fn: str, causal: bool, **mamba_kwargs):
        super().__init__()
        self.convT1d = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)
        self.conv1d_fusion = nn.Conv1d(in_channels, out_channels, kernel_size=1)
        self.mamba_layer = BiMamba(out_channels, num_blocks, causal=causal, **mamba_kwargs)
        self.act = make_activation(act_fn)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        # the unpadded transposed conv is never longer than the skip; the strict-causal one can be,
        # and cutting its end keeps it causal
        x = fit_length(self.act(self.convT1d(x)), skip.shape[-1])
        x = self.act(self.conv1d_fusion(torch.cat([skip, x], dim=1)))
        return self.mamba_layer(x)


class SepMambaUNet(nn.Module):
    """The U-Net (``down``, ``up``) from the waveform, or from the first level's frames.

    Parameters
    ----------
    dim : int
        Channels of the first level; level l has ``dim * 2**l``.
    kernel_sizes, strides : sequence of int
        One per level (the paper: 16, 16, 16 and 2, 2, 2). Level l's transposed conv mirrors its conv.
    num_blocks : int
        Mamba blocks per direction in every Mamba layer (forward-only stacks when causal).
    act_fn : str
        relu, silu, mish or prelu.
    causal : bool
        Forward-direction Mamba layers only (the paper's causal SepMamba).
    strict_causal : bool
        Also left-pad the convs so that no output depends on future input (needs ``causal``).
    first_conv : bool
        Include level 0's conv (the direct model) or start from its frames (the masking MaskNet).
    d_state, d_conv, expand : int
        Mamba settings.
    backend : str, optional
        Selective-scan backend of every Mamba block (``None``: :func:`sepmamba_sb.ops.resolve_backend`
        chooses at each call).
    """

    def __init__(self, dim: int, kernel_sizes: Sequence[int] = (16, 16, 16), strides: Sequence[int] = (2, 2, 2),
                 num_blocks: int = 4, act_fn: str = "relu", causal: bool = False, strict_causal: bool = False,
                 first_conv: bool = True, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 backend: str | None = None):
        super().__init__()
        kernel_sizes, strides = list(kernel_sizes), list(strides)
        if len(kernel_sizes) != len(strides) or len(kernel_sizes) < 1:
            raise ValueError(f"kernel_sizes {kernel_sizes} and strides {strides} must be equally long, >= 1 level")
        if any(k < s or s < 1 for k, s in zip(kernel_sizes, strides, strict=True)):
            raise ValueError(f"each kernel size must be >= its stride >= 1, got {kernel_sizes} / {strides}")
        if strict_causal and not causal:
            raise ValueError("strict_causal=True needs causal=True (a bidirectional layer sees the future)")
        self.dim, self.kernel_sizes, self.strides = dim, kernel_sizes, strides
        self.strict_causal = strict_causal
        mamba = {"d_state": d_state, "d_conv": d_conv, "expand": expand, "backend": backend}
        channels = [1] + [dim * 2**level for level in range(len(kernel_sizes))]
        self.down = nn.ModuleList(
            DownBlock(channels[level], channels[level + 1], kernel_sizes[level], strides[level], num_blocks,
                      act_fn, causal, strict_causal, with_conv=first_conv or level > 0, **mamba)
            for level in range(len(kernel_sizes))
        )
        self.up = nn.ModuleList(
            UpBlock(channels[level + 1], channels[level], kernel_sizes[level], strides[level], num_blocks,
                    act_fn, causal, **mamba)
            for level in reversed(range(1, len(kernel_sizes)))
        )

    def frames(self, length: int, level: int) -> int:
        """Frames that level ``level``'s conv makes from ``length`` samples of the level above (0 if too short);
        the same count for a whole input and for the first ``length`` samples of a stream."""
        k = self.kernel_sizes[level]
        return stream_frames(length, k, self.strides[level], k - 1 if self.strict_causal else 0)

    def valid_length(self, length: int, first_level: int) -> int:
        """The smallest length >= ``length`` for which every level from ``first_level`` down has a frame
        and, from the waveform (``first_level == 0``), the output transposed conv gives back at least
        ``length`` samples (an unpadded stride-2 conv drops the last sample of an odd length).

        Inputs are zero-padded at their end to this length and outputs cut back.
        """
        def fits(padded: int) -> bool:
            n = padded
            for level in range(first_level, len(self.kernel_sizes)):
                n = self.frames(n, level)
            if first_level > 0 or n < 1:
                return n >= 1
            return (self.frames(padded, 0) - 1) * self.strides[0] + self.kernel_sizes[0] >= length

        padded = max(length, 1)
        while not fits(padded):
            padded += 1
        return padded

    def _up_levels(self) -> list[int]:
        """The level each up block outputs to, in the order of ``self.up`` (deepest first)."""
        return list(reversed(range(len(self.kernel_sizes) - 1)))

    def activation_reference(self) -> torch.Tensor:
        """A tensor on the activations' device and in their dtype, for a stream's buffers: a Mamba norm's
        weight (float32 also after :func:`sepmamba_sb.precision.to_precision` casts the convolutions)."""
        return self.down[0].mamba_layer.forward_mamba_block.mamba_blocks[0].norm.weight

    def make_body_context(self, batch_size: int) -> UNetStreamingContext:
        """The zero context a stream through :meth:`body_streaming` starts from (causal bodies only).

        Parameters
        ----------
        batch_size : int
            Streams run together.

        Raises
        ------
        ValueError
            For a bidirectional body, saying why it cannot stream.
        """
        weight = self.activation_reference()

        def zeros(channels: int, length: int) -> torch.Tensor:
            return weight.new_zeros(batch_size, channels, length)

        pending = [None if b.conv1d is None else zeros(b.conv1d.in_channels, b.left_pad) for b in self.down]
        return UNetStreamingContext(
            pending=pending,
            down=[b.mamba_layer.allocate_state(batch_size) for b in self.down],
            skips=[zeros(self.dim * 2**level, 0) for level in range(len(self.down) - 1)],
            tails=[zeros(b.convT1d.out_channels, b.convT1d.kernel_size[0] - b.convT1d.stride[0]) for b in self.up],
            ups=[zeros(b.convT1d.out_channels, 0) for b in self.up],
            up=[b.mamba_layer.allocate_state(batch_size) for b in self.up],
        )

    def body_streaming(self, x: torch.Tensor, context: UNetStreamingContext) -> torch.Tensor:
        """:meth:`body` on a stream: the level-0 frames that the new inputs complete.

        Parameters
        ----------
        x : torch.Tensor
            New inputs, (B, C_in, n), n >= 0 (samples for the direct model, Encoder frames for the MaskNet).
        context : UNetStreamingContext
            From :meth:`make_body_context`; updated in place.

        Returns
        -------
        torch.Tensor
            (B, dim, m): the next ``m`` frames of :meth:`body`'s output (``m`` may be 0).
        """
        skips = context.skips
        for level, block in enumerate(self.down):
            if block.conv1d is not None:
                x, context.pending[level] = strided_conv_stream(block.conv1d, x, context.pending[level])
                x = block.act(x)
            if x.shape[-1]:
                x = block.mamba_layer(x, context.down[level])
            if level < len(skips):
                skips[level] = torch.cat([skips[level], x], dim=-1)
        for j, (block, level) in enumerate(zip(self.up, self._up_levels(), strict=True)):
            up, context.tails[j] = transposed_conv_stream(block.convT1d, x, context.tails[j])
            context.ups[j] = torch.cat([context.ups[j], block.act(up)], dim=-1)
            ready = min(context.ups[j].shape[-1], skips[level].shape[-1])
            up, context.ups[j] = take(context.ups[j], ready)
            skip, skips[level] = take(skips[level], ready)
            if ready:
                x = block.act(block.conv1d_fusion(torch.cat([skip, up], dim=1)))
                x = block.mamba_layer(x, context.up[j])
            else:
                x = skip  # no frame at this level yet: (B, C_level, 0)
        return x

    def streamed_frames(self, length: int) -> int:
        """Frames :meth:`body_streaming` has output once ``length`` inputs have arrived (integer
        arithmetic on the frame counts, to find a stream's delay without running it)."""
        counts = []
        for level, block in enumerate(self.down):
            if block.conv1d is not None:
                length = self.frames(length, level)
            counts.append(length)
        frames = counts[-1]
        for level in self._up_levels():
            frames = min(counts[level], frames * self.strides[level + 1])
        return frames

    def body(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, L) -> (B, dim, L1): every level down and back up to level 0's frames."""
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1]), strict=True):
            x = block(x, skip)
        return x
