# Two commands do everything on a fresh machine (see README.md):
#   make demo    set-up, build the MiniMix corpus, train a small SepMamba on the CPU, test, separate, pictures
#   make test    set-up (.venv, pinned dependencies, the C++ kernel), then lint, the whole test suite and the doctests
# and: make test-fast (the same without the tests marked slow, those that start subprocesses),
#      make bench (selective-scan benchmark), make configs (the configurations table),
#      make efficiency (SepMamba vs SpeechBrain's separators; rewrites benchmarks/README.md's CPU table, ~40 min)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torchaudio on PyPI stops at 2.11.0, which pins torch 2.11.0 (speechbrain imports torchaudio)
PINS := torch==2.11.0 torchaudio==2.11.0 "speechbrain>=1.1,<1.2" hyperpyyaml "ruamel.yaml<0.19" \
	-r recipes/WSJ0Mix/extra_requirements.txt
STAMP := $(VENV)/.installed

.PHONY: setup build demo test test-fast lint bench configs efficiency clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# reinstalled when setup.py or this Makefile changes
$(STAMP): setup.py Makefile recipes/WSJ0Mix/extra_requirements.txt | $(PY)
	$(PY) -m pip install --quiet $(PINS) -e ".[test]"
	touch $@

setup: $(STAMP)

# compiles the C++ selective-scan kernel once (cached by PyTorch) and lists the backends
build: setup
	$(PY) -m sepmamba_sb.ops

lint: setup
	$(VENV)/bin/ruff check sepmamba_sb tests benchmarks recipes

TESTS := tests --doctest-modules sepmamba_sb

test: build lint
	$(PY) -m pytest -q $(TESTS)

test-fast: build lint
	$(PY) -m pytest -q -m "not slow" $(TESTS)

demo: build
	$(PY) recipes/MiniMix/demo.py --out demo

bench: build
	$(PY) benchmarks/scan_speed.py

configs: build
	$(PY) benchmarks/model_configs.py

efficiency: build
	$(PY) benchmarks/efficiency.py --readme benchmarks/README.md
	$(PY) benchmarks/profile_ops.py --output benchmarks/results/profile-cpu.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo
