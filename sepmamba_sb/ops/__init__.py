"""Selective scan and the Mamba block's causal conv, on CUDA (mamba-ssm), CPU (C++) or anywhere (PyTorch).

See :func:`selective_scan` and :func:`available_backends`.
"""

from sepmamba_sb.ops.causal_conv import causal_conv1d
from sepmamba_sb.ops.dispatch import (
    BACKENDS,
    available_backends,
    backend_status,
    resolve_backend,
    selective_scan,
)

__all__ = ["BACKENDS", "available_backends", "backend_status", "causal_conv1d", "resolve_backend", "selective_scan"]
