"""``python -m sepmamba_sb.data --speakers-folder DIR --out OUT``: a wsj0-2mix-layout corpus from your recordings.

    python -m sepmamba_sb.data --speakers-folder ~/LibriSpeech-wavs --out ~/mymix    # DIR/<speaker>/**/*.wav or .flac
    python -m sepmamba_sb.data --speakers-folder ~/voices --out ~/myreverb --layout whamr \
        --noise-folder /data/wham_noise                                              # noisy, reverberant
    python -m sepmamba_sb.data --speakers-folder ~/LibriSpeech/dev-clean --out ~/Libri2Mix --layout librimix \
        --sample-rate 16000                                                          # LibriMix's folders

Speakers are split about 80/10/10 into disjoint tr/cv/tt sets; train with the WSJ0Mix recipe
(``--data_folder ~/mymix --base_folder_dm ~/mymix/raw/tr --dm_speaker_prefix null``), or, with
``--layout wham`` (noisy) or ``--layout whamr`` (noisy and reverberant, direct-path sources), with the
WHAMandWHAMR recipe; with ``--layout librimix`` (WHAM!'s folders in LibriMix's splits ``train-360``, ``dev``,
``test``), with the LibriMix recipe. Their noise comes from ``--noise-folder`` (``tr``, ``cv`` and ``tt``
subfolders, as ``wham_noise``), else is babble of each split's own speakers. ``--sample-rate 16000``
writes ``wav16k`` instead of ``wav8k``. A second run with the same settings
returns at once. The MiniMix demo corpus, from Debian's speech packages, is
built by :mod:`sepmamba_sb.data.minimix`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sepmamba_sb.audio import list_speakers
from sepmamba_sb.data.corpus import build_corpus, split_speakers
from sepmamba_sb.data.wsjmix import DATASETS


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sepmamba_sb.data", description=__doc__.split("\n")[0])
    parser.add_argument("--speakers-folder", required=True, help="your recordings, <folder>/<speaker>/**/*.wav")
    parser.add_argument("--out", required=True, help="corpus folder to create")
    parser.add_argument("--mixtures", type=int, nargs=3, default=[400, 20, 40], metavar=("TR", "CV", "TT"),
                        help="mixtures per split (default 400 20 40)")
    parser.add_argument("--num-spks", type=int, default=2, help="speakers per mixture (default 2)")
    parser.add_argument("--sample-rate", type=int, default=8000, help="rate of the corpus (default 8000)")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--layout", choices=DATASETS, default="wsj0mix",
                        help="clean (default), noisy (WHAM!), noisy-reverberant (WHAMR!) mixtures, or LibriMix's "
                             "folders (clean and noisy)")
    parser.add_argument("--noise-folder", help="WHAM!/WHAMR!/LibriMix: noise recordings in tr/, cv/, tt/ "
                                               "(default: babble)")
    args = parser.parse_args(argv)
    if min(args.mixtures) < 1 or args.num_spks < 1 or args.sample_rate < 1000:
        parser.error("--mixtures and --num-spks must be positive, --sample-rate at least 1000")
    folder = Path(args.speakers_folder)
    try:
        files = list_speakers(folder)
        speakers = split_speakers(list(files), args.num_spks)
        licences = {name: f"recordings from {folder / name}; their licence is their owner's." for name in files}
        noise = None
        if args.noise_folder:
            if args.layout == "wsj0mix":
                parser.error("--noise-folder goes with --layout wham, whamr or librimix")
            noise = {split: Path(args.noise_folder) / split for split in ("tr", "cv", "tt")}
        root = build_corpus(Path(args.out), speakers, dict(zip(("tr", "cv", "tt"), args.mixtures, strict=True)),
                            files, licences, num_spks=args.num_spks, sample_rate=args.sample_rate, seed=args.seed,
                            layout=args.layout, noise_folders=noise)
    except (OSError, ValueError, KeyError) as exc:
        print(f"python -m sepmamba_sb.data: {exc}", file=sys.stderr)
        return 2
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
