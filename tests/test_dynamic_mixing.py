"""sepmamba_sb.data.mixing (the recipes' dynamic mixing): distinct speakers, sums, peaks, lengths, levels."""

import numpy as np
import pytest
import soundfile as sf
import torch

from sepmamba_sb.audio import list_speakers
from sepmamba_sb.data import mixing as dm


@pytest.fixture
def speaker_folder(tmp_path):
    """4 speakers x 3 utterances of noise at speaker-specific levels, 16 kHz (resampled on use)."""
    rng = np.random.default_rng(0)
    for s, level in enumerate([0.5, 0.05, 0.2, 0.1]):
        for u in range(3):
            path = tmp_path / "si_tr_s" / f"sp{s}" / f"sp{s}u{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), (rng.standard_normal(16000 + 4000 * u) * level).astype("float32"), 16000)
    return tmp_path / "si_tr_s"


def dataset(folder, style, num_spks=2, segment=8000, **kwargs):
    return dm.DynamicMixingDataset(folder, num_mixtures=12, num_spks=num_spks, sample_rate=8000, segment=segment,
                                   style=style, cache_folder=folder.parent / "cache", **kwargs)


@pytest.mark.parametrize("num_spks", [2, 3])
@pytest.mark.parametrize("style", dm.STYLES)
def test_mixtures_are_distinct_speakers_summed_and_bounded(speaker_folder, style, num_spks):
    data = dataset(speaker_folder, style, num_spks)
    for i in range(len(data)):
        item = data[i]
        speakers = item["id"].split("_")[0].split("+")
        assert len(speakers) == num_spks == len(set(speakers))
        sources = torch.stack([item[f"s{s + 1}_sig"] for s in range(num_spks)])
        assert torch.allclose(item["mix_sig"], sources.sum(0), atol=1e-6)
        assert max(item["mix_sig"].abs().max(), sources.abs().max()) <= 0.9 + 1e-6
        length = item["mix_sig"].shape[-1]
        if style == "sepmamba":  # 8000-sample crops, then speed factors 0.95-1.05, cut to the segment
            assert 8000 / 1.05 - 2 <= length <= 8000
        else:  # min(shortest utterance, segment)
            assert length == 8000
    assert (speaker_folder.parent / "cache" / "8000").is_dir()  # 16 kHz files resampled once, cached


def test_mixtures_are_reproducible_and_new_each_epoch(speaker_folder):
    a, b = dataset(speaker_folder, "sepmamba"), dataset(speaker_folder, "sepmamba")
    assert torch.equal(a[3]["mix_sig"], b[3]["mix_sig"])
    b.set_epoch(1)
    assert b[3]["id"] != a[3]["id"] or not torch.equal(b[3]["mix_sig"], a[3]["mix_sig"])
    other_seed = dataset(speaker_folder, "sepmamba", seed=7)
    assert not torch.equal(other_seed[3]["mix_sig"], a[3]["mix_sig"])


def test_activlev_file_sets_the_levels(speaker_folder, tmp_path):
    """A speaker whose active level is 100x higher in the file comes out 10x quieter, all else equal."""
    stems = [p.stem for p in speaker_folder.rglob("*.wav")]
    plain, loud_sp0 = tmp_path / "plain.txt", tmp_path / "loud.txt"
    plain.write_text("".join(f"{s} 1e-3\n" for s in stems))
    loud_sp0.write_text("".join(f"{s} {1e-1 if s.startswith('sp0') else 1e-3}\n" for s in stems))
    a = dataset(speaker_folder, "sepmamba", activlev_file=plain, speed_factors=[1.0])
    b = dataset(speaker_folder, "sepmamba", activlev_file=loud_sp0, speed_factors=[1.0])
    checked = 0
    for i in range(len(a)):
        speakers = a[i]["id"].split("_")[0].split("+")
        if "sp0" not in speakers:
            continue
        k = speakers.index("sp0")
        other = 1 - k
        ratio_a = a[i][f"s{k + 1}_sig"].norm() / a[i][f"s{other + 1}_sig"].norm()
        ratio_b = b[i][f"s{k + 1}_sig"].norm() / b[i][f"s{other + 1}_sig"].norm()
        assert float(ratio_a / ratio_b) == pytest.approx(10.0, rel=1e-4)
        checked += 1
    assert checked > 0
    missing = tmp_path / "missing.txt"
    missing.write_text("sp0u0 1e-3\n")
    with pytest.raises(KeyError, match="not in the activlev file"):
        [dataset(speaker_folder, "sepmamba", activlev_file=missing)[i] for i in range(12)]


