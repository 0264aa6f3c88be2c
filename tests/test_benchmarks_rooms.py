"""benchmarks/rooms_speed.py and benchmarks/reverb_comparison.py: their tables, on tiny settings."""

import math
import os
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow  # every test here starts Python subprocesses


def run(*args):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=600)


def test_rooms_speed_table(tmp_path):
    done = run("benchmarks/rooms_speed.py", "--items", "2", "--workers", "0", "--seconds", "1",
               "--output", str(tmp_path / "speed.md"))
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split("|")[1:-1] for line in (tmp_path / "speed.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| rooms")]
    assert [(r[0].strip(), r[1].strip()) for r in rows] == [
        ("none", "0"), ("WHAMR! low, 0.1-0.3 s", "0"), ("WHAMR! medium, 0.2-0.6 s", "0"),
        ("WHAMR! high, 0.4-1 s", "0"), ("WHAMR!'s three ranges, one drawn per room", "0")]
    assert all(float(r[2]) > 0 for r in rows)
    assert run("benchmarks/rooms_speed.py", "--items", "0").returncode == 2


def test_reverb_comparison_table(trained_run, tiny_whamr_corpus, tmp_path):
    done = run("benchmarks/reverb_comparison.py", "--corpus", str(tiny_whamr_corpus), "--runs", str(trained_run),
               "--output", str(tmp_path / "cmp.md"))
    assert done.returncode == 0, done.stderr[-3000:]
    lines = (tmp_path / "cmp.md").read_text().splitlines()
    assert lines[0].startswith("3 test mixtures of")
    (row,) = [line for line in lines if line.startswith("| `")]
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[:2] == ["`sepmamba-minimix`", "clean, anechoic mixtures (wsj0mix, task `clean`)"]
    assert all(math.isfinite(float(c)) for c in cells[2:]) and len(cells) == 5
    missing = run("benchmarks/reverb_comparison.py", "--corpus", str(tmp_path), "--runs", str(trained_run))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
