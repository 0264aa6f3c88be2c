"""sepmamba_sb.convert: checkpoints of the authors' code load into our SepMamba."""

import pytest
import torch
from test_nnet import original_state_dict_shapes

from sepmamba_sb.convert import extract_state_dict, infer_config, load_original_checkpoint, load_original_state_dict
from sepmamba_sb.lobes import CONFIGS, SepMamba


def authors_state_dict(causal=False, seed=0):
    """A state dict with the authors' names and shapes (tests/data listing), random values."""
    g = torch.Generator().manual_seed(seed)
    shapes = original_state_dict_shapes()
    if causal:  # their causal S: forward stacks only, blocks 0-7 (4-7 shaped like 0-3)
        shapes = {k: s for k, s in shapes.items() if "backward_mamba_block" not in k}
        extra = {}
        for key, shape in shapes.items():
            if ".forward_mamba_block.mamba_blocks." in key:
                head, tail = key.split(".forward_mamba_block.mamba_blocks.")
                index, rest = tail.split(".", 1)
                extra[f"{head}.forward_mamba_block.mamba_blocks.{int(index) + 4}.{rest}"] = shape
        shapes.update(extra)
    return {k: torch.randn(*s, generator=g) * 0.1 for k, s in shapes.items()}


def training_checkpoint(state):
    """What the authors' training script saved (model, optimizer and epoch in one dict)."""
    return {"epoch": 42, "model_state_dict": state, "optimizer_state_dict": {"state": {}, "param_groups": []}}


def test_original_training_checkpoint_loads_exactly(tmp_path):
    state = authors_state_dict()
    path = tmp_path / "best_model.pth"
    torch.save(training_checkpoint(state), path)
    model = load_original_checkpoint(path)
    assert not model.training
    ours = model.state_dict()
    assert list(ours) == list(state)
    assert all(torch.equal(ours[k], state[k]) for k in state)
    # the same weights given to our model directly: the same output
    direct = SepMamba(**CONFIGS["S"]).eval()
    direct.load_state_dict(state, strict=True)
    mix = torch.randn(1, 800)
    with torch.no_grad():
        assert torch.equal(model(mix), direct(mix))


def test_bare_state_dict_and_wrapper_prefixes():
    state = authors_state_dict(seed=1)
    for checkpoint in (state, {f"module.{k}": v for k, v in state.items()},
                       {"state_dict": {f"_orig_mod.{k}": v for k, v in state.items()}}):
        assert extract_state_dict(checkpoint).keys() == state.keys()
    model = load_original_checkpoint({f"module.{k}": v for k, v in state.items()})
    assert torch.equal(model.decoder.weight, state["decoder.weight"])


def test_configuration_is_inferred_from_the_shapes():
    assert infer_config(authors_state_dict()) == {
        "dim": 64, "kernel_sizes": [16, 16, 16], "strides": [2, 2, 2], "num_blocks": 4, "act_fn": "relu",
        "num_spks": 2, "causal": False, "d_state": 16, "d_conv": 4, "expand": 2,
    }
    causal = infer_config(authors_state_dict(causal=True))
    assert causal["causal"] and causal["num_blocks"] == 8
    model = load_original_checkpoint(authors_state_dict(causal=True), strict_causal=True)
    assert model.strict_causal and model.config["causal"] and model.config["strict_causal"]


def test_mismatch_lists_missing_unexpected_and_misshapen_keys():
    state = authors_state_dict()
    del state["up.1.conv1d_fusion.bias"]
    state["up.1.extra.weight"] = torch.zeros(3)
    state["decoder.bias"] = torch.zeros(3)
    with pytest.raises(KeyError) as info:
        load_original_state_dict(SepMamba(**CONFIGS["S"]), state)
    message = str(info.value)
    assert "missing keys: up.1.conv1d_fusion.bias" in message
    assert "unexpected keys: up.1.extra.weight" in message
    assert "decoder.bias: (3,) vs (2,)" in message


def test_not_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_original_checkpoint(tmp_path / "missing.pth")
    with pytest.raises(KeyError, match="no state dict in this checkpoint"):
        extract_state_dict({"epoch": 3, "optimizer_state_dict": {"lr": 1}})
    with pytest.raises(KeyError, match="not a SepMamba state dict"):
        infer_config({"encoder.weight": torch.zeros(1)})
    path = tmp_path / "pickled.pth"
    torch.save({"model_state_dict": authors_state_dict(), "config": Opaque()}, path)
    with pytest.raises(RuntimeError, match="trusted=True"):
        load_original_checkpoint(path)
    assert isinstance(load_original_checkpoint(path, trusted=True), SepMamba)


class Opaque:
    """An arbitrary object in a checkpoint (their config objects, say)."""
