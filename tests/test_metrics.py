"""sepmamba_sb.metrics: per-utterance scores paired as the training loss pairs them, and the results file."""

import csv

import numpy as np
import pytest
import torch
from speechbrain.nnet.losses import cal_si_snr, get_si_snr_with_pitwrapper

from sepmamba_sb.metrics import (
    COLUMNS,
    METRICS,
    align_estimates,
    read_means,
    read_results,
    score_utterance,
    si_sdr,
    write_results,
)


def test_align_estimates_pairs_as_the_training_loss_does():
    """3 shuffled, noisy estimates come back in the targets' order."""
    torch.manual_seed(0)
    targets = torch.randn(2, 800, 3)
    est = torch.stack([targets[0][:, [2, 0, 1]], targets[1][:, [1, 2, 0]]]) + 0.1 * torch.randn(2, 800, 3)
    aligned = align_estimates(est, targets)
    assert aligned.shape == (2, 800, 3)
    assert (aligned - targets).abs().max() < 1.0 < (est - targets).abs().max()
    # unpermuted SI-SNR of the aligned estimates is the PIT loss's value
    unpermuted = cal_si_snr(targets.transpose(0, 1), aligned.transpose(0, 1))[0].mean(-1)
    assert torch.allclose(unpermuted, get_si_snr_with_pitwrapper(targets, aligned), atol=1e-4)


def test_si_sdr_against_its_definition_in_float64():
    torch.manual_seed(1)
    target, noise = torch.randn(2, 500, dtype=torch.float64), torch.randn(2, 500, dtype=torch.float64)
    estimate = 0.7 * target + 0.2 * noise + 0.3  # scaled, noisy, with an offset
    for zero_mean in (True, False):
        t = target - target.mean(-1, keepdim=True) if zero_mean else target
        e = estimate - estimate.mean(-1, keepdim=True) if zero_mean else estimate
        projection = (e * t).sum(-1, keepdim=True) / (t * t).sum(-1, keepdim=True) * t
        expected = 10 * torch.log10(projection.square().sum(-1) / (e - projection).square().sum(-1))
        assert torch.allclose(si_sdr(estimate, target, zero_mean), expected, atol=1e-9)


def test_scores_of_an_utterance_in_any_order():
    """Perfect estimates in swapped order score high; the mixture itself improves on nothing."""
    torch.manual_seed(2)
    targets = torch.randn(4000, 2)
    mix = targets.sum(-1)
    perfect = score_utterance(targets[:, [1, 0]] * torch.tensor([2.0, -0.5]), targets, mix)
    assert set(perfect) == set(METRICS)
    assert perfect["si-snr"] > 100 and perfect["sdr"] > 100
    baseline = score_utterance(torch.stack([mix, mix], -1), targets, mix)
    assert baseline["si-snr_i"] == pytest.approx(0.0, abs=1e-6) and baseline["sdr_i"] == pytest.approx(0.0, abs=1e-6)
    assert perfect["si-snr_i"] == pytest.approx(perfect["si-snr"] - baseline["si-snr"])
    with pytest.raises(ValueError, match="est and targets must be"):
        score_utterance(targets[:, :1], targets, mix)


def test_results_file_round_trip(tmp_path):
    rows = [{"snt_id": f"u{i}", **{m: float(i + k) for k, m in enumerate(METRICS)}} for i in range(3)]
    path = tmp_path / "test_results.csv"
    means = write_results(path, rows)
    assert means == {m: 1.0 + k for k, m in enumerate(METRICS)}
    with open(path, newline="") as f:
        assert tuple(next(csv.reader(f))) == COLUMNS
    assert read_means(path) == means
    assert read_results(path, ["si-snr_i"]) == {f"u{i}": {"si-snr_i": float(i + 3)} for i in range(3)}
    assert read_means(tmp_path / "absent.csv") is None
    with pytest.raises(ValueError, match="no utterance to write"):
        write_results(tmp_path / "empty.csv", [])
    assert np.isclose(sum(r["sdr"] for r in rows) / 3, means["sdr"])
