"""`sink`: the first `sink` frames stay forever, the rest is a FIFO window (StreamingLLM/LongLive)."""
from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .policy import CachePolicy
from .registry import register
from .storage import RECENT, SINK


@register
@dataclass
class SinkPolicy(CachePolicy):
    name = "sink"
    sink: int = 3

    def validate(self, chunk, horizon, rope_max):
        super().validate(chunk, horizon, rope_max)
        if not 0 <= self.sink <= self.budget - chunk:
            raise ConfigError(f"cache.sink={self.sink}: must be in [0, budget - chunk] = "
                              f"[0, {self.budget - chunk}]")

    def place(self, cache, layer, frame_ids: torch.Tensor):
        overflow = cache.used[layer] + len(frame_ids) - self.budget
        if overflow > 0:
            cache.drop(layer, self.sink, overflow)
        used = cache.used[layer]
        regions = [SINK if used + i < self.sink else RECENT for i in range(len(frame_ids))]
        return cache.append(layer, frame_ids, regions)
