"""Streaming separation: the scan's initial state, the stateful conv and Mamba pieces, causal SepMamba
chunk by chunk (equal to offline, or to offline delayed by the look-ahead), the inference API and CLI."""

import csv
import os
import random
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import REPO

from sepmamba_sb.cli import main as cli_main
from sepmamba_sb.hub import export
from sepmamba_sb.inference import SepMambaSeparation
from sepmamba_sb.lobes import CONFIGS, Decoder, Encoder, MaskingSeparator, MaskNet, SepMamba
from sepmamba_sb.lobes.streaming import lookahead
from sepmamba_sb.nnet import MambaStack
from sepmamba_sb.nnet.streaming import strided_conv_stream, transposed_conv_stream
from sepmamba_sb.ops import causal_conv1d, selective_scan
from sepmamba_sb.profiling import resident_bytes

CHUNKS = [1, 7, 8, 64, 256, 4000]


def scan_inputs(batch=2, dim=19, length=150, nstate=16, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(u=torch.randn(batch, dim, length, generator=g, dtype=dtype),
                delta=0.5 * torch.randn(batch, dim, length, generator=g, dtype=dtype),
                A=-torch.rand(dim, nstate, generator=g, dtype=dtype) - 0.1,
                B=torch.randn(batch, nstate, length, generator=g, dtype=dtype),
                C=torch.randn(batch, nstate, length, generator=g, dtype=dtype),
                D=torch.randn(dim, generator=g, dtype=dtype),
                z=torch.randn(batch, dim, length, generator=g, dtype=dtype),
                delta_bias=torch.randn(dim, generator=g, dtype=dtype))


def time_slice(inputs, start, end):
    return {k: v[..., start:end] if k in ("u", "delta", "B", "C", "z") else v for k, v in inputs.items()}


@pytest.mark.parametrize("backend", ["cpu", "reference"])
@pytest.mark.parametrize("nstate", [16, 5])
def test_scan_continued_from_its_last_state_equals_one_scan(backend, nstate):
    inputs = scan_inputs(nstate=nstate)
    truth, last = selective_scan(**inputs, delta_softplus=True, return_last_state=True, backend="reference")
    f32 = {k: v.float() for k, v in inputs.items()}
    outs, state = [], None
    for start, end in [(0, 1), (1, 67), (67, 130), (130, 150)]:
        y, state = selective_scan(**time_slice(f32, start, end), delta_softplus=True, return_last_state=True,
                                  backend=backend, initial_state=state)
        outs.append(y)
    assert (torch.cat(outs, -1).double() - truth).abs().max() / truth.abs().max() < 1e-5
    assert (state.double() - last).abs().max() / last.abs().max() < 1e-5


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_scan_gradients_with_an_initial_state(backend):
    inputs = time_slice(scan_inputs(dim=9, nstate=4), 0, 20)
    inputs = {k: v.requires_grad_() for k, v in inputs.items()}
    h0 = torch.randn(2, 9, 4, dtype=torch.float64, requires_grad=True)

    def scan(*args):
        return selective_scan(*args[:-1], delta_softplus=True, backend=backend, initial_state=args[-1])

    assert torch.autograd.gradcheck(scan, (*inputs.values(), h0))


def test_scan_initial_state_of_the_wrong_shape_is_named():
    inputs = scan_inputs()
    with pytest.raises(ValueError, match="initial_state must have shape"):
        selective_scan(**inputs, initial_state=torch.zeros(2, 19, 3, dtype=torch.float64))


def test_conv_and_mamba_stack_continue_a_stream():
    torch.manual_seed(0)
    x = torch.randn(2, 12, 50)
    weight, bias = torch.randn(12, 4), torch.randn(12)
    whole = causal_conv1d(x, weight, bias)
    state, parts = torch.zeros(2, 12, 3), []
    for start, end in [(0, 2), (2, 3), (3, 40), (40, 50)]:
        y, state = causal_conv1d(x[..., start:end], weight, bias, initial_states=state, return_final_states=True)
        parts.append(y)
    assert torch.allclose(torch.cat(parts, -1), whole, atol=1e-6)
    # with a gradient wanted, the differentiable multiply-adds instead of the C++ one-pass conv
    leaf = x.clone().requires_grad_()
    y, state = causal_conv1d(leaf[..., :20], weight, bias, initial_states=torch.zeros(2, 12, 3),
                             return_final_states=True)
    y = torch.cat([y, causal_conv1d(leaf[..., 20:], weight, bias, initial_states=state)], -1)
    assert torch.allclose(y, whole, atol=1e-6)
    y.sum().backward()
    assert leaf.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="initial_states must be"):
        causal_conv1d(x, weight, bias, initial_states=torch.zeros(2, 12, 4))

    stack = MambaStack(16, 2).eval()
    seq = torch.randn(3, 90, 16)
    with torch.no_grad():
        whole = stack(seq)
        states = stack.allocate_state(3)
        parts = [stack(seq[:, a:b], states) for a, b in [(0, 1), (1, 33), (33, 90)]]
    assert (torch.cat(parts, 1) - whole).abs().max() < 1e-5 * whole.abs().max()


