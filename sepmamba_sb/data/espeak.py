"""Synthetic voices from espeak-ng: the explicit fallback when Debian's speech packages cannot be
fetched. Synthetic speech is not a substitute for recordings (separation learnt on it transfers
poorly); it only lets the pipeline run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

VOICES = ("en-us+m1", "en-us+f2", "en-gb+m3", "en-us+f4", "en+m7", "en-gb+f3", "en-us+m4", "en+f5")
SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please call me back when you have a moment to talk about the plan.",
    "Separating two voices that speak at once is harder than it sounds.",
    "Seven silver spoons were left on the kitchen table after dinner.",
    "We will meet at the station at half past nine tomorrow morning.",
    "A gentle rain fell on the quiet village through the whole night.",
    "Numbers like forty two and nineteen are easy to say and to hear.",
    "Every student brought a different book to the library on Monday.",
)


def synthesize(out_dir: Path, voices=VOICES, sentences=SENTENCES) -> Path:
    """Write ``out_dir/<voice>/<n>.wav``: every voice saying every sentence.

    Raises
    ------
    RuntimeError
        When espeak-ng is not on PATH, or fails.
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise RuntimeError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng); "
                           "it is only the fallback: recorded speech from the Debian packages is better")
    out_dir = Path(out_dir)
    for voice in voices:
        folder = out_dir / voice.replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for n, sentence in enumerate(sentences):
            done = subprocess.run([binary, "-v", voice, "-w", str(folder / f"{n:02d}.wav"), sentence],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"espeak-ng -v {voice} failed: {done.stderr.strip()[-300:]}")
    return out_dir
