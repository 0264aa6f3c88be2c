"""Separation scores, in one place: the per-utterance scores of a test set and the ``test_results.csv``
that holds them.

:func:`score_utterance` pairs a mixture's estimates with its references as the training loss does
(permutation-invariant SI-SNR, SpeechBrain's ``PitWrapper``) and scores them: SDR (mir_eval's
``bss_eval_sources``, SpeechBrain's reference SDR), SI-SNR, and SI-SDR without mean removal (what the
SepMamba paper reports), each with its improvement over the mixture. :func:`write_results` writes the
per-utterance rows with an ``avg`` row, as SpeechBrain's separation recipes do; :func:`read_results`
and :func:`read_means` read such files (ours, or those of SpeechBrain's upstream recipes).
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

METRICS = ("sdr", "sdr_i", "si-snr", "si-snr_i", "si-sdr", "si-sdr_i")
LABELS = {"sdr": "SDR", "sdr_i": "SDRi", "si-snr": "SI-SNR", "si-snr_i": "SI-SNRi", "si-sdr": "SI-SDR",
          "si-sdr_i": "SI-SDRi"}  # as tables print them
COLUMNS = ("snt_id", *METRICS)  # a results file's columns, in order
SUMMARY_ROW = "avg"  # the snt_id of the row holding the means


def si_sdr(estimate: torch.Tensor, target: torch.Tensor, zero_mean: bool) -> torch.Tensor:
    """Scale-invariant SDR in dB over time; ``zero_mean`` gives SI-SNR.

    Parameters
    ----------
    estimate, target : torch.Tensor
        [..., T].
    zero_mean : bool
        Remove each signal's mean first (SI-SNR).

    Returns
    -------
    torch.Tensor
        [...].

    Example
    -------
    >>> target = torch.sin(torch.arange(800.0))
    >>> round(float(si_sdr(2 * target + 0.1 * torch.cos(torch.arange(800.0)), target, zero_mean=True)), 1)
    26.0
    """
    if zero_mean:
        estimate = estimate - estimate.mean(-1, keepdim=True)
        target = target - target.mean(-1, keepdim=True)
    eps = torch.finfo(estimate.dtype).eps
    scale = (estimate * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    projection = scale * target
    noise = estimate - projection
    return 10 * torch.log10((projection.square().sum(-1) + eps) / (noise.square().sum(-1) + eps))


def align_estimates(est: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Estimates reordered so that source s goes with target s, as permutation-invariant SI-SNR (the
    training loss, ``get_si_snr_with_pitwrapper``) pairs them.

    Parameters
    ----------
    est, targets : torch.Tensor
        [B, T, S].

    Returns
    -------
    torch.Tensor
        [B, T, S].
    """
    from speechbrain.nnet.losses import PitWrapper, cal_si_snr

    _, perms = PitWrapper(cal_si_snr)(targets, est)  # estimate i goes with target perms[b][i]
    order = [torch.argsort(torch.tensor(p)) for p in perms]
    return torch.stack([e[:, o] for e, o in zip(est, order, strict=True)])


def scale_invariant_scores(est: torch.Tensor, targets: torch.Tensor, mix: torch.Tensor,
                           zero_mean: bool = True) -> tuple[float, float]:
    """SI-SNR (``zero_mean``) or SI-SDR of aligned estimates, and its improvement over the mixture, in dB
    averaged over the sources.

    Parameters
    ----------
    est, targets : torch.Tensor
        [T, S], the estimates already paired with the targets (:func:`align_estimates`).
    mix : torch.Tensor
        The mixture [T].
    """
    value = si_sdr(est.t(), targets.t(), zero_mean).mean().item()
    baseline = si_sdr(mix.unsqueeze(0).expand(targets.shape[1], -1), targets.t(), zero_mean).mean().item()
    return value, value - baseline