def test_strided_and_transposed_conv_streams_equal_the_whole_signal():
    torch.manual_seed(0)
    conv, convT = torch.nn.Conv1d(3, 5, 16, 2), torch.nn.ConvTranspose1d(5, 3, 16, 2)
    x = torch.randn(2, 3, 301)
    with torch.no_grad():
        pending, tail, frames, samples = x[..., :0], torch.zeros(2, 3, 14), [], []
        for start in range(0, 301, 37):
            f, pending = strided_conv_stream(conv, x[..., start:start + 37], pending)
            s, tail = transposed_conv_stream(convT, f, tail)
            frames.append(f)
            samples.append(s)
        frames = torch.cat(frames, -1)
        assert torch.allclose(frames, conv(x), atol=1e-6)
        whole = convT(frames)
        streamed = torch.cat(samples, -1)
        assert streamed.shape[-1] == 2 * frames.shape[-1]
        assert torch.allclose(streamed, whole[..., :streamed.shape[-1]], atol=1e-6)


def direct(strict, **kwargs):
    torch.manual_seed(0)
    return SepMamba(dim=8, num_blocks=1, causal=True, strict_causal=strict, **kwargs).eval()


def masking(strict):
    torch.manual_seed(0)
    return MaskingSeparator(Encoder(16, 8, 8, strict_causal=strict),
                            MaskNet(8, [16, 4, 4], [8, 2, 2], num_blocks=1, causal=True, strict_causal=strict),
                            Decoder(8, 16, 8), 2).eval()


def stream(model, mix, sizes, batch_size=None):
    """Concatenated forward_streaming output for chunks of the given sizes (cycled), and the context."""
    context = model.make_streaming_context(batch_size or mix.shape[0])
    outs, start, sizes = [], 0, list(sizes)
    with torch.no_grad():
        while start < mix.shape[-1]:
            size = sizes[len(outs) % len(sizes)]
            outs.append(model.forward_streaming(mix[:, start:start + size], context))
            assert outs[-1].shape == (mix.shape[0], min(size, mix.shape[-1] - start), 2)
            start += size
    return torch.cat(outs, 1), context


def relative_error(got, expected):
    return float((got - expected).norm() / expected.norm())


@pytest.mark.parametrize("form", [direct, masking])
@pytest.mark.parametrize("chunk", [*CHUNKS, "random"])
def test_strictly_causal_stream_equals_offline(form, chunk):
    model = form(True)
    length = 1500 if chunk == 1 else 5000
    mix = torch.randn(2, length, generator=torch.Generator().manual_seed(1))
    sizes = random.Random(0).choices([1, 2, 3, 5, 8, 13, 100, 333, 1000], k=50) if chunk == "random" else [chunk]
    with torch.no_grad():
        offline = model(mix)
    streamed, context = stream(model, mix, sizes)
    assert context.delay == 0
    assert relative_error(streamed, offline) <= 1e-5


