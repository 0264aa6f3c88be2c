"""One selective-scan entry point over three backends.

``selective_scan`` has mamba-ssm's ``selective_scan_fn`` signature and semantics (real ``A``,
input-dependent ``B`` and ``C``), plus a ``backend`` argument:

- ``"mamba_ssm"``: mamba-ssm's fused CUDA kernel (CUDA tensors, mamba-ssm installed);
- ``"cpu"``: our C++ kernel (CPU tensors, a C++ compiler on first use);
- ``"reference"``: a pure-PyTorch loop (any device; slow on long inputs).

The backend is chosen here and nowhere else (:func:`resolve_backend`), first of:

1. an explicit ``backend`` argument (``selective_scan``, ``mamba_inner``, a ``Mamba`` module's own
   ``backend``);
2. the innermost ``with use_backend(name):`` block;
3. the environment variable ``SEPMAMBA_SCAN_BACKEND``;
4. for the tensors' device, the first that works here (CUDA: mamba_ssm, then reference; CPU: cpu,
   then reference, with a warning saying why).

Asking for a backend that cannot run raises a ``RuntimeError`` that says what is missing.

:func:`use_fusion` switches this package's own fusions off for a block of code (on by default): the
C++ depthwise conv, ``dt_proj`` inside the cpu scan kernel, and several sets of weights (a
bidirectional layer's two directions) run as one batch. Off, every matrix product and convolution is
a PyTorch operator (what MAC counters see), and a profile shows what the fusions save. The Mamba
mixer reads the switch (:func:`sepmamba_sb.ops.mamba_mixer`) and tells the conv and the scan.

:func:`observe_scans` reports every scan a block of code runs (what MAC counters cannot see inside a
kernel).
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Callable, Iterator

import torch

from sepmamba_sb.ops import cpu_kernel, mamba_ssm_kernels
from sepmamba_sb.ops.reference import selective_scan_reference

BACKENDS = ("mamba_ssm", "cpu", "reference")
ENV_VAR = "SEPMAMBA_SCAN_BACKEND"
_fallback_warned: set[str] = set()
_scoped_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar("sepmamba_scan_backend", default=None)
_fusion: contextvars.ContextVar[bool] = contextvars.ContextVar("sepmamba_fusion", default=True)
_observers: contextvars.ContextVar[tuple] = contextvars.ContextVar("sepmamba_scan_observers", default=())


def _check_name(name: str, origin: str) -> None:
    if name not in BACKENDS:
        raise ValueError(f"unknown selective-scan backend {name!r} ({origin}); choose from {BACKENDS}")


@contextlib.contextmanager
def use_backend(name: str | None) -> Iterator[None]:
    """Run the selective scans inside the block with backend ``name`` (``None``: the automatic choice).

    Overrides ``$SEPMAMBA_SCAN_BACKEND``, not a backend given explicitly as an argument. Nests, and
    holds per thread and per asyncio task.

    Example
    -------
    >>> from sepmamba_sb.nnet import Mamba
    >>> with use_backend("reference"):
    ...     y = Mamba(d_model=16)(torch.randn(1, 20, 16))
    """
    if name is not None:
        _check_name(name, "use_backend")
    token = _scoped_backend.set(name)
    try:
        yield
    finally:
        _scoped_backend.reset(token)


@contextlib.contextmanager
def use_fusion(enabled: bool) -> Iterator[None]:
    """Switch this package's fused kernels on or off inside the block (see the module docstring).

    Nests, and holds per thread and per asyncio task. Outputs agree either way up to float round-off.
    """
    token = _fusion.set(bool(enabled))
    try:
        yield
    finally:
        _fusion.reset(token)


def fusion_enabled() -> bool:
    """Whether the fused kernels run here (:func:`use_fusion`)."""
    return _fusion.get()


@contextlib.contextmanager
def observe_scans(callback: Callable[[tuple[int, int, int], int], None]) -> Iterator[None]:
    """Call ``callback(u_shape, nstate)`` for every selective scan run inside the block, on any backend:
    ``u_shape`` is (batch, dim, len), the batch counting every group of weights.

    Example
    -------
    >>> from sepmamba_sb.nnet import Mamba
    >>> seen = []
    >>> with observe_scans(lambda shape, nstate: seen.append((shape, nstate))):
    ...     y = Mamba(d_model=16)(torch.randn(2, 20, 16))
    >>> seen
    [((2, 32, 20), 16)]
    """
    token = _observers.set((*_observers.get(), callback))
    try:
        yield
    finally:
        _observers.reset(token)


def _unavailable_reason(name: str, device: torch.device | None = None) -> str | None:
    """Why backend ``name`` cannot run (on ``device``, if given), or ``None`` if it can."""
    if name == "reference":
        return None
    if name == "cpu":
        if device is not None and device.type != "cpu":
            return f"the cpu backend needs CPU tensors, got tensors on {device}"
        return cpu_kernel.build_error()
    if device is not None and device.type != "cuda":
        return f"the mamba_ssm backend needs CUDA tensors, got tensors on {device}"
    return mamba_ssm_kernels.unavailable_reason()


def backend_status() -> dict[str, str | None]:
    """Say, for each backend, why it cannot run on this machine (``None``: it can).

    Checking ``"cpu"`` builds the C++ kernel if it is not built yet (about a minute, once).

    Returns
    -------
    dict
        ``{"mamba_ssm": reason or None, "cpu": ..., "reference": None}``.
    """
    return {name: _unavailable_reason(name) for name in BACKENDS}


def available_backends() -> list[str]:
    """List the backends that work on this machine, fastest first.

    Returns
    -------
    list of str
        A subset of ``["mamba_ssm", "cpu", "reference"]``.
    """
    return [name for name, reason in backend_status().items() if reason is None]


def resolve_backend(backend: str | None, device: torch.device) -> str:
    """Name the backend that ``selective_scan`` will use for tensors on ``device``.

    Parameters
    ----------
    backend : str or None
        An explicit choice, or ``None`` for the :func:`use_backend` block, else
        ``$SEPMAMBA_SCAN_BACKEND``, else the fastest that works.
    device : torch.device
        Where the tensors are.

    Returns
    -------
    str
        One of ``BACKENDS``.

    Raises
    ------
    ValueError
        For an unknown backend name.
    RuntimeError
        If the requested backend cannot run here, saying what is missing.
    """
    requested, origin = backend, "backend argument"
    if requested is None and _scoped_backend.get() is not None:
        requested, origin = _scoped_backend.get(), "use_backend"
    if requested is None and os.environ.get(ENV_VAR):
        requested, origin = os.environ[ENV_VAR], f"${ENV_VAR}"
    if requested is not None:
        _check_name(requested, origin)
        reason = _unavailable_reason(requested, device)
        if reason is not None:
            raise RuntimeError(f"selective-scan backend {requested!r} ({origin}) is unavailable: {reason}")
        return requested
    preferred = "mamba_ssm" if device.type == "cuda" else "cpu"
    reason = _unavailable_reason(preferred, device) if device.type in ("cuda", "cpu") else "no kernel"
    if reason is None:
        return preferred
    if device.type in ("cuda", "cpu") and preferred not in _fallback_warned:
        _fallback_warned.add(preferred)
        warnings.warn(
            f"selective_scan: falling back to the pure-PyTorch reference backend on {device.type} "
            f"because {reason}",
            RuntimeWarning,
            stacklevel=3,
        )
    return "reference"


def _check(u, delta, A, B, C, D, z, delta_bias, initial_state=None) -> None:
    """Raise a ValueError naming the argument whose shape, dtype or device is wrong."""
    if u.dim() != 3:
        raise ValueError(f"selective_scan: u must be (batch, dim, len), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    if A.dim() not in (2, 3) or A.shape[-2] != dim:
        raise ValueError(f"selective_scan: A must be (dim={dim}, nstate) or (groups, dim={dim}, nstate), "
                         f"got shape {tuple(A.shape)}")
    if A.is_complex():
        raise ValueError("selective_scan: complex A is not supported (Mamba-1 uses real A)")
    groups = A.shape[:-2]
    if groups and batch % groups[0]:
        raise ValueError(f"selective_scan: the batch of u ({batch}) must be a multiple of A's groups ({groups[0]})")
    nstate = A.shape[-1]
    expected = {
        "delta": (delta, (batch, dim, length)),
        "B": (B, (batch, nstate, length)),
        "C": (C, (batch, nstate, length)),
        "D": (D, (*groups, dim)),
        "z": (z, (batch, dim, length)),
        "delta_bias": (delta_bias, (*groups, dim)),
        "initial_state": (initial_state, (batch, dim, nstate)),
    }
    for name, (tensor, shape) in expected.items():
        if tensor is None:
            continue
        if tuple(tensor.shape) != shape:
            raise ValueError(
                f"selective_scan: {name} must have shape {shape} (u is {tuple(u.shape)}, A is "
                f"{tuple(A.shape)}), got {tuple(tensor.shape)}"
            )
        if tensor.device != u.device:
            raise ValueError(f"selective_scan: {name} is on {tensor.device} but u is on {u.device}")
        if not tensor.is_floating_point():
            raise ValueError(f"selective_scan: {name} must be floating point, got {tensor.dtype}")


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                   return_last_state=False, backend=None, initial_state=None):
    """Mamba-1 selective scan, as mamba-ssm's ``selective_scan_fn``; differentiable.

    ``delta' = softplus(delta + delta_bias)`` (each part optional), then for every step t
    ``h_t = exp(delta'_t A) h_{t-1} + delta'_t B_t u_t``, ``y_t = C_t . h_t + D u_t`` and, with ``z``,
    ``out_t = y_t * silu(z_t)``; ``h_{-1} = initial_state`` (zeros by default). Computed in float32
    (float64 for float64 inputs).

    ``initial_state`` (not in mamba-ssm) continues a scan: scanning ``[0, t)`` with
    ``return_last_state=True``, then ``[t, len)`` from that state, equals one scan of ``[0, len)``. It
    is differentiable on the cpu and reference backends; mamba-ssm's CUDA scan takes no initial state, so
    on the ``mamba_ssm`` backend a scan given one runs on the reference backend (on the GPU).

    Parameters
    ----------
    u : torch.Tensor
        Input, (batch, dim, len).
    delta : torch.Tensor
        Step sizes before bias and softplus, (batch, dim, len).
    A : torch.Tensor
        State matrix (diagonal per channel), (dim, nstate), real. Not in mamba-ssm: (groups, dim,
        nstate) gives batch row b the parameters of group ``b // (batch // groups)`` (``D`` and
        ``delta_bias`` are then (groups, dim)): several sets of weights in one call, such as the two
        directions of a bidirectional layer.
    B, C : torch.Tensor
        Input and output projections, (batch, nstate, len).
    D : torch.Tensor, optional
        Skip connection, (dim,).
    z : torch.Tensor, optional
        Gate, (batch, dim, len).
    delta_bias : torch.Tensor, optional
        Added to ``delta``, (dim,).
    delta_softplus : bool
        Apply softplus (threshold 20, as mamba-ssm) to ``delta + delta_bias``.
    return_last_state : bool
        Also return the final state (batch, dim, nstate), not differentiable.
    backend : str, optional
        ``"mamba_ssm"``, ``"cpu"`` or ``"reference"``; ``None`` chooses (see the module docstring).
    initial_state : torch.Tensor, optional
        The state before the first step, (batch, dim, nstate).

    Returns
    -------
    torch.Tensor or tuple of torch.Tensor
        ``out`` (batch, dim, len) in ``u``'s dtype; with ``return_last_state``, ``(out, last_state)``.
    """
    _check(u, delta, A, B, C, D, z, delta_bias, initial_state)
    return run_scan(resolve_backend(backend, u.device), u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                    return_last_state, initial_state)


def run_scan(name, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state=None,
             delta_proj_weight=None, overwrite_u=False, fused=True):
    """:func:`selective_scan` with the backend already resolved and the inputs already checked
    (for the ops of this package that resolve once for several kernels).

    Given ``delta_proj_weight`` (dim, R) or (groups, dim, R), ``delta`` is the low-rank (batch, R, len)
    input of the step-size projection: with ``fused``, the cpu kernel applies it per tile (its (batch,
    dim, len) output is never stored); the other backends, and the cpu one without ``fused``, before the
    scan. ``overwrite_u``: ``u`` is not needed afterwards, and the cpu kernel without autograd writes its
    output over it (the others ignore this).
    """
    if name == "mamba_ssm" and initial_state is not None:
        name = "reference"  # mamba-ssm's selective_scan_fn has no initial state
    if u.dtype == torch.bfloat16 and name == "reference":  # bf16 activations (sepmamba_sb.precision): in float32
        u, delta, B, C, z = (None if t is None else t.float() for t in (u, delta, B, C, z))
        out = run_scan(name, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, initial_state,
                       delta_proj_weight, overwrite_u, fused)
        return (out[0].bfloat16(), out[1]) if return_last_state else out.bfloat16()
    for observe in _observers.get():
        observe(tuple(u.shape), A.shape[-1])
    with torch.profiler.record_function(f"sepmamba_sb::selective_scan ({name})"):  # named in profiles
        if delta_proj_weight is not None and not (name == "cpu" and fused):
            delta, delta_proj_weight = _project(delta_proj_weight, delta.to(delta_proj_weight.dtype)), None
        if name == "cpu":
            return cpu_kernel.selective_scan_cpu(u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                                                 return_last_state, initial_state, delta_proj_weight, overwrite_u)
        if name == "reference":
            if A.dim() == 3:  # grouped: per-row parameters, which the reference loop broadcasts
                rows = u.shape[0] // A.shape[0]
                A = A.repeat_interleave(rows, 0)
                D = None if D is None else D.repeat_interleave(rows, 0)
                delta_bias = None if delta_bias is None else delta_bias.repeat_interleave(rows, 0)
            return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                                            initial_state)
        scan = mamba_ssm_kernels.mamba_kernels().selective_scan_fn
        if A.dim() == 2:
            return scan(u, delta, A.float(), B, C, None if D is None else D.float(), z,
                        None if delta_bias is None else delta_bias.float(), delta_softplus, return_last_state)
        # grouped: mamba-ssm's parameters are per channel, so one call per group
        groups = A.shape[0]
        rows = [t.chunk(groups) if t is not None else [None] * groups for t in (u, delta, B, C, z)]
        outs = [scan(ug, dg, A[g].float(), Bg, Cg, None if D is None else D[g].float(), zg,
                     None if delta_bias is None else delta_bias[g].float(), delta_softplus, return_last_state)
                for g, (ug, dg, Bg, Cg, zg) in enumerate(zip(*rows, strict=True))]
        if not return_last_state:
            return torch.cat(outs)
        return torch.cat([o for o, _ in outs]), torch.cat([h for _, h in outs])


def _project(weight: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """``weight @ low`` per batch row: weight (dim, R) or (groups, dim, R), low (batch, R, len) -> (batch, dim, len)."""
    if weight.dim() == 2:
        return torch.matmul(weight, low)
    groups = weight.shape[0]
    out = torch.matmul(weight.unsqueeze(1), low.view(groups, low.shape[0] // groups, *low.shape[1:]))
    return out.reshape(low.shape[0], weight.shape[1], low.shape[-1])
