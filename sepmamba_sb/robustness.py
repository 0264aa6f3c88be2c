"""How a separator fares on audio unlike the benchmark's: the conditions of ``benchmarks/robustness.py``.

Every condition is built from one corpus's test voices (``<corpus>/raw/tt/<speaker>/*.wav``) with a
fixed seed, so two models are measured on the same audio:

- ``clean``: two voices over the whole crop (wsj0-2mix's case), SI-SNRi;
- ``partial``: the overlap ratio drawn from 0-100 % (:class:`sepmamba_sb.data.mixing.DynamicMixingDataset`'s
  ``overlap``), SI-SNRi;
- ``one speaker``: one voice alone, separated at the mixture's level (``separate_file``'s default level
  fitting, :func:`sepmamba_sb.inference.fit_to_mixture`): how far the empty output lies below the voice's
  output, and the voice's SI-SNR;
- ``room``: two voices in a WHAMR!-convention room with babble of the cv voices (neither test nor
  training voices) at WHAM!'s SNRs (-3 to 6 dB); direct-path targets, SI-SNRi;
- ``long``: 60 s conversations of two voices taking turns, some turns overlapping, separated by
  ``separate_file`` in its chunks: the share of turns found in their speaker's output (each voice given
  its own output, the one pairing that holds the most turns: a model that puts everything in one
  output scores about half), whether each speaker stays in one output, and SI-SNRi.

Each figure is a mean with its 95 % interval (Student's t) over the mixtures, except where a median or
a share is stated.
"""

from __future__ import annotations

import itertools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from sepmamba_sb.audio import draw_speakers, limit_peaks, list_speakers, read_audio, write_audio
from sepmamba_sb.compare import mean_ci
from sepmamba_sb.data.mixing import DynamicMixingDataset, active_level
from sepmamba_sb.inference import fit_to_mixture
from sepmamba_sb.metrics import align_estimates, scale_invariant_scores, si_sdr
from sepmamba_sb.noise import NoiseSource, make_babble

GAP_TARGET_DB = 15.0  # the one-speaker share counts clips whose empty output is at least this far below


@dataclass(frozen=True)
class Settings:
    """The sizes of the conditions (the defaults make the published table)."""

    mixtures: int = 40  # per short condition
    seconds: float = 3.0  # length of the short mixtures
    recordings: int = 4  # 60 s conversations
    recording_seconds: float = 60.0
    seed: int = 2026


def _si_snr_improvement(est: torch.Tensor, targets: torch.Tensor, mix: torch.Tensor) -> float:
    """SI-SNRi in dB of estimates [T, S] (any order, paired as the training loss pairs them) over the mixture [T]."""
    targets = targets.float().cpu()
    est = align_estimates(est.float().cpu()[None], targets[None])[0]
    return scale_invariant_scores(est, targets, mix.float().cpu())[1]


def _datasets(corpus: Path, sample_rate: int, settings: Settings) -> dict[str, DynamicMixingDataset]:
    from sepmamba_sb.rooms import RoomSimulator

    common = dict(base_folder=corpus / "raw" / "tt", num_mixtures=settings.mixtures, num_spks=2,
                  sample_rate=sample_rate, segment=int(settings.seconds * sample_rate), style="sepmamba",
                  cache_folder=Path(tempfile.gettempdir()) / "sepmamba-robustness-cache", seed=settings.seed,
                  speed_factors=(1.0,), speaker_weights="uniform")
    room = RoomSimulator(sample_rate, convention="whamr", target="direct")
    return {"clean": DynamicMixingDataset(**common),
            "partial": DynamicMixingDataset(**common, overlap=(0.0, 1.0)),
            "one speaker": DynamicMixingDataset(**common, single_speaker=1.0),
            "room": DynamicMixingDataset(**common, rooms=room,
                                         noise=NoiseSource(_babble(corpus, sample_rate, settings.seed), sample_rate))}


