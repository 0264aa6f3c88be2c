#!/usr/bin/env python3
"""Make a training run of this recipe a model that ships with the package (``sepmamba_sb/pretrained/<name>/``).

    python ship.py RUN --name sepmamba-minimix-real --command "python train.py hparams/sepmamba-minimix-real.yaml ..."

1. Export the run's best checkpoint (by cv SI-SNR) as a hub folder (``sepmamba_sb.hub.export``); its
   test mixture is the run's first tt mixture, shipped with its references.
2. Separate the test mixture as a user would (``separate_file``) and state its SI-SNRi in the card
   (``tests/test_pretrained.py`` checks the folder still gives it).
3. Draw the training curve and measure the robustness table (``sepmamba_sb.robustness``; also kept in
   ``robustness.json`` for ``make demo``'s comparison); both go into the card, with the training command.
4. Run the hub check. Nothing in the folder is written by hand.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run", type=Path, help="the training run's output folder")
    parser.add_argument("--name", required=True, help="the shipped model's name (its folder)")
    parser.add_argument("--command", required=True, help="the training command, as the card states it")
    parser.add_argument("--corpus", type=Path, default=None, help="robustness corpus (default: the demo's)")
    args = parser.parse_args(argv)

    import torch

    from sepmamba_sb.audio import read_audio, write_audio
    from sepmamba_sb.data.minimix import cache_dir, prepare_minimix
    from sepmamba_sb.hub import check, export
    from sepmamba_sb.hub.layout import CARD_FILE, TEST_MIXTURE
    from sepmamba_sb.inference import SepMambaSeparation
    from sepmamba_sb.metrics import score_utterance
    from sepmamba_sb.plots import training_curve
    from sepmamba_sb.pretrained import ROBUSTNESS_FILE
    from sepmamba_sb.profiling import machine_description
    from sepmamba_sb.robustness import Settings, evaluate, format_table
    from sepmamba_sb.runs import load_training_run, total_minutes, training_log

    out = REPO / "sepmamba_sb" / "pretrained" / args.name
    folder = export(args.run, out)
    hparams = load_training_run(args.run)
    from speechbrain.dataio.dataio import load_data_csv

    rows = load_data_csv(hparams["test_data"], replacements={"data_root": hparams["data_folder"]})
    row = next(iter(rows.values()))  # export's test mixture; the CSV names its references too
    references = [read_audio(row[f"s{n}_wav"])[0] for n in range(1, hparams["num_spks"] + 1)]
    for n, reference in enumerate(references, 1):
        write_audio(folder / f"test_mixture_s{n}.wav", reference, hparams["sample_rate"], subtype="FLOAT")

    model = SepMambaSeparation.from_hparams(source=str(folder), savedir=str(folder))
    est = model.separate_file(folder / TEST_MIXTURE)[0]
    mix = read_audio(folder / TEST_MIXTURE)[0]
    score = score_utterance(est, torch.stack(references, -1), mix)["si-snr_i"]

    log = training_log(args.run)
    training_curve(log, folder / "training_curve.png", f"{args.name}: training on 2 CPU cores")
    corpus = args.corpus or prepare_minimix(cache_dir() / "minimix", "demo")
    settings = Settings()
    results = evaluate(model, corpus, settings)
    machine = machine_description("cpu")
    (folder / ROBUSTNESS_FILE).write_text(json.dumps({"settings": vars(settings), "corpus": corpus.name,
                                                      "machine": machine, "results": results}, indent=1) + "\n")
    best = max(log, key=lambda row: row["valid"])
    card = (folder / CARD_FILE).read_text(encoding="utf-8")
    card += "\n".join([
        "",
        "## Test mixture",
        "",
        f"`{TEST_MIXTURE}` (two unseen voices of the test set; references `test_mixture_s1.wav`, "
        f"`test_mixture_s2.wav`): separated by `separate_file`, test mixture SI-SNRi {score:.2f} dB.",
        "",
        "## How it was trained",
        "",
        f"`cd recipes/MiniMix && {args.command}`: {len(log)} epochs in {total_minutes(log):.0f} minutes of "
        f"training and validation (its log). The best cv epoch, {best['epoch']} (cv SI-SNR {best['valid']:.2f} "
        f"dB), is the one shipped. `python ship.py <run> --name {args.name} --command ...` then made this "
        f"folder, measuring the scores below on {machine}.",
        "",
        "![cv and training loss per epoch](training_curve.png)",
        "",
        "## Robustness",
        "",
        "Measured with `python benchmarks/robustness.py " + args.name + "` (sepmamba_sb.robustness: conditions "
        f"built from MiniMix's tt voices, seed {settings.seed}) on {machine}:",
        "",
        format_table({args.name: results}),
        "",
    ])
    (folder / CARD_FILE).write_text(card, encoding="utf-8")
    shared = check(folder)
    print(shared.report())
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    print(f"{folder}: {size:.1f} MB; test mixture SI-SNRi {score:.2f} dB")
    return 0 if shared.ok else 1


if __name__ == "__main__":
    sys.exit(main())
