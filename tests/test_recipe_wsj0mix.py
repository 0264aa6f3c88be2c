"""recipes/WSJ0Mix/separation/train.py end to end on a tiny corpus of real speech (CPU)."""

import csv
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, WSJ0MIX, logged_epochs, recipe_environment

RECIPE = WSJ0MIX / "separation"
TINY = ["--model_config", "{dim: 8, num_blocks: 1}", "--training_signal_len", "4000", "--dm_num_mixtures", "4",
        "--n_audio_to_save", "1", "--device", "cpu", "--noprogressbar"]


def command(hparams, output, corpus, *extra, launcher=(sys.executable,)):
    return [*launcher, "train.py", f"hparams/{hparams}", "--data_folder", str(corpus),
            "--base_folder_dm", str(corpus / "raw" / "tr"), "--dm_speaker_prefix", "null",
            "--output_folder", str(output), *TINY, *extra]


def run(cmd, env=None, timeout=600):
    done = subprocess.run(cmd, cwd=RECIPE, env=env or recipe_environment(), capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.mark.slow
def test_paper_recipe_trains_selects_on_cv_and_tests_every_tt_mixture(tiny_corpus, tmp_path):
    """sepmamba.yaml as is (dynamic mixing in the paper's style), two short epochs."""
    out = tmp_path / "run"
    run(command("sepmamba.yaml", out, tiny_corpus, "--N_epochs", "2"))
    for name in ("test_results.csv", "train_log.txt", "log.txt", "env.log", "hyperparams.yaml"):
        assert (out / name).is_file(), name
    checkpoints = list((out / "save").glob("CKPT+*/sepmamba.ckpt"))
    assert checkpoints
    assert logged_epochs(out) == [1, 2]
    with open(out / "test_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    tt = sorted(p.stem for p in (tiny_corpus / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))
    assert sorted(r["snt_id"] for r in rows[:-1]) == tt and rows[-1]["snt_id"] == "avg"
    assert list(rows[0]) == ["snt_id", "sdr", "sdr_i", "si-snr", "si-snr_i", "si-sdr", "si-sdr_i"]
    assert all(math.isfinite(float(r[k])) for r in rows for k in r if k != "snt_id")
    assert len(list((out / "save" / "audio_results").glob("*.wav"))) == 5  # mix, 2 references, 2 estimates
    assert "Mean si-snr_i on the test set" in (out / "log.txt").read_text()


@pytest.mark.slow
def test_masking_recipe_on_static_mixtures_with_speed_perturbation(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    run(command("sepmamba-masking.yaml", out, tiny_corpus, "--N_epochs", "1", "--dynamic_mixing", "False",
                "--use_speedperturb", "True"))
    assert {p.name for p in next((out / "save").glob("CKPT+*")).glob("*.ckpt")} >= {
        "encoder.ckpt", "masknet.ckpt", "decoder.ckpt", "counter.ckpt"}
    assert logged_epochs(out) == [1]


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_epoch(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    cmd = command("sepmamba.yaml", out, tiny_corpus, "--N_epochs", "6")
    first = subprocess.Popen(cmd, cwd=RECIPE, env=recipe_environment(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not list((out / "save").glob("CKPT+*/CKPT.yaml")):
            assert first.poll() is None, "the run ended before its first checkpoint"
            assert time.time() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        time.sleep(0.3)  # let the checkpoint files finish
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    assert not (out / "test_results.csv").exists()
    done_before = logged_epochs(out)
    assert 1 <= len(done_before) < 6
    shutil.copy(out / "log.txt", tmp_path / "first-log.txt")
    run(cmd)
    assert logged_epochs(out) == list(range(1, 7))  # continued, not restarted
    assert (out / "test_results.csv").is_file()


@pytest.mark.slow
def test_two_process_ddp_epoch_on_cpu(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable)) or "torchrun"
    cmd = command("sepmamba.yaml", out, tiny_corpus, "--N_epochs", "1", "--distributed_backend", "gloo",
                  launcher=(torchrun, "--nproc_per_node=2", "--master_port", "29517"))
    run(cmd, env=recipe_environment(OMP_NUM_THREADS="1"))
    assert logged_epochs(out) == [1]
    assert (out / "test_results.csv").is_file()


@pytest.mark.slow
def test_a_yaml_without_the_dataset_declaration_is_told_what_to_add(tiny_corpus, tmp_path):
    """Dynamic mixing is declared in the yaml (dm_dataset): a yaml without it stops, naming the key."""
    yaml = (RECIPE / "hparams" / "sepmamba.yaml").read_text().replace("!include:../../../../", f"!include:{REPO}/")
    start = yaml.index("dm_dataset:")
    (tmp_path / "old.yaml").write_text(yaml[:start] + yaml[yaml.index("\n\n", start) + 2:])
    cmd = command("sepmamba.yaml", tmp_path / "run", tiny_corpus, "--N_epochs", "1")
    cmd[cmd.index("hparams/sepmamba.yaml")] = str(tmp_path / "old.yaml")
    done = subprocess.run(cmd, cwd=RECIPE, env=recipe_environment(), capture_output=True, text=True, timeout=600)
    assert done.returncode != 0
    assert "the yaml has no dm_dataset: declare the dataset as recipes/WSJ0Mix" in done.stdout + done.stderr


@pytest.mark.slow
def test_a_budget_in_epochs_repeats_exactly(tiny_corpus, tmp_path):
    """The MiniMix recipe (the demo's) twice with the same tiny budget: identical weights, identical logs."""
    import torch

    weights, logs = [], []
    for name in ("a", "b"):
        out = tmp_path / name
        cmd = [sys.executable, "train.py", "hparams/sepmamba-minimix.yaml", "--data_folder", str(tiny_corpus),
               "--output_folder", str(out), "--N_epochs", "2", "--dm_num_mixtures", "16",
               "--model_config", "{dim: 8, num_blocks: 1}", "--device", "cpu", "--noprogressbar"]
        done = subprocess.run(cmd, cwd=REPO / "recipes" / "MiniMix", env=recipe_environment(), capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        kept = {(folder / "counter.ckpt").read_text().strip(): {
                    (module, key): value for module in ("encoder", "masknet", "decoder")
                    for key, value in torch.load(folder / f"{module}.ckpt", map_location="cpu").items()}
                for folder in (out / "save").glob("CKPT+*")}  # by epoch: the best (cv) and the last
        weights.append(kept)
        log = re.sub(r"^.*?epoch", "epoch", (out / "train_log.txt").read_text(), flags=re.M)
        logs.append(re.sub(r"minutes: \S+", "minutes", log))  # wall-clock time alone may differ
    assert logged_epochs(tmp_path / "a") == [1, 2]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) >= 1
    for epoch, state in weights[0].items():
        assert all(torch.equal(state[k], weights[1][epoch][k]) for k in state), epoch
    assert logs[0] == logs[1]
