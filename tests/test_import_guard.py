"""The package imports and runs whatever state mamba-ssm / causal-conv1d are in (fresh interpreters)."""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow  # every test here starts Python subprocesses

REPO = pathlib.Path(__file__).resolve().parents[1]

# Runs a Mamba block on CPU and reports what the mamba_ssm import guard recorded.
PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys, torch
    if HIDE:
        class Hide:  # makes installed packages look absent
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("mamba_ssm", "causal_conv1d"):
                    raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
        sys.meta_path.insert(0, Hide())
    from sepmamba_sb.nnet import BiMamba
    from sepmamba_sb.ops import available_backends
    from sepmamba_sb.ops.mamba_ssm_kernels import mamba_kernels
    def found(name):
        try:
            return importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            return False
    y = BiMamba(16, num_blocks=1)(torch.randn(1, 16, 40))
    k = mamba_kernels()
    print(json.dumps({
        "finite": bool(torch.isfinite(y).all()), "shape": list(y.shape),
        "found_mamba_ssm": found("mamba_ssm"),
        "scan_error": k.scan_error, "conv_error": k.conv_error,
        "has_scan": k.selective_scan_fn is not None, "has_conv": k.causal_conv1d_fn is not None,
        "backends": available_backends(), "cuda": torch.cuda.is_available(),
    }))
    """
)


def probe(extra_path=None, hide=False):
    env = dict(os.environ)
    paths = [str(extra_path)] if extra_path else []
    env["PYTHONPATH"] = os.pathsep.join(paths + [str(REPO), env.get("PYTHONPATH", "")])
    env.pop("SEPMAMBA_SCAN_BACKEND", None)
    code = f"HIDE = {hide}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def write_package(root, name, files):
    for rel, text in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_runs_without_mamba_ssm():
    report = probe(hide=True)
    assert not report["found_mamba_ssm"]
    assert report["finite"] and report["shape"] == [1, 16, 40]
    assert "mamba_ssm could not be imported" in report["scan_error"]
    assert report["backends"] == ["cpu", "reference"]


@pytest.mark.parametrize(
    "package",
    [
        # an install without its compiled extension: the submodule's unguarded import fails
        {"__init__.py": "", "ops/__init__.py": "",
         "ops/selective_scan_interface.py": "import selective_scan_cuda\n"},
        # a package that blows up at import with something other than ImportError (e.g. triton)
        {"__init__.py": "raise RuntimeError('simulated: triton failed to initialise')\n"},
    ],
    ids=["missing-cuda-extension", "raises-runtime-error"],
)
def test_runs_with_a_broken_mamba_ssm_on_the_path(tmp_path, package):
    write_package(tmp_path, "mamba_ssm", package)
    write_package(tmp_path, "causal_conv1d", {"__init__.py": "import causal_conv1d_cuda\n"})
    report = probe(tmp_path)
    assert report["found_mamba_ssm"]
    assert report["finite"] and report["shape"] == [1, 16, 40]
    assert not report["has_scan"] and not report["has_conv"]
    assert "selective_scan_cuda" in report["scan_error"] or "simulated" in report["scan_error"]
    assert "causal_conv1d_cuda" in report["conv_error"]
    assert report["backends"] == ["cpu", "reference"]


def test_a_working_mamba_ssm_is_found_but_needs_cuda(tmp_path):
    """The guard hands over mamba-ssm's functions when they import; without a GPU the backend is
    still unavailable, with that reason."""
    write_package(tmp_path, "mamba_ssm", {
        "__init__.py": "",
        "ops/__init__.py": "",
        "ops/selective_scan_interface.py": "def selective_scan_fn(*a, **k): pass\ndef mamba_inner_fn(*a, **k): pass\n",
    })
    write_package(tmp_path, "causal_conv1d", {"__init__.py": "def causal_conv1d_fn(*a, **k): pass\n"})
    report = probe(tmp_path)
    assert report["has_scan"] and report["has_conv"] and report["scan_error"] is None
    assert report["finite"]
    assert ("mamba_ssm" in report["backends"]) == report["cuda"]
