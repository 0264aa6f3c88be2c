"""recipes/WHAMandWHAMR: WHAM!/WHAMR!-layout corpora of real speech, the recipe end to end, bad data."""

import csv
import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, WSJ0MIX, logged_epochs, recipe_environment

from sepmamba_sb.data import wsjmix as prep
from sepmamba_sb.data.wham import folders
from sepmamba_sb.noise import loudness

RECIPE = REPO / "recipes" / "WHAMandWHAMR" / "separation"
TINY = ["--model_config", "{dim: 8, num_blocks: 1}", "--training_signal_len", "4000", "--dm_num_mixtures", "4",
        "--n_audio_to_save", "1", "--device", "cpu", "--noprogressbar"]


def train(hparams, corpus, output, *extra, expect_success=True):
    cmd = [sys.executable, "train.py", f"hparams/{hparams}", "--data_folder", str(corpus), "--base_folder_dm",
           str(corpus / "raw" / "tr"), "--dm_speaker_prefix", "null", "--output_folder", str(output), *TINY, *extra]
    done = subprocess.run(cmd, cwd=RECIPE, env=recipe_environment(), capture_output=True, text=True, timeout=600)
    if expect_success:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


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
        louder = max(loudness(part[f"s{s}_anechoic"], 8000) for s in (1, 2))
        assert -3.1 <= louder - loudness(part["noise"], 8000) <= 6.1  # WHAM!'s SNR: BS.1770 loudness
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


