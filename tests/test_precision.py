"""Reduced-precision CPU inference (sepmamba_sb.precision): int8 products against float64, converted models
against float32 (offline, fused and streaming), the accuracy of a trained model, export and loading."""

import copy
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

from sepmamba_sb.audio import read_audio
from sepmamba_sb.hub.layout import TEST_MIXTURE
from sepmamba_sb.lobes import SepMamba
from sepmamba_sb.ops import use_fusion
from sepmamba_sb.ops.quantized import quantize_per_channel
from sepmamba_sb.precision import Int8Linear, bf16_supported, check_precision, precision_of, to_precision
from sepmamba_sb.pretrained import available

PRECISIONS = ["int8"] + (["bf16"] if bf16_supported() else [])
# largest error of a converted tiny SepMamba's output against float32, relative to the output's norm
OUTPUT_TOLERANCE = {"bf16": 2e-2, "int8": 5e-2}
# streaming against offline at the same precision, relative to the output's peak: bf16 products round
# chunk-sized and whole-signal GEMMs differently; int8 quantizes each call's activations with their own range
STREAM_TOLERANCE = {"bf16": 2e-2, "int8": 6e-2}
# the change of a trained model's SI-SNRi that the issue allows
SI_SNRI_CHANGE = {"bf16": 0.1, "int8": 0.2}


def relative(a, b):
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def tiny(**kwargs):
    torch.manual_seed(0)
    return SepMamba(dim=16, num_blocks=2, **kwargs).eval()


def test_per_channel_quantization_rounds_each_row_to_its_own_scale():
    weight = torch.randn(6, 10, dtype=torch.float64) * torch.logspace(-3, 1, 6, dtype=torch.float64)[:, None]
    values, scale = quantize_per_channel(weight)
    assert values.dtype == torch.int8 and values.abs().max().item() == 127
    assert torch.allclose(scale.double(), weight.abs().amax(1) / 127, rtol=1e-6)
    error = (values.double() * scale.double()[:, None] - weight).abs()
    assert (error <= scale.double()[:, None] / 2 * (1 + 1e-5)).all()  # half a step, row by row


def bf16_activations(batch=2, dim=40, length=300, nstate=16, rank=3, seed=0):
    """Scan inputs as a bf16 mixer makes them: u and z channel-dense bf16, the low-rank step and B, C
    strided views of one bf16 x_proj output; A, D, delta_bias, dt_proj weight and a state in float32."""
    g = torch.Generator().manual_seed(seed)
    u, z = (torch.randn(batch, length, dim, generator=g).bfloat16().transpose(1, 2) for _ in range(2))
    x_dbl = torch.randn(batch, length, rank + 2 * nstate, generator=g).bfloat16()
    low, B, C = (t.transpose(1, 2) for t in torch.split(x_dbl, [rank, nstate, nstate], dim=-1))
    params = {"A": -(0.5 + torch.rand(dim, nstate, generator=g) * 2), "D": torch.randn(dim, generator=g),
              "delta_bias": torch.randn(dim, generator=g) * 0.5,
              "delta_proj_weight": torch.randn(dim, rank, generator=g),
              "initial_state": torch.randn(batch, dim, nstate, generator=g)}
    return u, low, B, C, z, params


def test_cpu_kernels_read_and_write_bf16_as_the_float32_kernels_would_round():
    """Without autograd the C++ scan and conv take bf16 activations as they are: the same float32 sums as
    on the widened inputs, the output rounded once to bf16 (so equal to the float32 kernel's, rounded)."""
    from sepmamba_sb.ops import causal_conv1d, cpu_kernel

    u, low, B, C, z, p = bf16_activations()
    with torch.no_grad():
        out, last = cpu_kernel.selective_scan_cpu(u, low, p["A"], B, C, p["D"], z, p["delta_bias"], True, True,
                                                  p["initial_state"], p["delta_proj_weight"])
        ref, ref_last = cpu_kernel.selective_scan_cpu(u.float(), low.float(), p["A"], B.float(), C.float(), p["D"],
                                                      z.float(), p["delta_bias"], True, True, p["initial_state"],
                                                      p["delta_proj_weight"])
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32 and out.stride() == u.stride()
    assert torch.equal(out, ref.bfloat16()) and torch.equal(last, ref_last)
    weight, bias, start = torch.randn(40, 4), torch.randn(40), torch.randn(2, 40, 3)
    with torch.no_grad():
        y, final = causal_conv1d(u, weight, bias, "silu", start, True)
        y_ref, final_ref = causal_conv1d(u.float(), weight, bias, "silu", start, True)
    assert y.dtype == torch.bfloat16 and final.dtype == torch.float32
    assert torch.equal(y, y_ref.bfloat16()) and torch.equal(final, final_ref)


