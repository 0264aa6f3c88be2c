"""Build a small wsj0-2mix-layout corpus from real speech.

Two stages, both reusable on their own:

1. :func:`make_utterances`: recordings of each speaker -> utterances of 2-6 s at the target rate
   (short prompts are joined, long recordings cut at their quietest point near the target length),
   written as ``<raw>/<split>/<speaker>/<speaker>_<n>.wav``: a speaker-labelled folder, the layout
   dynamic mixing reads.
2. :func:`make_mixtures`: a speaker-labelled folder -> ``wav8k/min/<split>/{mix,s1,s2[,s3]}/<id>.wav``
   as pywsj0-mix writes it: distinct speakers per mixture, relative levels drawn in [-5, 5] dB,
   sources cut to the shortest ("min"), one gain so that no sample of the mixture or a source
   exceeds 0.9.

:func:`build_corpus` runs both for disjoint speaker sets per split, writes ``LICENSES`` and a
manifest, and does nothing when a corpus with the same manifest exists.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from tqdm import tqdm

from sepmamba_sb.data.speech_sources import SPEAKERS, speaker_files

SPLITS = ("tr", "cv", "tt")
FORMAT_VERSION = 3  # bump when the output of a given manifest changes, so cached corpora are rebuilt


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """Read a wav (any rate, any channel count) as float32 mono at ``sample_rate``."""
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise ValueError(f"cannot read audio file {path}: {exc}") from exc
    audio = audio.mean(axis=1)
    if rate != sample_rate:
        audio = torchaudio.functional.resample(torch.from_numpy(audio), rate, sample_rate).numpy()
    return audio


def _quiet_cut(audio: np.ndarray, target: int, window: int, frame: int) -> int:
    """The cut point within ``target +- window`` samples where a ``frame``-long stretch is quietest."""
    lo, hi = max(frame, target - window), min(len(audio) - frame, target + window)
    if hi <= lo:
        return min(target, len(audio))
    energies = [(float(np.square(audio[i - frame:i + frame]).sum()), i) for i in range(lo, hi, frame)]
    return min(energies)[1]


def split_into_utterances(recordings: list[np.ndarray], sample_rate: int, rng: np.random.Generator,
                          min_seconds: float = 2.0, max_seconds: float = 6.0) -> list[np.ndarray]:
    """Join short recordings and cut long ones into utterances of ``min_seconds``-``max_seconds``.

    Each utterance aims at a length drawn uniformly in that range; a long recording is cut at the
    quietest 20 ms near that length. What is left shorter than ``min_seconds`` is dropped.
    """
    lo, hi = int(min_seconds * sample_rate), int(max_seconds * sample_rate)
    frame, window = int(0.02 * sample_rate), int(0.5 * sample_rate)
    utterances, pending = [], np.zeros(0, dtype=np.float32)
    for audio in recordings:
        pending = np.concatenate([pending, audio.astype(np.float32)])
        target = int(rng.uniform(lo, hi))
        while len(pending) >= target:
            cut = target if len(pending) < target + frame else _quiet_cut(pending, target, window, frame)
            cut = int(np.clip(cut, lo, hi))
            utterances.append(pending[:cut])
            pending = pending[cut:]
            target = int(rng.uniform(lo, hi))
    if len(pending) >= lo:
        utterances.append(pending[:hi])
    return utterances


def make_utterances(files_by_speaker: Mapping[str, list[Path]], out_dir: Path, sample_rate: int,
                    rng: np.random.Generator, max_per_speaker: int | None = None) -> dict[str, list[Path]]:
    """Write each speaker's utterances to ``out_dir/<speaker>/<speaker>_<n>.wav`` (16-bit).

    Returns
    -------
    dict
        Speaker -> written files.
    """
    written = {}
    for speaker, files in files_by_speaker.items():
        utterances = split_into_utterances([read_mono(f, sample_rate) for f in files], sample_rate, rng)
        if max_per_speaker is not None:
            utterances = utterances[:max_per_speaker]
        if not utterances:
            raise ValueError(f"speaker {speaker}: its recordings give no utterance of 2 s or more")
        folder = out_dir / speaker
        folder.mkdir(parents=True, exist_ok=True)
        written[speaker] = []
        for i, utterance in enumerate(utterances):
            path = folder / f"{speaker}_{i:04d}.wav"
            sf.write(str(path), utterance, sample_rate, subtype="PCM_16")
            written[speaker].append(path)
    return written


def speaker_folder(root: Path) -> dict[str, list[Path]]:
    """A speaker-labelled folder (``root/<speaker>/**/*.wav``) as speaker -> sorted files."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"speaker folder {root} does not exist")
    speakers = {d.name: sorted(d.rglob("*.wav")) for d in sorted(root.iterdir()) if d.is_dir()}
    speakers = {k: v for k, v in speakers.items() if v}
    if not speakers:
        raise ValueError(f"{root} holds no <speaker>/*.wav files")
    return speakers


