"""Additive noise for separation training: recordings drawn from a folder, fitted to length, scaled to an SNR.

:class:`NoiseSource` reads any folder of ``.wav`` or ``.flac`` noise (WHAM!'s ``wham_noise/tr``, ``cv`` or ``tt``,
or a folder of one's own): each draw picks a file and a random stretch of it, loops a file shorter
than needed, and scales the noise to an SNR drawn uniformly from a range. The SNR is WHAM!'s: the
BS.1770 loudness (:func:`loudness`, pyloudnorm's, as WHAM!'s generator measures it) of the louder
source over the noise's, drawn from U(-3, 6) dB; the sources it is measured on are the anechoic ones
(WHAMR! keeps the anechoic source's SNR for its reverberant mixtures). :func:`make_babble` writes
babble noise (several other speakers talking at once) from speaker-labelled recordings, for machines
without a noise corpus.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyloudnorm
import torchaudio
from tqdm import tqdm

from sepmamba_sb.audio import AUDIO_SUFFIXES, audio_info, draw_speakers, read_audio, write_audio


def power(signal: np.ndarray) -> float:
    """Mean square of a signal (0 for an empty one)."""
    return float(np.mean(np.square(signal, dtype=np.float64))) if len(signal) else 0.0


def loudness(signal: np.ndarray, sample_rate: int) -> float:
    """ITU-R BS.1770 integrated loudness (LUFS) of a mono signal, with pyloudnorm, as WHAM!'s generator
    measures it; -inf for silence. A signal shorter than BS.1770's 400 ms block has no such loudness:
    its mean power in dB stands in (comparable between signals measured the same way).

    Example
    -------
    >>> tone = np.sin(np.arange(8000) * 0.3)
    >>> round(loudness(0.5 * tone, 8000) - loudness(tone, 8000), 2)
    -6.02
    """
    signal = np.asarray(signal, dtype=np.float64)
    if len(signal) <= round(0.4 * sample_rate):
        level = power(signal)
        return 10 * np.log10(level) if level > 0 else -np.inf
    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(signal))


class NoiseSource:
    """Noise recordings to add to mixtures.

    Parameters
    ----------
    folder : str or Path
        Searched recursively for ``.wav`` and ``.flac`` files (any rate and channel count: averaged to mono and
        resampled on reading).
    sample_rate : int
        Rate of the noise returned.
    snr : (float, float)
        Range of the SNR in dB, drawn uniformly: the louder source's loudness over the noise's (WHAM!'s
        convention).

    Raises
    ------
    FileNotFoundError
        When ``folder`` does not exist.
    ValueError
        When it holds no ``.wav`` or ``.flac`` file, or ``snr`` is not a (low, high) pair.
    """

    def __init__(self, folder: str | Path, sample_rate: int, snr: Sequence[float] = (-3.0, 6.0)):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise FileNotFoundError(f"noise folder {self.folder} does not exist")
        self.files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not self.files:
            raise ValueError(f"noise folder {self.folder} holds no .wav or .flac files")
        try:
            low, high = (float(v) for v in snr)
        except (TypeError, ValueError):
            raise ValueError(f"NoiseSource: snr must be a (low, high) pair in dB, got {snr!r}") from None
        if low > high:
            raise ValueError(f"NoiseSource: snr must have low <= high, got {snr!r}")
        self.sample_rate, self.snr = int(sample_rate), (low, high)

    def draw(self, rng: np.random.Generator, length: int) -> np.ndarray:
        """``length`` samples of a random file from a random start (looped when the file is shorter)."""
        path = self.files[int(rng.integers(len(self.files)))]
        info = audio_info(path)
        needed = int(np.ceil(length * info.samplerate / self.sample_rate)) + 1
        if info.frames >= needed:
            start = int(rng.integers(0, info.frames - needed + 1))
            noise, _ = read_audio(path, start=start, frames=needed)
        else:
            noise, _ = read_audio(path)
            noise = noise.repeat(needed // noise.shape[0] + 1)[:needed]
        if info.samplerate != self.sample_rate:
            noise = torchaudio.functional.resample(noise, info.samplerate, self.sample_rate)
        noise = noise.numpy()
        if len(noise) < length:  # resampling rounds down by a sample at most
            noise = np.pad(noise, (0, length - len(noise)), mode="wrap")
        return noise[:length].astype(np.float64)

    def for_sources(self, sources: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """Noise for one mixture: as long as ``sources`` [S, T] (the anechoic ones), at an SNR drawn from
        ``snr``: the loudness of the loudest of them over the noise's (:func:`loudness`).

        Returns
        -------
        (np.ndarray, float)
            The noise [T] (float32) and the SNR (dB) it was scaled to (no noise when the sources or the
            noise are silent).
        """
        snr = float(rng.uniform(*self.snr))
        noise = self.draw(rng, sources.shape[-1])
        reference = max(loudness(source, self.sample_rate) for source in sources)
        level = loudness(noise, self.sample_rate)
        gain = 10 ** ((reference - snr - level) / 20) if np.isfinite(reference) and np.isfinite(level) else 0.0
        return (noise * gain).astype(np.float32), snr


def make_babble(speakers: Mapping[str, Sequence[Path]], out_dir: str | Path, count: int, sample_rate: int,
                rng: np.random.Generator, talkers: int = 4, seconds: float = 10.0) -> list[Path]:
    """Write ``count`` babble recordings: ``talkers`` distinct speakers at equal levels, each looping
    its utterances to ``seconds``, summed, peak 0.9 (16-bit ``babble_<n>.wav`` files).

    Parameters
    ----------
    speakers : Mapping
        Speaker -> recordings (:func:`sepmamba_sb.audio.list_speakers`); use speakers that the
        mixtures do not (the babble's licence is theirs).
    out_dir : str or Path
        Created.
    count, sample_rate : int
        Files to write, their rate.
    rng : np.random.Generator
        Which speakers and utterances.
    talkers : int
        Speakers per file.
    seconds : float
        Length of each file.

    Returns
    -------
    list of Path
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    length = int(seconds * sample_rate)
    written = []
    for n in tqdm(range(count), desc="babble", unit="file", disable=count < 10):
        babble = np.zeros(length)
        for name, first in draw_speakers(rng, speakers, talkers):
            files = [first, *speakers[name]]
            voice, k = [], 0
            while sum(map(len, voice)) < length:
                voice.append(read_audio(files[k % len(files)], sample_rate)[0].numpy())
                k += 1
            voice = np.concatenate(voice)[:length]
            babble += voice / np.sqrt(max(power(voice), 1e-12))
        path = out_dir / f"babble_{n:04d}.wav"
        write_audio(path, (0.9 * babble / max(np.abs(babble).max(), 1e-9)).astype(np.float32), sample_rate,
                    subtype="PCM_16")
        written.append(path)
    return written
