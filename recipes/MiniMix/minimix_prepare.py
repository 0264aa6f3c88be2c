#!/usr/bin/env python3
"""MiniMix: a wsj0-2mix-layout corpus of real recorded speech that any Debian/Ubuntu machine can build.

    python minimix_prepare.py --out ~/minimix                  # the demo's corpus (~90 MB download once)
    python minimix_prepare.py --out ~/minimix-tiny --preset tiny
    python minimix_prepare.py --out ~/minimix-whamr --layout whamr   # noisy, reverberant (WHAMR! layout)
    python minimix_prepare.py --out ~/synthmix --espeak        # synthetic voices, when apt is unavailable

The speech comes from Debian packages downloaded with ``apt-get download`` (into a private apt state,
so no ``sudo``) and unpacked with ``dpkg -x``; :func:`sepmamba_sb.data.corpus.build_corpus` turns it
into the corpus. WSJ0 is licensed; these recordings are not. A second run with the same settings
returns at once.

``SPEAKERS`` lists the voices: one speaker each, their package, where their files are inside it and
the licence of the recordings. Things to know: the Spanish Asterisk prompts are the English speaker
(never pair them); codec2's f2400/m2400 are coded copies of forig/morig, hts1a/hts2a one speaker,
and david4, vk2tpm_004 and all.wav modem noise or compilations (all left out); the short codec2
voices (under 5 s) give one utterance each (forig, 1.6 s, gives none and is left out).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sepmamba_sb.audio import list_speakers
from sepmamba_sb.data.corpus import build_corpus, split_speakers


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


def licence_line(name: str) -> str:
    """Where a speaker's recordings come from and their licence, for the corpus's LICENSES file."""
    s = SPEAKERS[name]
    return (f"{s.description}. Debian package {s.package} (apt-get download). Recorded by {s.credit}. "
            f"Licence: {s.licence}.")


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


PRESETS = {
    # the demo: 4 training voices (2 F, 2 M, ~75 min), 3 validation and 5 test voices, all disjoint
    # (both female voices in tr: more training voices generalise better than one held out for cv)
    "demo": {"speakers": {"tr": ["en-allison", "it-carlo", "ru-ivrvoice", "c2-ve9qrp"],
                          "cv": ["c2-vk5qi", "c2-hts", "c2-mmt1"],
                          "tt": ["fr-june", "ps-austen", "c2-morig", "c2-bigdog", "c2-cross"]},
             "mixtures": {"tr": 400, "cv": 20, "tt": 40}, "max_utterances_per_speaker": None},
    # the test suite's: 3 training voices (for 3-speaker mixing), 6 utterances each
    "tiny": {"speakers": {"tr": ["en-allison", "it-carlo", "fr-june"], "cv": ["ru-ivrvoice", "ps-austen"],
                          "tt": ["c2-ve9qrp", "c2-vk5qi"]},
             "mixtures": {"tr": 8, "cv": 3, "tt": 3}, "max_utterances_per_speaker": 6},
}


def prepare_minimix(out: Path, preset: str = "demo", num_spks: int = 2, seed: int = 1234,
                    layout: str = "wsj0mix") -> Path:
    """Build (or reuse) MiniMix from the Debian speech packages.

    Parameters
    ----------
    out : Path
        The corpus folder (``wav8k/min/{tr,cv,tt}``, ``raw/{tr,cv,tt}/<speaker>``, ``LICENSES``).
    preset : {"demo", "tiny"}
        Speakers per split and mixtures per split (``PRESETS``).
    num_spks, seed : int
        Sources per mixture, random seed.
    layout : {"wsj0mix", "wham", "whamr"}
        Clean mixtures, or noisy ones (babble of each split's speakers), or noisy and reverberant ones
        (:func:`sepmamba_sb.data.corpus.build_corpus`).

    Raises
    ------
    SpeechFetchError
        When the packages cannot be fetched (no apt, no network), saying what to do instead.
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown MiniMix preset {preset!r}; choose from {sorted(PRESETS)}")
    chosen = PRESETS[preset]
    names = [name for split in chosen["speakers"].values() for name in split]
    return build_corpus(Path(out), chosen["speakers"], chosen["mixtures"], speaker_files(names),
                        {name: licence_line(name) for name in names}, num_spks=num_spks, seed=seed,
                        max_utterances_per_speaker=chosen["max_utterances_per_speaker"], layout=layout)


def prepare_espeak(out: Path, num_spks: int = 2, seed: int = 1234) -> Path:
    """The fallback corpus of espeak-ng voices (written beside ``out``), split like a user's folder."""
    out = Path(out)
    voices = synthesize(out.with_name(out.name + "-espeak-voices"))
    files = list_speakers(voices)
    return build_corpus(out, split_speakers(list(files), num_spks), PRESETS["demo"]["mixtures"], files,
                        {name: "a synthetic voice made with espeak-ng (a GPL-3.0-or-later program), no recording."
                         for name in files}, num_spks=num_spks, seed=seed)


def main(argv=None) -> None:
    """Build the corpus and print its folder; a clear message and exit status 1 when it cannot."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="corpus folder to create")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="speakers and sizes (default demo)")
    parser.add_argument("--espeak", action="store_true", help="synthetic espeak-ng voices instead (fallback)")
    parser.add_argument("--num-spks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--layout", choices=("wsj0mix", "wham", "whamr"), default="wsj0mix",
                        help="clean (default), noisy (WHAM!) or noisy-reverberant (WHAMR!) mixtures")
    args = parser.parse_args(argv)
    try:
        if args.espeak:
            root = prepare_espeak(Path(args.out), args.num_spks, args.seed)
        else:
            root = prepare_minimix(Path(args.out), args.preset, args.num_spks, args.seed, args.layout)
    except (SpeechFetchError, OSError, ValueError, KeyError) as exc:
        hint = ("\n(build a corpus from your own recordings with python -m sepmamba_sb.data --speakers-folder"
                + (")" if args.espeak else ", or use --espeak)")) if isinstance(exc, SpeechFetchError) else ""
        raise SystemExit(f"minimix_prepare.py: {exc}{hint}") from None
    print(root)


if __name__ == "__main__":
    main()
