#!/usr/bin/env bash
# One GPU session's checks, from the repository root of a lent CUDA machine (no network needed):
#   1. install .whl/ (made beforehand by benchmarks/gpu/build_wheels.sh: mamba-ssm and causal-conv1d
#      compiled for the card, speechbrain & co.) into /tmp/site;
#   2. parity: mamba-ssm on CUDA against our C++ kernel on CPU (benchmarks/gpu/parity.py);
#   3. benchmarks/scan_speed.py and benchmarks/efficiency.py on CUDA.
# If mamba-ssm does not import, steps 3 run with the reference scan and gpu.txt says so.
# Results land in benchmarks/results: gpu.txt (the log), gpu_parity.json, scan_speed-cuda.md,
# efficiency-cuda.{md,csv,png}, and benchmarks/README.md's efficiency-cuda section is rewritten; with $OUT set
# (the device tool's folder) those files and benchmarks/README.md are copied there too.
set -uo pipefail
RESULTS=benchmarks/results
mkdir -p "$RESULTS"
export PYTHONUNBUFFERED=1
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__)"
  python3 -m sepmamba_sb.ops
} 2>&1 | tee "$RESULTS/gpu.txt"
if python3 -c "import mamba_ssm, causal_conv1d" >> "$RESULTS/gpu.txt" 2>&1; then
  timeout 240 python3 benchmarks/gpu/parity.py --out "$RESULTS/gpu_parity.json" 2>&1 | tee -a "$RESULTS/gpu.txt"
else
  echo "mamba-ssm does not import (above): CUDA timings below use the reference scan" | tee -a "$RESULTS/gpu.txt"
  export SEPMAMBA_SCAN_BACKEND=reference
fi
timeout 150 python3 benchmarks/scan_speed.py --device cuda --repeats 5 --output "$RESULTS/scan_speed-cuda.md" 2>&1 \
    | tee -a "$RESULTS/gpu.txt"
timeout "${EFFICIENCY_SECONDS:-330}" python3 benchmarks/efficiency.py --device cuda --readme benchmarks/README.md \
    ${EFFICIENCY_ARGS:-} 2>&1 | tee -a "$RESULTS/gpu.txt"
if [ -n "${OUT:-}" ]; then
  cp "$RESULTS"/gpu.txt "$RESULTS"/gpu_parity.json "$RESULTS"/scan_speed-cuda.md "$RESULTS"/efficiency-cuda.* benchmarks/README.md \
      "$OUT"/ 2>/dev/null
fi
