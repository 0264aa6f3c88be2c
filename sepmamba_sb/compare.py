"""Compare separation runs on the same test set, utterance by utterance.

    python -m sepmamba_sb.compare A/test_results.csv B/test_results.csv [--names A B] [--metrics si-snr_i sdr_i]

Reads the per-utterance CSVs that SpeechBrain's separation recipes write (upstream ones and ours:
``snt_id`` and the metric columns, e.g. ``sdr``, ``sdr_i``, ``si-snr``, ``si-snr_i``; the ``avg`` row is
skipped; :func:`sepmamba_sb.metrics.read_results`), checks that every run scored the same utterances,
and prints for each run and metric the mean with its 95 % confidence interval (Student's t) and,
against the first run, the mean paired difference with a 95 % bootstrap interval and the paired
t-test's p-value. Pairing removes the spread between utterances, so it detects differences that
overlapping per-run intervals hide.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from sepmamba_sb.metrics import read_results

DEFAULT_METRICS = ("si-snr_i", "sdr_i")


def mean_ci(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of its ``level`` confidence interval (Student's t; 0 for one value)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return float(values.mean()), 0.0
    half = stats.t.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean()), float(half)


@dataclass(frozen=True)
class PairedDifference:
    """``b - a`` over paired utterances: mean, bootstrap interval, paired t-test p-value."""

    mean: float
    low: float
    high: float
    p_value: float


def paired_difference(a: np.ndarray, b: np.ndarray, resamples: int = 10000, seed: int = 0,
                      level: float = 0.95) -> PairedDifference:
    """The mean of ``b - a`` with a percentile-bootstrap interval over utterances.

    Parameters
    ----------
    a, b : np.ndarray
        Scores [U] of the same utterances, in the same order.
    resamples : int
        Bootstrap resamples.
    seed : int
        The bootstrap's random seed (the interval is reproducible).
    level : float
        Coverage of the interval.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired scores need equal 1-D shapes, got {a.shape} and {b.shape}")
    diff = b - a
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    if len(diff) > 1 and diff.std() > 0:
        p_value = float(stats.ttest_rel(b, a).pvalue)
    else:
        p_value = 1.0 if not diff.any() else 0.0
    return PairedDifference(float(diff.mean()), float(low), float(high), p_value)


def align(runs: Sequence[dict[str, dict[str, float]]], names: Sequence[str]) -> list[str]:
    """The utterance ids every run scored (sorted).

    Raises
    ------
    ValueError
        When the runs scored different utterances, naming the run and some of the ids that differ.
    """
    reference = set(runs[0])
    for run, name in zip(runs[1:], names[1:], strict=True):
        if set(run) != reference:
            only_here, only_there = sorted(set(run) - reference), sorted(reference - set(run))
            raise ValueError(f"{name} scored other utterances than {names[0]}: {len(only_here)} only in {name} "
                             f"(e.g. {only_here[:3]}), {len(only_there)} only in {names[0]} (e.g. {only_there[:3]}); "
                             "compare runs on the same test set")
    return sorted(reference)


def compare(paths: Sequence[str | Path], names: Sequence[str] | None = None,
            metrics: Sequence[str] = DEFAULT_METRICS, resamples: int = 10000, seed: int = 0) -> list[dict]:
    """One row per run: ``name``, ``utterances`` and per metric ``<m>``, ``<m>_ci`` and, for every run
    after the first, ``<m>_diff``, ``<m>_diff_low``, ``<m>_diff_high``, ``<m>_p`` (against the first).

    Raises
    ------
    ValueError
        Fewer than one path, names of another count, unreadable files, mismatched utterance sets.
    """
    if not paths:
        raise ValueError("give at least one test_results.csv")
    names = list(names) if names is not None else [str(p) for p in paths]
    if len(names) != len(paths):
        raise ValueError(f"{len(paths)} results files but {len(names)} names")
    runs = [read_results(p, metrics) for p in paths]
    ids = align(runs, names)
    table = []
    for name, run in zip(names, runs, strict=True):
        row = {"name": name, "utterances": len(ids)}
        for metric in metrics:
            values = np.array([run[i][metric] for i in ids])
            row[metric], row[f"{metric}_ci"] = mean_ci(values)
            if run is not runs[0]:
                first = np.array([runs[0][i][metric] for i in ids])
                diff = paired_difference(first, values, resamples, seed)
                row.update({f"{metric}_diff": diff.mean, f"{metric}_diff_low": diff.low,
                            f"{metric}_diff_high": diff.high, f"{metric}_p": diff.p_value})
        table.append(row)
    return table


def format_table(table: list[dict], metrics: Sequence[str] = DEFAULT_METRICS) -> str:
    """A markdown table of :func:`compare`'s rows (dB, 95 % intervals)."""
    first = table[0]["name"]
    header = ["run", "utterances"]
    for metric in metrics:
        header += [f"{metric} (dB, 95% CI)", f"paired diff. to {first} (95% bootstrap CI)", "p"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        cells = [row["name"], str(row["utterances"])]
        for metric in metrics:
            cells.append(f"{row[metric]:.2f} ± {row[f'{metric}_ci']:.2f}")
            if f"{metric}_diff" in row:
                cells.append(f"{row[f'{metric}_diff']:+.2f} [{row[f'{metric}_diff_low']:+.2f}, "
                             f"{row[f'{metric}_diff_high']:+.2f}]")
                cells.append(f"{row[f'{metric}_p']:.3g}")
            else:
                cells += ["(reference)", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """Print the comparison; a clear message and exit status 1 on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="test_results.csv files; the first is the reference")
    parser.add_argument("--names", nargs="+", help="a label per file (default: the paths)")
    parser.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS),
                        help=f"columns to compare (default: {' '.join(DEFAULT_METRICS)})")
    parser.add_argument("--resamples", type=int, default=10000, help="bootstrap resamples (default 10000)")
    args = parser.parse_args(argv)
    try:
        table = compare(args.results, args.names, args.metrics, args.resamples)
    except ValueError as exc:
        raise SystemExit(f"sepmamba_sb.compare: {exc}") from None
    print(format_table(table, args.metrics))


if __name__ == "__main__":
    main()