def test_int8_linear_against_float64():
    torch.manual_seed(0)
    linear = nn.Linear(64, 48)
    x = torch.randn(5, 30, 64)
    reference = x.double() @ linear.weight.double().t() + linear.bias.double()
    layer = Int8Linear.from_float(linear)
    out = layer(x)
    assert out.shape == (5, 30, 48) and out.dtype == torch.float32
    assert relative(out, reference) < 2e-2
    assert relative(linear(x), reference) < 1e-6  # the float32 layer, for scale


def test_int8_linear_state_dict_holds_int8_weights_and_reloads():
    torch.manual_seed(0)
    layer = Int8Linear.from_float(nn.Linear(32, 16))
    state = layer.state_dict()
    assert set(state) == {"qweight", "scale", "bias"} and state["qweight"].dtype == torch.int8
    fresh = Int8Linear(32, 16)
    x = torch.randn(4, 32)
    before = fresh(x)  # packs the zero weights
    fresh.load_state_dict(state)
    assert not torch.equal(before, fresh(x)) and torch.equal(fresh(x), layer(x))  # repacked after loading


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("causal", [False, True])
def test_converted_sepmamba_is_close_to_float32_in_every_path(precision, causal):
    """Directions fused as one batch (grouped weights) or apart, the mixers' C++ kernels or PyTorch's."""
    from sepmamba_sb.nnet import BiMamba

    model = tiny(causal=causal)
    mix = torch.randn(2, 4000)
    converted = to_precision(copy.deepcopy(model), precision)
    layers = [m for m in converted.modules() if isinstance(m, BiMamba)]
    assert all(layer.fused == (precision != "int8") for layer in layers)  # int8 runs the directions apart
    outs = {}
    with torch.no_grad():
        reference = model(mix)
        for fused in (True, False):
            for layer in layers:
                layer.fused = fused
            outs[f"fused={fused}"] = converted(mix)
            with use_fusion(False):
                outs[f"fused={fused}, PyTorch kernels"] = converted(mix)
    assert precision_of(converted) == precision
    for name, out in outs.items():
        assert out.dtype == torch.float32 and out.shape == reference.shape, name
        assert 1e-5 < relative(out, reference) < OUTPUT_TOLERANCE[precision], name  # changed, and close


def test_int8_sepmamba_stores_its_projections_in_a_quarter_of_the_bytes():
    model = tiny()
    converted = to_precision(copy.deepcopy(model), "int8")
    before, after = model.state_dict(), converted.state_dict()
    names = [n for n in before if n.endswith(("in_proj.weight", "x_proj.weight", "out_proj.weight"))]
    assert names and not any(n in after for n in names)
    for name in names:  # int8 values, one float32 scale per output channel
        stem = name[: -len("weight")]
        assert after[stem + "qweight"].dtype == torch.int8 and after[stem + "qweight"].shape == before[name].shape
        assert after[stem + "scale"].shape == before[name].shape[:1]

    def nbytes(state):
        return sum(t.numel() * t.element_size() for t in state.values())

    saved = sum(before[n].numel() * 3 - before[n].shape[0] * 4 for n in names)  # 4 -> 1 byte, plus the scales
    assert nbytes(after) == nbytes(before) - saved


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("form", ["direct", "masking"])
def test_strictly_causal_streaming_equals_offline_at_the_same_precision(precision, form):
    from sepmamba_sb.lobes import Decoder, Encoder, MaskNet, as_separator

    torch.manual_seed(0)
    if form == "direct":
        model = tiny(causal=True, strict_causal=True)
    else:
        modules = {"encoder": Encoder(strict_causal=True, out_channels=16),
                   "masknet": MaskNet(dim=16, num_blocks=2, causal=True, strict_causal=True),
                   "decoder": Decoder(in_channels=16)}
        model = as_separator(modules, 2).eval()
    to_precision(model, precision)
    mix = torch.randn(1, 3000)
    with torch.no_grad():
        offline = model(mix)
        context = model.make_streaming_context(1)
        streamed = torch.cat([model.forward_streaming(c, context) for c in mix.split(256, dim=1)], dim=1)
    assert context.delay == 0 and streamed.dtype == torch.float32
    error = (streamed - offline).abs().max() / offline.abs().max()
    assert error < STREAM_TOLERANCE[precision], f"{precision} {form}: stream differs from offline by {error:.2e}"


def shipped_mixtures():
    """A fixed set from the shipped model's test mixture: its two references at four relative levels and
    offsets (the mixture as shipped first)."""
    folder = available()["sepmamba-minimix-real"]
    s1, s2 = (read_audio(folder / f"test_mixture_s{n}.wav")[0] for n in (1, 2))
    sets = []
    for gain_db, shift in ((0, 0), (-2.5, 4000), (2.5, 8000), (-5, 12000)):
        a, b = s1, torch.roll(s2, shift) * 10 ** (gain_db / 20)
        sets.append((a + b, torch.stack([a, b], -1)))
    return sets


