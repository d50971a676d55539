"""Evaluators by name (`eval.name`), registered like cache policies: one file + one config each.

An evaluator scores the videos of a finished run dir (eval/rundir.py drives it):
- `score(run_dir, samples, ecfg) -> {video id: {"full": VideoScores, <prefix>: VideoScores} |
  {"invalid": reason}}` for the given record.json samples (FrameEvaluator does the decoding for
  evaluators that look at one video's frames at a time);
- `summarize(scored, out_dir) -> dict`: the metrics.json dict (and any extra files in out_dir);
- `check(cfg)` (classmethod): every check that needs no compute; raises ConfigError.
"""
from __future__ import annotations

import importlib

from ..errors import ConfigError

# name -> module that defines and registers it (imported on first use: vbench_long never
# imports torch models in this process, toy needs the toy world).
_MODULES = {"toy": ".toy_runner", "vbench_long": ".vbench_long"}
EVALUATORS: dict[str, type] = {}
NAMES = ("none", *_MODULES)


def register(name: str):
    def wrap(cls):
        cls.name = name
        EVALUATORS[name] = cls
        return cls
    return wrap


def evaluator_class(name: str) -> type:
    if name not in EVALUATORS:
        if name not in _MODULES:
            raise ConfigError(f"eval.name={name!r}: must be one of {sorted({*NAMES, *EVALUATORS})}")
        importlib.import_module(_MODULES[name], __package__)
    return EVALUATORS[name]


def check_evaluator(cfg) -> None:
    """Validate `cfg.eval` against the run config `cfg` (backbone, ...) before any compute."""
    if cfg.eval.name == "none":
        return
    from .rundir import check_shard
    check_shard(cfg.eval)
    evaluator_class(cfg.eval.name).check(cfg)


def build_evaluator(cfg):
    """The evaluator for `cfg.eval` (None for eval=none); check_evaluator ran first."""
    if cfg.eval.name == "none":
        return None
    return evaluator_class(cfg.eval.name)(cfg.eval)
