# Two commands do everything on a fresh machine (see README.md):
#   make demo    set-up, build the MiniMix corpus, train a small SepMamba on the CPU, test, separate, pictures
#   make test    set-up (.venv, pinned dependencies, the C++ kernel), then lint and the whole test suite
# and: make bench (selective-scan benchmark), make configs (the configurations table),
#      make efficiency (SepMamba vs SpeechBrain's separators; rewrites README.md's CPU table, ~40 min on 2 cores)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torchaudio on PyPI stops at 2.11.0, which pins torch 2.11.0 (speechbrain imports torchaudio)
PINS := torch==2.11.0 torchaudio==2.11.0 "speechbrain>=1.1,<1.2" hyperpyyaml "ruamel.yaml<0.19" \
	-r recipes/WSJ0Mix/extra_requirements.txt
STAMP := $(VENV)/.installed

.PHONY: setup build demo test lint bench configs efficiency clean

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

test: build lint
	$(PY) -m pytest -q tests

demo: build
	$(PY) recipes/MiniMix/demo.py --out demo

bench: build
	$(PY) benchmarks/scan_speed.py

configs: build
	$(PY) benchmarks/model_configs.py

efficiency: build
	$(PY) benchmarks/efficiency.py --readme README.md
	$(PY) benchmarks/profile_ops.py --output benchmarks/results/profile-cpu.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo
