"""sepmamba_sb.augment: speed and formant perturbation move pitch and formants as documented."""

import numpy as np
import pytest
from scipy import signal

from sepmamba_sb.augment import change_speed, shift_formants

RATE = 8000


def vowel(f0=120.0, formants=(700.0, 1200.0), seconds=1.0):
    """A pulse train at f0 through two resonators: a vowel with known pitch and formants."""
    n = int(RATE * seconds)
    excitation = np.zeros(n)
    excitation[:: int(RATE / f0)] = 1.0
    out = excitation
    for f in formants:
        r = np.exp(-np.pi * 80 / RATE)  # 80 Hz bandwidth
        out = signal.lfilter([1.0], [1, -2 * r * np.cos(2 * np.pi * f / RATE), r * r], out)
    return (out / np.abs(out).max() * 0.5).astype(np.float32)


def pitch(audio):
    """F0 from the autocorrelation's peak between 60 and 400 Hz."""
    a = audio[2000:6000] - audio[2000:6000].mean()
    ac = np.correlate(a, a, "full")[len(a) - 1:]
    lo, hi = RATE // 400, RATE // 60
    return RATE / (lo + np.argmax(ac[lo:hi]))


def first_formant(audio):
    """Frequency of the largest peak of the LPC (order 10) envelope below 1 kHz."""
    a = audio.astype(np.float64) * np.hamming(len(audio))
    r = np.correlate(a, a, "full")[len(a) - 1: len(a) + 10]
    coeffs = np.linalg.solve(np.array([[r[abs(i - j)] for j in range(10)] for i in range(10)]), r[1:11])
    freqs, response = signal.freqz([1.0], np.concatenate([[1.0], -coeffs]), worN=2048, fs=RATE)
    band = freqs < 1000
    return freqs[band][np.argmax(np.abs(response[band]))]


@pytest.mark.parametrize("factor", [0.85, 1.15])
def test_shift_formants_moves_the_formants_and_keeps_pitch_and_length(factor):
    x = vowel()
    y = shift_formants(x, factor, RATE)
    assert y.shape == x.shape and y.dtype == np.float32
    assert pitch(y) == pytest.approx(pitch(x), rel=0.02)
    # the resonances move most of the way (the envelope is estimated from harmonics 120 Hz apart)
    moved = (first_formant(y) / first_formant(x) - 1) / (factor - 1)
    assert 0.5 <= moved <= 1.3


def test_change_speed_moves_pitch_and_formants_and_length():
    x = vowel()
    y = change_speed(x, 1.2, RATE)
    assert len(y) == pytest.approx(len(x) / 1.2, abs=2)
    assert pitch(y) / pitch(x) == pytest.approx(1.2, rel=0.03)
    assert first_formant(y) / first_formant(x) == pytest.approx(1.2, abs=0.05)


def test_factor_one_is_the_identity_and_bad_factors_are_named():
    x = vowel()
    assert shift_formants(x, 1.0, RATE) is x and change_speed(x, 1.0, RATE) is x
    for bad in (0.0, 3.0, float("nan")):
        with pytest.raises(ValueError, match="formant factor must be a finite factor in"):
            shift_formants(x, bad, RATE)
        with pytest.raises(ValueError, match="speed factor must be a finite factor in"):
            change_speed(x, bad, RATE)
