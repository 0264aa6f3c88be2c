"""sepmamba_sb.data (utterances, mixtures, corpora from any speaker folder), the MiniMix corpus
(sepmamba_sb.data.minimix: the tiny real-speech corpus the recipe tests use) and its Debian speech
(sepmamba_sb.data.debian)."""

import os
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import needs_debian_speech, write_speakers

from sepmamba_sb.audio import list_speakers, mix_at_levels
from sepmamba_sb.data import debian, minimix
from sepmamba_sb.data.corpus import build_corpus, split_into_utterances, split_speakers

PRESETS, SPEAKERS = minimix.PRESETS, minimix.SPEAKERS


def test_utterances_join_short_and_cut_long_recordings():
    rng = np.random.default_rng(0)
    prompts = [np.ones(int(8000 * s), dtype="float32") for s in (0.7, 1.1, 0.4, 2.5, 0.9)] + [
        np.random.default_rng(1).standard_normal(8000 * 40).astype("float32")]
    utterances = split_into_utterances(prompts, 8000, rng)
    lengths = [len(u) / 8000 for u in utterances]
    assert all(2.0 <= n <= 6.0 for n in lengths)
    assert sum(lengths) >= 0.85 * sum(len(p) for p in prompts) / 8000  # little is thrown away


def test_mix_is_the_sum_at_the_drawn_levels_and_below_0_9():
    rng = np.random.default_rng(0)
    s1, s2 = rng.standard_normal(9000), rng.standard_normal(8000) * 3
    mixture, (a, b) = mix_at_levels([s1, s2], [0.0, -4.0])
    assert len(mixture) == len(a) == len(b) == 8000  # cut to the shortest
    assert np.allclose(mixture, a + b, atol=1e-6)
    assert max(np.abs(mixture).max(), np.abs(a).max(), np.abs(b).max()) <= 0.9 + 1e-6
    level = 20 * np.log10(np.sqrt(np.mean(b**2)) / np.sqrt(np.mean(a**2)))
    assert level == pytest.approx(-4.0, abs=1e-3)


def test_tiny_corpus_layout_disjoint_speakers_and_sums(tiny_corpus):
    for split, count in PRESETS["tiny"]["mixtures"].items():
        folder = tiny_corpus / "wav8k" / "min" / split
        mixes = sorted((folder / "mix").glob("*.wav"))
        assert len(mixes) == count
        for mix_path in mixes:
            mix, rate = sf.read(str(mix_path), dtype="float32")
            s1 = sf.read(str(folder / "s1" / mix_path.name), dtype="float32")[0]
            s2 = sf.read(str(folder / "s2" / mix_path.name), dtype="float32")[0]
            assert rate == 8000 and len(mix) == len(s1) == len(s2) >= 2 * 8000
            assert np.abs(mix - (s1 + s2)).max() < 3 / 32768  # 16-bit rounding of three files
            level = float(mix_path.stem.split("_")[-1])  # the second source's level, in the name
            assert -5.0 <= level <= 5.0
    tiny = PRESETS["tiny"]["speakers"]
    speakers = {split: set(list_speakers(tiny_corpus / "raw" / split)) for split in tiny}
    assert speakers == {split: set(names) for split, names in tiny.items()}
    licences = (tiny_corpus / "LICENSES").read_text()
    assert all(SPEAKERS[n].licence in licences for names in tiny.values() for n in names)


def test_second_build_is_instant_and_shared_speakers_are_refused(tiny_corpus, tmp_path):
    stamp = (tiny_corpus / "manifest.json").stat().st_mtime_ns
    minimix.prepare_minimix(tiny_corpus, "tiny")
    assert (tiny_corpus / "manifest.json").stat().st_mtime_ns == stamp
    files = {"en-allison": [tiny_corpus / "LICENSES"]}
    with pytest.raises(ValueError, match="disjoint speakers"):
        build_corpus(tmp_path / "bad", {"tr": ["en-allison"], "cv": ["en-allison"]}, {"tr": 1, "cv": 1}, files, {})
    with pytest.raises(KeyError, match=r"no recordings given for speakers \['it-carlo'\]"):
        build_corpus(tmp_path / "bad", {"tr": ["en-allison"], "cv": ["it-carlo"]}, {"tr": 1, "cv": 1}, files, {})


