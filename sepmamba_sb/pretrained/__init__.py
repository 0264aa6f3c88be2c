"""Models that ship with the package: hub folders (what ``python -m sepmamba_sb.hub export`` writes)
under ``sepmamba_sb/pretrained/<name>/``, usable by name, offline, right after ``pip install``::

    python -m sepmamba_sb.pretrained                    # lists them, with their cards' first lines
    sepmamba-separate NAME in.wav --out separated/
    SepMambaSeparation.from_hparams(source=NAME)        # sepmamba_sb.inference

Each was trained by a recipe of this repository (its card names the yaml and the command) and is never
edited by hand; ``tests/test_pretrained.py`` checks that it loads, passes the hub check and separates
its test mixture at the score its card states.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from sepmamba_sb.hub.layout import CARD_FILE, HPARAMS_FILE

FOLDER = Path(__file__).resolve().parent
ROBUSTNESS_FILE = "robustness.json"  # a shipped model's robustness table as numbers (recipes/MiniMix/ship.py)


def available() -> dict[str, Path]:
    """Shipped model name -> its folder (sorted by name)."""
    return {p.name: p for p in sorted(FOLDER.iterdir()) if (p / HPARAMS_FILE).is_file()}


def resolve(source: str | Path) -> str:
    """The folder of a shipped model when ``source`` is one's name; otherwise ``source`` unchanged (a
    folder or a hub id). A local folder of the same name wins over a shipped model."""
    source = str(source)
    models = available()
    if source in models and not Path(source).exists():
        return str(models[source])
    return source


def describe(name: str) -> str:
    """One line: the name, the folder's size, the test mixture's score its card states and its robustness
    table's clean figure."""
    folder = available()[name]
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    card = (folder / CARD_FILE).read_text(encoding="utf-8") if (folder / CARD_FILE).is_file() else ""
    parts = [f"{name}  ({size:.1f} MB)"]
    score = re.search(r"test mixture SI-SNRi (-?\d+\.\d+) dB", card)
    if score:
        parts.append(f"test mixture SI-SNRi {score.group(1)} dB")
    stored = stored_robustness(name)
    if stored:
        clean = next(iter(stored["results"].items()))
        parts.append(f"{clean[0]} {clean[1][0]:.2f}")
    return "; ".join(parts)


def stored_robustness(name: str) -> dict | None:
    """A shipped model's robustness table as its card states it: ``settings`` (of
    :class:`sepmamba_sb.robustness.Settings`), ``corpus``, ``machine`` and ``results`` (row -> [value,
    95 % half-width or None, count]); None when the folder has none."""
    path = available()[name] / ROBUSTNESS_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
