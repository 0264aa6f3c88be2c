"""Training mixtures made on the fly from single-speaker utterances (dynamic mixing).

A recipe yaml declares the dataset (``dm_dataset: !name:sepmamba_sb.data.mixing.DynamicMixingDataset``
with its options); ``train.py`` instantiates it with the number of mixtures per epoch.

The source is any folder of speaker-labelled wavs or flacs, e.g. WSJ0's ``si_tr_s`` (``<spk>/<utt>.wav``) or
LibriSpeech's ``train-clean-360`` (``<spk>/<chapter>/<utt>.flac``):
the speaker is the first folder below it, or the first ``speaker_prefix`` characters of a file's
name (WSJ0 utterance IDs start with the 3-character speaker ID), as
:func:`sepmamba_sb.audio.list_speakers` reads it. Files at another rate than the recipe's are
resampled once, the first time they are drawn, into ``cache_folder`` (atomic writes, so data-loader
workers and DDP ranks can share it).

Two styles, both drawing DISTINCT speakers for every mixture, each with probability proportional
to its number of utterances, and one of its utterances uniformly
(:func:`sepmamba_sb.audio.draw_speakers`):

- ``"speechbrain"``, as SpeechBrain's WSJ0Mix recipe: one random crop of min(shortest, ``segment``) samples per source,
  levels set on the mean absolute amplitude (``speechbrain.processing.signal_processing.rescale``,
  dB): the first at N(-27.43, 2.57) clipped to [-45, 0], the others at the first + N(-2.51, 2.66)
  (clipped likewise); then everything scaled so the peak is 0.9 (``mix_sources``'s "normalise").
- ``"sepmamba"``, as the SepMamba paper's training (which draws utterances uniformly, i.e. speakers
  in proportion to their utterances, as above, but without checking they differ): each source cropped
  at random to ``segment`` samples (zero-padded if shorter), divided by the square root of its
  active speech level (pywsj0-mix's ``activlev`` file when given, else the mean square of its
  frames within 40 dB of the loudest) and scaled by 10^(snr/20) with snr_1 ~ U(-2.5, 0),
  snr_2 ~ U(0, 2.5) (a third source at 0 dB), speed-perturbed independently (factors drawn from
  ``speed_factors``), all cut to the shortest (and to ``segment``), summed, and divided by
  max(1, peak of mixture and sources) / 0.9 (pywsj0-mix's "min" gain, ``mix_sources``'s "wsj0").
  ``formant_factors`` adds vocal-tract-length perturbation after the speed change
  (:mod:`sepmamba_sb.augment`): with both, each voice becomes many pseudo-speakers of other pitch
  and formants. Both perturbations come before the level is measured.

``mode`` is pywsj0-mix's: ``"min"`` cuts the sources to the shortest, ``"max"`` pads them with silence
to the longest.

Rooms and noise (``rooms``: a :class:`sepmamba_sb.rooms.RoomSimulator`; ``noise``: a
:class:`sepmamba_sb.noise.NoiseSource`) come after the levels, as in WHAMR!: each source is
reverberated in one drawn room, its direct path keeping the level the mixing gave it; the mixture is the
sum of the reverberant images plus noise at a drawn SNR against the louder anechoic source (WHAM!'s
loudness convention); the targets are the room simulator's (direct path, early reflections or the whole
image); the peak rule then applies to the mixture and the targets together. With rooms, each crop
comes with up to the room simulator's longest RT60 of the utterance before it, perturbed alike and
reverberated with it, then dropped: the crop starts in the reverberant field of the speech before it,
as in WHAMR!, which reverberates whole utterances.

Conversations rather than benchmark mixtures (all off by default, and off in the WSJ0Mix reproduction
yamls): ``overlap`` draws each mixture's overlap ratio, the sources then taking consecutive stretches
of the crop that overlap by that share of their length (1: all sources over the whole crop, as
wsj0-2mix; 0: one after the other, silence around each), in the share ``overlap_probability`` of the
mixtures (the others overlap fully); ``single_speaker`` is the share of mixtures
of one voice alone, the other targets silent (all zeros); ``rooms_probability`` and
``noise_probability`` apply the rooms and the noise to that share of the mixtures only. Silent
targets need a loss that is defined for them (:mod:`sepmamba_sb.losses`). ``speaker_weights="uniform"``
draws every voice equally often, however many recordings it has.

Mixture ``i`` of epoch ``e`` is a function of (seed, e, i) only: runs are reproducible, data-loader
workers need no seeding, and under DDP each rank (which gets its own indices from the distributed
sampler) makes different mixtures.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from speechbrain.processing.signal_processing import rescale

from sepmamba_sb.audio import (
    SPEAKER_WEIGHTS,
    audio_info,
    draw_speakers,
    limit_peaks,
    list_speakers,
    read_audio,
    write_audio,
)
from sepmamba_sb.augment import change_speed, shift_formants

logger = logging.getLogger(__name__)

STYLES = ("speechbrain", "sepmamba")
MODES = ("min", "max")


def _one_thread_per_worker() -> None:
    """In a data-loader worker (a process of its own), keep BLAS and pyroomacoustics to one thread: their
    thread pools, spinning while idle, would otherwise fight the other workers for the cores (2 workers
    made rooms slower than 1 on 2 cores)."""
    import pyroomacoustics
    from threadpoolctl import threadpool_limits

    if pyroomacoustics.constants.get("num_threads") != 1:
        threadpool_limits(1)
        pyroomacoustics.constants.set("num_threads", 1)


def read_activlev(path: str | Path) -> dict[str, float]:
    """pywsj0-mix's activlev file: ``<utterance id> <linear active level>`` per line."""
    levels = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                levels[fields[0]] = float(fields[1])
            except (IndexError, ValueError):
                raise ValueError(f"{path}:{number}: expected '<utterance id> <level>', got {line.strip()!r}") from None
    return levels


