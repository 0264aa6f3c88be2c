"""The separators the benchmarks compare: ``benchmarks/separators/<name>.yaml``, the one registry.

Each file is HyperPyYAML with a recipe's ``modules`` (the paper's ``sepmamba``, or an ``encoder`` /
``masknet`` / ``decoder`` triple) plus ``num_spks``, ``sample_rate``, ``table_order`` and the seed
paper's figures (``paper_params``, ``paper_gmac_per_s``). SepMamba's entries read the package's
configurations (``sepmamba_sb/lobes/configs``); SpeechBrain's are the model sections of its WSJ0Mix
recipes. ``efficiency.py``, ``model_configs.py`` and ``profile_ops.py`` all take their models from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from ruamel.yaml import YAML

FOLDER = Path(__file__).resolve().parent / "separators"


@dataclass(frozen=True)
class Entry:
    """A registered separator's facts, read without building it."""

    name: str
    path: Path
    order: int
    num_spks: int
    sample_rate: int
    paper_params: int | None
    paper_gmac_per_s: float | None


def entries() -> dict[str, Entry]:
    """Every registered separator, in table order."""
    found = []
    for path in FOLDER.glob("*.yaml"):
        with open(path, encoding="utf-8") as f:
            data = YAML(typ="rt").load(f)  # keeps the !new: tags unbuilt
        found.append(Entry(path.stem, path, int(data["table_order"]), int(data["num_spks"]),
                           int(data["sample_rate"]), data["paper_params"], data["paper_gmac_per_s"]))
    return {e.name: e for e in sorted(found, key=lambda e: (e.order, e.name))}


def build(name: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, Entry]:
    """The separator ``name`` as one module ([B, T] -> [B, T, S]) on ``device``, and its entry.

    Raises
    ------
    KeyError
        For a name that is not registered, listing those that are.
    """
    from hyperpyyaml import load_hyperpyyaml

    from sepmamba_sb.lobes import as_separator

    registry = entries()
    if name not in registry:
        raise KeyError(f"no separator {name!r} in {FOLDER}; choose from {', '.join(registry)}")
    entry = registry[name]
    with open(entry.path, encoding="utf-8") as f:  # from the file: its !include paths are relative to it
        hparams = load_hyperpyyaml(f)
    return as_separator(hparams["modules"], entry.num_spks).to(device), entry


def rates(names) -> str:
    """The sample rates of the separators ``names``, for table headers: ``"8 kHz"``, ``"8/16 kHz"``."""
    registry = entries()
    return "/".join(sorted({f"{registry[n].sample_rate / 1000:g}" for n in names}, key=float)) + " kHz"
