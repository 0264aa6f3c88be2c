"""The model card (``README.md``) of an exported hub folder: what a reader needs to use, trust and cite
the model, with hub front matter and no local paths."""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from sepmamba_sb.hub.layout import INTERFACE_CLASS, INTERFACE_FILE, TEST_MIXTURE
from sepmamba_sb.lobes import as_separator, model_form
from sepmamba_sb.metrics import LABELS, METRICS
from sepmamba_sb.runs import LOG_FILE, RESULTS_FILE, mean_test_scores, total_minutes, training_conditions, training_log

# the recipe settings a model card lists (those the run's yaml has)
CARD_SETTINGS = ("model_config", "strict_causal", "batch_size", "lr", "weight_decay", "N_epochs",
                 "training_signal_len", "dynamic_mixing", "dm_style", "dm_num_mixtures", "dm_speed_factors",
                 "dm_speaker_weights", "dm_overlap", "dm_overlap_probability", "dm_single_speaker",
                 "dm_rooms_probability", "dm_noise_probability", "use_speedperturb", "precision", "seed")


def install_line() -> str:
    """The pip line that installs the code an exported folder needs (this sepmamba_sb or newer)."""
    return f'pip install "sepmamba_sb>={version("sepmamba_sb")}"'


def _setting(value) -> str:
    if callable(value) and hasattr(value, "func"):  # a !name: partial, e.g. the optimizer
        return value.func.__name__
    try:
        return json.dumps(value)
    except TypeError:
        return type(value).__name__


def _budget(hparams: dict, run: Path) -> list[str]:
    """The training budget, from the run's epoch log and its dynamic-mixing settings."""
    log = training_log(run) if (run / LOG_FILE).is_file() else []
    if not log:
        return ["No training log was found beside the checkpoint."]
    text = f"{len(log)} epochs"
    if hparams.get("dynamic_mixing") and hparams.get("dm_num_mixtures") and hparams.get("training_signal_len"):
        seconds = hparams["training_signal_len"] / hparams["sample_rate"]
        hours = len(log) * hparams["dm_num_mixtures"] * seconds / 3600
        audio = f"{hours:.1f} hours" if hours >= 1 else f"{60 * hours:.0f} minutes"
        text += f" of {hparams['dm_num_mixtures']} dynamic mixtures cropped to {seconds:g} s ({audio} of audio)"
    text += f", {total_minutes(log):.0f} minutes of training and validation"
    best = max(log, key=lambda r: r["valid"])
    return [text + ".", f"Best validation SI-SNR: {best['valid']:.2f} dB, at epoch {best['epoch']}."]


def _latency(modules: dict, num_spks: int, sample_rate: int) -> str:
    try:
        delay = as_separator(modules, num_spks).make_streaming_context(1).delay
    except (AttributeError, ValueError):
        return ("Offline: it looks at the whole recording (long files in chunks of `chunk_seconds`), so it "
                "cannot separate a live stream.")
    return (f"Streams live: a look-ahead of {delay} samples ({1000 * delay / sample_rate:.1f} ms); fed 32 ms "
            f"chunks, each source sample comes out {32 + 1000 * delay / sample_rate:.1f} ms after it was "
            "recorded, plus compute time (`model.separate_chunk`, `sepmamba-separate --stream`).")