def direct_16k(strict):
    """A tiny causal SepMamba with the 16 kHz configurations' geometry (level 0: kernel 32, stride 4)."""
    geometry = {k: CONFIGS["S-causal-16k"][k] for k in ("kernel_sizes", "strides")}
    return direct(strict, **geometry)


@pytest.mark.parametrize("strict, delay", [(True, 0), (False, 211)])
def test_16k_causal_streams_equal_offline(strict, delay):
    """At 16 kHz the paper's causal geometry looks 211 samples (13.2 ms) ahead; the strict one none."""
    model = direct_16k(strict)
    mix = torch.randn(1, 8000, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        offline = model(mix)
    streamed, context = stream(model, mix, [512])  # 32 ms chunks
    assert context.delay == delay
    assert relative_error(streamed[:, delay:], offline[:, : mix.shape[-1] - delay]) <= 1e-5


@pytest.mark.parametrize("form, delay", [(direct, 105), (masking, 87)])
@pytest.mark.parametrize("chunk", [1, 8, 256, "random"])
def test_paper_causal_stream_equals_offline_delayed_by_its_lookahead(form, delay, chunk):
    model = form(False)
    length = 1500 if chunk == 1 else 5000
    mix = torch.randn(2, length, generator=torch.Generator().manual_seed(2))
    sizes = random.Random(1).choices([1, 4, 9, 64, 500], k=40) if chunk == "random" else [chunk]
    with torch.no_grad():
        offline = model(mix)
    streamed, context = stream(model, mix, sizes)
    assert context.delay == delay  # the paper's S/M-causal: 105 samples, 13.1 ms at 8 kHz
    assert streamed[:, :delay].abs().max() == 0
    assert relative_error(streamed[:, delay:], offline[:, : length - delay]) <= 1e-5


def test_the_delay_is_the_smallest_that_works():
    """Fed one sample at a time, the queue of computed output runs empty at some point: with one sample
    less of delay a chunk would lack output. The frame-count arithmetic matches what the stream computed."""
    model = direct(False)
    context = model.make_streaming_context(1)
    queued = []
    with torch.no_grad():
        for t in range(1, 600):
            model.forward_streaming(torch.randn(1, 1), context)
            queued.append(context.out.shape[-1])
            assert context.out.shape[-1] == context.delay + model.streamed_samples(t) - t
    assert min(queued) == 0
    assert lookahead(lambda t: t, 8) == 0


def test_batched_streams_are_independent_and_a_new_context_starts_afresh():
    model = direct(True)
    mix = torch.randn(3, 2000, generator=torch.Generator().manual_seed(3))
    together, _ = stream(model, mix, [100])
    alone, _ = stream(model, mix[1:2], [37])
    assert relative_error(together[1:2], alone) <= 1e-5
    again, _ = stream(model, mix, [100])
    assert torch.equal(again, together)
    # two contexts interleaved do not disturb each other
    a, b = model.make_streaming_context(3), model.make_streaming_context(1)
    first = []
    with torch.no_grad():
        for i in range(0, 2000, 250):
            model.forward_streaming(mix[1:2, i:i + 50], b)
            first.append(model.forward_streaming(mix[:, i:i + 250], a))
    assert torch.equal(torch.cat(first, 1), stream(model, mix, [250])[0])


def context_bytes(context):
    seen = []

    def walk(value):
        if isinstance(value, torch.Tensor):
            seen.append(value.numel() * value.element_size())
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
        elif hasattr(value, "__dict__"):
            for v in vars(value).values():
                walk(v)

    walk(context)
    return sum(seen)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="resident memory is read from /proc (Linux)")
