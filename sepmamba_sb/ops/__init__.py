"""Selective scan and the Mamba mixer's kernels, on CUDA (mamba-ssm), CPU (C++) or anywhere (PyTorch).

The one place a backend is chosen (:func:`resolve_backend`; :func:`use_backend` for a block of code).
:func:`selective_scan` is the scan alone; :func:`mamba_mixer` the whole mixer and :func:`mamba_inner` the
mixer after its input projection, with mamba-ssm's fused path where it applies, or continuing a stream
from a :class:`MambaState`, with one set of weights or several (:class:`MixerWeights`, groups of batch
rows); :func:`available_backends` says what runs here; :func:`use_fusion` switches the package's fused
kernels off (for MAC counts and A/B profiles); :func:`observe_scans` reports the scans a block runs.
"""

from sepmamba_sb.ops.causal_conv import causal_conv1d
from sepmamba_sb.ops.cpu_kernel import cpu_capability
from sepmamba_sb.ops.dispatch import (
    BACKENDS,
    available_backends,
    backend_status,
    fusion_enabled,
    observe_scans,
    resolve_backend,
    selective_scan,
    use_backend,
    use_fusion,
)
from sepmamba_sb.ops.mamba_inner import (
    MambaState,
    MixerWeights,
    linear_channel_major,
    linear_rows,
    mamba_inner,
    mamba_mixer,
)

__all__ = ["BACKENDS", "MambaState", "MixerWeights", "available_backends", "backend_status", "causal_conv1d",
           "cpu_capability", "fusion_enabled", "linear_channel_major", "linear_rows", "mamba_inner", "mamba_mixer",
           "observe_scans", "resolve_backend", "selective_scan", "use_backend", "use_fusion"]
