"""Streaming separation speed and memory of the causal SepMambas, chunk by chunk.

Usage::

    python benchmarks/streaming.py --readme benchmarks/README.md   # S/M-causal, strict and paper, 1 and 2 threads
    python benchmarks/streaming.py --device cuda          # on a GPU
    python benchmarks/streaming.py --flat-minutes 10      # also: RSS after 10 min of streaming vs after 10 s
    python benchmarks/streaming.py --quick --out /tmp/s   # tiny model and stream (CI smoke test)
    python benchmarks/streaming.py --precision fp32 bf16 int8 --models S-causal --threads 1 \
        --readme benchmarks/README.md                     # S-causal in bf16 and int8 beside fp32

For each model (the paper's ``S-causal`` and ``M-causal`` configurations, each as the paper's model
and with ``strict_causal=True``), thread count and chunk length (8, 16, 32, 64 ms at 8 kHz), in a
fresh process: ``forward_streaming`` is run on ``--seconds`` of audio after 20 warm-up chunks, and the
table gives the compute time per chunk (median and 95th percentile), the real-time factor (mean
chunk time / chunk duration) and the algorithmic latency (one chunk plus the model's look-ahead).
A second fresh process per model streams 60 s in 32 ms chunks and reports the peak resident memory
above the loaded model (:func:`sepmamba_sb.profiling.peak_memory`). For S-causal strict on one
thread, the smallest chunk (of 1, 2, 4, 8, 16, 32, 64 ms) with a real-time factor under 1 is reported.

``--precision`` runs each model converted by :func:`sepmamba_sb.precision.to_precision` in each of the
given precisions (a column of the table), into ``streaming-<device>-precision.{md,csv}`` unless it is
fp32 alone.

Writes ``streaming-<device>.md`` and ``.csv`` into ``--out`` (default ``benchmarks/results``);
``--readme`` replaces the README section between ``<!-- streaming-<device>:begin -->`` and
``<!-- streaming-<device>:end -->`` with the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from report import publish

HERE = Path(__file__).resolve().parent
RATE = 8000
MODELS = ("S-causal", "M-causal")
VARIANTS = ("strict", "paper")
RTF_SEARCH_MS = (1, 2, 4, 8, 16, 32, 64)


def build(model: str, variant: str, device: torch.device, precision: str = "fp32"):
    """The causal SepMamba ``model`` (a ``CONFIGS`` name, or ``tiny``) as the paper has it or strict, in
    ``precision`` (:func:`sepmamba_sb.precision.to_precision`)."""
    from sepmamba_sb.lobes import CONFIGS, SepMamba
    from sepmamba_sb.precision import to_precision

    config = {"dim": 8, "num_blocks": 1, "causal": True} if model == "tiny" else dict(CONFIGS[model])
    return to_precision(SepMamba(**config, strict_causal=variant == "strict").to(device).eval(), precision)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_chunks(model, chunk: int, seconds: float, device: torch.device) -> dict:
    """Per-chunk compute times (ms) of a stream of ``seconds`` after 20 warm-up chunks."""
    context = model.make_streaming_context(1)
    g = torch.Generator().manual_seed(0)
    count = max(1, round(seconds * RATE / chunk))
    chunks = [torch.randn(1, chunk, generator=g).to(device) for _ in range(min(count, 64))]
    times = []
    with torch.no_grad():
        for i in range(20 + count):
            sync(device)
            start = time.perf_counter()
            model.forward_streaming(chunks[i % len(chunks)], context)
            sync(device)
            if i >= 20:
                times.append(1000 * (time.perf_counter() - start))
    times.sort()
    chunk_ms = 1000 * chunk / RATE
    return {"median_ms": times[len(times) // 2], "p95_ms": times[min(len(times) - 1, int(0.95 * len(times)))],
            "rtf": sum(times) / len(times) / chunk_ms, "lookahead": context.delay}


def probe(args, device: torch.device) -> dict:
    """One model in this fresh process: times for every chunk length, or the memory of a 60 s stream."""
    from sepmamba_sb.profiling import count_parameters, peak_memory, track_memory_exactly

    if args.mode == "memory":
        track_memory_exactly()
    model = build(args.probe, args.variant, device, args.precision[0])
    if args.mode == "memory":
        chunk = round(0.032 * RATE)
        context = model.make_streaming_context(1)
        block = torch.randn(1, chunk, device=device)

        def run(seconds):
            with torch.no_grad():
                for _ in range(round(seconds * RATE / chunk)):
                    model.forward_streaming(block, context)

        run(1.0)  # once-per-process allocations first
        return {"peak_mb": (peak_memory(lambda: run(args.memory_seconds), device) or 0) / 2**20}
    if args.mode == "flat":
        return flat(model, args.flat_minutes, device)
    result = {"params": count_parameters(model), "chunks": {}}
    for ms in args.chunks_ms:
        result["chunks"][str(ms)] = time_chunks(model, max(1, round(ms * RATE / 1000)), args.seconds, device)
    return result


def flat(model, minutes: float, device: torch.device) -> dict:
    """Resident memory after 10 s and after ``minutes`` of streaming in 32 ms chunks."""
    from sepmamba_sb.profiling import resident_bytes

    chunk = round(0.032 * RATE)
    context = model.make_streaming_context(1)
    block = torch.randn(1, chunk, device=device)
    total = round(minutes * 60 * RATE / chunk)
    early = None
    from tqdm import tqdm

    with torch.no_grad():
        for i in tqdm(range(total), desc=f"streaming {minutes:g} min", unit="chunk", mininterval=10):
            model.forward_streaming(block, context)
            if i + 1 == round(10 * RATE / chunk):
                early = resident_bytes() / 2**20
    return {"rss_10s_mb": early, "rss_end_mb": resident_bytes() / 2**20}


def run_probe(model: str, variant: str, threads: int, mode: str, args, precision: str = "fp32") -> dict:
    cmd = [sys.executable, __file__, "--probe", model, "--variant", variant, "--mode", mode, "--precision", precision,
           "--threads",
           str(threads), "--device", args.device, "--seconds", str(args.seconds), "--memory-seconds",
           str(args.memory_seconds), "--flat-minutes", str(args.flat_minutes), "--chunks-ms", *map(str, args.chunks_ms)]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"streaming {model} {variant} ({mode}, {threads} threads) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), help=f"default: {' '.join(MODELS)}")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts (default 1 2)")
    parser.add_argument("--chunks-ms", type=float, nargs="+", default=[8, 16, 32, 64], help="chunk lengths (ms)")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio timed per row after warm-up (default 5)")
    parser.add_argument("--memory-seconds", type=float, default=60.0, help="stream length for the memory column")
    parser.add_argument("--flat-minutes", type=float, default=0.0,
                        help="also stream S-causal strict this long (32 ms chunks) and compare RSS with 10 s in")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for streaming-<device>.{md,csv}")
    parser.add_argument("--readme", type=Path, help="also rewrite this README's streaming-<device> section")
    parser.add_argument("--quick", action="store_true", help="a tiny model, 0.5 s streams, 1 thread (smoke test)")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16", "int8"), default=["fp32"],
                        help="inference precisions (sepmamba_sb.precision; default fp32)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="strict", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("time", "memory", "flat"), default="time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("seconds", "memory_seconds"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if any(t < 1 for t in args.threads) or any(ms <= 0 for ms in args.chunks_ms):
        parser.error("--threads and --chunks-ms must be positive")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if args.probe:
        torch.set_num_threads(args.threads[0])
        print(json.dumps(probe(args, device)))
        return 0
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(MODELS)}")
    if args.readme and not args.readme.is_file():
        parser.error(f"--readme {args.readme}: no such file")
    command = "python benchmarks/streaming.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    if args.quick:
        args.models, args.threads, args.seconds, args.memory_seconds = ["tiny"], [1], 0.5, 2.0
    if device.type == "cuda":
        args.threads = [args.threads[0]]

    from tqdm import tqdm

    from sepmamba_sb.precision import check_precision
    from sepmamba_sb.profiling import machine_description

    for precision in args.precision:
        check_precision(precision, "--precision")
    jobs = [(m, v, p) for m in args.models for v in VARIANTS for p in args.precision]
    rows, notes = [], []
    for model, variant, precision in tqdm(jobs, desc="streaming", unit="model"):
        memory = run_probe(model, variant, args.threads[-1], "memory", args, precision)["peak_mb"]
        for threads in args.threads:
            timed = run_probe(model, variant, threads, "time", args, precision)
            for ms, t in timed["chunks"].items():
                rows.append({"model": model, "variant": variant, "precision": precision, "threads": threads,
                             "chunk_ms": float(ms),
                             "median_ms": t["median_ms"], "p95_ms": t["p95_ms"], "rtf": t["rtf"],
                             "latency_ms": float(ms) + 1000 * t["lookahead"] / RATE, "lookahead": t["lookahead"],
                             "peak_mb": memory})
    first = args.models[0]
    search = argparse.Namespace(**{**vars(args), "chunks_ms": list(RTF_SEARCH_MS)})
    for precision in args.precision:
        found = run_probe(first, "strict", 1, "time", search, precision)["chunks"]
        fast = [float(ms) for ms, t in found.items() if t["rtf"] < 1]
        notes.append(f"Smallest chunk with a real-time factor under 1 ({first} strict, {precision}, 1 thread, of "
                     f"{', '.join(f'{ms:g}' for ms in RTF_SEARCH_MS)} ms): "
                     + (f"{min(fast):g} ms (RTF {found[str(min(fast))]['rtf']:.2f})" if fast else "none"))
    if args.flat_minutes > 0:
        result = run_probe(first, "strict", args.threads[-1], "flat", args)
        notes.append(f"Resident memory streaming {first} strict in 32 ms chunks ({args.threads[-1]} thread(s)): "
                     f"{result['rss_10s_mb']:.1f} MB after 10 s, {result['rss_end_mb']:.1f} MB after "
                     f"{args.flat_minutes:g} min ({100 * (result['rss_end_mb'] / result['rss_10s_mb'] - 1):+.2f} %)")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"streaming-{device.type}" + ("" if args.precision == ["fp32"] else "-precision"))
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"`{command}` ({machine_description(device).split(';', 1)[0]}; torch {torch.__version__}; "
             f"{time.strftime('%Y-%m-%d')}; 8 kHz, batch 1)", "",
             "| model | causal | precision | threads | chunk (ms) | median / p95 per chunk (ms) | real-time factor "
             f"| latency (ms) | peak memory over {args.memory_seconds:g} s (MB) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        causal = "strict" if r["variant"] == "strict" else f"paper ({r['lookahead']} samples ahead)"
        lines.append(f"| {r['model']} | {causal} | {r['precision']} | {r['threads']} | {r['chunk_ms']:g} | "
                     f"{r['median_ms']:.1f} / {r['p95_ms']:.1f} | {r['rtf']:.2f} | {r['latency_ms']:.1f} | "
                     f"{r['peak_mb']:.1f} |")
    lines += ["", "Latency: one chunk plus the look-ahead; compute time adds to it. Peak memory: resident memory "
              f"above the loaded model while streaming {args.memory_seconds:g} s in 32 ms chunks.", "",
              *(f"- {n}" for n in notes)]
    publish("\n".join(lines), str(stem.with_suffix(".md")), args.readme, stem.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
