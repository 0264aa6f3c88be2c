"""Selective scan and the Mamba mixer's kernels, on CUDA (mamba-ssm), CPU (C++) or anywhere (PyTorch).

The one place a backend is chosen (:func:`resolve_backend`; :func:`use_backend` for a block of code).
:func:`selective_scan` is the scan alone; :func:`mamba_inner` the whole mixer after its input
projection, with mamba-ssm's fused path where it applies, or continuing a stream from a
:class:`MambaState`; :func:`available_backends` says what runs here.
"""

from sepmamba_sb.ops.causal_conv import causal_conv1d
from sepmamba_sb.ops.cpu_kernel import cpu_capability
from sepmamba_sb.ops.dispatch import (
    BACKENDS,
    available_backends,
    backend_status,
    resolve_backend,
    selective_scan,
    use_backend,
)
from sepmamba_sb.ops.mamba_inner import MambaState, linear_channel_major, mamba_inner

__all__ = ["BACKENDS", "MambaState", "available_backends", "backend_status", "causal_conv1d", "cpu_capability",
           "linear_channel_major", "mamba_inner", "resolve_backend", "selective_scan", "use_backend"]