def test_speaker_from_file_name_prefix(tmp_path):
    """WSJ0's convention: the first 3 characters of a file name are the speaker."""
    for name in ("01aa0101", "01ab0102", "02ca0101", "02cb0102"):
        path = tmp_path / "flat" / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.zeros(100, dtype="float32"), 8000)
    assert set(list_speakers(tmp_path / "flat", speaker_prefix=3)) == {"01a", "02c"}
    assert set(list_speakers(tmp_path / "flat")) == {"flat"}


def test_speaker_is_the_first_folder_below_the_root(tmp_path):
    """LibriSpeech's <speaker>/<chapter>/<utterance> layout: the speaker, not the chapter."""
    for rel in ("19/198/19-198-0001.wav", "19/227/19-227-0002.WAV", "26/495/26-495-0003.wav", "26/notes.txt"):
        path = tmp_path / "libri" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith("txt"):
            path.write_text("not audio")
        else:
            sf.write(str(path), np.zeros(100, dtype="float32"), 8000)
    speakers = list_speakers(tmp_path / "libri")
    assert {k: [p.name for p in v] for k, v in speakers.items()} == {
        "19": ["19-198-0001.wav", "19-227-0002.WAV"], "26": ["26-495-0003.wav"]}


def test_bad_folders_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        dataset(tmp_path / "nowhere", "speechbrain")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty holds no .wav or .flac files"):
        dataset(tmp_path / "empty", "speechbrain")
    (tmp_path / "one" / "spk").mkdir(parents=True)
    sf.write(str(tmp_path / "one" / "spk" / "a.wav"), np.zeros(100, dtype="float32"), 8000)
    with pytest.raises(ValueError, match="need 2 distinct"):
        dataset(tmp_path / "one", "speechbrain")
    with pytest.raises(ValueError, match="style"):
        dataset(tmp_path / "one", "random")
    bad = tmp_path / "activlev.txt"
    bad.write_text("utt1\n")
    with pytest.raises(ValueError, match="activlev.txt:1"):
        dm.read_activlev(bad)


