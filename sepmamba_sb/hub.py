"""SpeechBrain hub folders: write one from a training run, check it as a new user would load it, upload it.

    python -m sepmamba_sb.hub export RUN_FOLDER OUT_FOLDER      # from a recipe's output folder
    python -m sepmamba_sb.hub check FOLDER                      # exit 0: ready to share
    python -m sepmamba_sb.hub push FOLDER --repo USER/NAME      # check, then upload to huggingface.co

A folder holds ``hyperparams.yaml`` (the modules and a ``pretrainer``), one ``<module>.ckpt`` per
module, ``custom_interface.py`` (for SpeechBrain's ``foreign_class``), the model card ``README.md``
and ``test_mixture.wav``. It loads three ways: ``foreign_class(source, pymodule_file=
"custom_interface.py", classname="SepMambaSeparation")``, ``SepMambaSeparation.from_hparams``, and,
for the masking form, SpeechBrain's own ``SepformerSeparation.from_hparams``.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch

from sepmamba_sb.lobes import as_separator, model_form
from sepmamba_sb.runs import load_training_run, mean_test_scores, training_conditions, training_log

logger = logging.getLogger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
INTERFACE_FILE = "custom_interface.py"
INTERFACE_CLASS = "SepMambaSeparation"
CARD_FILE = "README.md"
TEST_MIXTURE = "test_mixture.wav"
LARGE_BYTES = 1 << 20  # a file the model does not need fails the check above this size
# the recipe settings a model card lists (those the run's yaml has)
CARD_SETTINGS = ("model_config", "strict_causal", "batch_size", "lr", "weight_decay", "N_epochs",
                 "training_signal_len", "dynamic_mixing", "dm_style", "dm_num_mixtures", "dm_speed_factors",
                 "use_speedperturb", "precision", "seed")
# local absolute paths: POSIX (not inside a URL or a relative path), home-relative, Windows drives
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+-]+(?:/[\w.@+-]*)*|~/[\w./@+-]*|[A-Za-z]:\\[^\s`'\"|),;]*)")


def install_line() -> str:
    """The pip line that installs the code an exported folder needs (this sepmamba_sb or newer)."""
    return f'pip install "sepmamba_sb>={version("sepmamba_sb")}"'


def _interface_file() -> str:
    return f'''"""SpeechBrain's entry point for this SepMamba model:

    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source="<hub id or folder>", pymodule_file="{INTERFACE_FILE}",
                          classname="{INTERFACE_CLASS}", savedir="pretrained")
    sources = model.separate_file("mixture.wav")   # [1, T, S]

The model's code is the sepmamba_sb package; this file only names its interface class.
"""

try:
    from sepmamba_sb.inference import {INTERFACE_CLASS}
except ImportError as exc:
    raise ImportError({("this SepMamba model needs the sepmamba_sb package: " + install_line())!r}) from exc

__all__ = ["{INTERFACE_CLASS}"]
'''


# ---- export -------------------------------------------------------------------------------------------

def _module_yaml(name: str, module: torch.nn.Module) -> str:
    """``name: !new:<class>`` with the module's recorded constructor arguments."""
    if not hasattr(module, "config"):
        raise TypeError(f"module {name} ({type(module).__name__}) does not record its configuration; "
                        "only sepmamba_sb.lobes modules can be exported")
    cls = type(module)  # values as JSON, which YAML reads back as written (null, true, lists, strings)
    return "\n".join([f"{name}: !new:{cls.__module__}.{cls.__name__}",
                      *(f"    {k}: {json.dumps(v)}" for k, v in module.config.items())])