def test_ten_minute_stream_keeps_constant_memory():
    model = masking(True)
    context = model.make_streaming_context(1)
    chunk, rate = 8000, 8000
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for second in range(0, 600, chunk // rate):
            model.forward_streaming(torch.randn(1, chunk, generator=g), context)
            if second == 10:
                early_bytes, early_rss = context_bytes(context), resident_bytes()
    assert context_bytes(context) == early_bytes
    assert resident_bytes() <= 1.05 * early_rss


def test_streaming_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="bidirectional Mamba layer cannot stream"):
        SepMamba(dim=8, num_blocks=1).make_streaming_context(1)
    model = direct(True)
    context = model.make_streaming_context(2)
    for bad, match in [(torch.randn(2, 3, 4), r"\[batch, samples\]"), (torch.randn(2, 0), "samples >= 1"),
                       (torch.randn(3, 10), "batch size 3.*2 streams"),
                       (torch.tensor([[0.0, float("nan")]] * 2), "NaN"),
                       (torch.ones(2, 5, dtype=torch.int64), "floating point")]:
        with pytest.raises(ValueError, match=match):
            model.forward_streaming(bad, context)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        model.make_streaming_context(0)
    mixed = MaskingSeparator(Encoder(16, 8, 8, strict_causal=True),
                             MaskNet(8, [16, 4, 4], [8, 2, 2], num_blocks=1, causal=True), Decoder(8, 16, 8), 2)
    with pytest.raises(ValueError, match="strict_causal and the MaskNet's differ"):
        mixed.make_streaming_context(1)
    foreign = MaskingSeparator(torch.nn.Identity(), torch.nn.Identity(), torch.nn.Identity(), 2)
    with pytest.raises(ValueError, match="only SepMamba's Encoder, MaskNet and Decoder can stream"):
        foreign.make_streaming_context(1)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """Exported hub folders: a strictly causal masking model, the paper's causal direct model, a
    bidirectional one; and an 8 kHz test mixture."""
    root = tmp_path_factory.mktemp("streaming")
    sf.write(str(root / "mix.wav"), np.random.default_rng(0).standard_normal(12000).astype("float32") * 0.1, 8000)
    out = {}
    for name, modules in [("strict", dict(zip(["encoder", "masknet", "decoder"], list(masking(True).children()),
                                              strict=True))),
                          ("paper", {"sepmamba": direct(False)}),
                          ("bidirectional", {"sepmamba": SepMamba(dim=8, num_blocks=1).eval()})]:
        class Run:
            hparams = SimpleNamespace(sample_rate=8000, num_spks=2, output_folder=str(root), test_data=None,
                                      experiment_name="unit", data_folder="-")

        Run.modules = modules
        out[name] = export(Run(), root / name, test_mixture=root / "mix.wav")
    return root, out


def load(folder, tmp_path):
    return SepMambaSeparation.from_hparams(source=str(folder), savedir=str(tmp_path / "pretrained"))


@pytest.mark.parametrize("name", ["strict", "paper"])
def test_file_streaming_yields_the_offline_estimates(folders, name, tmp_path):
    root, models = folders
    model = load(models[name], tmp_path)
    context = model.make_streaming_context()
    chunks = list(model.separate_file_streaming(root / "mix.wav", chunk_ms=32, context=context))
    assert all(c.shape == (1, 256, 2) for c in chunks[:-2])
    streamed = torch.cat(chunks, 1)
    assert streamed.shape[1] == 12000 + context.delay
    mix = torch.from_numpy(sf.read(str(root / "mix.wav"), dtype="float32")[0])[None]
    offline = model.separate_batch(mix)
    keep = 12000 - context.delay  # the offline pass pads the end differently within the last look-ahead
    assert relative_error(streamed[:, context.delay:context.delay + keep], offline[:, :keep]) <= 1e-5
    chunk = torch.randn(100)
    assert model.separate_chunk(model.make_streaming_context(), chunk).shape == (1, 100, 2)


