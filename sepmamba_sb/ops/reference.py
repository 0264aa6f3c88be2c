"""The ``"reference"`` selective-scan backend: a pure-PyTorch, time-major loop.

It runs on any device and dtype and is differentiated by autograd. It is the fallback on CUDA when
mamba-ssm is absent and on CPU when the C++ kernel cannot be built. One Python step per time step
makes it slow on long inputs (``benchmarks/scan_speed.py`` measures it beside the kernels), and
autograd keeps every step's state, so its memory grows as batch * dim * nstate * len.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

LONG_INPUT = 2048
_warned = False


def _warn_long(length: int) -> None:
    global _warned
    if length >= LONG_INPUT and not _warned:
        _warned = True
        warnings.warn(
            f"selective_scan: using the slow pure-PyTorch reference backend on a sequence of {length} "
            "steps (install mamba-ssm on CUDA, or a C++ compiler on CPU, for the fast kernels; "
            "sepmamba_sb.ops.available_backends() says what works here)",
            RuntimeWarning,
            stacklevel=3,
        )


def selective_scan_reference(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                             return_last_state=False, initial_state=None):
    """Selective scan by a time-major loop; arguments as :func:`sepmamba_sb.ops.selective_scan`.

    ``A`` may also be (batch, dim, nstate), and ``D`` and ``delta_bias`` (batch, dim): parameters per
    batch row (grouped parameters, expanded by the dispatcher). Computes in float32 (float64 for float64
    inputs) and returns ``u``'s dtype.
    """
    _warn_long(u.shape[-1])
    in_dtype = u.dtype
    ctype = torch.float64 if in_dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (t.to(ctype) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(ctype).unsqueeze(-1)
    if delta_softplus:
        delta = F.softplus(delta)
    # time-major (L, batch, dim, nstate) decays and inputs, so each step is one addcmul on a view
    decay = torch.exp(delta.permute(2, 0, 1).unsqueeze(-1) * A)
    drive = (delta * u).permute(2, 0, 1).unsqueeze(-1) * B.permute(2, 0, 1).unsqueeze(2)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[-1]) if initial_state is None else initial_state.to(ctype)
    states = []
    for decay_t, drive_t in zip(decay.unbind(0), drive.unbind(0), strict=True):
        h = torch.addcmul(drive_t, decay_t, h)
        states.append(h)
    # elementwise product and sum rather than einsum: no matmul, so MAC counters that see matmuls
    # (torch.utils.flop_counter) count this backend exactly like the opaque kernels
    y = (torch.stack(states) * C.permute(2, 0, 1).unsqueeze(2)).sum(-1).permute(1, 2, 0)
    if D is not None:
        y = y + D.to(ctype).unsqueeze(-1) * u
    if z is not None:
        y = y * F.silu(z.to(ctype))
    out = y.to(in_dtype)
    return (out, h) if return_last_state else out
