"""The paper's four SepMamba configurations and their 16 kHz counterparts, read from ``configs/<name>.yaml``
beside this module.

Those files are the one place the configurations are written: ``CONFIGS`` here, the WSJ0Mix recipe's
hparams (``model_config: !include:...``) and the benchmark registry all read them. Each holds
:class:`sepmamba_sb.lobes.SepMamba` constructor arguments, e.g. ``SepMamba(**CONFIGS["M"])``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from types import MappingProxyType

from hyperpyyaml import load_hyperpyyaml

CONFIG_FOLDER = Path(__file__).with_name("configs")
PAPER = ("S", "M", "S-causal", "M-causal")  # the paper's, all at 8 kHz
# ours for 16 kHz: level 0's conv twice as long with twice the stride, every level's frame rate the 8 kHz model's
NAMES = PAPER + tuple(f"{name}-16k" for name in PAPER)


def _load(name: str) -> dict:
    with open(CONFIG_FOLDER / f"{name}.yaml", encoding="utf-8") as f:
        return dict(load_hyperpyyaml(f))


CONFIGS = MappingProxyType({name: _load(name) for name in NAMES})


def config_for(name: str, sample_rate: int, changes: dict | None = None) -> dict:
    """The configuration ``name`` (``S``, ``M``, ``S-causal``, ``M-causal``) for ``sample_rate``: the paper's at
    8 kHz, ``<name>-16k`` at 16 kHz, with ``changes`` applied (a recipe's ``--model_changes "{dim: 32}"``).

    Example
    -------
    >>> config_for("S", 16000, {"dim": 32})["kernel_sizes"], config_for("S", 16000, {"dim": 32})["dim"]
    ([32, 16, 16], 32)

    Raises
    ------
    ValueError
        For another name or rate, naming those there are.
    """
    if name not in PAPER:
        raise ValueError(f"model_name must be one of {PAPER}, got {name!r}")
    rates = {8000: name, 16000: f"{name}-16k"}
    if sample_rate not in rates:
        raise ValueError(f"SepMamba's configurations are for 8000 and 16000 Hz, got sample_rate {sample_rate}: "
                         "resample the data, or give a model_config of your own")
    unknown = sorted(set(changes or {}) - set(CONFIGS[name]))
    if unknown:
        raise ValueError(f"model_changes: {unknown} are not configuration settings ({sorted(CONFIGS[name])})")
    return copy.deepcopy({**CONFIGS[rates[sample_rate]], **(changes or {})})  # callers may change its lists
