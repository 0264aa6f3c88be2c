"""``sepmamba-separate MODEL_DIR in.wav [more.wav ...] --out DIR``: separate files with a trained model.

Writes ``<out>/<name>_s1.wav``, ``<name>_s2.wav``, ... at each input's sample rate and length, each
source at its level in the mixture (silence stays silent, a quiet speaker quiet; see
:func:`sepmamba_sb.inference.fit_to_mixture`), or peak-normalised to 0.9 with ``--peak-normalize``.
Exit status 0 when every file was separated, 2 with a one-line reason on the first bad input or
model folder (nothing is written for a file that fails).

``--stream --chunk-ms 32`` (causal models) separates each file as a live stream would be, chunk by
chunk in constant model memory, and reports the real-time factor (compute time / audio time) and the
latency (one chunk plus the model's look-ahead). The files are written aligned with the input (the
look-ahead removed); for a strictly causal model and a file shorter than ``--chunk-seconds`` (one
offline pass) they equal the offline ones up to float round-off.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import soundfile as sf
import torch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sepmamba-separate", description="Separate the speakers of audio files "
                                     "with a trained SepMamba (a folder written by python -m sepmamba_sb.hub export).")
    parser.add_argument("model", help="model folder (hyperparams.yaml + *.ckpt) or SpeechBrain hub id")
    parser.add_argument("inputs", nargs="+", help="audio files to separate")
    parser.add_argument("--out", default="separated", help="output folder (default: ./separated)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--chunk-seconds", type=float, default=None, help="chunk length for long files")
    parser.add_argument("--overlap-seconds", type=float, default=None, help="overlap between chunks")
    parser.add_argument("--savedir", default=None, help="where a hub model is cached (default: the model folder)")
    parser.add_argument("--peak-normalize", action="store_true",
                        help="scale each source to a peak of 0.9 (as SpeechBrain's separate_file) instead of "
                             "keeping its level in the mixture; a silent source becomes loud noise")
    parser.add_argument("--stream", action="store_true",
                        help="separate as a live stream, chunk by chunk (causal models; the file must be at the "
                             "model's rate), and report the real-time factor and latency")
    parser.add_argument("--chunk-ms", type=float, default=32.0, help="with --stream: chunk length (default 32 ms)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    return parser


def stream_file(model, path: Path, chunk_ms: float, progress: bool = True) -> tuple[torch.Tensor, dict]:
    """Separate ``path`` as a stream; return the estimates [T, S] aligned with the file (the look-ahead
    removed) and the timing: ``rtf`` (compute time / audio time), ``latency_ms`` (chunk + look-ahead)."""
    from tqdm import tqdm

    from sepmamba_sb.audio import audio_info

    context = model.make_streaming_context()
    chunks, start = [], time.perf_counter()
    duration = audio_info(path).frames / model.hparams.sample_rate
    with tqdm(total=round(duration, 2), desc=f"streaming {path.name}", unit="s", disable=not progress) as bar:
        for chunk in model.separate_file_streaming(path, chunk_ms, context):
            chunks.append(chunk[0])
            bar.update(min(chunk.shape[1] / model.hparams.sample_rate, bar.total - bar.n))
    seconds = time.perf_counter() - start
    est = torch.cat(chunks)[context.delay:]
    rate = model.hparams.sample_rate
    return est, {"rtf": seconds * rate / est.shape[0], "latency_ms": chunk_ms + 1000 * context.delay / rate,
                 "lookahead_samples": context.delay}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO, format="%(message)s")
    if args.stream and (args.chunk_seconds is not None or args.overlap_seconds is not None):
        print("sepmamba-separate: --stream runs one stream per file; --chunk-seconds and --overlap-seconds "
              "are for offline chunks", file=sys.stderr)
        return 2
    if args.chunk_ms <= 0:
        print(f"sepmamba-separate: --chunk-ms must be > 0, got {args.chunk_ms}", file=sys.stderr)
        return 2
    missing = [p for p in args.inputs if not Path(p).is_file()]
    if missing:
        print(f"sepmamba-separate: no such file: {missing[0]}", file=sys.stderr)
        return 2
    try:
        from sepmamba_sb.audio import audio_info, read_audio
        from sepmamba_sb.inference import SepMambaSeparation, fit_to_mixture

        model = SepMambaSeparation.from_hparams(source=args.model, savedir=args.savedir or args.model,
                                                run_opts={"device": args.device})
    except Exception as exc:  # any failure to load is reported in one line
        print(f"sepmamba-separate: cannot load the model from {args.model}: {type(exc).__name__}: {exc}",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for path in map(Path, args.inputs):
        try:
            rate = audio_info(path).samplerate
            if args.stream:
                sources, timing = stream_file(model, path, args.chunk_ms, progress=not args.quiet)
                sources = fit_to_mixture(sources[None], read_audio(path)[0][None])[0]
                if not args.quiet:
                    print(f"{path}: streamed in {args.chunk_ms:g} ms chunks, real-time factor {timing['rtf']:.3f}, "
                          f"latency {timing['latency_ms']:.1f} ms ({args.chunk_ms:g} ms chunk + "
                          f"{timing['lookahead_samples']} samples of look-ahead)")
            else:
                sources = model.separate_file(path, chunk_seconds=args.chunk_seconds,
                                              overlap_seconds=args.overlap_seconds, progress=not args.quiet)[0]
        except (ValueError, RuntimeError) as exc:
            print(f"sepmamba-separate: {path}: {exc}", file=sys.stderr)
            return 2
        if args.peak_normalize:
            sources = 0.9 * sources / sources.abs().amax(dim=0).clamp_min(1e-8)
        for s in range(sources.shape[-1]):
            sf.write(str(out / f"{path.stem}_s{s + 1}.wav"), sources[:, s].numpy(), rate)
        if not args.quiet:
            print(f"{path} -> {out / path.stem}_s[1-{sources.shape[-1]}].wav")
    return 0


if __name__ == "__main__":
    sys.exit(main())