def test_a_whole_file_separated_as_a_stream(folders, tmp_path):
    """separate_file_as_stream: the streamed chunks without the look-ahead ("raw"), at the output level the
    offline path gives ("mixture", "peak"), with its real-time factor and latency."""
    from sepmamba_sb.inference import fit_to_mixture, peak_normalise

    root, models = folders
    model = load(models["paper"], tmp_path)
    context = model.make_streaming_context()
    chunks = torch.cat(list(model.separate_file_streaming(root / "mix.wav", chunk_ms=32, context=context)), 1)
    raw, report = model.separate_file_as_stream(root / "mix.wav", chunk_ms=32, level="raw", progress=False)
    assert torch.equal(raw, chunks[:, context.delay:]) and raw.shape == (1, 12000, 2)
    assert report.lookahead == context.delay == 105 and report.latency_ms == pytest.approx(32 + 105 / 8)
    assert 0 < report.rtf < 100
    mix = torch.from_numpy(sf.read(str(root / "mix.wav"), dtype="float32")[0])[None]
    fitted, _ = model.separate_file_as_stream(root / "mix.wav", progress=False)
    assert torch.allclose(fitted, fit_to_mixture(raw, mix))
    peak, _ = model.separate_file_as_stream(root / "mix.wav", level="peak", progress=False)
    assert torch.allclose(peak, peak_normalise(fitted))
    with pytest.raises(ValueError, match="level must be one of"):
        model.separate_file_as_stream(root / "mix.wav", level="quiet")


