"""sepmamba_sb.rooms: drawn rooms, RT60 of the simulated responses, aligned targets, reproducibility."""

import math

import numpy as np
import pytest

from sepmamba_sb.rooms import RoomSimulator, measured_rt60


@pytest.mark.parametrize("rt60,tolerance", [(0.1, 0.4), (0.2, 0.12), (0.4, 0.12), (0.7, 0.12), (1.0, 0.12)])
def test_measured_rt60_agrees_with_the_drawn_one(rt60, tolerance):
    """Schroeder's T30 of the responses of 5 random rooms x 2 sources, within the stated tolerance:
    12 % from 0.2 s up; 40 % at 0.1 s, where the direct sound and the first reflections are most of
    a response only 800 samples long at 8 kHz."""
    simulator = RoomSimulator(8000, rt60=(rt60, rt60))
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(5):
        room = simulator.draw(rng, 2)
        responses, _ = simulator.impulse_responses(room, rng)
        ratios += [measured_rt60(h, 8000) / rt60 for h in responses]
    assert max(abs(r - 1) for r in ratios) <= tolerance, ratios


def test_rooms_keep_the_drawn_geometry():
    simulator = RoomSimulator(8000, source_distance=(0.66, 2.0), min_source_spacing=0.5, wall_margin=0.5)
    rng = np.random.default_rng(1)
    for _ in range(50):
        room = simulator.draw(rng, 3)
        assert all(5 <= room.dims[k] <= 10 for k in (0, 1)) and 3 <= room.dims[2] <= 4
        assert 0.1 <= room.rt60 <= 1.0 and 0 < room.absorption < 1
        for point in (room.mic, *room.sources):
            assert all(0.5 <= point[k] <= room.dims[k] - 0.5 for k in range(3))
        for i, source in enumerate(room.sources):
            assert 0.66 <= math.dist(source[:2], room.mic[:2]) <= 2.0
            assert all(math.dist(source, other) >= 0.5 for other in room.sources[i + 1:])


@pytest.mark.parametrize("target", ["direct", "early", "reverberant"])
def test_targets_are_aligned_with_the_reverberant_images(target):
    """The direct-path target is the image's first arrival: their cross-correlation peaks at lag 0,
    and the image minus its late reverberation is the early target."""
    noise = np.random.default_rng(2)
    sources = [noise.standard_normal(8000), noise.standard_normal(6000)]
    simulator = RoomSimulator(8000, rt60=(0.5, 0.5), target=target)
    images, targets, room = simulator.apply(sources, np.random.default_rng(7))
    assert images.shape == targets.shape == (2, 6000)  # cut to the shortest source
    assert images.dtype == targets.dtype == np.float32
    for image, aim in zip(images, targets, strict=True):
        lags = np.arange(-50, 51)
        correlation = [np.dot(image[max(0, k):len(image) + min(0, k)], aim[max(0, -k):len(aim) - max(0, k)])
                       for k in lags]
        assert lags[int(np.argmax(correlation))] == 0
        if target == "reverberant":
            assert np.array_equal(image, aim)
        else:  # the target holds less energy than the image: reverberation removed
            assert np.square(aim).sum() < np.square(image).sum()
    again = RoomSimulator(8000, rt60=(0.5, 0.5), target=target).apply(sources, np.random.default_rng(7))
    assert again[2] == room and np.array_equal(again[0], images) and np.array_equal(again[1], targets)


def test_direct_target_is_the_source_delayed_and_attenuated():
    """With the direct path as target, the target is the dry source shifted by the propagation delay
    (plus pyroomacoustics' fixed filter delay) and scaled by 1 / distance (pyroomacoustics' spherical
    spreading, in metres)."""
    rng = np.random.default_rng(3)
    source = rng.standard_normal(4000)
    simulator = RoomSimulator(16000, rt60=(0.3, 0.3), target="direct")
    _, targets, room = simulator.apply([source], rng)
    distance = math.dist(room.sources[0], room.mic)
    delay = distance / 343.0 * 16000
    scale = np.dot(targets[0], targets[0]) ** 0.5 / np.dot(source[:4000], source[:4000]) ** 0.5
    assert scale == pytest.approx(1 / distance, rel=0.05)
    lags = np.arange(0, 200)
    correlation = [np.dot(targets[0][k:], source[:4000 - k]) for k in lags]
    assert abs(int(np.argmax(correlation)) - (delay + 40)) <= 1  # 40: half the 81-tap fractional-delay filter


@pytest.mark.parametrize("kwargs,match", [
    ({"target": "dry"}, "target must be one of"),
    ({"rt60": (1.0, 0.5)}, "rt60 must satisfy"),
    ({"rt60": "long"}, "rt60 must be a"),
    ({"height": (2.0, 2.5)}, "do not fit under the lowest ceiling"),
    ({"sample_rate": 100}, "sample_rate"),
])
def test_bad_settings_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RoomSimulator(**{"sample_rate": 8000, **kwargs})


def test_rooms_that_cannot_hold_the_sources_are_an_error():
    simulator = RoomSimulator(8000, length=(2.0, 2.0), width=(2.0, 2.0), source_distance=(3.0, 4.0))
    with pytest.raises(RuntimeError, match="could hold 2 sources"):
        simulator.draw(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="2 source positions, got 1"):
        RoomSimulator(8000).apply([np.zeros(100)], np.random.default_rng(0),
                                  room=RoomSimulator(8000).draw(np.random.default_rng(0), 2))
