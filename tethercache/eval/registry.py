"""Evaluator by name (`cfg.eval.name`). Every evaluator speaks the schema of eval/schema.py."""
from __future__ import annotations

from ..errors import ConfigError

EVALUATORS = ("none", "toy")


class NoEvaluator:
    def evaluate(self, frames, **_):
        return None

    def summarize(self, metrics, run_dir) -> dict:
        return {}


def check_evaluator(cfg) -> None:
    name = cfg.eval.name
    if name not in EVALUATORS:
        raise ConfigError(f"eval.name={name!r}: must be one of {EVALUATORS}")
    if name == "toy" and not cfg.backbone.get("poses", False) and cfg.backbone.text.kind != "grammar":
        raise ConfigError(f"eval=toy: needs a toy-world backbone (backbone={cfg.backbone.name}); "
                          "use eval=none")
    if name == "toy":
        _check_prefixes(cfg)


def _check_prefixes(cfg) -> None:
    from .toy_runner import HORIZON_FRAMES
    for h in cfg.eval.get("prefixes") or []:
        if h not in HORIZON_FRAMES:
            raise ConfigError(f"eval.prefixes: {h!r} is not a horizon; allowed: {list(HORIZON_FRAMES)}")


def build_evaluator(cfg):
    if cfg.eval.name == "none":
        return NoEvaluator()
    if cfg.eval.name == "toy":
        from .toy_runner import ToyRunEvaluator
        return ToyRunEvaluator(cfg.eval)
    raise AssertionError(cfg.eval.name)   # check_evaluator ran first
