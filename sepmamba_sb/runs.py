"""Read a recipe's training run folder: its checkpointed model, training log, test results and conditions.

A run folder is what ``train.py hparams/<name>.yaml`` writes to ``output_folder``: ``hyperparams.yaml``
(the yaml with its overrides), ``save/CKPT+*``, ``train_log.txt`` and ``test_results.csv``.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path


def mean_test_scores(run: str | Path) -> dict | None:
    """The means (the ``avg`` row) of a recipe run's ``test_results.csv``: metric -> dB; None without one."""
    path = Path(run) / "test_results.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            if row["snt_id"] == "avg":
                return {k: float(v) for k, v in row.items() if k != "snt_id"}
    return None


def training_log(run: str | Path) -> list[dict]:
    """A recipe run's ``train_log.txt``, one dict per epoch: ``epoch``, ``minutes`` (since training
    started in the process that ran the epoch; None in logs written before it was recorded),
    ``train`` and ``valid`` (SI-SNR, dB).

    Raises
    ------
    FileNotFoundError
        When the run has no ``train_log.txt``.
    """
    path = Path(run) / "train_log.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no train_log.txt")
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        epoch = re.match(r"epoch: (\d+),", line)
        train, valid = re.search(r"train si-snr: ([^,\s]+)", line), re.search(r"valid si-snr: ([^,\s]+)", line)
        if epoch and train and valid:
            minutes = re.search(r"minutes: ([^\s,]+)", line)
            rows.append({"epoch": int(epoch.group(1)), "minutes": float(minutes.group(1)) if minutes else None,
                         "train": float(train.group(1)), "valid": float(valid.group(1))})
    return rows


def load_training_run(run: str | Path) -> dict:
    """A recipe run's hparams with the checkpoint of best validation SI-SNR loaded into its modules
    (what ``train.py`` tests).

    Raises
    ------
    FileNotFoundError
        When ``run`` has no ``hyperparams.yaml`` or no checkpoint.
    """
    from hyperpyyaml import load_hyperpyyaml

    path = Path(run) / "hyperparams.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a training run folder: {path} is missing")
    with open(path, encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    if hparams["checkpointer"].recover_if_possible(max_key="si-snr") is None:
        raise FileNotFoundError(f"no checkpoint in {hparams['save_folder']}")
    return hparams


def training_conditions(hparams) -> str:
    """One sentence on what a run's model was trained to separate: clean, noisy or reverberant mixtures,
    which targets, the rooms and noise of its dynamic mixtures, and whether the model is causal (a recipe's
    hparams, or a Brain's: with ``modules``, the model's own configuration says whether it is causal)."""
    dataset, task = hparams.get("dataset", "wsj0mix"), hparams.get("task", "clean")
    reverberant = task in ("reverberant", "noisy-reverberant")
    kind = {"clean": "clean, anechoic", "noisy": "noisy, anechoic", "reverberant": "reverberant, noise-free",
            "noisy-reverberant": "noisy and reverberant"}[task]
    text = f"Conditions: {kind} mixtures ({dataset}, task `{task}`)"
    if reverberant:
        text += ("; targets: the direct path (it separates and dereverberates)" if hparams.get("dereverberate", True)
                 else "; targets: the reverberant sources (it separates, keeping the reverberation)")
    extras = []
    rooms, noise = hparams.get("dm_rooms"), hparams.get("dm_noise")
    if hparams.get("dynamic_mixing") and rooms:
        settings = getattr(rooms, "keywords", {})
        extras.append(f"simulated rooms (RT60 {settings.get('rt60', 'default range')} s, target "
                      f"{settings.get('target', 'direct')})")
    if hparams.get("dynamic_mixing") and noise:
        extras.append(f"noise at {getattr(noise, 'keywords', {}).get('snr', 'the default')} dB SNR")
    if extras:
        text += "; dynamic mixtures with " + " and ".join(extras)
    # causality: the model's own configuration where the hparams hold its modules, else the yaml's
    model = next((m for n, m in (hparams.get("modules") or {}).items() if n in ("sepmamba", "masknet")), None)
    config = model.config if model is not None else {**hparams.get("model_config", {}),
                                                      "strict_causal": hparams.get("strict_causal")}
    if not config.get("causal"):
        return text + ". Non-causal model."
    return text + (". Strictly causal model (no look-ahead)." if config.get("strict_causal") else
                   ". Causal model (its unpadded convs look a few ms ahead).")
