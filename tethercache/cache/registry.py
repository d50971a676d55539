"""Name -> policy class. Every module of this package registers itself on import, so a new
policy is one file here plus one `conf/cache/<name>.yaml`; nothing else changes."""
from __future__ import annotations

import importlib
import pkgutil

from ..errors import ConfigError
from ..typed_fields import coerce_fields
from .layout import check_budget_key

POLICIES: dict[str, type] = {}


def register(cls):
    POLICIES[cls.name] = cls
    return cls


def _import_all() -> None:
    from . import __path__ as pkg_path
    for mod in pkgutil.iter_modules(pkg_path):
        importlib.import_module(f"{__package__}.{mod.name}")


def build_policy(cfg: dict):
    """Policy from a `cache` config dict: {name: ..., <hyper-parameters>}."""
    _import_all()
    cfg = dict(cfg)
    name = cfg.pop("name", None)
    if name not in POLICIES:
        raise ConfigError(f"cache.name={name!r}: unknown policy; known: {sorted(POLICIES)}")
    cls = POLICIES[name]
    check_budget_key(name, cls.unit, cfg)            # budget (frames) vs budget_tokens
    unknown = sorted(set(cfg) - set(cls.keys()))
    if unknown:
        raise ConfigError(f"cache.{unknown[0]}: not a key of policy {name!r}; "
                          f"allowed: {cls.keys()}")
    return cls(**coerce_fields(cls, cfg, "cache"))    # types + finiteness from the dataclass
