"""KV cache storage, the policy seam, and one small module per policy."""
from .policy import CachePolicy
from .registry import POLICIES, build_policy, register
from .session import CacheSession
from .storage import EMPTY, MEMORY, RECENT, REGION_NAMES, SINK, KVCache

__all__ = ["CachePolicy", "CacheSession", "KVCache", "POLICIES", "build_policy", "register",
           "EMPTY", "SINK", "MEMORY", "RECENT", "REGION_NAMES"]

from .registry import _import_all

_import_all()   # every policy module registers itself
