"""Evaluators by name (`eval.name`), registered like cache policies: a new evaluator is one module
in this package that decorates its class with `@register("<name>")`, plus `conf/eval/<name>.yaml`;
nothing else changes. The package's modules are imported on the first lookup (vbench_long imports
no torch models in this process: VBench runs in its own venv).

An evaluator scores the videos of a finished run dir (eval/rundir.py drives it):
- `score(run_dir, samples, ecfg) -> {video id: {"full": VideoScores, <prefix>: VideoScores} |
  {"invalid": reason}}` for the given record.json samples (FrameEvaluator does the decoding for
  evaluators that look at one video's frames at a time);
- `summarize(scored, out_dir) -> dict`: the metrics.json dict (and any extra files in out_dir);
- `check(cfg)` (classmethod): every check that needs no compute; raises ConfigError.
"""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import ConfigError
from .request import check_shard

EVALUATORS: dict[str, type] = {}


def register(name: str):
    def wrap(cls):
        cls.name = name
        EVALUATORS[name] = cls
        return cls
    return wrap


def _import_all() -> None:
    from . import __path__ as pkg_path
    for mod in pkgutil.iter_modules(pkg_path):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{__package__}.{mod.name}")


def evaluator_class(name: str) -> type:
    if name not in EVALUATORS:
        _import_all()
    if name not in EVALUATORS:
        raise ConfigError(f"eval.name={name!r}: must be one of {sorted({'none', *EVALUATORS})}")
    return EVALUATORS[name]


def check_evaluator(cfg) -> None:
    """Validate `cfg.eval` against the run config `cfg` (backbone, ...) before any compute."""
    if cfg.eval.name == "none":
        return
    check_shard(cfg.eval)
    evaluator_class(cfg.eval.name).check(cfg)


def build_evaluator(cfg):
    """The evaluator for `cfg.eval` (None for eval=none); check_evaluator ran first."""
    if cfg.eval.name == "none":
        return None
    return evaluator_class(cfg.eval.name)(cfg.eval)