@pytest.mark.parametrize("name", ["strict", "paper"])
def test_a_file_at_another_rate_streams_through_resamplers(folders, name, tmp_path):
    """A 44.1 kHz file: resampled to 8 kHz as a stream, separated, the sources resampled back as a stream.
    The chunks are at 44.1 kHz, aligned with the file and exactly as long; they equal resampling the whole
    file, separating it offline and resampling the sources back (the paper's causal model: but for its
    last look-ahead, which the offline model sees as padding)."""
    root, models = folders
    model = load(models[name], tmp_path)
    mix = torch.from_numpy(np.random.default_rng(1).standard_normal(22050).astype("float32") * 0.1)
    sf.write(str(tmp_path / "44k.wav"), mix.numpy(), 44100)
    chunks = list(model.separate_file_streaming(tmp_path / "44k.wav", chunk_ms=32))
    streamed = torch.cat(chunks, dim=1)[0]
    assert streamed.shape == (22050, 2) and max(c.shape[1] for c in chunks) <= 2 * 1411
    with torch.no_grad():
        offline = model.separator(torchaudio.functional.resample(mix, 44100, 8000)[None])[0]
    expected = torchaudio.functional.resample(offline.t(), 8000, 44100).t()[:22050]
    keep = 22050 - (0 if name == "strict" else 105 * 44100 // 8000 + 100)
    assert relative_error(streamed[:keep], expected[:keep]) <= 1e-5
    sources, report = model.separate_file_as_stream(tmp_path / "44k.wav", level="raw", progress=False)
    assert torch.equal(sources[0], streamed)
    assert report.latency_ms > 32 + 1000 * report.lookahead / 8000 + 10  # both resamplers wait for inputs


def test_file_streaming_errors(folders, tmp_path):
    root, models = folders
    with pytest.raises(ValueError, match="cannot stream.*bidirectional"):
        load(models["bidirectional"], tmp_path).make_streaming_context()
    model = load(models["strict"], tmp_path)
    with pytest.raises(ValueError, match="shorter than one sample"):
        model.separate_file_streaming(root / "mix.wav", chunk_ms=0.01)


def test_cli_stream_writes_the_offline_files_and_reports_speed(folders, tmp_path, capsys):
    root, models = folders
    args = [str(models["strict"]), str(root / "mix.wav")]
    assert cli_main([*args, "--out", str(tmp_path / "offline"), "--quiet"]) == 0
    assert cli_main([*args, "--out", str(tmp_path / "stream"), "--stream", "--chunk-ms", "16"]) == 0
    report = capsys.readouterr().out
    assert "real-time factor" in report and "latency 16.0 ms (16 ms chunk + 0 samples of look-ahead)" in report
    for s in (1, 2):
        offline = sf.read(str(tmp_path / "offline" / f"mix_s{s}.wav"), dtype="float32")[0]
        streamed = sf.read(str(tmp_path / "stream" / f"mix_s{s}.wav"), dtype="float32")[0]
        assert streamed.shape == offline.shape == (12000,)
        assert np.abs(streamed - offline).max() <= 1e-4 * np.abs(offline).max()
    assert cli_main([str(models["bidirectional"]), str(root / "mix.wav"), "--stream", "--quiet"]) == 2
    assert "cannot stream" in capsys.readouterr().err
    assert cli_main([*args, "--stream", "--chunk-seconds", "5", "--quiet"]) == 2
    assert "--stream runs one stream per file" in capsys.readouterr().err


@pytest.mark.slow
def test_streaming_benchmark_quick_run_writes_table_csv_and_readme_section(tmp_path):
    """benchmarks/streaming.py --quick: the table's shape, latencies that add the look-ahead, the README
    section (not the speed)."""
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- streaming-cpu:begin -->\nold\n<!-- streaming-cpu:end -->\nb\n")
    done = subprocess.run([sys.executable, "benchmarks/streaming.py", "--quick", "--out", str(tmp_path / "out"),
                           "--readme", str(readme)], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-3000:]
    md = (tmp_path / "out" / "streaming-cpu.md").read_text()
    assert md.startswith("`python benchmarks/streaming.py --quick")
    assert readme.read_text() == f"a\n<!-- streaming-cpu:begin -->\n{md}<!-- streaming-cpu:end -->\nb\n"
    with open(tmp_path / "out" / "streaming-cpu.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], float(r["chunk_ms"])) for r in rows] == [(v, ms) for v in ("strict", "paper")
                                                                   for ms in (8, 16, 32, 64)]
    for r in rows:
        assert 0 < float(r["median_ms"]) <= float(r["p95_ms"])
        assert float(r["latency_ms"]) == pytest.approx(float(r["chunk_ms"]) + 1000 * int(r["lookahead"]) / 8000)
        assert int(r["lookahead"]) == (0 if r["variant"] == "strict" else 105)
    assert "Smallest chunk with a real-time factor under 1" in md


@pytest.mark.slow
def test_streaming_benchmark_runs_each_precision(tmp_path):
    """--precision: a precision column and its own file; the smallest real-time chunk per precision."""
    done = subprocess.run([sys.executable, "benchmarks/streaming.py", "--quick", "--precision", "fp32", "int8",
                           "--chunks-ms", "32", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "streaming-cpu-precision.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["variant"], r["precision"]) for r in rows] == [(v, p) for v in ("strict", "paper")
                                                               for p in ("fp32", "int8")]
    md = (tmp_path / "streaming-cpu-precision.md").read_text()
    assert "| precision |" in md and md.count("Smallest chunk with a real-time factor under 1") == 2
    assert not (tmp_path / "streaming-cpu.md").exists()


@pytest.mark.slow
def test_profile_ops_profiles_one_stream_chunk():
    """benchmarks/profile_ops.py --stream-ms: the per-chunk profile of a causal model, grouped by kind."""
    done = subprocess.run([sys.executable, "benchmarks/profile_ops.py", "--models", "sepmamba-S-causal", "--stream-ms",
                           "8", "--passes", "2", "--threads", "1"], cwd=REPO, capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "per streamed chunk of 8 ms (forward_streaming)" in done.stdout
    assert "### sepmamba-S-causal:" in done.stdout and "ms per 8 ms chunk" in done.stdout
    calls = {line.split("|")[1].strip(" `"): int(line.split("|")[3]) for line in done.stdout.splitlines()
             if line.startswith("| `")}
    assert calls["sepmamba_sb::selective_scan (cpu)"] == 40  # 5 Mamba layers of 8 blocks, one scan each
