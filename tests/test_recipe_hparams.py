"""Every hparams file of the recipes loads, builds its model, and uses every top-level key."""

import re

import pytest
from conftest import WSJ0MIX
from hyperpyyaml import load_hyperpyyaml

HPARAMS = sorted((WSJ0MIX / "separation" / "hparams").glob("*.yaml")) + sorted(
    (WSJ0MIX.parent / "MiniMix" / "hparams").glob("*.yaml"))
TRAIN_PY = (WSJ0MIX / "separation" / "train.py").read_text()
RUN_OPTIONS = {"precision", "noprogressbar"}  # read by speechbrain.core.Brain from the hparams


@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.name)
def test_every_key_is_used(path):
    text = path.read_text()
    keys = re.findall(r"^([A-Za-z_][\w]*):", text, re.M)
    unused = [
        k for k in keys
        if not k.startswith("__") and k not in RUN_OPTIONS and f"<{k}>" not in text
        and f'"{k}"' not in TRAIN_PY and f".{k}" not in TRAIN_PY
    ]
    assert not unused, f"{path.name}: keys nothing reads: {unused}"


@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.name)
def test_loads_with_a_header_box_and_a_data_folder_placeholder(path):
    text = path.read_text()
    assert text.startswith("# ####") and "# Model:" in text and "# Dataset:" in text
    assert re.search(r"^data_folder: !PLACEHOLDER", text, re.M)
    hparams = load_hyperpyyaml(text, {"data_folder": "/data/wsj0-mix/2speakers"})
    assert set(hparams["modules"]) in ({"sepmamba"}, {"encoder", "masknet", "decoder"})
    assert hparams["optimizer"].func.__name__ == "AdamW"
