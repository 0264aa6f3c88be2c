#!/usr/bin/env python3
"""The whole job on a CPU: build MiniMix, train a small SepMamba, test it, separate a mixture.

    python demo.py --out demo                      # what `make demo` runs (from the repository root)

Steps:
1. Build the MiniMix corpus (`sepmamba_sb.data.minimix`, as `minimix_prepare.py`): real speech from
   Debian packages, cached in ~/.cache/sepmamba_sb.
2. Train `hparams/sepmamba-minimix.yaml` for its epochs; that run also tests on MiniMix's tt.
3. Export the best checkpoint as a hub folder (`<out>/model`) and check it is ready to share
   (`python -m sepmamba_sb.hub check`: it loads in fresh processes the three ways a user would).
4. Measure it on audio unlike the benchmark's (`sepmamba_sb.robustness`: partial overlap, one voice,
   a noisy room, 60 s conversations) and print that table beside the shipped model's (`robustness.md`).
5. Separate one test mixture with the exported model, the way a user would.
6. Write `mix.wav`, `source1.wav`, `source2.wav`, `spectrogram.png`, `training_curve.png` into `--out`,
   and print a summary.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sepmamba_sb.data.minimix import SpeechFetchError, cache_dir, prepare_minimix

RECIPE = Path(__file__).resolve().parent


def step(message: str) -> None:
    print(f"\n== {message}", flush=True)


def train(corpus: Path, run: Path, epochs: int | None) -> None:
    """Run the recipe in a child process, its output streaming to this terminal."""
    cmd = [sys.executable, "train.py", "hparams/sepmamba-minimix.yaml", "--data_folder", str(corpus),
           "--output_folder", str(run), "--device", "cpu"]
    if epochs is not None:
        cmd += ["--N_epochs", str(epochs)]
    done = subprocess.run(cmd, cwd=RECIPE)
    if done.returncode != 0:
        raise SystemExit(f"training failed (exit {done.returncode}); its log is {run / 'log.txt'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo", help="folder for the results (default ./demo)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default: the yaml's)")
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    out = Path(args.out).resolve()
    started = time.monotonic()

    step("1/6 building the MiniMix corpus (real speech from Debian packages; cached after the first run)")
    try:
        corpus = prepare_minimix(cache_dir() / "minimix", "demo")
    except SpeechFetchError as exc:
        raise SystemExit(f"{exc}\nWithout apt, build a corpus from your own recordings with "
                         "`python -m sepmamba_sb.data --speakers-folder ...` and run train.py on it.") from None
    print(corpus)

    step("2/6 training and testing (the recipe's train.py)")
    run = out / "run"
    shutil.rmtree(run, ignore_errors=True)  # a fresh demonstration each time
    train(corpus, run, args.epochs)
    from sepmamba_sb.metrics import read_results
    from sepmamba_sb.runs import RESULTS_FILE, mean_test_scores, training_log

    means, scores = mean_test_scores(run), read_results(run / RESULTS_FILE, ["si-snr_i"])

    step("3/6 exporting the best checkpoint as a hub folder, and checking it is ready to share")
    from sepmamba_sb.audio import read_audio, write_audio
    from sepmamba_sb.hub import check, export
    from sepmamba_sb.inference import SepMambaSeparation

    model_dir = export(run, out / "model")
    shared = check(model_dir)
    print(shared.report())
    if not shared.ok:
        raise SystemExit("the exported folder fails the hub check (above)")

    step("4/6 robustness: this model beside the shipped one, on audio unlike the benchmark's (its tt voices)")
    from sepmamba_sb.pretrained import available, stored_robustness
    from sepmamba_sb.robustness import Settings, evaluate, format_table

    model = SepMambaSeparation.from_hparams(source=str(model_dir), savedir=str(out / "model"))
    table = {"this demo": evaluate(model, corpus, Settings())}
    for name in available():  # the shipped models' tables, measured alike when they were made
        stored = stored_robustness(name)
        if stored and stored["settings"] == vars(Settings()) and stored["corpus"] == corpus.name:
            table[f"{name} (shipped)"] = stored["results"]
    robustness = format_table(table)
    print(robustness)
    (out / "robustness.md").write_text(robustness + "\n", encoding="utf-8")

    step("5/6 separating a test mixture with the exported model")
    best = max(scores, key=lambda name: scores[name]["si-snr_i"])  # show what the model can do at its best
    mix_path = corpus / "wav8k" / "min" / "tt" / "mix" / f"{best}.wav"
    sources = model.separate_file(mix_path)[0].numpy()  # each source at its level in the mixture
    mix, rate = read_audio(mix_path)
    mix = mix.numpy()
    write_audio(out / "mix.wav", mix, rate)
    for s in range(sources.shape[-1]):
        write_audio(out / f"source{s + 1}.wav", sources[:, s], rate)
    references = [read_audio(mix_path.parent.parent / f"s{s + 1}" / mix_path.name)[0].numpy()
                  for s in range(sources.shape[-1])]

    step("6/6 pictures")
    from sepmamba_sb.plots import spectrograms, training_curve

    spectrograms({"mixture": mix, "estimate 1": sources[:, 0], "estimate 2": sources[:, 1],
                  "reference 1": references[0], "reference 2": references[1]}, rate, out / "spectrogram.png")
    training_curve(training_log(run), out / "training_curve.png", "MiniMix training of a small SepMamba on 2 CPU cores")

    minutes = (time.monotonic() - started) / 60
    print(f"""
== MiniMix demo done in {minutes:.1f} min (results in {out})
Test set ({len(scores)} mixtures of unseen speakers): SI-SNRi {means['si-snr_i']:.2f} dB, SDRi {means['sdr_i']:.2f} dB,
SI-SDRi {means['si-sdr_i']:.2f} dB (per mixture: {run / RESULTS_FILE}).
Separated example (SI-SNRi {scores[best]['si-snr_i']:.2f} dB, the test set's best): {out / 'mix.wav'} ->
{out / 'source1.wav'}, {out / 'source2.wav'}
Robustness (this model beside the shipped one): {out / 'robustness.md'}
Pictures: {out / 'spectrogram.png'}, {out / 'training_curve.png'}
Model: {model_dir}   (sepmamba-separate {model_dir} your.wav --out separated/)
Share it: python -m sepmamba_sb.hub push {model_dir} --repo USER/NAME""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
