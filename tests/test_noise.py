"""sepmamba_sb.noise: noise drawn from a folder, looped or cut to length, at WHAM!'s SNR; babble."""

import numpy as np
import pytest
import soundfile as sf
from conftest import write_speakers

from sepmamba_sb.audio import list_speakers
from sepmamba_sb.noise import NoiseSource, loudness, make_babble, power


@pytest.fixture
def noise_folder(tmp_path):
    """A long 8 kHz noise, a 0.1 s one and a 16 kHz one, in a WHAM!-like split folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "wham_noise" / "tr"
    folder.mkdir(parents=True)
    sf.write(str(folder / "long.wav"), rng.standard_normal(8000 * 5).astype("float32") * 0.1, 8000)
    sf.write(str(folder / "short.wav"), np.sin(np.arange(800) * 0.3).astype("float32") * 0.2, 8000)
    sf.write(str(folder / "wide.wav"), rng.standard_normal(16000 * 3).astype("float32") * 0.1, 16000)
    return folder


def test_noise_has_the_length_and_the_drawn_snr_as_wham_measures_it(noise_folder):
    """WHAM!'s SNR: BS.1770 loudness (pyloudnorm) of the louder source over the noise's, within 0.1 LU,
    whichever source is the louder and whatever the noise's spectrum."""
    import pyloudnorm

    meter = pyloudnorm.Meter(8000)
    source = NoiseSource(noise_folder, 8000, snr=(-3.0, 6.0))
    rng = np.random.default_rng(1)
    t = np.arange(12000)
    speechlike = np.sin(2 * np.pi * 300 * t / 8000) * (1 + np.sin(2 * np.pi * 3 * t / 8000))  # not white
    snrs = []
    for k in range(30):
        sources = np.stack([rng.standard_normal(12000) * 0.1, speechlike * 0.3])[:: 1 if k % 2 else -1]
        louder = sources[int(np.argmax([meter.integrated_loudness(x) for x in sources]))]
        noise, snr = source.for_sources(sources, rng)
        assert noise.shape == (12000,) and noise.dtype == np.float32
        assert meter.integrated_loudness(louder) - meter.integrated_loudness(noise.astype(np.float64)) == \
            pytest.approx(snr, abs=0.1)
        snrs.append(snr)
    assert -3 <= min(snrs) < 0 and 3 < max(snrs) <= 6
    again = NoiseSource(noise_folder, 8000).for_sources(sources, np.random.default_rng(5))[0]
    assert np.array_equal(again, NoiseSource(noise_folder, 8000).for_sources(sources, np.random.default_rng(5))[0])


def test_loudness_of_short_and_silent_signals():
    """Under BS.1770's 400 ms block, the mean power in dB; silence is -inf."""
    tone = np.sin(np.arange(3000) * 0.3)
    assert loudness(tone, 8000) == pytest.approx(10 * np.log10(power(tone)))
    assert loudness(np.zeros(8000), 8000) == -np.inf and loudness(np.zeros(100), 8000) == -np.inf


def test_short_noise_is_looped_and_other_rates_resampled(noise_folder):
    source = NoiseSource(noise_folder, 8000)
    short = noise_folder / "short.wav"
    source.files = [short]
    looped = source.draw(np.random.default_rng(0), 2000)
    assert looped.shape == (2000,)
    assert np.allclose(looped[:800], looped[800:1600], atol=1e-4)  # the 800-sample file, repeated
    source.files = [noise_folder / "wide.wav"]
    assert source.draw(np.random.default_rng(0), 4000).shape == (4000,)


def test_bad_noise_folders_and_ranges_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="noise folder .*nowhere does not exist"):
        NoiseSource(tmp_path / "nowhere", 8000)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no .wav or .flac files"):
        NoiseSource(tmp_path / "empty", 8000)
    sf.write(str(tmp_path / "empty" / "n.wav"), np.zeros(10, dtype="float32"), 8000)
    with pytest.raises(ValueError, match="snr must have low <= high"):
        NoiseSource(tmp_path / "empty", 8000, snr=(3, -6))
    sf.write(str(tmp_path / "empty" / "n.wav"), np.zeros(0, dtype="float32"), 8000)
    with pytest.raises(ValueError, match="n.wav is empty"):
        NoiseSource(tmp_path / "empty", 8000).draw(np.random.default_rng(0), 100)


def test_babble_is_several_speakers_at_the_given_length(tmp_path):
    write_speakers(tmp_path / "voices", [0.1 * (s + 1) for s in range(5)], 2, [1, 1], 8000)
    rng = np.random.default_rng(0)
    files = make_babble(list_speakers(tmp_path / "voices"), tmp_path / "babble", 3, 8000,
                        np.random.default_rng(1), talkers=3, seconds=2.5)
    assert [f.name for f in files] == ["babble_0000.wav", "babble_0001.wav", "babble_0002.wav"]
    for f in files:
        audio, rate = sf.read(str(f))
        assert rate == 8000 and len(audio) == 20000 and np.abs(audio).max() == pytest.approx(0.9, abs=1e-3)
    with pytest.raises(ValueError, match="need 6 distinct speakers"):
        make_babble(list_speakers(tmp_path / "voices"), tmp_path / "b2", 1, 8000, rng, talkers=6)
