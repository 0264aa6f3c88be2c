"""sepmamba_sb.inference and the sepmamba-separate CLI, on a model trained by the MiniMix recipe."""

import math
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import REPO
from speechbrain.inference.separation import SepformerSeparation

from sepmamba_sb.audio import read_audio, write_audio
from sepmamba_sb.cli import main as cli_main
from sepmamba_sb.hub import export
from sepmamba_sb.inference import SepMambaSeparation, fit_to_mixture, peak_normalise, separate_in_chunks
from sepmamba_sb.lobes import Decoder, Encoder, MaskingSeparator, MaskNet, SepMamba, as_separator
from sepmamba_sb.runs import load_training_run


def si_snr(estimate, reference):
    estimate, reference = estimate - estimate.mean(), reference - reference.mean()
    projection = (estimate @ reference) / (reference @ reference) * reference
    return float(10 * torch.log10(projection.square().sum() / (estimate - projection).square().sum()))


def best_si_snr(est, ref):
    """Mean SI-SNR of est [T, 2] against ref [T, 2] under the better source order."""
    return max((si_snr(est[:, 0], ref[:, a]) + si_snr(est[:, 1], ref[:, 1 - a])) / 2 for a in (0, 1))


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    return export(trained_run, tmp_path_factory.mktemp("hub") / "model")


@pytest.fixture(scope="module")
def model(exported, tmp_path_factory):
    return SepMambaSeparation.from_hparams(source=str(exported), savedir=str(tmp_path_factory.mktemp("pretrained")))


@pytest.fixture(scope="module")
def long_mixture(tiny_corpus):
    """About 60 s of real two-speaker mixtures, end to end."""
    parts = [sf.read(str(p), dtype="float32")[0] for p in sorted((tiny_corpus / "wav8k/min").rglob("mix/*.wav"))]
    audio = np.concatenate(parts * (1 + int(60 * 8000 / sum(map(len, parts)))))[: 60 * 8000]
    return torch.from_numpy(audio)


def test_round_trip_gives_the_in_memory_models_output(model, exported, trained_run):
    """export -> from_hparams -> separate_file equals the trained module itself."""
    hparams = load_training_run(trained_run)  # the demo recipe's masking form
    in_memory = as_separator(hparams["modules"], hparams["num_spks"]).eval()
    mix, _ = read_audio(exported / "test_mixture.wav")
    with torch.no_grad():
        expected = fit_to_mixture(in_memory(mix[None]), mix[None])
    got = model.separate_file(exported / "test_mixture.wav", progress=False)
    assert got.shape == expected.shape == (1, mix.shape[0], 2)
    assert torch.allclose(got, expected, atol=1e-6)


def test_masking_triple_exports_for_both_loaders(tmp_path):
    class Run:  # a Brain-like object: trained modules and hparams
        modules = {"encoder": Encoder(out_channels=8), "masknet": MaskNet(dim=8, num_blocks=1),
                   "decoder": Decoder(8)}
        hparams = SimpleNamespace(sample_rate=8000, num_spks=2, output_folder=str(tmp_path), test_data=None,
                                  experiment_name="unit", data_folder="-")

    sf.write(str(tmp_path / "mix.wav"), np.random.default_rng(0).standard_normal(3000).astype("float32") * 0.1, 8000)
    out = export(Run(), tmp_path / "hub", test_mixture=tmp_path / "mix.wav")
    ours = SepMambaSeparation.from_hparams(source=str(out), savedir=str(tmp_path / "a"))
    theirs = SepformerSeparation.from_hparams(source=str(out), savedir=str(tmp_path / "b"))
    mix = torch.randn(1, 3000)
    expected = MaskingSeparator(*Run.modules.values(), num_spks=2).eval()(mix)
    assert torch.allclose(ours.separate_batch(mix), expected, atol=1e-6)
    assert torch.allclose(theirs.separate_batch(mix), expected, atol=1e-6)


def test_chunked_long_file_agrees_with_whole_file_and_has_no_clicks(model, long_mixture):
    with torch.no_grad():
        whole = model.separate_batch(long_mixture[None])[0]
    chunk, overlap = 10 * 8000, 2 * 8000
    chunked = separate_in_chunks(model.separate_batch, long_mixture, chunk, overlap, progress=False)
    assert chunked.shape == whole.shape == (60 * 8000, 2)
    assert best_si_snr(chunked, whole) >= 25.0
    # a click is a sample-to-sample jump far beyond what the signal itself does
    jumps = chunked.diff(dim=0).abs()
    typical = torch.quantile(jumps.flatten()[::7], 0.999)
    for start in range(chunk - overlap, 60 * 8000 - overlap, chunk - overlap):
        for edge in (start, start + overlap):
            assert jumps[max(0, edge - 32):edge + 32].max() <= 2 * typical, edge


