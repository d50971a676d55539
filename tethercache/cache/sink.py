"""`sink`: the first `sink` frames stay forever, the rest is a FIFO window (StreamingLLM/LongLive).
The eviction is the window's (FIFO after the sink); the range check is the layout's."""
from dataclasses import dataclass

from .registry import register
from .window import WindowPolicy


@register
@dataclass
class SinkPolicy(WindowPolicy):
    name = "sink"
    sink: int = 3               # the first frames of the video, never evicted
