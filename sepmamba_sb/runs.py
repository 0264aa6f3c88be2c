"""A recipe's training run folder: its files, its epoch log, its checkpointed model, its test results
and the conditions it was trained for.

A run folder is what ``train.py hparams/<name>.yaml`` writes to ``output_folder``: ``hyperparams.yaml``
(the yaml with its overrides), ``save/CKPT+*``, SpeechBrain's ``train_log.txt`` (text for people),
``train_log.jsonl`` (one JSON object per epoch, :func:`log_epoch`; what :func:`training_log` reads) and
``test_results.csv`` (:mod:`sepmamba_sb.metrics`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from sepmamba_sb.data.wsjmix import is_reverberant
from sepmamba_sb.metrics import read_means

HPARAMS_FILE = "hyperparams.yaml"
LOG_FILE = "train_log.jsonl"
RESULTS_FILE = "test_results.csv"


def log_epoch(run: str | Path, epoch: int, minutes: float, lr: float, train: float, valid: float, **extra) -> None:
    """Append one epoch's record to the run's ``train_log.jsonl``.

    Parameters
    ----------
    run : str or Path
        The run folder.
    epoch : int
        The epoch just validated.
    minutes : float
        Training and validation time so far, in the process that ran the epoch (a resumed run counts
        from 0 again).
    lr : float
        The learning rate the epoch trained with.
    train, valid : float
        SI-SNR (dB) of the epoch's training batches and of the validation set.
    **extra
        More numbers to keep (e.g. ``skipped_batches``).
    """
    record = {"epoch": int(epoch), "minutes": float(minutes), "lr": float(lr), "train": float(train),
              "valid": float(valid), **extra}
    with open(Path(run) / LOG_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def training_log(run: str | Path) -> list[dict]:
    """A recipe run's epochs, in order, as :func:`log_epoch` wrote them: ``epoch``, ``minutes``, ``lr``,
    ``train`` and ``valid`` (SI-SNR, dB), and any extra numbers. An epoch run again after a resume
    replaces the earlier record of it.

    Raises
    ------
    FileNotFoundError
        When the run has no ``train_log.jsonl``.
    ValueError
        Naming the file and line of a record that is not a JSON object with an epoch.
    """
    path = Path(run) / LOG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run} has no {LOG_FILE} (runs of sepmamba_sb's train.py write it)")
    epochs = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            epochs[int(record["epoch"])] = record
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an epoch record ({exc})") from None
    return [epochs[e] for e in sorted(epochs)]


def total_minutes(log: list[dict]) -> float:
    """Minutes of training and validation over every process of a run: each process's clock starts at 0,
    so its last record counts."""
    minutes = [r["minutes"] for r in log if math.isfinite(r.get("minutes", math.nan))]
    return sum(a for a, b in zip(minutes, minutes[1:] + [0.0], strict=True) if b <= a)


def mean_test_scores(run: str | Path) -> dict | None:
    """The means of a recipe run's ``test_results.csv``: metric -> dB; None without one."""
    return read_means(Path(run) / RESULTS_FILE)


def load_training_run(run: str | Path) -> dict:
    """A recipe run's hparams with the checkpoint of best validation SI-SNR loaded into its modules
    (what ``train.py`` tests).

    Raises
    ------
    FileNotFoundError
        When ``run`` has no ``hyperparams.yaml`` or no checkpoint.
    """
    from hyperpyyaml import load_hyperpyyaml

    path = Path(run) / HPARAMS_FILE
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
    reverberant = is_reverberant(dataset, task)
    kind = {"clean": "clean, anechoic", "noisy": "noisy, anechoic", "reverberant": "reverberant, noise-free",
            "noisy-reverberant": "noisy and reverberant",
            "enhancement": "one speaker's noisy" + (" and reverberant" if dataset == "whamr" else "")}[task]
    text = f"Conditions: {kind} mixtures ({dataset}, task `{task}`)"
    if reverberant:
        text += ("; targets: the direct path (it separates and dereverberates)" if hparams.get("dereverberate", True)
                 else "; targets: the reverberant sources (it separates, keeping the reverberation)")
    extras = []
    rooms, noise = hparams.get("dm_rooms"), hparams.get("dm_noise")
    if hparams.get("dynamic_mixing") and rooms:
        settings = getattr(rooms, "keywords", {})
        if settings.get("reverb_params"):
            kind = "WHAMR!'s official training rooms replayed"
        elif settings.get("convention", "whamr") == "whamr":
            kind = f"simulated rooms as WHAMR!'s (nominal RT60 {settings.get('rt60') or 'in its three ranges'} s"
        else:
            kind = f"simulated rooms (measured RT60 {settings.get('rt60') or '0.1-1.0'} s"
        extras.append(f"{kind}{', ' if '(' in kind else ' ('}target {settings.get('target', 'direct')})")
    if hparams.get("dynamic_mixing") and noise:
        extras.append(f"noise at {getattr(noise, 'keywords', {}).get('snr', 'the default')} dB SNR (BS.1770 "
                      "loudness)")
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
