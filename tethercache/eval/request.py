"""The evaluation step's arguments, checked before any work. Both CLIs (`python -m tethercache.eval`
argv and score.py's Hydra config) hand a request dict {runs, eval, force, skip_unfinished} to
`validate_request`; each problem is one ConfigError naming the key and what is allowed.

Allowed keys and their types come from the config files: conf/score.yaml for the top level,
conf/eval/<name>.yaml for `eval.*` (a list default takes only a list, a bool only true/false, an
int only a whole number), so a new evaluator option's keys are known without touching this file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ..errors import ConfigError
from ..typed_fields import as_bool, as_int

CONF = Path(__file__).resolve().parents[2] / "conf"
NUM_SHARDS_MAX = 10_000          # more shard jobs than any sweep has videos: a typo


@dataclass
class Request:
    runs: list[str]
    eval: DictConfig | None      # None: each run's own eval config (record.json)
    force: bool
    skip_unfinished: bool


def eval_options() -> list[str]:
    return sorted(p.stem for p in (CONF / "eval").glob("*.yaml"))


def eval_defaults(name: str) -> dict:
    """conf/eval/<name>.yaml, unresolved (its ${oc.env:...} stay as written)."""
    if name not in eval_options():
        raise ConfigError(f"eval={name}: no such option; allowed: {eval_options()}")
    return OmegaConf.to_container(OmegaConf.load(CONF / "eval" / f"{name}.yaml"), resolve=False)


def check_eval_key(name: str, key: str) -> None:
    defaults = eval_defaults(name)
    if key not in defaults:
        raise ConfigError(f"eval.{key}: unknown key; eval={name} keys are {sorted(defaults)}")


def default_eval() -> str:
    """The eval option conf/score.yaml picks when eval= is not given."""
    defaults = OmegaConf.load(CONF / "score.yaml").defaults
    return next(d["eval"] for d in defaults if OmegaConf.is_dict(d) and "eval" in d)


def request_defaults() -> dict:
    top = OmegaConf.to_container(OmegaConf.load(CONF / "score.yaml"), resolve=False)
    return {k: v for k, v in top.items() if k not in ("defaults", "hydra")} | {"eval": None}


def typed(key: str, value, default):
    """`value` checked against the type of its config-file default."""
    if isinstance(default, list):
        if not (isinstance(value, list) or OmegaConf.is_list(value)):
            raise ConfigError(f"{key}={value!r}: must be a list, e.g. {key}=[a,b]")
    elif isinstance(default, bool):
        return as_bool(key, value)
    elif isinstance(default, int):
        return as_int(key, value)
    return value


def check_shard(ecfg) -> None:
    n, i = ecfg.get("num_shards", 1), ecfg.get("shard", 0)
    n = as_int("eval.num_shards", n)
    if not 1 <= n <= NUM_SHARDS_MAX:
        raise ConfigError(f"eval.num_shards={n}: must be in [1, {NUM_SHARDS_MAX}]")
    i = as_int("eval.shard", i)
    if not 0 <= i < n:
        raise ConfigError(f"eval.shard={i}: must be an integer in [0, {n - 1}] (eval.num_shards={n})")


def validate_eval(ecfg) -> DictConfig | None:
    """The eval config given on the command line: a known option, its own keys, typed values;
    keys not given take the option's defaults."""
    if ecfg is None:
        return None
    name = ecfg.get("name")
    if name == "none":
        raise ConfigError(f"eval=none: nothing to score; allowed: "
                          f"{[o for o in eval_options() if o != 'none']}")
    defaults = eval_defaults(name)
    out = {}
    for key in ecfg:
        check_eval_key(name, key)
        out[key] = typed(f"eval.{key}", ecfg[key], defaults[key])
    out = OmegaConf.merge(OmegaConf.create(defaults), out)     # keys not given: the option's own
    out = OmegaConf.create(OmegaConf.to_container(out, resolve=True))
    check_shard(out)
    return out


def validate_request(args: dict) -> Request:
    """The checked request, or ConfigError naming the first bad key."""
    defaults = request_defaults()
    for key in args:
        if key not in defaults:
            raise ConfigError(f"{key}: unknown key; allowed: {sorted(defaults)}")
    runs = args.get("runs")
    if runs is None or runs == "???":
        raise ConfigError("runs: required; pass runs=[RUN_DIR, ...] (run dirs or dirs above them)")
    if not (isinstance(runs, list) or OmegaConf.is_list(runs)):
        raise ConfigError(f"runs={runs!r}: must be a list of run dirs, e.g. runs=[DIR] or runs=[DIR1,DIR2]")
    if not runs:
        raise ConfigError("runs=[]: no run dirs given")
    for k, r in enumerate(runs):
        if not isinstance(r, str) or not r.strip():
            raise ConfigError(f"runs[{k}]={r!r}: must be a path")
    flags = {k: typed(k, args.get(k, d), d) for k, d in defaults.items() if isinstance(d, bool)}
    return Request([str(r) for r in runs], validate_eval(args.get("eval")), **flags)
