"""The paper's SepMamba configurations as built here: parameters, GMAC/s, CPU forward time.

Usage::

    python benchmarks/model_configs.py                 # 4 s at 8 kHz, batch 1, all cores
    python benchmarks/model_configs.py --seconds 1 --threads 1 --output configs.md

Parameters and MACs come from :mod:`sepmamba_sb.profiling` (MACs counted on one forward pass,
selective scan included; see that module for the formula) beside the paper's numbers. The forward
time is the median of ``--repeats`` inference passes after a warm-up, on the CPU.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from report import emit

from sepmamba_sb.lobes import CONFIGS, Decoder, Encoder, MaskingSeparator, MaskNet, SepMamba
from sepmamba_sb.profiling import count_macs, count_parameters, machine_description, time_forward

# the seed paper's table (params from the authors' model code, GMAC/s as published)
PAPER = {"S": ("7,253,826", "12.46"), "M": ("22,249,090", "37.0"), "S-causal": ("7,253,826", "-"),
         "M-causal": ("22,249,090", "-")}


def masking_s() -> MaskingSeparator:
    """SepMamba S in SpeechBrain's encoder/masknet/decoder form."""
    cfg = CONFIGS["S"]
    return MaskingSeparator(Encoder(cfg["kernel_sizes"][0], cfg["dim"], cfg["strides"][0]), MaskNet(**cfg),
                            Decoder(cfg["dim"], cfg["kernel_sizes"][0], cfg["strides"][0]), num_spks=2)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="input length in seconds (default 4)")
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes (median)")
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    samples = int(args.seconds * args.sample_rate)
    if samples < 1:
        parser.error("--seconds * --sample-rate must give at least one sample")

    models = {name: (lambda cfg=cfg: SepMamba(**cfg)) for name, cfg in CONFIGS.items()}
    models["S, masking form"] = masking_s
    lines = [
        f"Input {args.seconds:g} s at {args.sample_rate} Hz, batch 1. Machine: {machine_description('cpu')}.",
        "",
        "| config | params | params (paper) | GMAC/s | GMAC/s (paper) | of which scan | CPU forward ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, build in models.items():
        print(f"profiling {name} ...", file=sys.stderr, flush=True)
        model = build().eval()
        macs = count_macs(model, samples)
        ms = time_forward(model, samples, repeats=args.repeats)
        paper_params, paper_gmacs = PAPER.get(name, ("-", "-"))
        lines.append(
            f"| {name} | {count_parameters(model):,} | {paper_params} | {macs.per_second(args.sample_rate):.2f} "
            f"| {paper_gmacs} | {macs.scan / macs.total:.0%} | {ms:.0f} |"
        )
    emit("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