def mix_sources(sources: list[np.ndarray], levels_db: list[float]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Scale sources to RMS levels (dB, relative), cut them to the shortest, sum; then divide all by
    max(1, peak of the mixture and the sources) / 0.9, as pywsj0-mix's "min" mode does."""
    length = min(len(s) for s in sources)
    scaled = []
    for source, level in zip(sources, levels_db, strict=True):
        source = source[:length]
        rms = float(np.sqrt(np.mean(np.square(source)))) or 1.0
        scaled.append(source / rms * 10 ** (level / 20))
    mixture = np.sum(scaled, axis=0)
    gain = max(1.0, np.abs(mixture).max(), *(np.abs(s).max() for s in scaled)) / 0.9
    return (mixture / gain).astype(np.float32), [(s / gain).astype(np.float32) for s in scaled]


def make_mixtures(utterances: Mapping[str, list[Path]], out_dir: Path, count: int, num_spks: int,
                  sample_rate: int, rng: np.random.Generator, level_range_db: float = 5.0) -> list[str]:
    """Write ``count`` mixtures of ``num_spks`` distinct speakers into ``out_dir/{mix,s1,s2,...}``.

    Speakers are drawn in proportion to their number of utterances (as drawing utterances uniformly),
    without repeats; the first source sits at 0 dB, the others at levels drawn uniformly in
    +-``level_range_db``.

    Returns
    -------
    list of str
        The mixture IDs (file names without .wav).
    """
    speakers = sorted(utterances)
    if len(speakers) < num_spks:
        raise ValueError(f"{out_dir}: {num_spks}-speaker mixtures need {num_spks} speakers, got {speakers}")
    for folder in ["mix"] + [f"s{i + 1}" for i in range(num_spks)]:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    weights = np.array([len(utterances[s]) for s in speakers], dtype=float)
    for _ in range(count):
        chosen = rng.choice(len(speakers), size=num_spks, replace=False, p=weights / weights.sum())
        paths = [utterances[speakers[i]][rng.integers(len(utterances[speakers[i]]))] for i in chosen]
        levels = [0.0] + [float(rng.uniform(-level_range_db, level_range_db)) for _ in range(num_spks - 1)]
        mixture, sources = mix_sources([read_mono(p, sample_rate) for p in paths], levels)
        mix_id = "_".join(f"{p.stem}_{lvl:+.2f}" for p, lvl in zip(paths, levels, strict=True))
        sf.write(str(out_dir / "mix" / f"{mix_id}.wav"), mixture, sample_rate, subtype="PCM_16")
        for i, source in enumerate(sources):
            sf.write(str(out_dir / f"s{i + 1}" / f"{mix_id}.wav"), source, sample_rate, subtype="PCM_16")
        ids.append(mix_id)
    return ids


def write_licences(root: Path, speakers: list[str], folder: Path | None = None) -> None:
    """``root/LICENSES``: each speaker's source (Debian package, credit, licence, or the user's folder)."""
    lines = ["Sources of the recordings in this corpus:", ""]
    for name in speakers:
        if folder is not None:
            lines.append(f"{name}: recordings from {folder / name}; their licence is their owner's.")
            continue
        s = SPEAKERS[name]
        lines.append(f"{name}: {s.description}. Debian package {s.package} (apt-get download). "
                     f"Recorded by {s.credit}. Licence: {s.licence}.")
    lines += ["", "Mixtures, cuts and level changes were made by sepmamba_sb.data.corpus; the licences above",
              "apply to the derived files as well (CC-BY-SA material stays CC-BY-SA)."]
    (root / "LICENSES").write_text("\n".join(lines) + "\n")


def build_corpus(root: Path, speakers: Mapping[str, list[str]], mixtures: Mapping[str, int], num_spks: int = 2,
                 sample_rate: int = 8000, seed: int = 1234, max_utterances_per_speaker: int | None = None,
                 folder: Path | None = None) -> Path:
    """Build (or reuse) a corpus of real speech in the wsj0-2mix layout.

    Parameters
    ----------
    root : Path
        Output folder. It gets ``raw/<split>/<speaker>/*.wav`` (speaker-labelled utterances),
        ``wav8k/min/<split>/{mix,s1,s2}``, ``LICENSES`` and ``manifest.json``.
    speakers : Mapping
        Split ("tr", "cv", "tt") -> speaker names (from ``SPEAKERS``, or sub-folders of ``folder``);
        splits must not share speakers.
    mixtures : Mapping
        Split -> number of mixtures.
    num_spks, sample_rate, seed : int
        Sources per mixture, output rate, random seed.
    max_utterances_per_speaker : int, optional
        Cap per speaker (small test corpora).
    folder : Path, optional
        A speaker-labelled folder (``<folder>/<speaker>/**/*.wav``) to take the recordings from,
        instead of the Debian packages.

    Returns
    -------
    Path
        ``root``.
    """
    root = Path(root)
    used = [s for split in SPLITS for s in speakers.get(split, [])]
    if len(used) != len(set(used)):
        raise ValueError(f"splits must have disjoint speakers, got {dict(speakers)}")
    manifest = {"speakers": {k: list(v) for k, v in speakers.items()}, "mixtures": dict(mixtures),
                "num_spks": num_spks, "sample_rate": sample_rate, "seed": seed,
                "max_utterances_per_speaker": max_utterances_per_speaker, "version": FORMAT_VERSION,
                "folder": str(folder) if folder is not None else None}
    digest = hashlib.sha1(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    done_file = root / "manifest.json"
    if done_file.exists() and json.loads(done_file.read_text()).get("digest") == digest:
        return root
    if root.exists():
        if not done_file.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} exists and is not a corpus this builder made; refusing to overwrite it")
        shutil.rmtree(root)  # an earlier corpus with other settings
    rng = np.random.default_rng(seed)
    if folder is not None:
        available = speaker_folder(folder)
        unknown = [s for s in used if s not in available]
        if unknown:
            raise KeyError(f"speakers {unknown} are not sub-folders of {folder}")
        files = {s: available[s] for s in used}
    else:
        files = speaker_files(used)
    rate_dir = f"wav{sample_rate // 1000}k"
    for split in tqdm([s for s in SPLITS if s in speakers], desc="building corpus", unit="split"):
        utterances = make_utterances({s: files[s] for s in speakers[split]}, root / "raw" / split, sample_rate, rng,
                                     max_utterances_per_speaker)
        make_mixtures(utterances, root / rate_dir / "min" / split, mixtures[split], num_spks, sample_rate, rng)
    write_licences(root, used, folder)
    done_file.write_text(json.dumps({**manifest, "digest": digest}, indent=1) + "\n")
    return root


PRESETS = {
    # the demo: 4 training voices (2 F, 2 M, ~75 min), 3 validation and 5 test voices, all disjoint
    # (more training voices generalise better than a female voice held out for cv: measured)
    "demo": {"speakers": {"tr": ["en-allison", "it-carlo", "ru-ivrvoice", "c2-ve9qrp"],
                          "cv": ["c2-vk5qi", "c2-hts", "c2-mmt1"],
                          "tt": ["fr-june", "ps-austen", "c2-morig", "c2-bigdog", "c2-cross"]},
             "mixtures": {"tr": 400, "cv": 20, "tt": 40}, "max_utterances_per_speaker": None},
    # the test suite's: 3 training voices (for 3-speaker mixing), 6 utterances each
    "tiny": {"speakers": {"tr": ["en-allison", "it-carlo", "fr-june"], "cv": ["ru-ivrvoice", "ps-austen"],
                          "tt": ["c2-ve9qrp", "c2-vk5qi"]},
             "mixtures": {"tr": 8, "cv": 3, "tt": 3}, "max_utterances_per_speaker": 6},
}


def split_speakers(names: list[str], num_spks: int = 2) -> dict[str, list[str]]:
    """Disjoint tr/cv/tt speaker lists from a list of speakers (sorted): about 10 % each for cv and
    tt, at least ``num_spks`` in every split."""
    names = sorted(names)
    held = max(num_spks, round(0.1 * len(names)))
    if len(names) < 3 * num_spks or len(names) - 2 * held < num_spks:
        raise ValueError(f"{len(names)} speakers are too few for three disjoint splits of at least {num_spks}: {names}")
    return {"tr": names[:-2 * held], "cv": names[-2 * held:-held], "tt": names[-held:]}
