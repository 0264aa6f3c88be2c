"""MiniMix: a wsj0-2mix-layout corpus of real recorded speech that any Debian/Ubuntu machine can build.

    python -m sepmamba_sb.data.minimix --out ~/minimix                # the demo's corpus (~490 MB download once)
    python -m sepmamba_sb.data.minimix --out ~/minimix-tiny --preset tiny
    python -m sepmamba_sb.data.minimix --out ~/minimix-whamr --layout whamr   # noisy, reverberant (WHAMR! layout)
    python -m sepmamba_sb.data.minimix --out ~/minimix-real --preset real --layout whamr   # the shipped model's
    python -m sepmamba_sb.data.minimix --out ~/synthmix --espeak      # synthetic voices, when apt is unavailable

(``recipes/MiniMix/minimix_prepare.py`` is the same command.) The speech comes from Debian packages
(:mod:`sepmamba_sb.data.debian`); :func:`sepmamba_sb.data.corpus.build_corpus` turns it into the corpus.
WSJ0 is licensed; these recordings are not. A second run with the same settings returns at once.

``SPEAKERS`` lists the voices: one speaker each, their package, where their files are inside it and
the licence of the recordings. Things to know: the Spanish Asterisk prompts are the English speaker
(never pair them); codec2's f2400/m2400 are coded copies of forig/morig, hts1a/hts2a one speaker,
and david4, vk2tpm_004 and all.wav modem noise or compilations (all left out); the short codec2
voices (under 5 s) give one utterance each (forig, 1.6 s, gives none and is left out).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sepmamba_sb.audio import list_speakers
from sepmamba_sb.data.corpus import build_corpus, split_speakers
from sepmamba_sb.data.debian import Speaker, SpeechFetchError, cache_dir, licence_line, speaker_files, synthesize

__all__ = ["PRESETS", "SPEAKERS", "SpeechFetchError", "cache_dir", "main", "prepare_espeak", "prepare_minimix"]

_AST = "usr/share/asterisk/sounds"
_C2 = "usr/share/codec2/wav"
_TUX = "usr/share/tuxpaint/stamps"
_FOTAQ = "actors the game does not name (Flight of the Amazon Queen, (c) 1995 John Passfield and Steven Stamatiadis)"
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
        # Tux Paint's French reader ("PaulK", the package's change log); animals/ is left out: a second,
        # higher voice reads some of it
        Speaker("tux-fr", "tuxpaint-stamps-default", (f"{_TUX}/[!a]*/**/*_desc_fr.ogg",), "GPL-2",
                "PaulK (Tux Paint project)", "French, male, read descriptions"),
        # Acted dialogue of two free adventure games (sepmamba_sb.data.archives extracts it); the actors
        # are not credited, so a voice is a character (FOTAQ: the hero, or one person of one dialogue),
        # and one actor may play several: every voice of a game stays in one split
        Speaker("fotaq-joe", "flight-of-the-amazon-queen", ("JOE*.wav", "*J[0-9].wav"),
                "Flight-of-the-Amazon-Queen-License (free redistribution)", _FOTAQ,
                "English, male, acted game dialogue (Joe King)", archive="queen"),
        *(Speaker(f"fotaq-{dialogue}p{person}", "flight-of-the-amazon-queen", (f"{dialogue}[0-9A-F][0-9A-F]"
                  f"[0-9A-F][0-9A-F]P{person}.wav",), "Flight-of-the-Amazon-Queen-License (free redistribution)",
                  _FOTAQ, f"English, acted game dialogue (dialogue {dialogue}, person {person})", archive="queen")
          for dialogue, person in (("57", 1), ("12", 2), ("57", 2), ("12", 1), ("59", 2), ("61", 2), ("48", 1),
                                   ("61", 1), ("59", 1), ("80", 2), ("37", 2), ("48", 2), ("62", 2), ("03", 1),
                                   ("25", 2), ("62", 1), ("23", 2))),
        *(Speaker(f"drascula-{lang}-{prefix.lower() or 'hero'}", package, (f"usr/share/scummvm/drascula/{lang}/"
                  f"{prefix}[0-9]*.wav",), "Drascula-License (BSD-like)",
                  "actors the game does not name (Drascula, (c) 1996-2008 Alcachofa Soft S.L.)",
                  f"{language}, acted game dialogue (character {prefix or 'the hero, John Hacker'})", archive="als")
          for lang, package, language in (("en", "drascula", "English"), ("es", "drascula-spanish", "Spanish"))
          for prefix in ("", "B", "BJ", "D", "E", "I", "L", "P", "T", "VB")),
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


_CV = ["c2-vk5qi", "c2-hts", "c2-mmt1", "tux-el", "tux-ca"]
_TT = ["fr-june", "ps-austen", "c2-morig", "c2-bigdog", "c2-cross"]
_TR24 = ["en-allison", "it-carlo", "ru-ivrvoice", "c2-ve9qrp", "es-july", "fr-armelle", "it-menardi", "tux-ro",
         "tux-es", "tux-ru", "tux-bg", "tux-be", "tux-da", *(name for name, s in SPEAKERS.items() if s.festival_voice)]
PRESETS = {
    # the demo's: 24 training voices (11 F, 13 M; 7 recorded prompt or radio voices, 6 readers,
    # 11 Festival voices of recorded speakers), 5 validation and 5 test voices, all real recordings
    # in cv and tt from several packages each; the three splits are disjoint
    "demo": {"speakers": {"tr": _TR24, "cv": _CV, "tt": _TT},
             "mixtures": {"tr": 400, "cv": 40, "tt": 40}, "max_utterances_per_speaker": None},
    # the shipped model's: the demo's voices plus 39 more in tr (Tux Paint's French reader and 38
    # characters of two adventure games): 63; the same cv and tt voices
    "real": {"speakers": {"tr": [*_TR24, "tux-fr", *(name for name, s in SPEAKERS.items() if s.archive)],
                          "cv": _CV, "tt": _TT},
             "mixtures": {"tr": 400, "cv": 40, "tt": 40}, "max_utterances_per_speaker": None},
    # the test suite's: 3 training voices (for 3-speaker mixing), 6 utterances each
    "tiny": {"speakers": {"tr": ["en-allison", "it-carlo", "fr-june"], "cv": ["ru-ivrvoice", "ps-austen"],
                          "tt": ["c2-ve9qrp", "c2-vk5qi"]},
             "mixtures": {"tr": 8, "cv": 3, "tt": 3}, "max_utterances_per_speaker": 6},
}


def prepare_minimix(out: Path, preset: str = "demo", num_spks: int = 2, seed: int = 1234,
                    layout: str = "wsj0mix", sample_rate: int = 8000) -> Path:
    """Build (or reuse) MiniMix from the Debian speech packages.

    Parameters
    ----------
    out : Path
        The corpus folder (``wav8k/min/{tr,cv,tt}`` or ``wav16k/...``, ``raw/{tr,cv,tt}/<speaker>``,
        ``LICENSES``).
    preset : {"demo", "real", "tiny"}
        Speakers per split and mixtures per split (``PRESETS``).
    num_spks, seed : int
        Sources per mixture, random seed.
    layout : {"wsj0mix", "wham", "whamr"}
        Clean mixtures, or noisy ones (babble of each split's speakers), or noisy and reverberant ones
        (:func:`sepmamba_sb.data.corpus.build_corpus`).
    sample_rate : int
        The corpus's rate, 8000 or 16000. At 16 kHz the voices recorded at 8 kHz (14 of the demo
        preset's 34, codec2's examples among them) carry nothing above 4 kHz.

    Raises
    ------
    SpeechFetchError
        When the packages cannot be fetched (no apt, no network), saying what to do instead.
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown MiniMix preset {preset!r}; choose from {sorted(PRESETS)}")
    chosen = PRESETS[preset]
    names = [name for split in chosen["speakers"].values() for name in split]
    voices = {name: SPEAKERS[name] for name in names}
    return build_corpus(Path(out), chosen["speakers"], chosen["mixtures"], speaker_files(voices),
                        {name: licence_line(voice) for name, voice in voices.items()}, num_spks=num_spks, seed=seed,
                        max_utterances_per_speaker=chosen["max_utterances_per_speaker"], layout=layout,
                        sample_rate=sample_rate)


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
    parser.add_argument("--sample-rate", type=int, choices=(8000, 16000), default=8000,
                        help="the corpus's rate: wav8k (default) or wav16k")
    args = parser.parse_args(argv)
    try:
        if args.espeak:
            root = prepare_espeak(Path(args.out), args.num_spks, args.seed)
        else:
            root = prepare_minimix(Path(args.out), args.preset, args.num_spks, args.seed, args.layout, args.sample_rate)
    except (SpeechFetchError, OSError, ValueError, KeyError) as exc:
        hint = ("\n(build a corpus from your own recordings with python -m sepmamba_sb.data --speakers-folder"
                + (")" if args.espeak else ", or use --espeak)")) if isinstance(exc, SpeechFetchError) else ""
        raise SystemExit(f"{parser.prog}: {exc}{hint}") from None
    print(root)


if __name__ == "__main__":
    main()
