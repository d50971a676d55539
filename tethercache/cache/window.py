"""`window`: Self-Forcing's rolling FIFO of the last `budget` frames (chunk included)."""
from dataclasses import dataclass

from .policy import CachePolicy
from .registry import register


@register
@dataclass
class WindowPolicy(CachePolicy):
    name = "window"
