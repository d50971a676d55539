"""The policy seam: a cache policy is a small dataclass of hyper-parameters with two hooks
(`place`, `commit`) and three optional ones.

Moments (the session calls them: cache/session.py):
  * chunk start        -> `place(st, layer, frame_ids)`: make room and append the chunk's entries;
                          returns the token slots the chunk occupies (the session writes there);
  * each denoising pass -> the session overwrites the chunk's slots (no policy code needed);
  * clean context pass  -> `commit(st, layer, q)`: select / admit / edit, before readout.
Optional, per pass and layer (`ctx`: a protocol.PassContext: pass index within the chunk, its
sigma / timestep when the driver gave them, is_commit), in this order:
  * `on_pass(st, layer, q, k, ctx)`: after the pass's chunk K/V are written, before `commit`; may
    act in a chosen pass (e.g. compress with the first denoising pass's queries and noisy keys)
    and move entries, returning the chunk's new token slots (None: unchanged);
  * `read_set(st, layer, ctx)`: after `commit`, which stored entries this pass attends to (token
    indices or a bool mask over the layer's used entries; None = all). Applied after RoPE: kept
    keys keep their positions. Modifiers wrap any policy to change it (`commit_reads.py`).
Positions: a policy may set the temporal RoPE position of any stored entry, the chunk's (= its
queries') included, with `st.cache.set_temporal(layer, slots, t)`; entries it never set keep the
`rope` mode's default. Writing bumps the layout version, so the session's per-version memo of
positions never serves stale ones. In relative mode with state frames every temporal position,
chosen or default, is shifted by the number of state frames (they come first).
Entries tied to no single frame (an EMA of evicted frames) use `protocol.synthetic_frame` ids
and a region from `protocol.add_region`: readers of timelines skip ids < 0.
`st` is the per-session state (`new_state`, a `state_type` dataclass): the storage, the session's
frame info (e.g. toy camera poses) and whatever the policy tracks; the policy itself holds only
hyper-parameters, so one policy object can serve any number of sessions.
The attended layout (sink | ... | recent, budget in frames or tokens) is `layout.py`'s vocabulary,
read from the policy's keys `budget` (frames) or `budget_tokens` (`unit = "token"`), `sink`, `recent`.
RoPE positions of the keys are chosen by `rope`: "absolute" (global frame index, as Self-Forcing)
or "relative" (order of the frame in storage: unbounded length, what TetherCache and
LongLive-infinity use).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import torch

from ..errors import ConfigError
from .layout import BUDGET_KEYS, Layout
from .protocol import FrameInfo, PassContext
from .storage import KVCache

ROPE_MODES = ("absolute", "relative")


@dataclass(slots=True)
class PolicyState:
    """Per-session state of a policy: the storage it moves and the session's frame info.
    Policies that track more subclass it (slots: no attribute outside the declared fields)."""
    cache: KVCache
    info: FrameInfo


@dataclass
class CachePolicy:
    rope: str = "absolute"
    name: ClassVar[str] = "base"
    unit: ClassVar[str] = "frame"           # what the budget counts; its key is BUDGET_KEYS[unit]
    needs_poses: ClassVar[bool] = False     # True: only for backbones that know camera poses
    state_type: ClassVar[type[PolicyState]] = PolicyState

    # ---- configuration ------------------------------------------------------------------
    def layout(self, horizon: int) -> Layout:
        """The attended layout, from the policy's own `budget` | `budget_tokens`, `sink`, `recent`."""
        return Layout(self.unit, getattr(self, BUDGET_KEYS[self.unit]), getattr(self, "sink", 0),
                      getattr(self, "recent", None))

    def capacity(self, horizon: int, tokens_per_frame: int) -> int:
        """Tokens of storage to preallocate: the attended budget."""
        return self.layout(horizon).tokens(tokens_per_frame)

    def cache_budget(self, horizon: int, tokens_per_frame: int) -> dict:
        """The attended budget per layer (unit, frames, tokens, sink, recent) for `record.json`."""
        return self.layout(horizon).record(tokens_per_frame)

    def validate(self, chunk: int, horizon: int, rope_max: int,
                 tokens_per_frame: int | None = None) -> None:
        """Raise ConfigError (naming the `cache.*` key) for values out of range. Never writes to
        the policy. Token budgets are checked against the frame size when it is given."""
        if self.rope not in ROPE_MODES:
            raise ConfigError(f"cache.rope={self.rope!r}: must be one of {ROPE_MODES}")
        self.layout(horizon).validate(chunk, tokens_per_frame)
        if self.rope == "absolute" and horizon > rope_max:
            raise ConfigError(
                f"cache.rope=absolute: horizon of {horizon} latent frames exceeds the RoPE table "
                f"({rope_max} positions); use cache.rope=relative")

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    # ---- hooks --------------------------------------------------------------------------
    def new_state(self, cache: KVCache, info: FrameInfo) -> PolicyState:
        return self.state_type(cache, info)

    def place(self, st: PolicyState, layer: int, frame_ids: torch.Tensor) -> slice:
        """Chunk start: evict what must go, then append the chunk; returns its token slots."""
        raise NotImplementedError

    def commit(self, st: PolicyState, layer: int, q: torch.Tensor) -> None:
        """Clean context pass, after the chunk's clean K/V are written, before readout."""

    def on_pass(self, st: PolicyState, layer: int, q: torch.Tensor, k: torch.Tensor,
                ctx: PassContext) -> slice | None:
        """Every pass, after its chunk K/V [B, n, H, D] are written: optional per-pass action."""

    def read_set(self, st: PolicyState, layer: int, ctx: PassContext) -> torch.Tensor | None:
        """Every pass, after `commit`: the stored entries it attends to (None = all)."""

    def chunk_stats(self, st: PolicyState) -> dict:
        """Per-chunk decisions worth recording in the timeline (policy-specific)."""
        return {}
