"""`full`: keep every frame (no eviction); storage is preallocated for the whole horizon.

Its budget is the horizon, so it is not an equal-budget baseline: a growing cache also tests
position extrapolation (RoPE positions far beyond the clip length the model was trained on).
"""
from dataclasses import dataclass

from .layout import Layout
from .policy import CachePolicy
from .registry import register


@register
@dataclass
class FullPolicy(CachePolicy):
    name = "full"

    def layout(self, horizon):
        return Layout("frame", horizon)

    def place(self, st, layer, frame_ids):
        return st.cache.append(layer, frame_ids, self.layout(st.info.horizon).sink_regions(frame_ids))
