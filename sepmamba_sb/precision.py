"""Reduced-precision CPU inference: :func:`to_precision` converts a loaded separator to bf16 or int8.

Any separator module converts: the paper's ``SepMamba``, the encoder/masknet/decoder modules (one at a
time or wrapped by :func:`sepmamba_sb.lobes.as_separator`), and SpeechBrain's own separators. The
result keeps ``forward`` (and, for a causal SepMamba, ``make_streaming_context``/``forward_streaming``),
takes and returns float32 as before, and is meant for inference (``torch.no_grad``).

Where a module holds Mamba mixers (ours), the selective scan's state and the residual stream stay float32:

- ``bf16``: the mixers' ``in_proj``, ``x_proj`` and ``out_proj`` weights and the U-Net's (and
  Encoder's/Decoder's) convolution weights are stored in bfloat16. Inside a mixer the activations stay
  bfloat16 from ``in_proj`` to ``out_proj``: the C++ depthwise conv and selective scan read and write
  bfloat16 and compute in float32, with the scan's state and sums, ``dt_proj``, ``A``, ``D`` and the
  conv's taps in float32. The norms and the residual stream between blocks stay float32, and each
  U-Net convolution casts its input to bfloat16 and its output back.
- ``int8``: the mixers' three projections become :class:`Int8Linear` (weights int8 per output channel,
  activations quantized dynamically, :mod:`sepmamba_sb.ops.quantized`), in the fused bidirectional
  path and in streaming alike; everything else, the U-Net's convolutions included, stays float32.
  Bidirectional layers then run their two directions apart (``BiMamba.fused = False``): the int8
  kernel takes one weight per call, so the fused batch would only add the copies that join each
  product's two halves (it is slower).

Any other module (SpeechBrain's SepFormer, Conv-TasNet, DPRNN) converts as PyTorch supports it, for
like-with-like comparisons: ``bf16`` runs the whole module in bfloat16 (parameters cast, float inputs
cast on the way in and outputs back to float32 on the way out), ``int8`` replaces every ``nn.Linear``
by an :class:`Int8Linear` (those inside ``nn.MultiheadAttention`` excepted, which reads their weights
directly, as ``torch.ao``'s dynamic quantization also leaves them).

bf16 needs a CPU whose oneDNN has native bfloat16 products (AVX512_BF16 or AMX): elsewhere it would be
emulated in software, and :func:`to_precision` refuses it with the reason. int8 needs
PyTorch's x86 quantized engine (fbgemm), present in every x86 build.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from sepmamba_sb.nnet.bimamba import BiMamba
from sepmamba_sb.nnet.mamba import Mamba
from sepmamba_sb.ops.quantized import Int8Weight, int8_engine, pack, quantize_per_channel

PRECISIONS = ("fp32", "bf16", "int8")
# the attribute a converted module carries, so that it is not converted twice and its precision can be read
ATTRIBUTE = "sepmamba_precision"


def precision_of(module: nn.Module) -> str:
    """The precision :func:`to_precision` gave ``module`` or its submodules (``"fp32"`` if never converted)."""
    return next((getattr(m, ATTRIBUTE) for m in module.modules() if hasattr(m, ATTRIBUTE)), "fp32")


def check_precision(precision: str, argument: str = "precision") -> str:
    """Return ``precision`` if this machine can run it, else raise a ValueError naming ``argument``.

    Raises
    ------
    ValueError
        For a name not in :data:`PRECISIONS`, bf16 on a CPU without native bfloat16 products, int8
        without the x86 quantized engine.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{argument} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision == "bf16" and not bf16_supported():
        raise ValueError(f"{argument}='bf16': this CPU has no native bfloat16 matrix products (AVX512_BF16 or "
                         "AMX): bfloat16 would be emulated in software; use 'int8' or 'fp32'")
    if precision == "int8" and int8_engine() is None:
        raise ValueError(f"{argument}='int8': this PyTorch build has no x86 quantized engine "
                         f"(engines: {torch.backends.quantized.supported_engines}); use 'fp32'")
    return precision


def bf16_supported() -> bool:
    """Whether oneDNN runs bfloat16 products natively on this CPU."""
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


