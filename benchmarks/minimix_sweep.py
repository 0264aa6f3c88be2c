#!/usr/bin/env python3
"""The sweep behind the MiniMix demo's settings: each arm trains for the same wall-clock budget.

    python benchmarks/minimix_sweep.py --minutes 6 --output benchmarks/results/minimix-sweep.md

Every arm runs ``recipes/MiniMix/train.py`` on the demo corpus with its overrides and a
``--time_budget_minutes`` cap, so arms of different speed get the same CPU time. Arms are ranked by
their best VALIDATION (cv) SI-SNR; the tt SI-SNRi of the cv-selected checkpoint is reported but
chooses nothing. ``--arms`` runs a subset; finished arms are reused (delete their folder to rerun).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

from report import print_and_save

from sepmamba_sb.data.minimix import cache_dir, prepare_minimix
from sepmamba_sb.runs import RESULTS_FILE, mean_test_scores, training_log

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "MiniMix"

NARROW = ["--dm_speed_factors", "[0.95, 1.0, 1.05]"]
WIDE = ["--dm_speed_factors", "[0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15, 1.2, 1.25]"]
NO_FORMANTS = ["--dm_formant_factors", "[1.0]"]
MASKING = "{dim: 20, num_blocks: 1, kernel_sizes: [16, 4, 4], strides: [8, 2, 2], act_fn: relu, causal: False}"
# name -> (yaml in recipes/MiniMix/hparams, overrides, what the arm tests); every arm names its augmentation
ARMS = {
    "masking": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS],
                "masking form, stride-8 encoder, dim 20, 1 block; speed 0.95-1.05"),
    "speed": ("sepmamba-minimix.yaml", [*WIDE, *NO_FORMANTS], "speed 0.8-1.25"),
    "formant": ("sepmamba-minimix.yaml", [*WIDE, "--dm_formant_factors", "[0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.15]"],
                "speed 0.8-1.25, formants 0.85-1.15"),
    "narrow-formant": ("sepmamba-minimix.yaml", [*NARROW, "--dm_formant_factors", "[0.9, 0.95, 1.0, 1.05, 1.1]"],
                       "speed 0.95-1.05, formants 0.9-1.1"),
    "wide": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS, "--model_config", MASKING.replace("dim: 20", "dim: 32")],
             "dim 32; speed 0.95-1.05"),
    "wider": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS, "--model_config", MASKING.replace("dim: 20", "dim: 48")],
              "dim 48; speed 0.95-1.05"),
    "deep": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS, "--model_config",
                                       MASKING.replace("num_blocks: 1", "num_blocks: 2")],
             "2 blocks per direction; speed 0.95-1.05"),
    "long-crops": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS, "--training_signal_len", "16000",
                                             "--batch_size", "4"], "2 s crops, batch 4; speed 0.95-1.05"),
    "lr-4e-3": ("sepmamba-minimix.yaml", [*NARROW, *NO_FORMANTS, "--lr", "0.004"],
                "learning rate 4e-3; speed 0.95-1.05"),
}


def summarize(run: Path) -> dict:
    """Epochs, minutes, best cv SI-SNR and its epoch, tt SI-SNRi, parameters of a finished run."""
    rows = training_log(run)
    best = max(rows, key=lambda r: r["valid"])
    params = re.search(r"Total Number of Trainable Parameters: (\S+)", (run / "log.txt").read_text())
    return {"epochs": rows[-1]["epoch"], "minutes": rows[-1]["minutes"], "best_cv": best["valid"],
            "best_epoch": best["epoch"], "tt_si_snr_i": mean_test_scores(run)["si-snr_i"],
            "params": params.group(1) if params else "?"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=6.0, help="training budget per arm (default 6)")
    parser.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    parser.add_argument("--data-folder", type=Path, default=None, help="MiniMix (default: build the demo's)")
    parser.add_argument("--runs", type=Path, default=REPO / "results" / "minimix-sweep", help="run folders")
    parser.add_argument("--output", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    corpus = args.data_folder or prepare_minimix(cache_dir() / "minimix", "demo")
    results = {}
    for number, name in enumerate(args.arms, 1):
        yaml, overrides, _ = ARMS[name]
        run = args.runs / name
        if not (run / RESULTS_FILE).exists():
            print(f"[{number}/{len(args.arms)}] {name}: training for {args.minutes} min", flush=True)
            started = time.monotonic()
            cmd = [sys.executable, "train.py", f"hparams/{yaml}", "--data_folder", str(corpus), "--output_folder",
                   str(run), "--device", "cpu", "--N_epochs", "1000", "--time_budget_minutes", str(args.minutes),
                   "--noprogressbar", *overrides]
            done = subprocess.run(cmd, cwd=RECIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            if done.returncode != 0:
                raise SystemExit(f"arm {name} failed (exit {done.returncode}); see {run / 'log.txt'}\n"
                                 f"{done.stderr[-1500:]}")
            print(f"    done in {(time.monotonic() - started) / 60:.1f} min", flush=True)
        results[name] = summarize(run)
        print(f"    {name}: {results[name]}", flush=True)
    lines = ["| arm | what changes | params | epochs in budget | best cv SI-SNR (epoch) | tt SI-SNRi (not used) |",
             "|---|---|---|---|---|---|"]
    for name, r in sorted(results.items(), key=lambda kv: -kv[1]["best_cv"]):
        lines.append(f"| {name} | {ARMS[name][2]} | {r['params']} | {r['epochs']} ({r['minutes']:.1f} min) | "
                     f"{r['best_cv']:.2f} dB ({r['best_epoch']}) | {r['tt_si_snr_i']:.2f} dB |")
    print_and_save("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