def active_level(audio: np.ndarray, sample_rate: int) -> float:
    """Mean square of the 20 ms frames within 40 dB of the loudest (a stand-in for ITU-T P.56)."""
    frame = max(1, int(0.02 * sample_rate))
    frames = audio[: len(audio) // frame * frame].reshape(-1, frame) if len(audio) >= frame else audio[None]
    power = np.square(frames).mean(axis=1)
    active = power[power >= power.max() * 1e-4]
    return float(active.mean()) if active.size and active.mean() > 0 else 1.0


class DynamicMixingDataset(torch.utils.data.Dataset):
    """``num_mixtures`` fresh mixtures per epoch; items are dicts for SpeechBrain's PaddedBatch.

    Parameters
    ----------
    base_folder : str or Path
        Speaker-labelled wavs (a recipe's ``base_folder_dm``).
    num_mixtures : int
        Mixtures per epoch.
    num_spks : int
        Sources per mixture (2 or 3); the folder needs at least that many speakers.
    sample_rate : int
        Rate of the mixtures.
    segment : int
        Samples per mixture (the crop); ``"speechbrain"`` makes shorter ones when utterances are.
    style : {"speechbrain", "sepmamba"}
        See the module docstring.
    cache_folder : str or Path
        Where files at another rate are resampled to, once.
    seed : int
        Mixtures are a function of (seed, epoch, index).
    speaker_prefix : int, optional
        Speaker = first characters of the file name (WSJ0: 3); default: the first folder below ``base_folder``.
    activlev_file : str or Path, optional
        ``"sepmamba"`` style: pywsj0-mix's activlev levels, keyed by file stem.
    speed_factors : sequence of float
        ``"sepmamba"`` style: per-source speed factors to draw from (pitch and formants move together).
    formant_factors : sequence of float
        ``"sepmamba"`` style: per-source formant factors to draw from (the pitch stays).
    rooms : sepmamba_sb.rooms.RoomSimulator, optional
        Reverberate the sources (at ``sample_rate``); the targets are its targets. A yaml's
        ``!name:sepmamba_sb.rooms.RoomSimulator`` (a factory taking no more arguments) is built here.
    noise : sepmamba_sb.noise.NoiseSource, optional
        Add noise to the mixtures (at ``sample_rate``); a ``!name:`` factory likewise.
    mode : {"min", "max"}
        Cut the sources to the shortest, or pad them to the longest (pywsj0-mix's modes).
    speaker_weights : {"files", "uniform"}
        Speakers drawn in proportion to their number of files, or equally often
        (:func:`sepmamba_sb.audio.draw_speakers`).
    overlap : (float, float)
        Range of the overlap ratio, drawn uniformly per mixture: the share of each source's stretch
        that overlaps its neighbour's (``(1, 1)``, the default: full overlap, as wsj0-2mix).
    overlap_probability : float
        Share of the mixtures that get a drawn overlap; the others overlap fully.
    single_speaker : float
        Share of the mixtures that hold one voice, the other targets silent.
    rooms_probability, noise_probability : float
        Share of the mixtures that get a room and noise (when ``rooms`` and ``noise`` are given).

    Example
    -------
    >>> import tempfile, numpy as np
    >>> from sepmamba_sb.audio import write_audio
    >>> root = Path(tempfile.mkdtemp())
    >>> for speaker in ("a", "b"):
    ...     _ = write_audio(root / speaker / "u.wav", np.random.default_rng(0).standard_normal(12000) * 0.1, 8000)
    >>> data = DynamicMixingDataset(root, num_mixtures=4, num_spks=2, sample_rate=8000, segment=8000,
    ...                             style="sepmamba", cache_folder=root / "cache")
    >>> item = data[0]
    >>> sorted(item), item["mix_sig"].shape[0] <= 8000
    (['id', 'mix_sig', 's1_sig', 's2_sig'], True)
    """

    def __init__(self, base_folder, num_mixtures: int, num_spks: int, sample_rate: int, segment: int,
                 style: str, cache_folder, seed: int = 1234, speaker_prefix: int | None = None,
                 activlev_file=None, speed_factors=(0.95, 1.0, 1.05), formant_factors=(1.0,), rooms=None,
                 noise=None, mode: str = "min", speaker_weights: str = "files", overlap=(1.0, 1.0),
                 overlap_probability: float = 1.0, single_speaker: float = 0.0, rooms_probability: float = 1.0,
                 noise_probability: float = 1.0):
        if style not in STYLES:
            raise ValueError(f"dynamic mixing style must be one of {STYLES}, got {style!r}")
        if mode not in MODES:
            raise ValueError(f"dynamic mixing mode must be one of {MODES} (pywsj0-mix's), got {mode!r}")
        if not base_folder:
            raise ValueError("dynamic mixing needs a folder of single-speaker utterances: give it with "
                             "--base_folder_dm (e.g. /data/wsj0/si_tr_s), or pass --dynamic_mixing False")
        for name, value in (("single_speaker", single_speaker), ("rooms_probability", rooms_probability),
                            ("noise_probability", noise_probability), ("overlap_probability", overlap_probability)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"dynamic mixing: {name} is a probability, got {value!r}")
        try:
            low, high = (float(v) for v in overlap)
        except (TypeError, ValueError):
            raise ValueError(f"dynamic mixing: overlap must be a (low, high) ratio pair, got {overlap!r}") from None
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"dynamic mixing: overlap must satisfy 0 <= low <= high <= 1, got {overlap!r}")
        self.overlap, self.single_speaker = (low, high), float(single_speaker)
        self.overlap_probability = float(overlap_probability)
        self.rooms_probability, self.noise_probability = float(rooms_probability), float(noise_probability)
        if speaker_weights not in SPEAKER_WEIGHTS:
            raise ValueError(f"dynamic mixing: speaker_weights must be one of {SPEAKER_WEIGHTS}, "
                             f"got {speaker_weights!r}")
        self.speaker_weights = speaker_weights
        self.speakers = list_speakers(base_folder, speaker_prefix)
        if len(self.speakers) < num_spks:
            raise ValueError(f"dynamic mixing folder {base_folder} has {len(self.speakers)} speaker(s) "
                             f"({list(self.speakers)}); {num_spks}-speaker mixtures need {num_spks} distinct ones")
        self.base_folder, self.cache_folder = Path(base_folder), Path(cache_folder)
        self.num_mixtures, self.num_spks, self.sample_rate, self.segment = num_mixtures, num_spks, sample_rate, segment
        self.style, self.seed = style, seed
        self.speed_factors, self.formant_factors = list(speed_factors), list(formant_factors)
        for name, factors in (("speed_factors", self.speed_factors), ("formant_factors", self.formant_factors)):
            if not factors:
                raise ValueError(f"dynamic mixing: {name} is empty (use [1.0] for no perturbation)")
        self.levels = read_activlev(activlev_file) if activlev_file else None
        rooms, noise = (part() if callable(part) else part for part in (rooms, noise))  # yaml !name: factories
        for name, part in (("rooms", rooms), ("noise", noise)):
            if part is not None and part.sample_rate != sample_rate:
                raise ValueError(f"dynamic mixing: {name} work at {part.sample_rate} Hz, the mixtures at "
                                 f"{sample_rate} Hz")
        self.rooms, self.noise, self.mode = rooms, noise, mode
        # with rooms, the speech before a crop, up to the longest RT60, is reverberated with it
        self.lead = 0 if rooms is None else math.ceil(rooms.rt60[1] * sample_rate)
        self.epoch = 0
        logger.info("dynamic mixing (%s style): %d speakers, %d files in %s", style, len(self.speakers),
                    sum(map(len, self.speakers.values())), base_folder)

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of mixtures (call before each training epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_mixtures

    def _load(self, path: Path) -> np.ndarray:
        """Mono float32 at the recipe's rate; another rate is resampled once into the cache."""
        if audio_info(path).samplerate != self.sample_rate:
            cached = self.cache_folder / f"{self.sample_rate}" / path.relative_to(self.base_folder)
            cached = cached.with_suffix(".wav")  # float samples, which flac cannot hold
            if not cached.exists():  # written atomically: workers and DDP ranks share the cache
                write_audio(cached, read_audio(path, self.sample_rate)[0], self.sample_rate, subtype="FLOAT")
            path = cached
        return read_audio(path)[0].numpy()

    def __getitem__(self, index: int) -> dict:
        if self.rooms is not None and torch.utils.data.get_worker_info() is not None:
            _one_thread_per_worker()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        drawn = draw_speakers(rng, self.speakers, self.num_spks, self.speaker_weights)
        audio = [self._load(path) for _, path in drawn]
        if self.style == "speechbrain":
            signals = self._speechbrain_style(audio, rng)
        else:
            signals = self._paper_style(audio, [path for _, path in drawn], rng)
        signals, leads = self._aligned(signals)
        signals = self._turns(signals, leads, rng)
        dry = np.stack([signal[lead:] for signal, lead in zip(signals, leads, strict=True)])
        images = targets = dry
        if self.rooms is not None and (self.rooms_probability == 1.0 or rng.random() < self.rooms_probability):
            images, targets, _ = self.rooms.apply(signals, rng, lead_in=leads)
        mixture = images.sum(axis=0)
        if self.noise is not None and (self.noise_probability == 1.0 or rng.random() < self.noise_probability):
            # the dry sources have their anechoic images' levels
            mixture = mixture + self.noise.for_sources(dry, rng)[0]
        mixture, *sources = limit_peaks([mixture, *targets], "normalise" if self.style == "speechbrain" else "wsj0")
        item = {"id": f"{'+'.join(name for name, _ in drawn)}_e{self.epoch}_{index}",
                "mix_sig": torch.from_numpy(mixture)}
        for s, source in enumerate(sources):
            item[f"s{s + 1}_sig"] = torch.from_numpy(source)
        return item

    def _aligned(self, signals: list[tuple[np.ndarray, int]]) -> tuple[list[np.ndarray], list[int]]:
        """(lead-in + crop, lead-in length) per source -> the signals with the crops cut to the shortest
        (``"min"``) or padded with silence to the longest (``"max"``), and the lead-in lengths."""
        lengths = [len(signal) - lead for signal, lead in signals]
        length = min(lengths) if self.mode == "min" else max(lengths)
        out = [np.pad(signal, (0, max(0, lead + length - len(signal))))[:lead + length] for signal, lead in signals]
        return out, [lead for _, lead in signals]

    def _turns(self, signals: list[np.ndarray], leads: list[int], rng: np.random.Generator) -> list[np.ndarray]:
        """Silence all sources but one (``single_speaker``), or give each its stretch of the crop
        (``overlap``); the signals unchanged when both are off. Random draws are made only for the
        options that are on, so mixtures without them stay what they were."""
        if self.single_speaker > 0 and rng.random() < self.single_speaker:
            keep = int(rng.integers(len(signals)))
            return [signal if s == keep else np.zeros_like(signal) for s, signal in enumerate(signals)]
        if self.overlap == (1.0, 1.0) or (self.overlap_probability < 1.0 and rng.random() >= self.overlap_probability):
            return signals
        ratio = float(rng.uniform(*self.overlap))
        length, count = len(signals[0]) - leads[0], len(signals)
        # count stretches of `span` samples, each overlapping the next by ratio * span, fill the crop
        span = round(length / (count - (count - 1) * ratio))
        step = (length - span) / (count - 1)
        out = [np.zeros_like(signal) for signal in signals]
        for place, s in enumerate(rng.permutation(count)):  # who speaks first is drawn
            start, lead = round(place * step), leads[s]
            first = 0 if start == 0 else lead + start  # a later turn starts in silence: no lead-in
            out[s][first:lead + start + span] = signals[s][first:lead + start + span]
        return out

    def _start(self, rng: np.random.Generator, available: int) -> tuple[int, int]:
        """A crop's start in ``[0, available]``, and its lead-in: the samples before it, up to ``self.lead``."""
        start = int(rng.integers(0, available + 1))
        return start, min(start, self.lead)

    def _speechbrain_style(self, audio, rng):
        length = min((min if self.mode == "min" else max)(len(a) for a in audio), self.segment)
        sources, first = [], None
        for a in audio:
            start, lead = self._start(rng, max(0, len(a) - length))
            crop = torch.from_numpy(a[start:start + length].copy())
            if first is None:
                first = float(np.clip(rng.normal(-27.43, 2.57), -45, 0))
                level = first
            else:
                level = float(np.clip(first + rng.normal(-2.51, 2.66), -45, 0))
            scaled = rescale(crop, torch.tensor(crop.shape[0]), level, scale="dB").numpy()
            if lead:  # the lead-in at the crop's gain
                gain = float(np.abs(scaled).sum() / max(float(crop.abs().sum()), 1e-12))
                scaled = np.concatenate([a[start - lead:start] * gain, scaled]).astype(np.float32)
            sources.append((scaled, lead))
        return sources

    def _paper_style(self, audio, files, rng):
        snrs = [rng.uniform(-2.5, 0.0), rng.uniform(0.0, 2.5)] + [0.0] * (self.num_spks - 2)
        sources = []
        for a, path, snr in zip(audio, files, snrs[: self.num_spks], strict=True):
            if len(a) > self.segment:
                start, lead = self._start(rng, len(a) - self.segment)
                a = a[start - lead:start + self.segment]
            else:
                lead, a = 0, np.pad(a, (0, self.segment - len(a)))
            factor = float(rng.choice(self.speed_factors))
            a = change_speed(a, factor, self.sample_rate)
            lead = round(lead / factor)  # where the crop starts after the speed change
            a = a[: lead + self.segment]
            a = shift_formants(a, float(rng.choice(self.formant_factors)), self.sample_rate)
            if self.levels is not None:
                if path.stem not in self.levels:
                    raise KeyError(f"dynamic mixing: {path.stem} (from {path}) is not in the activlev file")
                level = self.levels[path.stem]
            else:
                level = active_level(a[lead:], self.sample_rate)
            sources.append((a / np.sqrt(level) * 10 ** (snr / 20), lead))
        return sources


def speed_perturbed(speed_perturb, targets: torch.Tensor, images: torch.Tensor | None = None,
                    noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A static training mixture rebuilt after speed perturbation, keeping its noise and reverberation.

    Each source is perturbed at its own random speed, its reverberant image at the same speed (one call
    on both), all are cut to the shortest, and the mixture is the images' sum (the targets' when the
    targets are the images) plus the noise, unperturbed, cut to that length: as SpeechBrain's WHAM! and
    WHAMR! recipes rebuild it, re-adding the noise.

    Parameters
    ----------
    speed_perturb : callable
        [N, T] -> [N, T'], one random speed per call (SpeechBrain's ``SpeedPerturb``).
    targets : torch.Tensor
        [B, T, S].
    images : torch.Tensor, optional
        The sources' reverberant images [B, T, S], when the targets are their direct paths.
    noise : torch.Tensor, optional
        The mixtures' noise [B, T].

    Returns
    -------
    (torch.Tensor, torch.Tensor)
        The mixture [B, T'] and the targets [B, T', S].
    """
    batch = targets.shape[0]
    perturbed_targets, perturbed_images = [], []
    for s in range(targets.shape[-1]):
        both = targets[..., s] if images is None else torch.cat([targets[..., s], images[..., s]])
        both = speed_perturb(both)
        perturbed_targets.append(both[:batch])
        perturbed_images.append(both[batch:] if images is not None else both)
    length = min(t.shape[-1] for t in perturbed_targets)
    if noise is not None:
        length = min(length, noise.shape[-1])
    targets = torch.stack([t[:, :length] for t in perturbed_targets], dim=-1)
    mix = sum(image[:, :length] for image in perturbed_images)
    return (mix if noise is None else mix + noise[:, :length]), targets
