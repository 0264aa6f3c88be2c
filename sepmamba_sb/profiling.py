"""Cost of a separator: parameters, MACs per second of audio, forward time, peak memory.

Works for any module mapping mixtures [B, T] to estimates (SepMamba, or a SpeechBrain
encoder/masknet/decoder triple wrapped in :class:`sepmamba_sb.lobes.MaskingSeparator`).

MACs (multiply-accumulates) are counted on one forward pass on the CPU (a copy of the model if it
lives elsewhere, so counts do not depend on which kernels a device has):

- every matmul, linear layer, convolution, transposed convolution and attention product, by
  ``torch.utils.flop_counter.FlopCounterMode`` (its FLOPs / 2); this includes each Mamba block's
  in_proj, depthwise conv, x_proj, dt_proj and out_proj;
- the selective scan, which that counter cannot see inside a kernel, from every scan the pass runs
  (:func:`sepmamba_sb.ops.observe_scans`): ``B * L * d_inner * (4 * d_state + 3)`` per call. Per channel,
  state and step: ``delta*A``, ``B*(delta*u)``, ``decay*h + input`` and ``C*h`` (4); per channel and
  step: ``delta*u``, ``D*u`` and the ``silu(z)`` gate (3). Exponentials, softplus and SiLU
  evaluations, norms, activations, additions and biases are not counted, as is usual for MACs;
- ``nn.LSTM`` layers, whose fused CPU kernel the counter cannot see either (checked once), by a hook:
  ``B * T * directions * 4 * H * (I + H)`` per layer (I: the layer's input size, H: hidden size).

Not counted: PyTorch's own ``nn.MultiheadAttention`` on its fused paths (its inference fast path,
and the attention products of ``need_weights=False``), which the counter cannot see. SpeechBrain's
attention, as in SepFormer, takes the explicit path and is counted in full.

Peak memory is the growth of the peak over what was in use when the measurement started:
``torch.cuda.max_memory_allocated`` on CUDA, the peak resident set (VmHWM, Linux only) on CPU.
"""

from __future__ import annotations

