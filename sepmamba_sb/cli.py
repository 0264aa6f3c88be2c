"""``sepmamba-separate MODEL in.wav [more.wav ...] --out DIR``: separate files with a trained model (a folder,
a shipped model's name, or a hub id).

Writes ``<out>/<name>_s1.wav``, ``<name>_s2.wav``, ... at each input's sample rate and length, at the
output level ``--level`` (:mod:`sepmamba_sb.inference`): by default each source at its level in the
mixture (silence stays silent, a quiet speaker quiet), ``peak`` (or ``--peak-normalize``) each
peak-normalised to 0.9, ``raw`` the model's own scale. This module parses the arguments and loops
over the files; :class:`sepmamba_sb.inference.SepMambaSeparation` separates them. Exit status 0 when
every file was separated, 2 with a one-line reason on the first bad input or model folder (nothing is
written for a file that fails).

``--stream --chunk-ms 32`` (causal models) separates each file as a live stream would be, chunk by
chunk in constant model memory, and reports the real-time factor (compute time / audio time) and the
latency (one chunk plus the model's look-ahead, and the resamplers' for a file at another rate, which
is resampled as a stream). The files are written aligned with the input (the look-ahead removed); for
a strictly causal model and a file shorter than ``--chunk-seconds`` (one
offline pass) they equal the offline ones up to float round-off.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sepmamba-separate", description="Separate the speakers of audio files "
                                     "with a trained SepMamba (a folder written by python -m sepmamba_sb.hub export).")
    parser.add_argument("model", help="model folder (hyperparams.yaml + *.ckpt), a shipped model's name "
                             "(python -m sepmamba_sb.pretrained), or a SpeechBrain hub id")
    parser.add_argument("inputs", nargs="+", help="audio files to separate")
    parser.add_argument("--out", default="separated", help="output folder (default: ./separated)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="chunk length for long files")
    parser.add_argument("--overlap-seconds", type=float, default=None, help="overlap between chunks")
    parser.add_argument("--savedir", default=None, help="where a hub model is cached (default: the model folder)")
    parser.add_argument("--level", choices=("mixture", "peak", "raw"), default=None,
                        help="output level: each source at its level in the mixture (default), peak-normalised "
                             "to 0.9 (as SpeechBrain's separate_file), or the model's raw scale")
    parser.add_argument("--peak-normalize", action="store_true", help="the same as --level peak")
    parser.add_argument("--stream", action="store_true",
                        help="separate as a live stream, chunk by chunk (causal models; a file at another rate is "
                             "resampled as a stream), and report the real-time factor and latency")
    parser.add_argument("--chunk-ms", type=float, default=32.0, help="with --stream: chunk length (default 32 ms)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default=None,
                        help="CPU inference precision (default: the model's own, fp32 unless exported otherwise)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.stream and (args.chunk_seconds is not None or args.overlap_seconds is not None):
        print("sepmamba-separate: --stream runs one stream per file; --chunk-seconds and --overlap-seconds "
              "are for offline chunks", file=sys.stderr)
        return 2
    if args.peak_normalize and args.level not in (None, "peak"):
        print(f"sepmamba-separate: --peak-normalize and --level {args.level} contradict each other", file=sys.stderr)
        return 2
    level = "peak" if args.peak_normalize else args.level or "mixture"
    if args.chunk_ms <= 0:
        print(f"sepmamba-separate: --chunk-ms must be > 0, got {args.chunk_ms}", file=sys.stderr)
        return 2
    missing = [p for p in args.inputs if not Path(p).is_file()]
    if missing:
        print(f"sepmamba-separate: no such file: {missing[0]}", file=sys.stderr)
        return 2
    try:
        from sepmamba_sb.audio import audio_info, write_audio
        from sepmamba_sb.inference import SepMambaSeparation
        from sepmamba_sb.pretrained import resolve

        source = resolve(args.model)  # a shipped model's name -> its folder
        model = SepMambaSeparation.from_hparams(source=source, savedir=args.savedir or source,
                                                run_opts={"device": args.device}, precision=args.precision)
    except Exception as exc:  # any failure to load is reported in one line
        print(f"sepmamba-separate: cannot load the model from {args.model}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    for path in map(Path, args.inputs):
        try:
            rate = audio_info(path).samplerate
            if args.stream:
                sources, report = model.separate_file_as_stream(path, args.chunk_ms, level, progress=not args.quiet)
                if not args.quiet:
                    print(f"{path}: streamed in {args.chunk_ms:g} ms chunks, real-time factor {report.rtf:.3f}, "
                          f"latency {report.latency_ms:.1f} ms ({args.chunk_ms:g} ms chunk + "
                          f"{report.lookahead} samples of look-ahead"
                          + ("" if rate == model.hparams.sample_rate else ", and resampling as a stream") + ")")
            else:
                sources = model.separate_file(path, chunk_seconds=args.chunk_seconds,
                                              overlap_seconds=args.overlap_seconds, progress=not args.quiet,
                                              level=level)
        except (ValueError, RuntimeError) as exc:
            print(f"sepmamba-separate: {path}: {exc}", file=sys.stderr)
            return 2
        for s in range(sources.shape[-1]):
            write_audio(out / f"{path.stem}_s{s + 1}.wav", sources[0, :, s], rate)
        if not args.quiet:
            print(f"{path} -> {out / path.stem}_s[1-{sources.shape[-1]}].wav")
    return 0


if __name__ == "__main__":
    sys.exit(main())
