# Two commands set everything up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

.PHONY: setup run test test-all bench toy-model tables clean

setup: $(VENV)/.installed

# torch first, from the pinned CPU wheel, so that no dependency pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

run: setup
	$(PY) run.py

test: setup
	$(PY) -m pytest -m "not slow"

test-all: setup
	$(PY) -m pytest

bench: setup
	$(PY) experiments/bench_cache.py
	$(PY) experiments/bench_cache.py --backbone toy --policies window tether

# Retrain the shipped toy weights (about 50 min on 2 CPU cores); see its MODEL_CARD.md.
# Resumable: an interrupted `make toy-model` continues from its last checkpoint (every 100 steps).
# TOY_ARGS adds run-only flags, e.g. TOY_ARGS="--device cuda" or TOY_ARGS="--stop-at 1000".
TOY_RECIPE ?= --steps 2000
toy-model: setup
	OMP_WAIT_POLICY=PASSIVE $(PY) -m tethercache.toyworld.train $(TOY_RECIPE) --resume $(TOY_ARGS)

tables: setup
	$(PY) -m analysis.tables outputs/ --out tables/

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache
