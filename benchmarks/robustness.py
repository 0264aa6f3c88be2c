#!/usr/bin/env python3
"""How separators fare on audio unlike the benchmark's: one column per model, one row per measure.

    python benchmarks/robustness.py sepmamba-minimix-real demo/model --readme benchmarks/README.md

Each MODEL_OR_RUN is a shipped model's name (``python -m sepmamba_sb.pretrained``), a hub folder
(``python -m sepmamba_sb.hub export``), or a training run's output folder (exported first, to a
temporary folder). The conditions (:mod:`sepmamba_sb.robustness`) are built from the test voices of
``--corpus`` (default: the demo's MiniMix, built if missing), the same audio for every model.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import torch
from report import publish

from sepmamba_sb.hub.layout import INTERFACE_FILE
from sepmamba_sb.profiling import machine_description
from sepmamba_sb.robustness import Settings, evaluate, format_table


def load(spec: str, scratch: Path):
    """(label, loaded separator) for a shipped name, a hub folder or a run folder."""
    from sepmamba_sb.hub import export
    from sepmamba_sb.inference import SepMambaSeparation
    from sepmamba_sb.pretrained import resolve

    folder = Path(resolve(spec))
    if not folder.is_dir():
        raise SystemExit(f"robustness.py: {spec} is neither a shipped model, a hub folder nor a run folder")
    if not (folder / INTERFACE_FILE).is_file():  # a run folder: export its best checkpoint
        folder = export(folder, scratch / folder.name)
    return spec, SepMambaSeparation.from_hparams(source=str(folder), savedir=str(folder))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", metavar="MODEL_OR_RUN")
    parser.add_argument("--corpus", type=Path, default=None,
                        help="a MiniMix corpus (default: the demo's, built if missing)")
    parser.add_argument("--mixtures", type=int, default=Settings.mixtures, help="per short condition")
    parser.add_argument("--recordings", type=int, default=Settings.recordings, help="60 s conversations")
    parser.add_argument("--output", default=None, help="also write the table to this markdown file")
    parser.add_argument("--readme", type=Path, default=None,
                        help="put the table between the README's <!-- robustness:begin/end --> lines")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    args = parser.parse_args(argv)
    if args.mixtures < 2 or args.recordings < 1:
        parser.error("--mixtures must be at least 2 and --recordings at least 1")
    torch.set_num_threads(args.threads)
    if args.corpus is None:
        from sepmamba_sb.data.minimix import cache_dir, prepare_minimix

        args.corpus = prepare_minimix(cache_dir() / "minimix", "demo")
    settings = Settings(mixtures=args.mixtures, recordings=args.recordings)
    results = {}
    with tempfile.TemporaryDirectory() as scratch:
        for spec in args.models:
            name, model = load(spec, Path(scratch))
            results[name] = evaluate(model, args.corpus, settings)
    command = " ".join(["python benchmarks/robustness.py", *args.models,
                        *([f"--mixtures {args.mixtures}"] if args.mixtures != Settings.mixtures else []),
                        *([f"--recordings {args.recordings}"] if args.recordings != Settings.recordings else [])])
    footer = (f"\n\nMiniMix tt voices ({args.corpus.name}), seed {settings.seed}; `{command}` on "
              f"{machine_description('cpu')}.")
    publish(format_table(results) + footer, args.output, args.readme, "robustness")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