def _hub_yaml(modules: dict, sample_rate: int, num_spks: int, chunk_seconds: float, overlap_seconds: float) -> str:
    names = list(modules)
    parts = [
        f"# SepMamba separator exported by sepmamba_sb.hub.export (sepmamba_sb {version('sepmamba_sb')})",
        f"sample_rate: {sample_rate}",
        f"num_spks: {num_spks}",
        f"chunk_seconds: {chunk_seconds} # long files are separated in chunks of this length",
        f"overlap_seconds: {overlap_seconds}",
        "",
        *(_module_yaml(n, m) + "\n" for n, m in modules.items()),
        "modules:",
        *(f"    {n}: !ref <{n}>" for n in names),
        "",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        *(f"        {n}: !ref <{n}>" for n in names),
    ]
    return "\n".join(parts) + "\n"


def _setting(value) -> str:
    if callable(value) and hasattr(value, "func"):  # a !name: partial, e.g. the optimizer
        return value.func.__name__
    try:
        return json.dumps(value)
    except TypeError:
        return type(value).__name__


def _budget(hparams: dict, run: Path) -> list[str]:
    """The training budget, from the run's train_log.txt and its dynamic-mixing settings."""
    log = training_log(run) if (run / "train_log.txt").is_file() else []
    if not log:
        return ["No training log was found beside the checkpoint."]
    # minutes restart from 0 in each process that resumed training: add up each process's last value
    minutes = [r["minutes"] for r in log if r["minutes"] is not None]
    total = sum(a for a, b in zip(minutes, minutes[1:] + [0.0], strict=True) if b <= a)
    text = f"{len(log)} epochs"
    if hparams.get("dynamic_mixing") and hparams.get("dm_num_mixtures") and hparams.get("training_signal_len"):
        seconds = hparams["training_signal_len"] / hparams["sample_rate"]
        hours = len(log) * hparams["dm_num_mixtures"] * seconds / 3600
        audio = f"{hours:.1f} hours" if hours >= 1 else f"{60 * hours:.0f} minutes"
        text += f" of {hparams['dm_num_mixtures']} dynamic mixtures cropped to {seconds:g} s ({audio} of audio)"
    if minutes:
        text += f", {total:.0f} minutes of training and validation"
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


def _model_card(modules: dict, hparams: dict, run: Path | None, licence: str) -> str:
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
        lines += ["| SI-SNR | SI-SNRi | SDR | SDRi | SI-SDR | SI-SDRi |", "|---|---|---|---|---|---|",
                  "| " + " | ".join(f"{metrics[k]:.2f}" for k in ("si-snr", "si-snr_i", "sdr", "sdr_i", "si-sdr",
                                                                   "si-sdr_i")) + " |",
                  "", "Means over the recipe's `test_results.csv` (full-length test mixtures, dB)."]
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


def export(source, out_dir: str | Path, test_mixture: str | Path | None = None, chunk_seconds: float = 30.0,
           overlap_seconds: float = 2.0, corpus: str | None = None, recipe: str | None = None,
           licence: str = "apache-2.0") -> Path:
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

    Returns
    -------
    Path
        ``out_dir``.
    """
    from speechbrain.dataio.dataio import load_data_csv

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
        torch.save(module.state_dict(), out / f"{name}.ckpt")
    sample_rate, num_spks = hparams["sample_rate"], hparams["num_spks"]
    (out / HPARAMS_FILE).write_text(_hub_yaml(modules, sample_rate, num_spks, chunk_seconds, overlap_seconds))
    (out / INTERFACE_FILE).write_text(_interface_file())
    if test_mixture is None and hparams.get("test_data"):
        rows = load_data_csv(hparams["test_data"], replacements={"data_root": hparams["data_folder"]})
        test_mixture = next(iter(rows.values()))["mix_wav"] if rows else None
    if test_mixture is not None:
        shutil.copy(test_mixture, out / TEST_MIXTURE)
    else:
        logger.warning("no test mixture for %s: pass test_mixture=, or the hub check fails", out)
    (out / CARD_FILE).write_text(_model_card(modules, hparams, run, licence))
    logger.info("exported %s to %s", ", ".join(modules), out)
    return out


# ---- check --------------------------------------------------------------------------------------------

@dataclass
class CheckResult:
    """What :func:`check` found: ``problems`` (empty when the folder is ready to share), ``passed``
    (what was verified) and ``files`` (the folder's files that :func:`push` uploads, relative paths)."""

    folder: Path
    problems: list[str] = field(default_factory=list)
    passed: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [f"hub check {self.folder}: " + ("ready to share" if self.ok else
                                                 f"{len(self.problems)} problem(s)")]
        lines += [f"  ok: {p}" for p in self.passed] + [f"  PROBLEM: {p}" for p in self.problems]
        return "\n".join(lines)


class HubCheckError(RuntimeError):
    """A folder failed :func:`check`; its message lists the problems."""

    def __init__(self, result: CheckResult):
        super().__init__(result.report())
        self.result = result


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:400]}"


