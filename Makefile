# Two commands set everything up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

.PHONY: setup browser run test test-all bench toy-model tables report clean

setup: $(VENV)/.installed

# torch first, from the pinned CPU wheel, so that no dependency pulls a CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Debian's chromium drives the report test through Playwright (never `playwright install`).
browser:
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

run: setup
	$(PY) run.py

test: setup browser
	$(PY) -m pytest -m "not slow"

test-all: setup browser
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

# The comparison page: `make report RUNS=outputs/sweeps/<date>/<time>`, then open report/index.html.
RUNS ?= outputs/
report: setup
	$(PY) -m analysis.report $(RUNS) --out report/

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache
