"""Where a separator's inference time goes: torch.profiler's operator table, grouped by kind.

Usage::

    python benchmarks/profile_ops.py                                  # SepMamba S, SepFormer, Conv-TasNet
    python benchmarks/profile_ops.py --models sepmamba-S --seconds 4 --threads 2 --top 15
    python benchmarks/profile_ops.py --output benchmarks/results/profile-cpu.md
    python benchmarks/profile_ops.py --models sepmamba-S-causal --stream-ms 32 --threads 1   # one stream chunk
    python benchmarks/profile_ops.py --models sepmamba-S --precision bf16   # converted by to_precision

For each model of the registry (``benchmarks/registry.py``), at its own sample rate, one warm-up
pass, then ``--passes`` profiled ``torch.no_grad`` forward passes of a batch of one ``--seconds``
mixture on the CPU. It prints, per pass: the wall time, the self CPU time of each kind of operator
(matrix products, convolutions, the selective scan, element-wise and normalisation work, copies and
layout changes, the rest) and the ``--top`` operators by self CPU time. Explains the targets of
``efficiency.py`` that a model misses. With ``--stream-ms``, a causal SepMamba's ``forward_streaming`` on
chunks of that length (after 20 warm-up chunks) takes the pass's place: where ``benchmarks/streaming.py``'s
time per chunk goes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict

import torch
from registry import build, entries, rates
from report import print_and_save
from torch.profiler import ProfilerActivity, profile

# operator name -> kind; the first pattern contained in the name wins
KINDS = (
    ("selective scan", ("selective_scan",)),
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::matmul", "aten::linear",
                         "aten::_scaled_dot_product", "aten::scaled_dot_product")),
    ("convolutions", ("conv", "aten::mkldnn_convolution")),
    ("recurrent (LSTM)", ("lstm", "aten::_thnn_fused_lstm", "rnn")),
    ("copies and layout", ("aten::copy_", "aten::contiguous", "aten::clone", "aten::cat", "aten::pad",
                           "aten::constant_pad", "aten::flip", "aten::stack", "aten::index", "aten::fill_",
                           "aten::zero_", "aten::empty", "aten::to", "aten::_to_copy")),
    ("element-wise and norms", ("aten::add", "aten::mul", "aten::sub", "aten::div", "aten::silu", "aten::relu",
                                "aten::sigmoid", "aten::tanh", "aten::exp", "aten::softplus", "aten::norm",
                                "aten::layer_norm", "aten::native_layer_norm", "aten::group_norm",
                                "aten::native_group_norm", "aten::mean", "aten::var", "aten::sum", "aten::sqrt",
                                "aten::prelu", "aten::_prelu", "aten::gelu", "aten::softmax", "aten::_softmax",
                                "aten::addcmul", "aten::pow", "aten::rsqrt", "aten::where", "aten::clamp")),
)


def kind_of(name: str) -> str:
    lowered = name.lower()
    for kind, patterns in KINDS:
        if any(p.lower() in lowered for p in patterns):
            return kind
    return "other"


def profile_model(name: str, seconds: float, passes: int, top: int, stream_ms: float | None = None,
                  precision: str = "fp32") -> list[str]:
    from sepmamba_sb.precision import to_precision

    model, entry = build(name, torch.device("cpu"))
    to_precision(model.eval(), precision)
    if stream_ms is None:
        mix = torch.randn(1, int(seconds * entry.sample_rate))
        run, warmup, unit = (lambda: model(mix)), 1, "pass"
    else:
        context = model.make_streaming_context(1)
        chunk = torch.randn(1, max(1, round(stream_ms * entry.sample_rate / 1000)))
        run, warmup, unit = (lambda: model.forward_streaming(chunk, context)), 20, f"{stream_ms:g} ms chunk"
    with torch.no_grad():
        for _ in range(warmup):
            run()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            for _ in range(passes):
                run()
            wall_ms = (time.perf_counter() - start) * 1000 / passes
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    by_kind = defaultdict(float)
    for event in events:
        by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1000 / passes
    profiled = sum(by_kind.values())
    label = name if precision == "fp32" else f"{name} in {precision}"
    lines = [f"### {label}: {wall_ms:.1f} ms per {unit} ({profiled:.1f} ms of operator self time)", "",
             f"| kind | ms per {unit} | share |", "|---|---|---|"]
    for kind, ms in sorted(by_kind.items(), key=lambda item: -item[1]):
        lines.append(f"| {kind} | {ms:.1f} | {100 * ms / profiled:.0f}% |")
    lines += ["", f"| operator | kind | calls per {unit} | ms per {unit} | share |", "|---|---|---|---|---|"]
    for event in sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]:
        ms = event.self_cpu_time_total / 1000 / passes
        lines.append(f"| `{event.key}` | {kind_of(event.key)} | {event.count // passes} | {ms:.1f} "
                     f"| {100 * ms / profiled:.0f}% |")
    return lines + [""]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["sepmamba-S", "sepformer", "convtasnet"],
                        help=f"from {', '.join(entries())}")
    parser.add_argument("--seconds", type=float, default=4.0, help="mixture length (default 4 s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads (default: all cores)")
    parser.add_argument("--passes", type=int, default=3, help="profiled forward passes per model (default 3)")
    parser.add_argument("--top", type=int, default=12, help="operators listed per model (default 12)")
    parser.add_argument("--output", help="also write the tables to this markdown file")
    parser.add_argument("--stream-ms", type=float, help="profile forward_streaming on chunks of this length (causal "
                        "SepMambas) instead of whole passes")
    parser.add_argument("--precision", choices=("fp32", "bf16", "int8"), default="fp32",
                        help="inference precision (sepmamba_sb.precision.to_precision; default fp32)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads <= 0 or args.passes <= 0 or args.top <= 0:
        parser.error("--seconds, --threads, --passes and --top must be positive")
    if args.stream_ms is not None and args.stream_ms <= 0:
        parser.error("--stream-ms must be positive")
    torch.set_num_threads(args.threads)

    from sepmamba_sb.profiling import machine_description

    unknown = [m for m in args.models if m not in entries()]
    if unknown:
        parser.error(f"unknown models {unknown}; choose from {', '.join(entries())}")
    what = (f"forward pass, {args.seconds:g} s" if args.stream_ms is None else
            f"streamed chunk of {args.stream_ms:g} ms (forward_streaming)")
    lines = [f"Self CPU time per {what} at {rates(args.models)}, batch 1, torch.no_grad, "
             f"mean of {args.passes} profiled calls. Machine: {machine_description('cpu')}.", ""]
    for name in args.models:
        print(f"profiling {name} ...", file=sys.stderr, flush=True)
        lines += profile_model(name, args.seconds, args.passes, args.top, args.stream_ms, args.precision)
    print_and_save("\n".join(lines).rstrip(), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