def absolute_paths(text: str) -> list[str]:
    """The local absolute paths in ``text`` (``/home/...``, ``~/...``, ``C:\\...``), URLs excepted, as
    ``"line N: path"``."""
    return [f"line {n}: {m}" for n, line in enumerate(text.splitlines(), 1) for m in _ABSOLUTE_PATH.findall(line)]


def _check_hparams(folder: Path, result: CheckResult) -> tuple[dict | None, dict[str, str]]:
    """Load hyperparams.yaml; return it and the checkpoint file of each module the pretrainer loads."""
    from hyperpyyaml import load_hyperpyyaml
    from speechbrain.utils.parameter_transfer import Pretrainer

    path = folder / HPARAMS_FILE
    if not path.is_file():
        result.problems.append(f"{HPARAMS_FILE} is missing")
        return None, {}
    text = path.read_text(encoding="utf-8")
    local = absolute_paths(text)
    if local:
        result.problems.append(f"{HPARAMS_FILE} names local paths other machines do not have: {'; '.join(local)}")
    try:
        hparams = load_hyperpyyaml(text)
    except Exception as exc:  # YAML syntax, unknown classes, bad !ref: all mean the folder cannot load
        result.problems.append(f"{HPARAMS_FILE} does not load: {_one_line(exc)}")
        return None, {}
    missing = [k for k in ("sample_rate", "num_spks", "modules", "pretrainer") if k not in hparams]
    if missing:
        result.problems.append(f"{HPARAMS_FILE} has no {', '.join(missing)}")
        return None, {}
    pretrainer, modules = hparams["pretrainer"], hparams["modules"]
    if not isinstance(pretrainer, Pretrainer):
        result.problems.append(f"{HPARAMS_FILE}: pretrainer is a {type(pretrainer).__name__}, not SpeechBrain's "
                               "Pretrainer")
        return None, {}
    try:
        model_form(modules)
    except ValueError as exc:
        result.problems.append(f"{HPARAMS_FILE}: {exc}")
        return None, {}
    unloaded = [n for n in modules if n not in pretrainer.loadables]
    if unloaded:
        result.problems.append(f"{HPARAMS_FILE}: the pretrainer does not load {', '.join(unloaded)}, which would "
                               "keep random weights")
    checkpoints = {n: str(pretrainer.paths.get(n, f"{n}.ckpt")) for n in pretrainer.loadables}
    result.passed.append(f"{HPARAMS_FILE} loads ({model_form(modules)} form, {', '.join(modules)})")
    return hparams, checkpoints


def _check_checkpoints(folder: Path, hparams: dict, checkpoints: dict[str, str], result: CheckResult) -> None:
    for name, file in checkpoints.items():
        path = folder / file
        if not path.is_file():
            result.problems.append(f"{file} is missing: the pretrainer in {HPARAMS_FILE} loads `{name}` from it")
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            hparams["pretrainer"].loadables[name].load_state_dict(state)
        except Exception as exc:
            result.problems.append(f"{file} does not load into `{name}`: {_one_line(exc)}")
            continue
        result.passed.append(f"{file} loads into `{name}`")


