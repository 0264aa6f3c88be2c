"""sepmamba_sb.data: utterances, mixtures and the tiny real-speech corpus the recipe tests use."""

import numpy as np
import pytest
import soundfile as sf
from conftest import TINY_MIXTURES, TINY_SPEAKERS

from sepmamba_sb.data.corpus import build_corpus, mix_sources, speaker_folder, split_into_utterances
from sepmamba_sb.data.speech_sources import SPEAKERS, fetch_packages


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
    mixture, (a, b) = mix_sources([s1, s2], [0.0, -4.0])
    assert len(mixture) == len(a) == len(b) == 8000  # cut to the shortest
    assert np.allclose(mixture, a + b, atol=1e-6)
    assert max(np.abs(mixture).max(), np.abs(a).max(), np.abs(b).max()) <= 0.9 + 1e-6
    level = 20 * np.log10(np.sqrt(np.mean(b**2)) / np.sqrt(np.mean(a**2)))
    assert level == pytest.approx(-4.0, abs=1e-3)


def test_tiny_corpus_layout_disjoint_speakers_and_sums(tiny_corpus):
    for split, count in TINY_MIXTURES.items():
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
    speakers = {split: set(speaker_folder(tiny_corpus / "raw" / split)) for split in TINY_SPEAKERS}
    assert speakers == {split: set(names) for split, names in TINY_SPEAKERS.items()}
    licences = (tiny_corpus / "LICENSES").read_text()
    assert all(SPEAKERS[n].licence in licences for names in TINY_SPEAKERS.values() for n in names)


def test_second_build_is_instant_and_shared_speakers_are_refused(tiny_corpus, tmp_path):
    stamp = (tiny_corpus / "manifest.json").stat().st_mtime_ns
    build_corpus(tiny_corpus, TINY_SPEAKERS, TINY_MIXTURES, max_utterances_per_speaker=6)
    assert (tiny_corpus / "manifest.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="disjoint speakers"):
        build_corpus(tmp_path / "bad", {"tr": ["en-allison"], "cv": ["en-allison"]}, {"tr": 1, "cv": 1})


def test_missing_apt_is_a_clear_error(tmp_path, monkeypatch):
    from sepmamba_sb.data import speech_sources

    monkeypatch.setattr(speech_sources.shutil, "which", lambda tool: None)
    with pytest.raises(speech_sources.SpeechFetchError, match="apt-get is not available.*espeak-ng"):
        fetch_packages(["codec2-examples"], root=tmp_path)
