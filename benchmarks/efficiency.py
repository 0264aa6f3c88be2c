"""The seed paper's efficiency table, measured: SepMamba beside SpeechBrain's SepFormer, Conv-TasNet, DPRNN.

Usage::

    python benchmarks/efficiency.py --readme benchmarks/README.md   # 4 s at 8 kHz, batch 1, CPU, all cores
    python benchmarks/efficiency.py --device cuda        # on a GPU
    python benchmarks/efficiency.py --quick --out /tmp/e # tiny sizes, < 3 min on 2 CPU cores (CI smoke test)
    python benchmarks/efficiency.py --models sepmamba-S sepformer --seconds 8 --batch 2 --threads 1
    python benchmarks/efficiency.py --precision fp32 bf16 int8 --models sepmamba-S sepformer convtasnet \
        --readme benchmarks/README.md                    # the same models in bf16 and int8 (CPU)

Models are the registry's (``benchmarks/registry.py``: ``benchmarks/separators/<name>.yaml``; the
SpeechBrain ones are the model sections of their upstream WSJ0Mix recipes), each fed mixtures at its
own ``sample_rate``. For each model, in a fresh process:

- params, and GMAC per second of audio (:func:`sepmamba_sb.profiling.count_macs`, selective scan
  included);
- inference forward time: the median of ``--repeats`` (5 on CPU, 20 on CUDA by default)
  ``torch.no_grad`` passes after 3 warm-up passes (on CUDA, at least 1 s of them), since a fresh
  process's first passes are slower (oneDNN primitives, allocator pools);
- training step time: forward + PIT SI-SNR + backward + Adam step, the median likewise;
- peak memory of one inference pass and of one training step, in a second fresh process
  (:func:`sepmamba_sb.profiling.peak_memory`: resident-set growth on CPU with glibc set up to
  return freed memory, which would slow the timings; ``max_memory_allocated`` growth on CUDA);
- inference time (median of ``--repeats // 2``) and memory at each of ``--lengths``, for the plot.

With ``--precision``, each model runs converted by :func:`sepmamba_sb.precision.to_precision` in each
precision (SpeechBrain's separators as PyTorch supports it, so ratios compare like with like):
inference time and peak, the weights' bytes and the resident memory of the loaded model, into
``efficiency-<device>-precision.{md,csv}`` (README section ``efficiency-<device>-precision``); no
training step, no plot. ``--keep-freed-memory`` times every model with glibc keeping freed memory
(:func:`sepmamba_sb.profiling.keep_freed_memory`; file and section suffix ``-kept-memory``).

It writes ``efficiency-<device>.md`` (a markdown table: the seed table's columns plus the training
step), ``efficiency-<device>.csv`` and ``efficiency-<device>.png`` (inference time and memory against
input length, log scales) into ``--out`` (default ``benchmarks/results``). ``--readme`` also replaces
the README section between ``<!-- efficiency-<device>:begin -->`` and ``<!-- efficiency-<device>:end -->``
with that table and plot, so the README's numbers are this script's output, never typed by hand.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import torch
from registry import build, entries, rates
from report import publish

HERE = Path(__file__).resolve().parent
# SepMamba S against SpeechBrain's separators on the CPU: (model, quantity, the ratio aimed at). Times:
# the other model's time over S's (>= aim); memory: S's peak over the other's (<= aim). Issue 14's: S
# inference >= 7x faster than SepFormer, training step >= 5x, inference within 1.5x of Conv-TasNet's.
CPU_TARGETS = (("sepformer", "forward_ms", 7.0), ("sepformer", "forward_peak_mb", 0.5),
               ("sepformer", "train_ms", 5.0), ("convtasnet", "forward_ms", 1 / 1.5))


def probe(name: str, seconds: float, batch: int, lengths: list[float], device: torch.device, repeats: int,
          mode: str, precision: str | None = None) -> dict:
    """Measure one model in this process (started fresh by :func:`measure`).

    ``mode="time"``: params, GMAC/s, and median inference and training-step times at ``seconds``,
    and inference times at every length of ``lengths``. ``mode="memory"``: the peaks of the same
    passes, in a process whose allocator is set up for it (timings there would be distorted).
    ``precision``: the model converted to it, inference only, plus its weights' bytes and (memory mode)
    the resident memory once loaded.
    """
    from speechbrain.nnet.losses import get_si_snr_with_pitwrapper

    from sepmamba_sb.precision import to_precision
    from sepmamba_sb.profiling import (
        count_macs,
        count_parameters,
        peak_memory,
        resident_bytes,
        time_call,
        track_memory_exactly,
    )

    if mode == "memory":
        track_memory_exactly()
    model, entry = build(name, device)
    if precision is not None:
        to_precision(model, precision)
    rate = entry.sample_rate
    samples = int(seconds * rate)
    mix = torch.randn(batch, samples, device=device)

    def forward(inputs=mix):
        with torch.no_grad():
            model(inputs)

    def measure_call(fn, reps):
        """Time mode: the median after 3 warm-up runs. Memory mode: the peak of the second run (the
        first allocates once-per-process state, such as Adam's)."""
        if mode == "time":
            return time_call(fn, device, reps, warmup=3)
        fn()
        return (peak_memory(fn, device) or 0) / 2**20

    result = {"model": name, "seconds": seconds}
    if precision is not None:
        result["weights_mb"] = sum(t.numel() * t.element_size() for t in model.state_dict().values()) / 2**20
        if mode == "memory":
            result["resident_mb"] = resident_bytes() / 2**20
        result["forward"] = measure_call(forward, repeats)
        return result
    sources = torch.randn(batch, samples, entry.num_spks, device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        loss = get_si_snr_with_pitwrapper(sources, model(mix)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    if mode == "time":
        result["params"] = count_parameters(model)
        result["gmac_per_s"] = count_macs(model, samples).per_second(rate)
    model.eval()
    result["forward"] = measure_call(forward, repeats)
    model.train()
    result["train"] = measure_call(step, repeats)
    model.eval()
    result["curve"] = {}
    for length in lengths:
        inputs = torch.randn(batch, int(length * rate), device=device)
        result["curve"][str(length)] = measure_call(lambda inputs=inputs: forward(inputs), max(1, repeats // 2))
    return result


def measure(name: str, args, precision: str | None = None) -> dict:
    """Time and memory of one model (in ``precision``: inference only), each measured in a fresh process."""
    merged = {}
    for mode in ("time", "memory"):
        cmd = [sys.executable, __file__, "--probe", name, "--mode", mode, "--seconds", str(args.seconds),
               *(["--precision", precision] if precision else []),
               *(["--keep-freed-memory"] if args.keep_freed_memory else []),
               "--batch", str(args.batch),
               "--device", args.device, "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--lengths", *map(str, args.lengths)]
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise RuntimeError(f"measuring {name} ({mode}) failed:\n{done.stderr[-3000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        suffix = "_ms" if mode == "time" else "_peak_mb"
        merged.update({k: v for k, v in result.items() if k not in ("forward", "train", "curve")})
        merged[f"forward{suffix}"] = result["forward"]
        if precision is None:
            merged[f"train{suffix}"], merged[f"curve{suffix}"] = result["train"], result["curve"]
    return merged


def plot(curves: dict, path: Path, machine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_mem) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, row in curves.items():
        lengths = [float(k) for k in row["curve_ms"]]
        style = "o-" if name.startswith("sepmamba") else "s--"
        ax_time.plot(lengths, [v / 1000 for v in row["curve_ms"].values()], style, label=name)
        ax_mem.plot(lengths, [max(v, 1e-3) for v in row["curve_peak_mb"].values()], style, label=name)
    for ax, label in ((ax_time, "inference time (s)"), (ax_mem, "inference peak memory (MB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input length (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    ax_time.legend(fontsize=8)
    fig.suptitle(f"Cost against input length. {machine}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def target_lines(rows: dict, device: torch.device) -> list[str]:
    """SepMamba S against SepFormer and Conv-TasNet, where measured, with ``CPU_TARGETS`` on the CPU."""
    s = rows.get("sepmamba-S")
    if s is None:
        return []
    words = {"forward_ms": "inference {:.1f}x faster than {}", "forward_peak_mb": "inference peak memory {:.2f}x {}'s",
             "train_ms": "training step {:.1f}x faster than {}'s"}
    labels = {"sepformer": "SepFormer", "convtasnet": "Conv-TasNet"}
    checks = []
    for other, quantity, aim in CPU_TARGETS:
        if other not in rows:
            continue
        if quantity == "forward_peak_mb":
            text, target = words[quantity].format(s[quantity] / max(rows[other][quantity], 1e-9), labels[other]), \
                f"<= {aim:g}x"
        elif aim < 1:  # a time allowed to exceed the other's: say by how much
            text = f"inference time {s[quantity] / rows[other][quantity]:.2f}x {labels[other]}'s"
            target = f"<= {1 / aim:g}x"
        else:
            text, target = words[quantity].format(rows[other][quantity] / s[quantity], labels[other]), f">= {aim:g}x"
        checks.append(text + (f" (target {target})" if device.type == "cpu" else ""))
    return ["", "SepMamba S: " + "; ".join(checks) + "."] if checks else []


def precision_table(args, command: str, machine: str, device: torch.device) -> int:
    """``--precision``: every model in every precision, one row each, and S's ratios."""
    from sepmamba_sb.precision import check_precision

    for precision in args.precision:
        check_precision(precision, "--precision")
    from tqdm import tqdm

    jobs = [(m, p) for p in args.precision for m in args.models]
    rows = {(m, p): measure(m, args, p) for m, p in tqdm(jobs, desc="efficiency per precision", unit="model")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (f"efficiency-{device.type}-precision" + ("-kept-memory" if args.keep_freed_memory else ""))
    fields = ["model", "precision", "forward_ms", "forward_peak_mb", "weights_mb", "resident_mb"]
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["seconds", "batch", "threads", *fields])
        writer.writeheader()
        for (name, precision), row in rows.items():
            writer.writerow({"seconds": args.seconds, "batch": args.batch, "threads": args.threads,
                             "model": name, "precision": precision, **{k: row[k] for k in fields[2:]}})
    lines = [f"`{command}`: {args.seconds:g} s at {rates(args.models)}, batch {args.batch}, {device.type}, inference "
             f"(torch.no_grad); median of {args.repeats} runs after 3 warm-up runs; inference peak is resident-set "
             f"growth during a pass, resident the process's memory with the model loaded and converted"
             f"{'; timed with glibc keeping freed memory' if args.keep_freed_memory else ''}. "
             f"Machine: {machine}.", "",
             "| model | precision | inference ms | inference peak MB | weights MB | resident MB |",
             "|---|---|---|---|---|---|"]
    for (name, precision), r in rows.items():
        lines.append(f"| {name} | {precision} | {number(r['forward_ms'])} | {number(r['forward_peak_mb'])} "
                     f"| {number(r['weights_mb'])} | {number(r['resident_mb'])} |")
    s = {p: rows[("sepmamba-S", p)] for p in args.precision if ("sepmamba-S", p) in rows}
    notes = []
    if "fp32" in s:
        best = min(s, key=lambda p: s[p]["forward_ms"])
        speedup = s["fp32"]["forward_ms"] / s[best]["forward_ms"]
        notes.append(f"SepMamba S's fastest precision is {best}: {speedup:.2f}x its fp32 time (target >= 1.8x)")
        if ("sepformer", "fp32") in rows:
            ratio = rows[("sepformer", "fp32")]["forward_ms"] / s[best]["forward_ms"]
            notes.append(f"{ratio:.1f}x faster than fp32 SepFormer (target >= 10x)")
        if ("sepformer", best) in rows:
            notes.append(f"{rows[('sepformer', best)]['forward_ms'] / s[best]['forward_ms']:.1f}x faster than "
                         f"SepFormer in {best} (target >= 1.5x)")
        if "int8" in s:
            peak, resident = (s["int8"][k] / s["fp32"][k] for k in ("forward_peak_mb", "resident_mb"))
            notes.append(f"int8 inference peak {peak:.2f}x fp32's, resident {resident:.2f}x (target <= 0.5x)")
    if notes:
        lines += ["", "; ".join(notes) + "."]
    publish("\n".join(lines), str(stem.with_suffix(".md")), args.readme, stem.name)
    return 0


def number(value: float) -> str:
    """Three significant figures at most, no exponent: 1234, 123, 12.3, 1.23, 0.12."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}" if value >= 0.1 else f"{value:.2f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=None, help="default: every registered separator")
    parser.add_argument("--seconds", type=float, default=4.0, help="input length for the table (default 4)")
    parser.add_argument("--batch", type=int, default=1, help="mixtures per pass (default 1)")
    parser.add_argument("--lengths", type=float, nargs="*", default=[1, 2, 4, 8, 16],
                        help="input lengths (s) for the plot; none: no plot")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:index]")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--repeats", type=int, help="timed runs per measurement (median; default 5 on CPU, 20 on CUDA)")
    parser.add_argument("--out", default=str(HERE / "results"), help="folder for efficiency-<device>.{md,csv,png}")
    parser.add_argument("--readme", type=Path, help="also rewrite this README's efficiency-<device> section")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes: 0.25 s, 1 repeat, plot at 0.25/0.5 s")
    parser.add_argument("--precision", nargs="+", choices=("fp32", "bf16", "int8"),
                        help="CPU inference precisions to compare (sepmamba_sb.precision): the precision table")
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="with --precision: time with glibc keeping freed memory (no page faults on reuse)")
    parser.add_argument("--probe", help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=("time", "memory"), default="time", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 20 if args.device.startswith("cuda") else 5
    for name in ("seconds", "batch", "threads", "repeats"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive, got {getattr(args, name)}")
    if any(length <= 0 for length in args.lengths):
        parser.error(f"--lengths must be positive, got {args.lengths}")
    torch.set_num_threads(args.threads)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        parser.error(f"--device {args.device!r}: {error}")
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA GPU is available")
    if device.type not in ("cpu", "cuda"):
        parser.error(f"--device {args.device!r}: choose cpu or cuda")
    if args.probe:
        if args.keep_freed_memory and args.mode == "time":
            from sepmamba_sb.profiling import keep_freed_memory

            keep_freed_memory()
        precision = args.precision[0] if args.precision else None
        result = probe(args.probe, args.seconds, args.batch, args.lengths, device, args.repeats, args.mode, precision)
        print(json.dumps(result))
        return 0
    command = "python benchmarks/efficiency.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    if args.quick:
        args.seconds, args.repeats, args.lengths = 0.25, 1, [0.25, 0.5]
    registry = entries()
    args.models = args.models or list(registry)
    unknown = [m for m in args.models if m not in registry]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(registry)}")
    if args.readme and not args.readme.is_file():
        parser.error(f"--readme {args.readme}: no such file")

    from tqdm import tqdm

    from sepmamba_sb.profiling import machine_description

    machine = machine_description(device)
    if args.precision:
        return precision_table(args, command, machine, device)
    rows = {}
    for name in tqdm(args.models, desc=f"efficiency at {args.seconds:g} s (plot: {args.lengths} s)", unit="model"):
        rows[name] = measure(name, args)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"efficiency-{device.type}"
    fields = ["model", "params", "gmac_per_s", "forward_ms", "train_ms", "forward_peak_mb", "train_peak_mb"]
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["seconds", "batch", "device", *fields])
        writer.writeheader()
        for row in rows.values():
            writer.writerow({"seconds": args.seconds, "batch": args.batch, "device": args.device,
                             **{k: row.get(k) for k in fields}})
    memory = "resident-set" if device.type == "cpu" else "max_memory_allocated"
    lines = [
        f"`{command}`: {args.seconds:g} s at {rates(args.models)}, batch {args.batch}, {device.type}; median of "
        f"{args.repeats} runs after 3 warm-up runs; peak memory is {memory} growth. Machine: {machine}.",
        "",
        "| model | params | GMAC/s | GMAC/s (paper) | inference ms | train step ms | inference peak MB "
        "| train step peak MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        paper = registry[name].paper_gmac_per_s
        paper = "-" if paper is None else str(paper)
        lines.append(f"| {name} | {r['params'] / 1e6:.2f} M | {r['gmac_per_s']:.2f} | {paper} "
                     f"| {number(r['forward_ms'])} | {number(r['train_ms'])} | {number(r['forward_peak_mb'])} "
                     f"| {number(r['train_peak_mb'])} |")
    lines += target_lines(rows, device)
    if args.lengths:
        png = stem.with_suffix(".png")
        plot(rows, png, machine)
        where = os.path.relpath(png, (args.readme.resolve().parent if args.readme else out.resolve()))
        lines += ["", f"![inference time and peak memory against input length, {device.type}]({where})"]
    publish("\n".join(lines), str(stem.with_suffix(".md")), args.readme, f"efficiency-{device.type}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