@pytest.mark.slow
def test_minimix_at_16k_writes_wav16k(tmp_path):
    """--sample-rate 16000: the same corpus, its mixtures and sources in wav16k at 16 kHz."""
    root = needs_debian_speech(minimix.prepare_minimix, tmp_path / "c16", "tiny", sample_rate=16000)
    assert not (root / "wav8k").exists()
    for folder in ("mix", "s1", "s2"):
        files = sorted((root / "wav16k" / "min" / "tt" / folder).glob("*.wav"))
        assert len(files) == 3 and all(sf.info(str(f)).samplerate == 16000 for f in files), folder


def test_missing_apt_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(debian.shutil, "which", lambda tool: None)
    with pytest.raises(debian.SpeechFetchError, match="apt-get is not available.*espeak-ng"):
        debian.fetch_packages(["codec2-examples"], root=tmp_path)


def test_any_speaker_folder_becomes_a_corpus(tmp_path):
    """A user's own speaker-labelled recordings (here 8 synthetic voices), split automatically."""
    write_speakers(tmp_path / "voices", [0.1] * 8, 3, [3, 3, 3], 16000)  # resampled
    splits = split_speakers([f"spk{s}" for s in range(8)])
    assert [len(splits[k]) for k in ("tr", "cv", "tt")] == [4, 2, 2]
    files = list_speakers(tmp_path / "voices")
    licences = {name: f"made by the test for {name}" for name in files}
    root = build_corpus(tmp_path / "corpus", splits, {"tr": 4, "cv": 2, "tt": 2}, files, licences)
    assert len(list((root / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))) == 2
    assert "spk7: made by the test for spk7" in (root / "LICENSES").read_text()
    assert not (root / ".unfinished").exists()
    (root / "manifest.json").unlink()  # as if the build had been interrupted
    (root / ".unfinished").write_text("")
    assert build_corpus(root, splits, {"tr": 4, "cv": 2, "tt": 3}, files, licences) == root
    assert len(list((root / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))) == 3
    with pytest.raises(ValueError, match="too few"):
        split_speakers(["a", "b", "c", "d", "e"])
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my data")
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        build_corpus(tmp_path / "mine", splits, {"tr": 1, "cv": 1, "tt": 1}, files, licences)


def test_recordings_beyond_full_scale_are_clipped_with_a_warning(tmp_path, caplog):
    """A recording that overshoots full scale (as resampling can make one) is written clipped, as 16-bit
    files hold it, and the log counts the samples."""
    rng = np.random.default_rng(0)
    for s in range(6):  # float wav files that exceed full scale
        for u in range(2):
            path = tmp_path / "voices" / f"spk{s}" / f"u{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), (rng.standard_normal(8000 * 3) * 0.8).astype("float32"), 8000, subtype="FLOAT")
    files = list_speakers(tmp_path / "voices")
    with caplog.at_level("WARNING", logger="sepmamba_sb.data.corpus"):
        root = build_corpus(tmp_path / "corpus", split_speakers(list(files)), {"tr": 2, "cv": 1, "tt": 1}, files,
                            {name: "test" for name in files})
    assert "beyond full scale clipped" in caplog.text
    audio, _ = sf.read(str(next((root / "raw" / "tr").rglob("*.wav"))), dtype="int16")
    assert audio.max() == 32767 and audio.min() == -32768


