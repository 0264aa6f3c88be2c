"""sepmamba_sb.ops.selective_scan: every available backend against a float64 oracle."""

import functools
import warnings

import pytest
import torch
from scan_oracle import scan_oracle

from sepmamba_sb.ops import available_backends, cpu_kernel, dispatch, reference, resolve_backend, selective_scan
from sepmamba_sb.ops.reference import selective_scan_reference

NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")

# each flag on and off at least once; the first is how Mamba calls the scan
OPTIONS = {
    "mamba": dict(with_D=True, with_z=True, with_bias=True, softplus=True),
    "bare": dict(with_D=False, with_z=False, with_bias=False, softplus=False),
    "D+bias": dict(with_D=True, with_z=False, with_bias=True, softplus=False),
    "z+softplus": dict(with_D=False, with_z=True, with_bias=False, softplus=True),
}
DIM = 37  # not a multiple of any vector width (16 or 8 lanes): exercises the partial channel block


def _cases():
    """(backend, device) pairs that work here; CUDA ones only where a GPU is present."""
    pairs = [(name, "cpu") for name in ("cpu", "reference")]
    if torch.cuda.is_available():
        pairs += [(name, "cuda") for name in ("mamba_ssm", "reference") if name in available_backends()]
    return pairs


def make_inputs(batch, dim, length, nstate, with_D, with_z, with_bias, softplus, seed=0,
                dtype=torch.float32):
    """Random scan inputs in the ranges Mamba produces. Returns a dict keyed by NAMES (None if absent)."""
    g = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    def rand(*shape):
        return torch.rand(*shape, generator=g, dtype=torch.float64)

    # without softplus delta is used as is, so keep it (and the bias) positive
    delta = randn(batch, dim, length) * 0.5 - 1.0 if softplus else rand(batch, dim, length) * 0.5 + 0.05
    inputs = {
        "u": randn(batch, dim, length),
        "delta": delta,
        "A": -(0.5 + rand(dim, nstate) * 2.0),
        "B": randn(batch, nstate, length),
        "C": randn(batch, nstate, length),
        "D": randn(dim) if with_D else None,
        "z": randn(batch, dim, length) if with_z else None,
        "delta_bias": (randn(dim) * 0.5 if softplus else rand(dim) * 0.1) if with_bias else None,
    }
    return {k: None if v is None else v.to(dtype) for k, v in inputs.items()}