def test_static_mixtures_name_their_noise_and_images_and_enhancement_reads_mix_single(tiny_whamr_corpus, tmp_path):
    """Noisy tasks' CSVs name each mixture's noise, reverberant ones with direct-path targets the reverberant
    images (what speed perturbation rebuilds a static mixture from); the enhancement task reads mix_single."""
    prep.prepare_wsjmix(tiny_whamr_corpus, tmp_path / "a", dataset="whamr", task="noisy-reverberant")
    with open(tmp_path / "a" / "whamr_tr.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/tr/noise/" in row["noise_wav"] and "/tr/s2_reverb/" in row["s2_image_wav"]
    assert "/tr/s2_anechoic/" in row["s2_wav"]
    prep.prepare_wsjmix(tiny_whamr_corpus, tmp_path / "b", num_spks=1, dataset="whamr", task="enhancement")
    with open(tmp_path / "b" / "whamr_cv.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/cv/mix_single_reverb/" in row["mix_wav"] and "/cv/s1_anechoic/" in row["s1_wav"]
    assert "s2_wav" not in row and "/cv/s1_reverb/" in row["s1_image_wav"]
    assert prep.folders_for("wham", "enhancement", True, 1) == ("mix_single", ["s1"])
    assert prep.static_folders("wsj0mix", "clean", True, 2) == {}
    with pytest.raises(ValueError, match="the enhancement task .mix_single. has one speaker"):
        prep.folders_for("whamr", "enhancement", True, 2)


def test_speed_perturbed_static_mixtures_keep_their_noise_and_reverberation(tiny_whamr_corpus):
    """A static WHAMR! mixture rebuilt after speed perturbation: its residual after the perturbed reverberant
    images is its noise, at about the SNR it had (loudness of the louder target over the noise, within 0.5 LU:
    the speed change moves the speech's spectrum under BS.1770's K-weighting, and the noise is cut to the
    perturbed length);
    each target is perturbed as its image is (same speed: their correlation still peaks at lag 0)."""
    import torch
    from speechbrain.augment.time_domain import SpeedPerturb

    from sepmamba_sb.data.mixing import speed_perturbed

    tr = tiny_whamr_corpus / "wav8k" / "min" / "tr"
    perturb = SpeedPerturb(8000, speeds=[95, 105])  # the recipes' speed_changes, 100 aside
    for name in sorted(p.name for p in (tr / "mix_both_reverb").glob("*.wav")):
        part = {folder: torch.from_numpy(read(tr / folder / name))[None] for folder in folders("whamr", 2)}
        targets = torch.stack([part["s1_anechoic"], part["s2_anechoic"]], -1)
        images = torch.stack([part["s1_reverb"], part["s2_reverb"]], -1)
        torch.manual_seed(0)
        mix, perturbed = speed_perturbed(perturb, targets, images, part["noise"])
        torch.manual_seed(0)
        images_only, perturbed_images = speed_perturbed(perturb, images)  # the same speeds, the images alone
        length = mix.shape[-1]
        assert perturbed.shape == (1, length, 2) and length <= targets.shape[1]  # cut to the shortest, the noise's
        assert not torch.allclose(perturbed[0, :, 0], targets[0, :length, 0], atol=1e-3)  # perturbed
        noise = part["noise"][0, :length]
        assert torch.allclose(mix[0] - images_only[0, :length], noise, atol=1e-6)
        before = max(loudness(t.numpy(), 8000) for t in targets[0].T) - loudness(part["noise"][0].numpy(), 8000)
        after = max(loudness(t.numpy(), 8000) for t in perturbed[0].T) - loudness(noise.numpy(), 8000)
        assert after == pytest.approx(before, abs=0.5)
        for s in range(2):
            direct, image = perturbed[0, :, s].numpy(), perturbed_images[0, :length, s].numpy()
            lags = np.arange(-40, 41)
            correlation = [np.dot(image[max(0, k):len(image) + min(0, k)], direct[max(0, -k):len(direct) - max(0, k)])
                           for k in lags]
            assert lags[int(np.argmax(correlation))] == 0


def test_the_noise_folder_follows_the_sample_rate(tiny_wham_corpus):
    """The recipe reads wav8k's noise at 8 kHz and wav16k's at 16 kHz; a missing one is named."""
    from hyperpyyaml import load_hyperpyyaml

    for rate, folder in ((8000, "wav8k"), (16000, "wav16k")):
        with open(RECIPE / "hparams" / "sepmamba-wham.yaml", encoding="utf-8") as f:  # from the file: its !include
            hparams = load_hyperpyyaml(f, {"data_folder": str(tiny_wham_corpus), "sample_rate": rate})
        assert hparams["dm_noise"].keywords["folder"] == tiny_wham_corpus / folder / "min" / "tr" / "noise"
    assert len(hparams["dm_noise"].keywords) == 3
    with pytest.raises(FileNotFoundError, match="noise folder .*/wav16k/min/tr/noise does not exist"):
        hparams["dm_noise"]()


@pytest.mark.slow
def test_static_whamr_training_with_speed_perturbation(tiny_whamr_corpus, tmp_path):
    """Static mixtures (no dynamic mixing) rebuilt after speed perturbation from their noise and reverberant
    images train; CSVs prepared without those columns are refused, naming what to do."""
    out = tmp_path / "run"
    train("sepmamba-whamr.yaml", tiny_whamr_corpus, out, "--N_epochs", "1", "--dynamic_mixing", "False",
          "--use_speedperturb", "True")
    assert logged_epochs(out) == [1] and (out / "test_results.csv").is_file()
    train_csv = out / "save" / "whamr_tr.csv"
    with open(train_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    kept = [k for k in rows[0] if not k.startswith("noise")]
    with open(train_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=kept, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    done = train("sepmamba-whamr.yaml", tiny_whamr_corpus, out, "--N_epochs", "2", "--dynamic_mixing", "False",
                 "--use_speedperturb", "True", expect_success=False)
    assert done.returncode != 0 and "has no ['noise_wav']" in done.stdout + done.stderr


@pytest.mark.slow
def test_wham_enhancement_task(tiny_wham_corpus, tmp_path):
    """task enhancement (num_spks 1): mix_single against s1, on one-speaker dynamic mixtures with noise."""
    out = tmp_path / "run"
    train("sepmamba-wham.yaml", tiny_wham_corpus, out, "--N_epochs", "1", "--task", "enhancement", "--num_spks", "1")
    with open(out / "save" / "wham_tt.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/tt/mix_single/" in row["mix_wav"] and "s2_wav" not in row
    with open(out / "test_results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all(math.isfinite(float(r["si-snr"])) for r in rows)


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
    """The noise of <data_folder>/wav8k/min/tr/noise (which the CSVs and dynamic mixing read): a copy of the
    corpus without it stops the run with a message naming that folder."""
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
    assert f"{splits / 'tr' / 'noise'} does not exist" in done.stdout + done.stderr


def test_wrong_sample_rate_is_named(tiny_wham_corpus, tmp_path):
    with pytest.raises(FileNotFoundError, match="wav16k/min/tr does not exist"):
        prep.prepare_wsjmix(tiny_wham_corpus, tmp_path, dataset="wham", task="noisy", sample_rate=16000)
    data = tmp_path / "resampled"
    split = data / "wav8k" / "min" / "tr"
    for folder in ("mix_both", "s1", "s2", "noise"):
        (split / folder).mkdir(parents=True)
        sf.write(str(split / folder / "a.wav"), np.zeros(1600, dtype="float32"), 16000)
    with pytest.raises(ValueError, match=r"mix_both/a.wav is sampled at 16000 Hz, but the recipe expects 8000"):
        prep.prepare_wsjmix(data, tmp_path / "save", dataset="wham", task="noisy")


def test_empty_noise_folder_is_named(tmp_path):
    from sepmamba_sb.noise import NoiseSource

    (tmp_path / "noise").mkdir()
    with pytest.raises(ValueError, match="noise folder .*noise holds no .wav or .flac files"):
        NoiseSource(tmp_path / "noise", 8000)
