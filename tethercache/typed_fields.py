"""Config values checked against declared types: whole numbers, finite floats, booleans, strings.

`coerce_fields(cls, values, prefix)` reads a dataclass's field annotations (a cache policy's
hyper-parameters, the sampler's, the model's, the top-level keys and the horizon), so a new policy gets type / finiteness checks without writing any: `alpha=abc`,
`alpha=inf`, `sink=1.5`, `grab=maybe` are one-line ConfigErrors naming `cache.<key>`.
Range checks (e.g. sink + chunk <= budget) stay in each policy's `validate`.
"""
from __future__ import annotations

import dataclasses
import math
import typing

from .errors import ConfigError


INT_MAX = 2**31 - 1      # no count, size or seed of a run is larger (C int, numpy seeds)


def as_int(key: str, value) -> int:
    """A whole number (10, 10.0, "10") of at most INT_MAX in size; not a bool, 1.5, inf or nan."""
    try:
        if isinstance(value, bool):
            raise ValueError
        f = float(value)
        if not math.isfinite(f) or f != int(f):
            raise ValueError
        n = int(f) if not isinstance(value, int) else value
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{key}={value!r}: must be a whole number") from None
    if abs(n) > INT_MAX:
        raise ConfigError(f"{key}={value!r}: must be a whole number in [-{INT_MAX}, {INT_MAX}]")
    return n


def as_float(key: str, value) -> float:
    """A finite number."""
    try:
        if isinstance(value, bool):
            raise ValueError
        f = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{key}={value!r}: must be a number") from None
    if not math.isfinite(f):
        raise ConfigError(f"{key}={value!r}: must be a finite number")
    return f


def as_bool(key: str, value) -> bool:
    """A real boolean (Hydra parses true/false); 1, "yes" are refused as ambiguous."""
    if isinstance(value, bool):
        return value
    raise ConfigError(f"{key}={value!r}: must be true or false")


def as_str(key: str, value) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}={value!r}: must be a string")
    return value


_CASTS = {int: as_int, float: as_float, bool: as_bool, str: as_str}


def coerce(key: str, value, annotation):
    """`value` cast to `annotation` (int, float, bool, str, or `X | None`); others pass through."""
    args = typing.get_args(annotation)
    if type(None) in args:
        if value is None:
            return None
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else annotation
    cast = _CASTS.get(annotation)
    return cast(key, value) if cast else value


def coerce_fields(cls, values: dict, prefix: str) -> dict:
    """`values` with each dataclass field of `cls` cast to its declared type (named errors)."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: coerce(f"{prefix}.{k}" if prefix else k, v, hints[k]) if k in names else v
            for k, v in values.items()}
