"""benchmarks/efficiency.py --quick: the table, CSV, plot and README section have the promised shape
(not the speed)."""

import csv
import os
import subprocess
import sys

import pytest
from conftest import REPO


@pytest.mark.slow
def test_quick_run_writes_table_csv_plot_and_readme_section(tmp_path):
    models = ["sepmamba-S", "sepformer", "convtasnet"]
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n<!-- efficiency-cpu:begin -->\nold numbers\n<!-- efficiency-cpu:end -->\nafter\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "benchmarks/efficiency.py", "--quick", "--models", *models, "--out",
                           str(tmp_path / "out"), "--readme", str(readme)],
                          cwd=REPO, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    md = (tmp_path / "out" / "efficiency-cpu.md").read_text()
    table = md.splitlines()
    header = next(line for line in table if line.startswith("| model"))
    assert header.count("|") == 9  # model, params, GMAC/s, paper, inference, train step, 2 peaks
    rows = [line for line in table if line.startswith("| ") and not line.startswith("| model")]
    assert [r.split("|")[1].strip() for r in rows] == models
    assert any(line.startswith("SepMamba S: inference") and "SepFormer" in line for line in table)
    assert table[0].startswith("`python benchmarks/efficiency.py --quick") and "threads; torch" in table[0]
    with open(tmp_path / "out" / "efficiency-cpu.csv", newline="") as f:
        records = list(csv.DictReader(f))
    assert [r["model"] for r in records] == models
    assert all(float(r["forward_ms"]) > 0 and float(r["train_ms"]) > 0 and float(r["gmac_per_s"]) > 0
               for r in records)
    assert (tmp_path / "out" / "efficiency-cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the README section is the table, word for word, with the plot linked relative to the README
    section = f"<!-- efficiency-cpu:begin -->\n{md}<!-- efficiency-cpu:end -->"
    assert readme.read_text() == f"# x\n\nbefore\n{section}\nafter\n"
    assert "](out/efficiency-cpu.png)" in md


@pytest.mark.slow
def test_bad_arguments_are_named(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for args, expected in ((["--models", "nope"], "unknown models ['nope']"), (["--batch", "0"], "--batch must be"),
                           (["--readme", str(tmp_path / "missing.md")], "missing.md: no such file"),
                           (["--device", "tpu"], "--device")):
        done = subprocess.run([sys.executable, "benchmarks/efficiency.py", *args, "--out", str(tmp_path)],
                              cwd=REPO, capture_output=True, text=True, env=env, timeout=120)
        assert done.returncode == 2 and expected in done.stderr, (args, done.stderr[-2000:])


def test_readme_tables_are_the_committed_script_output():
    """benchmarks/README.md's efficiency sections are benchmarks/results/efficiency-<device>.md, unedited."""
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for device in ("cpu", "cuda"):
        begin, end = f"<!-- efficiency-{device}:begin -->\n", f"\n<!-- efficiency-{device}:end -->"
        section = readme[readme.index(begin) + len(begin): readme.index(end)]
        output = (REPO / "benchmarks" / "results" / f"efficiency-{device}.md").read_text()
        assert section == output.rstrip("\n"), f"README's {device} section differs from the script's output"
        assert f"](results/efficiency-{device}.png)" in section
        assert (REPO / "benchmarks" / "results" / f"efficiency-{device}.png").is_file()


@pytest.mark.slow
def test_precision_run_writes_a_row_per_model_and_precision(tmp_path):
    """--precision: each model in each precision (converted by to_precision), int8 weights smaller, S's ratios."""
    from sepmamba_sb.precision import bf16_supported

    precisions = ["fp32", "int8"] + (["bf16"] if bf16_supported() else [])
    models = ["sepmamba-S", "convtasnet"]
    readme = tmp_path / "README.md"
    readme.write_text("<!-- efficiency-cpu-precision:begin -->\n<!-- efficiency-cpu-precision:end -->\n")
    done = subprocess.run([sys.executable, "benchmarks/efficiency.py", "--quick", "--models", *models, "--precision",
                           *precisions, "--out", str(tmp_path / "out"), "--readme", str(readme)],
                          cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(REPO)),
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    md = (tmp_path / "out" / "efficiency-cpu-precision.md").read_text()
    assert md in readme.read_text() and "SepMamba S's fastest precision is" in md
    with open(tmp_path / "out" / "efficiency-cpu-precision.csv", newline="") as f:
        records = {(r["model"], r["precision"]): r for r in csv.DictReader(f)}
    assert sorted(records) == sorted((m, p) for m in models for p in precisions)
    assert all(float(r["forward_ms"]) > 0 and float(r["resident_mb"]) > 0 for r in records.values())
    s_fp32, s_int8 = (float(records[("sepmamba-S", p)]["weights_mb"]) for p in ("fp32", "int8"))
    assert s_int8 < 0.5 * s_fp32  # the projections' int8 values and scales only


def test_readme_precision_sections_are_the_committed_script_output():
    readme = (REPO / "benchmarks" / "README.md").read_text()
    for name in ("efficiency-cpu-precision", "efficiency-cpu-precision-kept-memory", "streaming-cpu-precision",
                 "precision-accuracy"):
        begin, end = f"<!-- {name}:begin -->\n", f"\n<!-- {name}:end -->"
        section = readme[readme.index(begin) + len(begin): readme.index(end)]
        output = (REPO / "benchmarks" / "results" / f"{name}.md").read_text()
        assert section == output.rstrip("\n"), f"README's {name} section differs from the script's output"