def test_memory_does_not_grow_with_length(exported, long_mixture, tmp_path):
    """Peak RSS separating 60 s vs 600 s, each in a fresh process: within 20 %."""
    peaks = {}
    for seconds in (60, 600):
        path = tmp_path / f"long{seconds}.wav"
        sf.write(str(path), np.tile(long_mixture.numpy(), seconds // 60), 8000)
        code = ("import resource, sys, torch\n"
                "from sepmamba_sb.profiling import track_memory_exactly\n"
                "track_memory_exactly()\n"
                "from sepmamba_sb.inference import SepMambaSeparation\n"
                f"m = SepMambaSeparation.from_hparams(source={str(exported)!r}, savedir={str(tmp_path / 'p')!r})\n"
                f"out = m.separate_file({str(path)!r}, progress=False)\n"
                "assert out.shape[1] == int(sys.argv[1]) * 8000\n"
                "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
        env = dict(os.environ, PYTHONPATH=str(REPO))
        done = subprocess.run([sys.executable, "-c", code, str(seconds)], capture_output=True, text=True, env=env,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        peaks[seconds] = int(done.stdout.split()[-1])
    assert peaks[600] <= 1.2 * peaks[60], peaks


@pytest.mark.parametrize("rate,channels", [(16000, 1), (8000, 2), (44100, 2), (8000, 1)])
def test_other_rates_and_stereo_keep_the_input_length(model, tmp_path, rate, channels):
    n = int(1.3 * rate)
    audio = np.random.default_rng(1).standard_normal((n, channels)).astype("float32") * 0.1
    sf.write(str(tmp_path / "in.wav"), audio, rate)
    out = model.separate_file(tmp_path / "in.wav", progress=False)
    assert out.shape == (1, n, 2) and torch.isfinite(out).all()


def test_short_files_work(model, tmp_path):
    sf.write(str(tmp_path / "short.wav"), np.full(5, 0.1, dtype="float32"), 8000)
    assert model.separate_file(tmp_path / "short.wav", progress=False).shape == (1, 5, 2)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: sf.write(str(p), np.zeros(0, dtype="float32"), 8000), "is empty"),
        (lambda p: sf.write(str(p), np.array([0.1, np.nan, 0.2], dtype="float32"), 8000, subtype="FLOAT"),
         "NaN or infinite"),
        (lambda p: p.write_bytes(b"RIFF....not audio"), "cannot read audio file"),
        (lambda p: None, "does not exist"),
    ],
    ids=["empty", "nan", "unreadable", "missing"],
)
def test_bad_files_are_clear_errors_naming_the_file(model, tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(ValueError, match=match) as info:
        model.separate_file(path, progress=False)
    assert "bad.wav" in str(info.value)


def test_cli_writes_sources_and_fails_in_one_line(exported, tmp_path, capsys):
    mix = exported / "test_mixture.wav"
    assert cli_main([str(exported), str(mix), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    for s in (1, 2):
        audio, rate = sf.read(str(tmp_path / "out" / f"test_mixture_s{s}.wav"))
        assert rate == 8000 and len(audio) == sf.info(str(mix)).frames and np.abs(audio).max() < 1.0
    capsys.readouterr()
    assert cli_main([str(exported), str(tmp_path / "missing.wav"), "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
    (tmp_path / "bad.wav").write_bytes(b"junk")
    assert cli_main([str(exported), str(tmp_path / "bad.wav"), "--out", str(tmp_path), "--quiet"]) == 2
    assert "bad.wav" in capsys.readouterr().err
    assert cli_main([str(tmp_path / "no-model"), str(mix), "--out", str(tmp_path), "--quiet"]) == 2
    assert "cannot load the model" in capsys.readouterr().err


@pytest.mark.slow
def test_console_entry_point_is_installed():
    done = subprocess.run(["sepmamba-separate", "--help"], capture_output=True, text=True,
                          env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
    assert done.returncode == 0 and "MODEL" in done.stdout.upper()


def test_direct_model_from_a_brain_like_object(tmp_path):
    class Run:
        modules = {"sepmamba": SepMamba(dim=8, num_blocks=1)}
        hparams = SimpleNamespace(sample_rate=8000, num_spks=2, output_folder=str(tmp_path), test_data=None,
                                  experiment_name="unit", data_folder="-")

    sf.write(str(tmp_path / "mix.wav"), np.zeros(100, dtype="float32"), 8000)
    out = export(Run(), tmp_path / "hub", test_mixture=tmp_path / "mix.wav")
    loaded = SepMambaSeparation.from_hparams(source=str(out), savedir=str(tmp_path / "p"))
    mix = torch.randn(2, 900)
    assert torch.allclose(loaded.separate_batch(mix), Run.modules["sepmamba"].eval()(mix), atol=1e-6)


# ---- output levels ------------------------------------------------------------------------------------

def clip(name):
    return read_audio(REPO / "tests" / "data" / name)[0]


def level_db(x):
    return float(10 * torch.log10(torch.as_tensor(x).double().square().mean() + 1e-30))


def test_fit_to_mixture_recovers_scales_and_signs_and_leaves_silence_silent():
    s1, s2 = clip("speech-f-allison-en.wav"), clip("speech-m-carlo-it.wav")
    mix = (s1 + 0.3 * s2)[None]
    est = torch.stack([-2.0 * s1, 5.0 * s2], dim=-1)[None]  # SI-SNR cannot see scale or sign
    fitted = fit_to_mixture(est, mix)
    assert torch.allclose(fitted, torch.stack([s1, 0.3 * s2], dim=-1)[None], atol=1e-5)
    assert torch.equal(fit_to_mixture(est, torch.zeros_like(mix)), torch.zeros_like(est))
    assert torch.equal(fit_to_mixture(torch.zeros_like(est), mix), torch.zeros_like(est))
    # an estimate unrelated to the mixture (here noise) comes out near silent
    noisy = torch.stack([s1, torch.randn_like(s1)], dim=-1)[None]
    quiet = fit_to_mixture(noisy, s1[None])
    assert level_db(quiet[..., 1]) < level_db(s1) - 30
    with pytest.raises(ValueError, match="est must be"):
        fit_to_mixture(est[0], mix)


@pytest.fixture(scope="module")
def separator_folder(tmp_path_factory):
    """A tiny SepMamba that separates the two voices of tests/data (trained on random time shifts and
    levels of them, 150 Adam steps), exported as a hub folder."""
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    torch.manual_seed(0)
    s1, s2 = clip("speech-f-allison-en.wav"), clip("speech-m-carlo-it.wav")
    model = SepMamba(dim=16, num_blocks=1)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        gains = 10 ** (torch.rand(2, generator=g) - 0.5)
        shifts = torch.randint(0, s1.shape[0], (2,), generator=g).tolist()
        sources = torch.stack([s1.roll(shifts[0]) * gains[0], s2.roll(shifts[1]) * gains[1]], dim=-1)[None]
        loss = get_si_snr_with_pitwrapper(sources, model(sources.sum(-1))).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
    folder = tmp_path_factory.mktemp("separator")

    class Run:
        modules = {"sepmamba": model.eval()}
        hparams = SimpleNamespace(sample_rate=8000, num_spks=2, output_folder=str(folder), test_data=None,
                                  experiment_name="unit", data_folder="-")

    sf.write(str(folder / "mix.wav"), (s1 + s2).numpy(), 8000)
    return export(Run(), folder / "hub", test_mixture=folder / "mix.wav"), model


def separate_with_cli(folder, audio, tmp_path, *options):
    path = tmp_path / "in.wav"
    sf.write(str(path), audio.numpy(), 8000, subtype="FLOAT")
    assert cli_main([str(folder), str(path), "--out", str(tmp_path / "out"), "--quiet", *options]) == 0
    return torch.stack([torch.from_numpy(sf.read(str(tmp_path / "out" / f"in_s{s}.wav"), dtype="float32")[0])
                        for s in (1, 2)], dim=-1)


def test_cli_keeps_silence_silent_and_each_source_at_its_level(separator_folder, tmp_path):
    folder, model = separator_folder
    s1, s2 = clip("speech-f-allison-en.wav"), clip("speech-m-carlo-it.wav")
    # a silent file: silent sources (peak normalisation made them full-scale noise)
    assert separate_with_cli(folder, torch.zeros(4000), tmp_path).abs().max() < 1e-3
    # a real two-speaker mixture: the sources sum to the mixture's level
    out = separate_with_cli(folder, s1 + s2, tmp_path)
    assert abs(level_db(out.sum(-1)) - level_db(s1 + s2)) < 1.0
    # a quiet speaker stays quiet: each speaker keeps its level in the mixture across the outputs (the
    # gains of its reference in them sum to 1 within 1 dB; a tiny model may split a speaker 20 dB down
    # between them), and the quieter output stays far below the louder one (peak normalisation: 0 dB)
    out = separate_with_cli(folder, s1 + 0.1 * s2, tmp_path)
    for reference in (s1, 0.1 * s2):
        gains = [float(out[:, k] @ reference / (reference @ reference)) for k in (0, 1)]
        assert abs(20 * math.log10(sum(gains))) < 1.0, gains
    louder, quieter = sorted((level_db(out[:, k]) for k in (0, 1)), reverse=True)
    assert louder - quieter > 10.0, (louder, quieter)
    # one speaker alone: the other output is at least as far below as the model's reconstruction of the
    # speaker is faithful (its SI-SNR), and far below in any case
    for alone in (s1, s2):
        out = separate_with_cli(folder, alone, tmp_path)
        louder, quieter = sorted((level_db(out[:, k]) for k in (0, 1)), reverse=True)
        with torch.no_grad():
            raw = model(alone[None])[0]
        fidelity = max(si_snr(raw[:, k], alone) for k in (0, 1))
        assert louder - quieter >= min(fidelity, 20.0) - 0.5 and louder - quieter >= 12.0, (louder, quieter, fidelity)
    # peak normalisation on request, by either name; the two names must not contradict each other
    for option in (["--peak-normalize"], ["--level", "peak"]):
        out = separate_with_cli(folder, s1 + s2, tmp_path, *option)
        assert torch.allclose(out.abs().amax(dim=0), torch.full((2,), 0.9), atol=1e-3)
    assert cli_main([str(folder), str(tmp_path / "in.wav"), "--level", "raw", "--peak-normalize"]) == 2


def test_separate_file_sets_the_output_level(separator_folder, tmp_path):
    """level="raw" is the model's output, "mixture" (the default) its fit to the mixture, "peak" that at a
    peak of 0.9; a raw output louder than full scale is written without clipping."""
    folder, model = separator_folder
    separator = SepMambaSeparation.from_hparams(source=str(folder), savedir=str(tmp_path / "pretrained"))
    mix = 3 * (clip("speech-f-allison-en.wav") + clip("speech-m-carlo-it.wav"))
    path = write_audio(tmp_path / "mix.wav", mix, 8000, subtype="FLOAT")
    with torch.no_grad():
        expected = model(mix[None])
    raw = separator.separate_file(path, level="raw", progress=False)
    assert torch.allclose(raw, expected, atol=1e-5)
    fitted = separator.separate_file(path, progress=False)
    assert torch.allclose(fitted, fit_to_mixture(expected, mix[None]), atol=1e-5)
    peak = separator.separate_file(path, level="peak", progress=False)
    assert torch.allclose(peak, peak_normalise(fitted)) and torch.allclose(peak.abs().amax(1), torch.tensor(0.9))
    with pytest.raises(ValueError, match="level must be one of .*got 'loud'"):
        separator.separate_file(path, level="loud")
    assert fitted.abs().max() > 1  # full scale exceeded: the CLI's file keeps the samples (float wav)
    assert cli_main([str(folder), str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    written = torch.stack([read_audio(tmp_path / "out" / f"mix_s{s}.wav")[0] for s in (1, 2)], dim=-1)
    assert torch.allclose(written, fitted[0], atol=1e-5)


def test_model_card_states_the_training_conditions():
    from functools import partial

    from sepmamba_sb.noise import NoiseSource
    from sepmamba_sb.rooms import RoomSimulator
    from sepmamba_sb.runs import training_conditions

    assert training_conditions({"model_config": {"causal": False}}) == (
        "Conditions: clean, anechoic mixtures (wsj0mix, task `clean`). Non-causal model.")
    whamr = {"dataset": "whamr", "task": "noisy-reverberant", "dereverberate": True, "dynamic_mixing": True,
             "dm_rooms": partial(RoomSimulator, sample_rate=8000, rt60=[0.1, 1.0], target="direct"),
             "dm_noise": partial(NoiseSource, folder="n", sample_rate=8000, snr=[-3, 6]),
             "model_config": {"causal": True}, "strict_causal": True}
    assert training_conditions(whamr) == (
        "Conditions: noisy and reverberant mixtures (whamr, task `noisy-reverberant`); targets: the direct path "
        "(it separates and dereverberates); dynamic mixtures with simulated rooms as WHAMR!'s (nominal RT60 "
        "[0.1, 1.0] s, target direct) and noise at [-3, 6] dB SNR (BS.1770 loudness). Strictly causal model "
        "(no look-ahead).")
    assert "keeping the reverberation" in training_conditions({**whamr, "dereverberate": False})
