"""recipes/WHAMandWHAMR: WHAM!/WHAMR!-layout corpora of real speech, the recipe end to end, bad data."""

import csv
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, WSJ0MIX

from sepmamba_sb.data import wsjmix as prep
from sepmamba_sb.data.wham import folders

RECIPE = REPO / "recipes" / "WHAMandWHAMR" / "separation"
TINY = ["--model_config", "{dim: 8, num_blocks: 1}", "--training_signal_len", "4000", "--dm_num_mixtures", "4",
        "--n_audio_to_save", "1", "--device", "cpu", "--noprogressbar"]


def environment():
    import os

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("SEPMAMBA_SCAN_BACKEND", None)
    return env


def train(hparams, corpus, output, *extra, expect_success=True):
    cmd = [sys.executable, "train.py", f"hparams/{hparams}", "--data_folder", str(corpus), "--base_folder_dm",
           str(corpus / "raw" / "tr"), "--dm_speaker_prefix", "null", "--output_folder", str(output), *TINY, *extra]
    done = subprocess.run(cmd, cwd=RECIPE, env=environment(), capture_output=True, text=True, timeout=600)
    if expect_success:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def logged_epochs(output):
    return [int(m) for m in re.findall(r"^epoch: (\d+),", (output / "train_log.txt").read_text(), re.M)]


def read(path):
    return sf.read(str(path), dtype="float32")[0]


def test_recipe_files_are_links_to_the_wsj0mix_machinery():
    assert (RECIPE / "train.py").is_symlink()
    assert (RECIPE / "train.py").resolve() == (WSJ0MIX / "separation" / "train.py").resolve()
    assert (RECIPE.parent / "prepare_data.py").resolve() == (WSJ0MIX / "prepare_data.py").resolve()


def test_whamr_corpus_layout_and_sums(tiny_whamr_corpus):
    """Every WHAMR! folder; mixtures are the sums of their parts; anechoic sources are the reverberant
    images' direct path (aligned: largest correlation at lag 0); noise at WHAM!'s SNR range."""
    tt = tiny_whamr_corpus / "wav8k" / "min" / "tt"
    assert sorted(p.name for p in tt.iterdir()) == sorted(folders("whamr", 2))
    names = sorted(p.name for p in (tt / "mix_both_reverb").glob("*.wav"))
    assert len(names) == 3
    tolerance = 6 / 32768  # 16-bit rounding of up to 4 files
    for name in names:
        part = {folder: read(tt / folder / name) for folder in folders("whamr", 2)}
        for room in ("anechoic", "reverb"):
            clean = part[f"s1_{room}"] + part[f"s2_{room}"]
            assert np.abs(part[f"mix_clean_{room}"] - clean).max() < tolerance
            assert np.abs(part[f"mix_both_{room}"] - clean - part["noise"]).max() < tolerance
            assert np.abs(part[f"mix_single_{room}"] - part[f"s1_{room}"] - part["noise"]).max() < tolerance
        for s in ("s1", "s2"):
            direct, image = part[f"{s}_anechoic"], part[f"{s}_reverb"]
            lags = np.arange(-40, 41)
            correlation = [np.dot(image[max(0, k):len(image) + min(0, k)], direct[max(0, -k):len(direct) - max(0, k)])
                           for k in lags]
            assert lags[int(np.argmax(correlation))] == 0
        snr = 10 * math.log10(np.mean(np.square(part["s1_anechoic"])) / np.mean(np.square(part["noise"])))
        assert -3.1 <= snr <= 6.1
    assert "babble" in (tiny_whamr_corpus / "LICENSES").read_text()


def test_wham_corpus_layout_and_sums(tiny_wham_corpus):
    cv = tiny_wham_corpus / "wav8k" / "min" / "cv"
    assert sorted(p.name for p in cv.iterdir()) == sorted(folders("wham", 2))
    for path in sorted((cv / "mix_both").glob("*.wav")):
        part = {folder: read(cv / folder / path.name) for folder in folders("wham", 2)}
        assert np.abs(part["mix_both"] - part["s1"] - part["s2"] - part["noise"]).max() < 6 / 32768
        assert np.abs(part["mix_single"] - part["s1"] - part["noise"]).max() < 6 / 32768
        assert np.abs(part["mix_clean"] - part["s1"] - part["s2"]).max() < 6 / 32768