def _babble(corpus: Path, sample_rate: int, seed: int) -> Path:
    """``<corpus>/babble/robustness``: babble of the cv voices (neither test nor training voices; up to four
    at once), made once."""
    folder = corpus / "babble" / "robustness"
    if not any(folder.glob("*.wav")):
        voices = list_speakers(corpus / "raw" / "cv")
        make_babble(voices, folder, 8, sample_rate, np.random.default_rng(seed), talkers=min(4, len(voices)))
    return folder


def conversation(speakers: dict[str, list[Path]], rng: np.random.Generator, sample_rate: int,
                 seconds: float) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, int]]]:
    """A recording of two voices taking turns: each turn one utterance at a level drawn in +-2.5 dB
    (active level); the next turn starts after a pause of 0.1-0.6 s, or, one time in three, 0.5-1.5 s
    before this one ends (overlapping talk).

    Returns
    -------
    (np.ndarray, np.ndarray, list)
        The mixture [T], the two voices' tracks [2, T], and the turns as (voice, start, stop) samples.
    """
    length = int(seconds * sample_rate)
    pair = draw_speakers(rng, speakers, 2, "uniform")
    tracks = np.zeros((2, length))
    turns, start, voice = [], 0, int(rng.integers(2))
    while start < length:
        name = pair[voice][0]
        utterance = read_audio(speakers[name][int(rng.integers(len(speakers[name])))], sample_rate)[0].numpy()
        utterance = utterance / np.sqrt(active_level(utterance, sample_rate)) * 10 ** (rng.uniform(-2.5, 2.5) / 20)
        stop = min(length, start + len(utterance))
        tracks[voice, start:stop] += utterance[:stop - start]
        turns.append((voice, start, stop))
        overlap = rng.random() < 1 / 3
        gap = -rng.uniform(0.5, 1.5) if overlap else rng.uniform(0.1, 0.6)
        start = max(start + sample_rate // 2, stop + int(gap * sample_rate))
        voice = 1 - voice
    mixture, *parts = limit_peaks([tracks.sum(0), *tracks])
    return mixture, np.stack(parts), turns


def turn_consistency(est: np.ndarray, tracks: np.ndarray, turns: list[tuple[int, int, int]]) -> tuple[float, bool]:
    """Which output holds each turn (the one whose SI-SNR against the voice's track there is highest).

    Parameters
    ----------
    est : np.ndarray
        The separated outputs [T, S].
    tracks : np.ndarray
        The voices [2, T].
    turns : list
        (voice, start, stop) per turn.

    Returns
    -------
    (float, bool)
        The share of turns in their voice's output, the voices given distinct outputs so as to hold
        the most turns (an output that holds both voices counts for one of them only), and whether
        that share is all of them.
    """
    est_t = torch.from_numpy(np.asarray(est, dtype=np.float64)).t()
    chosen = []
    for voice, start, stop in turns:
        target = torch.from_numpy(tracks[voice, start:stop]).expand(est_t.shape[0], -1)
        chosen.append(int(torch.argmax(si_sdr(est_t[:, start:stop], target, zero_mean=True))))
    kept = max(sum(c == outputs[v] for (v, _, _), c in zip(turns, chosen, strict=True))
               for outputs in itertools.permutations(range(est_t.shape[0]), 2))
    return kept / len(turns), kept == len(turns)


def evaluate(model, corpus: str | Path, settings: Settings = Settings(), progress: bool = True) -> dict[str, tuple]:
    """Measure one model on every condition.

    Parameters
    ----------
    model : sepmamba_sb.inference.SepMambaSeparation
        A loaded two-speaker separator.
    corpus : str or Path
        A MiniMix-style corpus (its ``raw/tt`` voices, and ``raw/cv`` for the babble), any layout.
    settings : Settings
        Sizes and seed.

    Returns
    -------
    dict
        Row label (condition: measure) -> (value, 95 % half-width or None for medians, shares and counts,
        number of mixtures or recordings).
    """
    corpus = Path(corpus)
    rate = int(model.hparams.sample_rate)
    datasets = _datasets(corpus, rate, settings)
    scores: dict[str, list[float]] = {"clean": [], "partial": [], "room": [], "gap": [], "voice": []}
    for name, data in datasets.items():
        for i in tqdm(range(len(data)), desc=f"robustness: {name}", disable=not progress):
            item = data[i]
            mix = item["mix_sig"]
            targets = torch.stack([item["s1_sig"], item["s2_sig"]], -1)
            if name == "one speaker":
                est = fit_to_mixture(model.separate_batch(mix[None]).cpu(), mix[None])[0].double()
                energy = est.square().sum(0)
                louder = int(torch.argmax(energy))
                scores["gap"].append(float(10 * torch.log10(energy[louder] / energy[1 - louder].clamp_min(1e-20))))
                voice = targets[:, int(torch.argmax(targets.square().sum(0)))].double()
                scores["voice"].append(float(si_sdr(est[:, louder], voice, zero_mean=True)))
            else:
                scores[name].append(_si_snr_improvement(model.separate_batch(mix[None])[0].cpu(), targets, mix))
    long_scores, shares, stayed = [], [], 0
    rng = np.random.default_rng(settings.seed)
    speakers = list_speakers(corpus / "raw" / "tt")
    with tempfile.TemporaryDirectory() as tmp:
        for n in tqdm(range(settings.recordings), desc="robustness: long", disable=not progress):
            mixture, tracks, turns = conversation(speakers, rng, rate, settings.recording_seconds)
            path = write_audio(Path(tmp) / f"conversation{n}.wav", mixture, rate, subtype="FLOAT")
            est = model.separate_file(path)[0].cpu()
            share, kept = turn_consistency(est.numpy(), tracks, turns)
            shares.append(100 * share)
            stayed += kept
            long_scores.append(_si_snr_improvement(est, torch.from_numpy(tracks).t(), torch.from_numpy(mixture)))
    gaps = np.array(scores["gap"])
    return {
        "clean, full overlap: SI-SNRi (dB)": (*mean_ci(scores["clean"]), len(scores["clean"])),
        "partial overlap 0-100 %: SI-SNRi (dB)": (*mean_ci(scores["partial"]), len(scores["partial"])),
        "one speaker: empty output below the voice, median (dB)": (float(np.median(gaps)), None, len(gaps)),
        f"one speaker: clips with the empty output >= {GAP_TARGET_DB:g} dB below (%)":
            (float(100 * np.mean(gaps >= GAP_TARGET_DB)), None, len(gaps)),
        "one speaker: the voice's SI-SNR (dB)": (*mean_ci(scores["voice"]), len(scores["voice"])),
        "room + noise, direct-path targets: SI-SNRi (dB)": (*mean_ci(scores["room"]), len(scores["room"])),
        f"{settings.recording_seconds:g} s conversations: turns in their speaker's output (%)":
            (*mean_ci(shares), len(shares)),
        f"{settings.recording_seconds:g} s conversations: each speaker stays in one output (recordings)":
            (float(stayed), None, len(shares)),
        f"{settings.recording_seconds:g} s conversations: SI-SNRi (dB)": (*mean_ci(long_scores), len(long_scores)),
    }


def format_table(results: dict[str, dict[str, tuple]]) -> str:
    """A markdown table: one row per measure, one column per model (``value ± 95 % half-width``)."""
    names = list(results)
    rows = list(next(iter(results.values())))
    lines = ["| condition: measure | n | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in rows:
        cells = []
        for name in names:
            value, half, count = results[name][row]
            if "recordings" in row:
                cells.append(f"{value:.0f} of {count}")
            else:
                cells.append(f"{value:.2f}" + ("" if half is None else f" ± {half:.2f}"))
        lines.append(f"| {row} | {results[names[0]][row][2]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
