"""The ``"cpu"`` selective-scan backend: our C++ kernel, compiled once on first use.

The kernel (``csrc/selective_scan_cpu.cpp``) is built with ``torch.utils.cpp_extension.load`` for the
instruction set PyTorch itself dispatches to on this machine (AVX-512, AVX2 or the portable default),
and cached by PyTorch under ``$TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``): the first
call in a fresh environment compiles for about a minute, later processes load the cached library in
well under a second. It needs a C++ compiler and ninja (a dependency of this package); when the build
fails, :func:`build_error` says why and the dispatcher falls back to the reference backend.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

_SOURCE = Path(__file__).with_name("csrc") / "selective_scan_cpu.cpp"

# Compiler flags per ATen CPU capability, as ATen compiles its own kernels for each.
_ISA_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma", "-DCPU_CAPABILITY_AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2"],
}

# at::parallel_for is inline and runs serially unless compiled with OpenMP. The extension links
# libgomp.so.1, which resolves to the copy PyTorch has already loaded, so both share one thread pool
# and torch.set_num_threads applies to the kernel.
_OPENMP = ["-fopenmp"] if sys.platform.startswith("linux") else []

_lock = threading.Lock()
_module = None
_error: str | None = None


def cpu_capability() -> str:
    """Return the instruction set the kernel is built for: ``"AVX512"``, ``"AVX2"`` or ``"DEFAULT"``.

    It is the one PyTorch dispatches its own CPU kernels to (``ATEN_CPU_CAPABILITY`` lowers it).
    """
    cap = torch.backends.cpu.get_cpu_capability()
    return cap if cap in _ISA_FLAGS else "DEFAULT"


def _ninja_on_path() -> None:
    """Make the ``ninja`` installed beside this Python visible to PyTorch's extension builder.

    A virtual environment used without activation has its ``bin`` folder off ``PATH``.
    """
    if shutil.which("ninja"):
        return
    candidates = [Path(sys.executable).parent]
    try:
        import ninja

        candidates.insert(0, Path(ninja.BIN_DIR))
    except (ImportError, AttributeError):
        pass
    for folder in candidates:
        if (folder / "ninja").exists():
            os.environ["PATH"] = f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"
            return


def _import_cpp_extension():
    """Import torch.utils.cpp_extension without its import-time 'No CUDA runtime is found' warning,
    which is irrelevant to a C++-only build."""
    cpp_logger = logging.getLogger("torch.utils.cpp_extension")
    level = cpp_logger.level
    cpp_logger.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension
    finally:
        cpp_logger.setLevel(level)
    return cpp_extension


def load():
    """Build (first time) and import the C++ extension.

    Returns
    -------
    module
        The extension, with ``forward``, ``backward`` and ``chunk`` (time steps per checkpoint).

    Raises
    ------
    RuntimeError
        If the kernel cannot be built here; the message carries the compiler's complaint.
    """
    global _module, _error
    with _lock:
        if _module is not None:
            return _module
        if _error is not None:
            raise RuntimeError(_error)
        cpp_extension = _import_cpp_extension()
        cap = cpu_capability()
        name = f"sepmamba_scan_cpu_{cap.lower()}"
        flags = ["-O3", f"-DCPU_CAPABILITY=sepmamba_{cap.lower()}", *_ISA_FLAGS.get(cap, [])]
        _ninja_on_path()
        start = time.perf_counter()
        # loading a cached build takes well under a second; say what is happening if it does not
        notice = threading.Timer(3.0, logger.warning, args=(
            "compiling the C++ selective-scan kernel for %s (first use in this environment, about a "
            "minute; cached afterwards)...", cap,
        ))
        notice.daemon = True
        notice.start()
        try:
            _module = cpp_extension.load(
                name=name,
                sources=[str(_SOURCE)],
                extra_cflags=flags + _OPENMP,
                extra_ldflags=_OPENMP,
                verbose=os.environ.get("SEPMAMBA_VERBOSE_BUILD", "0") == "1",
            )
        except Exception as exc:  # compiler missing, ninja missing, compile error: all mean "absent"
            detail = str(exc).strip().splitlines()
            tail = "\n".join(detail[-15:])
            _error = (
                f"the C++ CPU selective-scan kernel could not be built ({type(exc).__name__}); it needs "
                f"a C++ compiler and ninja. Set SEPMAMBA_VERBOSE_BUILD=1 to see the build. Last lines:\n{tail}"
            )
            raise RuntimeError(_error) from exc
        finally:
            notice.cancel()
        logger.info("C++ selective-scan kernel %s ready in %.1f s", name, time.perf_counter() - start)
        return _module


def build_error() -> str | None:
    """Return why the kernel is unavailable (building it if not tried yet), or ``None`` if it works."""
    try:
        load()
    except RuntimeError as exc:
        return str(exc)
    return None


def _dense(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Cast a (batch, dim, len) tensor to the compute dtype; copy only if neither time (last dim) nor
    channels (dim 1) are dense: the kernels read both layouts in place."""
    if t is None:
        return None
    t = t.to(dtype)
    return t if t.stride(-1) == 1 or t.stride(1) == 1 or t.shape[-1] == 1 or t.shape[1] == 1 else t.contiguous()


