"""The Mamba-1 mixer after its input projection, as mamba-ssm's ``mamba_inner_fn``, on every backend.

Two paths side by side: mamba-ssm's fused ``mamba_inner_fn`` (one CUDA kernel chain, with
causal-conv1d) where the ``mamba_ssm`` backend is chosen and causal-conv1d imported, and the readable
one everywhere else: causal conv + SiLU, ``x_proj``, ``dt_proj``, the selective scan, ``out_proj``.
The backend is resolved once, here, for both the conv and the scan. Given a :class:`MambaState`, the
readable path continues a stream: the conv starts from the previous chunk's last inputs and the scan
from its last state, and the state is updated for the next chunk.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from sepmamba_sb.ops.causal_conv import causal_conv1d
from sepmamba_sb.ops.dispatch import resolve_backend, run_scan
from sepmamba_sb.ops.mamba_ssm_kernels import mamba_kernels


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
        ``in_proj`` output, (batch, 2 * d_inner, len): ``x`` then the gate ``z``.
    conv1d_weight : torch.Tensor
        Depthwise causal conv, (d_inner, 1, W) as ``nn.Conv1d`` stores it.
    conv1d_bias : torch.Tensor, optional
        (d_inner,).
    x_proj_weight : torch.Tensor
        (dt_rank + 2 * d_state, d_inner): ``dt``, ``B`` and ``C`` from ``x``.
    delta_proj_weight : torch.Tensor
        ``dt_proj``'s weight, (d_inner, dt_rank).
    out_proj_weight : torch.Tensor
        (d_model, d_inner).
    out_proj_bias : torch.Tensor, optional
        (d_model,).
    A : torch.Tensor
        ``-exp(A_log)``, (d_inner, d_state), float32.
    D : torch.Tensor, optional
        Skip, (d_inner,).
    delta_bias : torch.Tensor, optional
        ``dt_proj``'s bias, (d_inner,).
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
    kernels = mamba_kernels() if name == "mamba_ssm" and fused else None
    if kernels is not None and kernels.causal_conv1d_fn is not None and state is None:
        return kernels.mamba_inner_fn(
            xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight, out_proj_bias,
            A, None, None, None if D is None else D.float(),
            delta_bias=None if delta_bias is None else delta_bias.float(), delta_softplus=True,
        )
    d_state, dt_rank = A.shape[1], delta_proj_weight.shape[1]
    x, z = xz.chunk(2, dim=1)
    if state is None:
        x = causal_conv1d(x, conv1d_weight.squeeze(1), conv1d_bias, "silu")
    else:
        x, state.conv = causal_conv1d(x, conv1d_weight.squeeze(1), conv1d_bias, "silu", state.conv, True)
    x_dbl = F.linear(x.transpose(1, 2), x_proj_weight)  # (batch, len, dt_rank + 2 * d_state)
    dt, B, C = torch.split(x_dbl, [dt_rank, d_state, d_state], dim=-1)
    dt = linear_channel_major(delta_proj_weight, dt)  # its bias is added inside the scan
    scan_args = (name, x, dt, A, B.transpose(1, 2), C.transpose(1, 2), D, z, delta_bias, True)
    if state is None:
        y = run_scan(*scan_args, False)
    else:
        y, state.ssm = run_scan(*scan_args, True, state.ssm)
    return F.linear(y.transpose(1, 2), out_proj_weight, out_proj_bias)
