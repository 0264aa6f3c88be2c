"""``python -m sepmamba_sb.ops``: build the C++ kernel if needed and report the scan backends."""

import sys
import time

import torch

from sepmamba_sb.ops import backend_status, cpu_capability


def main() -> int:
    print(f"torch {torch.__version__}, CPU capability {cpu_capability()}, "
          f"{torch.get_num_threads()} threads")
    print("building/loading the C++ selective-scan kernel (about a minute the first time)...", flush=True)
    start = time.perf_counter()
    status = backend_status()
    for name, reason in status.items():
        print(f"  {name:10s} {'available' if reason is None else 'unavailable: ' + reason}")
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0 if status["cpu"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
