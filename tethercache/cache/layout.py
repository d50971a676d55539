"""The attended layout of a cache policy: one vocabulary for every policy, checked here once.

Per layer, in frames of the video, the current chunk included:
    [ sink | middle (memory, scored or FIFO frames) | recent ]
  * `sink`: the first `sink` frames of the video, never evicted. Nothing is evicted before them,
    so they always fill the first slots: "frame id < sink" (`is_sink`) is the one test.
  * `recent`: the newest `recent` frames, THE CURRENT CHUNK INCLUDED (so >= chunk), never
    evicted. None: every frame after the sink is recent (a FIFO window).
  * `budget`: what is attended per layer, the chunk included, counted in `unit`. The unit is in
    the key's name: frame policies have `budget` (frames), token policies `budget_tokens`.
A policy's layout comes from those keys (`CachePolicy.layout`); its other keys it checks itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .protocol import RECENT, SINK

BUDGET_KEYS = {"frame": "budget", "token": "budget_tokens"}
# an old token-policy config: `budget` counted tokens and `recent` excluded the chunk
TOKEN_MIGRATION = ("use cache.budget_tokens (recent now includes the current chunk: the old "
                   "recent=3 is recent=6)")


@dataclass(frozen=True)
class Layout:
    unit: str                  # "frame" | "token": what `budget` counts
    budget: int                # frames or tokens attended per layer, current chunk included
    sink: int = 0
    recent: int | None = None  # None: all frames after the sink (frame unit only)

    def __post_init__(self):
        if self.unit not in BUDGET_KEYS or (self.unit == "token" and self.recent is None):
            raise ValueError(f"layout unit {self.unit!r} (recent={self.recent})")

    @property
    def key(self) -> str:
        return f"cache.{BUDGET_KEYS[self.unit]}"

    @property
    def recent_frames(self) -> int:
        return self.budget - self.sink if self.recent is None else self.recent

    def tokens(self, tokens_per_frame: int) -> int:
        """Tokens attended per layer (= storage to preallocate)."""
        return self.budget * tokens_per_frame if self.unit == "frame" else self.budget

    def record(self, tokens_per_frame: int) -> dict:
        """The attended budget as `record.json` states it."""
        return {"unit": self.unit, "frames": self.budget if self.unit == "frame" else None,
                "tokens": self.tokens(tokens_per_frame), "sink": self.sink,
                "recent": self.recent_frames}

    def validate(self, chunk: int, tokens_per_frame: int | None = None) -> None:
        """ConfigError naming the key. Token budgets are checked when `tokens_per_frame` is given."""
        S, R, K = self.sink, self.recent, self.budget
        if self.unit == "frame" and K < chunk:
            raise ConfigError(f"cache.budget={K}: must be >= the chunk ({chunk} frames)")
        if S < 0:
            raise ConfigError(f"cache.sink={S}: must be >= 0")
        if R is None:
            if S > K - chunk:
                raise ConfigError(f"cache.sink={S}: must be in [0, budget - chunk] = [0, {K - chunk}]")
            return
        if R < chunk:
            raise ConfigError(f"cache.recent={R}: must be >= the chunk ({chunk} frames): recent "
                              f"counts the current chunk")
        if self.unit == "frame" and S + R > K:
            raise ConfigError(f"cache.sink + cache.recent = {S} + {R}: must be <= cache.budget = {K} "
                              f"(memory = budget - sink - recent >= 0)")
        if self.unit == "token" and tokens_per_frame is not None and K < (S + R) * tokens_per_frame:
            raise ConfigError(f"cache.budget_tokens={K}: must be >= (sink + recent) x tokens per frame "
                              f"= {S + R} x {tokens_per_frame} = {(S + R) * tokens_per_frame} tokens")

    def is_sink(self, frame_ids: torch.Tensor) -> torch.Tensor:
        return (frame_ids < self.sink) & (frame_ids >= 0)       # synthetic entries (< 0) are not

    def sink_regions(self, frame_ids: torch.Tensor, rest: int = RECENT) -> list[int]:
        """Region of each appended frame: sink for the first `sink` frames, else `rest`."""
        return [SINK if s else rest for s in self.is_sink(torch.as_tensor(frame_ids)).tolist()]


def check_budget_key(name: str, unit: str, cfg: dict) -> None:
    """The other unit's budget key is a named error (null is dropped: a token policy's yaml keeps
    `budget: null` so that an old `cache.budget=N` override reaches this message, not Hydra's)."""
    other = BUDGET_KEYS["frame" if unit == "token" else "token"]
    if other not in cfg:
        return
    if cfg[other] is None:
        del cfg[other]
        return
    hint = TOKEN_MIGRATION if unit == "token" else "use cache.budget"
    raise ConfigError(f"cache.{other}: {name} counts its budget in {unit}s: {hint}")
