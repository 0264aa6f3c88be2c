"""On a CUDA machine: mamba-ssm's kernels against our C++ CPU kernel, on the same inputs.

    python benchmarks/gpu/parity.py --out benchmarks/results/gpu_parity.json

Compares, in float32, the ``mamba_ssm`` backend on CUDA with the ``cpu`` backend (our C++ kernel) on
the same inputs and weights: the selective scan (output and every gradient), a Mamba block through
both CUDA paths (mamba-ssm's fused ``mamba_inner_fn``; the scan plus causal-conv1d), output and every
gradient, and SepMamba S's forward pass. Prints relative errors (max |a - b| / max |b|); exits 1 if
any exceeds 1e-3.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from sepmamba_sb.lobes import SepMamba
from sepmamba_sb.nnet import Mamba
from sepmamba_sb.ops import available_backends, selective_scan

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def rel(a, b):
    return float((a.double().cpu() - b.double().cpu()).abs().max() / b.double().abs().max().clamp_min(1e-30))


def scan_parity(batch=2, dim=256, length=4000, nstate=16):
    g = torch.Generator().manual_seed(0)
    inputs = {
        "u": torch.randn(batch, dim, length, generator=g), "delta": torch.randn(batch, dim, length, generator=g) - 1,
        "A": -torch.rand(dim, nstate, generator=g) - 0.5, "B": torch.randn(batch, nstate, length, generator=g),
        "C": torch.randn(batch, nstate, length, generator=g), "D": torch.randn(dim, generator=g),
        "z": torch.randn(batch, dim, length, generator=g), "delta_bias": torch.randn(dim, generator=g) * 0.5,
    }
    grad = torch.randn(batch, dim, length, generator=g)
    results = {}
    for device, backend in (("cuda", "mamba_ssm"), ("cpu", "cpu")):
        leaves = {k: v.detach().clone().to(device).requires_grad_() for k, v in inputs.items()}
        out = selective_scan(*(leaves[k] for k in NAMES), delta_softplus=True, backend=backend)
        out.backward(grad.to(device))
        results[backend] = (out.detach(), {k: v.grad for k, v in leaves.items()})
    (gpu_out, gpu_grads), (cpu_out, cpu_grads) = results["mamba_ssm"], results["cpu"]
    return {"out": rel(gpu_out, cpu_out), **{f"grad_{k}": rel(gpu_grads[k], cpu_grads[k]) for k in NAMES}}


def block_parity(d_model=128, length=4000):
    """One Mamba block, both CUDA paths (fused ``mamba_inner_fn``; scan + causal-conv1d) against CPU."""
    torch.manual_seed(0)
    mixer = Mamba(d_model)
    x = torch.randn(2, length, d_model)
    grad = torch.randn(2, length, d_model)

    def run(device, fast):
        mixer.to(device).zero_grad()
        mixer.use_fast_path = fast
        inputs = x.detach().clone().to(device).requires_grad_()
        out = mixer(inputs)
        out.backward(grad.to(device))
        return out.detach(), {"x": inputs.grad, **{name: p.grad for name, p in mixer.named_parameters()}}

    cpu_out, cpu_grads = run("cpu", True)
    errors = {}
    for label, fast in (("fused", True), ("unfused", False)):
        out, grads = run("cuda", fast)
        errors[f"block_{label}_out"] = rel(out, cpu_out)
        errors[f"block_{label}_grad_max"] = max(rel(grads[k], cpu_grads[k]) for k in cpu_grads)
    return errors


def model_parity(seconds=1.0):
    """SepMamba S (the paper's model), forward on CUDA against CPU, same weights and input."""
    torch.manual_seed(0)
    model = SepMamba().eval()
    mix = torch.randn(1, int(seconds * 8000))
    with torch.no_grad():
        cpu = model(mix)
        gpu = model.to("cuda")(mix.to("cuda"))
    return {"sepmamba_S_out": rel(gpu, cpu)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", help="also write the errors as JSON here")
    args = parser.parse_args(argv)
    if "mamba_ssm" not in available_backends() or "cpu" not in available_backends():
        print(f"parity needs the mamba_ssm and cpu backends; available: {available_backends()}", file=sys.stderr)
        return 2
    errors = {**scan_parity(), **block_parity(), **model_parity()}
    for name, value in errors.items():
        print(f"{name:16s} {value:.2e}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"device": torch.cuda.get_device_name(), **errors}, f, indent=1)
    return 0 if max(errors.values()) < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main())
