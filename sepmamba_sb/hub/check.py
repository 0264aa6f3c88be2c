"""Check that a hub folder is ready to share, as a new user would meet it (:func:`check`)."""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from sepmamba_sb.hub.layout import CARD_FILE, HPARAMS_FILE, INTERFACE_FILE, TEST_MIXTURE
from sepmamba_sb.hub.probe import WAYS
from sepmamba_sb.lobes import model_form

LARGE_BYTES = 1 << 20  # a file the model does not need fails the check above this size
# local absolute paths: POSIX (not inside a URL or a relative path), home-relative, Windows drives
_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/~-])(?:/[\w.@+-]+(?:/[\w.@+-]*)*|~/[\w./@+-]*|[A-Za-z]:\\[^\s`'\"|),;]*)")


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


def one_line(exc: BaseException) -> str:
    """An exception as one line of at most ~400 characters, its type first."""
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
        result.problems.append(f"{HPARAMS_FILE} does not load: {one_line(exc)}")
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
            result.problems.append(f"{file} does not load into `{name}`: {one_line(exc)}")
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


def _load_in_fresh_processes(folder: Path, hparams: dict, result: CheckResult, progress: bool) -> None:
    """Load the folder each way in a new Python (:mod:`sepmamba_sb.hub.probe`), separate the test mixture,
    compare the ways."""
    from sepmamba_sb.audio import audio_info

    ways = [w for w in WAYS if w != "SepformerSeparation" or model_form(hparams["modules"]) == "masking"]
    length, num_spks = audio_info(folder / TEST_MIXTURE).frames, hparams["num_spks"]
    estimates = {}
    with tempfile.TemporaryDirectory(prefix="sepmamba-hub-check-") as tmp:
        for way in ways:
            if progress:
                print(f"hub check: loading {folder} with {way} in a fresh process ...", file=sys.stderr, flush=True)
            out = Path(tmp) / f"{way}.pt"
            done = subprocess.run([sys.executable, "-m", "sepmamba_sb.hub.probe", str(folder.resolve()), way,
                                   str(Path(tmp) / way), str(out)], cwd=tmp, capture_output=True, text=True,
                                  timeout=1800)
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