@pytest.mark.slow
def test_command_lines_build_from_a_folder_and_from_fake_espeak(tmp_path, monkeypatch):
    """python -m sepmamba_sb.data --speakers-folder, and MiniMix's --espeak through a stand-in espeak-ng."""
    from sepmamba_sb.data.__main__ import main

    write_speakers(tmp_path / "voices", [0.1] * 6, 2, [5, 5], 8000)
    rng = np.random.default_rng(0)
    assert main(["--out", str(tmp_path / "c1"), "--speakers-folder", str(tmp_path / "voices"),
                 "--mixtures", "5", "2", "3"]) == 0
    assert len(list((tmp_path / "c1" / "wav8k" / "min" / "tt" / "s2").glob("*.wav"))) == 3
    assert "recordings from" in (tmp_path / "c1" / "LICENSES").read_text()
    assert main(["--out", str(tmp_path / "c0"), "--speakers-folder", str(tmp_path / "nowhere")]) == 2
    for split in ("tr", "cv", "tt"):  # a wham_noise-like folder
        (tmp_path / "noise" / split).mkdir(parents=True)
        sf.write(str(tmp_path / "noise" / split / "n.wav"), (rng.standard_normal(8000) * 0.1).astype("float32"), 8000)
    assert main(["--out", str(tmp_path / "c4"), "--speakers-folder", str(tmp_path / "voices"), "--layout", "whamr",
                 "--noise-folder", str(tmp_path / "noise"), "--mixtures", "2", "1", "1"]) == 0
    assert len(list((tmp_path / "c4" / "wav8k" / "min" / "tt" / "mix_both_reverb").glob("*.wav"))) == 1
    assert "Noise: recordings from" in (tmp_path / "c4" / "LICENSES").read_text()
    with pytest.raises(SystemExit):  # noise without a noisy layout is a usage error
        main(["--out", str(tmp_path / "c5"), "--speakers-folder", str(tmp_path / "voices"), "--noise-folder", "x"])
    fake = tmp_path / "bin" / "espeak-ng"  # writes 3 s of noise where espeak-ng would write speech
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport sys, numpy, soundfile\n"
                    "soundfile.write(sys.argv[sys.argv.index('-w') + 1], numpy.random.rand(66150) - 0.5, 22050)\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    minimix.main(["--out", str(tmp_path / "c2"), "--espeak"])
    assert len(list_speakers(tmp_path / "c2" / "raw" / "tr")) >= 2
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(SystemExit, match="(?s)espeak-ng is not installed.*--speakers-folder\\)$"):
        minimix.main(["--out", str(tmp_path / "c3"), "--espeak"])


def test_demo_preset_keeps_splits_disjoint_and_synthetic_voices_out_of_cv_and_tt():
    demo = PRESETS["demo"]["speakers"]
    names = [n for split in demo.values() for n in split]
    assert len(names) == len(set(names)) and set(names) <= set(SPEAKERS)
    assert len(demo["tr"]) >= 20
    for split in ("cv", "tt"):  # validation and test voices are recordings of people, not Festival voices
        assert all(SPEAKERS[n].festival_voice is None for n in demo[split])
    assert "es-allison" not in SPEAKERS  # the Spanish Asterisk prompts are en-allison's voice


@pytest.mark.slow
def test_festival_voice_reads_sentences_in_a_real_speakers_voice(tmp_path, monkeypatch):
    """A Festival diphone voice, run from the unpacked Debian packages (no installation)."""
    monkeypatch.setattr(debian, "FESTIVAL_SENTENCES", 3)
    files = needs_debian_speech(debian.synthesize_festival, SPEAKERS["fest-kal"], tmp_path / "kal")
    assert [f.name for f in files] == ["000.wav", "001.wav", "002.wav"]
    for path in files:
        audio, rate = sf.read(str(path), dtype="float32")
        assert rate == 16000 and 1.0 <= len(audio) / rate <= 10.0
        frames = audio[: len(audio) // 320 * 320].reshape(-1, 320)
        voiced = np.sqrt((frames**2).mean(axis=1)) > 0.01
        assert 0.3 <= voiced.mean() <= 0.98  # speech with pauses, not silence or noise
    assert debian.synthesize_festival(SPEAKERS["fest-kal"], tmp_path / "kal") == files  # once
