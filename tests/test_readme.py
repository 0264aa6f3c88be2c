"""The README's yaml examples build what it says they build."""

import pathlib
import re

import torch
from hyperpyyaml import load_hyperpyyaml

from sepmamba_sb.lobes import Decoder, Encoder, MaskNet, SepMamba, separate

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def readme_example(name):
    """The code block that follows ``<!-- README example: name -->`` in README.md."""
    match = re.search(rf"<!-- README example: {re.escape(name)} -->\n```\w*\n(.*?)```", README.read_text(), re.S)
    assert match, f"README.md has no example named {name}"
    return match.group(1)


def test_model_yaml_builds_sepmamba_s():
    hparams = load_hyperpyyaml(readme_example("model.yaml"))
    model = hparams["sepmamba"]
    assert isinstance(model, SepMamba)
    assert sum(p.numel() for p in model.parameters()) == 7_253_826
    with torch.no_grad():
        assert model(torch.randn(1, 500)).shape == (1, 500, 2)


def test_masking_yaml_builds_the_contract_triple():
    hparams = load_hyperpyyaml(readme_example("masking.yaml"))
    encoder, masknet, decoder = hparams["encoder"], hparams["masknet"], hparams["decoder"]
    assert isinstance(encoder, Encoder) and isinstance(masknet, MaskNet) and isinstance(decoder, Decoder)
    with torch.no_grad():
        assert separate(encoder, masknet, decoder, torch.randn(2, 700), 2).shape == (2, 700, 2)


def test_streaming_example_streams_a_strictly_causal_model():
    scope = {}
    exec(readme_example("streaming.py"), scope)
    assert scope["est"].shape == (1, 256, 2) and scope["context"].delay == 0
    assert scope["context"].out.shape[-1] < 8  # at most a frame computed ahead waits in the queue
