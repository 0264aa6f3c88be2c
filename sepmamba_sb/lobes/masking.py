"""SepMamba in SpeechBrain's separation contract: Encoder, MaskNet, Decoder.

SpeechBrain's separation recipes and ``speechbrain.inference.separation.SepformerSeparation`` run

    mix_w = encoder(mix)                        # [B, T] -> [B, N, L]
    est_mask = masknet(mix_w)                   # [B, N, L] -> [S, B, N, L], >= 0
    sep_h = stack([mix_w] * S) * est_mask
    est = cat([decoder(sep_h[i]).unsqueeze(-1) for i in range(S)], -1)   # [B, T', S], then fit to T

How this differs from the paper's model (:class:`sepmamba_sb.lobes.SepMamba`): there, the U-Net's
last transposed conv writes all sources at once from the level-0 features. Here the same body (level
0's conv is the Encoder, its Mamba layer and every deeper level are the MaskNet) ends in a 1x1 conv +
ReLU that makes one non-negative mask per source over the Encoder's frames, and one shared
single-output transposed conv (the Decoder) turns each masked representation into a waveform. The
masking form has a few more parameters (the mask head, ``dim * S * dim + S * dim``) and fewer in the
decoder; it makes SepMamba a drop-in for SepFormer/Conv-TasNet/DPRNN yaml files. Both forms share
:class:`sepmamba_sb.lobes.unet.SepMambaUNet`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from sepmamba_sb.lobes.streaming import StreamingContext, emit, new_context
from sepmamba_sb.lobes.unet import SepMambaUNet, fit_length, make_activation, remember_config
from sepmamba_sb.nnet.streaming import stream_frames, strided_conv_stream, take, transposed_conv_stream


class Encoder(nn.Module):
    """The paper's first strided conv + activation: [B, T] -> [B, N, L].

    Parameters
    ----------
    kernel_size, stride : int
        16 and 2 in the paper.
    out_channels : int
        N, the MaskNet's ``dim``.
    act_fn : str
        relu, silu, mish or prelu.
    strict_causal : bool
        Left-pad by ``kernel_size - 1`` (use with a strictly causal MaskNet).

    Inputs shorter than one kernel are zero-padded at their end (SpeechBrain's pipelines then cut the
    estimates back to the input length).
    """

    @remember_config
    def __init__(self, kernel_size: int = 16, out_channels: int = 64, stride: int = 2, act_fn: str = "relu",
                 strict_causal: bool = False):
        super().__init__()
        self.kernel_size = kernel_size
        self.left_pad = kernel_size - 1 if strict_causal else 0
        self.conv1d = nn.Conv1d(1, out_channels, kernel_size, stride)
        self.act = make_activation(act_fn)

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """[B, T] -> [B, N, L]."""
        if mix.dim() != 2 or mix.shape[-1] == 0:
            raise ValueError(f"Encoder expects mixtures [batch, time] with time >= 1, got shape {tuple(mix.shape)}")
        short = max(0, self.kernel_size - self.left_pad - mix.shape[-1])
        return self.act(self.conv1d(F.pad(mix, (self.left_pad, short)).unsqueeze(1)))


class MaskNet(SepMambaUNet):
    """SepMamba's U-Net body from the Encoder's frames, with a mask head: [B, N, L] -> [S, B, N, L].

    Parameters are those of :class:`sepmamba_sb.lobes.SepMamba` (``dim`` = the Encoder's N), and the
    U-Net modules have the same names (level 0 keeps only ``down.0.mamba_layer``). The mask head is a
    1x1 conv to ``S * N`` channels and a ReLU, so masks are non-negative. Frame counts the deeper
    levels cannot take (under about 45 frames, or odd ones) are zero-padded at the end and cut back.
    """

    @remember_config
    def __init__(self, dim: int = 64, kernel_sizes: Sequence[int] = (16, 16, 16), strides: Sequence[int] = (2, 2, 2),
                 num_blocks: int = 4, act_fn: str = "relu", num_spks: int = 2, causal: bool = False,
                 strict_causal: bool = False, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 backend: str | None = None):
        super().__init__(dim, kernel_sizes, strides, num_blocks, act_fn, causal, strict_causal, first_conv=False,
                         d_state=d_state, d_conv=d_conv, expand=expand, backend=backend)
        self.num_spks = num_spks
        self.mask_head = nn.Conv1d(dim, num_spks * dim, kernel_size=1)

    def forward(self, mix_w: torch.Tensor) -> torch.Tensor:
        """[B, N, L] -> [S, B, N, L] non-negative masks."""
        if mix_w.dim() != 3 or mix_w.shape[1] != self.dim:
            raise ValueError(f"MaskNet expects [batch, {self.dim}, frames], got shape {tuple(mix_w.shape)}")
        batch, channels, frames = mix_w.shape
        padded = self.valid_length(frames, first_level=1)
        x = self.body(F.pad(mix_w, (0, padded - frames)))[..., :frames]
        masks = F.relu(self.mask_head(x))  # [B, S*N, L]
        return masks.view(batch, self.num_spks, channels, frames).transpose(0, 1)


class Decoder(nn.ConvTranspose1d):
    """A transposed conv back to the waveform: [B, N, L] -> [B, T'] (as SpeechBrain's ``dual_path.Decoder``).

    Parameters
    ----------
    in_channels : int
        N.
    kernel_size, stride : int
        Those of the Encoder.
    """

    @remember_config
    def __init__(self, in_channels: int = 64, kernel_size: int = 16, stride: int = 2):
        super().__init__(in_channels, 1, kernel_size, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, N, L] -> [B, T'] with T' = (L - 1) * stride + kernel_size."""
        return super().forward(x).squeeze(1)


def separate(encoder: nn.Module, masknet: nn.Module, decoder: nn.Module, mix: torch.Tensor,
             num_spks: int) -> torch.Tensor:
    """The SpeechBrain recipe's forward pass with any encoder/masknet/decoder: [B, T] -> [B, T, S].

    Parameters
    ----------
    encoder, masknet, decoder : nn.Module
        Modules following the separation contract.
    mix : torch.Tensor
        [B, T].
    num_spks : int
        S.

    Returns
    -------
    torch.Tensor
        [B, T, S], zero-padded or cut at the end to T.
    """
    mix_w = encoder(mix)
    est_mask = masknet(mix_w)
    sep_h = torch.stack([mix_w] * num_spks) * est_mask
    est = torch.cat([decoder(sep_h[i]).unsqueeze(-1) for i in range(num_spks)], dim=-1)
    return fit_length(est.transpose(1, 2), mix.shape[-1]).transpose(1, 2)


class MaskingSeparator(nn.Module):
    """Any encoder + masknet + decoder (SepMamba's, SepFormer's, Conv-TasNet's...) as one module,
    [B, T] -> [B, T, S], running :func:`separate` (what :func:`sepmamba_sb.lobes.as_separator` returns for
    the masking form).

    Its state dict is ``encoder.*``, ``masknet.*``, ``decoder.*``, the names a SpeechBrain yaml gives.

    Parameters
    ----------
    encoder, masknet, decoder : nn.Module
        The three modules.
    num_spks : int
        S.
    """

    def __init__(self, encoder: nn.Module, masknet: nn.Module, decoder: nn.Module, num_spks: int):
        super().__init__()
        self.encoder, self.masknet, self.decoder = encoder, masknet, decoder
        self.num_spks = num_spks

    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """[B, T] -> [B, T, S]."""
        return separate(self.encoder, self.masknet, self.decoder, mix, self.num_spks)

    def _stream_parts(self) -> tuple[Encoder, MaskNet, Decoder]:
        """The three modules, if they are SepMamba's (the only masking modules that stream)."""
        parts = (self.encoder, self.masknet, self.decoder)
        if not all(isinstance(m, c) for m, c in zip(parts, (Encoder, MaskNet, Decoder), strict=True)):
            raise ValueError("only SepMamba's Encoder, MaskNet and Decoder can stream, got "
                             + ", ".join(type(m).__name__ for m in parts))
        return parts

    def streamed_samples(self, length: int) -> int:
        """Output samples :meth:`forward_streaming` has computed once ``length`` inputs have arrived."""
        encoder, masknet, _ = self._stream_parts()
        kernel, stride = encoder.conv1d.kernel_size[0], encoder.conv1d.stride[0]
        frames = stream_frames(length, kernel, stride, encoder.left_pad)
        return stride * masknet.streamed_frames(frames)

    def make_streaming_context(self, batch_size: int = 1) -> StreamingContext:
        """Start a stream (SepMamba's modules, causal MaskNet); see :mod:`sepmamba_sb.lobes.streaming`.

        Parameters
        ----------
        batch_size : int
            Streams separated together.

        Returns
        -------
        StreamingContext
            Zero states; ``delay`` is the look-ahead in samples (0 with a strictly causal Encoder and MaskNet).

        Raises
        ------
        ValueError
            For modules that are not SepMamba's, a bidirectional MaskNet, or an Encoder and MaskNet that
            disagree on ``strict_causal``.
        """
        encoder, masknet, decoder = self._stream_parts()
        if (encoder.left_pad > 0) != masknet.strict_causal:
            raise ValueError("the Encoder's strict_causal and the MaskNet's differ: set both (a strictly causal "
                             "model) or neither (the paper's causal model)")
        body = masknet.make_body_context(batch_size)
        weight = decoder.weight
        tail = weight.new_zeros(self.num_spks * batch_size, 1, decoder.kernel_size[0] - decoder.stride[0])
        period = encoder.conv1d.stride[0] * math.prod(masknet.strides[1:])
        return new_context(self, batch_size, body, tail, period, self.num_spks,
                           encoder=weight.new_zeros(batch_size, 1, encoder.left_pad),
                           frames=weight.new_zeros(batch_size, masknet.dim, 0))

    def forward_streaming(self, chunk: torch.Tensor, context: StreamingContext) -> torch.Tensor:
        """Separate the next chunk of a stream: [B, n] -> [B, n, S], the offline output delayed by
        ``context.delay`` samples (as :meth:`sepmamba_sb.lobes.SepMamba.forward_streaming`)."""
        encoder, masknet, decoder = self._stream_parts()
        frames, context.encoder = strided_conv_stream(encoder.conv1d, context.check(chunk).unsqueeze(1),
                                                      context.encoder)
        mix_w = encoder.act(frames)
        context.frames = torch.cat([context.frames, mix_w], dim=-1)
        features = masknet.body_streaming(mix_w, context.body)  # [B, N, m], m >= 0
        batch, count = features.shape[0], features.shape[-1]
        samples = features.new_zeros(batch, self.num_spks, 0)
        if count:
            masks = F.relu(masknet.mask_head(features)).view(batch, self.num_spks, masknet.dim, count)
            mix_w, context.frames = take(context.frames, count)
            sep_h = (mix_w.unsqueeze(1) * masks).transpose(0, 1).reshape(-1, masknet.dim, count)  # [S*B, N, m]
            samples, context.tail = transposed_conv_stream(decoder, sep_h, context.tail)
            samples = samples.view(self.num_spks, batch, -1).transpose(0, 1)
        return emit(context, samples, chunk.shape[-1])
