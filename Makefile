# Two commands set everything up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  := torch==2.13.0

.PHONY: setup browser run test test-all bench toy-model toy-model-v2 toy-model-v1 tables report vbench-env clean

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

# Retrain the shipped toy weights; see their MODEL_CARD.md. Three stages, each a fine-tune of the
# one before, all kept in tethercache/toyworld/weights/ (about 2 hours on 2 CPU cores in all):
#   make toy-model-v1   2000 steps from scratch, default world   -> outputs/toy_model_v1 (toy_wan_v1)
#   make toy-model-v2   1300 steps from v1, 12-px sprites          -> outputs/toy_model_v2 (toy_wan_v2)
#   make toy-model       500 steps from v2, sprites start in view  -> the shipped toy_wan.safetensors
# `make toy-model` replaces the shipped weights, card, curve and log (--overwrite says so; the
# trainer refuses any --out holding results without it). Into another dir: make toy-model TOY_OUT=...
# From scratch: make toy-model-v1, make toy-model-v2 TOY_V1=outputs/toy_model_v1/toy_wan.safetensors,
# make toy-model TOY_INIT=outputs/toy_model_v2/toy_wan.safetensors.
# Resumable: an interrupted stage continues from its last checkpoint (every 100 steps).
# TOY_ARGS adds run-only flags, e.g. TOY_ARGS="--device cuda" or TOY_ARGS="--stop-at 300".
TOY_INIT ?= tethercache/toyworld/weights/toy_wan_v2.safetensors
TOY_RECIPE ?= --init $(TOY_INIT) --steps 500 --warmup 50 --lr 0.00075 --ema 0.995 --sprite-clips 0.5 --sprite-size 12 --sprite-layout start
TOY_OUT ?= tethercache/toyworld/weights
TOY_V1 ?= tethercache/toyworld/weights/toy_wan_v1.safetensors
TOY_TRAIN = OMP_WAIT_POLICY=PASSIVE $(PY) -m tethercache.toyworld.train
toy-model: setup
	$(TOY_TRAIN) $(TOY_RECIPE) --out $(TOY_OUT) --overwrite --resume $(TOY_ARGS)

toy-model-v2: setup
	$(TOY_TRAIN) --init $(TOY_V1) --steps 1300 --lr 0.00075 --sprite-clips 0.5 --sprite-size 12 --out outputs/toy_model_v2 --resume $(TOY_ARGS)

toy-model-v1: setup
	$(TOY_TRAIN) --steps 2000 --out outputs/toy_model_v1 --resume $(TOY_ARGS)

tables: setup
	$(PY) -m analysis.tables outputs/ --out tables/

# The comparison page: `make report RUNS=outputs/sweeps/<date>/<time>`, then open report/index.html.
RUNS ?= outputs/
report: setup
	$(PY) -m analysis.report $(RUNS) --out report/

# VBench-Long in its own venv: vbench pins transformers==4.33.2 and numpy<2, which clash with the
# generation stack. torch + torchvision go in first, from the package registry (a CUDA build: what
# VBench's GPU-only scoring needs; it also imports on a CPU machine), so vbench's deps resolve
# against them. torchvision <= 0.25: vbench2_beta_long imports torchvision.io.write_video, which
# 0.26 removed. With transformers==4.33.2: peft==0.6.2 (dreamsim pulls peft, whose newer releases
# import transformers.Cache) and setuptools<81 (openai-clip imports pkg_resources).
# Another build: make vbench-env VBENCH_TORCH="torch==... torchvision==...".
# Its interpreter is eval.python in conf/eval/vbench_long.yaml; weights go in eval.cache_dir (README).
VBENCH_VENV  ?= .venv-vbench
VBENCH_TORCH ?= torch==2.10.0 torchvision==0.25.0
VBENCH_PIP   := $(VBENCH_VENV)/bin/python -m pip install -q
vbench-env: $(VBENCH_VENV)/.installed

$(VBENCH_VENV)/.installed:
	$(PYTHON) -m venv $(VBENCH_VENV)
	$(VBENCH_PIP) --upgrade pip
	$(VBENCH_PIP) $(VBENCH_TORCH)
	$(VBENCH_PIP) vbench==0.1.5 'numpy<2' scenedetect dreamsim 'moviepy<2' av 'peft==0.6.2' \
	    'setuptools<81' $(VBENCH_TORCH)
	$(VBENCH_VENV)/bin/python tethercache/eval/vbench_probe.py
	touch $@

clean:
	rm -rf $(VENV) outputs/*/ .pytest_cache
