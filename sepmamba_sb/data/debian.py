"""Recorded speech that any Debian/Ubuntu machine can fetch: Debian packages downloaded with
``apt-get download`` (into a private apt state, so no ``sudo``) and unpacked with ``dpkg -x``.

A :class:`Speaker` is one voice in a package: the files that hold its recordings, or a Festival voice
made of its recorded diphones or units. Festival and its libraries are unpacked together
(:func:`festival_root`) and run from there (:func:`synthesize_festival`), reading sentences of the
Festival packages' documentation. :func:`synthesize` makes espeak-ng voices, the explicit fallback when
the packages cannot be fetched. :mod:`sepmamba_sb.data.minimix` names the voices of the MiniMix corpus.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sepmamba_sb.data.archives import extract


@dataclass(frozen=True)
class Speaker:
    """One voice in a Debian package."""

    name: str
    package: str
    patterns: tuple[str, ...]  # globs inside the unpacked package; empty for a Festival voice
    licence: str
    credit: str
    description: str
    festival_voice: str | None = None  # a Festival voice built from this speaker's recordings
    archive: str | None = None  # clips inside game data (sepmamba_sb.data.archives): patterns glob the extracted wavs



# what the Festival voices need beside their own packages (festival's libraries, lexicons, language
# support); libasound2, libtinfo6 and libgomp1 are expected on the machine
FESTIVAL_PACKAGES = ("festival", "libestools2.5", "libpulse0", "libsndfile1", "libasyncns0", "libflac12",
                     "libvorbis0a", "libvorbisenc2", "libopus0", "libogg0", "libmpg123-0", "libmp3lame0",
                     "festlex-cmu", "festlex-poslex", "festlex-ifd", "festival-czech", "festvox-suopuhe-common")
FESTIVAL_SENTENCES = 120  # per voice: about 5 minutes of speech

class SpeechFetchError(RuntimeError):
    """The speech could not be fetched (or synthesized); the message says why and what to do."""


def cache_dir() -> Path:
    """Where fetched packages and built corpora are kept: ``$SEPMAMBA_CACHE`` or ~/.cache/sepmamba_sb."""
    return Path(os.environ.get("SEPMAMBA_CACHE", Path.home() / ".cache" / "sepmamba_sb"))


def _run(cmd: list[str], what: str) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SpeechFetchError(f"{what} failed ({' '.join(cmd[:2])} exit {done.returncode}): "
                               f"{(done.stderr or done.stdout).strip()[-800:]}")


def fetch_packages(packages: list[str], root: Path | None = None) -> dict[str, Path]:
    """Download and unpack Debian packages once; later calls reuse the unpacked folders.

    ``apt-get`` runs with its package lists and archive cache under ``root``, so neither root rights
    nor a prior ``apt-get update`` are needed.

    Parameters
    ----------
    packages : list of str
        Debian package names.
    root : Path, optional
        Cache folder (default ``cache_dir() / "debian"``).

    Returns
    -------
    dict
        Package name -> folder it was unpacked into.

    Raises
    ------
    SpeechFetchError
        When apt-get or dpkg is missing or the download fails (no network, unknown package).
    """
    root = Path(root) if root is not None else cache_dir() / "debian"
    unpacked = {p: root / "unpacked" / p for p in packages}
    missing = [p for p, folder in unpacked.items() if not (folder / ".complete").exists()]
    if not missing:
        return unpacked
    for tool in ("apt-get", "dpkg"):
        if shutil.which(tool) is None:
            raise SpeechFetchError(
                f"{tool} is not available on this machine, so the Debian speech packages {missing} cannot be "
                "fetched. Use a Debian/Ubuntu machine, build a corpus from a folder of your own speaker-labelled "
                "wav files (python -m sepmamba_sb.data --speakers-folder), or use the espeak-ng fallback (--espeak)."
            )
    state = root / "apt"
    (state / "lists" / "partial").mkdir(parents=True, exist_ok=True)
    (state / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    opts = [f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state}",
            f"-oDir::Cache::archives={state / 'archives'}", "-oAPT::Sandbox::User=root", "-qq"]
    debs = root / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    if not any((state / "lists").glob("*Packages*")):
        _run(["apt-get", *opts, "update"], "apt-get update (private package lists)")
    done = subprocess.run(["apt-get", *opts, "download", *missing], cwd=debs, capture_output=True, text=True)
    if done.returncode != 0:
        raise SpeechFetchError(f"apt-get download {' '.join(missing)} failed: {done.stderr.strip()[-800:]}")
    for package in missing:
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise SpeechFetchError(f"apt-get download gave no .deb for {package} in {debs}")
        folder = unpacked[package]
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _run(["dpkg", "-x", str(found[-1]), str(folder)], f"unpacking {found[-1].name}")
        (folder / ".complete").write_text(found[-1].name + "\n")
    return unpacked


def festival_text(root: Path, count: int) -> list[str]:
    """English sentences for the Festival voices: the documentation of ``FESTIVAL_PACKAGES`` (licences,
    READMEs, change logs; in a fixed order; 5-20 words, letters and commas only), which every machine
    that fetched them has."""
    sentences = []
    for package in FESTIVAL_PACKAGES:
        for path in sorted(p for p in (root / "usr/share/doc" / package).glob("*") if p.is_file()):
            raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
            sentences += _sentences(raw.decode("utf-8", errors="ignore"))
    sentences = list(dict.fromkeys(sentences))  # licence texts repeat across packages
    if len(sentences) < count:
        raise SpeechFetchError(f"the Festival packages' documentation in {root} gives {len(sentences)} sentences, "
                               f"{count} are needed")
    return sentences


def _sentences(text: str) -> list[str]:
    sentences = []
    text = re.sub(r"\s+", " ", text)
    for sentence in re.split(r"[.;:!?()]", text):
        words = sentence.strip().split()
        if 5 <= len(words) <= 20 and all(re.fullmatch(r"[A-Za-z][A-Za-z'-]*,?", w) for w in words):
            sentences.append(" ".join(words))
    return sentences


_CYRILLIC = dict(zip("abcdefghijklmnopqrstuvwxyz", "абцдефгхийклмнопкрстуввкыз", strict=True))


def _link(source: str, target: str) -> None:
    """A hard link (replacing what an interrupted run left)."""
    if os.path.lexists(target):
        os.remove(target)
    os.link(source, target)


def festival_root(packages: list[str], root: Path | None = None) -> Path:
    """One folder with Festival, its libraries and ``packages`` together (Festival looks for voices,
    lexicons and its own Scheme files under one ``--libdir``): hard links to the unpacked packages, so
    the files take no second copy on disk."""
    folders = fetch_packages(sorted({*FESTIVAL_PACKAGES, *packages}), root)
    merged = (Path(root) if root is not None else cache_dir() / "debian") / "festival-root"
    for package, folder in folders.items():
        marker = merged / ".linked" / package
        if not marker.exists():
            shutil.copytree(folder, merged, symlinks=True, dirs_exist_ok=True, copy_function=_link,
                            ignore=shutil.ignore_patterns(".complete"))
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
    return merged


def synthesize_festival(speaker: Speaker, out_dir: Path, root: Path | None = None) -> list[Path]:
    """``out_dir/<n>.wav``: the speaker's Festival voice reading ``FESTIVAL_SENTENCES`` sentences (once).

    Raises
    ------
    SpeechFetchError
        When the packages cannot be fetched or Festival fails, with its message.
    """
    out_dir = Path(out_dir)
    done = out_dir / ".complete"
    if not done.exists():
        merged = festival_root([speaker.package], root)
        share = merged / "usr/share/festival"
        sentences = festival_text(merged, FESTIVAL_SENTENCES * 2)
        offset = sum(map(ord, speaker.name)) % len(sentences)  # voices read different sentences
        chosen = (sentences[offset:] + sentences[:offset])[:FESTIVAL_SENTENCES]
        if speaker.name.startswith("fest-ru"):
            chosen = ["".join(_CYRILLIC.get(c, c) for c in t.lower()) for t in chosen]
        out_dir.mkdir(parents=True, exist_ok=True)
        # the Czech voices name their databases by absolute /usr/share paths: point them at ours
        setup = " ".join(f'(set! czech-{v}-unisyn-index "{share}/voices/czech/czech_{v}/group/{v}.group")'
                         for v in ("dita", "krb", "machac", "ph"))
        lines = [f"(begin {setup})", f"({'voice_' + speaker.festival_voice})"]
        lines += [f'(utt.save.wave (SynthText "{t}") "{out_dir / f"{n:03d}.wav"}" \'riff)'
                  for n, t in enumerate(chosen)]
        script = out_dir / "synthesize.scm"
        encoding = "utf-8" if speaker.name.startswith("fest-ru") else "latin-1"  # what each voice's front end reads
        script.write_text("\n".join(lines) + "\n", encoding=encoding)
        libraries = [str(d / sub) for d in sorted(merged.glob("usr/lib/*-linux-gnu")) for sub in ("", "pulseaudio")]
        env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([*libraries, os.environ.get("LD_LIBRARY_PATH", "")]))
        result = subprocess.run([str(merged / "usr/bin/festival"), "--libdir", f"{share}/", "--datadir", f"{share}/",
                                 "-b", str(script)], cwd=share, env=env, capture_output=True, text=True)
        made = sorted(out_dir.glob("*.wav"))
        if result.returncode != 0 or len(made) != len(chosen):
            raise SpeechFetchError(f"Festival voice {speaker.festival_voice} wrote {len(made)} of {len(chosen)} files "
                                   f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()[-600:]}")
        done.touch()
    return sorted(out_dir.glob("*.wav"))




def speaker_files(speakers: Mapping[str, Speaker], root: Path | None = None) -> dict[str, list[Path]]:
    """Fetch what the speakers need and list each speaker's recordings (sorted); Festival voices are
    synthesized once into the cache.

    Parameters
    ----------
    speakers : Mapping
        Name -> :class:`Speaker`.
    root : Path, optional
        Cache folder (default ``cache_dir() / "debian"``).

    Raises
    ------
    SpeechFetchError
        As :func:`fetch_packages`, or when a package holds none of a speaker's files.
    """
    recorded = [s for s in speakers.values() if s.festival_voice is None]
    folders = fetch_packages(sorted({s.package for s in recorded}), root)
    base = Path(root) if root is not None else cache_dir() / "debian"
    files = {}
    for name, speaker in speakers.items():
        if speaker.festival_voice is not None:
            files[name] = synthesize_festival(speaker, base / "festival-speech" / name, root)
            continue
        folder = folders[speaker.package]
        if speaker.archive is not None:
            folder = extract(speaker.archive, folder, base / "extracted" / speaker.package)
        found = sorted({f for pattern in speaker.patterns for f in folder.glob(pattern)})
        if not found:
            raise SpeechFetchError(f"{speaker.package} holds no files matching {speaker.patterns} for {name}")
        files[name] = found
    return files


def licence_line(speaker: Speaker) -> str:
    """Where a speaker's recordings come from and their licence, for a corpus's LICENSES file."""
    return (f"{speaker.description}. Debian package {speaker.package} (apt-get download). Recorded by "
            f"{speaker.credit}. Licence: {speaker.licence}.")


# Synthetic voices from espeak-ng: the explicit fallback when Debian's speech packages cannot be fetched.
# Synthetic speech is not a substitute for recordings (separation learnt on it transfers poorly); it
# only lets the pipeline run.
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
    SpeechFetchError
        When espeak-ng is not on PATH, or fails.
    """
    binary = shutil.which("espeak-ng")
    if binary is None:
        raise SpeechFetchError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng); "
                               "it is only the fallback: recorded speech from the Debian packages is better")
    out_dir = Path(out_dir)
    for voice in voices:
        folder = out_dir / voice.replace("+", "_")
        folder.mkdir(parents=True, exist_ok=True)
        for n, sentence in enumerate(sentences):
            done = subprocess.run([binary, "-v", voice, "-w", str(folder / f"{n:02d}.wav"), sentence],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SpeechFetchError(f"espeak-ng -v {voice} failed: {done.stderr.strip()[-300:]}")
    return out_dir