@pytest.mark.parametrize("style", dm.STYLES)
def test_rooms_and_noise_make_reverberant_noisy_mixtures(speaker_folder, tmp_path, style):
    """Noise at WHAM!'s SNR: without rooms, the mixture minus the targets' sum is the noise, 0 LU below the
    louder target (pyloudnorm, within 0.1 LU). With rooms whose targets are the reverberant images, that
    residual is the noise still; with direct-path targets, the targets hold less energy than the mixture's
    speech. Peaks stay bounded and items reproducible."""
    import pyloudnorm

    from sepmamba_sb.noise import NoiseSource
    from sepmamba_sb.rooms import RoomSimulator

    meter = pyloudnorm.Meter(8000)
    noise_folder = tmp_path / "noise"
    noise_folder.mkdir()
    sf.write(str(noise_folder / "n.wav"), np.random.default_rng(0).standard_normal(20000).astype("float32"), 8000)
    for rooms in (None, RoomSimulator(8000, rt60=(0.3, 0.6), target="reverberant")):
        noisy = dataset(speaker_folder, style, rooms=rooms, noise=NoiseSource(noise_folder, 8000, snr=(0.0, 0.0)))
        for i in range(4):
            item = noisy[i]
            sources = torch.stack([item["s1_sig"], item["s2_sig"]]).double()
            residual = (item["mix_sig"].double() - sources.sum(0)).numpy()
            assert max(item["mix_sig"].abs().max(), sources.abs().max()) <= 0.9 + 1e-6
            assert np.sqrt(np.mean(residual ** 2)) > 1e-3  # the noise is there
            if rooms is None:
                louder = max(meter.integrated_loudness(s) for s in sources.numpy())
                assert louder - meter.integrated_loudness(residual) == pytest.approx(0.0, abs=0.1)
        again = dataset(speaker_folder, style, rooms=rooms, noise=NoiseSource(noise_folder, 8000, snr=(0.0, 0.0)))
        assert torch.equal(noisy[2]["mix_sig"], again[2]["mix_sig"])
    direct = dataset(speaker_folder, style, rooms=RoomSimulator(8000, rt60=(0.6, 0.6), target="direct"))
    item = direct[0]
    targets = torch.stack([item["s1_sig"], item["s2_sig"]])
    assert targets.square().sum() < 0.9 * item["mix_sig"].square().sum()  # the reverberation is not in them
    with pytest.raises(ValueError, match="rooms work at 16000 Hz, the mixtures at 8000 Hz"):
        dataset(speaker_folder, style, rooms=RoomSimulator(16000))


@pytest.mark.parametrize("style", dm.STYLES)
def test_max_mode_pads_to_the_longest_source(speaker_folder, style):
    """pywsj0-mix's max mode: sources padded with silence to the longest instead of cut to the shortest."""
    longest = dataset(speaker_folder, style, segment=20000, mode="max", speed_factors=[0.9, 1.1])
    shortest = dataset(speaker_folder, style, segment=20000, speed_factors=[0.9, 1.1])
    padded = 0
    for i in range(6):
        a, b = longest[i], shortest[i]
        assert a["mix_sig"].shape[-1] >= b["mix_sig"].shape[-1]
        if a["mix_sig"].shape[-1] > b["mix_sig"].shape[-1]:
            assert min(a[f"s{s}_sig"][-50:].abs().max() for s in (1, 2)) == 0  # the shorter source was padded
            padded += 1
    assert padded >= 3
    with pytest.raises(ValueError, match="mode must be one of"):
        dataset(speaker_folder, style, mode="mean")


def test_one_speaker_mixtures_for_enhancement(speaker_folder):
    data = dataset(speaker_folder, "sepmamba", num_spks=1)
    item = data[0]
    assert sorted(item) == ["id", "mix_sig", "s1_sig"] and torch.allclose(item["mix_sig"], item["s1_sig"])


def test_the_yaml_declaration_builds_the_dataset(speaker_folder, tmp_path):
    """As a recipe yaml declares it: a !name: factory, its rooms and noise !name: factories too, and
    train.py adding the mixtures per epoch; without the folder of utterances, the error says what to give."""
    from hyperpyyaml import load_hyperpyyaml

    from sepmamba_sb.rooms import RoomSimulator

    yaml = f"""
    dm_rooms: !name:sepmamba_sb.rooms.RoomSimulator
        sample_rate: 8000
        target: reverberant
    dm_dataset: !name:sepmamba_sb.data.mixing.DynamicMixingDataset
        base_folder: {speaker_folder}
        num_spks: 2
        sample_rate: 8000
        segment: 8000
        style: sepmamba
        cache_folder: {tmp_path / "cache"}
        rooms: !ref <dm_rooms>
    """
    hparams = load_hyperpyyaml(yaml)
    data = hparams["dm_dataset"](num_mixtures=5)
    assert len(data) == 5 and isinstance(data.rooms, RoomSimulator) and data.rooms.target == "reverberant"
    assert data[0]["mix_sig"].shape == data[0]["s1_sig"].shape
    with pytest.raises(ValueError, match="needs a folder of single-speaker utterances: give it with --base_folder_dm"):
        hparams["dm_dataset"](num_mixtures=5, base_folder=None)


def test_formant_factors_perturb_each_source_and_one_keeps_it(speaker_folder):
    """formant_factors [1.0] leaves the sources as they were; other factors change them (same draws)."""
    plain = dataset(speaker_folder, "sepmamba", speed_factors=[1.0])[3]
    same = dataset(speaker_folder, "sepmamba", speed_factors=[1.0], formant_factors=[1.0])[3]
    shifted = dataset(speaker_folder, "sepmamba", speed_factors=[1.0], formant_factors=[1.2])[3]
    assert torch.equal(plain["s1_sig"], same["s1_sig"])
    assert shifted["s1_sig"].shape == plain["s1_sig"].shape
    assert not torch.allclose(shifted["s1_sig"], plain["s1_sig"], atol=1e-3)
    assert max(shifted[k].abs().max() for k in ("mix_sig", "s1_sig", "s2_sig")) <= 0.9 + 1e-6  # still bounded
    assert torch.allclose(shifted["mix_sig"], shifted["s1_sig"] + shifted["s2_sig"], atol=1e-6)
    with pytest.raises(ValueError, match="formant_factors is empty"):
        dataset(speaker_folder, "sepmamba", formant_factors=[])


def test_linked_speaker_folders_are_followed_once(tmp_path, caplog):
    """A corpus assembled from links to speaker folders keeps every speaker; a link back up the tree
    (a cycle) and a second link to the same folder are read once; the log says what was found."""
    import logging

    for speaker in ("a", "b", "c"):
        path = tmp_path / "elsewhere" / speaker / "u.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), np.zeros(100, dtype="float32"), 8000)
    corpus = tmp_path / "corpus"
    (corpus / "d").mkdir(parents=True)
    sf.write(str(corpus / "d" / "u.wav"), np.zeros(100, dtype="float32"), 8000)
    for speaker in ("a", "b", "c"):
        (corpus / speaker).symlink_to(tmp_path / "elsewhere" / speaker, target_is_directory=True)
    (corpus / "d" / "loop").symlink_to(corpus, target_is_directory=True)  # a cycle
    with caplog.at_level(logging.INFO, logger="sepmamba_sb.audio"):
        speakers = list_speakers(corpus)
    assert {k: len(v) for k, v in speakers.items()} == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert "4 speakers, 4 files" in caplog.text


def _active(item, num_spks=2):
    return torch.stack([item[f"s{s + 1}_sig"] for s in range(num_spks)]) != 0


@pytest.mark.parametrize("ratio", [0.0, 0.5])
def test_partial_overlap_gives_each_source_its_stretch(speaker_folder, ratio):
    """Overlap ratio r: two stretches of span = T / (2 - r) samples overlapping by r * span; outside its
    stretch a source is exactly zero, and the mixture is still the sum."""
    data = dataset(speaker_folder, "sepmamba", overlap=(ratio, ratio), speed_factors=[1.0])
    for i in range(len(data)):
        item = data[i]
        active = _active(item)
        length = item["mix_sig"].shape[-1]
        span = round(length / (2 - ratio))
        both = int((active[0] & active[1]).sum())
        assert both == pytest.approx(round(ratio * span), abs=2)  # noise sources: every sample nonzero
        assert int(active.any(0).sum()) == length
        assert torch.allclose(item["mix_sig"], item["s1_sig"] + item["s2_sig"], atol=1e-6)


def test_options_off_leave_the_mixtures_as_they_were(speaker_folder):
    """Full overlap and no single speakers draw nothing: the very same mixtures as without the options."""
    plain = dataset(speaker_folder, "sepmamba")
    off = dataset(speaker_folder, "sepmamba", overlap=(1.0, 1.0), single_speaker=0.0)
    for i in range(len(plain)):
        assert torch.equal(plain[i]["mix_sig"], off[i]["mix_sig"])


