"""Reverberant rooms for separation training: random shoebox rooms simulated with pyroomacoustics.

:class:`RoomSimulator` draws a room (dimensions, RT60, one microphone, one position per source) and
turns dry sources into their reverberant images at the microphone, with a time-aligned target per
source: the direct path (``"direct"``: "separate and dereverberate"), the direct path and the
reflections of the first ``early_ms`` (``"early"``), or the image itself (``"reverberant"``:
"separate only"). The defaults follow WHAMR!'s generator: rooms 5-10 m x 5-10 m x 3-4 m, RT60
0.1-1.0 s, microphone and sources 0.9-1.8 m high, sources 0.66-2 m from the microphone. As in WHAMR!,
the direct-path target is the same simulation with no reflection (image order 0), so it keeps the
propagation delay and the distance attenuation of the reverberant image.

The walls' absorption comes from the drawn RT60 by Eyring's formula (Sabine's, which pyroomacoustics
inverts, needs more than total absorption for short RT60s in these rooms). The image-source method
costs about the cube of its order, so images are computed only up to the order that covers the first
``image_ms`` of the response; after that the decay goes on as exponentially decaying noise at the
drawn RT60, matched in level to the images just before (the late part of a room response is
noise-like). :func:`measured_rt60` checks the result; the tests hold it to the drawn RT60.

Everything drawn comes from the ``numpy.random.Generator`` passed in, so a dataset item that seeds it
from (seed, epoch, index) gets the same room every time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve

TARGETS = ("direct", "early", "reverberant")
SOUND_SPEED = 343.0  # m/s, pyroomacoustics' default


@dataclass(frozen=True)
class Room:
    """One drawn room: enough to simulate it again."""

    dims: tuple[float, float, float]
    rt60: float
    mic: tuple[float, float, float]
    sources: tuple[tuple[float, float, float], ...]

    @property
    def absorption(self) -> float:
        """The walls' energy absorption giving ``rt60`` by Eyring's formula."""
        volume = math.prod(self.dims)
        length, width, height = self.dims
        surface = 2 * (length * width + length * height + width * height)
        return 1.0 - math.exp(-24 * math.log(10) * volume / (SOUND_SPEED * surface * self.rt60))


def _reflection_radius(dims: Sequence[float]) -> float:
    """Radius (m) of the largest sphere inside the 'diamond' of first-order image rooms: images up to
    order k cover every reflection path up to (k + 1) times it (pyroomacoustics' ``inverse_sabine``
    reasons the same way)."""
    length, width, height = dims
    return min(a * b / math.hypot(a, b) for a, b in ((length, width), (length, height), (width, height)))


def _uniform(rng: np.random.Generator, bounds: Sequence[float]) -> float:
    low, high = bounds
    return float(rng.uniform(low, high)) if high > low else float(low)


def _check_range(name: str, bounds: Sequence[float], low: float = 0.0) -> tuple[float, float]:
    try:
        lo, hi = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"RoomSimulator: {name} must be a (low, high) pair, got {bounds!r}") from None
    if not low <= lo <= hi:
        raise ValueError(f"RoomSimulator: {name} must satisfy {low} <= low <= high, got {bounds!r}")
    return lo, hi


class RoomSimulator:
    """Draw shoebox rooms and reverberate sources in them.

    Parameters
    ----------
    sample_rate : int
        Of the sources and the outputs.
    rt60 : (float, float)
        Range of the reverberation time (s), drawn uniformly.
    length, width, height : (float, float)
        Ranges of the room's dimensions (m).
    mic_height : (float, float)
        Range of the microphone's height (m); it stands within ``mic_spread`` m of the floor's centre.
    mic_spread : float
        Largest distance (m) of the microphone from the centre of the floor, along each wall.
    source_distance : (float, float)
        Range of each source's horizontal distance from the microphone (m).
    source_height : (float, float)
        Range of each source's height (m).
    min_source_spacing : float
        Smallest distance between two sources (m).
    wall_margin : float
        Smallest distance of a source or the microphone from a wall (m).
    target : {"direct", "early", "reverberant"}
        What each source's target is (see the module docstring).
    early_ms : float
        With ``target="early"``: reflections this long after the direct path belong to the target.
    image_ms : float
        The image-source method covers this much of the response (cost); then the noise tail.
    """

    def __init__(self, sample_rate: int, rt60: Sequence[float] = (0.1, 1.0), length: Sequence[float] = (5.0, 10.0),
                 width: Sequence[float] = (5.0, 10.0), height: Sequence[float] = (3.0, 4.0),
                 mic_height: Sequence[float] = (0.9, 1.8), mic_spread: float = 0.5,
                 source_distance: Sequence[float] = (0.66, 2.0), source_height: Sequence[float] = (0.9, 1.8),
                 min_source_spacing: float = 0.5, wall_margin: float = 0.5, target: str = "direct",
                 early_ms: float = 50.0, image_ms: float = 20.0):
        if target not in TARGETS:
            raise ValueError(f"RoomSimulator: target must be one of {TARGETS}, got {target!r}")
        if sample_rate < 1000:
            raise ValueError(f"RoomSimulator: sample_rate must be at least 1000 Hz, got {sample_rate}")
        self.sample_rate = int(sample_rate)
        self.rt60 = _check_range("rt60", rt60, low=0.05)
        self.length, self.width, self.height = (_check_range(n, b, low=1.0) for n, b in
                                                (("length", length), ("width", width), ("height", height)))
        self.mic_height = _check_range("mic_height", mic_height)
        self.source_distance = _check_range("source_distance", source_distance, low=0.05)
        self.source_height = _check_range("source_height", source_height)
        if self.source_height[1] > self.height[0] - wall_margin or self.mic_height[1] > self.height[0] - wall_margin:
            raise ValueError(f"RoomSimulator: heights {source_height} / {mic_height} do not fit under the lowest "
                             f"ceiling {self.height[0]} m with wall_margin {wall_margin} m")
        self.mic_spread, self.min_source_spacing, self.wall_margin = mic_spread, min_source_spacing, wall_margin
        self.target, self.early_ms, self.image_ms = target, float(early_ms), float(image_ms)

    # ---- drawing ------------------------------------------------------------------------------------

    def draw(self, rng: np.random.Generator, num_sources: int, attempts: int = 100) -> Room:
        """A random room with ``num_sources`` source positions around one microphone.

        Raises
        ------
        RuntimeError
            When ``attempts`` rooms in a row cannot hold the sources (ranges that do not fit together).
        """
        for _ in range(attempts):
            dims = (_uniform(rng, self.length), _uniform(rng, self.width), _uniform(rng, self.height))
            margin = self.wall_margin
            mic = (dims[0] / 2 + _uniform(rng, (-self.mic_spread, self.mic_spread)),
                   dims[1] / 2 + _uniform(rng, (-self.mic_spread, self.mic_spread)),
                   _uniform(rng, self.mic_height))
            sources = []
            for _ in range(num_sources):
                distance, angle = _uniform(rng, self.source_distance), _uniform(rng, (0.0, 2 * math.pi))
                sources.append((mic[0] + distance * math.cos(angle), mic[1] + distance * math.sin(angle),
                                _uniform(rng, self.source_height)))
            points = [mic, *sources]
            inside = all(margin <= p[k] <= dims[k] - margin for p in points for k in range(3))
            apart = all(math.dist(a, b) >= self.min_source_spacing
                        for i, a in enumerate(sources) for b in sources[i + 1:])
            if inside and apart:
                return Room(dims, _uniform(rng, self.rt60), mic, tuple(sources))
        raise RuntimeError(f"RoomSimulator: no room in {attempts} draws could hold {num_sources} sources at "
                           f"{self.source_distance} m from the microphone, {self.min_source_spacing} m apart and "
                           f"{self.wall_margin} m from the walls")

    # ---- impulse responses --------------------------------------------------------------------------

    def image_order(self, room: Room) -> int:
        """The image-source order that covers the first ``image_ms`` of ``room``'s response, at most a
        sixth of its RT60 (beyond that the images' own decay, with Eyring's absorption, runs up to 1.5x
        slower than the drawn RT60 in these rooms; the noise tail decays at it exactly)."""
        covered = min(self.image_ms / 1000, room.rt60 / 6) * SOUND_SPEED
        return max(1, math.ceil(covered / _reflection_radius(room.dims) - 1))

    def impulse_responses(self, room: Room, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per source: the room's impulse response to the microphone, and the target's.

        Returns
        -------
        (list of np.ndarray, list of np.ndarray)
            Reverberant responses and target responses (float64), starting at the same time: the
            target filtered with its response stays aligned with the image.
        """
        import pyroomacoustics as pra

        def simulate(order: int) -> list[np.ndarray]:
            shoebox = pra.ShoeBox(list(room.dims), fs=self.sample_rate, materials=pra.Material(room.absorption),
                                  max_order=order, air_absorption=False)
            for position in room.sources:
                shoebox.add_source(list(position))
            shoebox.add_microphone(np.array(room.mic, dtype=float)[:, None])
            shoebox.compute_rir()
            return [np.asarray(shoebox.rir[0][s], dtype=np.float64) for s in range(len(room.sources))]

        order = self.image_order(room)
        images = simulate(order)
        direct = simulate(0)
        covered_s = (order + 1) * _reflection_radius(room.dims) / SOUND_SPEED
        full = [self._with_tail(h, d, covered_s, room.rt60, rng) for h, d in zip(images, direct, strict=True)]
        if self.target == "reverberant":
            targets = full
        elif self.target == "direct":
            targets = direct
        else:
            targets = [self._early(h, d) for h, d in zip(full, direct, strict=True)]
        return full, targets

    def _with_tail(self, h: np.ndarray, direct: np.ndarray, covered_s: float, rt60: float,
                   rng: np.random.Generator) -> np.ndarray:
        """``h`` up to where its images are complete, then noise decaying 60 dB in ``rt60`` seconds,
        at the level of ``h`` just before (cross-faded over 5 ms)."""
        fs = self.sample_rate
        start = int(np.argmax(np.abs(direct)))  # the direct path's arrival
        cut = start + int(covered_s * fs)
        end = start + int(rt60 * fs) + 1
        if cut >= end or cut >= len(h):
            return h
        window = max(1, int(0.01 * fs))
        level = math.sqrt(float(np.mean(np.square(h[max(start + 1, cut - window):cut])) or 0.0))
        decay = np.power(10.0, -3.0 * np.arange(end - cut) / (rt60 * fs))  # amplitude, -60 dB at rt60
        tail = level * rng.standard_normal(end - cut) * decay
        out = np.zeros(end)
        out[:cut] = h[:cut]
        fade = min(max(1, int(0.005 * fs)), len(h) - cut, end - cut)
        ramp = np.linspace(0.0, 1.0, fade + 2)[1:-1]
        out[cut:cut + fade] = h[cut:cut + fade] * (1 - ramp) + tail[:fade] * ramp
        out[cut + fade:] = tail[fade:]
        return out

    def _early(self, h: np.ndarray, direct: np.ndarray) -> np.ndarray:
        """``h`` up to ``early_ms`` after the direct path, faded out over the last 2 ms."""
        end = int(np.argmax(np.abs(direct))) + int(self.early_ms / 1000 * self.sample_rate)
        out = h[:end].copy()
        fade = min(len(out), max(1, int(0.002 * self.sample_rate)))
        out[len(out) - fade:] *= np.linspace(1.0, 0.0, fade)
        return out

    # ---- applying ------------------------------------------------------------------------------------

    def apply(self, sources: Sequence[np.ndarray], rng: np.random.Generator,
              room: Room | None = None) -> tuple[np.ndarray, np.ndarray, Room]:
        """Reverberate dry sources in a room (drawn from ``rng`` unless given).

        Parameters
        ----------
        sources : sequence of np.ndarray
            Dry mono sources [T_s] at ``sample_rate``.
        rng : np.random.Generator
            The room's and the noise tail's randomness.
        room : Room, optional
            A room to use instead of drawing one.

        Returns
        -------
        (np.ndarray, np.ndarray, Room)
            Reverberant images [S, T] and targets [S, T] (float32, T the shortest source's length,
            both cut to it, aligned with each other), and the room.
        """
        if room is None:
            room = self.draw(rng, len(sources))
        elif len(room.sources) != len(sources):
            raise ValueError(f"RoomSimulator.apply: the room has {len(room.sources)} source positions, "
                             f"got {len(sources)} sources")
        responses, target_responses = self.impulse_responses(room, rng)
        length = min(len(s) for s in sources)
        images = np.stack([fftconvolve(s[:length], h)[:length] for s, h in zip(sources, responses, strict=True)])
        targets = np.stack([fftconvolve(s[:length], h)[:length]
                            for s, h in zip(sources, target_responses, strict=True)])
        return images.astype(np.float32), targets.astype(np.float32), room


def measured_rt60(response: np.ndarray, sample_rate: int, decay_db: float = 30.0) -> float:
    """RT60 (s) of an impulse response by Schroeder's backward integration (pyroomacoustics'
    ``measure_rt60``), extrapolated from the first ``decay_db`` dB of decay."""
    import pyroomacoustics as pra

    return float(pra.experimental.measure_rt60(response, fs=sample_rate, decay_db=decay_db))
