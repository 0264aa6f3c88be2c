"""Write a SpeechBrain hub folder from a training run: ``hyperparams.yaml`` (the modules and a
``pretrainer``), one ``<module>.ckpt`` per module, ``custom_interface.py`` (a copy of this package's, for
SpeechBrain's ``foreign_class``), the model card and ``test_mixture.wav``."""

from __future__ import annotations

import copy
import json
import logging
import shutil
from importlib import resources
from importlib.metadata import version
from pathlib import Path

import torch

from sepmamba_sb.hub.card import model_card
from sepmamba_sb.hub.layout import CARD_FILE, HPARAMS_FILE, INTERFACE_FILE, TEST_MIXTURE
from sepmamba_sb.runs import load_training_run

logger = logging.getLogger(__name__)


def _module_yaml(name: str, module: torch.nn.Module, precision: str) -> str:
    """``name: !new:<class>`` with the module's recorded constructor arguments; in bf16 or int8, that
    module passed through :func:`sepmamba_sb.precision.to_precision` (so that the checkpoint's reduced
    weights load into it, and no float32 copy is ever read)."""
    if not hasattr(module, "config"):
        raise TypeError(f"module {name} ({type(module).__name__}) does not record its configuration; "
                        "only sepmamba_sb.lobes modules can be exported")
    cls = type(module)  # values as JSON, which YAML reads back as written (null, true, lists, strings)
    arguments = [f"{k}: {json.dumps(v)}" for k, v in module.config.items()]
    if precision == "fp32":
        return "\n".join([f"{name}: !new:{cls.__module__}.{cls.__name__}", *(f"    {a}" for a in arguments)])
    return "\n".join([f"{name}: !apply:sepmamba_sb.precision.to_precision",
                      f"    module: !new:{cls.__module__}.{cls.__name__}", *(f"        {a}" for a in arguments),
                      f"    precision: {precision}"])


def _hub_yaml(modules: dict, sample_rate: int, num_spks: int, chunk_seconds: float, overlap_seconds: float,
              precision: str) -> str:
    names = list(modules)
    parts = [
        f"# SepMamba separator exported by sepmamba_sb.hub.export (sepmamba_sb {version('sepmamba_sb')})",
        f"sample_rate: {sample_rate}",
        f"num_spks: {num_spks}",
        f"chunk_seconds: {chunk_seconds} # long files are separated in chunks of this length",
        f"overlap_seconds: {overlap_seconds}",
        "",
        *(_module_yaml(n, m, precision) + "\n" for n, m in modules.items()),
        "modules:",
        *(f"    {n}: !ref <{n}>" for n in names),
        "",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        *(f"        {n}: !ref <{n}>" for n in names),
    ]
    return "\n".join(parts) + "\n"


def export(source, out_dir: str | Path, test_mixture: str | Path | None = None, chunk_seconds: float = 30.0,
           overlap_seconds: float = 2.0, corpus: str | None = None, recipe: str | None = None,
           licence: str = "apache-2.0", precision: str = "fp32") -> Path:
    """Write a hub folder from a training run (:func:`check` it before sharing).

    Parameters
    ----------
    source : Path or speechbrain.core.Brain
        A run's output folder (with ``hyperparams.yaml`` and ``save/CKPT+*``: the checkpoint with the
        best validation SI-SNR is loaded), or a Brain holding trained ``modules`` and ``hparams``.
    out_dir : str or Path
        Created; existing files are replaced.
    test_mixture : str or Path, optional
        Copied as ``test_mixture.wav`` (default: the first mixture of the run's test CSV).
    chunk_seconds, overlap_seconds : float
        Written to the yaml for long-file separation.
    corpus, recipe : str, optional
        What the model card names as the training data and recipe (default: the yaml's ``corpus`` and
        ``recipe``; without a ``corpus``, "own data").
    licence : str
        The weights' licence, as a hub ``license`` identifier.
    precision : {"fp32", "bf16", "int8"}
        Store the weights converted by :func:`sepmamba_sb.precision.to_precision` (int8: a quarter of
        the projections' bytes); the folder then loads in that precision, without float32 weights.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from speechbrain.dataio.dataio import load_data_csv

    from sepmamba_sb.precision import check_precision, to_precision

    check_precision(precision)
    if isinstance(source, (str, Path)):
        run = Path(source)
        hparams = load_training_run(run)
        modules = dict(hparams["modules"])
    else:
        hparams, modules = vars(source.hparams), dict(source.modules)
        run = Path(hparams["output_folder"]) if hparams.get("output_folder") else None
    hparams = dict(hparams)  # a copy: a Brain's hparams stay as they are
    if corpus is not None:
        hparams["corpus"] = corpus
    if recipe is not None:
        hparams["recipe"] = recipe
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        converted = module if precision == "fp32" else to_precision(copy.deepcopy(module), precision)
        torch.save(converted.state_dict(), out / f"{name}.ckpt")
    sample_rate, num_spks = hparams["sample_rate"], hparams["num_spks"]
    (out / HPARAMS_FILE).write_text(_hub_yaml(modules, sample_rate, num_spks, chunk_seconds, overlap_seconds,
                                              precision))
    (out / INTERFACE_FILE).write_bytes((resources.files("sepmamba_sb.hub") / INTERFACE_FILE).read_bytes())
    if test_mixture is None and hparams.get("test_data"):
        rows = load_data_csv(hparams["test_data"], replacements={"data_root": hparams["data_folder"]})
        test_mixture = next(iter(rows.values()))["mix_wav"] if rows else None
    if test_mixture is not None:
        shutil.copy(test_mixture, out / TEST_MIXTURE)
    else:
        logger.warning("no test mixture for %s: pass test_mixture=, or the hub check fails", out)
    (out / CARD_FILE).write_text(model_card(modules, hparams, run, licence, precision))
    logger.info("exported %s to %s", ", ".join(modules), out)
    return out
