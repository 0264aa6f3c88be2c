"""SI-SNRi of a trained model's test set in each CPU inference precision (sepmamba_sb.precision).

Usage::

    python benchmarks/precision_accuracy.py demo/model demo/run/save/wsj_tt.csv \\
        --data-root ~/.cache/sepmamba_sb/minimix --readme benchmarks/README.md

Loads the hub folder (or shipped model name) once per precision with
``SepMambaSeparation.from_hparams(precision=...)``, separates every mixture of the test CSV (a recipe's
``mix_wav``, ``s1_wav``, ``s2_wav``... columns, ``$data_root`` replaced) and reports the mean SI-SNRi and
its change from fp32, with the largest change of one mixture. Writes ``precision-accuracy.md`` into
``--out`` (default ``benchmarks/results``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from report import publish

HERE = Path(__file__).resolve().parent


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="hub folder or shipped model name")
    parser.add_argument("csv", type=Path, help="a recipe's test CSV")
    parser.add_argument("--data-root", default="", help="what $data_root in the CSV stands for")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16", "int8"], choices=("fp32", "bf16", "int8"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--readme", type=Path, help="also rewrite this README's precision-accuracy section")
    args = parser.parse_args(argv)
    if not args.csv.is_file():
        parser.error(f"{args.csv}: no such file")
    if "fp32" not in args.precision:
        parser.error("--precision must include fp32, the reference")
    torch.set_num_threads(args.threads)
    from speechbrain.dataio.dataio import load_data_csv
    from tqdm import tqdm

    from sepmamba_sb.audio import read_audio
    from sepmamba_sb.inference import SepMambaSeparation
    from sepmamba_sb.metrics import score_utterance
    from sepmamba_sb.profiling import machine_description

    root = str(Path(args.data_root).expanduser())
    rows = list(load_data_csv(str(args.csv), replacements={"data_root": root}).values())
    if not rows:
        parser.error(f"{args.csv}: no rows")
    scores = {}
    for precision in args.precision:
        folder = Path(args.model)
        model = SepMambaSeparation.from_hparams(source=args.model, savedir=str(folder) if folder.is_dir() else None,
                                                precision=precision)
        speakers = model.hparams.num_spks
        values = []
        for row in tqdm(rows, desc=f"{precision}", unit="mixture"):
            mix = read_audio(row["mix_wav"])[0]
            targets = torch.stack([read_audio(row[f"s{n + 1}_wav"])[0] for n in range(speakers)], -1)
            values.append(score_utterance(model.separate_batch(mix[None])[0], targets, mix)["si-snr_i"])
        scores[precision] = torch.tensor(values, dtype=torch.float64)
    command = "python benchmarks/precision_accuracy.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    lines = [f"`{command}`: {len(rows)} mixtures. Machine: {machine_description(torch.device('cpu'))}.", "",
             "| precision | SI-SNRi (dB) | change from fp32 (dB) | largest change of one mixture (dB) |",
             "|---|---|---|---|"]
    reference = scores["fp32"]
    for precision, values in scores.items():
        change = values - reference
        lines.append(f"| {precision} | {values.mean():.3f} | {change.mean():+.3f} | {change.abs().max():.3f} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    publish("\n".join(lines), str(out / "precision-accuracy.md"), args.readme, "precision-accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