def _check_card(folder: Path, result: CheckResult) -> None:
    path = folder / CARD_FILE
    if not path.is_file():
        result.problems.append(f"{CARD_FILE} (the model card) is missing")
        return
    card = path.read_text(encoding="utf-8")
    local = absolute_paths(card)
    if local:
        result.problems.append(f"{CARD_FILE} (the model card) names local paths: {'; '.join(local)}")
    front = re.match(r"---\n(.*?)\n---\n", card, re.S)
    if not front or not re.search(r"^license: *\S", front.group(1), re.M):
        result.problems.append(f"{CARD_FILE} (the model card) has no `license:` in its front matter")
    if "pip install" not in card:
        result.problems.append(f"{CARD_FILE} (the model card) does not say what to install (no `pip install` line)")
    if not local and front and "pip install" in card:
        result.passed.append(f"{CARD_FILE}: no local paths, a licence, an install line")


def _check_test_mixture(folder: Path, sample_rate: int, result: CheckResult) -> None:
    from sepmamba_sb.audio import audio_info

    path = folder / TEST_MIXTURE
    if not path.is_file():
        result.problems.append(f"{TEST_MIXTURE} is missing (the card's example, and what the check separates)")
        return
    try:
        rate = audio_info(path).samplerate
    except ValueError as exc:
        result.problems.append(f"{TEST_MIXTURE} does not read: {exc}")
        return
    if rate != sample_rate:
        result.problems.append(f"{TEST_MIXTURE} is at {rate} Hz, the model at {sample_rate} Hz")
        return
    result.passed.append(f"{TEST_MIXTURE} is at the model's {sample_rate} Hz")


def _check_files(folder: Path, needed: set[str] | None, result: CheckResult) -> None:
    """Nothing large that the model does not need (``needed``: None when the yaml does not say, as it does
    not load). Fills ``result.files``."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if any(part.startswith(".") or part == "__pycache__" for part in Path(rel).parts):
            continue  # git metadata, caches: never uploaded
        size = path.stat().st_size
        if needed is not None and rel not in needed and size > LARGE_BYTES:
            result.problems.append(f"{rel} ({size / 1e6:.1f} MB) is not needed by the model: remove it before "
                                   "sharing")
            continue
        result.files.append(rel)


# runs in a fresh Python: loads the folder one way and saves its raw estimates of the test mixture
_PROBE = f"""
import sys
import torch
folder, way, savedir, out = sys.argv[1:5]
if way == "foreign_class":
    from speechbrain.inference.interfaces import foreign_class
    model = foreign_class(source=folder, pymodule_file="{INTERFACE_FILE}", classname="{INTERFACE_CLASS}",
                          savedir=savedir)
elif way == "{INTERFACE_CLASS}":
    from sepmamba_sb.inference import {INTERFACE_CLASS}
    model = {INTERFACE_CLASS}.from_hparams(source=folder, savedir=savedir)
    file_out = model.separate_file(folder + "/{TEST_MIXTURE}", progress=False)
    assert torch.isfinite(file_out).all(), "separate_file gave non-finite samples"
else:
    from speechbrain.inference.separation import SepformerSeparation
    model = SepformerSeparation.from_hparams(source=folder, savedir=savedir)
