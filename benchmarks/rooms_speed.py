"""How fast dynamic mixing makes reverberant, noisy training mixtures on this machine.

Usage::

    python benchmarks/rooms_speed.py                       # 4 s mixtures, WHAMR!'s rooms, 1 and 2 workers
    python benchmarks/rooms_speed.py --items 100 --output benchmarks/results/rooms-speed-cpu.md

The recipes' ``sepmamba_sb.data.mixing.DynamicMixingDataset`` (paper style, two speakers, 4 s crops at 8 kHz) draws
from a folder of synthetic utterances (noise bursts of 2-6 s from 20 speakers; the content does not
change the cost) with a :class:`sepmamba_sb.rooms.RoomSimulator` (WHAMR!'s convention, direct-path
targets: each of WHAMR!'s three RT60 ranges alone, then the three drawn per room as the recipes do) and
a :class:`sepmamba_sb.noise.NoiseSource`, through a ``torch.utils.data.DataLoader`` with 1 and 2
workers, batch 1. It reports mixtures per second over ``--items`` mixtures after the workers have
started, and the same without rooms, for reference. The aim: at least 15 mixtures/s with 2 workers,
enough to feed a GPU training step of SepMamba S at batch 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from report import print_and_save

from sepmamba_sb.audio import write_audio
from sepmamba_sb.data.mixing import DynamicMixingDataset
from sepmamba_sb.noise import NoiseSource
from sepmamba_sb.profiling import machine_description
from sepmamba_sb.rooms import WHAMR_RT60, RoomSimulator

TARGET_PER_S = 15.0


def synthetic_speakers(folder: Path, rate: int, speakers: int = 20, utterances: int = 5) -> None:
    rng = np.random.default_rng(0)
    for s in range(speakers):
        for u in range(utterances):
            seconds = rng.uniform(2, 6)
            write_audio(folder / f"spk{s:02d}" / f"u{u}.wav", rng.standard_normal(int(seconds * rate)) * 0.1, rate)
    write_audio(folder.parent / "noise" / "n.wav", rng.standard_normal(30 * rate) * 0.1, rate)


def rate_per_second(data, workers: int, items: int) -> float:
    """Mixtures per second through a DataLoader, timed after its first batch (workers started)."""
    loader = torch.utils.data.DataLoader(data, batch_size=1, num_workers=workers, collate_fn=lambda b: b)
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(items):
        next(iterator)
    return items / (time.perf_counter() - start)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=60, help="mixtures timed per setting (default 60)")
    parser.add_argument("--seconds", type=float, default=4.0, help="mixture length (default 4 s)")
    parser.add_argument("--sample-rate", type=int, default=8000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--output", help="also write the markdown table to this file")
    args = parser.parse_args(argv)
    if args.items < 1 or args.seconds <= 0 or min(args.workers) < 0:
        parser.error("--items and --seconds must be positive, --workers >= 0")
    torch.set_num_threads(1)  # workers are processes; one thread each
    with tempfile.TemporaryDirectory() as tmp:
        speakers = Path(tmp) / "speakers"
        synthetic_speakers(speakers, args.sample_rate)
        noise = NoiseSource(Path(tmp) / "noise", args.sample_rate)

        def dataset(rooms):
            return DynamicMixingDataset(speakers, num_mixtures=10**6, num_spks=2, sample_rate=args.sample_rate,
                                        segment=int(args.seconds * args.sample_rate), style="sepmamba",
                                        cache_folder=Path(tmp) / "cache", rooms=rooms, noise=noise)

        lines = [f"Dynamic mixing, {args.seconds:g} s two-speaker mixtures at {args.sample_rate} Hz with noise, "
                 f"batch 1, {args.items} mixtures per setting. Machine: {machine_description('cpu')}.", "",
                 "| rooms (nominal RT60) | workers | mixtures/s | ms per mixture per worker |", "|---|---|---|---|"]
        ranges = zip(("low", "medium", "high"), WHAMR_RT60, strict=True)
        settings = [("none", None)] + [(f"WHAMR! {name}, {low:g}-{high:g} s", RoomSimulator(args.sample_rate,
                                                                                           rt60=(low, high)))
                                        for name, (low, high) in ranges]
        settings.append(("WHAMR!'s three ranges, one drawn per room", RoomSimulator(args.sample_rate)))
        for label, rooms in settings:
            for workers in args.workers:
                print(f"rooms {label}, {workers} worker(s) ...", file=sys.stderr, flush=True)
                per_s = rate_per_second(dataset(rooms), workers, args.items)
                lines.append(f"| {label} | {workers} | {per_s:.1f} | {1000 * max(workers, 1) / per_s:.0f} |")
        best = max(args.workers)
        lines += ["", f"Aim: at least {TARGET_PER_S:g} mixtures/s with {best} workers for every setting. With rooms, "
                  "each crop is reverberated with up to 1 s of the utterance before it (the longest RT60)."]
    print_and_save("\n".join(lines), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
