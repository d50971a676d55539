"""The policy seam: a cache policy is a small dataclass of hyper-parameters with two hooks.

Moments (see DESIGN.md):
  * chunk start        -> `place(cache, layer, frame_ids)`: make room and append the chunk's slots;
  * each denoising pass -> the session overwrites the chunk's slots (no policy code needed);
  * clean context pass  -> `commit(cache, layer, q)`: select / admit / edit, before readout.
RoPE positions of the keys are chosen by `rope`: "absolute" (global frame index, as Self-Forcing)
or "relative" (slot order: unbounded length, what TetherCache and LongLive-infinity use).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from ..errors import ConfigError
from .storage import RECENT, KVCache

ROPE_MODES = ("absolute", "relative")


@dataclass
class CachePolicy:
    budget: int = 21            # frames attended per layer, the current chunk included
    rope: str = "absolute"
    name: ClassVar[str] = "base"
    needs_poses: ClassVar[bool] = False     # True: only for backbones that know camera poses

    # ---- configuration ------------------------------------------------------------------
    def capacity(self, horizon: int) -> int:
        """Frames of storage to preallocate."""
        return self.budget

    def validate(self, chunk: int, horizon: int, rope_max: int) -> None:
        """Raise ConfigError (naming the `cache.*` key) for values out of range."""
        if self.rope not in ROPE_MODES:
            raise ConfigError(f"cache.rope={self.rope!r}: must be one of {ROPE_MODES}")
        if self.budget < chunk:
            raise ConfigError(f"cache.budget={self.budget}: must be >= the chunk ({chunk} frames)")
        if self.rope == "absolute" and horizon > rope_max:
            raise ConfigError(
                f"cache.rope=absolute: horizon of {horizon} latent frames exceeds the RoPE table "
                f"({rope_max} positions); use cache.rope=relative")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    # ---- hooks --------------------------------------------------------------------------
    def place(self, cache: KVCache, layer: int, frame_ids: torch.Tensor) -> slice:
        """Chunk start: evict what must go, then append the chunk's slots. Returns them."""
        overflow = cache.used[layer] + len(frame_ids) - self.budget
        if overflow > 0:
            self.evict(cache, layer, overflow)
        return cache.append(layer, frame_ids, [RECENT] * len(frame_ids))

    def evict(self, cache: KVCache, layer: int, n: int) -> None:
        """Free n slots (default: FIFO, oldest first)."""
        cache.drop(layer, 0, n)

    def commit(self, cache: KVCache, layer: int, q: torch.Tensor) -> None:
        """Clean context pass, after the chunk's clean K/V are written, before readout."""

    def chunk_stats(self) -> dict:
        """Per-chunk decisions worth recording in the timeline (policy-specific)."""
        return {}