def _vector(t: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if t is None else t.to(dtype).contiguous()


def _forward(inputs, delta_softplus, save_checkpoints, return_last_state, in_place=False):
    """Cast ``inputs`` (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight) to the
    compute dtype and run the kernel.

    bfloat16 activations without checkpoints (inference) stay bfloat16: the kernel reads u, delta, B, C
    and z and writes its output in bfloat16, and computes in float32 (the other inputs' dtype).

    Returns the cast inputs and the kernel's (out, checkpoints, last_state).
    """
    ctype = torch.float64 if inputs[0].dtype == torch.float64 else torch.float32
    io = torch.bfloat16 if inputs[0].dtype == torch.bfloat16 and not save_checkpoints else ctype
    u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight = inputs
    args = (
        _dense(u, io),
        _dense(delta, io),
        _vector(A, ctype),
        B.to(io),  # any strides: the kernel reads one value of B and C per step and state
        C.to(io),
        _vector(D, ctype),
        _dense(z, io),
        _vector(delta_bias, ctype),
        _vector(initial_state, ctype),
        _vector(delta_proj_weight, ctype),
    )
    *kernel_args, weight = args
    return args, load().forward(*kernel_args, delta_softplus, save_checkpoints, return_last_state, weight, in_place)


def _grouped(t: torch.Tensor, groups: int) -> torch.Tensor:
    """(batch, n, len) -> (groups, batch // groups, n, len), a view."""
    return t.view(groups, t.shape[0] // groups, *t.shape[1:])


def project_grads(ddelta: torch.Tensor, low: torch.Tensor, weight: torch.Tensor):
    """Gradients of ``delta = weight @ low`` per batch row from ``ddelta``.

    ``ddelta`` (batch, dim, len), ``low`` (batch, R, len), ``weight`` (dim, R) or (groups, dim, R)
    -> ``(dlow (batch, R, len), dweight in weight's shape)``.
    """
    groups = weight.shape[0] if weight.dim() == 3 else 1
    w = weight.view(groups, *weight.shape[-2:])
    dd, lo = _grouped(ddelta, groups), _grouped(low, groups)
    dlow = torch.einsum("gdr,gbdl->gbrl", w, dd).reshape(low.shape)
    dweight = torch.einsum("gbdl,gbrl->gdr", dd, lo).reshape(weight.shape)
    return dlow, dweight


class _CpuSelectiveScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight, delta_softplus,
                return_last_state):
        inputs = (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight)
        args, (out, checkpoints, last_state) = _forward(inputs, delta_softplus, True, return_last_state)
        ctx.save_for_backward(*args, checkpoints)
        ctx.delta_softplus = delta_softplus
        ctx.in_dtypes = tuple(None if t is None else t.dtype for t in inputs)
        if last_state is None:
            last_state = out.new_empty(0)
        ctx.mark_non_differentiable(last_state)
        return out.to(u.dtype), last_state

    @staticmethod
    def backward(ctx, dout, _dlast_state):
        *args, checkpoints = ctx.saved_tensors
        *kernel_args, weight = args
        dout = _dense(dout, args[0].dtype)
        # (du, ddelta, dA, dB, dC, dD, dz, ddelta_bias, dinitial_state): the order of forward's inputs
        grads = list(load().backward(*kernel_args, ctx.delta_softplus, checkpoints, dout, weight))
        dweight = None
        if weight is not None:  # the kernel's ddelta is dL/d(weight @ delta)
            grads[1], dweight = project_grads(grads[1], kernel_args[1], weight)
        grads.append(dweight)
        grads = [None if g is None else g.to(dt) for g, dt in zip(grads, ctx.in_dtypes, strict=True)]
        return (*grads, None, None)


class _CpuCausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, silu):
        y, _ = load().conv_forward(x, weight, bias, None, silu, False)
        ctx.save_for_backward(x, weight, bias)
        ctx.silu = silu
        return y

    @staticmethod
    def backward(ctx, dy):
        x, weight, bias = ctx.saved_tensors
        dx, dweight, dbias = load().conv_backward(x, weight, bias, ctx.silu, _dense(dy, x.dtype))
        return dx, dweight, dbias if bias is not None else None, None


