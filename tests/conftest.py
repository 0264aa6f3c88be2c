import os
import pathlib
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from sepmamba_sb.data import minimix

sys.path.insert(0, str(pathlib.Path(__file__).parent))

DATA = pathlib.Path(__file__).parent / "data"


# fixtures that start subprocesses (apt-get and Festival for the corpora, train.py for a run): the tests that
# use them are slow, as are those marked @pytest.mark.slow themselves; `make test-fast` leaves them all out
SLOW_FIXTURES = {"tiny_corpus", "tiny_wham_corpus", "tiny_whamr_corpus", "trained_run"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _seed_and_backend(monkeypatch):
    """Each test starts from a fixed seed and with the automatic backend choice."""
    monkeypatch.delenv("SEPMAMBA_SCAN_BACKEND", raising=False)
    torch.manual_seed(0)


REPO = pathlib.Path(__file__).resolve().parents[1]
WSJ0MIX = REPO / "recipes" / "WSJ0Mix"
MINIMIX = REPO / "recipes" / "MiniMix"


def recipe_environment(**extra):
    """The environment a recipe's ``train.py`` runs in from the tests: this checkout importable, the automatic
    backend choice, and ``extra``."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), **extra)
    env.pop("SEPMAMBA_SCAN_BACKEND", None)
    return env


def logged_epochs(output):
    """The epochs a recipe run's ``train_log.txt`` holds, in order."""
    import re

    return [int(m) for m in re.findall(r"^epoch: (\d+),", (output / "train_log.txt").read_text(), re.M)]


def needs_debian_speech(build, *args, **kwargs):
    """``build(*args, **kwargs)``, which fetches speech from Debian packages. Where apt cannot fetch
    them the test is skipped, saying why; with ``SEPMAMBA_REQUIRE_SPEECH=1`` (set by ``.ci/run``) it
    fails instead, so CI never passes without them."""
    try:
        return build(*args, **kwargs)
    except minimix.SpeechFetchError as exc:
        reason = f"real speech from Debian packages unavailable here: {exc}"
        if os.environ.get("SEPMAMBA_REQUIRE_SPEECH") == "1":
            pytest.fail(reason + " (SEPMAMBA_REQUIRE_SPEECH=1)")
        pytest.skip(reason)


def _minimix(name: str, layout: str):
    """MiniMix's "tiny" preset in ``layout``, built once and cached (see :func:`needs_debian_speech`)."""
    return needs_debian_speech(minimix.prepare_minimix, minimix.cache_dir() / "tests" / name,
                               "tiny", layout=layout)


def write_speakers(root, levels, utterances, seconds, sample_rate, seed=0):
    """``root/spk<s>/u<u>.wav``: noise at ``levels[s]`` (RMS) per speaker, ``seconds[u]`` long each."""
    rng = np.random.default_rng(seed)
    for s, level in enumerate(levels):
        for u in range(utterances):
            path = root / f"spk{s}" / f"u{u}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), (rng.standard_normal(int(sample_rate * seconds[u])) * level).astype("float32"),
                     sample_rate)
    return root


@pytest.fixture(scope="session")
def tiny_corpus():
    """MiniMix's "tiny" preset (real speech, disjoint speakers, 3 in tr for 3-speaker mixing), built
    from Debian packages once and cached (``$SEPMAMBA_CACHE``). Where apt cannot fetch them the tests
    that need it are skipped, saying why; with ``SEPMAMBA_REQUIRE_SPEECH=1`` (set by ``.ci/run``)
    they fail instead, so CI never passes without them."""
    return _minimix("tiny-2mix", "wsj0mix")


@pytest.fixture(scope="session")
def tiny_wham_corpus():
    """The tiny corpus in WHAM!'s layout (noisy: babble of each split's speakers)."""
    return _minimix("tiny-wham", "wham")


@pytest.fixture(scope="session")
def tiny_whamr_corpus():
    """The tiny corpus in WHAMR!'s layout (noisy and reverberant, direct-path sources)."""
    return _minimix("tiny-whamr", "whamr")


@pytest.fixture(scope="session")
def trained_run(tiny_corpus, tmp_path_factory):
    """A MiniMix recipe run (the demo's model and settings) trained briefly on the tiny corpus."""
    import subprocess

    out = tmp_path_factory.mktemp("minimix") / "run"
    recipe = MINIMIX
    env = recipe_environment()
    cmd = [sys.executable, "train.py", "hparams/sepmamba-minimix.yaml", "--data_folder", str(tiny_corpus),
           "--output_folder", str(out), "--N_epochs", "3", "--dm_num_mixtures", "32", "--device", "cpu",
           "--noprogressbar"]
    done = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    return out
