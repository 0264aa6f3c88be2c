"""The fused paths of sepmamba_sb.ops and BiMamba against their unfused forms and float64 references:
grouped parameters (both directions as batch rows), time-major layouts read in place, dt_proj inside
the scan kernel, the C++ depthwise conv, and the switch that turns the fusions off."""

import importlib

import pytest
import torch
import torch.nn.functional as F
from test_nnet import original_state_dict_shapes
from test_selective_scan import make_inputs, rel_err

from sepmamba_sb.nnet import BiMamba
from sepmamba_sb.ops import causal_conv1d, dispatch, fusion_enabled, selective_scan, use_backend, use_fusion
from sepmamba_sb.profiling import count_macs

BACKENDS = ("cpu", "reference")
PARAMS = ("A", "D", "delta_bias")


def grouped_inputs(groups, rows, dim=37, length=70, nstate=16, dtype=torch.float64):
    """Scan inputs for groups * rows batch rows, with one set of A, D, delta_bias per group."""
    parts = [make_inputs(rows, dim, length, nstate, True, True, True, True, seed=g, dtype=dtype) for g in range(groups)]
    return {k: torch.stack([p[k] for p in parts]) if k in PARAMS else torch.cat([p[k] for p in parts])
            for k in parts[0]}, parts


@pytest.mark.parametrize("backend", BACKENDS)
def test_grouped_scan_equals_one_scan_per_group(backend):
    inputs, parts = grouped_inputs(groups=2, rows=3)
    names = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    out, last = selective_scan(*(leaves[k] for k in names), delta_softplus=True, return_last_state=True,
                               backend=backend)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    for g, part in enumerate(parts):
        rows = slice(3 * g, 3 * g + 3)
        ref_leaves = {k: v.clone().requires_grad_() for k, v in part.items()}
        ref, ref_last = selective_scan(*(ref_leaves[k] for k in names), delta_softplus=True, return_last_state=True,
                                       backend="reference")
        ref.backward(grad_out[rows])
        assert rel_err(out[rows], ref) < 1e-12 and rel_err(last[rows], ref_last) < 1e-12
        for k in names:
            grad = leaves[k].grad[g] if k in PARAMS else leaves[k].grad[rows]
            assert rel_err(grad, ref_leaves[k].grad) < 1e-10, (k, g)


def test_grouped_scan_names_a_batch_that_does_not_divide():
    inputs, _ = grouped_inputs(groups=2, rows=1)
    inputs = {k: v if k in PARAMS else v[:1] for k, v in inputs.items()}
    with pytest.raises(ValueError, match="batch of u .1. must be a multiple of A's groups .2."):
        selective_scan(*inputs.values(), delta_softplus=True)


def test_cpu_kernel_reads_and_writes_time_major_layouts():
    """u, delta and z in (batch, len, dim) memory: same values as dense inputs, output in u's layout."""
    inputs = make_inputs(2, 37, 90, 16, True, True, True, True, dtype=torch.float32)
    time_major = {k: v.transpose(1, 2).contiguous().transpose(1, 2) if k in ("u", "delta", "z") else v
                  for k, v in inputs.items()}
    dense = selective_scan(*inputs.values(), delta_softplus=True, backend="cpu")
    out = selective_scan(*time_major.values(), delta_softplus=True, backend="cpu")
    assert out.stride(1) == 1 and out.stride(2) == 37  # u's layout
    assert torch.equal(out, dense)


