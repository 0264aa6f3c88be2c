"""recipes/LibriMix: LibriMix-layout corpora at 8 and 16 kHz with two and three speakers, the recipe on their
clean and noisy mixtures end to end (train, resume, test), dynamic mixing from a LibriSpeech-layout tree, and
bad data named."""

import csv
import math
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import REPO, WSJ0MIX, logged_epochs, recipe_environment, write_speakers

from sepmamba_sb.data import wsjmix as prep
from sepmamba_sb.data.__main__ import main as build
from sepmamba_sb.data.wham import LIBRIMIX_LOUDNESS, folders
from sepmamba_sb.noise import loudness

RECIPE = REPO / "recipes" / "LibriMix" / "separation"
TINY = ["--model_changes", "{dim: 8, num_blocks: 1}", "--dm_num_mixtures", "4", "--n_audio_to_save", "1",
        "--device", "cpu", "--noprogressbar"]
SPLITS = ("train-360", "dev", "test")
MIXTURES = (4, 3, 3)  # per split


def speakers(root, sample_rate, count=10):
    """``count`` speakers of noise at distinct levels, three 2.5-3.5 s recordings each."""
    return write_speakers(root, [0.05 * (1 + s / 5) for s in range(count)], 3, [2.5, 3.0, 3.5], sample_rate)


@pytest.fixture(scope="module")
def librimix(tmp_path_factory):
    """``(num_spks, sample_rate) -> LibriMix-layout corpus`` written by ``python -m sepmamba_sb.data``, once each."""
    built = {}

    def corpus(num_spks, sample_rate):
        if (num_spks, sample_rate) not in built:
            root = tmp_path_factory.mktemp(f"libri{num_spks}mix-{sample_rate}")
            out = root / f"Libri{num_spks}Mix"
            assert build(["--speakers-folder", str(speakers(root / "voices", sample_rate)), "--out", str(out),
                          "--layout", "librimix", "--num-spks", str(num_spks), "--sample-rate", str(sample_rate),
                          "--mixtures", *map(str, MIXTURES)]) == 0
            built[num_spks, sample_rate] = out
        return built[num_spks, sample_rate]

    return corpus


