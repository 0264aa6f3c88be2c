"""Reverberant rooms for separation training: random shoebox rooms simulated with pyroomacoustics.

:class:`RoomSimulator` draws a room (dimensions, RT60, a microphone, one position per source) and turns
dry sources into their reverberant images at the microphone, with a time-aligned target per source:
the direct path (``"direct"``: "separate and dereverberate"), the direct path and the reflections of
the first ``early_ms`` (``"early"``), or the image itself (``"reverberant"``: "separate only"). As in
WHAMR!, the direct-path target is the same simulation with no reflection (image order 0), so it keeps
the propagation delay of the reverberant image; and each source's image and target are scaled so that
its direct path has the dry source's energy: the level differences the mixing drew between the dry
sources are those between the anechoic images, whatever the distances.

Two conventions say what the drawn RT60 means:

- ``"whamr"`` (default): rooms as the official WHAMR! generator makes them. Its three RT60 ranges
  (low U(0.1, 0.3), medium U(0.2, 0.6), high U(0.4, 1.0) s, one drawn per room), the walls' absorption
  ``a`` by Sabine's formula from that nominal RT60, applied as pyroomacoustics 0.3.1 applied it (an
  amplitude loss ``1 - a`` per reflection: energy absorption ``1 - (1 - a)^2``), so that the rooms
  decay about twice as fast as the nominal RT60 says; the left microphone of a 15-17 cm pair with a
  random orientation, centred on the room's centre +-0.2 m, the sources 0.66-2 m from the pair's
  centre with no minimum spacing; responses cut at the nominal RT60. Official rooms can be replayed
  from WHAMR!'s ``reverb_params_*.csv`` (``reverb_params``).
- ``"rt60"``: the measured RT60 is the drawn one, U(0.1, 1.0) s (the walls' absorption by Eyring's
  formula); one microphone within 0.5 m of the floor's centre, sources at least 0.5 m apart.

The image-source method costs about the cube of its order, so images are computed only over the
start of a response: the first quarter of the nominal RT60 (``"whamr"``: the decay continues at the
rate fitted to the images' own energy envelope), or the first ``image_ms``, at most RT60 / 6
(``"rt60"``: it continues at the drawn RT60). The rest is exponentially decaying noise, matched in
level to the images just before (the late part of a room response is noise-like). The tests hold
``"whamr"`` responses to pyroomacoustics' full-order simulation of the official rooms (RT60 and
direct-to-reverberant ratio), and ``"rt60"`` responses to the drawn RT60 (:func:`measured_rt60`).

Sources may come with the signal that precedes them (``lead_in`` of :meth:`RoomSimulator.apply`):
reverberated together, the crop starts in the built-up reverberant field of the speech before it.
Everything drawn comes from the ``numpy.random.Generator`` passed in, so a dataset item that seeds it
from (seed, epoch, index) gets the same room every time.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import fftconvolve

TARGETS = ("direct", "early", "reverberant")
CONVENTIONS = ("whamr", "rt60")
WHAMR_RT60 = ((0.1, 0.3), (0.2, 0.6), (0.4, 1.0))  # WHAMR!'s low, medium and high reverberation
SOUND_SPEED = 343.0  # m/s, pyroomacoustics' default
WHAMR_IMAGE_FRACTION = 0.25  # "whamr": images over this fraction of the nominal RT60, then the fitted decay
# the columns of WHAMR!'s reverb_params_{tr,cv,tt}.csv that a room needs (the left microphone's position)
REVERB_PARAMS_COLUMNS = ("utterance_id", "room_x", "room_y", "room_z", "micL_x", "micL_y", "mic_z", "s1_x", "s1_y",
                         "s1_z", "s2_x", "s2_y", "s2_z", "T60")


@dataclass(frozen=True)
class Room:
    """One drawn room: enough to simulate it again."""

    dims: tuple[float, float, float]
    rt60: float
    mic: tuple[float, float, float]
    sources: tuple[tuple[float, float, float], ...]
    convention: str = "rt60"

    @property
    def absorption(self) -> float:
        """The walls' energy absorption: ``1 - (1 - a)^2`` with ``a`` Sabine's for the nominal RT60
        (``"whamr"``; as pyroomacoustics 0.3.1 applied it, also for ``a`` over 1, which short RT60s in
        large rooms give: the amplitude loss ``1 - a`` is then negative and a reflection keeps
        ``(1 - a)^2`` of its energy), or Eyring's for the RT60 (``"rt60"``)."""
        volume = math.prod(self.dims)
        length, width, height = self.dims
        surface = 2 * (length * width + length * height + width * height)
        sabine = 24 * math.log(10) * volume / (SOUND_SPEED * surface * self.rt60)
        if self.convention == "whamr":
            return min(max(1.0 - (1.0 - sabine) ** 2, 0.01), 1.0)
        return 1.0 - math.exp(-sabine)


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


