"""sepmamba_sb.rooms: rooms as WHAMR!'s generator makes them (against pyroomacoustics' full simulation of
the official rooms) or at a measured RT60, WHAMR!'s levels, the reverberant field before a crop, aligned
targets, the official rooms replayed, reproducibility."""

import math

import numpy as np
import pytest

from sepmamba_sb.rooms import WHAMR_RT60, Room, RoomSimulator, measured_rt60


def official_response(room: Room, source: int, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """The official WHAMR! generator's response to ``room`` (pyroomacoustics' image-source model at its
    order, ceil(T60 c / smallest dimension), energy absorption 1 - (1 - a)^2 with Sabine's a, cut at T60),
    written here from its description, and the direct path alone."""
    import pyroomacoustics as pra

    volume = math.prod(room.dims)
    surface = 2 * (room.dims[0] * room.dims[1] + room.dims[0] * room.dims[2] + room.dims[1] * room.dims[2])
    sabine = 24 * math.log(10) * volume / (343.0 * surface * room.rt60)  # over 1 for short RT60s in large rooms
    out = []
    for order in (math.ceil(room.rt60 * 343.0 / min(room.dims)), 0):
        shoebox = pra.ShoeBox(list(room.dims), fs=sample_rate, materials=pra.Material(1 - (1 - sabine) ** 2),
                              max_order=order, air_absorption=False)
        shoebox.add_source(list(room.sources[source]))
        shoebox.add_microphone(np.array(room.mic)[:, None])
        shoebox.compute_rir()
        out.append(np.asarray(shoebox.rir[0][0], dtype=np.float64)[:math.ceil(room.rt60 * sample_rate)])
    return out[0], out[1]


def direct_to_reverberant_db(response: np.ndarray, direct: np.ndarray, sample_rate: int) -> float:
    """The energy within 2.5 ms of the direct path's arrival over the rest of the response."""
    arrival, half = int(np.argmax(np.abs(direct))), int(0.0025 * sample_rate)
    around = np.square(response[max(0, arrival - half):arrival + half + 1]).sum()
    return 10 * np.log10(around / (np.square(response).sum() - around))


def test_whamr_rooms_decay_as_the_official_ones():
    """Over 50 drawn rooms x 1 source, against pyroomacoustics at the official order and absorption: the
    measured RT60 (Schroeder's T30) within 10 % as a median ratio, the direct-to-reverberant ratio within
    1 dB as a median difference; and the official rooms decay faster than their nominal RT60 says."""
    simulator = RoomSimulator(8000, target="direct")
    rng = np.random.default_rng(11)
    ratios, drr_gaps, nominal = [], [], []
    for _ in range(50):
        room = simulator.draw(rng, 1)
        ours, direct = simulator.impulse_responses(room, rng)  # the direct path is the target
        official, official_direct = official_response(room, 0, 8000)
        ratios.append(measured_rt60(ours[0], 8000) / measured_rt60(official, 8000))
        drr_gaps.append(direct_to_reverberant_db(ours[0], direct[0], 8000) -
                        direct_to_reverberant_db(official, official_direct, 8000))
        nominal.append(measured_rt60(official, 8000) / room.rt60)
    assert abs(np.median(ratios) - 1) <= 0.10, np.percentile(ratios, [10, 50, 90])
    assert abs(np.median(drr_gaps)) <= 1.0, np.percentile(drr_gaps, [10, 50, 90])
    assert 0.4 < np.median(nominal) < 0.7  # about twice as fast as nominal: WHAMR!'s convention


def test_whamr_geometry():
    """The left microphone of a 15-17 cm pair centred on the room's centre +-0.2 m; sources 0.66-2 m
    from the pair's centre, no minimum spacing; one of the three RT60 ranges per room."""
    simulator = RoomSimulator(8000)
    rng = np.random.default_rng(12)
    rt60s = []
    for _ in range(200):
        room = simulator.draw(rng, 2)
        centre_offset = max(abs(room.mic[k] - room.dims[k] / 2) for k in (0, 1))
        assert centre_offset <= 0.2 + 0.085 and 0.9 <= room.mic[2] <= 1.8
        for source in room.sources:
            assert 0.66 - 0.085 <= math.dist(source[:2], room.mic[:2]) <= 2.0 + 0.085
        assert room.convention == "whamr" and any(lo <= room.rt60 <= hi for lo, hi in WHAMR_RT60)
        assert 0 < room.absorption < 1
        rt60s.append(room.rt60)
    assert min(rt60s) < 0.2 and max(rt60s) > 0.8 and np.mean(np.array(rt60s) < 0.3) > 0.25  # low rooms common


@pytest.mark.parametrize("convention", ["whamr", "rt60"])
def test_the_anechoic_level_difference_is_the_drawn_one(convention):
    """Whatever the distances, each source's direct path keeps the dry source's energy: the level
    difference of the direct-path targets is the dry sources' (within 0.1 dB)."""
    rng = np.random.default_rng(13)
    for drawn_db in (0.0, 2.5, -4.0):
        dry = [rng.standard_normal(8000), rng.standard_normal(8000)]
        dry[1] *= 10 ** (drawn_db / 20) * np.sqrt(np.mean(dry[0] ** 2) / np.mean(dry[1] ** 2))
        for _ in range(3):
            _, targets, room = RoomSimulator(8000, convention=convention, target="direct").apply(dry, rng)
            level = [10 * np.log10(np.mean(t.astype(np.float64) ** 2)) for t in targets]
            assert level[1] - level[0] == pytest.approx(drawn_db, abs=0.1), room
            assert level[0] == pytest.approx(10 * np.log10(np.mean(dry[0] ** 2)), abs=0.1)


def test_a_lead_in_puts_the_crop_in_a_built_up_reverberant_field():
    """Stationary white noise reverberated with 1 s before the crop: the image's energy over the crop's
    first 50 ms is within 1 dB of its mean over the rest; without it, the field is still building up."""
    rng = np.random.default_rng(14)
    source = rng.standard_normal(8000 * 3)
    simulator = RoomSimulator(8000, convention="rt60", rt60=(0.5, 0.5), target="reverberant")
    room = simulator.draw(rng, 1)
    for lead, built_up in ((8000, True), (0, False)):
        images, _, _ = simulator.apply([source[8000 - lead:]], np.random.default_rng(0), room=room, lead_in=lead)
        first, rest = np.mean(images[0][:400] ** 2), np.mean(images[0][400:] ** 2)
        assert (abs(10 * np.log10(first / rest)) <= 1.0) == built_up, 10 * np.log10(first / rest)


def test_official_rooms_replay_from_reverb_params(tmp_path):
    """Rows of a WHAMR! reverb_params file are the rooms drawn (left microphone, both sources, T60); a file
    without the columns a room needs is named."""
    columns = "utterance_id,room_x,room_y,room_z,micL_x,micL_y,mic_z,micR_x,micR_y,s1_x,s1_y,s1_z,s2_x,s2_y,s2_z,T60"
    rows = ["a_b,6.0,7.0,3.2,3.0,3.5,1.5,3.16,3.5,4.0,4.0,1.6,2.0,2.5,1.2,0.4",
            "c_d,9.5,5.5,3.9,4.7,2.8,1.1,4.85,2.8,5.2,4.1,1.7,3.9,1.5,1.0,0.8"]
    (tmp_path / "reverb_params_tr.csv").write_text("\n".join([columns, *rows]) + "\n")
    simulator = RoomSimulator(8000, reverb_params=tmp_path / "reverb_params_tr.csv")
    rng = np.random.default_rng(15)
    drawn = {simulator.draw(rng, 2) for _ in range(20)}
    assert drawn == {Room((6.0, 7.0, 3.2), 0.4, (3.0, 3.5, 1.5), ((4.0, 4.0, 1.6), (2.0, 2.5, 1.2)), "whamr"),
                     Room((9.5, 5.5, 3.9), 0.8, (4.7, 2.8, 1.1), ((5.2, 4.1, 1.7), (3.9, 1.5, 1.0)), "whamr")}
    images, targets, room = simulator.apply([rng.standard_normal(4000), rng.standard_normal(4000)], rng)
    assert images.shape == targets.shape == (2, 4000) and room in drawn
    (tmp_path / "broken.csv").write_text("utterance_id,room_x,room_y,T60\na,1,2,0.3\n")
    with pytest.raises(ValueError, match=r"broken.csv has no column\(s\) \['room_z', 'micL_x'"):
        RoomSimulator(8000, reverb_params=tmp_path / "broken.csv")
    with pytest.raises(ValueError, match="reverb_params rooms hold 2 sources, 3 were asked for"):
        simulator.draw(rng, 3)


@pytest.mark.parametrize("rt60,tolerance", [(0.1, 0.4), (0.2, 0.12), (0.4, 0.12), (0.7, 0.12), (1.0, 0.12)])
def test_measured_rt60_agrees_with_the_drawn_one(rt60, tolerance):
    """Schroeder's T30 of the responses of 5 random rooms x 2 sources, within the stated tolerance:
    12 % from 0.2 s up; 40 % at 0.1 s, where the direct sound and the first reflections are most of
    a response only 800 samples long at 8 kHz."""
    simulator = RoomSimulator(8000, convention="rt60", rt60=(rt60, rt60))
    rng = np.random.default_rng(0)
    ratios = []
    for _ in range(5):
        room = simulator.draw(rng, 2)
        responses, _ = simulator.impulse_responses(room, rng)
        ratios += [measured_rt60(h, 8000) / rt60 for h in responses]
    assert max(abs(r - 1) for r in ratios) <= tolerance, ratios


def test_rooms_keep_the_drawn_geometry():
    simulator = RoomSimulator(8000, convention="rt60", source_distance=(0.66, 2.0), min_source_spacing=0.5,
                              wall_margin=0.5)
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


def test_direct_target_is_the_source_delayed_at_its_level():
    """With the direct path as target, the target is the dry source shifted by the propagation delay
    (plus pyroomacoustics' fixed filter delay), at the dry source's level (WHAMR!'s scaling)."""
    rng = np.random.default_rng(3)
    source = rng.standard_normal(4000)
    simulator = RoomSimulator(16000, rt60=(0.3, 0.3), target="direct")
    _, targets, room = simulator.apply([source], rng)
    distance = math.dist(room.sources[0], room.mic)
    delay = distance / 343.0 * 16000
    scale = np.dot(targets[0], targets[0]) ** 0.5 / np.dot(source[:4000], source[:4000]) ** 0.5
    assert scale == pytest.approx(1.0, abs=1e-3)
    lags = np.arange(0, 200)
    correlation = [np.dot(targets[0][k:], source[:4000 - k]) for k in lags]
    assert abs(int(np.argmax(correlation)) - (delay + 40)) <= 1  # 40: half the 81-tap fractional-delay filter


@pytest.mark.parametrize("kwargs,match", [
    ({"target": "dry"}, "target must be one of"),
    ({"rt60": (1.0, 0.5)}, "rt60 must satisfy"),
    ({"rt60": "long"}, "rt60 must be a"),
    ({"height": (2.0, 2.5)}, "do not fit under the lowest ceiling"),
    ({"sample_rate": 100}, "sample_rate"),
    ({"convention": "sabine"}, "convention must be one of"),
    ({"rt60": [(0.1, 0.3), (0.6, 0.2)]}, "rt60 must satisfy"),
    ({"convention": "rt60", "reverb_params": __file__}, "need convention='whamr'"),
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