@pytest.mark.slow
def test_whamr_recipe_trains_resumes_and_tests(tiny_whamr_corpus, tmp_path):
    """sepmamba-whamr.yaml as is (dynamic mixing with rooms and the corpus's noise): one epoch, then one
    more on the same folder (resumed, not restarted), and every tt mixture tested."""
    out = tmp_path / "run"
    train("sepmamba-whamr.yaml", tiny_whamr_corpus, out, "--N_epochs", "1")
    assert logged_epochs(out) == [1]
    train("sepmamba-whamr.yaml", tiny_whamr_corpus, out, "--N_epochs", "2")
    assert logged_epochs(out) == [1, 2]
    with open(out / "save" / "whamr_tt.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/tt/mix_both_reverb/" in row["mix_wav"] and "/tt/s2_anechoic/" in row["s2_wav"]
    with open(out / "test_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and rows[-1]["snt_id"] == "avg"
    assert all(math.isfinite(float(r[k])) for r in rows for k in r if k != "snt_id")
    from sepmamba_sb.hub import absolute_paths, export

    card = (export(out, tmp_path / "hub") / "README.md").read_text()
    assert "Conditions: noisy and reverberant mixtures (whamr, task `noisy-reverberant`); targets: the direct" in card
    assert "(WHAMR!, 2 speakers, 8 kHz)" in card and absolute_paths(card) == []


@pytest.mark.slow
def test_wham_recipe_on_noisy_mixtures(tiny_wham_corpus, tmp_path):
    out = tmp_path / "run"
    train("sepmamba-wham.yaml", tiny_wham_corpus, out, "--N_epochs", "1")
    with open(out / "save" / "wham_cv.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/cv/mix_both/" in row["mix_wav"] and "/cv/s1/" in row["s1_wav"]
    assert (out / "test_results.csv").is_file()


@pytest.mark.slow
def test_reverberant_targets_without_dereverberation(tiny_whamr_corpus, tmp_path):
    """dereverberate False: the reverberant images are the targets, in the CSVs and the dynamic mixtures;
    rooms whose target disagrees are refused before training."""
    save = tmp_path / "save"
    prep.prepare_wsjmix(tiny_whamr_corpus, save, dataset="whamr", task="reverberant", dereverberate=False)
    with open(save / "whamr_tr.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/tr/mix_clean_reverb/" in row["mix_wav"] and "/tr/s1_reverb/" in row["s1_wav"]
    done = train("sepmamba-whamr.yaml", tiny_whamr_corpus, tmp_path / "run", "--N_epochs", "1",
                 "--dereverberate", "False", expect_success=False)
    assert done.returncode != 0 and "dm_rooms' target is 'direct' but dereverberate: False" in done.stdout + done.stderr


# ---- bad data: each its own error, naming what is wrong --------------------------------------------------

def test_missing_folder_for_the_task_is_named(tiny_wham_corpus, tmp_path):
    """WHAM! data with WHAMR!'s task: the missing folder is named, with what the split holds."""
    with pytest.raises(FileNotFoundError, match=r"mix_both_reverb does not exist \(the split holds \['mix_both'"):
        prep.prepare_wsjmix(tiny_wham_corpus, tmp_path, dataset="whamr", task="noisy-reverberant")
    with pytest.raises(ValueError, match="the wham dataset has no reverberant mixtures"):
        prep.prepare_wsjmix(tiny_wham_corpus, tmp_path, dataset="wham", task="reverberant")


@pytest.mark.slow
def test_missing_noise_split_is_named(tiny_wham_corpus, tmp_path):
    """Dynamic mixing reads <data_folder>/wav8k/min/tr/noise; a copy of the corpus without it stops the
    run with a message naming that folder."""
    data = tmp_path / "wham"
    splits = data / "wav8k" / "min"
    splits.mkdir(parents=True)
    (data / "raw").symlink_to(tiny_wham_corpus / "raw")
    for split in ("cv", "tt"):
        (splits / split).symlink_to(tiny_wham_corpus / "wav8k" / "min" / split)
    (splits / "tr").mkdir()
    for folder in (tiny_wham_corpus / "wav8k" / "min" / "tr").iterdir():
        if folder.name != "noise":
            (splits / "tr" / folder.name).symlink_to(folder)
    done = train("sepmamba-wham.yaml", data, tmp_path / "run", "--N_epochs", "1", expect_success=False)
    assert done.returncode != 0
    assert f"noise folder {splits / 'tr' / 'noise'} does not exist" in done.stdout + done.stderr


def test_wrong_sample_rate_is_named(tiny_wham_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="wav16k/min/tr does not exist"):
        prep.prepare_wsjmix(tiny_wham_corpus, tmp_path, dataset="wham", task="noisy", sample_rate=16000)
    data = tmp_path / "resampled"
    split = data / "wav8k" / "min" / "tr"
    for folder in ("mix_both", "s1", "s2"):
        (split / folder).mkdir(parents=True)
        sf.write(str(split / folder / "a.wav"), np.zeros(1600, dtype="float32"), 16000)
    with pytest.raises(ValueError, match=r"mix_both/a.wav is sampled at 16000 Hz, but the recipe expects 8000"):
        prep.prepare_wsjmix(data, tmp_path / "save", dataset="wham", task="noisy")


def test_empty_noise_folder_is_named(tmp_path):
    from sepmamba_sb.noise import NoiseSource

    (tmp_path / "noise").mkdir()
    with pytest.raises(ValueError, match="noise folder .*noise holds no .wav files"):
        NoiseSource(tmp_path / "noise", 8000)