def model_card(modules: dict, hparams: dict, run: Path | None, licence: str, precision: str = "fp32") -> str:
    """The card's markdown.

    Parameters
    ----------
    modules : dict
        The exported modules (either model form).
    hparams : dict
        The run's hparams (``sample_rate``, ``num_spks``, ``corpus``, ``recipe``, the settings it lists).
    run : Path or None
        The run folder, for the training log and the test results (None: not recorded).
    licence : str
        The weights' licence, as a hub ``license`` identifier.
    precision : str
        The stored weights' precision (:mod:`sepmamba_sb.precision`); the test scores are the float32 model's.
    """
    sample_rate, num_spks = hparams["sample_rate"], hparams["num_spks"]
    corpus, recipe = hparams.get("corpus") or "own data", hparams.get("recipe")
    params = sum(p.numel() for m in modules.values() for p in m.parameters())
    masking = model_form(modules) == "masking"
    form = "in SpeechBrain's masking form (encoder, masknet, decoder)" if masking else \
        "in the paper's direct form (waveforms out)"
    metrics = mean_test_scores(run) if run is not None else None
    lines = [
        "---",
        "library_name: speechbrain",
        "pipeline_tag: audio-to-audio",
        f"license: {licence}",
        "tags:", "- audio-source-separation", "- speech-separation", "- sepmamba", "- mamba", "- speechbrain",
        *(["datasets:", f"- {corpus}"] if corpus != "own data" else []),
        *(["metrics:", "- SI-SNRi", "- SDRi"] if metrics else []),
        "---",
        "",
        f"# SepMamba speech separator ({corpus}, {num_spks} speakers, {sample_rate // 1000} kHz)",
        "",
        f"SepMamba ([arXiv 2410.20997](https://arxiv.org/abs/2410.20997)) {form}: {params:,} parameters, "
        f"separates {num_spks} speakers at {sample_rate} Hz.",
        *([] if precision == "fp32" else [
            "", f"Weights stored for {precision} CPU inference (sepmamba_sb.precision.to_precision); the scores "
            "below are the float32 model's."]),
        "",
        "## Install",
        "",
        "```bash",
        install_line() + "   # the model's code; it brings SpeechBrain 1.1",
        "```",
        "",
        "## Usage",
        "",
        "```python",
        "from speechbrain.inference.interfaces import foreign_class",
        f'model = foreign_class(source="<hub id or folder>", pymodule_file="{INTERFACE_FILE}",',
        f'                      classname="{INTERFACE_CLASS}", savedir="pretrained")',
        f'sources = model.separate_file("{TEST_MIXTURE}")   # [1, T, S], each source at its level in the mixture',
        "```",
        "",
        f"`from sepmamba_sb.inference import {INTERFACE_CLASS}` and `{INTERFACE_CLASS}.from_hparams(source=...)` "
        "load it the same way, and `sepmamba-separate <hub id or folder> mixture.wav --out separated/` separates "
        "files from the shell.",
    ]
    if masking:
        lines += ["SpeechBrain's `speechbrain.inference.separation.SepformerSeparation.from_hparams` loads it too."]
    lines += [
        "",
        "## What it separates",
        "",
        training_conditions({**hparams, "modules": modules}),
        "",
        _latency(modules, num_spks, sample_rate),
        "",
        "## Training",
        "",
        f"- Data: {corpus}" + (" (not a public corpus)." if corpus == "own data" else "."),
        f"- Recipe: `{recipe}` of sepmamba_sb (`python train.py <that yaml>`)." if recipe else
        "- Recipe: not recorded.",
        "- Budget: " + " ".join(_budget(hparams, run) if run is not None else ["not recorded."]),
        "- Settings:",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| `{k}` | `{_setting(hparams[k])}` |" for k in CARD_SETTINGS if k in hparams),
        *([f"| `optimizer` | `{_setting(hparams['optimizer'])}` |"] if "optimizer" in hparams else []),
        "",
        f"## Results on {corpus}'s test set",
        "",
    ]
    if metrics:
        lines += ["| " + " | ".join(LABELS[k] for k in METRICS) + " |", "|" + "---|" * len(METRICS),
                  "| " + " | ".join(f"{metrics[k]:.2f}" for k in METRICS) + " |",
                  "", f"Means over the recipe's `{RESULTS_FILE}` (full-length test mixtures, dB)."]
    else:
        lines.append("No test results were found beside the checkpoint.")
    lines += [
        "",
        "## Architecture",
        "",
        *(f"- `{n}`: `{type(m).__name__}({', '.join(f'{k}={v!r}' for k, v in m.config.items())})`"
          for n, m in modules.items()),
        "",
        "## Licence",
        "",
        f"The weights and this card: `{licence}`. The code, sepmamba_sb: Apache-2.0. The training data keeps "
        "its own terms; check that they allow sharing a model trained on it.",
        "",
        "## Citation",
        "",
        "SepMamba: State-space models for speaker separation using Mamba, arXiv 2410.20997.",
    ]
    return "\n".join(lines) + "\n"


