"""`full`: keep every frame (no eviction); storage is preallocated for the whole horizon.

Its budget is the horizon, so it is not an equal-budget baseline: a growing cache also tests
position extrapolation (RoPE positions far beyond the clip length the model was trained on).
"""
from dataclasses import dataclass

from .policy import CachePolicy
from .registry import register


@register
@dataclass
class FullPolicy(CachePolicy):
    name = "full"

    def capacity(self, horizon: int, tokens_per_frame: int) -> int:
        return horizon * tokens_per_frame

    def validate(self, chunk, horizon, rope_max):
        self.budget = horizon
        super().validate(chunk, horizon, rope_max)

    def place(self, st, layer, frame_ids):
        return st.cache.append(layer, frame_ids, self.sink_regions(st.cache.n_frames(layer),
                                                                   len(frame_ids)))