def test_rooms_probability(speaker_folder):
    """Rooms drawn never: the mixture is the sum of the (direct-path) targets; always: it is not."""
    from sepmamba_sb.rooms import RoomSimulator

    for probability, dry in ((0.0, True), (1.0, False)):
        data = dataset(speaker_folder, "sepmamba", rooms=RoomSimulator(8000), rooms_probability=probability)
        item = data[0]
        assert torch.allclose(item["mix_sig"], item["s1_sig"] + item["s2_sig"], atol=1e-6) == dry


def test_single_speaker_mixtures_have_one_voice_and_silent_targets(speaker_folder):
    data = dataset(speaker_folder, "sepmamba", single_speaker=1.0)
    for i in range(len(data)):
        item = data[i]
        active = _active(item).any(-1)
        assert int(active.sum()) == 1
        voice = item["s1_sig"] if active[0] else item["s2_sig"]
        assert torch.allclose(item["mix_sig"], voice, atol=1e-6)


def test_share_of_single_speaker_mixtures(speaker_folder):
    data = dm.DynamicMixingDataset(speaker_folder, num_mixtures=400, num_spks=2, sample_rate=8000, segment=800,
                                   style="speechbrain", cache_folder=speaker_folder.parent / "cache",
                                   single_speaker=0.25)
    alone = sum(int(_active(data[i]).any(-1).sum()) == 1 for i in range(len(data)))
    assert 0.18 < alone / 400 < 0.32  # 0.25 +- 3.5 standard deviations


def test_uniform_speaker_weights(tmp_path):
    """A voice with 30 recordings is drawn 30 times as often as one with 1 by file counts; equally often
    with ``uniform``."""
    from sepmamba_sb.audio import draw_speakers

    speakers = {"many": [tmp_path / f"m{n}.wav" for n in range(30)], "one": [tmp_path / "o.wav"],
                "two": [tmp_path / "t.wav"], "three": [tmp_path / "h.wav"]}
    rng = np.random.default_rng(0)
    counts = {"files": {}, "uniform": {}}
    for weights in counts:
        for _ in range(2000):
            for name, _ in draw_speakers(rng, speakers, 1, weights):
                counts[weights][name] = counts[weights].get(name, 0) + 1
    assert counts["files"]["many"] > 1700
    assert all(400 < counts["uniform"][name] < 600 for name in speakers)
    with pytest.raises(ValueError, match="speaker weights"):
        draw_speakers(rng, speakers, 1, "by-length")


@pytest.mark.parametrize("option, value, match", [("overlap", (0.5, 0.2), "overlap"), ("overlap", 0.5, "overlap"),
                                                  ("single_speaker", 1.5, "single_speaker"),
                                                  ("rooms_probability", -0.1, "rooms_probability"),
                                                  ("speaker_weights", "by-length", "speaker_weights")])
def test_bad_conversation_options_are_named(speaker_folder, option, value, match):
    with pytest.raises(ValueError, match=match):
        dataset(speaker_folder, "sepmamba", **{option: value})


def test_overlap_probability_leaves_the_other_mixtures_fully_overlapped(speaker_folder):
    never = dataset(speaker_folder, "sepmamba", overlap=(0.0, 0.0), overlap_probability=0.0)
    assert all(bool(_active(never[i]).all()) for i in range(len(never)))  # noise sources: nonzero everywhere
    data = dm.DynamicMixingDataset(speaker_folder, num_mixtures=300, num_spks=2, sample_rate=8000, segment=800,
                                   style="speechbrain", cache_folder=speaker_folder.parent / "cache",
                                   overlap=(0.0, 0.0), overlap_probability=0.5)
    turns = sum(not bool(_active(data[i]).all()) for i in range(len(data)))
    assert 0.4 < turns / 300 < 0.6  # 0.5 +- 3.5 standard deviations
