"""The models that ship with the package (sepmamba_sb/pretrained/): each loads by name, offline, passes the
hub check, and separates its test mixture at the score its card states."""

import re
import subprocess
import sys

import pytest
import torch

from sepmamba_sb.audio import read_audio
from sepmamba_sb.hub.layout import CARD_FILE, TEST_MIXTURE
from sepmamba_sb.pretrained import available, describe, resolve, stored_robustness

MODELS = sorted(available())


def test_a_model_ships():
    assert MODELS, "sepmamba_sb/pretrained/ holds no model (recipes/MiniMix/ship.py makes one)"


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_is_small_and_described(name):
    folder = available()[name]
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    assert size <= 10e6, f"{name} is {size / 1e6:.1f} MB; shipped models stay within 10 MB"
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    for needed in ("## How it was trained", "## Robustness", "training_curve.png", "recipes/MiniMix"):
        assert needed in card
    assert (folder / "training_curve.png").is_file()
    assert stored_robustness(name)["results"]
    assert name in describe(name) and resolve(name) == str(folder)


@pytest.mark.parametrize("name", MODELS)
def test_shipped_interface_is_the_packages(name):
    """A hub folder carries its own custom_interface.py (SpeechBrain's foreign_class loads it from there): the
    shipped copy must be the package's file, byte for byte, so the two cannot drift apart."""
    from pathlib import Path

    import sepmamba_sb.hub
    from sepmamba_sb.hub.layout import INTERFACE_FILE

    package = Path(sepmamba_sb.hub.__file__).with_name(INTERFACE_FILE)
    assert (available()[name] / INTERFACE_FILE).read_bytes() == package.read_bytes()


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_separates_its_test_mixture_at_the_cards_score(name):
    from sepmamba_sb.inference import SepMambaSeparation
    from sepmamba_sb.metrics import score_utterance

    folder = available()[name]
    stated = float(re.search(r"test mixture SI-SNRi (-?\d+\.\d+) dB", (folder / CARD_FILE).read_text()).group(1))
    model = SepMambaSeparation.from_hparams(source=name)  # by name, from the package folder, offline
    est = model.separate_file(folder / TEST_MIXTURE)[0]
    references = torch.stack([read_audio(folder / f"test_mixture_s{n}.wav")[0] for n in (1, 2)], -1)
    score = score_utterance(est, references, read_audio(folder / TEST_MIXTURE)[0])["si-snr_i"]
    assert score == pytest.approx(stated, abs=0.05)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_passes_the_hub_check_and_the_cli_takes_its_name(name, tmp_path):
    from sepmamba_sb.hub import check

    result = check(available()[name], progress=False)
    assert result.ok, result.report()
    done = subprocess.run([sys.executable, "-m", "sepmamba_sb.cli", name, str(available()[name] / TEST_MIXTURE),
                           "--out", str(tmp_path), "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.glob("*.wav")) == ["test_mixture_s1.wav", "test_mixture_s2.wav"]
    listing = subprocess.run([sys.executable, "-m", "sepmamba_sb.pretrained"], capture_output=True, text=True)
    assert listing.returncode == 0 and name in listing.stdout
