"""The config's schema, read from the config files themselves (conf/config.yaml and every
option of each group), so a new option's keys are known without touching code.

    known_keys(group)  keys a group's options define (None: the top level)
    shaped_keys()      dotted keys some file sets to a list or a mapping
    check_unknown_keys(cfg), check_shapes(cfg)  ConfigError naming the key

Types and ranges of values are checked elsewhere: validation.py, typed_fields.py (dataclass
fields: cache policies, the sampler, the model), each policy's `validate`.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from omegaconf import OmegaConf

from .errors import ConfigError

CONF = Path(__file__).resolve().parents[1] / "conf"
GROUPS = ("backbone", "cache", "horizon", "prompts", "eval", "logger")
OPEN_GROUPS = ("cache",)           # the policy's dataclass decides (cache/registry.py)


@lru_cache(maxsize=None)
def _load(path: Path) -> dict:
    return OmegaConf.to_container(OmegaConf.load(path), resolve=False)


@lru_cache(maxsize=None)
def known_keys(group: str | None) -> frozenset[str]:
    """Keys a group's options define (union over conf/<group>/*.yaml); None: the top level."""
    if group is None:
        return frozenset({*_load(CONF / "config.yaml"), *GROUPS} - {"defaults", "hydra"})
    keys: set[str] = set()
    for f in (CONF / group).glob("*.yaml"):
        keys |= set(_load(f))
    return frozenset(keys - {"defaults"})


def _shape_paths(node: dict, prefix: str) -> dict[str, type]:
    """Dotted key -> list or dict, for every list and mapping the file sets."""
    out: dict[str, type] = {}
    for key, value in node.items():
        if key in ("defaults", "hydra"):
            continue
        if isinstance(value, list):
            out[f"{prefix}{key}"] = list
        elif isinstance(value, dict):
            out[f"{prefix}{key}"] = dict
            out |= _shape_paths(value, f"{prefix}{key}.")
    return out


@lru_cache(maxsize=None)
def shaped_keys() -> dict[str, type]:
    """Keys that some config file sets to a list (`tags`, `prompts.texts`) or a mapping
    (`backbone.codec`), read from the config files like `known_keys`."""
    keys = _shape_paths(_load(CONF / "config.yaml"), "")
    for group in GROUPS:
        for f in sorted((CONF / group).glob("*.yaml")):
            keys |= _shape_paths(_load(f), f"{group}.")
    return keys


def check_shapes(cfg) -> None:
    """A scalar where a list belongs (`prompts.texts=hello` would be five one-letter prompts)
    or where a mapping belongs (`backbone.codec=abc`)."""
    for key, shape in sorted(shaped_keys().items()):
        value = OmegaConf.select(cfg, key, throw_on_missing=False)
        if value is None or (OmegaConf.is_list if shape is list else OmegaConf.is_dict)(value):
            continue
        if shape is list:
            raise ConfigError(f"{key}={value!r}: must be a list, e.g. {key}=[{value}]")
        raise ConfigError(f"{key}={value!r}: must be a mapping of keys, e.g. {key}.<key>=...")


def check_unknown_keys(cfg) -> None:
    for key in cfg.keys():
        if key not in known_keys(None):
            raise ConfigError(f"{key}: unknown key; top-level keys are {sorted(known_keys(None))}")
    for group in GROUPS:
        if group in OPEN_GROUPS or not OmegaConf.is_dict(cfg.get(group)):
            continue
        for key in cfg[group].keys():
            if key not in known_keys(group):
                raise ConfigError(f"{group}.{key}: unknown key; {group} keys are "
                                  f"{sorted(known_keys(group))}")
