"""The ``"mamba_ssm"`` backend: mamba-ssm's and causal-conv1d's fused CUDA kernels, when importable.

Both packages compile CUDA code and import it unguarded (``selective_scan_cuda``, triton,
``causal_conv1d_cuda``), so on a machine without those builds even ``import mamba_ssm`` fails. They
are imported lazily, once, and ANY exception at import means "absent"; the reason is kept for error
messages. Install them on a GPU machine with ``pip install --no-build-isolation -e .[cuda]``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

INSTALL_HINT = "pip install --no-build-isolation 'sepmamba_sb[cuda]' (needs nvcc and a CUDA GPU)"


@dataclass(frozen=True)
class MambaKernels:
    """What could be imported; a ``None`` function is absent and ``*_error`` says why."""

    selective_scan_fn: Callable | None
    mamba_inner_fn: Callable | None
    scan_error: str | None
    causal_conv1d_fn: Callable | None
    conv_error: str | None


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


@functools.cache
def mamba_kernels() -> MambaKernels:
    """Import mamba-ssm's selective scan and causal-conv1d's conv, once.

    Returns
    -------
    MambaKernels
        The functions that imported, and why the others did not.
    """
    scan_fn = inner_fn = conv_fn = None
    scan_error = conv_error = None
    try:
        from mamba_ssm.ops.selective_scan_interface import mamba_inner_fn, selective_scan_fn

        scan_fn, inner_fn = selective_scan_fn, mamba_inner_fn
    except Exception as exc:  # ImportError, missing selective_scan_cuda, broken triton: all "absent"
        scan_error = f"mamba_ssm could not be imported ({_describe(exc)})"
    try:
        from causal_conv1d import causal_conv1d_fn

        conv_fn = causal_conv1d_fn
    except Exception as exc:
        conv_error = f"causal_conv1d could not be imported ({_describe(exc)})"
    return MambaKernels(scan_fn, inner_fn, scan_error, conv_fn, conv_error)


def unavailable_reason() -> str | None:
    """Return why the mamba_ssm backend cannot run here, or ``None`` if it can."""
    if not torch.cuda.is_available():
        return "the mamba_ssm backend needs a CUDA GPU and none is available"
    error = mamba_kernels().scan_error
    return None if error is None else f"{error}; install it with {INSTALL_HINT}"
