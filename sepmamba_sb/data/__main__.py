"""``python -m sepmamba_sb.data --out DIR``: build a wsj0-2mix-layout corpus of real speech.

    python -m sepmamba_sb.data --out ~/minimix                      # the demo's corpus (Debian packages)
    python -m sepmamba_sb.data --out ~/mymix --speakers-folder ~/LibriSpeech-wavs   # <speaker>/**/*.wav
    python -m sepmamba_sb.data --out ~/synthmix --espeak            # synthetic voices, when apt is unavailable

A second run with the same settings returns at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sepmamba_sb.data.corpus import PRESETS, build_corpus, speaker_folder, split_speakers
from sepmamba_sb.data.speech_sources import SpeechFetchError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepmamba_sb.data", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="corpus folder to create")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="demo", help="speakers and sizes (default demo)")
    parser.add_argument("--speakers-folder", help="your own recordings, <folder>/<speaker>/**/*.wav, instead")
    parser.add_argument("--espeak", action="store_true", help="synthetic espeak-ng voices instead (fallback)")
    parser.add_argument("--num-spks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset]
    folder = Path(args.speakers_folder) if args.speakers_folder else None
    try:
        if args.espeak:
            from sepmamba_sb.data.espeak import synthesize

            folder = synthesize(Path(args.out).with_name(Path(args.out).name + "-espeak-voices"))
        if folder is not None:
            speakers = split_speakers(sorted(speaker_folder(folder)), args.num_spks)
            root = build_corpus(Path(args.out), speakers, preset["mixtures"], args.num_spks, seed=args.seed,
                                folder=folder)
        else:
            root = build_corpus(Path(args.out), preset["speakers"], preset["mixtures"], args.num_spks, seed=args.seed,
                                max_utterances_per_speaker=preset["max_utterances_per_speaker"])
    except SpeechFetchError as exc:
        print(f"{exc}\n(with no apt, use --speakers-folder with your own recordings, or --espeak)", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        print(f"python -m sepmamba_sb.data: {exc}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
