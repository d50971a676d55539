"""KV cache storage, the model/cache seam, and one small module per policy."""
from .layout import Layout
from .policy import CachePolicy, PolicyState
from .protocol import (EMPTY, MEMORY, RECENT, REGION_NAMES, REGIONS, SINK, STATE, Attend, FrameInfo,
                       Region, add_region)
from .registry import POLICIES, build_policy, register
from .scorer import ScorerPolicy
from .session import CacheSession
from .storage import KVCache

__all__ = ["Attend", "CachePolicy", "CacheSession", "FrameInfo", "KVCache", "Layout", "POLICIES",
           "PolicyState", "ScorerPolicy", "build_policy", "register",
           "EMPTY", "SINK", "MEMORY", "RECENT", "STATE", "REGION_NAMES", "REGIONS", "Region",
           "add_region"]

from .registry import _import_all

_import_all()   # every policy module registers itself
