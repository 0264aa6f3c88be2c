"""Speech kept inside game data files, written out once as ``.wav`` files a corpus can read.

Two Debian packages of free adventure games carry hours of acted dialogue, but not as audio files:

- ``flight-of-the-amazon-queen``: ``queen.1c``, a table of named entries (``QTBL``); the ``.SB``
  entries are MP3 clips at 11025 Hz, named by the engine's convention (``JOE<n>.SB`` and
  ``<dialogue><line>J<n>.SB`` are the hero, Joe King; ``<dialogue><line>P<n>.SB`` the n-th other person
  of a dialogue; ``C...`` cut-scenes, several people at once).
- ``drascula`` and ``drascula-spanish``: ``<language>/<character><n>.ALS``, headerless unsigned 8-bit
  mono at 11025 Hz (the ScummVM engine's rate); the prefix names the character (none: the hero).

:func:`extract` writes every clip of a package as ``<out>/<its path>.wav`` (at the clip's rate)
and marks the folder complete, so a second call returns at once.
"""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from sepmamba_sb.audio import write_audio

ALS_RATE = 11025  # Drascula's clips: raw unsigned 8-bit mono at this rate


def _queen_entries(archive: Path) -> list[tuple[str, int, int]]:
    """(name, offset, size) of every entry of a ``queen.1c`` table."""
    with open(archive, "rb") as f:
        header = f.read(15)
        if header[:4] != b"QTBL":
            raise ValueError(f"{archive} is not a Flight of the Amazon Queen data file (no QTBL header)")
        (count,) = struct.unpack(">H", header[13:15])
        table = f.read(21 * count)
    entries = []
    for n in range(count):
        raw = table[21 * n:21 * (n + 1)]
        name = raw[:12].split(b"\0", 1)[0].decode("ascii", errors="replace")
        offset, size = struct.unpack(">II", raw[13:21])
        entries.append((name, offset, size))
    return entries


def _extract_queen(package: Path, out: Path) -> None:
    archives = sorted(package.rglob("queen.1c"))
    if not archives:
        raise ValueError(f"{package} holds no queen.1c")
    clips = [entry for entry in _queen_entries(archives[0]) if entry[0].endswith(".SB")]
    with open(archives[0], "rb") as f:
        for name, offset, size in tqdm(clips, desc="queen.1c speech", unit="clip"):
            f.seek(offset)
            audio, rate = sf.read(io.BytesIO(f.read(size)), dtype="float32", always_2d=True)
            if audio.shape[0]:
                # float samples: decoded MP3 overshoots full scale a little
                write_audio(out / f"{Path(name).stem}.wav", audio.mean(axis=1), rate, subtype="FLOAT")


def _extract_als(package: Path, out: Path) -> None:
    clips = sorted(p for p in package.rglob("*.ALS") if p.is_file())  # not the links to another package
    if not clips:
        raise ValueError(f"{package} holds no .ALS clips")
    for clip in tqdm(clips, desc="Drascula speech", unit="clip"):
        raw = np.frombuffer(clip.read_bytes(), dtype=np.uint8)
        if raw.size:
            relative = clip.relative_to(package).with_suffix(".wav")
            write_audio(out / relative, (raw.astype(np.float32) - 128.0) / 128.0, ALS_RATE, subtype="PCM_16")


EXTRACTORS = {"queen": _extract_queen, "als": _extract_als}


def extract(kind: str, package: Path, out: Path) -> Path:
    """Write a package's clips as ``.wav`` files under ``out`` (once) and return ``out``.

    Parameters
    ----------
    kind : {"queen", "als"}
        The data format (see the module docstring).
    package : Path
        The unpacked package.
    out : Path
        Where the clips go; ``out/.complete`` marks a finished extraction.

    Raises
    ------
    ValueError
        For an unknown kind, or a package that holds no such data.
    """
    if kind not in EXTRACTORS:
        raise ValueError(f"unknown archive kind {kind!r}; choose from {sorted(EXTRACTORS)}")
    out = Path(out)
    if not (out / ".complete").exists():
        EXTRACTORS[kind](Path(package), out)
        (out / ".complete").touch()
    return out
