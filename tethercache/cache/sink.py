"""`sink`: the first `sink` frames stay forever, the rest is a FIFO window (StreamingLLM/LongLive).
The eviction itself is the base policy's (FIFO after the sink)."""
from dataclasses import dataclass

from ..errors import ConfigError
from .policy import CachePolicy
from .registry import register


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
