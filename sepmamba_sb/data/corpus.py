"""Build a small wsj0-2mix-layout corpus from any speaker-labelled recordings.

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
manifest, and does nothing when a corpus with the same manifest exists. Where the recordings come from
is the caller's business: a folder of the user's (``python -m sepmamba_sb.data``), or the Debian
packages of the MiniMix recipe (:mod:`sepmamba_sb.data.minimix`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sepmamba_sb.audio import audio_info, draw_mixture, read_audio, write_audio
from sepmamba_sb.data.wham import make_noisy_mixtures
from sepmamba_sb.data.wsjmix import DATASETS, split_names
from sepmamba_sb.noise import NoiseSource, make_babble
from sepmamba_sb.rooms import RoomSimulator

logger = logging.getLogger(__name__)

SPLITS = ("tr", "cv", "tt")
FORMAT_VERSION = 4  # bump when the output of a given manifest changes, so cached corpora are rebuilt
NOISY_FORMAT_VERSION = 2  # the same for the noisy layouts alone (2: WHAM!'s loudness SNR, WHAMR!'s levels)


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

    Empty recordings (some packages ship zero-length prompts) are left out with a warning. Samples beyond
    full scale (a recording at full scale can overshoot it when resampled) are clipped to it, as 16-bit
    files hold them, with a warning that counts them.

    Returns
    -------
    dict
        Speaker -> written files.
    """
    written = {}
    for speaker, files in files_by_speaker.items():
        empty = [f for f in files if audio_info(f).frames == 0]
        if empty:
            logger.warning("speaker %s: leaving out %d empty recording(s): %s", speaker, len(empty),
                           ", ".join(str(f) for f in empty[:3]) + (" ..." if len(empty) > 3 else ""))
        recordings = [read_audio(f, sample_rate)[0].numpy() for f in files if f not in empty]
        utterances = split_into_utterances(recordings, sample_rate, rng)
        if max_per_speaker is not None:
            utterances = utterances[:max_per_speaker]
        if not utterances:
            raise ValueError(f"speaker {speaker}: its recordings give no utterance of 2 s or more")
        folder = out_dir / speaker
        written[speaker] = []
        for i, utterance in enumerate(utterances):
            path = folder / f"{speaker}_{i:04d}.wav"
            beyond = int(np.count_nonzero(np.abs(utterance) > 1))
            if beyond:
                logger.warning("%s: %d sample(s) beyond full scale clipped (peak %.3g)", path, beyond,
                               float(np.abs(utterance).max()))
            write_audio(path, np.clip(utterance, -1.0, 1.0), sample_rate, subtype="PCM_16")
            written[speaker].append(path)
    return written


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
    if len(utterances) < num_spks:
        raise ValueError(f"{out_dir}: {num_spks}-speaker mixtures need {num_spks} speakers, got {sorted(utterances)}")
    for folder in ["mix"] + [f"s{i + 1}" for i in range(num_spks)]:
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    ids = []
    for _ in range(count):
        mix_id, mixture, sources = draw_mixture(rng, utterances, num_spks, sample_rate, level_range_db)
        write_audio(out_dir / "mix" / f"{mix_id}.wav", mixture, sample_rate, subtype="PCM_16")
        for i, source in enumerate(sources):
            write_audio(out_dir / f"s{i + 1}" / f"{mix_id}.wav", source, sample_rate, subtype="PCM_16")
        ids.append(mix_id)
    return ids


def write_licences(root: Path, licences: Mapping[str, str], note: str = "") -> None:
    """``root/LICENSES``: one line per speaker saying where its recordings come from and their licence
    (and a note, e.g. on the noise)."""
    lines = ["Sources of the recordings in this corpus:", ""]
    lines += [f"{name}: {text}" for name, text in licences.items()]
    lines += ["", note] if note else []
    lines += ["", "Mixtures, cuts and level changes were made by sepmamba_sb.data.corpus; the licences above",
              "apply to the derived files as well (CC-BY-SA material stays CC-BY-SA)."]
    (root / "LICENSES").write_text("\n".join(lines) + "\n")