import copy
import ctypes
import ctypes.util
import datetime
import functools
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from sepmamba_sb.ops import cpu_capability, observe_scans, use_fusion


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (of those requiring grad with ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def scan_macs(batch: int, length: int, d_inner: int, d_state: int) -> int:
    """MACs of one selective scan (see the module docstring for the formula)."""
    return batch * length * d_inner * (4 * d_state + 3)


@dataclass
class MacCount:
    """MACs of one forward pass on ``num_samples`` samples (batch 1)."""

    total: int
    scan: int
    num_samples: int

    def per_second(self, sample_rate: int) -> float:
        """GMAC per second of audio at ``sample_rate``."""
        return self.total / 1e9 * sample_rate / self.num_samples


def lstm_macs(module: nn.LSTM, batch: int, steps: int) -> int:
    """MACs of an ``nn.LSTM`` call (gates' input and recurrent products; see the module docstring)."""
    directions = 2 if module.bidirectional else 1
    total = 0
    for layer in range(module.num_layers):
        inputs = module.input_size if layer == 0 else module.hidden_size * directions
        total += batch * steps * directions * 4 * module.hidden_size * (inputs + module.hidden_size)
    return total


@functools.cache
def _lstm_counted_by_flop_counter() -> bool:
    lstm = nn.LSTM(4, 4, batch_first=True)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        lstm(torch.zeros(1, 2, 4))
    return counter.get_total_flops() > 0


def count_macs(model: nn.Module, num_samples: int) -> MacCount:
    """Count the MACs of one forward pass of ``model`` on a batch of one mixture of ``num_samples``.

    Parameters
    ----------
    model : nn.Module
        Maps [1, T] mixtures to estimates.
    num_samples : int
        T.

    Returns
    -------
    MacCount
    """
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()
    scans, recurrent = [], []

    def on_scan(shape, nstate):
        batch, dim, length = shape
        scans.append(scan_macs(batch, length, dim, nstate))

    def on_lstm(module, args, _output):
        data = args[0]
        batch, steps = (data.shape[0], data.shape[1]) if module.batch_first else (data.shape[1], data.shape[0])
        recurrent.append(lstm_macs(module, batch, steps))

    hooks = []
    if not _lstm_counted_by_flop_counter():
        hooks += [m.register_forward_hook(on_lstm) for m in model.modules() if isinstance(m, nn.LSTM)]
    counter = FlopCounterMode(display=False)
    try:  # unfused: the Mamba blocks' conv and dt_proj run as PyTorch operators the counter sees
        with torch.no_grad(), use_fusion(False), observe_scans(on_scan), counter:
            model(torch.randn(1, num_samples))  # values do not change the count; noise avoids degenerate paths
    finally:
        for hook in hooks:
            hook.remove()
    scan = sum(scans)
    return MacCount(total=counter.get_total_flops() // 2 + scan + sum(recurrent), scan=scan, num_samples=num_samples)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CUDA_WARMUP_SECONDS = 1.0


def time_call(fn: Callable[[], object], device: str | torch.device, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in milliseconds over ``repeats`` runs after ``warmup`` runs.

    On CUDA the warm-up also lasts at least ``CUDA_WARMUP_SECONDS``: an idle GPU's clocks take a
    moment to ramp up, and a single warm-up pass can time a model well above its steady state.
    """
    device = torch.device(device)
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    _sync(device)
    while device.type == "cuda" and time.perf_counter() - start < CUDA_WARMUP_SECONDS:
        fn()
        _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def time_forward(model: nn.Module, num_samples: int, batch: int = 1, repeats: int = 5, warmup: int = 1) -> float:
    """Median inference forward time (ms, ``torch.no_grad``) on random mixtures [batch, num_samples],
    on the model's device."""
    device = next(model.parameters()).device
    mix = torch.randn(batch, num_samples, device=device)

    def forward():
        with torch.no_grad():
            model(mix)

    return time_call(forward, device, repeats, warmup)


def resident_bytes() -> int:
    """This process's resident set now (Linux: ``VmRSS`` of ``/proc/self/status``)."""
    return _status_kb("VmRSS") * 1024


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} missing from /proc/self/status")


_malloc_fixed = False


def track_memory_exactly() -> None:
    """Make the resident set follow live CPU tensors (Linux/glibc; a no-op elsewhere).

    glibc raises its mmap threshold as large buffers are freed and then keeps freed memory for
    reuse, so a later peak may not show in the resident set. This fixes the threshold at 64 KiB:
    every larger allocation is mmapped and returned to the system at free. Call it at the start of a
    process whose memory :func:`peak_memory` will measure, before large tensors are made. It lasts
    for the rest of the process and slows allocation-heavy work (every large buffer is then mapped
    and unmapped anew), so use a process of its own for measuring.
    """
    global _malloc_fixed
    if not _malloc_fixed and sys.platform.startswith("linux"):
        M_MMAP_THRESHOLD = -3
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(M_MMAP_THRESHOLD, 64 * 1024)
        _malloc_fixed = True


def keep_freed_memory() -> None:
    """Let glibc keep freed memory for reuse (Linux/glibc; a no-op elsewhere): the opposite of
    :func:`track_memory_exactly`.

    By default glibc maps buffers above its mmap threshold afresh and returns them at free, so every
    pass of a model faults in the pages of its large activations again. This raises the threshold to
    its largest value (32 MiB) and stops returning the heap's top: later passes reuse the same pages.
    The resident set then stays at its peak. It lasts for the rest of the process.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
        libc.mallopt(M_MMAP_THRESHOLD, 32 * 2**20)
        libc.mallopt(M_TRIM_THRESHOLD, 2**30)
        libc.mallopt(M_TOP_PAD, 256 * 2**20)


def peak_memory(fn: Callable[[], object], device: torch.device) -> int | None:
    """Peak extra memory (bytes) while ``fn()`` runs, over what was in use when it started.

    CUDA: ``max_memory_allocated`` growth. CPU: growth of the peak resident set over the resident set
    at the start (Linux; the peak is reset through ``/proc/self/clear_refs``). Without
    :func:`track_memory_exactly` called first in the process, memory that malloc reuses from earlier
    frees does not show, so CPU numbers can be too low. Allocations made once per process (libraries,
    thread pools) count: run ``fn`` once first.

    Returns
    -------
    int or None
        Bytes, or ``None`` on a CPU without /proc (not Linux).
    """
    device = torch.device(device)
    if device.type == "cuda":
        _sync(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        _sync(device)
        return torch.cuda.max_memory_allocated(device) - base
    if not sys.platform.startswith("linux"):
        return None
    base = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current resident set
    fn()
    return (_status_kb("VmHWM") - base) * 1024


def machine_description(device: str | torch.device = "cpu") -> str:
    """One line naming the hardware, threads, torch version and date, for result tables."""
    device = torch.device(device)
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        model = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as cpuinfo:
                model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        where = f"{model}, {os.cpu_count()} cores, ISA {cpu_capability()}"
    return f"{where}; {torch.get_num_threads()} threads; torch {torch.__version__}; {datetime.date.today().isoformat()}"

