"""benchmarks/quality.py --quick: every compared yaml trains through the same train.py, and the table,
plot and README section have the promised shape (not the quality: the budget is a few steps)."""

import math
import os
import subprocess
import sys

import pytest
from conftest import REPO

MODELS = ["sepmamba", "sepformer", "convtasnet", "dprnn"]


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "benchmarks/quality.py", *args], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=900)


@pytest.mark.slow
def test_quick_comparison_table_plot_and_readme_section(tiny_corpus, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- quality:begin -->\nold\n<!-- quality:end -->\nafter\n")
    done = run("--quick", "--data-folder", str(tiny_corpus), "--runs", str(tmp_path / "runs"), "--output",
               str(tmp_path / "quality.md"), "--readme", str(readme))
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    md = (tmp_path / "quality.md").read_text()
    rows = [line.split("|")[1:-1] for line in md.splitlines() if line.startswith("| ") and "model" not in line]
    assert [r[0].strip() for r in rows] == MODELS
    params = [float(r[1].split()[0]) for r in rows]
    assert all(abs(p / params[0] - 1) <= 0.10 for p in params)  # the same parameter budget
    assert all(float(r[2]) > 0 and float(r[3]) > 0 and int(r[4]) == 1 for r in rows)  # GMAC/s, minutes, epochs
    for r in rows:
        mean, half = (float(x) for x in r[5].split("±"))
        assert math.isfinite(mean) and half >= 0
    assert rows[0][7].strip() == "(reference)"
    for r in rows[1:]:
        diff, interval = r[7].split("[")
        low, high = (float(x) for x in interval.rstrip("] ").split(","))
        assert low <= float(diff) <= high and 0 <= float(r[8]) <= 1
    assert "3 tt mixtures; `python benchmarks/quality.py --quick` on" in md
    assert (tmp_path / "runs" / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert readme.read_text() == f"# x\n<!-- quality:begin -->\n{md.rstrip()}\n<!-- quality:end -->\nafter\n"
    for name in MODELS:  # per-utterance results that sepmamba_sb.compare reads
        assert (tmp_path / "runs" / name / "test_results.csv").is_file()


@pytest.mark.slow
def test_unknown_yaml_is_named(tmp_path):
    done = run("--quick", "--yamls", "nope.yaml", "--runs", str(tmp_path))
    assert done.returncode == 2 and "no such recipe yaml" in done.stderr and "nope.yaml" in done.stderr


def test_sweep_reads_a_runs_epochs_best_cv_and_test_score(trained_run):
    """benchmarks/minimix_sweep.py ranks arms by the best cv epoch of each run's train log."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import minimix_sweep
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from sepmamba_sb.runs import mean_test_scores, training_log

    summary = minimix_sweep.summarize(trained_run)
    log = training_log(trained_run)
    best = max(log, key=lambda r: r["valid"])
    assert summary["epochs"] == 3 and summary["minutes"] == log[-1]["minutes"] > 0
    assert (summary["best_cv"], summary["best_epoch"]) == (best["valid"], best["epoch"])
    assert summary["tt_si_snr_i"] == mean_test_scores(trained_run)["si-snr_i"]
    assert summary["params"].endswith("k")
    assert set(minimix_sweep.ARMS) >= {"masking", "wide", "formant"}
    assert all(yaml == "sepmamba-minimix.yaml" for yaml, _, _ in minimix_sweep.ARMS.values())
