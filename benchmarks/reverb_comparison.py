"""Trained separators on the same WHAMR!-layout test set: clean-trained against room-trained.

Usage::

    python benchmarks/reverb_comparison.py --corpus ~/.cache/sepmamba_sb/minimix-whamr \\
        --runs demo/run /tmp/runs/minimix-whamr --output benchmarks/results/minimix-reverb.md

For each training run folder (``hyperparams.yaml`` and ``save/CKPT+*``: the checkpoint with the best
validation SI-SNR is loaded, as ``train.py`` tests it), the mean PIT SI-SNR improvement over every
mixture of the corpus's ``tt`` split, against the direct-path sources (``s*_anechoic``), for three
inputs: the noisy reverberant mixtures (``mix_both_reverb``: the task), the reverberant ones without
noise (``mix_clean_reverb``) and the clean anechoic ones (``mix_clean_anechoic``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from report import print_and_save

INPUTS = ("mix_both_reverb", "mix_clean_reverb", "mix_clean_anechoic")


def load_separator(run: Path):
    """The run's best (validation SI-SNR) checkpoint as one separator, its experiment name and its
    training conditions."""
    from sepmamba_sb.lobes import as_separator
    from sepmamba_sb.runs import load_training_run, training_conditions

    try:
        hparams = load_training_run(run)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    separator = as_separator(hparams["modules"], hparams["num_spks"]).eval()
    return separator, hparams.get("experiment_name", run.name), training_conditions(hparams)


def mean_si_snr_improvement(separator, split: Path, mixtures: str, num_spks: int = 2) -> tuple[float, int]:
    """Mean PIT SI-SNRi (dB) of ``separator`` on ``split/<mixtures>`` against ``split/s*_anechoic``."""
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    from sepmamba_sb.audio import read_audio

    files = sorted((split / mixtures).glob("*.wav"))
    if not files:
        raise SystemExit(f"no .wav files in {split / mixtures}: --corpus must be a WHAMR!-layout corpus")
    total = 0.0
    for path in files:
        mix = read_audio(path)[0][None]
        targets = torch.stack([read_audio(split / f"s{s + 1}_anechoic" / path.name)[0] for s in range(num_spks)],
                              dim=-1)[None]
        with torch.no_grad():
            estimates = separator(mix)
        baseline = torch.stack([mix[0]] * num_spks, dim=-1)[None]
        total += float(get_si_snr_with_pitwrapper(targets, baseline) - get_si_snr_with_pitwrapper(targets, estimates))
    return total / len(files), len(files)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus", type=Path, required=True, help="a WHAMR!-layout corpus (its tt split is used)")
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="training run folders")
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    split = args.corpus / f"wav{args.sample_rate // 1000}k" / "min" / "tt"
    if not split.is_dir():
        parser.error(f"--corpus {args.corpus}: {split} does not exist")
    from sepmamba_sb.profiling import machine_description

    lines = ["| experiment | trained on | " + " | ".join(f"SI-SNRi on `{m}` (dB)" for m in INPUTS) + " |",
             "|---|---|" + "---|" * len(INPUTS)]
    count = 0
    for run in args.runs:
        print(f"testing {run} ...", file=sys.stderr, flush=True)
        separator, name, conditions = load_separator(run)
        scores = []
        for mixtures in INPUTS:
            score, count = mean_si_snr_improvement(separator, split, mixtures)
            scores.append(f"{score:.2f}")
        trained_on = conditions.removeprefix("Conditions: ").split(";")[0].split(". ")[0]
        lines.append(f"| `{name}` | {trained_on} | " + " | ".join(scores) + " |")
    header = (f"{count} test mixtures of `{split.relative_to(args.corpus.parent)}` (unseen speakers), targets: the "
              "direct-path sources "
              f"(`s*_anechoic`). Machine: {machine_description('cpu')}.")
    print_and_save("\n".join([header, "", *lines]), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