def rel_err(value, ref):
    """max |value - ref| / max |ref|."""
    return ((value.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def run(inputs, softplus, backend, device="cpu", grad_out=None, return_last_state=False):
    """Forward (and backward with grad_out) through selective_scan; returns (out, grads, last_state)."""
    leaves = {
        k: None if v is None else v.detach().to(device).clone().requires_grad_(grad_out is not None)
        for k, v in inputs.items()
    }
    result = selective_scan(*(leaves[k] for k in NAMES), delta_softplus=softplus,
                            return_last_state=return_last_state, backend=backend)
    out, last = result if return_last_state else (result, None)
    grads = {}
    if grad_out is not None:
        out.backward(grad_out.to(device=device, dtype=out.dtype))
        grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return out, grads, last


@functools.cache
def oracle_case(batch, length, nstate, option):
    """The float64 oracle's output and gradients for one case (computed once for all backends)."""
    opts = OPTIONS[option]
    inputs = make_inputs(batch, DIM, length, nstate, **opts, dtype=torch.float64)
    grad_out = torch.randn(batch, DIM, length, dtype=torch.float64)
    leaves = {k: None if v is None else v.clone().requires_grad_() for k, v in inputs.items()}
    out, _ = scan_oracle(*(leaves[k] for k in NAMES), delta_softplus=opts["softplus"])
    out.backward(grad_out)
    grads = {k: v.grad for k, v in leaves.items() if v is not None}
    return inputs, grad_out, out.detach(), grads


def test_cpu_kernel_builds_here():
    """The C++ kernel must build on the CI machine: a silent fall-back would leave it untested."""
    assert "cpu" in available_backends(), cpu_kernel.build_error()


@pytest.mark.filterwarnings("ignore:selective_scan. using the slow pure-PyTorch")
@pytest.mark.parametrize("backend,device", _cases())
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("nstate", [1, 16])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("length", [1, 2, 7, 1000, pytest.param(4097, marks=pytest.mark.slow)])  # a long oracle loop
def test_matches_float64_oracle(backend, device, option, nstate, batch, length):
    inputs64, grad_out, ref_out, ref_grads = oracle_case(batch, length, nstate, option)
    inputs = {k: None if v is None else v.float() for k, v in inputs64.items()}
    out, grads, _ = run(inputs, OPTIONS[option]["softplus"], backend, device, grad_out)
    assert out.dtype == torch.float32 and out.shape == (batch, DIM, length)
    assert rel_err(out, ref_out) < 1e-5
    assert set(grads) == set(ref_grads)
    for name, grad in grads.items():
        assert grad.dtype == torch.float32 and grad.shape == ref_grads[name].shape, name
        assert rel_err(grad, ref_grads[name]) < 1e-4, name


@pytest.mark.parametrize("backend,device", _cases())
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_inputs_are_upcast(backend, device, dtype):
    """bf16/fp16 u, delta, B, C, z (A, D, delta_bias fp32, as Mamba passes them): fp32 compute, output
    and gradients in the inputs' dtypes, errors at the half-precision rounding level."""
    inputs = make_inputs(2, DIM, 300, 16, **OPTIONS["mamba"], seed=1)
    for name in ("u", "delta", "B", "C", "z"):
        inputs[name] = inputs[name].to(dtype)
    for name in ("A", "D", "delta_bias"):
        inputs[name] = inputs[name].float()
    grad_out = torch.randn(2, DIM, 300).to(dtype)
    out, grads, _ = run(inputs, True, backend, device, grad_out)
    leaves = {k: v.double().requires_grad_() for k, v in inputs.items()}
    ref, _ = scan_oracle(*(leaves[k] for k in NAMES), delta_softplus=True)
    ref.backward(grad_out.double())
    assert out.dtype == dtype
    assert rel_err(out, ref) < 1e-2
    for name, grad in grads.items():
        assert grad.dtype == inputs[name].dtype, name
        assert rel_err(grad, leaves[name].grad) < 2e-2, name


@pytest.mark.parametrize("backend,device", _cases())
def test_large_decays_stay_finite(backend, device):
    """delta * |A| between 50 and 220: exp underflows to (almost) zero, nothing becomes NaN/Inf."""
    inputs = make_inputs(2, DIM, 200, 16, **OPTIONS["D+bias"], seed=2)
    inputs["delta"] = 5.0 + torch.rand_like(inputs["delta"]) * 5.0
    inputs["A"] = -(10.0 + torch.rand_like(inputs["A"]) * 12.0)
    assert (inputs["delta"].min() + inputs["delta_bias"].min()) * inputs["A"].abs().min() > 50
    grad_out = torch.randn(2, DIM, 200)
    out, grads, _ = run(inputs, False, backend, device, grad_out)
    leaves = {k: None if v is None else v.double().requires_grad_() for k, v in inputs.items()}
    ref, _ = scan_oracle(*(leaves[k] for k in NAMES))
    ref.backward(grad_out.double())
    assert torch.isfinite(out).all()
    assert rel_err(out, ref) < 1e-5
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        # dA is a sum of terms each scaled by exp(-50) or less: compare on the scale of the others
        scale = 1.0 if name != "A" else leaves["u"].grad.abs().max().item()
        err = (grad.double().cpu() - leaves[name].grad).abs().max().item()
        assert err / max(leaves[name].grad.abs().max().item(), scale) < 1e-4, name


def test_cpu_kernel_gradcheck_float64():
    """Analytical against numerical gradients, float64, across a chunk boundary and a partial
    channel block, for the fixed-size (16) and any-size state paths."""
    chunk = cpu_kernel.load().chunk
    for nstate in (3, 16):
        inputs = make_inputs(2, 11, chunk + 3, nstate, **OPTIONS["mamba"], seed=3, dtype=torch.float64)
        leaves = [inputs[k].requires_grad_() for k in NAMES]

        def fn(*tensors):
            return selective_scan(*tensors, delta_softplus=True, backend="cpu")

        assert torch.autograd.gradcheck(fn, leaves, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("backend,device", _cases())
def test_last_state(backend, device):
    inputs = make_inputs(3, DIM, 150, 16, **OPTIONS["mamba"], seed=4)
    _, _, last = run(inputs, True, backend, device, return_last_state=True)
    _, ref_last = scan_oracle(*(inputs[k] for k in NAMES), delta_softplus=True)
    assert last.shape == (3, DIM, 16)
    assert rel_err(last, ref_last) < 1e-5


def test_cpu_kernel_reads_strided_inputs_without_change():
    """Views with time contiguous but other strides (how Mamba passes x and z) give the same bits."""
    inputs = make_inputs(2, DIM, 90, 16, **OPTIONS["mamba"], seed=5)
    wide = {k: torch.cat([inputs[k], torch.randn_like(inputs[k])], dim=1)[:, :DIM] for k in ("u", "z")}
    assert not wide["u"].is_contiguous()
    strided = selective_scan(wide["u"], inputs["delta"], inputs["A"], inputs["B"], inputs["C"], inputs["D"],
                             wide["z"], inputs["delta_bias"], True, backend="cpu")
    dense = selective_scan(*(inputs[k] for k in NAMES), delta_softplus=True, backend="cpu")
    assert torch.equal(strided, dense)


def test_cpu_kernel_reads_B_and_C_with_any_time_stride():
    """B and C as x_proj makes them, (batch, len, nstate) viewed as (batch, nstate, len), are read in
    place: the same output and gradients as dense copies."""
    inputs = make_inputs(2, DIM, 150, 16, **OPTIONS["mamba"], seed=9)
    dense = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    time_major = {k: v.transpose(1, 2).contiguous().requires_grad_() for k, v in inputs.items() if k in ("B", "C")}
    views = {**dense, **{k: v.transpose(1, 2) for k, v in time_major.items()}}
    assert views["B"].stride(-1) == 16
    grad_out = torch.randn(2, DIM, 150)
    outs = []
    for leaves in (dense, views):
        out = selective_scan(*(leaves[k] for k in NAMES), delta_softplus=True, backend="cpu")
        out.backward(grad_out)
        outs.append(out)
    assert torch.equal(outs[0], outs[1])
    for k in ("B", "C"):
        assert torch.allclose(dense[k].grad, time_major[k].grad.transpose(1, 2), rtol=1e-6, atol=1e-6), k


def test_single_step_views_with_any_time_stride():
    """len == 1 views (the deepest U-Net level of a short input) may carry any stride on time."""
    inputs = make_inputs(2, DIM, 1, 16, **OPTIONS["mamba"], seed=8)
    leaves = {k: v.clone().requires_grad_() for k, v in inputs.items()}
    views = {k: v.as_strided(v.shape, (*v.stride()[:-1], 7)) if v.dim() == 3 else v for k, v in leaves.items()}
    assert views["u"].stride(-1) == 7 and views["B"].stride(-1) == 7
    out = selective_scan(*(views[k] for k in NAMES), delta_softplus=True, backend="cpu")
    out.sum().backward()
    ref_leaves = {k: v.double().requires_grad_() for k, v in inputs.items()}
    ref, _ = scan_oracle(*(ref_leaves[k] for k in NAMES), delta_softplus=True)
    ref.sum().backward()
    assert rel_err(out, ref) < 1e-5
    for name in NAMES:
        assert rel_err(leaves[name].grad, ref_leaves[name].grad) < 1e-4, name


def test_cpu_kernel_same_gradients_for_any_thread_count():
    """dB and dC are summed per thread, then across threads: the result must not depend on it."""
    inputs = make_inputs(2, DIM, 300, 16, **OPTIONS["mamba"], seed=6)
    grad_out = torch.randn(2, DIM, 300)
    threads = torch.get_num_threads()
    results = []
    try:
        for n in (1, 3):
            torch.set_num_threads(n)
            results.append(run(inputs, True, "cpu", grad_out=grad_out))
    finally:
        torch.set_num_threads(threads)
    (out1, grads1, _), (out3, grads3, _) = results
    assert torch.equal(out1, out3)
    for name in grads1:
        assert rel_err(grads3[name], grads1[name]) < 1e-6, name


def test_no_grad_path_equals_autograd_path():
    inputs = make_inputs(2, DIM, 130, 16, **OPTIONS["mamba"], seed=7)
    with torch.no_grad():
        plain = selective_scan(*(inputs[k] for k in NAMES), delta_softplus=True, backend="cpu")
    tracked, _, _ = run(inputs, True, "cpu", grad_out=torch.ones(2, DIM, 130))
    assert torch.equal(plain, tracked.detach())


# ---- backend choice and errors ---------------------------------------------------------------------

def test_automatic_choice_on_cpu_is_the_cpp_kernel():
    assert resolve_backend(None, torch.device("cpu")) == "cpu"


def test_environment_variable_overrides_the_automatic_choice(monkeypatch):
    inputs = make_inputs(1, 8, 20, 4, **OPTIONS["mamba"])
    monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", "reference")
    assert resolve_backend(None, torch.device("cpu")) == "reference"
    out = selective_scan(*(inputs[k] for k in NAMES), delta_softplus=True)
    assert torch.equal(out, selective_scan_reference(*(inputs[k] for k in NAMES), delta_softplus=True))
    # an explicit argument still wins
    assert resolve_backend("cpu", torch.device("cpu")) == "cpu"
    monkeypatch.setenv("SEPMAMBA_SCAN_BACKEND", "fastest")
    with pytest.raises(ValueError, match="SEPMAMBA_SCAN_BACKEND"):
        resolve_backend(None, torch.device("cpu"))


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="'triton'.*choose from"):
        resolve_backend("triton", torch.device("cpu"))


def test_unavailable_backend_says_what_is_missing():
    with pytest.raises(RuntimeError, match="'mamba_ssm'.*CUDA"):
        resolve_backend("mamba_ssm", torch.device("cpu"))
    with pytest.raises(RuntimeError, match="'cpu'.*CPU tensors"):
        resolve_backend("cpu", torch.device("cuda"))


def test_falls_back_to_reference_with_one_warning_when_the_kernel_cannot_build(monkeypatch):
    monkeypatch.setattr(cpu_kernel, "build_error", lambda: "no C++ compiler (simulated)")
    monkeypatch.setattr(dispatch, "_fallback_warned", set())
    with pytest.warns(RuntimeWarning, match="simulated"):
        assert resolve_backend(None, torch.device("cpu")) == "reference"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_backend(None, torch.device("cpu")) == "reference"
    with pytest.raises(RuntimeError, match="simulated"):
        resolve_backend("cpu", torch.device("cpu"))


def test_reference_warns_once_on_long_inputs(monkeypatch):
    monkeypatch.setattr(reference, "_warned", False)
    inputs = make_inputs(1, 2, reference.LONG_INPUT, 2, **OPTIONS["bare"])
    with pytest.warns(RuntimeWarning, match="slow pure-PyTorch reference"):
        selective_scan(*(inputs[k] for k in NAMES), backend="reference")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        selective_scan(*(inputs[k] for k in NAMES), backend="reference")


@pytest.mark.parametrize(
    "name,bad,match",
    [
        ("u", torch.zeros(2, 5), "u must be"),
        ("delta", torch.zeros(2, 5, 9), "delta must have shape"),
        ("A", torch.zeros(4, 3), "A must be"),
        ("B", torch.zeros(2, 4, 10), "B must have shape"),
        ("C", torch.zeros(2, 3, 9), "C must have shape"),
        ("D", torch.zeros(6), "D must have shape"),
        ("z", torch.zeros(1, 5, 10), "z must have shape"),
        ("delta_bias", torch.zeros(5, 1), "delta_bias must have shape"),
        ("A", torch.zeros(5, 3, dtype=torch.complex64), "complex A"),
        ("B", torch.zeros(2, 3, 10, dtype=torch.long), "B must be floating point"),
    ],
)
def test_bad_shapes_name_the_argument(name, bad, match):
    inputs = make_inputs(2, 5, 10, 3, **OPTIONS["mamba"])
    inputs[name] = bad
    with pytest.raises(ValueError, match=match):
        selective_scan(*(inputs[k] for k in NAMES), delta_softplus=True)


@pytest.mark.parametrize("backend,device", _cases())
def test_softplus_and_decays_over_their_whole_range(backend, device):
    """The kernels' own exp and softplus (the cpu backend's are not ATen's): delta + bias from -30 to
    30 (softplus's threshold at 20 included) and delta * A from 0 to -90 (exp's flush to zero below
    log(FLT_MIN) included), against the float64 oracle."""
    length = 600
    inputs = make_inputs(2, DIM, length, 16, **OPTIONS["mamba"], seed=3)
    inputs["delta"] = torch.linspace(-30, 30, length).expand(2, DIM, length).contiguous()
    inputs["delta_bias"] = torch.zeros(DIM)
    inputs["A"] = -torch.logspace(-3, 0.5, DIM * 16).view(DIM, 16)
    grad_out = torch.randn(2, DIM, length)
    out, grads, _ = run(inputs, True, backend, device, grad_out)
    leaves = {k: v.double().requires_grad_() for k, v in inputs.items()}
    ref, _ = scan_oracle(*(leaves[k] for k in NAMES), delta_softplus=True)
    ref.backward(grad_out.double())
    assert rel_err(out, ref) < 1e-5
    for name, grad in grads.items():
        assert rel_err(grad, leaves[name].grad) < 1e-4, name
