# Two commands do everything on a fresh machine (see README.md):
#   make test    set-up (.venv, pinned dependencies, the C++ kernel), then lint and the whole test suite
#   make bench   the selective-scan benchmark of the README
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torchaudio on PyPI stops at 2.11.0, which pins torch 2.11.0 (speechbrain imports torchaudio)
PINS := torch==2.11.0 torchaudio==2.11.0 "speechbrain>=1.1,<1.2" hyperpyyaml "ruamel.yaml<0.19" \
	-r recipes/WSJ0Mix/extra_requirements.txt
STAMP := $(VENV)/.installed

.PHONY: setup build test lint bench clean

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

bench: build
	$(PY) benchmarks/scan_speed.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
