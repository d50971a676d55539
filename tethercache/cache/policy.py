"""The policy seam: a cache policy is a small dataclass of hyper-parameters with two hooks.

Moments (the session calls them: cache/session.py):
  * chunk start        -> `place(st, layer, frame_ids)`: make room and append the chunk's entries;
                          returns the token slots the chunk occupies (the session writes there);
  * each denoising pass -> the session overwrites the chunk's slots (no policy code needed);
  * clean context pass  -> `commit(st, layer, q)`: select / admit / edit, before readout.
`st` is the per-session state (`new_state`): the storage, the session's frame info (e.g. toy
camera poses) and whatever the policy tracks; the dataclass itself holds only hyper-parameters,
so one policy object can serve any number of sessions.
RoPE positions of the keys are chosen by `rope`: "absolute" (global frame index, as Self-Forcing)
or "relative" (order of the frame in storage: unbounded length, what TetherCache and
LongLive-infinity use). `unit` says what `budget` counts: "frame" or "token".
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from ..errors import ConfigError
from .protocol import RECENT, SINK, FrameInfo
from .storage import KVCache

ROPE_MODES = ("absolute", "relative")


class PolicyState:
    """Per-session state of a policy: the storage it moves and the session's frame info."""

    def __init__(self, cache: KVCache, info: FrameInfo):
        self.cache, self.info = cache, info


@dataclass
class CachePolicy:
    budget: int = 21            # frames (or tokens, unit = "token") attended per layer, chunk included
    rope: str = "absolute"
    name: ClassVar[str] = "base"
    unit: ClassVar[str] = "frame"
    needs_poses: ClassVar[bool] = False     # True: only for backbones that know camera poses

    # ---- configuration ------------------------------------------------------------------
    def capacity(self, horizon: int, tokens_per_frame: int) -> int:
        """Tokens of storage to preallocate."""
        return self.budget * tokens_per_frame if self.unit == "frame" else self.budget

    def validate(self, chunk: int, horizon: int, rope_max: int) -> None:
        """Raise ConfigError (naming the `cache.*` key) for values out of range."""
        if self.rope not in ROPE_MODES:
            raise ConfigError(f"cache.rope={self.rope!r}: must be one of {ROPE_MODES}")
        if self.unit == "frame" and self.budget < chunk:
            raise ConfigError(f"cache.budget={self.budget}: must be >= the chunk ({chunk} frames)")
        if self.rope == "absolute" and horizon > rope_max:
            raise ConfigError(
                f"cache.rope=absolute: horizon of {horizon} latent frames exceeds the RoPE table "
                f"({rope_max} positions); use cache.rope=relative")

    def validate_storage(self, chunk: int, tokens_per_frame: int) -> None:
        """Token budgets: storage must hold the frames that are never evicted (sink, recent) plus
        the chunk, or the first eviction could not make room (checked before compute)."""
        if self.unit != "token":
            return
        kept = self.sink_frames + getattr(self, "recent", 0) + chunk
        if self.budget < kept * tokens_per_frame:
            raise ConfigError(f"cache.budget={self.budget}: must be >= (sink + recent + chunk) x tokens per "
                              f"frame = {kept} x {tokens_per_frame} = {kept * tokens_per_frame} tokens")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @property
    def sink_frames(self) -> int:
        """Leading frames that are never evicted (policies with a `sink` key)."""
        return getattr(self, "sink", 0)

    def sink_regions(self, slot: int, n: int) -> list[int]:
        """Regions of n frames appended at frame slot `slot`: the first `sink` slots are sink."""
        return [SINK if slot + i < self.sink_frames else RECENT for i in range(n)]

    # ---- hooks --------------------------------------------------------------------------
    def new_state(self, cache: KVCache, info: FrameInfo) -> PolicyState:
        return PolicyState(cache, info)

    def place(self, st: PolicyState, layer: int, frame_ids: torch.Tensor) -> slice:
        """Chunk start: evict what must go (FIFO after the sink), then append the chunk."""
        cache = st.cache
        overflow = cache.n_frames(layer) + len(frame_ids) - self.budget
        if overflow > 0:
            cache.drop_frames(layer, self.sink_frames, overflow)
        return cache.append(layer, frame_ids, self.sink_regions(cache.n_frames(layer), len(frame_ids)))

    def commit(self, st: PolicyState, layer: int, q: torch.Tensor) -> None:
        """Clean context pass, after the chunk's clean K/V are written, before readout."""

    def chunk_stats(self, st: PolicyState) -> dict:
        """Per-chunk decisions worth recording in the timeline (policy-specific)."""
        return {}
