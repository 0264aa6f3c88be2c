"""The Mamba-1 mixer: :func:`mamba_mixer` from its input, :func:`mamba_inner` (as mamba-ssm's
``mamba_inner_fn``) after its input projection, on every backend.

Two paths side by side: mamba-ssm's fused ``mamba_inner_fn`` (one CUDA kernel chain, with
causal-conv1d) where the ``mamba_ssm`` backend is chosen and causal-conv1d imported, and the readable
one everywhere else: causal conv + SiLU, ``x_proj``, ``dt_proj``, the selective scan, ``out_proj``.
The backend is resolved once, here, for both the conv and the scan. The readable path keeps time
major, (batch, len, channels) as the linear layers make it, from the input projection to the output:
the CPU kernels read and write that layout in place, and ``dt_proj`` runs inside the scan kernel.

Every weight may carry a leading groups dimension, batch row b using group ``b // (batch // groups)``:
the two directions of a bidirectional layer then run as one batch, one call per operation
(:meth:`MixerWeights.stack`). :func:`sepmamba_sb.ops.use_fusion` ``(False)`` runs each group apart, with
PyTorch's conv and ``dt_proj`` before the scan: the readable path reads the switch, here alone.

Given a :class:`MambaState`, the readable path continues a stream: the conv starts from the previous
chunk's last inputs and the scan from its last state, and the state is updated for the next chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from sepmamba_sb.ops.causal_conv import causal_conv1d
from sepmamba_sb.ops.dispatch import fusion_enabled, resolve_backend, run_scan
from sepmamba_sb.ops.mamba_ssm_kernels import mamba_kernels
from sepmamba_sb.ops.quantized import Int8Weight


@dataclass
class MambaState:
    """What a Mamba-1 mixer carries from one chunk of a stream to the next (mamba-ssm's ``conv_state``
    and ``ssm_state`` of its ``step``, except that ``conv`` holds the ``d_conv - 1`` previous inputs only).

    Attributes
    ----------
    conv : torch.Tensor
        (batch, d_inner, d_conv - 1): the last inputs of the depthwise conv.
    ssm : torch.Tensor
        (batch, d_inner, d_state): the selective scan's state.
    """

    conv: torch.Tensor
    ssm: torch.Tensor


@dataclass(frozen=True)
class MixerWeights:
    """The tensors of a Mamba-1 mixer, named as mamba-ssm's ``mamba_inner_fn`` takes them.

    Each may carry a leading groups dimension (all alike): batch row b of the input then uses group
    ``b // (batch // groups)``. The three projections' weights may be bfloat16 or an :class:`Int8Weight`
    (:func:`sepmamba_sb.precision.to_precision`): :func:`linear_rows` runs them in their precision.

    Attributes
    ----------
    in_proj_weight : torch.Tensor or None
        (2 * d_inner, d_model): ``x`` then the gate ``z`` (None after the projection, in :func:`mamba_inner`).
    in_proj_bias : torch.Tensor or None
        (2 * d_inner,).
    conv1d_weight : torch.Tensor
        Depthwise causal conv, (d_inner, 1, W) as ``nn.Conv1d`` stores it.
    conv1d_bias : torch.Tensor or None
        (d_inner,).
    x_proj_weight : torch.Tensor
        (dt_rank + 2 * d_state, d_inner): ``dt``, ``B`` and ``C`` from ``x``.
    delta_proj_weight : torch.Tensor
        ``dt_proj``'s weight, (d_inner, dt_rank).
    out_proj_weight : torch.Tensor
        (d_model, d_inner).
    out_proj_bias : torch.Tensor or None
        (d_model,).
    A : torch.Tensor
        ``-exp(A_log)``, (d_inner, d_state), float32.
    D : torch.Tensor or None
        Skip, (d_inner,).
    delta_bias : torch.Tensor or None
        ``dt_proj``'s bias, (d_inner,).
    """

    in_proj_weight: torch.Tensor | None
    in_proj_bias: torch.Tensor | None
    conv1d_weight: torch.Tensor
    conv1d_bias: torch.Tensor | None
    x_proj_weight: torch.Tensor
    delta_proj_weight: torch.Tensor
    out_proj_weight: torch.Tensor
    out_proj_bias: torch.Tensor | None
    A: torch.Tensor
    D: torch.Tensor | None = None
    delta_bias: torch.Tensor | None = None

    @property
    def groups(self) -> int:
        """The number of weight sets (0: ungrouped)."""
        return self.A.shape[0] if self.A.dim() == 3 else 0

    @staticmethod
    def stack(sets: list[MixerWeights]) -> MixerWeights:
        """Several mixers' weights as one grouped set, in order (int8 weights as :meth:`Int8Weight.stack`)."""
        def stacked(values):
            if values[0] is None:
                return None
            return Int8Weight.stack(values) if isinstance(values[0], Int8Weight) else torch.stack(values)

        return MixerWeights(**{f.name: stacked([getattr(w, f.name) for w in sets]) for f in fields(MixerWeights)})

    def group(self, g: int) -> MixerWeights:
        """Group ``g``'s weights, ungrouped."""
        return MixerWeights(**{f.name: None if getattr(self, f.name) is None else getattr(self, f.name)[g]
                               for f in fields(MixerWeights)})

    def inner(self) -> tuple:
        """The weights after ``in_proj``, in :func:`mamba_inner`'s argument order."""
        return tuple(getattr(self, f.name) for f in fields(self)[2:])


