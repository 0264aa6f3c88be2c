"""Selective-scan speed and memory, every available backend beside the time-major PyTorch loop.

Usage::

    python benchmarks/scan_speed.py                      # the two sizes of the README, all cores
    python benchmarks/scan_speed.py --threads 1 --repeats 9 --sizes 2x256x8000x16
    python benchmarks/scan_speed.py --device cuda        # mamba_ssm and reference on a GPU

Each scan is called as Mamba calls it (z, D, delta_bias, softplus; float32). Times are medians of
``--repeats`` runs after one warm-up run (on CUDA, at least 1 s of warm-up): forward under
``torch.no_grad()``, and forward + backward with every input requiring grad. Peak memory of one
forward + backward (gradients, output and all temporaries) is measured in a fresh process per
backend and size, after a warm-up run: on CPU the growth of the peak resident set (VmHWM, Linux)
over the resident set once the inputs and the output gradient exist; on CUDA
``torch.cuda.max_memory_allocated`` over the memory allocated then.
"x in+out" divides it by the bytes of the inputs, the output and its gradient.
The "reference" row is the time-major PyTorch loop (``sepmamba_sb.ops.reference``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import torch
from report import print_and_save

from sepmamba_sb.ops import available_backends, selective_scan
from sepmamba_sb.profiling import machine_description, peak_memory, time_call, track_memory_exactly

TARGETS = {"size": (1, 128, 16000, 16), "fwd_ms": 30.0, "fwdbwd_ms": 100.0, "speedup": 20.0, "memory_x": 2.0}


def parse_size(text: str) -> tuple[int, int, int, int]:
    try:
        batch, dim, length, nstate = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be BxDxLxN, e.g. 1x128x16000x16; got {text!r}") from None
    return batch, dim, length, nstate


def make_inputs(size, device, requires_grad):
    """Scan inputs as a Mamba block produces them (A = -exp(A_log) with S4D-real init)."""
    batch, dim, length, nstate = size
    g = torch.Generator().manual_seed(0)
    tensors = {
        "u": torch.randn(batch, dim, length, generator=g),
        "delta": torch.randn(batch, dim, length, generator=g) * 0.5 - 1.0,
        "A": -torch.arange(1, nstate + 1, dtype=torch.float32).repeat(dim, 1),
        "B": torch.randn(batch, nstate, length, generator=g),
        "C": torch.randn(batch, nstate, length, generator=g),
        "D": torch.ones(dim),
        "z": torch.randn(batch, dim, length, generator=g),
        "delta_bias": torch.rand(dim, generator=g) * -3.0,
    }
    return {k: v.to(device).requires_grad_(requires_grad) for k, v in tensors.items()}


def call(inputs, backend):
    return selective_scan(*inputs.values(), delta_softplus=True, backend=backend)


def time_backend(size, backend, device, repeats):
    inputs = make_inputs(size, device, requires_grad=False)
    grad_inputs = make_inputs(size, device, requires_grad=True)
    grad_out = torch.randn(size[0], size[1], size[2], device=device)

    def forward():
        with torch.no_grad():
            call(inputs, backend)

    def forward_backward():
        call(grad_inputs, backend).backward(grad_out)

    return time_call(forward, device, repeats), time_call(forward_backward, device, repeats)


def memory_probe(size, backend, device):
    """In this (fresh) process: peak extra bytes of one forward + backward, and bytes of inputs+output.

    One full-size forward + backward first brings up what a process allocates once (the kernel
    library, the thread pool, autograd's first large backward); then the gradients are dropped and a
    second one is measured with :func:`sepmamba_sb.profiling.peak_memory`.
    """
    track_memory_exactly()
    inputs = make_inputs(size, device, requires_grad=True)
    grad_out = torch.randn(size[0], size[1], size[2], device=device)
    call(inputs, backend).backward(grad_out)
    for tensor in inputs.values():
        tensor.grad = None
    io_bytes = sum(t.numel() * t.element_size() for t in inputs.values()) + 2 * grad_out.numel() * 4
    peak = peak_memory(lambda: call(inputs, backend).backward(grad_out), device)
    return {"peak_bytes": peak, "io_bytes": io_bytes}


def measure_memory(size, backend, device, threads):
    cmd = [sys.executable, __file__, "--memory-probe", "x".join(map(str, size)), "--backends", backend,
           "--device", str(device), "--threads", str(threads)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed for {backend} {size}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=parse_size, nargs="+",
                        default=[(1, 128, 16000, 16), (1, 512, 4000, 16)], help="BxDxLxN (batch x dim x len x state)")
    parser.add_argument("--backends", nargs="+", default=None, help="default: every available one for --device")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--repeats", type=int, default=9, help="timed runs per measurement (median)")
    parser.add_argument("--output", help="also write the markdown table to this file")
    parser.add_argument("--memory-probe", type=parse_size, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    # the slow reference loop is measured on purpose
    warnings.filterwarnings("ignore", message="selective_scan: using the slow pure-PyTorch reference")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")

    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe, args.backends[0], device)))
        return 0

    for_device = {"cpu": ("cpu", "reference"), "cuda": ("mamba_ssm", "reference")}.get(device.type, ("reference",))
    usable = [b for b in available_backends() if b in for_device]
    backends = list(args.backends or usable)
    unknown = [b for b in backends if b not in usable]
    if unknown:
        parser.error(f"backend(s) {unknown} not available for {device.type} here; available: {usable}")
    if "reference" not in backends:
        backends.append("reference")  # the PyTorch loop every speed-up is measured against

    lines = [
        f"Selective scan, float32, z + D + delta_bias + softplus; median of {args.repeats} runs.",
        f"Machine: {machine_description(device)}.",
        "",
        "| size (B, D, L, N) | backend | forward ms | fwd+bwd ms | fwd speed-up | fwd+bwd speed-up "
        "| fwd+bwd peak MB | x in+out |",
        "|---|---|---|---|---|---|---|---|",
    ]
    checks = []
    for size in args.sizes:
        rows = {}
        for backend in backends:
            print(f"measuring {backend} at {size} ...", file=sys.stderr, flush=True)
            fwd, fwdbwd = time_backend(size, backend, device, args.repeats)
            mem = measure_memory(size, backend, device, args.threads)
            rows[backend] = (fwd, fwdbwd, mem)
        ref_fwd, ref_fwdbwd, _ = rows["reference"]
        for backend, (fwd, fwdbwd, mem) in rows.items():
            ratio = mem["peak_bytes"] / mem["io_bytes"]
            lines.append(
                f"| {size} | {backend} | {fwd:.1f} | {fwdbwd:.1f} | {ref_fwd / fwd:.0f}x | {ref_fwdbwd / fwdbwd:.0f}x "
                f"| {mem['peak_bytes'] / 2**20:.0f} | {ratio:.2f} |"
            )
            if backend == "cpu" and tuple(size) == TARGETS["size"]:
                checks += [
                    ("forward <= 30 ms", fwd <= TARGETS["fwd_ms"]),
                    ("fwd+bwd <= 100 ms", fwdbwd <= TARGETS["fwdbwd_ms"]),
                    (">= 20x the PyTorch loop, forward", ref_fwd / fwd >= TARGETS["speedup"]),
                    (">= 20x the PyTorch loop, fwd+bwd", ref_fwdbwd / fwdbwd >= TARGETS["speedup"]),
                    ("fwd+bwd peak <= 2x inputs+outputs", ratio <= TARGETS["memory_x"]),
                ]
    if checks:
        lines += ["", "Targets for the cpu backend at (1, 128, 16000, 16): "
                  + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in checks) + "."]
    print_and_save("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
