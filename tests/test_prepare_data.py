"""sepmamba_sb.data.wsjmix (the recipes' data preparation): CSVs in SpeechBrain's format, and errors that
name the path."""

import csv

import numpy as np
import pytest
import soundfile as sf

from sepmamba_sb.data import wsjmix as prep


def make_wsjmix(root, num_spks=2, rate=8000, mode="min", names=("a_1.2_b_-1.2", "c_0.5_d_-0.5")):
    for split in prep.SPLITS:
        for folder in ["mix"] + [f"s{i + 1}" for i in range(num_spks)]:
            path = root / f"wav{rate // 1000}k" / mode / split / folder
            path.mkdir(parents=True, exist_ok=True)
            for name in names:
                sf.write(str(path / f"{name}.wav"), np.zeros(rate // 2, dtype="float32"), rate)
    return root


def test_csvs_have_speechbrains_columns_and_data_root(tmp_path):
    data = make_wsjmix(tmp_path / "2speakers")
    prep.prepare_wsjmix(data, tmp_path / "save")
    with open(tmp_path / "save" / "wsj_tt.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["ID", "duration", "mix_wav", "mix_wav_format", "mix_wav_opts", "s1_wav",
                             "s1_wav_format", "s1_wav_opts", "s2_wav", "s2_wav_format", "s2_wav_opts"]
    assert [r["ID"] for r in rows] == ["a_1.2_b_-1.2", "c_0.5_d_-0.5"]
    assert rows[0]["s2_wav"] == "$data_root/wav8k/min/tt/s2/a_1.2_b_-1.2.wav"
    assert float(rows[0]["duration"]) == 0.5


def test_16k_max_and_three_speakers(tmp_path):
    data = make_wsjmix(tmp_path / "3speakers", num_spks=3, rate=16000, mode="max")
    prep.prepare_wsjmix(data, tmp_path / "save", num_spks=3, sample_rate=16000, mode="max")
    with open(tmp_path / "save" / "wsj_cv.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["s3_wav"] == "$data_root/wav16k/max/cv/s3/a_1.2_b_-1.2.wav"


def test_existing_csvs_skip_the_work(tmp_path):
    data = make_wsjmix(tmp_path / "2speakers")
    save = tmp_path / "save"
    prep.prepare_wsjmix(data, save)
    (data / "wav8k" / "min" / "tt" / "s1" / "a_1.2_b_-1.2.wav").unlink()  # would fail if checked again
    prep.prepare_wsjmix(data, save)
    prep.prepare_wsjmix(tmp_path / "absent", save, skip_prep=True)


@pytest.mark.parametrize(
    "damage,match",
    [
        (lambda d: None, "data_folder .*absent does not exist"),
        (lambda d: [p.unlink() for p in (d / "wav8k/min/cv/mix").glob("*.wav")], r"split cv is empty: .*cv/mix"),
        (lambda d: (d / "wav8k/min/tr/s2/c_0.5_d_-0.5.wav").unlink(),
         r"mixture .*tr/mix/c_0.5_d_-0.5.wav has no source s2: .*tr/s2/c_0.5_d_-0.5.wav is missing"),
        (lambda d: sf.write(str(d / "wav8k/min/tt/s1/a_1.2_b_-1.2.wav"), np.zeros(800, "float32"), 16000),
         r"tt/s1/a_1.2_b_-1.2.wav is sampled at 16000 Hz, but the recipe expects 8000 Hz"),
        (lambda d: (d / "wav8k/min/tr/s1/a_1.2_b_-1.2.wav").write_bytes(b"not a wav"),
         r"cannot read .*tr/s1/a_1.2_b_-1.2.wav"),
        (lambda d: (d / "wav8k/min/tr/s3").mkdir(), r"tr/s3 exists, but num_spks is 2"),
        (lambda d: __import__("shutil").rmtree(d / "wav8k/min/tt"), r"split folder .*wav8k/min/tt does not exist"),
    ],
    ids=["missing-folder", "empty-split", "missing-source", "wrong-rate", "unreadable", "speaker-count",
         "missing-split"],
)
def test_bad_data_is_a_clear_error_naming_the_path(tmp_path, damage, match):
    data = make_wsjmix(tmp_path / "2speakers")
    damage(data)
    folder = tmp_path / "absent" if match.startswith("data_folder") else data
    with pytest.raises((FileNotFoundError, ValueError), match=match):
        prep.prepare_wsjmix(folder, tmp_path / "save")
    assert not (tmp_path / "save" / "wsj_tt.csv").exists()  # so the next run prepares again
