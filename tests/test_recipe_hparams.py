"""Every hparams file of the recipes loads, builds its model, and uses every top-level key."""

import re

import pytest
from conftest import REPO, WSJ0MIX
from hyperpyyaml import load_hyperpyyaml

HPARAMS = sorted((WSJ0MIX / "separation" / "hparams").glob("*.yaml")) + sorted(
    (WSJ0MIX.parent / "MiniMix" / "hparams").glob("*.yaml")) + sorted(
    (WSJ0MIX.parent / "WHAMandWHAMR" / "separation" / "hparams").glob("*.yaml")) + sorted(
    (WSJ0MIX.parent / "LibriMix" / "separation" / "hparams").glob("*.yaml"))
TRAIN_PY = (WSJ0MIX / "separation" / "train.py").read_text()
RUN_OPTIONS = {"precision", "noprogressbar"}  # read by speechbrain.core.Brain from the hparams
CARD_KEYS = {"corpus", "recipe"}  # read by sepmamba_sb.hub.export for the model card


@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.name)
def test_every_key_is_used(path):
    text = path.read_text()
    keys = re.findall(r"^([A-Za-z_][\w]*):", text, re.M)
    unused = [
        k for k in keys
        if not k.startswith("__") and k not in RUN_OPTIONS | CARD_KEYS and f"<{k}>" not in text and f"<{k}[" not in text
        and f'"{k}"' not in TRAIN_PY and f".{k}" not in TRAIN_PY
    ]
    assert not unused, f"{path.name}: keys nothing reads: {unused}"


def test_the_card_keys_are_read_by_export_and_name_their_own_file():
    hub = (REPO / "sepmamba_sb" / "hub" / "card.py").read_text()
    assert all(f'"{k}"' in hub for k in CARD_KEYS)
    for path in HPARAMS:
        if path.name.startswith("sepmamba"):  # the models hub.export writes
            text = path.read_text()
            assert re.search(r'^corpus: "[^"]+"', text, re.M), path.name
            assert re.search(r"^recipe: (\S+)", text, re.M).group(1) == path.relative_to(REPO).as_posix()


@pytest.mark.parametrize("path", HPARAMS, ids=lambda p: p.name)
def test_loads_with_a_header_box_and_a_data_folder_placeholder(path):
    text = path.read_text()
    assert text.startswith("# ####") and "# Model:" in text and "# Dataset:" in text
    assert re.search(r"^data_folder: !PLACEHOLDER", text, re.M)
    with open(path, encoding="utf-8") as f:  # from the file: its !include paths are relative to it
        hparams = load_hyperpyyaml(f, {"data_folder": "/data/wsj0-mix/2speakers"})
    if hparams.get("dataset") is not None:  # WHAM!/WHAMR!/LibriMix: the task names folders that dataset has
        from sepmamba_sb.data.wsjmix import folders_for

        folders_for(hparams["dataset"], hparams["task"], hparams.get("dereverberate", True), hparams["num_spks"])
    assert set(hparams["modules"]) in ({"sepmamba"}, {"encoder", "masknet", "decoder"})
    assert hparams["optimizer"].func.__name__ == "AdamW"


# the paper's configurations, in the package's files, give the paper's parameter counts
PAPER_PARAMS = {"sepmamba.yaml": 7_253_826, "sepmamba-M.yaml": 22_249_090, "sepmamba-causal.yaml": 7_253_826,
                "sepmamba-causal-strict.yaml": 7_253_826}


@pytest.mark.parametrize("name, lookahead", [("sepmamba-causal.yaml", 105), ("sepmamba-causal-strict.yaml", 0)])
def test_causal_recipes_stream_with_their_lookahead(name, lookahead):
    with open(WSJ0MIX / "separation" / "hparams" / name, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": "-", "model_config": {"dim": 8, "num_blocks": 1}})
    assert hparams["sepmamba"].make_streaming_context(1).delay == lookahead


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS))
def test_recipes_read_the_packages_model_configurations(name):
    from sepmamba_sb.lobes import CONFIGS

    path = WSJ0MIX / "separation" / "hparams" / name
    with open(path, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, {"data_folder": "-"})
    assert hparams["model_config"] in CONFIGS.values()
    assert sum(p.numel() for p in hparams["sepmamba"].parameters()) == PAPER_PARAMS[name]
    with open(path, encoding="utf-8") as f:  # one setting overridden, as on the command line
        small = load_hyperpyyaml(f, {"data_folder": "-", "model_config": {"dim": 8, "num_blocks": 1}})
    assert {k: small["model_config"][k] for k in ("dim", "num_blocks")} == {"dim": 8, "num_blocks": 1}
    assert small["sepmamba"].config["dim"] == 8 and small["sepmamba"].config["kernel_sizes"] == [16, 16, 16]


MINIMIX_HPARAMS = WSJ0MIX.parent / "MiniMix" / "hparams"
COMPARED = ("sepformer-minimix.yaml", "convtasnet-minimix.yaml", "dprnn-minimix.yaml")


