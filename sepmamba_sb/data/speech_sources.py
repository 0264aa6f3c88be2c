"""Real recorded speech that a fresh Debian/Ubuntu machine can fetch without root: Debian packages
downloaded with ``apt-get download`` (into a private apt state, so no ``sudo``) and unpacked with
``dpkg -x``. WSJ0 is licensed; these are not, and they make a small corpus any machine can build.

``SPEAKERS`` lists the voices: one speaker each, their package, where their files are inside it and
the licence of the recordings. Things to know: the Spanish Asterisk prompts are the English speaker
(never pair them); codec2's f2400/m2400 are coded copies of forig/morig, hts1a/hts2a one speaker,
and david4, vk2tpm_004 and all.wav modem noise or compilations (all left out); the short codec2
voices (under 5 s) give one utterance each (forig, 1.6 s, gives none and is left out).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Speaker:
    """One voice in a Debian package."""

    name: str
    package: str
    patterns: tuple[str, ...]  # globs inside the unpacked package
    licence: str
    credit: str
    description: str


_AST = "usr/share/asterisk/sounds"
_C2 = "usr/share/codec2/wav"
SPEAKERS = {
    s.name: s
    for s in (
        Speaker("en-allison", "asterisk-core-sounds-en-wav", (f"{_AST}/en_US_f_Allison/**/*.wav",), "CC-BY-SA-3.0",
                "Allison Smith; Digium, Inc.", "English, female, telephone prompts"),
        Speaker("it-carlo", "asterisk-core-sounds-it-wav", (f"{_AST}/it_IT_m_Carlo/**/*.wav",), "CC-BY-3.0",
                "Carlo Flora", "Italian, male, telephone prompts"),
        Speaker("fr-june", "asterisk-core-sounds-fr-wav", (f"{_AST}/fr_CA_f_June/**/*.wav",), "CC-BY-SA-3.0",
                "June Wallack; Digium, Inc.", "French (Canada), female, telephone prompts"),
        Speaker("ru-ivrvoice", "asterisk-core-sounds-ru-wav", (f"{_AST}/ru_RU_f_IvrvoiceRU/**/*.wav",),
                "CC-BY-3.0", "Maxim Topal (ivrvoice.ru)", "Russian, female, telephone prompts"),
        Speaker("c2-ve9qrp", "codec2-examples", (f"{_C2}/ve9qrp.wav",), "LGPL-2.1", "codec2 project",
                "English, male, amateur radio recording"),
        Speaker("c2-vk5qi", "codec2-examples", (f"{_C2}/vk5qi.wav",), "LGPL-2.1", "codec2 project",
                "English, male, amateur radio recording"),
        Speaker("c2-hts", "codec2-examples", (f"{_C2}/hts1a.wav", f"{_C2}/hts2a.wav"), "LGPL-2.1",
                "codec2 project", "English, male, clean recording"),
        Speaker("c2-mmt1", "codec2-examples", (f"{_C2}/mmt1.wav",), "LGPL-2.1", "codec2 project",
                "English, male, clean recording"),
        Speaker("c2-morig", "codec2-examples", (f"{_C2}/morig.wav",), "LGPL-2.1", "codec2 project",
                "English, male, clean recording"),
        Speaker("c2-bigdog", "codec2-examples", (f"{_C2}/big_dog.wav",), "LGPL-2.1", "codec2 project",
                "English, male, clean recording"),
        Speaker("c2-cross", "codec2-examples", (f"{_C2}/cross.wav",), "LGPL-2.1", "codec2 project",
                "English, male, telephone (mu-law) recording"),
        Speaker("ps-austen", "pocketsphinx-testdata",
                ("usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_*.wav",),
                "public domain (LibriVox)", "LibriVox volunteer reader", "English, read book, 16 kHz"),
    )
}


class SpeechFetchError(RuntimeError):
    """The Debian speech packages could not be fetched; the message says why and what to do."""


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
                "fetched. Use a Debian/Ubuntu machine, point the corpus builder at a folder of your own "
                "speaker-labelled wav files, or use the espeak-ng fallback where offered."
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


def speaker_files(names: list[str], root: Path | None = None) -> dict[str, list[Path]]:
    """Fetch what the speakers need and list each speaker's recordings (sorted).

    Raises
    ------
    KeyError
        For a speaker not in ``SPEAKERS``.
    SpeechFetchError
        As :func:`fetch_packages`, or when a package holds none of a speaker's files.
    """
    unknown = [n for n in names if n not in SPEAKERS]
    if unknown:
        raise KeyError(f"unknown speakers {unknown}; known: {sorted(SPEAKERS)}")
    folders = fetch_packages(sorted({SPEAKERS[n].package for n in names}), root)
    files = {}
    for name in names:
        speaker = SPEAKERS[name]
        found = sorted(f for pattern in speaker.patterns for f in folders[speaker.package].glob(pattern))
        if not found:
            raise SpeechFetchError(f"{speaker.package} holds no files matching {speaker.patterns} for {name}")
        files[name] = found
    return files