def train(corpus, output, num_spks, sample_rate, *extra, expect_success=True):
    cmd = [sys.executable, "train.py", f"hparams/sepmamba-libri{num_spks}mix.yaml", "--data_folder", str(corpus),
           "--base_folder_dm", str(corpus / "raw" / "tr"), "--output_folder", str(output),
           "--sample_rate", str(sample_rate), "--training_signal_len", str(sample_rate // 2), *TINY, *extra]
    done = subprocess.run(cmd, cwd=RECIPE, env=recipe_environment(), capture_output=True, text=True, timeout=600)
    if expect_success:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


def test_recipe_files_are_links_to_the_wsj0mix_machinery():
    assert (RECIPE / "train.py").is_symlink()
    assert (RECIPE / "train.py").resolve() == (WSJ0MIX / "separation" / "train.py").resolve()
    assert (RECIPE.parent / "prepare_data.py").resolve() == (WSJ0MIX / "prepare_data.py").resolve()


@pytest.mark.parametrize("num_spks, sample_rate", [(2, 8000), (3, 16000)])
def test_librimix_corpus_layout_rate_and_sums(librimix, num_spks, sample_rate):
    """LibriMix's splits and WHAM!'s folders under wav8k or wav16k, every file at that rate, the mixtures the
    sums of their parts, the speakers of a mixture distinct."""
    root = librimix(num_spks, sample_rate) / f"wav{sample_rate // 1000}k" / "min"
    assert sorted(p.name for p in root.iterdir()) == sorted(SPLITS)
    for split, count in zip(SPLITS, MIXTURES, strict=True):
        assert sorted(p.name for p in (root / split).iterdir()) == sorted(folders("wham", num_spks))
        names = sorted(p.name for p in (root / split / "mix_both").glob("*.wav"))
        assert len(names) == count
        for name in names:
            part = {f: sf.read(str(root / split / f / name), dtype="float32") for f in folders("wham", num_spks)}
            assert {rate for _, rate in part.values()} == {sample_rate}
            part = {f: audio for f, (audio, _) in part.items()}
            sources = sum(part[f"s{i + 1}"] for i in range(num_spks))
            tolerance = (num_spks + 2) / 32768  # 16-bit rounding of each file
            assert np.abs(part["mix_clean"] - sources).max() < tolerance
            assert np.abs(part["mix_both"] - sources - part["noise"]).max() < tolerance
            assert np.abs(part["mix_single"] - part["s1"] - part["noise"]).max() < tolerance
            # LibriMix's levels: sources at U(-33, -25) LUFS, noise at U(-38, -30) (one gain on all may lower them)
            levels = [loudness(part[f"s{i + 1}"], sample_rate) for i in range(num_spks)]
            assert max(levels) <= -24.9 and max(levels) - min(levels) <= 8.1
            assert all(-13.1 <= loudness(part["noise"], sample_rate) - level <= 3.1 for level in levels)
            talkers = name.split("_")[0::3][:num_spks]  # <speaker>_<n>_<level>_... per source
            assert len(set(talkers)) == num_spks


@pytest.mark.slow
@pytest.mark.parametrize("num_spks, sample_rate", [(2, 8000), (2, 16000), (3, 8000), (3, 16000)])
def test_recipe_trains_resumes_and_tests_clean_and_noisy(librimix, tmp_path, num_spks, sample_rate):
    """For each task: one epoch, then one more on the same folder (resumed, not restarted), the test set
    scored at full length; the CSVs read the task's mixtures at the rate's folder, and the exported model's
    card names the corpus and the rate."""
    corpus = librimix(num_spks, sample_rate)
    rate = f"wav{sample_rate // 1000}k"
    for task, mixture in (("clean", "mix_clean"), ("noisy", "mix_both")):
        out = tmp_path / task
        train(corpus, out, num_spks, sample_rate, "--task", task, "--N_epochs", "1")
        assert logged_epochs(out) == [1]
        train(corpus, out, num_spks, sample_rate, "--task", task, "--N_epochs", "2")
        assert logged_epochs(out) == [1, 2]
        with open(out / "save" / f"libri{num_spks}mix_train-360.csv", newline="") as f:
            row = next(csv.DictReader(f))
        assert f"/{rate}/min/train-360/{mixture}/" in row["mix_wav"]
        assert f"/{rate}/min/train-360/s{num_spks}/" in row[f"s{num_spks}_wav"]
        assert ("noise_wav" in row) == (task == "noisy")
        with open(out / "test_results.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        tested = sorted(p.stem for p in (corpus / rate / "min" / "test" / mixture).glob("*.wav"))
        assert sorted(r["snt_id"] for r in rows[:-1]) == tested and rows[-1]["snt_id"] == "avg"
        assert all(math.isfinite(float(r[k])) for r in rows for k in r if k != "snt_id")
    from sepmamba_sb.hub import export

    card = (export(out, tmp_path / "hub") / "README.md").read_text()
    assert f"(Libri{num_spks}Mix, {num_spks} speakers, {sample_rate // 1000} kHz)" in card
    assert "Conditions: noisy, anechoic mixtures (librimix, task `noisy`)" in card
    assert f"separates {num_spks} speakers at {sample_rate} Hz" in card


def test_the_recipes_noise_snr_range_is_librimixs():
    """The yaml's SNR range for noisy dynamic mixtures, [1, 11] dB, is the 5th to 95th percentile of LibriMix's
    louder-source SNR for two speakers (each source's loudness from U(-33, -25) LUFS, the noise's 5 LU lower)."""
    from hyperpyyaml import load_hyperpyyaml

    low, high = LIBRIMIX_LOUDNESS
    rng = np.random.default_rng(0)
    snr = rng.uniform(low, high, (200_000, 2)).max(axis=1) - rng.uniform(low - 5, high - 5, 200_000)
    with open(RECIPE / "hparams" / "sepmamba-libri2mix.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": "-", "task": "noisy"})
    assert hparams["dm_noise"].keywords["snr"] == [round(v) for v in np.percentile(snr, [5, 95])] == [1, 11]


def test_dynamic_mixing_from_a_librispeech_tree(tmp_path):
    """``<speaker>/<chapter>/<speaker>-<chapter>-<n>.flac``: the speakers are the top folders (not the chapters),
    the two of a mixture always differ, and 16 kHz flac is resampled once into wav for an 8 kHz recipe."""
    from sepmamba_sb.data.mixing import DynamicMixingDataset

    tree = tmp_path / "LibriSpeech" / "train-clean-100"
    rng = np.random.default_rng(0)
    for speaker in ("19", "26", "27"):
        for chapter in ("198", "496"):
            for n in range(2):
                path = tree / speaker / chapter / f"{speaker}-{chapter}-{n:04d}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), (0.1 * rng.standard_normal(16000)).astype("float32"), 16000)
    data = DynamicMixingDataset(tree, num_mixtures=40, num_spks=2, sample_rate=8000, segment=4000, style="sepmamba",
                                cache_folder=tmp_path / "cache")
    assert sorted(data.speakers) == ["19", "26", "27"] and all(len(f) == 4 for f in data.speakers.values())
    drawn = set()
    for i in range(len(data)):
        item = data[i]
        first, second = item["id"].split("_")[0].split("+")  # <speaker>+<speaker>_e<epoch>_<index>
        assert first != second
        drawn.add(frozenset((first, second)))
        assert item["mix_sig"].shape == item["s1_sig"].shape == item["s2_sig"].shape
        assert item["mix_sig"].shape[0] <= 4000
    assert len(drawn) == 3  # every pair of the three speakers
    cached = sorted(p.relative_to(tmp_path / "cache" / "8000").as_posix() for p in (tmp_path / "cache").rglob("*.*"))
    assert cached and all(name.endswith(".wav") for name in cached)
    assert sf.info(str(tmp_path / "cache" / "8000" / cached[0])).samplerate == 8000


# ---- bad data: each its own error, naming what is wrong --------------------------------------------------

def test_missing_split_is_named(librimix, tmp_path):
    data = tmp_path / "Libri2Mix"
    shutil.copytree(librimix(2, 8000), data, symlinks=True)
    shutil.rmtree(data / "wav8k" / "min" / "dev")
    with pytest.raises(FileNotFoundError, match=r"wav8k/min/dev does not exist \(.*holds \['test', 'train-360'\]\): "
                                                r"data_folder must hold wav8k/min/\{train-360,dev,test\}"):
        prep.prepare_wsjmix(data, tmp_path / "save", dataset="librimix")
    with pytest.raises(FileNotFoundError, match=r"wav8k/min/train-100 does not exist"):
        prep.prepare_wsjmix(librimix(2, 8000), tmp_path / "save", dataset="librimix", train_split="train-100")
    with pytest.raises(ValueError, match=r"train_split must be one of \('train-360', 'train-100'\) \(LibriMix's "
                                         r"training sets\), got 'train-460'"):
        prep.prepare_wsjmix(librimix(2, 8000), tmp_path / "save", dataset="librimix", train_split="train-460")


def test_wrong_rate_is_named(librimix, tmp_path):
    """A 16 kHz recipe on an 8 kHz corpus: the missing wav16k folder is named, with what there is; a file at
    the wrong rate inside wav8k is named with both rates."""
    with pytest.raises(FileNotFoundError, match=r"wav16k/min/train-360 does not exist"):
        prep.prepare_wsjmix(librimix(2, 8000), tmp_path / "save", dataset="librimix", sample_rate=16000)
    data = tmp_path / "Libri2Mix"
    shutil.copytree(librimix(2, 8000), data, symlinks=True)
    first = sorted((data / "wav8k" / "min" / "test" / "s2").glob("*.wav"))[0]
    sf.write(str(first), np.zeros(1600, dtype="float32"), 16000)
    with pytest.raises(ValueError, match=re.escape(f"test/s2/{first.name} is sampled at 16000 Hz, but the recipe "
                                                   "expects 8000 Hz")):
        prep.prepare_wsjmix(data, tmp_path / "save", dataset="librimix")


def test_missing_noise_is_named(librimix, tmp_path):
    """The noisy task without the noise folder: the data preparation names it; the corpus builder names a
    missing noise split of --noise-folder in one line."""
    data = tmp_path / "Libri2Mix"
    shutil.copytree(librimix(2, 8000), data, symlinks=True)
    shutil.rmtree(data / "wav8k" / "min" / "train-360" / "noise")
    prep.prepare_wsjmix(data, tmp_path / "clean", dataset="librimix", task="clean")  # the clean task needs none
    with pytest.raises(FileNotFoundError, match=r"train-360/noise does not exist \(the split holds \['mix_both', "):
        prep.prepare_wsjmix(data, tmp_path / "noisy", dataset="librimix", task="noisy")
    noise = tmp_path / "wham_noise"
    for split in ("tr", "cv"):  # no tt
        (noise / split).mkdir(parents=True)
        sf.write(str(noise / split / "n.wav"), np.zeros(8000, dtype="float32"), 8000)
    done = subprocess.run([sys.executable, "-m", "sepmamba_sb.data", "--speakers-folder",
                           str(speakers(tmp_path / "voices", 8000)), "--out", str(tmp_path / "built"), "--layout",
                           "librimix", "--noise-folder", str(noise), "--mixtures", "2", "2", "2"],
                          env=recipe_environment(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    expected = f"python -m sepmamba_sb.data: noise folder {noise / 'tt'} does not exist"
    assert done.stderr.strip().splitlines() == [expected]  # one line, before any work


def test_speaker_count_and_data_disagree(librimix, tmp_path):
    with pytest.raises(ValueError, match=r"train-360/s3 exists, but num_spks is 2: this looks like 3-speaker data"):
        prep.prepare_wsjmix(librimix(3, 16000), tmp_path / "a", dataset="librimix", sample_rate=16000)
    with pytest.raises(FileNotFoundError, match=r"train-360/s3 does not exist"):
        prep.prepare_wsjmix(librimix(2, 8000), tmp_path / "b", num_spks=3, dataset="librimix")
    with pytest.raises(ValueError, match="the librimix dataset has no noisy-reverberant mixtures: use whamr"):
        prep.prepare_wsjmix(librimix(2, 8000), tmp_path / "c", dataset="librimix", task="noisy-reverberant")


def test_csv_names_are_speechbrains(librimix, tmp_path):
    """libri<n>mix_{train-360,dev,test}.csv, as SpeechBrain's LibriMix recipe names them; train-100 too."""
    save = tmp_path / "save"
    prep.prepare_wsjmix(librimix(3, 16000), save, num_spks=3, sample_rate=16000, dataset="librimix", task="noisy")
    assert sorted(p.name for p in save.iterdir()) == ["libri3mix_dev.csv", "libri3mix_test.csv",
                                                      "libri3mix_train-360.csv"]
    with open(save / "libri3mix_dev.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == MIXTURES[1] and all("/wav16k/min/dev/mix_both/" in r["mix_wav"] for r in rows)
    assert prep.csv_names("librimix", 2, "train-100")["tr"] == "libri2mix_train-100.csv"
    maximal = tmp_path / "Libri3Mix"  # LibriMix's max mode: the same folders under wav16k/max
    (maximal / "wav16k").mkdir(parents=True)
    (maximal / "wav16k" / "max").symlink_to(librimix(3, 16000) / "wav16k" / "min")
    prep.prepare_wsjmix(maximal, tmp_path / "max", num_spks=3, sample_rate=16000, mode="max", dataset="librimix")
    with open(tmp_path / "max" / "libri3mix_test.csv", newline="") as f:
        assert all(r["mix_wav"].startswith("$data_root/wav16k/max/test/mix_clean/") for r in csv.DictReader(f))


@pytest.mark.parametrize("layout", ["wham", "whamr"])
def test_wham_and_whamr_layouts_at_16k(tmp_path, layout):
    """--sample-rate 16000 writes wav16k with WHAM!'s / WHAMR!'s folders, every file at 16 kHz; the data
    preparation reads them at 16 kHz."""
    out = tmp_path / layout
    assert build(["--speakers-folder", str(speakers(tmp_path / "voices", 16000, count=6)), "--out", str(out),
                  "--layout", layout, "--sample-rate", "16000", "--mixtures", "2", "1", "1"]) == 0
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("wav")) == ["wav16k"]
    tt = out / "wav16k" / "min" / "tt"
    assert sorted(p.name for p in tt.iterdir()) == sorted(folders(layout, 2))
    assert {sf.info(str(p)).samplerate for p in (out / "wav16k").rglob("*.wav")} == {16000}
    task = "noisy" if layout == "wham" else "noisy-reverberant"
    prep.prepare_wsjmix(out, tmp_path / "save", sample_rate=16000, dataset=layout, task=task)
    with open(tmp_path / "save" / f"{layout}_tt.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert "/wav16k/min/tt/mix_both" in row["mix_wav"] and float(row["duration"]) >= 2.0