def without_model(text: str) -> str:
    """A MiniMix yaml without its header box, model section, experiment name and model card keys."""
    body = text[text.index("seed: "):]
    body = body[:body.index("# Model:")] + body[body.index("modules:\n"):]
    return re.sub(r"^(experiment_name|corpus|recipe): .*\n", "", body, flags=re.M)


@pytest.mark.parametrize("name", COMPARED)
def test_compared_separators_share_the_demo_recipe_but_the_model(name):
    """benchmarks/quality.py's fairness: same data, mixing, budget, seed and optimiser as the demo model,
    and about its number of parameters (within 10 %)."""
    demo_text = (MINIMIX_HPARAMS / "sepmamba-minimix.yaml").read_text()
    text = (MINIMIX_HPARAMS / name).read_text()
    assert without_model(text) == without_model(demo_text)
    sizes = []
    for yaml in ("sepmamba-minimix.yaml", name):
        with open(MINIMIX_HPARAMS / yaml, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, {"data_folder": "-"})
        sizes.append(sum(p.numel() for m in hparams["modules"].values() for p in m.parameters()))
    assert abs(sizes[1] / sizes[0] - 1) <= 0.10, sizes


LIBRIMIX_HPARAMS = WSJ0MIX.parent / "LibriMix" / "separation" / "hparams"


@pytest.mark.parametrize("name, num_spks", [("sepmamba-libri2mix.yaml", 2), ("sepmamba-libri3mix.yaml", 3)])
def test_librimix_yamls_follow_the_sample_rate_and_the_task(name, num_spks):
    """One yaml for 8 and 16 kHz: the rate picks the paper's S or S-16k (its parameters, 4 s crops, the
    wav8k or wav16k noise) and SpeechBrain's CSV names; the noise of the dynamic mixtures is there for the
    noisy task only; --model_changes changes one setting and keeps the rate's others."""
    from sepmamba_sb.lobes import CONFIGS, SepMamba

    for rate, config in ((8000, "S"), (16000, "S-16k")):
        for task in ("clean", "noisy"):
            with open(LIBRIMIX_HPARAMS / name, encoding="utf-8") as f:
                hparams = load_hyperpyyaml(f, {"data_folder": "/data/LibriMix", "sample_rate": rate, "task": task})
            assert hparams["model_config"] == CONFIGS[config] and hparams["num_spks"] == num_spks
            params = sum(p.numel() for p in hparams["sepmamba"].parameters())
            assert params == sum(p.numel() for p in SepMamba(**CONFIGS[config], num_spks=num_spks).parameters())
            assert hparams["training_signal_len"] == 4 * rate
            assert hparams["train_data"].endswith(f"/libri{num_spks}mix_train-360.csv")
            assert hparams["test_data"].endswith(f"/libri{num_spks}mix_test.csv")
            noise = hparams["dm_noise"]
            if task == "clean":
                assert noise is None
            else:
                assert noise.keywords["folder"].as_posix() == f"/data/LibriMix/wav{rate // 1000}k/min/train-360/noise"
    with open(LIBRIMIX_HPARAMS / name, encoding="utf-8") as f:
        small = load_hyperpyyaml(f, {"data_folder": "-", "sample_rate": 16000, "model_changes": {"dim": 8}})
    assert small["sepmamba"].config["dim"] == 8 and small["sepmamba"].config["strides"] == [4, 2, 2]
    with open(LIBRIMIX_HPARAMS / name, encoding="utf-8") as f, \
            pytest.raises(ValueError, match="configurations are for 8000 and 16000 Hz, got sample_rate 44100"):
        load_hyperpyyaml(f, {"data_folder": "-", "sample_rate": 44100})
    with open(LIBRIMIX_HPARAMS / name, encoding="utf-8") as f, \
            pytest.raises(ValueError, match=r"model_changes: \['dims'\] are not configuration settings"):
        load_hyperpyyaml(f, {"data_folder": "-", "model_changes": {"dims": 8}})


NOISE_DECLARED = [p for p in HPARAMS if "\ndataset: " in p.read_text() and "dm_noise_source" in p.read_text()]


@pytest.mark.parametrize("path", NOISE_DECLARED, ids=lambda p: p.name)
def test_dynamic_mixtures_hold_noise_for_the_noisy_tasks_only(path):
    """A yaml that declares noise adds it to the dynamic mixtures of its noisy tasks only: with a noise-free
    task they are as clean as its cv and tt mixtures."""
    from sepmamba_sb.data.wsjmix import is_noisy

    tasks = {"wham": ("clean", "noisy"), "whamr": ("clean", "noisy", "reverberant", "noisy-reverberant"),
             "librimix": ("clean", "noisy")}
    dataset = re.search(r"^dataset: (\w+)", path.read_text(), re.M).group(1)
    for task in tasks[dataset]:
        with open(path, encoding="utf-8") as f:
            hparams = load_hyperpyyaml(f, {"data_folder": "/data", "task": task})
        assert (hparams["dm_noise"] is not None) == is_noisy(task), task