@pytest.mark.parametrize("groups", [1, 2])
def test_fused_step_size_projection_equals_projecting_first(groups):
    """run_scan with delta_proj_weight (the cpu kernel applies it per tile) equals delta = W @ low, forward
    and gradients (low, W and every other input), float64."""
    inputs, _ = grouped_inputs(groups=groups, rows=2) if groups > 1 else (
        make_inputs(2, 37, 70, 16, True, True, True, True, dtype=torch.float64), None)
    rank = 5
    weight = torch.randn(*((groups,) if groups > 1 else ()), 37, rank, dtype=torch.float64)
    low = torch.randn(inputs["u"].shape[0], inputs["u"].shape[-1], rank, dtype=torch.float64).transpose(1, 2)
    args = dict(inputs, delta=low)
    results = []
    for fused in (True, False):
        leaves = {k: v.clone().requires_grad_() for k, v in args.items()}
        w = weight.clone().requires_grad_()
        out = dispatch.run_scan("cpu", *(leaves[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")),
                                True, False, delta_proj_weight=w, fused=fused)
        out.backward(torch.ones_like(out))
        results.append((out, {k: v.grad for k, v in leaves.items()}, w.grad))
    (out, grads, wgrad), (ref, ref_grads, ref_wgrad) = results
    assert rel_err(out, ref) < 1e-12
    assert rel_err(wgrad, ref_wgrad) < 1e-10
    for k in grads:
        assert rel_err(grads[k], ref_grads[k]) < 1e-10, k


def conv_reference(x, weight, bias, groups):
    """float64 depthwise causal conv + SiLU with torch.nn.functional, one filter bank per group."""
    outs = []
    for g, xg in enumerate(x.chunk(groups)):
        w = weight[g] if weight.dim() == 3 else weight
        b = None if bias is None else (bias[g] if bias.dim() == 2 else bias)
        outs.append(F.silu(F.conv1d(F.pad(xg, (w.shape[-1] - 1, 0)), w.unsqueeze(1), b, groups=xg.shape[1])))
    return torch.cat(outs)


@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("layout", ["time dense", "channels dense"])
def test_cpu_conv_matches_functional_conv_with_gradients(groups, layout):
    x = torch.randn(2 * groups, 37, 90, dtype=torch.float64)
    if layout == "channels dense":
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    shape = (groups, 37) if groups > 1 else (37,)
    weight, bias = torch.randn(*shape, 4, dtype=torch.float64), torch.randn(*shape, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    out = causal_conv1d(*leaves, "silu")
    assert out.stride() == x.stride()  # the output keeps x's layout
    ref_leaves = [t.clone().requires_grad_() for t in (x, weight, bias)]
    ref = conv_reference(*ref_leaves, groups)
    grad_out = torch.randn_like(ref)
    out.backward(grad_out)
    ref.backward(grad_out)
    assert rel_err(out, ref) < 1e-13
    for leaf, ref_leaf in zip(leaves, ref_leaves, strict=True):
        assert rel_err(leaf.grad, ref_leaf.grad) < 1e-12


def test_cpu_conv_gradcheck():
    x = torch.randn(2, 5, 9, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a, "silu"), (x, weight, bias))


def test_conv_names_bad_weights():
    x = torch.randn(3, 8, 20)
    with pytest.raises(ValueError, match="multiple of weight's groups"):
        causal_conv1d(x, torch.randn(2, 8, 4))
    with pytest.raises(ValueError, match="weight must be"):
        causal_conv1d(x, torch.randn(7, 4))
    with pytest.raises(ValueError, match="bias must have shape"):
        causal_conv1d(x, torch.randn(8, 4), torch.randn(7))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fused_bimamba_equals_two_stacks_in_float64(backend):
    """Outputs and every parameter's gradient: the fused layer against the two stacks run apart. A, D and
    the step-size bias enter the scan in float32 (as in mamba-ssm), so their gradients agree to float32."""
    torch.manual_seed(0)
    layer = BiMamba(24, num_blocks=2).double()
    x = torch.randn(3, 24, 61, dtype=torch.float64, requires_grad=True)
    grad_out = torch.randn(3, 24, 61, dtype=torch.float64)
    names, params = zip(*layer.named_parameters(), strict=True)
    results = []
    with use_backend(backend):
        for fused in (True, False):
            layer.fused = fused
            out = layer(x)
            grads = torch.autograd.grad(out, [x, *params], grad_out)
            results.append((out, grads))
    (out, grads), (ref, ref_grads) = results
    assert rel_err(out, ref) < 1e-13
    for name, g, r in zip(("x", *names), grads, ref_grads, strict=True):
        float32 = name.endswith(("A_log", ".D", "dt_proj.bias"))
        assert rel_err(g, r) < (1e-6 if float32 else 1e-12), name


def test_fused_bimamba_float32_round_off_and_the_switch():
    torch.manual_seed(1)
    layer = BiMamba(32, num_blocks=4)
    x = torch.randn(2, 32, 500)
    with torch.no_grad():
        fused = layer(x)
        assert fusion_enabled()
        with use_fusion(False):
            assert not fusion_enabled()
            unfused = layer(x)
        reference = layer.double()(x.double())
    assert rel_err(fused, reference) < 1e-5 and rel_err(unfused, reference) < 1e-5
    assert fusion_enabled()


def test_the_switch_runs_each_direction_apart_with_pytorch_operators():
    """use_fusion(False), read by the mixer alone: a fused layer's scans run per direction (half the rows
    each), dt_proj before the scan, and the C++ conv gives way to PyTorch's (whose calls a MAC counter sees)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sepmamba_sb.ops import observe_scans

    layer = BiMamba(16, num_blocks=2)
    x = torch.randn(3, 16, 50)
    for fused, rows, scans in ((True, 6, 2), (False, 3, 4)):
        seen, counter = [], FlopCounterMode(display=False)
        with torch.no_grad(), use_fusion(fused), observe_scans(lambda shape, _, rows=seen: rows.append(shape[0])):
            with counter:
                layer(x)
        assert seen == [rows] * scans, fused
        conv_flops = sum(n for op, n in counter.get_flop_counts()["Global"].items() if "convolution" in str(op))
        assert (conv_flops > 0) == (not fused), fused


def test_fused_bimamba_loads_the_original_keys_and_counts_the_same_macs():
    """State-dict keys are the authors' (a state dict saved by the unfused layer loads strictly), and the
    MAC count of a SepMamba model is the same with the fusion (counted unfused) as the formula's."""
    from sepmamba_sb.lobes import SepMamba

    original = original_state_dict_shapes()
    model = SepMamba()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == original
    other = SepMamba()
    other.load_state_dict(model.state_dict(), strict=True)
    x = torch.randn(1, 3000)
    with torch.no_grad():
        assert torch.equal(model(x), other(x))
    small = SepMamba(dim=8, num_blocks=1)
    macs = count_macs(small, 1600)
    for layer in small.modules():
        if isinstance(layer, BiMamba):
            layer.fused = False
    assert count_macs(small, 1600).total == macs.total and macs.scan > 0


@pytest.mark.parametrize("fast_path", [True, False])
def test_grouped_weights_on_the_mamba_ssm_backend_run_one_call_per_group(monkeypatch, fast_path):
    """mamba-ssm's kernels take one set of weights: a fused bidirectional layer on that backend calls
    mamba_inner_fn (fast path) or selective_scan_fn once per direction and block, and gives the unfused
    output. Stand-ins that check the shapes and compute with the reference path play mamba-ssm here,
    on the CPU (no GPU in CI)."""
    from types import SimpleNamespace

    from sepmamba_sb.ops import mamba_inner, mamba_ssm_kernels
    from sepmamba_sb.ops.reference import selective_scan_reference

    calls = {"inner": 0, "scan": 0}

    def inner_fn(xz, *weights, delta_bias=None, delta_softplus=True):
        conv_w, conv_b, x_w, dt_w, out_w, out_b, A, _B, _C, D = weights
        assert A.dim() == 2 and xz.stride(-1) == 1  # one set of weights, channel-major xz as mamba-ssm reads it
        calls["inner"] += 1
        return mamba_inner(xz, conv_w, conv_b, x_w, dt_w, out_w, out_b, A, D, delta_bias, backend="reference")

    def scan_fn(u, delta, A, *rest):
        assert A.dim() == 2
        calls["scan"] += 1
        return selective_scan_reference(u, delta, A, *rest)

    fake = SimpleNamespace(mamba_inner_fn=inner_fn, selective_scan_fn=scan_fn, causal_conv1d_fn=lambda *a, **k: None)
    monkeypatch.setattr(dispatch, "_unavailable_reason", lambda name, device=None: None)
    monkeypatch.setattr(mamba_ssm_kernels, "mamba_kernels", lambda: fake)
    monkeypatch.setattr(importlib.import_module("sepmamba_sb.ops.mamba_inner"), "mamba_kernels", lambda: fake)
    torch.manual_seed(2)
    layer = BiMamba(16, num_blocks=2, backend="mamba_ssm", use_fast_path=fast_path).double()
    x = torch.randn(2, 16, 40, dtype=torch.float64)
    with torch.no_grad():
        fused = layer(x)
        assert calls == ({"inner": 4, "scan": 0} if fast_path else {"inner": 0, "scan": 4})
        layer.fused = False
        with use_backend("reference"):
            unfused = layer(x)
    assert rel_err(fused, unfused) < 1e-12


def test_conv_and_scan_write_over_inputs_that_are_not_needed_again():
    """Without autograd, overwrite_input / overwrite_u put the output in the input's memory, with the same
    values as a fresh output; with autograd the inputs are left alone (backward reads them)."""
    torch.manual_seed(3)
    xz = torch.randn(2, 300, 2 * 37)
    x = xz[..., :37].transpose(1, 2)  # time-major, as the mixer's in_proj makes it
    weight, bias = torch.randn(37, 4), torch.randn(37)
    expected = causal_conv1d(x, weight, bias, "silu")
    before = x.clone()
    with torch.no_grad():
        y = causal_conv1d(x, weight, bias, "silu", overwrite_input=True)
    assert y.data_ptr() == x.data_ptr() and torch.equal(y, expected)
    inputs = make_inputs(2, 37, 300, 16, True, True, True, True, dtype=torch.float32)
    u = inputs["u"].transpose(1, 2).contiguous().transpose(1, 2)
    args = [inputs[k] for k in ("delta", "A", "B", "C", "D", "z", "delta_bias")]
    expected = dispatch.run_scan("cpu", u.clone(), *args, True, False)
    out = dispatch.run_scan("cpu", u, *args, True, False, overwrite_u=True)
    assert out.data_ptr() == u.data_ptr() and torch.equal(out, expected)
    leaf = before.clone().requires_grad_()
    causal_conv1d(leaf, weight, bias, "silu", overwrite_input=True).sum().backward()
    assert torch.equal(leaf.detach(), before)