def linear_channel_major(weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``x @ weight.T`` returned channel-major with time contiguous, as the conv and the scan read it.

    One GEMM over batch x time, ``weight @ x.T``, viewed as (batch, out, len): no transposing copy.

    Parameters
    ----------
    weight : torch.Tensor
        (out, in).
    x : torch.Tensor
        (batch, len, in).

    Returns
    -------
    torch.Tensor
        (batch, out, len), a view whose last dimension has stride 1.
    """
    batch = x.shape[0]
    out = weight @ x.reshape(-1, x.shape[-1]).t()
    return out.view(out.shape[0], batch, -1).transpose(0, 1)


def linear_rows(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ weight.T + bias`` per batch row, one GEMM per group, in the weight's precision.

    A bfloat16 weight multiplies ``x`` cast to bfloat16 and returns bfloat16, which the mixer's CPU
    kernels read as it is (:func:`sepmamba_sb.precision.to_precision`); an :class:`Int8Weight` runs its
    int8 kernel (:mod:`sepmamba_sb.ops.quantized`) and returns ``x``'s dtype.

    Parameters
    ----------
    x : torch.Tensor
        (batch, len, in).
    weight : torch.Tensor or Int8Weight
        (out, in), or grouped (groups, out, in): batch row b uses group ``b // (batch // groups)``.
    bias : torch.Tensor, optional
        (out,), or (groups, out).

    Returns
    -------
    torch.Tensor
        (batch, len, out), contiguous, in the weight's dtype (``x``'s for int8).
    """
    if isinstance(weight, Int8Weight):
        return weight.linear(x, bias)
    if weight.dtype != x.dtype:
        return linear_rows(x.to(weight.dtype), weight, None if bias is None else bias.to(weight.dtype))
    if weight.dim() == 2:
        return F.linear(x, weight, bias)
    groups, batch, length = weight.shape[0], x.shape[0], x.shape[1]
    rows = x.reshape(groups, (batch // groups) * length, x.shape[-1])
    if bias is None:
        out = torch.bmm(rows, weight.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), rows, weight.transpose(1, 2))
    return out.view(batch, length, weight.shape[1])


def _one_gemm(inputs: torch.Tensor, w: MixerWeights) -> bool:
    """Whether ``in_proj`` runs as one GEMM, ``x`` and ``z`` being channels-dense views of its output (which
    the CPU kernels read in place): in float32 or float64 inference. Differentiated, two GEMMs keep the
    gradients apart; int8 packs the halves apart; bf16 products copy a strided input first (oneDNN), and
    ``x_proj`` and ``out_proj`` would read the strided halves."""
    weight = w.in_proj_weight
    return (isinstance(weight, torch.Tensor) and weight.dtype in (torch.float32, torch.float64)
            and not (torch.is_grad_enabled() and any(t is not None and t.requires_grad
                                                     for t in (inputs, weight, w.in_proj_bias))))


def _fused_kernels(name: str, fused: bool, state: MambaState | None):
    """mamba-ssm's kernels where its fused ``mamba_inner_fn`` applies (the ``mamba_ssm`` backend, ``fused``,
    causal-conv1d imported, no stream state), else ``None``."""
    kernels = mamba_kernels() if name == "mamba_ssm" and fused and state is None else None
    return kernels if kernels is not None and kernels.causal_conv1d_fn is not None else None


def mamba_mixer(hidden_states: torch.Tensor, weights: MixerWeights, backend: str | None = None, fused: bool = True,
                state: MambaState | None = None) -> torch.Tensor:
    """The whole Mamba-1 mixer: ``in_proj``, then :func:`mamba_inner`.

    The input projection's output layout is the next kernels': channel-major with time contiguous for
    mamba-ssm's fused ``mamba_inner_fn``, time-major (``x @ W.T``, the faster GEMM on short channel
    counts) for the readable path. Differentiated, that path makes ``x`` and the gate ``z`` as two
    tensors, so that their gradients flow into two GEMMs instead of being concatenated first (a
    transposing copy of the block's largest tensor in every training step); in float32 inference, as
    one GEMM whose output both are views of (fewer and larger products, one allocation).

    Parameters
    ----------
    hidden_states : torch.Tensor
        (batch, len, d_model).
    weights : MixerWeights
        The mixer's tensors (:meth:`sepmamba_sb.nnet.Mamba.mixer_weights`), grouped or not.
    backend, fused, state
        As :func:`mamba_inner`.

    Returns
    -------
    torch.Tensor
        (batch, len, d_model).
    """
    name = resolve_backend(backend, hidden_states.device)
    if _fused_kernels(name, fused, state) is not None:
        if weights.groups:  # mamba_inner_fn takes one set of weights: one call per group
            return torch.cat([mamba_mixer(rows, weights.group(g), backend=name, fused=True)
                              for g, rows in enumerate(hidden_states.chunk(weights.groups))])
        xz = linear_channel_major(weights.in_proj_weight, hidden_states)
        if weights.in_proj_bias is not None:
            xz = xz + weights.in_proj_bias.to(xz.dtype).unsqueeze(-1)
        return mamba_inner(xz, *weights.inner(), backend=name, fused=fused)
    return _mixer_readable(name, hidden_states, weights, state, projected=False)


def mamba_inner(xz: torch.Tensor, conv1d_weight: torch.Tensor, conv1d_bias: torch.Tensor | None,
                x_proj_weight: torch.Tensor, delta_proj_weight: torch.Tensor, out_proj_weight: torch.Tensor,
                out_proj_bias: torch.Tensor | None, A: torch.Tensor, D: torch.Tensor | None = None,
                delta_bias: torch.Tensor | None = None, backend: str | None = None,
                fused: bool = True, state: MambaState | None = None) -> torch.Tensor:
    """Conv, projections, selective scan (``softplus`` step sizes) and gate of a Mamba-1 mixer.

    Arguments are named as mamba-ssm's ``mamba_inner_fn`` (which this calls when it applies).

    Parameters
    ----------
    xz : torch.Tensor
        ``in_proj`` output, (batch, 2 * d_inner, len): ``x`` then the gate ``z``. Any strides; the
        readable path keeps a time-major (batch, len, 2 * d_inner) memory layout to the end.
    conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight, out_proj_bias, A, D, delta_bias
        As the fields of :class:`MixerWeights` (each with or without a leading groups dimension, all alike).
    backend : str, optional
        Selective-scan backend (:func:`sepmamba_sb.ops.resolve_backend` chooses when ``None``).
    fused : bool
        Allow mamba-ssm's fused ``mamba_inner_fn`` (the ``mamba_ssm`` backend with causal-conv1d).
    state : MambaState, optional
        Continue a stream from this state (readable path) and leave the new state in it.

    Returns
    -------
    torch.Tensor
        (batch, len, d_model).
    """
    name = resolve_backend(backend, xz.device)
    kernels = _fused_kernels(name, fused, state)
    if kernels is not None and A.dim() == 2:
        return kernels.mamba_inner_fn(
            xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight, out_proj_bias,
            A, None, None, None if D is None else D.float(),
            delta_bias=None if delta_bias is None else delta_bias.float(), delta_softplus=True,
        )
    weights = MixerWeights(None, None, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight,
                           out_proj_bias, A, D, delta_bias)
    return _mixer_readable(name, xz, weights, state, projected=True)


def _mixer_readable(name: str, inputs: torch.Tensor, weights: MixerWeights, state: MambaState | None,
                    projected: bool) -> torch.Tensor:
    """The readable path, with the backend ``name`` resolved, from the hidden states (batch, len, d_model)
    or, ``projected``, from ``in_proj``'s output (batch, 2 * d_inner, len). The fusion switch is read here
    and nowhere else: off, each group of weights runs apart, with PyTorch's conv and ``dt_proj``."""
    fusion = fusion_enabled()
    if weights.groups and not fusion:  # as separate mixers would run
        return torch.cat([_readable(name, rows, weights.group(g), None, projected, fusion=False)
                          for g, rows in enumerate(inputs.chunk(weights.groups))])
    return _readable(name, inputs, weights, state, projected, fusion)


def _readable(name: str, inputs: torch.Tensor, w: MixerWeights, state: MambaState | None, projected: bool,
              fusion: bool) -> torch.Tensor:
    """Causal conv + SiLU, ``x_proj``, the scan with ``dt_proj`` inside, ``out_proj``; ``fusion``: our C++
    conv and ``dt_proj`` inside the cpu scan kernel (:func:`sepmamba_sb.ops.use_fusion`).

    Unprojected inputs go through ``in_proj`` time-major: as one GEMM whose output ``x`` and ``z`` are
    views of where :func:`_one_gemm` says so, else as two (see :func:`mamba_mixer`). Without
    autograd, the CPU kernels write the conv's output over ``x`` when it is ours (not the caller's
    ``xz``) and the scan's over the conv's: each saves allocating the block's largest tensors afresh."""
    if projected:
        x, z = inputs.chunk(2, dim=1)
    elif _one_gemm(inputs, w):
        x, z = linear_rows(inputs, w.in_proj_weight, w.in_proj_bias).transpose(1, 2).chunk(2, dim=1)
    else:
        biases = (None, None) if w.in_proj_bias is None else w.in_proj_bias.chunk(2, dim=-1)
        x, z = (linear_rows(inputs, weight, bias).transpose(1, 2)
                for weight, bias in zip(w.in_proj_weight.chunk(2, dim=-2), biases, strict=True))
    d_state, dt_rank = w.A.shape[-1], w.delta_proj_weight.shape[-1]
    conv_weight = w.conv1d_weight.flatten(-2)  # (.., d_inner, 1, W) -> (.., d_inner, W)
    if state is None:
        x = causal_conv1d(x, conv_weight, w.conv1d_bias, "silu", overwrite_input=not projected, fused=fusion)
    else:
        x, state.conv = causal_conv1d(x, conv_weight, w.conv1d_bias, "silu", state.conv, True,
                                      overwrite_input=not projected, fused=fusion)
    x_dbl = linear_rows(x.transpose(1, 2), w.x_proj_weight)  # (batch, len, dt_rank + 2 * d_state)
    dt, B, C = (t.transpose(1, 2) for t in torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1))
    # dt_proj (and its bias) run inside the scan: on the cpu backend its output is never stored
    scan_args = (name, x, dt, w.A, B, C, w.D, z, w.delta_bias, True)
    scan_kwargs = {"delta_proj_weight": w.delta_proj_weight, "overwrite_u": True, "fused": fusion}
    if state is None:
        y = run_scan(*scan_args, False, **scan_kwargs)
    else:
        y, state.ssm = run_scan(*scan_args, True, state.ssm, **scan_kwargs)
    return linear_rows(y.transpose(1, 2), w.out_proj_weight, w.out_proj_bias)
