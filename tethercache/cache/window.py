"""`window`: Self-Forcing's rolling FIFO of the last `budget` frames (chunk included).
The FIFO keeps the layout's sink (none here; `sink.py` adds one)."""
from dataclasses import dataclass

from .policy import CachePolicy
from .registry import register


@register
@dataclass
class WindowPolicy(CachePolicy):
    name = "window"
    budget: int = 21            # frames attended per layer, current chunk included

    def place(self, st, layer, frame_ids):
        cache, layout = st.cache, self.layout(st.info.horizon)
        overflow = cache.n_frames(layer) + len(frame_ids) - self.budget
        if overflow > 0:                       # the oldest frames after the sink leave
            cache.drop_frames(layer, layout.sink, overflow)
        return cache.append(layer, frame_ids, layout.sink_regions(frame_ids))