def score_utterance(est: torch.Tensor, targets: torch.Tensor, mix: torch.Tensor) -> dict[str, float]:
    """The scores of one test mixture, in dB: ``METRICS`` (the ``_i`` ones over the mixture itself).

    Parameters
    ----------
    est : torch.Tensor
        Estimates [T, S], in any order (paired with the targets as the training loss pairs them).
    targets : torch.Tensor
        References [T, S].
    mix : torch.Tensor
        The mixture [T].

    Returns
    -------
    dict
        Metric -> value, averaged over the sources.
    """
    from mir_eval.separation import bss_eval_sources

    if est.dim() != 2 or est.shape != targets.shape or mix.shape != est.shape[:1]:
        raise ValueError(f"score_utterance: est and targets must be [T, S] and mix [T], got {tuple(est.shape)}, "
                         f"{tuple(targets.shape)} and {tuple(mix.shape)}")
    targets, mix = targets.float().cpu(), mix.float().cpu()
    est = align_estimates(est.float().cpu()[None], targets[None])[0]
    mixes = mix.unsqueeze(-1).expand_as(targets)
    reference, estimate, baseline = (x.t().double().numpy() for x in (targets, est, mixes))
    with warnings.catch_warnings():  # mir_eval 0.8 deprecates it; it stays the reference SDR
        warnings.simplefilter("ignore", FutureWarning)
        sdr = float(bss_eval_sources(reference, estimate)[0].mean())
        sdr_mix = float(bss_eval_sources(reference, baseline)[0].mean())
    scores = {"sdr": sdr, "sdr_i": sdr - sdr_mix}
    for name, zero_mean in (("si-snr", True), ("si-sdr", False)):
        scores[name], scores[f"{name}_i"] = scale_invariant_scores(est, targets, mix, zero_mean)
    return scores


def write_results(path: str | Path, rows: Sequence[Mapping]) -> dict[str, float]:
    """Write per-utterance scores and their means (an ``avg`` row) as a results file.

    Parameters
    ----------
    path : str or Path
        The CSV to write.
    rows : sequence of Mapping
        ``snt_id`` and every metric of ``METRICS``, one per utterance.

    Returns
    -------
    dict
        The means, metric -> dB.
    """
    if not rows:
        raise ValueError(f"write_results: no utterance to write to {path}")
    means = {m: float(np.mean([row[m] for row in rows])) for m in METRICS}
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: row[c] for c in COLUMNS} for row in rows)
        writer.writerow({"snt_id": SUMMARY_ROW, **means})
    return means


def read_results(path: str | Path, metrics: Sequence[str] = ("si-snr_i", "sdr_i")) -> dict[str, dict[str, float]]:
    """Utterance id -> {metric: value} from a results file (the ``avg`` row is skipped).

    Raises
    ------
    ValueError
        Naming the file: missing, without ``snt_id`` or a requested metric column, with a repeated
        utterance id, a value that is not a finite number, or no utterance at all.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"results file {path} does not exist")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        missing = [c for c in ("snt_id", *metrics) if c not in columns]
        if missing:
            raise ValueError(f"{path}: no column {missing} (it has {columns}); SpeechBrain's separation recipes "
                             "write snt_id, sdr, sdr_i, si-snr, si-snr_i")
        results = {}
        for line, row in enumerate(reader, 2):
            name = row["snt_id"]
            if name == SUMMARY_ROW:
                continue
            if name in results:
                raise ValueError(f"{path}:{line}: utterance {name!r} appears twice")
            values = {}
            for metric in metrics:
                try:
                    values[metric] = float(row[metric])
                except (TypeError, ValueError):
                    raise ValueError(f"{path}:{line}: {metric} = {row[metric]!r} is not a number") from None
                if not math.isfinite(values[metric]):
                    raise ValueError(f"{path}:{line}: {metric} = {row[metric]} is not finite")
            results[name] = values
    if not results:
        raise ValueError(f"{path} holds no utterance")
    return results


def read_means(path: str | Path) -> dict[str, float] | None:
    """The ``avg`` row of a results file, metric -> dB; None when the file or the row is missing."""
    path = Path(path)
    if not path.is_file():
        return None
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if row["snt_id"] == SUMMARY_ROW:
                return {k: float(v) for k, v in row.items() if k != "snt_id"}
    return None
