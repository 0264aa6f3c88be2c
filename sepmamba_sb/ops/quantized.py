"""int8 linear products on the CPU: weights quantized per output channel, activations dynamically.

An :class:`Int8Weight` stands where a float ``(out, in)`` weight would in the mixer's functional path
(:class:`sepmamba_sb.ops.MixerWeights`): :func:`sepmamba_sb.ops.linear_rows` multiplies by it, a
bidirectional layer stacks two of them as groups, and the mixer chunks ``in_proj``'s into the ``x`` and
gate halves. Each piece is prepacked once for PyTorch's x86 quantized engine (fbgemm; VNNI/AMX where
the CPU has them), whose ``linear_dynamic`` quantizes each input to 8 bits on the fly (one scale and
zero point per call), multiplies in integers and returns float32: no weight is dequantized.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def int8_engine() -> str | None:
    """The quantized engine the int8 products run on (``"x86"`` or ``"fbgemm"``), or None if this
    PyTorch has neither (an ARM build: int8 is then unavailable)."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm") if e in engines), None)


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 quantization of a float weight, one scale per output channel (row).

    Parameters
    ----------
    weight : torch.Tensor
        (out, in), float.

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        ``values`` (out, in) int8 in [-127, 127] and ``scale`` (out,) float32, ``weight ~ values * scale[:, None]``.
    """
    w = weight.detach().float()
    scale = (w.abs().amax(dim=1) / 127).clamp_min(1e-12)
    values = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return values, scale


def pack(values: torch.Tensor, scale: torch.Tensor):
    """Prepack int8 ``values`` (out, in) with their per-row ``scale`` (out,) for ``linear_dynamic``."""
    qweight = torch._make_per_channel_quantized_tensor(values.cpu(), scale.double().cpu(),
                                                       torch.zeros_like(scale, dtype=torch.long).cpu(), 0)
    return torch.ops.quantized.linear_prepack(qweight, None)


@dataclass(frozen=True)
class Int8Weight:
    """A prepacked int8 weight, (out, in), or several as groups (batch row b of an input uses group
    ``b // (batch // groups)``), each cut into the row blocks the mixer asks for with :meth:`chunk`.

    Attributes
    ----------
    packed : tuple of tuple
        ``packed[g][k]``: group g's row block k, prepacked (:func:`pack`).
    grouped : bool
        Whether the groups dimension exists (as a leading tensor dimension would).
    """

    packed: tuple
    grouped: bool = False

    def dim(self) -> int:
        """2, or 3 when grouped: the dimensions of the float weight it replaces."""
        return 3 if self.grouped else 2

    @staticmethod
    def stack(weights: list[Int8Weight]) -> Int8Weight:
        """Ungrouped weights as groups, in order (as ``torch.stack`` does for float weights)."""
        return Int8Weight(tuple(w.packed[0] for w in weights), grouped=True)

    def __getitem__(self, group: int) -> Int8Weight:
        return Int8Weight((self.packed[group],))

    def chunk(self, chunks: int, dim: int = 0) -> tuple[Int8Weight, ...]:
        """The row blocks along ``dim`` -2, ``chunks`` of them: the blocks it was packed in
        (:class:`sepmamba_sb.precision.Int8Linear`'s ``blocks``)."""
        blocks = len(self.packed[0])
        if dim not in (-2, self.dim() - 2) or chunks != blocks:
            raise ValueError(f"Int8Weight.chunk: packed as {blocks} row block(s); cannot cut into {chunks} "
                             f"along dim {dim}")
        return tuple(Int8Weight(tuple((group[k],) for group in self.packed), self.grouped) for k in range(blocks))

    def linear(self, x: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """``x @ W.T + bias`` per batch row: (batch, len, in) -> (batch, len, out), float32 (x's dtype if float64)."""
        groups = len(self.packed)
        rows = x.float().chunk(groups) if self.grouped else (x.float(),)
        outs = [self._blocks(r, g) for g, r in enumerate(rows)]
        out = outs[0] if groups == 1 else torch.cat(outs)
        if bias is not None:  # (out,) or grouped (groups, out)
            out = (out.view(groups, -1, out.shape[-1]) + bias.float().view(groups, 1, -1)).view(out.shape)
        return out.to(x.dtype)

    def _blocks(self, x: torch.Tensor, group: int) -> torch.Tensor:
        outs = [torch.ops.quantized.linear_dynamic(x, packed) for packed in self.packed[group]]
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
