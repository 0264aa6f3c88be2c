#!/usr/bin/env python3
"""MiniMix: a wsj0-2mix-layout corpus of real recorded speech that any Debian/Ubuntu machine can build.

    python minimix_prepare.py --out ~/minimix                  # the demo's corpus (~490 MB download once)
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

Festival voices (``Speaker.festival_voice``) are one recorded speaker's diphones or units: Festival
and its libraries are unpacked together (:func:`festival_root`) and run from there
(:func:`synthesize_festival`), reading sentences of the Festival packages' documentation.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
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
    patterns: tuple[str, ...]  # globs inside the unpacked package; empty for a Festival voice
    licence: str
    credit: str
    description: str
    festival_voice: str | None = None  # a Festival voice built from this speaker's recordings


_AST = "usr/share/asterisk/sounds"
_C2 = "usr/share/codec2/wav"
_TUX = "usr/share/tuxpaint/stamps"
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
        Speaker("es-july", "asterisk-prompt-es-co", ("usr/share/asterisk/sounds/es/**/*.gsm",), "GPL-2",
                "July E. Jimenez; Avatar Ltda.", "Spanish (Colombia), female, telephone prompts"),
        Speaker("fr-armelle", "asterisk-prompt-fr-armelle", ("usr/share/asterisk/sounds/fr/**/*.gsm",),
                "BSD-style (see the package's copyright)", "Armelle Desjardins; Michel Gutierrez",
                "French, female, telephone prompts"),
        Speaker("it-menardi", "asterisk-prompt-it-menardi-wav", ("usr/share/asterisk/sounds/it_IT_f_Menardi/**/*.wav",),
                "CC-BY-SA-3.0", "Paola Dal Zot and Marco Menardi", "Italian, female, telephone prompts"),
        # Tux Paint's spoken stamp descriptions: one volunteer reader per language (the package's change log)
        *(Speaker(f"tux-{lang}", "tuxpaint-stamps-default", (f"{_TUX}/**/*_desc_{lang}.ogg",), "GPL-2",
                  f"{reader} (Tux Paint project)", f"{language}, {sex}, read descriptions")
          for lang, reader, language, sex in (
              ("ro", "Tabbytha", "Romanian", "female"), ("es", "Estefania Ortiz", "Spanish", "female"),
              ("ru", "Edwin Veber", "Russian", "male"), ("bg", "Krasimir Petkov", "Bulgarian", "male"),
              ("el", "Kiriaki Serafeim", "Greek", "female"), ("be", "Ksenya Buraya", "Belarusian", "female"),
              ("ca", "Pere Pujal", "Catalan", "male"), ("da", "Joe Dalton", "Danish", "male"))),
        # Festival voices made of one real speaker's recorded diphones or units: the timbre is the
        # speaker's, the prosody the synthesizer's. They read English text (see festival_text).
        Speaker("fest-kal", "festvox-kallpc16k", (), "MIT-style (CSTR/CMU)", "CMU (diphones of speaker kal)",
                "American English, male, Festival diphone voice", "kal_diphone"),
        Speaker("fest-ked", "festvox-kdlpc16k", (), "MIT-style (CSTR/CMU)", "CMU (diphones of speaker ked)",
                "American English, male, Festival diphone voice", "ked_diphone"),
        Speaker("fest-it-pc", "festvox-itapc16k", (), "GPL-2+", "ISTC-CNR Padova (diphones of speaker pc)",
                "Italian, male, Festival diphone voice", "pc_diphone"),
        Speaker("fest-it-lp", "festvox-italp16k", (), "GPL-2+", "ISTC-CNR Padova (diphones of speaker lp)",
                "Italian, female, Festival diphone voice", "lp_diphone"),
        Speaker("fest-ru-nsh", "festvox-ru", (), "BSD-style", "Nickolay V. Shmyrev (unit selection)",
                "Russian, male, Festival unit-selection voice", "msu_ru_nsh_clunits"),
        Speaker("fest-cs-dita", "festvox-czech-dita", (), "GPL-3+", "Brailcom (diphones of speaker dita)",
                "Czech, female, Festival diphone voice", "czech_dita"),
        Speaker("fest-cs-krb", "festvox-czech-krb", (), "GPL-3+", "Brailcom (diphones of speaker krb)",
                "Czech, male child, Festival diphone voice", "czech_krb"),
        Speaker("fest-cs-machac", "festvox-czech-machac", (), "GPL-3+", "Brailcom (diphones of speaker machac)",
                "Czech, male, Festival diphone voice", "czech_machac"),
        Speaker("fest-cs-ph", "festvox-czech-ph", (), "GPL-2+", "Brailcom (diphones of speaker ph)",
                "Czech, male, Festival diphone voice", "czech_ph"),
        Speaker("fest-fi-lj", "festvox-suopuhe-lj", (), "LGPL", "Suopuhe project (diphones of speaker lj)",
                "Finnish, female, Festival diphone voice", "suo_fi_lj_diphone"),
        Speaker("fest-fi-mv", "festvox-suopuhe-mv", (), "LGPL", "Suopuhe project (diphones of speaker mv)",
                "Finnish, male, Festival diphone voice", "hy_fi_mv_diphone"),
    )
}
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


def speaker_files(names: list[str], root: Path | None = None) -> dict[str, list[Path]]:
    """Fetch what the speakers need and list each speaker's recordings (sorted); Festival voices are
    synthesized once into the cache.

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
    recorded = [n for n in names if SPEAKERS[n].festival_voice is None]
    folders = fetch_packages(sorted({SPEAKERS[n].package for n in recorded}), root)
    files = {}
    for name in names:
        speaker = SPEAKERS[name]
        if speaker.festival_voice is not None:
            base = Path(root) if root is not None else cache_dir() / "debian"
            files[name] = synthesize_festival(speaker, base / "festival-speech" / name, root)
            continue
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
    # the demo: 24 training voices (11 F, 13 M; 7 recorded prompt or radio voices, 6 readers,
    # 11 Festival voices of recorded speakers), 5 validation and 5 test voices, all real recordings
    # in cv and tt; the three splits are disjoint
    "demo": {"speakers": {"tr": ["en-allison", "it-carlo", "ru-ivrvoice", "c2-ve9qrp", "es-july", "fr-armelle",
                                 "it-menardi", "tux-ro", "tux-es", "tux-ru", "tux-bg", "tux-be", "tux-da",
                                 *(name for name, s in SPEAKERS.items() if s.festival_voice)],
                          "cv": ["c2-vk5qi", "c2-hts", "c2-mmt1", "tux-el", "tux-ca"],
                          "tt": ["fr-june", "ps-austen", "c2-morig", "c2-bigdog", "c2-cross"]},
             "mixtures": {"tr": 400, "cv": 40, "tt": 40}, "max_utterances_per_speaker": None},
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
