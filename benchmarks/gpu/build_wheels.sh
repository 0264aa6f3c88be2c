#!/usr/bin/env bash
# Run HERE, on a machine with network and nvcc (no GPU needed), before a GPU session. It fills .whl/
# (git-ignored through .git/info/exclude) with what benchmarks/gpu/run.sh installs on the device:
#   - mamba-ssm and causal-conv1d wheels, compiled here from their PyPI sdists for one GPU
#     architecture (default sm_90: H100/H200), for the device's Python (3.12) and torch (2.11.0, CUDA 13);
#   - the pure-Python packages the device image lacks (speechbrain and its yaml stack).
# Building for one architecture instead of mamba-ssm's nine keeps the wheels small enough to carry
# (the device tool carries 64 MiB: the two stripped wheels are ~57 MiB) and the compile to ~1/9 of the
# time (about 10 minutes on 2 cores).
# Environment: PYTHON312 (default: pyenv's 3.12.1), CUDA_ARCH (default 90), MAX_JOBS (default 2), CUDA_HOME.
set -euo pipefail
cd "$(dirname "$0")/../.."
ARCH=${CUDA_ARCH:-90}
PY=${PYTHON312:-/root/.pyenv/versions/3.12.1/bin/python}
VENV=${BUILD_VENV:-/tmp/sepmamba-gpu-build}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}  # holds bin/nvcc and include/cuda_runtime.h
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
work=$(mktemp -d)

python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    "speechbrain==1.1.2" "hyperpyyaml==1.2.3" "ruamel.yaml==0.18.16" "ruamel.yaml.clib"

[ -x "$VENV/bin/python" ] || { "$PY" -m venv "$VENV" && "$VENV/bin/pip" install -q torch==2.11.0 numpy setuptools wheel ninja packaging; }

for spec in "mamba-ssm mamba_ssm-2.3.2.post1 104cc47e9101e5401a675fa2b784f2952b9b037f3b1dd83b5ac544394e95d028" \
            "causal-conv1d causal_conv1d-1.7.0 3202758494eaa7b597ce1c282dfa188889506bfcb92cad3c407d26736bfcd32b"; do
  read -r project stem sha <<< "$spec"
  url=$(curl -fsS "https://pypi.org/simple/$project/" | grep -o "https://[^\"#]*/$stem\.tar\.gz" | head -1)
  curl -fsS -o "$work/$stem.tar.gz" "$url"
  echo "$sha  $work/$stem.tar.gz" | sha256sum -c --quiet
  tar xzf "$work/$stem.tar.gz" -C "$work"
  # keep only -gencode arch=compute_$ARCH: every other architecture's append becomes a pop of its "-gencode"
  sed -i -E "/compute_${ARCH},code=sm_${ARCH}\"/! s/cc_flag\.append\(\"arch=compute_[0-9a-z]+,code=sm_[0-9a-z]+\"\)/cc_flag.pop()/" \
      "$work/$stem/setup.py"
  grep -c "cc_flag.pop()" "$work/$stem/setup.py" > /dev/null
  ( cd "$work/$stem" && TORCH_CUDA_ARCH_LIST="${ARCH:0:1}.${ARCH:1}" MAX_JOBS=${MAX_JOBS:-2} \
      MAMBA_FORCE_BUILD=TRUE CAUSAL_CONV1D_FORCE_BUILD=TRUE \
      "$VENV/bin/python" -m pip wheel -q --no-deps --no-build-isolation -w "$work/built" . )
done
# host debug info is ~10 MB per extension: strip it, so both wheels plus the repository fit in one carry
for wheel in "$work"/built/*.whl; do
  "$VENV/bin/python" -m wheel unpack -d "$work/unpacked" "$wheel" > /dev/null
done
find "$work/unpacked" -name "*.so" -exec strip --strip-debug {} +
for tree in "$work"/unpacked/*; do
  "$VENV/bin/python" -m wheel pack -d .whl "$tree" > /dev/null
done
rm -rf "$work"
ls -la .whl
