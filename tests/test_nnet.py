"""sepmamba_sb.nnet: mamba-ssm-compatible Mamba, MambaBlock, MambaStack, BiMamba."""

import io
import math

import pytest
import torch
import torch.nn.functional as F
from conftest import DATA

from sepmamba_sb.nnet import BiMamba, Mamba, MambaBlock, MambaStack, mamba_init_weights

# mamba-ssm's mamba_simple.Mamba(d_model=64), in state-dict order
MAMBA_64_STATE = {
    "A_log": (128, 16),
    "D": (128,),
    "in_proj.weight": (256, 64),
    "conv1d.weight": (128, 1, 4),
    "conv1d.bias": (128,),
    "x_proj.weight": (36, 128),
    "dt_proj.weight": (128, 4),
    "dt_proj.bias": (128,),
    "out_proj.weight": (64, 128),
}


def original_state_dict_shapes():
    """The authors' SepMamba S state dict (key -> shape), from tests/data."""
    shapes = {}
    for line in (DATA / "original-sepmamba-S-state-dict.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            shapes[key] = tuple(int(s) for s in shape.strip("()").split(",") if s.strip())
    return shapes


def test_mamba_state_dict_is_mamba_ssms():
    state = Mamba(d_model=64).state_dict()
    assert list(state) == list(MAMBA_64_STATE)
    assert {k: tuple(v.shape) for k, v in state.items()} == MAMBA_64_STATE
    assert state["A_log"].dtype == torch.float32 and state["D"].dtype == torch.float32


def test_mamba_initialisation_is_mamba_ssms():
    m = Mamba(d_model=64, dt_min=0.001, dt_max=0.1)
    assert torch.equal(m.A_log, torch.log(torch.arange(1, 17, dtype=torch.float32)).expand(128, 16))
    assert torch.equal(m.D, torch.ones(128))
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    # log-uniform: the median dt is near sqrt(dt_min * dt_max) = 0.01
    assert 0.004 < dt.median() < 0.025
    bound = m.dt_rank**-0.5
    assert m.dt_proj.weight.abs().max() <= bound and m.dt_proj.weight.abs().max() > 0.8 * bound
    assert m.dt_proj.bias._no_reinit and m.A_log._no_weight_decay and m.D._no_weight_decay
    assert m.in_proj.bias is None and m.out_proj.bias is None and m.conv1d.bias is not None
    assert (m.d_inner, m.dt_rank) == (128, 4)
    assert Mamba(d_model=100).dt_rank == math.ceil(100 / 16)


def test_mamba_constant_dt_init_and_bad_dt_init():
    m = Mamba(d_model=32, dt_init="constant", dt_scale=2.0)
    assert torch.allclose(m.dt_proj.weight, torch.full_like(m.dt_proj.weight, 2.0 * m.dt_rank**-0.5))
    with pytest.raises(ValueError, match="dt_init"):
        Mamba(d_model=32, dt_init="xavier")


def test_mamba_save_load_round_trip_gives_identical_outputs():
    m = Mamba(d_model=64).eval()
    x = torch.randn(2, 50, 64)
    buffer = io.BytesIO()
    torch.save(m.state_dict(), buffer)
    buffer.seek(0)
    other = Mamba(d_model=64).eval()
    assert not torch.equal(other(x), m(x))
    other.load_state_dict(torch.load(buffer), strict=True)
    assert torch.equal(other(x), m(x))


def _mamba_forward_float64(m, x):
    """The Mamba block written out directly in float64, for comparison."""
    p = {k: v.double() for k, v in m.state_dict().items()}
    x = x.double()
    xz = x @ p["in_proj.weight"].t()
    xs, z = xz.chunk(2, dim=-1)
    xs = F.conv1d(xs.transpose(1, 2), p["conv1d.weight"], p["conv1d.bias"], padding=m.d_conv - 1,
                  groups=m.d_inner)[..., : x.shape[1]]
    xs = F.silu(xs)
    dbl = xs.transpose(1, 2) @ p["x_proj.weight"].t()
    dt, B, C = dbl.split([m.dt_rank, m.d_state, m.d_state], dim=-1)
    dt = F.softplus(dt @ p["dt_proj.weight"].t() + p["dt_proj.bias"])  # (b, l, d)
    A = -torch.exp(p["A_log"])
    h = x.new_zeros(x.shape[0], m.d_inner, m.d_state)
    ys = []
    for t in range(x.shape[1]):
        h = torch.exp(dt[:, t, :, None] * A) * h + (dt[:, t] * xs[:, :, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1) + p["D"] * xs[:, :, t])
    y = torch.stack(ys, dim=1) * F.silu(z)
    return y @ p["out_proj.weight"].t()


@pytest.mark.parametrize("backend", ["cpu", "reference"])
def test_mamba_matches_a_float64_transcription(backend, monkeypatch):
    monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", backend)
    m = Mamba(d_model=24, d_state=8)
    x = torch.randn(2, 150, 24)
    out = m(x)
    ref = _mamba_forward_float64(m, x)
    assert out.shape == (2, 150, 24)
    assert (out.double() - ref).abs().max() / ref.abs().max() < 1e-5


def test_mamba_cpu_and_reference_backends_agree_on_parameter_gradients(monkeypatch):
    m = Mamba(d_model=24)
    x = torch.randn(2, 300, 24)
    grads = {}
    for backend in ("cpu", "reference"):
        monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", backend)
        m.zero_grad()
        m(x).square().mean().backward()
        grads[backend] = {k: p.grad.clone() for k, p in m.named_parameters()}
    for name, g in grads["cpu"].items():
        ref = grads["reference"][name]
        assert (g - ref).abs().max() / ref.abs().max() < 1e-4, name


def test_mamba_rejects_a_wrong_layout():
    with pytest.raises(ValueError, match="d_model=64"):
        Mamba(d_model=64)(torch.randn(2, 64, 100)[:, :, :50])


def test_block_is_add_norm_mix():
    block = MambaBlock(16)
    hidden, residual = torch.randn(2, 30, 16), torch.randn(2, 30, 16)
    out, res = block(hidden, residual)
    assert torch.equal(res, hidden + residual)
    assert torch.allclose(out, block.mixer(F.layer_norm(hidden + residual, (16,), block.norm.weight,
                                                        block.norm.bias, eps=1e-5)))
    first, res0 = block(hidden)
    assert torch.equal(res0, hidden) and torch.allclose(first, block.mixer(block.norm(hidden)))
    assert block.norm.eps == 1e-5
    assert [k.split(".")[0] for k in block.state_dict()] == ["mixer"] * 9 + ["norm"] * 2


def test_stack_applies_mamba_ssm_init_weights():
    torch.manual_seed(1)
    stack = MambaStack(64, num_blocks=4, bias=True)
    for block in stack.mamba_blocks:
        mixer = block.mixer
        # out_proj: kaiming-uniform(a=sqrt(5)) bound 1/sqrt(fan_in), divided by sqrt(n_layer)
        bound = 1 / math.sqrt(mixer.d_inner) / math.sqrt(4)
        w = mixer.out_proj.weight
        assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
        assert torch.count_nonzero(mixer.in_proj.bias) == 0 and torch.count_nonzero(mixer.out_proj.bias) == 0
        dt = F.softplus(mixer.dt_proj.bias)  # kept: _no_reinit
        assert dt.min() >= 0.001 * (1 - 1e-4) and dt.max() <= 0.1 * (1 + 1e-4)
    # the function alone, on a lone mixer
    mixer = Mamba(32)
    mamba_init_weights(mixer, n_layer=9)
    assert mixer.out_proj.weight.abs().max() <= 1 / math.sqrt(64) / 3


def test_stack_returns_hidden_plus_residual():
    stack = MambaStack(16, num_blocks=3)
    x = torch.randn(2, 40, 16)
    hidden, residual = x, None
    for block in stack.mamba_blocks:
        hidden, residual = block(hidden, residual)
    assert torch.allclose(stack(x), hidden + residual)
    with pytest.raises(ValueError, match="num_blocks"):
        MambaStack(16, num_blocks=0)


def test_bimamba_keys_and_shapes_equal_the_original_mamba_layers():
    """Every `*.mamba_layer.*` group of the authors' SepMamba S state dict is a BiMamba(C, 4)."""
    original = original_state_dict_shapes()
    prefixes = sorted({k.split("mamba_layer.")[0] + "mamba_layer." for k in original if "mamba_layer." in k})
    assert prefixes == [f"down.{i}.mamba_layer." for i in range(3)] + [f"up.{i}.mamba_layer." for i in range(2)]
    for prefix in prefixes:
        expected = {k[len(prefix):]: s for k, s in original.items() if k.startswith(prefix)}
        channels = expected["forward_mamba_block.mamba_blocks.0.norm.weight"][0]
        ours = {k: tuple(v.shape) for k, v in BiMamba(channels, num_blocks=4).state_dict().items()}
        assert ours == expected, prefix


def test_causal_bimamba_has_forward_blocks_only():
    layer = BiMamba(32, num_blocks=8, causal=True)
    keys = list(layer.state_dict())
    assert all(k.startswith("forward_mamba_block.mamba_blocks.") for k in keys)
    assert len({k.split(".")[2] for k in keys}) == 8
    # same parameter count as the non-causal layer with half the blocks per direction
    n = sum(p.numel() for p in layer.parameters())
    assert n == sum(p.numel() for p in BiMamba(32, num_blocks=4).parameters())


def test_bimamba_sums_forward_and_flipped_backward_stacks():
    layer = BiMamba(16, num_blocks=2)
    x = torch.randn(2, 16, 50)
    seq = x.transpose(1, 2)
    expected = layer.forward_mamba_block(seq) + layer.backward_mamba_block(seq.flip(1)).flip(1)
    assert torch.allclose(layer(x), expected.transpose(1, 2))


@pytest.mark.parametrize("causal", [True, False])
def test_bimamba_causality_by_gradient(causal):
    """Causal: d out[:, :, t] / d x[:, :, s] is exactly zero for every s > t. Bidirectional: it is not."""
    layer = BiMamba(16, num_blocks=2, causal=causal)
    length = 90
    x = torch.randn(1, 16, length, requires_grad=True)
    out = layer(x)
    for t in (0, 1, 37, 88):
        (grad,) = torch.autograd.grad(out[:, :, t].sum(), x, retain_graph=True)
        future = grad[:, :, t + 1:]
        past = grad[:, :, : t + 1]
        assert past.abs().sum() > 0
        if causal:
            assert torch.count_nonzero(future) == 0, t
        else:
            assert torch.count_nonzero(future) > 0.9 * future.numel(), t


class _Spy:
    """Counts the calls of a backend's scan function and forwards them."""

    def __init__(self, fn):
        self.fn, self.calls = fn, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.fn(*args, **kwargs)


@pytest.fixture
def scan_spies(monkeypatch):
    from sepmamba_sb.ops import cpu_kernel, dispatch

    spies = {"cpu": _Spy(cpu_kernel.selective_scan_cpu), "reference": _Spy(dispatch.selective_scan_reference)}
    monkeypatch.setattr(cpu_kernel, "selective_scan_cpu", spies["cpu"])
    monkeypatch.setattr(dispatch, "selective_scan_reference", spies["reference"])
    return spies


def test_backend_choice_order_argument_then_block_then_environment(scan_spies, monkeypatch):
    """A module's own backend wins over ``use_backend``, which wins over $SEPMAMBA_SCAN_BACKEND."""
    from sepmamba_sb.ops import use_backend

    x = torch.randn(1, 30, 16)
    auto, pinned = Mamba(16), Mamba(16, backend="reference")
    auto(x)
    assert (scan_spies["cpu"].calls, scan_spies["reference"].calls) == (1, 0)
    pinned(x)
    assert (scan_spies["cpu"].calls, scan_spies["reference"].calls) == (1, 1)
    monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", "reference")
    auto(x)
    assert scan_spies["reference"].calls == 2
    with use_backend("cpu"):
        auto(x)
        assert scan_spies["cpu"].calls == 2
        pinned(x)
        assert scan_spies["reference"].calls == 3
        with use_backend(None):  # back to the environment's choice
            auto(x)
            assert scan_spies["reference"].calls == 4
    auto(x)
    assert (scan_spies["cpu"].calls, scan_spies["reference"].calls) == (2, 5)
    # a SepMamba model chooses for all its blocks
    from sepmamba_sb.lobes import SepMamba

    monkeypatch.delenv("SEPMAMBA_SCAN_BACKEND")
    model = SepMamba(dim=8, num_blocks=1, backend="reference")
    with torch.no_grad():
        model(torch.randn(1, 400))
    # 5 bidirectional layers, each one scan over both directions (fused)
    assert scan_spies["cpu"].calls == 2 and scan_spies["reference"].calls == 5 + 5


def test_bad_backend_names_fail_where_given():
    from sepmamba_sb.ops import use_backend

    with pytest.raises(ValueError, match="'cuda'"):
        Mamba(16, backend="cuda")
    with pytest.raises(ValueError, match="unknown selective-scan backend 'fast'.*use_backend"):
        with use_backend("fast"):
            pass


def test_causal_conv_follows_the_tensors_device(monkeypatch):
    """causal-conv1d's kernel is only for CUDA tensors: on CPU tensors the PyTorch conv runs even
    when the kernel imported."""
    from types import SimpleNamespace

    from sepmamba_sb.ops import causal_conv, causal_conv1d

    def cuda_only(*args, **kwargs):
        raise AssertionError("causal_conv1d_fn called on CPU tensors")

    monkeypatch.setattr(causal_conv, "mamba_kernels", lambda: SimpleNamespace(causal_conv1d_fn=cuda_only))
    x, weight, bias = torch.randn(2, 6, 20), torch.randn(6, 4), torch.randn(6)
    expected = F.silu(F.conv1d(F.pad(x, (3, 0)), weight.unsqueeze(1), bias, groups=6))
    assert torch.allclose(causal_conv1d(x, weight, bias, "silu"), expected, atol=1e-6)
