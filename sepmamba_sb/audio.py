"""Audio in one place: reading and writing files, listing and drawing speakers, mixing sources.

Used by inference (:mod:`sepmamba_sb.inference`), the corpus builders and dynamic mixing
(:mod:`sepmamba_sb.data`), the recipes and the benchmarks, so that every reader checks files the same
way, every file is written the same way, and every mixture is drawn and scaled by the same rules.
Errors name the file or folder.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac")  # what speaker and noise folders are searched for (LibriSpeech is flac)
PEAK = 0.9  # the largest sample a mixture or source may have after mixing (pywsj0-mix's and SpeechBrain's)


def audio_info(path: str | Path) -> sf._SoundFileInfo:
    """The header of an audio file (``samplerate``, ``frames``, ``channels``) without reading its samples.

    Raises
    ------
    ValueError
        Naming the file when it does not exist or cannot be read.
    """
    if not Path(path).is_file():
        raise ValueError(f"audio file {path} does not exist")
    try:
        return sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc


def read_audio(path: str | Path, sample_rate: int | None = None, start: int = 0,
               frames: int = -1) -> tuple[torch.Tensor, int]:
    """Read a file as mono float32 (channels averaged), checking what a separator cannot use.

    Parameters
    ----------
    path : str or Path
        Any format soundfile reads.
    sample_rate : int, optional
        Resample to this rate (default: keep the file's).
    start, frames : int
        Read ``frames`` samples (-1: to the end) from sample ``start`` of the file, at its own rate.

    Returns
    -------
    (torch.Tensor, int)
        Samples [T] and their rate (``sample_rate`` when given, else the file's).

    Raises
    ------
    ValueError
        Naming the file: missing, unreadable, empty, or holding NaN/Inf samples.
    """
    if not Path(path).is_file():
        raise ValueError(f"audio file {path} does not exist")
    try:
        audio, rate = sf.read(str(path), frames=frames, start=start, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    if audio.shape[0] == 0:
        raise ValueError(f"audio file {path} is empty")
    if not np.isfinite(audio).all():
        raise ValueError(f"audio file {path} contains NaN or infinite samples")
    mono = torch.from_numpy(audio.mean(axis=1))
    if sample_rate is not None and rate != sample_rate:
        mono, rate = torchaudio.functional.resample(mono, rate, sample_rate), sample_rate
    return mono, rate


def write_audio(path: str | Path, samples, sample_rate: int, subtype: str | None = None) -> Path:
    """Write samples as an audio file, atomically: the file appears complete or not at all (so that
    data-loader workers and DDP ranks may share a cache), its folders created as needed.

    Parameters
    ----------
    path : str or Path
        The file; its suffix chooses the format (``.wav``, ``.flac``...).
    samples : np.ndarray or torch.Tensor
        Mono [T], or [T, C].
    sample_rate : int
        Samples per second.
    subtype : str, optional
        soundfile's sample format (``"PCM_16"``, ``"FLOAT"``...); default: soundfile's for the format
        (16-bit PCM for wav), or 32-bit float where a sample exceeds full scale, which PCM would clip.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        Naming the file, when the samples are not [T] or [T, C], hold NaN or infinite values, or exceed full
        scale in a PCM ``subtype``.

    Example
    -------
    >>> import tempfile
    >>> path = write_audio(Path(tempfile.mkdtemp()) / "out" / "tone.wav", np.full(800, 0.5), 8000)
    >>> audio, rate = read_audio(path)
    >>> rate, audio.shape, round(float(audio[0]), 3)
    (8000, torch.Size([800]), 0.5)
    """
    path = Path(path)
    if isinstance(samples, torch.Tensor):
        samples = samples.detach().cpu()
        samples = (samples if samples.dtype in (torch.float32, torch.float64) else samples.float()).numpy()
    samples = np.asarray(samples)
    if samples.ndim not in (1, 2):
        raise ValueError(f"writing {path}: samples must be [T] or [T, channels], got shape {samples.shape}")
    if not np.isfinite(samples).all():
        raise ValueError(f"writing {path}: the samples hold NaN or infinite values")
    beyond_full_scale = np.abs(samples).max(initial=0.0) > 1
    if subtype is None and beyond_full_scale and path.suffix.lower() == ".wav":
        subtype = "FLOAT"  # PCM would clip
    if beyond_full_scale and (subtype or "").startswith("PCM"):
        raise ValueError(f"writing {path}: samples beyond full scale (peak {np.abs(samples).max():.3g}) would be "
                         f"clipped in {subtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex}{path.suffix}")  # same folder: the rename is atomic
    try:
        sf.write(str(tmp), samples, sample_rate, subtype=subtype)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_blocks(path: str | Path, block: int) -> Iterator[torch.Tensor]:
    """Read a file as mono float32 blocks of ``block`` samples (the last may be shorter), holding one
    block in memory at a time, with :func:`read_audio`'s checks.

    Raises
    ------
    ValueError
        Naming the file: missing, unreadable, empty, or holding NaN/Inf samples (at the block that has them).
    """
    if block < 1:
        raise ValueError(f"read_blocks: block must be >= 1 samples, got {block}")
    audio_info(path)
    empty = True
    try:
        for data in sf.blocks(str(path), blocksize=block, dtype="float32", always_2d=True):
            if not np.isfinite(data).all():
                raise ValueError(f"audio file {path} contains NaN or infinite samples")
            empty = False
            yield torch.from_numpy(data.mean(axis=1))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    if empty:
        raise ValueError(f"audio file {path} is empty")


def list_speakers(root: str | Path, speaker_prefix: int | None = None) -> dict[str, list[Path]]:
    """Speaker -> sorted ``.wav`` and ``.flac`` files of a speaker-labelled folder (searched recursively).

    The speaker is the first folder below ``root`` (``root/<speaker>/**/*.wav``, as WSJ0's ``si_tr_s``
    lays them out, or ``root/<speaker>/<chapter>/*.flac``, as LibriSpeech does; files directly in ``root``
    count as a speaker named after ``root``),
    or the first ``speaker_prefix`` characters of the file name when given (WSJ0 utterance IDs start
    with the 3-character speaker ID). Symbolic links to folders are followed (a corpus is often a
    folder of links to speaker folders elsewhere), each real folder once, so a link back up the tree
    cannot loop. The log says how many speakers and files were found where.

    Raises
    ------
    FileNotFoundError
        When ``root`` is not a folder.
    ValueError
        When it holds no ``.wav`` or ``.flac`` file.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"speaker folder {root} does not exist")
    speakers: dict[str, list[Path]] = {}
    visited: set[tuple[int, int]] = set()
    links = 0
    for folder, subfolders, files in os.walk(root, followlinks=True):
        status = os.stat(folder)
        if (status.st_dev, status.st_ino) in visited:  # a link to a folder already read: a cycle or a repeat
            subfolders.clear()
            continue
        visited.add((status.st_dev, status.st_ino))
        links += sum(os.path.islink(os.path.join(folder, name)) for name in subfolders)
        relative = Path(folder).relative_to(root).parts
        for name in files:
            if name.lower().endswith(AUDIO_SUFFIXES):
                speaker = name[:speaker_prefix] if speaker_prefix else (relative[0] if relative else root.name)
                speakers.setdefault(speaker, []).append(Path(folder) / name)
    if not speakers:
        raise ValueError(f"speaker folder {root} holds no .wav or .flac files")
    logger.info("%s: %d speakers, %d files (%d linked folders followed)", root, len(speakers),
                sum(map(len, speakers.values())), links)
    return {k: sorted(v) for k, v in sorted(speakers.items())}


SPEAKER_WEIGHTS = ("files", "uniform")


def draw_speakers(rng: np.random.Generator, speakers: Mapping[str, Sequence[Path]],
                  num_spks: int, weights: str = "files") -> list[tuple[str, Path]]:
    """Draw ``num_spks`` distinct speakers and one utterance of each.

    Parameters
    ----------
    rng : np.random.Generator
        The only source of randomness: equal generators draw equal speakers.
    speakers : Mapping
        Speaker -> utterances (as :func:`list_speakers` returns).
    num_spks : int
        Speakers per draw.
    weights : {"files", "uniform"}
        Speakers drawn in proportion to their number of utterances (as drawing utterances uniformly
        would), or all equally often (a voice with few recordings then counts as much as one with
        many); without repeats either way. The utterance is drawn uniformly among the speaker's.

    Returns
    -------
    list of (str, Path)
        (speaker, utterance) pairs.
    """
    if weights not in SPEAKER_WEIGHTS:
        raise ValueError(f"speaker weights must be one of {SPEAKER_WEIGHTS}, got {weights!r}")
    names = sorted(speakers)
    if len(names) < num_spks:
        raise ValueError(f"{num_spks}-speaker mixtures need {num_spks} distinct speakers; there are "
                         f"{len(names)}: {names}")
    counts = np.array([len(speakers[name]) if weights == "files" else 1 for name in names], dtype=float)
    chosen = rng.choice(len(names), size=num_spks, replace=False, p=counts / counts.sum())
    return [(names[i], speakers[names[i]][rng.integers(len(speakers[names[i]]))]) for i in chosen]


PEAK_RULES = ("wsj0", "normalise")


def limit_peaks(signals: Sequence[np.ndarray], peak_rule: str = "wsj0") -> list[np.ndarray]:
    """Scale signals (a mixture and its parts) by one common factor that bounds their peaks.

    Parameters
    ----------
    signals : sequence of np.ndarray
        The mixture, its sources (and targets, noise...).
    peak_rule : {"wsj0", "normalise"}
        ``"wsj0"``: divide everything by max(1, largest peak) / 0.9, as pywsj0-mix's "min" mode;
        ``"normalise"``: scale everything so that the largest peak is 0.9, as SpeechBrain's dynamic
        mixing.

    Returns
    -------
    list of np.ndarray
        The signals scaled, float32.
    """
    if peak_rule not in PEAK_RULES:
        raise ValueError(f"peak_rule must be one of {PEAK_RULES}, got {peak_rule!r}")
    largest = max(float(np.abs(s).max(initial=0.0)) for s in signals)
    if peak_rule == "wsj0":
        factor = PEAK / max(1.0, largest)
    else:
        factor = PEAK / largest if largest > 0 else 1.0
    return [(np.asarray(s, dtype=np.float64) * factor).astype(np.float32) for s in signals]


def mix_sources(sources: Sequence[np.ndarray], gains: Sequence[float] | None = None,
                peak_rule: str = "wsj0") -> tuple[np.ndarray, list[np.ndarray]]:
    """Cut sources to the shortest, scale them by ``gains``, sum, and bound the peaks (:func:`limit_peaks`).

    Parameters
    ----------
    sources : sequence of np.ndarray
        Mono signals [T_i].
    gains : sequence of float, optional
        One per source (default 1).
    peak_rule : {"wsj0", "normalise"}
        As :func:`limit_peaks`.

    Returns
    -------
    (np.ndarray, list of np.ndarray)
        The mixture and the scaled sources, float32, all as long as the shortest source; the mixture
        is their sum.
    """
    gains = [1.0] * len(sources) if gains is None else list(gains)
    if len(gains) != len(sources):
        raise ValueError(f"mix_sources: {len(sources)} sources but {len(gains)} gains")
    length = min(len(s) for s in sources)
    scaled = [np.asarray(s[:length], dtype=np.float64) * g for s, g in zip(sources, gains, strict=True)]
    mixture, *scaled = limit_peaks([np.sum(scaled, axis=0), *scaled], peak_rule)
    return mixture, scaled


def mix_at_levels(sources: list[np.ndarray], levels_db: list[float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scale sources to RMS levels (dB, relative) over their common length, then mix them as
    pywsj0-mix's "min" mode does (:func:`mix_sources`)."""
    length = min(len(s) for s in sources)
    gains = [10 ** (level / 20) / (float(np.sqrt(np.mean(np.square(s[:length], dtype=np.float64)))) or 1.0)
             for s, level in zip(sources, levels_db, strict=True)]
    return mix_sources(sources, gains, peak_rule="wsj0")


def draw_mixture(rng: np.random.Generator, utterances: Mapping[str, Sequence[Path]], num_spks: int, sample_rate: int,
                 level_range_db: float = 5.0) -> tuple[str, np.ndarray, list[np.ndarray]]:
    """Draw a static mixture as pywsj0-mix does: distinct speakers and an utterance each
    (:func:`draw_speakers`), the first at 0 dB and the others at RMS levels drawn uniformly in
    +-``level_range_db``, cut to the shortest, under pywsj0-mix's "min" gain (:func:`mix_at_levels`).

    Returns
    -------
    (str, np.ndarray, list of np.ndarray)
        An ID naming the utterances and levels (``<utt>_<level>_<utt>_<level>``), the mixture and
        the sources.
    """
    paths = [path for _, path in draw_speakers(rng, utterances, num_spks)]
    levels = [0.0] + [float(rng.uniform(-level_range_db, level_range_db)) for _ in range(num_spks - 1)]
    mixture, sources = mix_at_levels([read_audio(p, sample_rate)[0].numpy() for p in paths], levels)
    return "_".join(f"{p.stem}_{lvl:+.2f}" for p, lvl in zip(paths, levels, strict=True)), mixture, sources