from sepmamba_sb.audio import read_audio  # after loading: the load itself imports nothing of ours first
mix, _ = read_audio(folder + "/{TEST_MIXTURE}")
torch.save(model.separate_batch(mix[None]).cpu(), out)
"""


def _load_in_fresh_processes(folder: Path, hparams: dict, result: CheckResult, progress: bool) -> None:
    """Load the folder each way in a new Python, separate the test mixture, compare the ways."""
    from sepmamba_sb.audio import audio_info

    ways = ["foreign_class", INTERFACE_CLASS] + (["SepformerSeparation"]
                                                   if model_form(hparams["modules"]) == "masking" else [])
    length, num_spks = audio_info(folder / TEST_MIXTURE).frames, hparams["num_spks"]
    estimates = {}
    with tempfile.TemporaryDirectory(prefix="sepmamba-hub-check-") as tmp:
        for way in ways:
            if progress:
                print(f"hub check: loading {folder} with {way} in a fresh process ...", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{way}.pt"
            done = subprocess.run([sys.executable, "-c", _PROBE, str(folder.resolve()), way, str(Path(tmp) / way),
                                   str(out)], cwd=tmp, capture_output=True, text=True, timeout=1800)
            if done.returncode != 0:
                lines = done.stderr.strip().splitlines() or ["(no message)"]
                result.problems.append(f"loading with {way} in a fresh process failed: {lines[-1]}")
                continue
            est = torch.load(out, weights_only=True)
            if tuple(est.shape) != (1, length, num_spks) or not torch.isfinite(est).all() or not est.abs().max() > 0:
                result.problems.append(f"{way} separated {TEST_MIXTURE} into {tuple(est.shape)} (expected "
                                       f"(1, {length}, {num_spks})), finite: {bool(torch.isfinite(est).all())}, "
                                       f"peak {float(est.abs().max()):.3g}")
                continue
            estimates[way] = est
            result.passed.append(f"{way} loads it in a fresh process and separates {TEST_MIXTURE} into "
                                 f"{num_spks} sources")
    if len(estimates) > 1:
        first, *others = estimates.items()
        for way, est in others:
            gap = float((est - first[1]).abs().max() / first[1].abs().max())
            if gap > 1e-4:
                result.problems.append(f"{way} and {first[0]} give different estimates (relative gap {gap:.2g})")


def check(folder: str | Path, load: bool = True, progress: bool = True) -> CheckResult:
    """Check that a hub folder is ready to share, as a new user would meet it.

    The yaml loads and every module it defines is loaded by its ``pretrainer`` from a checkpoint in the
    folder; the checkpoints fit the modules; the model card names no local absolute paths, states a
    licence and an install line; ``test_mixture.wav`` is at the model's rate; no file the model does not
    need is larger than 1 MiB. Then (``load``, and only when all that holds) a fresh Python loads the
    folder each way (``foreign_class``, ``SepMambaSeparation``, and ``SepformerSeparation`` for the
    masking form), separates the test mixture, and the ways must agree.

    Returns
    -------
    CheckResult
        ``ok`` when nothing is wrong; otherwise ``problems`` names each one.
    """
    folder = Path(folder)
    result = CheckResult(folder)
    if not folder.is_dir():
        result.problems.append(f"{folder} is not a folder")
        return result
    hparams, checkpoints = _check_hparams(folder, result)
    if hparams is not None:
        _check_checkpoints(folder, hparams, checkpoints, result)
        _check_test_mixture(folder, hparams["sample_rate"], result)
    if not (folder / INTERFACE_FILE).is_file():
        result.problems.append(f"{INTERFACE_FILE} is missing: SpeechBrain's foreign_class loads the model "
                               "through it (sepmamba_sb.hub.export writes it)")
    _check_card(folder, result)
    _check_files(folder, None if hparams is None else {HPARAMS_FILE, INTERFACE_FILE, CARD_FILE, TEST_MIXTURE,
                                                        *checkpoints.values()}, result)
    if load and result.ok:
        _load_in_fresh_processes(folder, hparams, result, progress)
    return result


# ---- push ---------------------------------------------------------------------------------------------

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def push(folder: str | Path, repo: str, token: str | None = None, private: bool = False, api=None,
         progress: bool = True) -> str:
    """Check a hub folder, then upload it to the Hugging Face hub as model repository ``repo``.

    Parameters
    ----------
    folder : str or Path
        A folder that passes :func:`check`; only ``CheckResult.files`` are uploaded.
    repo : str
        ``USER/NAME`` (created if it does not exist).
    token : str, optional
        A Hugging Face token (default: the login of ``hf auth login``, or ``HF_TOKEN``).
    private : bool
        Create the repository private.
    api : huggingface_hub.HfApi, optional
        What uploads (default ``HfApi(token=token)``); anything with its ``create_repo`` and
        ``upload_folder`` works, e.g. a local stand-in.

    Returns
    -------
    str
        The uploaded commit's URL.

    Raises
    ------
    ValueError
        When ``repo`` is not ``USER/NAME``.
    HubCheckError
        When the folder fails the check (nothing is uploaded).
    """
    if not _REPO_ID.match(repo):
        raise ValueError(f"--repo must be USER/NAME (a Hugging Face model repository), got {repo!r}")
    result = check(folder, progress=progress)
    if not result.ok:
        raise HubCheckError(result)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    api.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="model",
                               allow_patterns=result.files,
                               commit_message=f"SepMamba separator (sepmamba_sb {version('sepmamba_sb')})")
    return str(getattr(commit, "commit_url", None) or f"https://huggingface.co/{repo}")


# ---- command line -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sepmamba_sb.hub", description="Write, check and share "
                                     "SepMamba hub folders (SpeechBrain's hub layout).")
    commands = parser.add_subparsers(dest="command", required=True)
    ex = commands.add_parser("export", help="write a hub folder from a recipe's output folder")
    ex.add_argument("run", help="a training run's output folder (hyperparams.yaml, save/CKPT+*)")
    ex.add_argument("out", help="the hub folder to write")
    ex.add_argument("--test-mixture", default=None, help="example mixture (default: the run's first test mixture)")
    ex.add_argument("--corpus", default=None, help="training data named in the card (default: the yaml's corpus)")
    ex.add_argument("--recipe", default=None, help="recipe named in the card (default: the yaml's recipe)")
    ex.add_argument("--license", dest="licence", default="apache-2.0", help="the weights' licence (hub identifier)")
    ch = commands.add_parser("check", help="check that a folder is ready to share (exit 1 if not)")
    ch.add_argument("folder")
    ch.add_argument("--no-load", action="store_true", help="skip loading in fresh processes (files and card only)")
    pu = commands.add_parser("push", help="check a folder, then upload it to huggingface.co")
    pu.add_argument("folder")
    pu.add_argument("--repo", required=True, help="USER/NAME of the model repository (created if needed)")
    pu.add_argument("--token", default=None, help="Hugging Face token (default: hf auth login's, or HF_TOKEN)")
    pu.add_argument("--private", action="store_true", help="create the repository private")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "export":
        try:
            out = export(args.run, args.out, test_mixture=args.test_mixture, corpus=args.corpus, recipe=args.recipe,
                         licence=args.licence)
        except (FileNotFoundError, TypeError, ValueError) as exc:
            print(f"hub export: {exc}", file=sys.stderr)
            return 2
        print(f"exported {args.run} to {out}; next: python -m sepmamba_sb.hub check {out}")
        return 0
    if args.command == "check":
        result = check(args.folder, load=not args.no_load)
        print(result.report(), file=sys.stdout if result.ok else sys.stderr)
        return 0 if result.ok else 1
    try:
        url = push(args.folder, args.repo, token=args.token, private=args.private)
    except ValueError as exc:
        print(f"hub push: {exc}", file=sys.stderr)
        return 2
    except HubCheckError as exc:
        print(f"{exc}\nhub push: nothing was uploaded", file=sys.stderr)
        return 1
    except Exception as exc:  # network, authentication, permissions: one line, and how to log in
        print(f"hub push: uploading to {args.repo} failed: {_one_line(exc)}\n(log in with `hf auth login`, set "
              "HF_TOKEN, or pass --token)", file=sys.stderr)
        return 1
    print(f"pushed {args.folder} to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
