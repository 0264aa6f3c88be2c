"""Speaker-diversity perturbation: one recorded voice made to sound like several speakers.

Two perturbations, applied in this order by the recipes' dynamic mixing to each source:

- :func:`change_speed` resamples: a factor ``a`` scales duration by ``1/a`` and moves pitch and
  formants together by ``a`` (what SpeechBrain's ``SpeedPerturb`` and the paper's mixing do);
- :func:`shift_formants` scales the spectral envelope's frequency axis by ``b`` and keeps the
  pitch and the duration: a longer or shorter vocal tract (vocal-tract-length perturbation).

Together they give pitch ``a`` and formants ``a * b``: with ``b = 1 / a`` only the pitch moves.
Both keep speech intelligible for factors within about 0.8-1.25.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio

FRAME_SECONDS = 0.032  # analysis window of the envelope
LIFTER_SECONDS = 0.0025  # the envelope keeps quefrencies below this: pitch periods (>= 2.5 ms, F0 <= 400 Hz) stay out


def _check_factor(name: str, factor: float) -> float:
    factor = float(factor)
    if not math.isfinite(factor) or not 0.5 <= factor <= 2.0:
        raise ValueError(f"{name} must be a finite factor in [0.5, 2], got {factor}")
    return factor


def change_speed(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play ``audio`` ``factor`` times faster: length / factor, pitch and formants x factor.

    Parameters
    ----------
    audio : np.ndarray
        Samples [T].
    factor : float
        Speed factor in [0.5, 2].
    sample_rate : int
        The rate of ``audio`` (the result has the same rate).

    Returns
    -------
    np.ndarray
        float32 samples [about T / factor] (``audio`` itself when ``factor`` is 1).
    """
    factor = _check_factor("speed factor", factor)
    if factor == 1.0:
        return audio
    signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return torchaudio.functional.resample(signal, round(sample_rate * factor), sample_rate).numpy()


def spectral_envelope(log_magnitude: torch.Tensor, lifter: int, iterations: int = 8) -> torch.Tensor:
    """The "true envelope" of each frame: a cepstrally smoothed curve that rests on the harmonic peaks.

    Plain cepstral smoothing runs through the middle of the harmonics and flattens the formant peaks;
    repeating it on the maximum of the spectrum and the last envelope lifts it onto the peaks (Roebel
    and Rodet's true-envelope estimator).

    Parameters
    ----------
    log_magnitude : torch.Tensor
        Log magnitudes [..., F] of one-sided spectra (F = n_fft // 2 + 1).
    lifter : int
        Number of cepstral coefficients kept (>= 1).
    iterations : int
        Smoothing passes (1: plain cepstral smoothing).

    Returns
    -------
    torch.Tensor
        The envelope [..., F], in the same log units.
    """
    size = 2 * (log_magnitude.shape[-1] - 1)
    window = torch.zeros(size, dtype=log_magnitude.dtype, device=log_magnitude.device)
    window[:lifter] = 1.0
    window[size - lifter + 1:] = 1.0  # the cepstrum of a real spectrum is symmetric
    target = log_magnitude
    for _ in range(iterations):
        envelope = torch.fft.rfft(torch.fft.irfft(target, n=size, dim=-1) * window, dim=-1).real
        target = torch.maximum(log_magnitude, envelope)
    return envelope


def shift_formants(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Move the formants by ``factor`` and keep pitch, duration and phase.

    Each 32 ms frame's magnitude is multiplied by the ratio of its spectral envelope, with the frequency
    axis scaled by ``factor``, to the envelope itself: the harmonics (the pitch) stay where they are, the
    resonances move. Above 1 the voice sounds like a shorter vocal tract (higher formants).

    Parameters
    ----------
    audio : np.ndarray
        Samples [T].
    factor : float
        Formant factor in [0.5, 2].
    sample_rate : int
        The rate of ``audio``.

    Returns
    -------
    np.ndarray
        float32 samples [T] (``audio`` itself when ``factor`` is 1).
    """
    factor = _check_factor("formant factor", factor)
    if factor == 1.0 or len(audio) == 0:
        return audio
    n_fft = 2 ** math.ceil(math.log2(FRAME_SECONDS * sample_rate))
    hop = n_fft // 4
    signal = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    window = torch.hann_window(n_fft)
    spectrum = torch.stft(signal, n_fft, hop, window=window, return_complex=True, center=True, pad_mode="constant")
    log_magnitude = torch.log(spectrum.abs().clamp_min(1e-8)).transpose(0, 1)  # [frames, F]
    envelope = spectral_envelope(log_magnitude, max(1, round(LIFTER_SECONDS * sample_rate)))
    bins = envelope.shape[-1]
    # the new envelope at bin k is the old one at k / factor (linear interpolation, edge held)
    source = (torch.arange(bins, dtype=torch.float32) / factor).clamp(max=bins - 1)
    low = source.floor().long()
    high = (low + 1).clamp(max=bins - 1)
    weight = source - low
    warped = envelope[:, low] * (1 - weight) + envelope[:, high] * weight
    gain = torch.exp(warped - envelope).transpose(0, 1)
    out = torch.istft(spectrum * gain, n_fft, hop, window=window, center=True, length=len(signal))
    return out.numpy()