def causal_conv1d_cpu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                      initial_states: torch.Tensor | None, silu: bool,
                      in_place: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Depthwise causal conv with the C++ kernel, in ``x``'s dtype (float32 or float64; bfloat16 ``x`` without
    autograd is read and written as bfloat16 and computed in float32, its final states float32).

    Arguments as :func:`sepmamba_sb.ops.causal_conv1d` (``weight`` (dim, W) or grouped (groups, dim, W),
    ``bias`` (dim,) or (groups, dim)); ``x`` time dense or channels dense, the output in its layout.
    Differentiable without ``initial_states``; with them (a stream), forward only. ``in_place``: without
    autograd, the output overwrites ``x`` (no allocation: glibc hands large blocks back page by page).

    Returns
    -------
    tuple
        ``(y, final_states)``; ``final_states`` (batch, dim, W - 1) is ``None`` when differentiating.
    """
    dtype = torch.float32 if x.dtype == torch.bfloat16 else x.dtype
    x, weight, bias = _dense(x, x.dtype), weight.to(dtype).contiguous(), _vector(bias, dtype)
    if initial_states is None and torch.is_grad_enabled() and any(
            t is not None and t.requires_grad for t in (x, weight, bias)):
        return _CpuCausalConv.apply(x, weight, bias, silu), None
    y, final_states = load().conv_forward(x, weight, bias, _vector(initial_states, dtype), silu, in_place)
    return y, final_states


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, initial_state=None, delta_proj_weight=None, in_place=False):
    """Selective scan with the C++ kernel; arguments as :func:`sepmamba_sb.ops.selective_scan`, with
    grouped parameters, and, given ``delta_proj_weight`` (dim, R) or (groups, dim, R), ``delta`` the
    low-rank (batch, R, len) input of the step-size projection, fused into the kernel.

    Without autograd (no input requires grad, or grad mode off) it saves no checkpoints, and with
    ``in_place`` its output overwrites ``u``.
    """
    inputs = (u, delta, A, B, C, D, z, delta_bias, initial_state, delta_proj_weight)
    if torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in inputs):
        out, last_state = _CpuSelectiveScan.apply(*inputs, delta_softplus, return_last_state)
    else:
        _, (out, _, last_state) = _forward(inputs, delta_softplus, False, return_last_state, in_place)
        out = out.to(u.dtype)
    return (out, last_state) if return_last_state else out