def build_corpus(root: Path, speakers: Mapping[str, list[str]], mixtures: Mapping[str, int],
                 files: Mapping[str, Sequence[Path]], licences: Mapping[str, str], num_spks: int = 2,
                 sample_rate: int = 8000, seed: int = 1234, max_utterances_per_speaker: int | None = None,
                 layout: str = "wsj0mix", noise_folders: Mapping[str, Path] | None = None,
                 rooms: RoomSimulator | None = None) -> Path:
    """Build (or reuse) a corpus of real speech in the wsj0-2mix, WHAM! or WHAMR! layout.

    Parameters
    ----------
    root : Path
        Output folder. It gets ``raw/<split>/<speaker>/*.wav`` (speaker-labelled utterances),
        ``wav8k/min/<split>/{mix,s1,s2}`` (or WHAM!'s / WHAMR!'s folders, see
        :mod:`sepmamba_sb.data.wham`; ``wav16k`` at 16 kHz), ``LICENSES`` and ``manifest.json``.
    speakers : Mapping
        Split ("tr", "cv", "tt") -> speaker names; splits must not share speakers.
    mixtures : Mapping
        Split -> number of mixtures.
    files : Mapping
        Speaker -> recordings (any rate and channel count), e.g. from
        :func:`sepmamba_sb.audio.list_speakers`.
    licences : Mapping
        Speaker -> where the recordings come from and their licence (written to ``LICENSES``).
    num_spks, sample_rate, seed : int
        Sources per mixture, output rate, random seed.
    max_utterances_per_speaker : int, optional
        Cap per speaker (small test corpora).
    layout : {"wsj0mix", "wham", "whamr", "librimix"}
        Clean mixtures; noisy ones; noisy and reverberant ones with direct-path sources; LibriMix's
        layout: WHAM!'s folders (clean, noisy and one-speaker mixtures) in the splits ``train-360``,
        ``dev`` and ``test`` (:func:`sepmamba_sb.data.wsjmix.split_names`; ``raw/`` keeps tr/cv/tt), with
        LibriMix's loudness levels (:mod:`sepmamba_sb.data.wham`).
    noise_folders : Mapping, optional
        WHAM!/WHAMR!: split -> folder of noise recordings (e.g. ``wham_noise/<split>``). Without it,
        each split's noise is babble of its own speakers (up to 4 at once), written to
        ``babble/<split>``: speakers stay disjoint between splits.
    rooms : RoomSimulator, optional
        WHAMR!: the rooms (default: :class:`sepmamba_sb.rooms.RoomSimulator` with WHAMR!'s ranges).

    Returns
    -------
    Path
        ``root``.
    """
    root = Path(root)
    if layout not in DATASETS:
        raise ValueError(f"layout must be one of {DATASETS}, got {layout!r}")
    if layout == "whamr" and rooms is None:
        rooms = RoomSimulator(sample_rate)
    used = [s for split in SPLITS for s in speakers.get(split, [])]
    if len(used) != len(set(used)):
        raise ValueError(f"splits must have disjoint speakers, got {dict(speakers)}")
    missing = [s for s in used if not files.get(s)]
    if missing:
        raise KeyError(f"no recordings given for speakers {missing} (have {sorted(files)})")
    for split in speakers if noise_folders else ():  # before any work: a missing split would stop the build late
        if split not in noise_folders or not Path(noise_folders[split]).is_dir():
            raise FileNotFoundError(f"noise folder {noise_folders.get(split, f'for the {split} split')} does not exist")
    sources = json.dumps({s: [str(p) for p in files[s]] for s in sorted(used)})
    manifest = {"speakers": {k: list(v) for k, v in speakers.items()}, "mixtures": dict(mixtures),
                "num_spks": num_spks, "sample_rate": sample_rate, "seed": seed,
                "max_utterances_per_speaker": max_utterances_per_speaker, "version": FORMAT_VERSION,
                "recordings_digest": hashlib.sha1(sources.encode()).hexdigest(), "layout": layout,
                "noise_folders": {k: str(v) for k, v in (noise_folders or {}).items()},
                "rooms": None if rooms is None else {k: v for k, v in vars(rooms).items()}}
    if layout != "wsj0mix":  # only noisy corpora change with it: clean ones keep their digest
        manifest["noisy_version"] = NOISY_FORMAT_VERSION
    digest = hashlib.sha1(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    done_file = root / "manifest.json"
    if done_file.exists() and json.loads(done_file.read_text()).get("digest") == digest:
        return root
    unfinished = root / ".unfinished"  # marks a build that was interrupted: safe to start again
    if root.exists():
        if not done_file.exists() and not unfinished.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} exists and is not a corpus this builder made; refusing to overwrite it")
        shutil.rmtree(root)  # an earlier corpus with other settings, or an interrupted build
    root.mkdir(parents=True)
    unfinished.write_text("building; an interrupted build is started again from scratch\n")
    rng = np.random.default_rng(seed)
    rate_dir = f"wav{sample_rate // 1000}k"
    for split in tqdm([s for s in SPLITS if s in speakers], desc="building corpus", unit="split"):
        utterances = make_utterances({s: files[s] for s in speakers[split]}, root / "raw" / split, sample_rate, rng,
                                     max_utterances_per_speaker)
        out = root / rate_dir / "min" / split_names(layout)[split]
        if layout == "wsj0mix":
            make_mixtures(utterances, out, mixtures[split], num_spks, sample_rate, rng)
            continue
        noise_folder = (noise_folders or {}).get(split)
        if noise_folder is None:
            noise_folder = root / "babble" / split
            make_babble(utterances, noise_folder, max(4, mixtures[split] // 10), sample_rate, rng,
                        talkers=min(4, len(utterances)))
        make_noisy_mixtures(utterances, out, mixtures[split], num_spks, sample_rate, rng,
                            NoiseSource(noise_folder, sample_rate), rooms if layout == "whamr" else None,
                            levels="librimix" if layout == "librimix" else "wham")
    noise_note = ("" if layout == "wsj0mix" else "Noise: " + (
        f"recordings from {dict(noise_folders)}; their licence is their owner's." if noise_folders else
        "babble made of each split's own speakers (babble/<split>), under their licences."))
    write_licences(root, {s: licences.get(s, "source and licence not given") for s in used}, noise_note)
    done_file.write_text(json.dumps({**manifest, "digest": digest}, indent=1) + "\n")
    unfinished.unlink()
    return root


def split_speakers(names: list[str], num_spks: int = 2) -> dict[str, list[str]]:
    """Disjoint tr/cv/tt speaker lists from a list of speakers (sorted): about 10 % each for cv and
    tt, at least ``num_spks`` in every split."""
    names = sorted(names)
    held = max(num_spks, round(0.1 * len(names)))
    if len(names) < 3 * num_spks or len(names) - 2 * held < num_spks:
        raise ValueError(f"{len(names)} speakers are too few for three disjoint splits of at least {num_spks}: {names}")
    return {"tr": names[:-2 * held], "cv": names[-2 * held:-held], "tt": names[-held:]}