class Int8Linear(nn.Module):
    """An ``nn.Linear`` with int8 weights, one scale per output channel, and dynamically quantized inputs.

    Its state dict holds ``qweight`` (out, in) int8, ``scale`` (out,) float32 and ``bias`` (no float
    weight), so a quantized model saves and loads at a quarter of the weights' bytes. ``weight`` is an
    :class:`sepmamba_sb.ops.quantized.Int8Weight`, packed once (again after ``load_state_dict``), for
    the mixer's functional path.

    Parameters
    ----------
    in_features, out_features : int
        As ``nn.Linear``'s.
    bias : bool
        Whether there is a bias (kept float32).
    blocks : int
        Row blocks packed apart, for a consumer that cuts the weight (``in_proj``: 2, ``x`` and gate).

    Example
    -------
    >>> layer = Int8Linear.from_float(nn.Linear(16, 8))
    >>> layer(torch.randn(3, 16)).shape
    torch.Size([3, 8])
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, blocks: int = 1):
        super().__init__()
        if out_features % blocks:
            raise ValueError(f"Int8Linear: out_features={out_features} does not split into {blocks} blocks")
        self.in_features, self.out_features, self.blocks = in_features, out_features, blocks
        self.register_buffer("qweight", torch.zeros(out_features, in_features, dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self._packed = None
        self.register_load_state_dict_post_hook(lambda module, _keys: module._forget_packing())

    @classmethod
    def from_float(cls, linear: nn.Linear, blocks: int = 1) -> Int8Linear:
        """Quantize ``linear``'s weight (:func:`sepmamba_sb.ops.quantized.quantize_per_channel`)."""
        layer = cls(linear.in_features, linear.out_features, linear.bias is not None, blocks)
        layer.qweight, layer.scale = quantize_per_channel(linear.weight)
        if linear.bias is not None:
            layer.bias.data = linear.bias.detach().float().clone()
        return layer

    def _forget_packing(self) -> None:
        self._packed = None

    @property
    def weight(self) -> Int8Weight:
        """The packed weight, in ``blocks`` row blocks."""
        if self._packed is None:
            rows = zip(self.qweight.chunk(self.blocks), self.scale.chunk(self.blocks), strict=True)
            self._packed = Int8Weight((tuple(pack(values, scale) for values, scale in rows),))
        return self._packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out), float32."""
        return self.weight.linear(x, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8"


class _Bf16Conv:
    """A conv whose weights are bfloat16: input cast in, output cast back (mixin of the two classes below)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.to(self.weight.dtype)).to(x.dtype)


class Bf16Conv1d(_Bf16Conv, nn.Conv1d):
    """``nn.Conv1d`` computing in its weights' dtype, bfloat16, with float32 input and output."""


class Bf16ConvTranspose1d(_Bf16Conv, nn.ConvTranspose1d):
    """``nn.ConvTranspose1d`` computing in its weights' dtype, bfloat16, with float32 input and output."""


def to_precision(module: nn.Module, precision: str) -> nn.Module:
    """Convert a separator for inference in ``precision`` (see the module's doc), in place.

    Parameters
    ----------
    module : nn.Module
        On the CPU, float32, not converted before.
    precision : {"fp32", "bf16", "int8"}
        ``"fp32"`` leaves the module as it is.

    Returns
    -------
    nn.Module
        ``module`` itself, converted (its ``forward`` and streaming methods kept), in eval mode for
        bf16 and int8, with ``precision_of(module) == precision``.

    Raises
    ------
    ValueError
        For an unknown or unsupported precision (:func:`check_precision`), a module not on the CPU or
        not float32, or one already converted to another precision.
    """
    check_precision(precision)
    current = precision_of(module)
    if current == precision:
        return module
    if current != "fp32":
        raise ValueError(f"to_precision: the module is already in {current}; load it again to convert it to "
                         f"{precision}")
    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.device.type != "cpu" for t in tensors):
        raise ValueError(f"to_precision: {precision} is for CPU inference; move the module to the CPU first "
                         "(on a GPU, use torch.autocast)")
    if any(t.is_floating_point() and t.dtype != torch.float32 for t in tensors):
        raise ValueError("to_precision: the module must be float32 to convert")
    module.eval()
    mixers = [m for m in module.modules() if isinstance(m, Mamba)]
    if mixers:
        _convert_mamba_model(module, mixers, precision)
    elif precision == "bf16":
        _run_in_bf16(module)
    else:
        _quantize_linears(module)
    setattr(module, ATTRIBUTE, precision)
    return module


def _convert_mamba_model(module: nn.Module, mixers: list[Mamba], precision: str) -> None:
    """Our models: the mixers' projections, and in bf16 the convolutions too."""
    if precision == "int8":
        for layer in module.modules():
            if isinstance(layer, BiMamba):
                layer.fused = False
    for mixer in mixers:
        for name in ("in_proj", "x_proj", "out_proj"):
            linear = getattr(mixer, name)
            if precision == "int8":
                setattr(mixer, name, Int8Linear.from_float(linear, blocks=2 if name == "in_proj" else 1))
            else:
                linear.to(torch.bfloat16)
    if precision == "bf16":
        for conv in module.modules():
            if type(conv) in (nn.Conv1d, nn.ConvTranspose1d) and conv.groups == 1:
                conv.__class__ = Bf16Conv1d if isinstance(conv, nn.Conv1d) else Bf16ConvTranspose1d
                conv.to(torch.bfloat16)


def _run_in_bf16(module: nn.Module) -> None:
    """The whole module in bfloat16, its float inputs cast in and its outputs cast back to float32."""
    module.to(torch.bfloat16)

    def cast(value, dtype):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.to(dtype)
        if isinstance(value, (tuple, list)):
            return type(value)(cast(v, dtype) for v in value)
        return value

    module.register_forward_pre_hook(lambda _m, args: cast(args, torch.bfloat16))
    module.register_forward_hook(lambda _m, _args, output: cast(output, torch.float32))


def _quantize_linears(module: nn.Module) -> None:
    """Every ``nn.Linear`` to :class:`Int8Linear`, except those ``nn.MultiheadAttention`` reads directly."""
    inside_attention = {id(m) for a in module.modules() if isinstance(a, nn.MultiheadAttention) for m in a.modules()}
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Linear) and id(child) not in inside_attention:
                setattr(parent, name, Int8Linear.from_float(child))

