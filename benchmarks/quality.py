#!/usr/bin/env python3
"""Separation quality at equal budget: SepMamba and SpeechBrain's separators trained the same way.

    python benchmarks/quality.py --readme benchmarks/README.md --output benchmarks/results/quality.md \
        --plot benchmarks/results/quality.png                  # at the demo's budget (2 h or more, 2 cores)
    python benchmarks/quality.py --epochs 10 ...               # every model for 10 epochs instead
    python benchmarks/quality.py --quick --runs /tmp/quality   # tiny corpus and budgets: the table's shape only

Each yaml in ``recipes/MiniMix/hparams`` (default: SepMamba's demo model, then SepFormer, Conv-TasNet and
DPRNN at about its parameter count) is trained by the same ``train.py`` on the same dynamic mixtures,
with the same seed and number of epochs, and tested on the same tt mixtures. The table gives
parameters, GMAC per second of audio, training time, SI-SNRi and SDRi means with 95 % confidence
intervals, and each model's paired difference to the first (bootstrap 95 % interval and paired t-test,
:mod:`sepmamba_sb.compare`); the plot shows validation SI-SNR against training time. Finished runs are
reused: delete a run's folder to train it again.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from report import publish

from sepmamba_sb.compare import compare
from sepmamba_sb.data.minimix import cache_dir, prepare_minimix
from sepmamba_sb.plots import validation_curves
from sepmamba_sb.profiling import count_macs, count_parameters, machine_description
from sepmamba_sb.runs import RESULTS_FILE, training_log

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "MiniMix"

DEFAULT_YAMLS = ("sepmamba-minimix.yaml", "sepformer-minimix.yaml", "convtasnet-minimix.yaml", "dprnn-minimix.yaml")
# --quick: a tiny corpus and budget, enough to exercise every step
QUICK_OVERRIDES = ["--N_epochs", "1", "--dm_num_mixtures", "4", "--batch_size", "2", "--training_signal_len", "4000"]


def label(yaml: str) -> str:
    """``sepformer-minimix.yaml`` -> ``sepformer``."""
    return Path(yaml).name.removesuffix(".yaml").removesuffix("-minimix")


def model_size(yaml: Path, corpus: Path, sample_rate: int = 8000) -> tuple[int, float]:
    """(parameters, GMAC per second of audio) of a recipe yaml's separator, from a 1 s input."""
    from hyperpyyaml import load_hyperpyyaml

    from sepmamba_sb.lobes import as_separator

    with open(yaml, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": str(corpus)})
    separator = as_separator(hparams["modules"], hparams["num_spks"]).eval()
    return count_parameters(separator), count_macs(separator, sample_rate).per_second(sample_rate)


def train(yaml: Path, corpus: Path, run: Path, overrides: list[str]) -> float:
    """Train and test one yaml (unless ``run`` already holds its results); minutes of wall-clock time."""
    if (run / RESULTS_FILE).exists() and (run / "wall_minutes.txt").exists():
        return float((run / "wall_minutes.txt").read_text())
    cmd = [sys.executable, "train.py", str(yaml), "--data_folder", str(corpus), "--output_folder", str(run),
           "--device", "cpu", *overrides]
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=RECIPE)
    if done.returncode != 0:
        raise SystemExit(f"training {yaml.name} failed (exit {done.returncode}); its log is {run / 'log.txt'}")
    minutes = (time.monotonic() - started) / 60
    (run / "wall_minutes.txt").write_text(f"{minutes:.2f}\n")
    return minutes


def table(names: list[str], sizes: dict, minutes: dict, epochs: dict, comparison: list[dict]) -> str:
    """The markdown table: one row per model, the first is the reference of the paired differences."""
    lines = [f"| model | params | GMAC/s | training (min) | epochs | SI-SNRi (dB, 95% CI) | SDRi (dB, 95% CI) | "
             f"SI-SNRi − {names[0]} (95% bootstrap CI) | p |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in zip(names, comparison, strict=True):
        params, gmac = sizes[name]
        diff = (f"{row['si-snr_i_diff']:+.2f} [{row['si-snr_i_diff_low']:+.2f}, {row['si-snr_i_diff_high']:+.2f}]"
                if "si-snr_i_diff" in row else "(reference)")
        p_value = f"{row['si-snr_i_p']:.2g}" if "si-snr_i_p" in row else ""
        lines.append(f"| {name} | {params / 1e3:.0f} k | {gmac:.2f} | {minutes[name]:.1f} | {epochs[name]} | "
                     f"{row['si-snr_i']:.2f} ± {row['si-snr_i_ci']:.2f} | {row['sdr_i']:.2f} ± {row['sdr_i_ci']:.2f} | "
                     f"{diff} | {p_value} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--yamls", nargs="+", default=list(DEFAULT_YAMLS),
                        help="recipe yamls in recipes/MiniMix/hparams (the first is the reference)")
    parser.add_argument("--quick", action="store_true", help="tiny corpus and budgets (CI): the table's shape only")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs for every model (default: the yamls' N_epochs, the demo's budget)")
    parser.add_argument("--data-folder", type=Path, default=None, help="MiniMix (default: the demo's, or tiny's)")
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "quality", help="run folders")
    parser.add_argument("--output", default=None, help="also write the table to this markdown file")
    parser.add_argument("--plot", type=Path, default=None,
                        help="validation SI-SNR against training time (default: <runs>/quality.png)")
    parser.add_argument("--readme", type=Path, default=None,
                        help="put the table between the README's <!-- quality:begin/end --> lines")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    args = parser.parse_args(argv)
    yamls = [RECIPE / "hparams" / y for y in args.yamls]
    missing = [str(y) for y in yamls if not y.is_file()]
    if missing:
        parser.error(f"no such recipe yaml: {', '.join(missing)}")
    torch.set_num_threads(args.threads)
    if args.data_folder is not None:
        corpus = args.data_folder
    elif args.quick:
        corpus = prepare_minimix(cache_dir() / "tests" / "tiny-2mix", "tiny")  # the test suite's corpus
    else:
        corpus = prepare_minimix(cache_dir() / "minimix", "demo")
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    overrides = [*(QUICK_OVERRIDES if args.quick else []), *(["--N_epochs", str(args.epochs)] if args.epochs else [])]
    names = [label(y.name) for y in yamls]
    sizes, minutes, epochs, curves = {}, {}, {}, {}
    for number, (name, yaml) in enumerate(zip(names, yamls, strict=True), 1):
        print(f"[{number}/{len(yamls)}] {name}: training and testing ({yaml.name})", flush=True)
        sizes[name] = model_size(yaml, corpus)
        minutes[name] = train(yaml, corpus, args.runs / name, overrides)
        curves[name] = training_log(args.runs / name)
        epochs[name] = curves[name][-1]["epoch"]
    comparison = compare([args.runs / n / RESULTS_FILE for n in names], names)
    body = table(names, sizes, minutes, epochs, comparison)
    machine = machine_description("cpu")  # names the CPU, threads, torch and the date
    command = " ".join(["python benchmarks/quality.py", *(["--quick"] if args.quick else []),
                        *([f"--epochs {args.epochs}"] if args.epochs else [])])
    footer = f"\n\n{comparison[0]['utterances']} tt mixtures; `{command}` on {machine}."
    plot_path = args.plot or args.runs / "quality.png"
    plot_path.parent.mkdir(parents=True, exist_ok=True)
    validation_curves(curves, plot_path, f"MiniMix: same data, seed and epochs\n{machine}")
    publish(body + footer, args.output, args.readme, "quality")
    print(f"plot: {plot_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
