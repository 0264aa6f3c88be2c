"""The paper's SepMamba configurations as built here: parameters, GMAC/s, CPU forward time.

Usage::

    python benchmarks/model_configs.py                 # 4 s, batch 1, all cores
    python benchmarks/model_configs.py --seconds 1 --threads 1 --output configs.md

The models are the registry's SepMamba entries (``benchmarks/registry.py``): the paper's 8 kHz
configurations and their 16 kHz counterparts, each at its own sample rate. Parameters and MACs come
from :mod:`sepmamba_sb.profiling` (MACs counted on one forward pass, selective scan included; see that
module for the formula) beside the paper's numbers. The forward time is the median of ``--repeats``
inference passes after a warm-up, on the CPU, also given per second of audio (comparable across
sample rates).
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from registry import build, entries, rates
from report import print_and_save

from sepmamba_sb.profiling import count_macs, count_parameters, machine_description, time_forward


def main(argv=None) -> int:
    sepmamba = [name for name in entries() if name.startswith("sepmamba")]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=sepmamba, help=f"default: {' '.join(sepmamba)}")
    parser.add_argument("--seconds", type=float, default=4.0, help="input length in seconds (default 4)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes (median)")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads <= 0 or args.repeats <= 0:
        parser.error("--seconds, --threads and --repeats must be positive")
    unknown = [m for m in args.models if m not in entries()]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(entries())}")
    torch.set_num_threads(args.threads)

    lines = [
        f"Input {args.seconds:g} s at {rates(args.models)}, batch 1. Machine: {machine_description('cpu')}.",
        "",
        "| config | kHz | params | params (paper) | GMAC/s | GMAC/s (paper) | of which scan | CPU forward ms "
        "| CPU ms per s of audio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in args.models:
        print(f"profiling {name} ...", file=sys.stderr, flush=True)
        model, entry = build(name)
        model.eval()
        samples = max(1, int(args.seconds * entry.sample_rate))
        macs = count_macs(model, samples)
        ms = time_forward(model, samples, repeats=args.repeats)
        paper_params = "-" if entry.paper_params is None else f"{entry.paper_params:,}"
        paper_gmacs = "-" if entry.paper_gmac_per_s is None else str(entry.paper_gmac_per_s)
        lines.append(
            f"| {name} | {entry.sample_rate / 1000:g} | {count_parameters(model):,} | {paper_params} "
            f"| {macs.per_second(entry.sample_rate):.2f} | {paper_gmacs} | {macs.scan / macs.total:.0%} | {ms:.0f} "
            f"| {ms / (samples / entry.sample_rate):.0f} |"
        )
    print_and_save("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
