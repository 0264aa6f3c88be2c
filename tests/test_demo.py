"""The demo's pictures (sepmamba_sb.plots) and the run-folder readers, on the briefly trained MiniMix run of
the test session."""

import re

import numpy as np
import pytest
from conftest import REPO

from sepmamba_sb.metrics import read_results
from sepmamba_sb.plots import spectrograms, training_curve, validation_curves
from sepmamba_sb.runs import mean_test_scores, training_log

PNG = b"\x89PNG\r\n\x1a\n"


def test_training_curve_and_spectrograms_are_pictures(trained_run, tmp_path):
    training_curve(training_log(trained_run), tmp_path / "curve.png", "a run")
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG
    validation_curves({"a": training_log(trained_run)}, tmp_path / "curves.png", "runs")
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    rng = np.random.default_rng(0)
    signals = {name: rng.standard_normal(8000).astype("float32") for name in ("mixture", "estimate 1", "estimate 2")}
    spectrograms(signals, 8000, tmp_path / "spec.png")
    assert (tmp_path / "spec.png").read_bytes()[:8] == PNG


def test_run_readers_read_the_recipes_files(trained_run):
    means = mean_test_scores(trained_run)
    scores = read_results(trained_run / "test_results.csv", ["si-snr_i"])
    assert set(means) == {"sdr", "sdr_i", "si-snr", "si-snr_i", "si-sdr", "si-sdr_i"}
    assert len(scores) == 3 and np.mean([s["si-snr_i"] for s in scores.values()]) == pytest.approx(means["si-snr_i"],
                                                                                                   abs=1e-3)
    log = training_log(trained_run)
    assert [r["epoch"] for r in log] == list(range(1, len(log) + 1)) and len(log) >= 1
    assert all(r["minutes"] > 0 and np.isfinite(r["valid"]) for r in log)
    assert all(b["minutes"] > a["minutes"] for a, b in zip(log, log[1:], strict=False))


def test_make_demo_is_the_readme_first_command():
    readme = (REPO / "README.md").read_text()
    assert readme.index("make demo") < readme.index("make test")
    assert re.search(r"^demo: build\n\t\$\(PY\) recipes/MiniMix/demo.py", (REPO / "Makefile").read_text(), re.M)