@pytest.mark.parametrize("precision", PRECISIONS)
def test_trained_model_si_snri_changes_by_at_most_the_issues_bound(precision):
    from sepmamba_sb.inference import SepMambaSeparation
    from sepmamba_sb.metrics import score_utterance

    reference = SepMambaSeparation.from_hparams(source="sepmamba-minimix-real")
    converted = SepMambaSeparation.from_hparams(source="sepmamba-minimix-real", precision=precision)
    assert precision_of(converted.separator) == precision and precision_of(reference.separator) == "fp32"
    changes = []
    for mix, targets in shipped_mixtures():
        scores = [score_utterance(m.separate_batch(mix[None])[0], targets, mix)["si-snr_i"]
                  for m in (reference, converted)]
        assert scores[0] > 0.5  # a trained model: the comparison means something
        changes.append(scores[1] - scores[0])
    mean_change = sum(changes) / len(changes)
    assert abs(mean_change) <= SI_SNRI_CHANGE[precision], f"{precision}: SI-SNRi changed by {changes}"


def test_speechbrain_separators_convert_as_pytorch_supports():
    from speechbrain.lobes.models.dual_path import Decoder, Dual_Path_Model, Encoder, SBTransformerBlock

    from sepmamba_sb.lobes import as_separator

    torch.manual_seed(0)
    intra, inter = (SBTransformerBlock(num_layers=1, d_model=16, nhead=2, d_ffn=32) for _ in range(2))
    modules = {"encoder": Encoder(kernel_size=16, out_channels=16),
               "masknet": Dual_Path_Model(in_channels=16, out_channels=16, intra_model=intra, inter_model=inter,
                                          num_layers=1, K=20, num_spks=2),
               "decoder": Decoder(in_channels=16, out_channels=1, kernel_size=16, stride=8, bias=False)}
    model = as_separator(modules, 2).eval()
    mix = torch.randn(1, 2000)
    with torch.no_grad():
        reference = model(mix)
    for precision in PRECISIONS:
        converted = to_precision(copy.deepcopy(model), precision)
        with torch.no_grad():
            out = converted(mix)
        assert out.dtype == torch.float32 and relative(out, reference) < 5e-2, precision
        if precision == "int8":
            attention = [a.out_proj for a in converted.modules() if isinstance(a, nn.MultiheadAttention)]
            linears = [m for m in converted.modules() if isinstance(m, nn.Linear)]
            assert attention and [id(m) for m in linears] == [id(m) for m in attention]  # read directly: float
            assert sum(isinstance(m, Int8Linear) for m in converted.modules()) >= 4  # the feed-forwards and more


def test_bad_precisions_are_refused_naming_the_argument(monkeypatch):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, int8, got 'fp16'"):
        check_precision("fp16")
    model = to_precision(tiny(), "int8")
    with pytest.raises(ValueError, match="already in int8"):
        to_precision(model, "bf16")
    assert to_precision(model, "int8") is model
    with pytest.raises(ValueError, match="must be float32"):
        to_precision(tiny().double(), "int8")
    monkeypatch.setattr("sepmamba_sb.precision.bf16_supported", lambda: False)
    with pytest.raises(ValueError, match="precision='bf16': this CPU has no native bfloat16"):
        to_precision(tiny(), "bf16")


@pytest.mark.slow
def test_int8_export_loads_without_float_weights_and_the_cli_takes_a_precision(trained_run, tmp_path):
    from sepmamba_sb.hub import check, export
    from sepmamba_sb.inference import SepMambaSeparation

    fp32 = export(trained_run, tmp_path / "fp32")
    int8 = export(trained_run, tmp_path / "int8", precision="int8")
    assert "Weights stored for int8 CPU inference" in (int8 / "README.md").read_text()
    state = torch.load(int8 / "masknet.ckpt")
    assert any(v.dtype == torch.int8 for v in state.values())
    assert sum(f.stat().st_size for f in int8.glob("*.ckpt")) < 0.5 * sum(f.stat().st_size for f in fp32.glob("*.ckpt"))
    loaded = SepMambaSeparation.from_hparams(source=str(int8), savedir=str(int8))
    assert precision_of(loaded.separator) == "int8"
    converted = SepMambaSeparation.from_hparams(source=str(fp32), savedir=str(fp32), precision="int8")
    mix = read_audio(fp32 / TEST_MIXTURE)[0][None]
    assert torch.allclose(loaded.separate_batch(mix), converted.separate_batch(mix), atol=1e-6)
    with pytest.raises(ValueError, match="exported in int8"):
        SepMambaSeparation.from_hparams(source=str(int8), savedir=str(int8), precision="fp32")
    result = check(int8, progress=False)
    assert result.ok, result.report()
    done = subprocess.run([sys.executable, "-m", "sepmamba_sb.cli", str(fp32), str(fp32 / TEST_MIXTURE), "--out",
                           str(tmp_path / "out"), "--precision", "int8", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "out").glob("*.wav"))) == 2
