"""sepmamba_sb.compare: per-utterance results of separation runs, aligned and compared."""

import csv

import numpy as np
import pytest
from scipy import stats

from sepmamba_sb import compare as cmp

UPSTREAM_COLUMNS = ["snt_id", "sdr", "sdr_i", "si-snr", "si-snr_i"]  # SpeechBrain's WSJ0Mix recipe


def write_results(path, ids, si_snr_i, sdr_i, columns=UPSTREAM_COLUMNS, order=None):
    rows = [{"snt_id": i, "sdr": s + 1, "sdr_i": s, "si-snr": v + 1, "si-snr_i": v, "si-sdr": 0, "si-sdr_i": 0}
            for i, v, s in zip(ids, si_snr_i, sdr_i, strict=True)]
    if order is not None:
        rows = [rows[k] for k in order]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow({"snt_id": "avg", **{c: 0.0 for c in columns[1:]}})  # skipped
    return path


@pytest.fixture
def two_runs(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"utt{k:03d}" for k in range(60)]
    base = rng.normal(5.0, 4.0, 60)  # a wide spread between utterances
    better = base + 0.5 + rng.normal(0, 0.2, 60)  # a small, consistent gain
    a = write_results(tmp_path / "a.csv", ids, base, base - 0.3)
    b = write_results(tmp_path / "b.csv", ids, better, base - 0.3, order=rng.permutation(60))  # another order
    return a, b, base, better


def test_means_and_intervals_match_scipy(two_runs):
    a, b, base, better = two_runs
    table = cmp.compare([a, b], names=["A", "B"])
    assert [row["name"] for row in table] == ["A", "B"] and table[0]["utterances"] == 60
    low, high = stats.t.interval(0.95, 59, loc=base.mean(), scale=stats.sem(base))
    assert table[0]["si-snr_i"] == pytest.approx(base.mean(), abs=1e-9)
    assert table[0]["si-snr_i_ci"] == pytest.approx((high - low) / 2, rel=1e-9)
    assert table[1]["si-snr_i"] == pytest.approx(better.mean(), abs=1e-9)


def test_paired_difference_finds_what_the_intervals_hide(two_runs):
    a, b, base, better = two_runs
    row = cmp.compare([a, b], names=["A", "B"])[1]
    # the per-run intervals (about +-1 dB) overlap, the paired difference is clearly positive
    assert row["si-snr_i_diff"] == pytest.approx((better - base).mean(), abs=1e-9)
    assert 0.3 < row["si-snr_i_diff_low"] < row["si-snr_i_diff"] < row["si-snr_i_diff_high"] < 0.7
    assert row["si-snr_i_p"] < 1e-10
    # SDRi is the same in both runs: no difference, p = 1
    assert row["sdr_i_diff"] == 0 and row["sdr_i_diff_low"] == 0 and row["sdr_i_p"] == 1.0


def test_bootstrap_interval_covers_the_true_mean_about_95_percent():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        a = rng.normal(0, 1, 40)
        b = a + rng.normal(1.0, 1.0, 40)
        d = cmp.paired_difference(a, b, resamples=2000, seed=trial)
        covered += d.low <= 1.0 <= d.high
    assert 0.88 <= covered / 200 <= 0.99


def test_mismatched_utterances_are_a_clear_error(tmp_path):
    a = write_results(tmp_path / "a.csv", ["u1", "u2", "u3"], [1, 2, 3], [1, 2, 3])
    b = write_results(tmp_path / "b.csv", ["u1", "u2", "u4"], [1, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match=r"B scored other utterances than A: 1 only in B \(e.g. \['u4'\]\)"):
        cmp.compare([a, b], names=["A", "B"])


@pytest.mark.parametrize("content, message", [
    ("snt_id,sdr\nu1,3\n", r"no column \['si-snr_i', 'sdr_i'\]"),
    ("snt_id,si-snr_i,sdr_i\nu1,3,1\nu1,4,2\n", "utterance 'u1' appears twice"),
    ("snt_id,si-snr_i,sdr_i\nu1,abc,1\n", r"b.csv:2: si-snr_i = 'abc' is not a number"),
    ("snt_id,si-snr_i,sdr_i\nu1,nan,1\n", "is not finite"),
    ("snt_id,si-snr_i,sdr_i\navg,1,1\n", "holds no utterance"),
])
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "b.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        cmp.read_results(path)
    with pytest.raises(ValueError, match="does not exist"):
        cmp.read_results(tmp_path / "missing.csv")


def test_command_line(two_runs, capsys):
    a, b, _, _ = two_runs
    cmp.main([str(a), str(b), "--names", "sepmamba", "convtasnet", "--resamples", "500"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("| run | utterances | si-snr_i (dB, 95% CI)")
    assert out[2].startswith("| sepmamba | 60 |") and "(reference)" in out[2]
    assert out[3].startswith("| convtasnet | 60 |") and " +0.5" in out[3]
    with pytest.raises(SystemExit, match="2 results files but 1 names"):
        cmp.main([str(a), str(b), "--names", "one"])