def _rt60_ranges(rt60) -> tuple[tuple[float, float], ...]:
    """One (low, high) pair, or several (one is drawn per room, each as likely)."""
    pairs = rt60 if len(rt60) and isinstance(rt60[0], (list, tuple)) else [rt60]
    return tuple(_check_range("rt60", pair, low=0.05) for pair in pairs)


def read_reverb_params(path: str | Path) -> list[Room]:
    """The rooms of a WHAMR! ``reverb_params_{tr,cv,tt}.csv`` (the left microphone, both sources).

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    ValueError
        Naming the file: missing columns, a value that is not a number, no row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"reverb_params file {path} does not exist (WHAMR!'s metadata/reverb_params_tr.csv)")
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in REVERB_PARAMS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"reverb_params file {path} has no column(s) {missing} (it has {reader.fieldnames}); "
                             "WHAMR!'s reverb_params_*.csv have them")
        rooms = []
        for line, row in enumerate(reader, 2):
            try:
                value = {k: float(row[k]) for k in REVERB_PARAMS_COLUMNS[1:]}
            except (TypeError, ValueError):
                raise ValueError(f"{path}:{line}: a room parameter is not a number: {row}") from None
            rooms.append(Room(dims=(value["room_x"], value["room_y"], value["room_z"]), rt60=value["T60"],
                              mic=(value["micL_x"], value["micL_y"], value["mic_z"]),
                              sources=tuple((value[f"s{s}_x"], value[f"s{s}_y"], value[f"s{s}_z"]) for s in (1, 2)),
                              convention="whamr"))
    if not rooms:
        raise ValueError(f"reverb_params file {path} holds no room")
    return rooms


class RoomSimulator:
    """Draw shoebox rooms and reverberate sources in them.

    Parameters
    ----------
    sample_rate : int
        Of the sources and the outputs.
    convention : {"whamr", "rt60"}
        What the drawn RT60 means, and the defaults of the parameters below (see the module docstring).
    rt60 : (float, float) or sequence of them, optional
        Range of the reverberation time (s), drawn uniformly; with several ranges, one is drawn per
        room first. Default: WHAMR!'s three ranges (``"whamr"``), (0.1, 1.0) (``"rt60"``).
    length, width, height : (float, float)
        Ranges of the room's dimensions (m).
    mic_height : (float, float)
        Range of the microphones' height (m).
    mic_spread : float, optional
        Largest distance (m) of the microphones' centre from the centre of the floor, along each wall
        (default 0.2 for ``"whamr"``, 0.5 for ``"rt60"``).
    mic_spacing : (float, float), optional
        Range of the distance between the left microphone, whose signal is simulated, and the right
        one of a pair with a random orientation (default (0.15, 0.17) for ``"whamr"``; (0, 0), one
        microphone, for ``"rt60"``).
    source_distance : (float, float)
        Range of each source's horizontal distance from the microphones' centre (m).
    source_height : (float, float)
        Range of each source's height (m).
    min_source_spacing : float, optional
        Smallest distance between two sources (m; default 0 for ``"whamr"``, 0.5 for ``"rt60"``).
    wall_margin : float
        Smallest distance of a source or the microphone from a wall (m).
    target : {"direct", "early", "reverberant"}
        What each source's target is (see the module docstring).
    early_ms : float
        With ``target="early"``: reflections this long after the direct path belong to the target.
    image_ms : float
        ``"rt60"``: the image-source method covers this much of the response (cost); then the tail.
    reverb_params : str or Path, optional
        A WHAMR! ``reverb_params_*.csv``: rooms are drawn from its rows (two sources, ``"whamr"``)
        instead of from the ranges.

    Example
    -------
    >>> rooms = RoomSimulator(8000)
    >>> rng = np.random.default_rng(0)
    >>> images, targets, room = rooms.apply([rng.standard_normal(8000), rng.standard_normal(8000)], rng)
    >>> images.shape, targets.shape, room.convention
    ((2, 8000), (2, 8000), 'whamr')
    """

    def __init__(self, sample_rate: int, convention: str = "whamr", rt60=None, length: Sequence[float] = (5.0, 10.0),
                 width: Sequence[float] = (5.0, 10.0), height: Sequence[float] = (3.0, 4.0),
                 mic_height: Sequence[float] = (0.9, 1.8), mic_spread: float | None = None,
                 mic_spacing: Sequence[float] | None = None, source_distance: Sequence[float] = (0.66, 2.0),
                 source_height: Sequence[float] = (0.9, 1.8), min_source_spacing: float | None = None,
                 wall_margin: float = 0.5, target: str = "direct", early_ms: float = 50.0, image_ms: float = 20.0,
                 reverb_params: str | Path | None = None):
        if convention not in CONVENTIONS:
            raise ValueError(f"RoomSimulator: convention must be one of {CONVENTIONS}, got {convention!r}")
        if target not in TARGETS:
            raise ValueError(f"RoomSimulator: target must be one of {TARGETS}, got {target!r}")
        if sample_rate < 1000:
            raise ValueError(f"RoomSimulator: sample_rate must be at least 1000 Hz, got {sample_rate}")
        whamr = convention == "whamr"
        self.sample_rate, self.convention = int(sample_rate), convention
        self.rt60_ranges = _rt60_ranges(rt60 if rt60 is not None else (WHAMR_RT60 if whamr else (0.1, 1.0)))
        self.length, self.width, self.height = (_check_range(n, b, low=1.0) for n, b in
                                                (("length", length), ("width", width), ("height", height)))
        self.mic_height = _check_range("mic_height", mic_height)
        self.mic_spacing = _check_range("mic_spacing", mic_spacing if mic_spacing is not None else
                                        ((0.15, 0.17) if whamr else (0.0, 0.0)))
        self.source_distance = _check_range("source_distance", source_distance, low=0.05)
        self.source_height = _check_range("source_height", source_height)
        if self.source_height[1] > self.height[0] - wall_margin or self.mic_height[1] > self.height[0] - wall_margin:
            raise ValueError(f"RoomSimulator: heights {source_height} / {mic_height} do not fit under the lowest "
                             f"ceiling {self.height[0]} m with wall_margin {wall_margin} m")
        self.mic_spread = mic_spread if mic_spread is not None else (0.2 if whamr else 0.5)
        self.min_source_spacing = min_source_spacing if min_source_spacing is not None else (0.0 if whamr else 0.5)
        self.wall_margin = wall_margin
        self.target, self.early_ms, self.image_ms = target, float(early_ms), float(image_ms)
        if reverb_params is not None and not whamr:
            raise ValueError("RoomSimulator: reverb_params holds WHAMR!'s rooms, which need convention='whamr'")
        self.rooms = read_reverb_params(reverb_params) if reverb_params is not None else None

    @property
    def rt60(self) -> tuple[float, float]:
        """The lowest and highest RT60 that can be drawn (s)."""
        return min(lo for lo, _ in self.rt60_ranges), max(hi for _, hi in self.rt60_ranges)

    # ---- drawing ------------------------------------------------------------------------------------

    def draw(self, rng: np.random.Generator, num_sources: int, attempts: int = 100) -> Room:
        """A random room with ``num_sources`` source positions around the microphones (a random row of
        ``reverb_params`` when given).

        Raises
        ------
        RuntimeError
            When ``attempts`` rooms in a row cannot hold the sources (ranges that do not fit together).
        ValueError
            When ``reverb_params`` rooms (two sources each) are asked for another number of sources.
        """
        if self.rooms is not None:
            if num_sources != 2:
                raise ValueError(f"RoomSimulator: reverb_params rooms hold 2 sources, {num_sources} were asked for")
            return self.rooms[int(rng.integers(len(self.rooms)))]
        for _ in range(attempts):
            dims = (_uniform(rng, self.length), _uniform(rng, self.width), _uniform(rng, self.height))
            centre = (dims[0] / 2 + _uniform(rng, (-self.mic_spread, self.mic_spread)),
                      dims[1] / 2 + _uniform(rng, (-self.mic_spread, self.mic_spread)))
            spacing, turn = _uniform(rng, self.mic_spacing), _uniform(rng, (0.0, 2 * math.pi))
            mic = (centre[0] - spacing / 2 * math.cos(turn), centre[1] - spacing / 2 * math.sin(turn),
                   _uniform(rng, self.mic_height))  # the left microphone of the pair
            sources = []
            for _ in range(num_sources):
                distance, angle = _uniform(rng, self.source_distance), _uniform(rng, (0.0, 2 * math.pi))
                sources.append((centre[0] + distance * math.cos(angle), centre[1] + distance * math.sin(angle),
                                _uniform(rng, self.source_height)))
            margin = self.wall_margin
            inside = all(margin <= p[k] <= dims[k] - margin for p in (mic, *sources) for k in range(3))
            apart = all(math.dist(a, b) >= self.min_source_spacing
                        for i, a in enumerate(sources) for b in sources[i + 1:])
            if inside and apart:
                rt60 = _uniform(rng, self.rt60_ranges[int(rng.integers(len(self.rt60_ranges)))])
                return Room(dims, rt60, mic, tuple(sources), self.convention)
        raise RuntimeError(f"RoomSimulator: no room in {attempts} draws could hold {num_sources} sources at "
                           f"{self.source_distance} m from the microphones, {self.min_source_spacing} m apart and "
                           f"{self.wall_margin} m from the walls")

    # ---- impulse responses --------------------------------------------------------------------------

    def image_order(self, room: Room) -> int:
        """The image-source order that covers the start of ``room``'s response: the first quarter of its
        nominal RT60 (``"whamr"``), or the first ``image_ms``, at most a sixth of its RT60 (``"rt60"``:
        beyond that the images' own decay, with Eyring's absorption, runs up to 1.5x slower than the
        drawn RT60 in these rooms; the noise tail decays at it exactly)."""
        if room.convention == "whamr":
            covered = WHAMR_IMAGE_FRACTION * room.rt60 * SOUND_SPEED
        else:
            covered = min(self.image_ms / 1000, room.rt60 / 6) * SOUND_SPEED
        return max(1, math.ceil(covered / _reflection_radius(room.dims) - 1))

    def impulse_responses(self, room: Room, rng: np.random.Generator) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Per source: the room's impulse response to the microphone, and the target's.

        Returns
        -------
        (list of np.ndarray, list of np.ndarray)
            Reverberant responses and target responses (float64), starting at the same time: the
            target filtered with its response stays aligned with the image. Not yet scaled to the
            sources' levels (:meth:`apply` does it).
        """
        full, targets, _ = self._responses(room, rng)
        return full, targets

    def _responses(self, room: Room, rng: np.random.Generator):
        """:meth:`impulse_responses`, and the direct paths' responses (image order 0)."""
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
        full = [self._with_tail(h, d, covered_s, room, rng) for h, d in zip(images, direct, strict=True)]
        if self.target == "reverberant":
            targets = full
        elif self.target == "direct":
            targets = direct
        else:
            targets = [self._early(h, d) for h, d in zip(full, direct, strict=True)]
        return full, targets, direct

    def _with_tail(self, h: np.ndarray, direct: np.ndarray, covered_s: float, room: Room,
                   rng: np.random.Generator) -> np.ndarray:
        """``h`` up to where its images are complete, then noise decaying at the room's rate (see the
        module docstring), at the level of ``h`` just before (cross-faded over 5 ms); as long as the
        official responses (``"whamr"``: the nominal RT60) or the decay (``"rt60"``)."""
        fs = self.sample_rate
        start = int(np.argmax(np.abs(direct)))  # the direct path's arrival
        cut = start + int(covered_s * fs)
        if room.convention == "whamr":
            end, rt60 = math.ceil(room.rt60 * fs), self._fitted_rt60(h, start, cut, room.rt60)
        else:
            end, rt60 = start + int(room.rt60 * fs) + 1, room.rt60
        if cut >= end or cut >= len(h):
            return h[:end]
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

    def _fitted_rt60(self, h: np.ndarray, start: int, cut: int, nominal: float) -> float:
        """The RT60 of the images' own decay: a line fitted to their energy in 5 ms windows over the last
        two thirds of ``h[start + 5 ms:cut]`` (the first third is the sparse early reflections), kept
        within 0.2-1x the nominal RT60; 0.55x when too short to fit (the official rooms' median)."""
        window = max(1, int(0.005 * self.sample_rate))
        part = h[start + window:cut]
        count = len(part) // window
        if count < 3:
            return 0.55 * nominal
        energy = np.mean(np.square(part[:count * window]).reshape(count, window), axis=1)
        seconds = (np.arange(count) + 0.5) * window / self.sample_rate
        t, level = seconds[count // 3:], 10 * np.log10(energy[count // 3:] + 1e-30)
        # the least-squares slope, in dB per second
        slope = float(np.sum((t - t.mean()) * (level - level.mean())) / np.sum(np.square(t - t.mean())))
        rt60 = -60.0 / slope if slope < 0 else nominal
        return float(np.clip(rt60, 0.2 * nominal, nominal))

    def _early(self, h: np.ndarray, direct: np.ndarray) -> np.ndarray:
        """``h`` up to ``early_ms`` after the direct path, faded out over the last 2 ms."""
        end = int(np.argmax(np.abs(direct))) + int(self.early_ms / 1000 * self.sample_rate)
        out = h[:end].copy()
        fade = min(len(out), max(1, int(0.002 * self.sample_rate)))
        out[len(out) - fade:] *= np.linspace(1.0, 0.0, fade)
        return out

    # ---- applying ------------------------------------------------------------------------------------

    def apply(self, sources: Sequence[np.ndarray], rng: np.random.Generator, room: Room | None = None,
              lead_in: int | Sequence[int] = 0) -> tuple[np.ndarray, np.ndarray, Room]:
        """Reverberate dry sources in a room (drawn from ``rng`` unless given).

        Each source's image and target are scaled so that its direct path has the energy of the dry
        source (over the part returned), as WHAMR! scales them.

        Parameters
        ----------
        sources : sequence of np.ndarray
            Dry mono sources [T_s] at ``sample_rate``.
        rng : np.random.Generator
            The room's and the noise tail's randomness.
        room : Room, optional
            A room to use instead of drawing one.
        lead_in : int or sequence of int
            Samples at the start of each source (one number for all, or one each) that precede the
            part returned: they are reverberated with it, so that it starts in a built-up
            reverberant field, and then dropped.

        Returns
        -------
        (np.ndarray, np.ndarray, Room)
            Reverberant images [S, T] and targets [S, T] (float32; T the shortest source's length after
            its lead-in, every source cut to it; aligned with each other), and the room.
        """
        leads = [int(lead_in)] * len(sources) if np.ndim(lead_in) == 0 else [int(n) for n in lead_in]
        if len(leads) != len(sources) or any(n < 0 or n >= len(s) for n, s in zip(leads, sources, strict=True)):
            raise ValueError(f"RoomSimulator.apply: lead_in {lead_in!r} must be one number, or one per source, "
                             f"each shorter than its source (lengths {[len(s) for s in sources]})")
        if room is None:
            room = self.draw(rng, len(sources))
        elif len(room.sources) != len(sources):
            raise ValueError(f"RoomSimulator.apply: the room has {len(room.sources)} source positions, "
                             f"got {len(sources)} sources")
        responses, target_responses, direct_responses = self._responses(room, rng)
        length = min(len(s) - n for s, n in zip(sources, leads, strict=True))
        images, targets = [], []
        for source, lead, h, aim, d in zip(sources, leads, responses, target_responses, direct_responses, strict=True):
            source = np.asarray(source[:lead + length], dtype=np.float64)
            image, direct = (fftconvolve(source, response)[lead:lead + length] for response in (h, d))
            # the target is the image or the direct path, except for early reflections
            target = image if aim is h else direct if aim is d else fftconvolve(source, aim)[lead:lead + length]
            dry, energy = source[lead:], float(np.dot(direct, direct))
            gain = math.sqrt(float(np.dot(dry, dry)) / energy) if energy > 0 else 0.0
            images.append(gain * image)
            targets.append(gain * target)
        return np.stack(images).astype(np.float32), np.stack(targets).astype(np.float32), room


def measured_rt60(response: np.ndarray, sample_rate: int, decay_db: float = 30.0) -> float:
    """RT60 (s) of an impulse response by Schroeder's backward integration (pyroomacoustics'
    ``measure_rt60``), extrapolated from the first ``decay_db`` dB of decay."""
    import pyroomacoustics as pra

    return float(pra.experimental.measure_rt60(response, fs=sample_rate, decay_db=decay_db))
