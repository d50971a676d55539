"""Commit Forcing's read rule, as a modifier of any policy, and `commit_forcing` = tether + it.

The rule (the official Commit Forcing integration for TetherCache,
Dwell-Jing/commit-forcing@5ed6592, integrations/tethercache/commit_rule.patch, as its authors
reproduced on its official traces: tests/test_official_traces.py): denoising passes read the
whole cache; once a layer's cache is full, that layer's clean commit pass reads only the inner
policy's `recent` region (the current chunk included), after the policy's commit-time edits
(GRAB admission, TAME) on the full cache; RoPE positions of the kept keys are those of the full
window (no re-basing). Before the cache is full nothing changes. The commit pass still writes
its clean K/V exactly as without the rule: only what it reads changes. With a FIFO window or a
sink the recent region is everything after the sink.

`CommitReads(inner)` wraps any policy (as kvpress composes presses): every hook and key is the
inner's, plus `read_set` and the rule's counters in `chunk_stats` (`commit_read_frames`: per
layer, the frames the commit pass read, None where unrestricted).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .protocol import RECENT, PassContext
from .registry import register
from .storage import KVCache
from .tether import TetherPolicy


def recent_reads(cache: KVCache, layer: int, ctx: PassContext) -> torch.Tensor | None:
    """The commit pass of a full layer reads its recent region; every other pass, everything."""
    if not ctx.is_commit or cache.used[layer] < cache.capacity:
        return None
    return (cache.token_regions(layer) == RECENT).nonzero().flatten()


def with_read_stats(stats: dict, cache: KVCache) -> dict:
    """The policy's chunk stats plus, per layer, the frames its commit pass read when restricted
    (the layout at chunk end is the one the commit pass read)."""
    frames = []
    for layer in range(cache.layers):
        full = cache.used[layer] >= cache.capacity
        recent = cache.token_frames(layer)[cache.token_regions(layer) == RECENT]
        frames.append(len(recent.unique()) if full else None)
    return {**stats, "commit_read_frames": frames}


class CommitReads:
    """Any policy, its commit pass restricted to the recent region once its cache is full."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):            # keys, layout, place, commit, ...: the inner's
        if name == "inner":                 # not set yet (copy, unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __repr__(self):
        return f"CommitReads({self.inner!r})"

    def read_set(self, st, layer, ctx):
        return recent_reads(st.cache, layer, ctx)

    def chunk_stats(self, st):
        return with_read_stats(self.inner.chunk_stats(st), st.cache)


@register
@dataclass
class CommitForcingPolicy(TetherPolicy):
    """`tether` (every key and default its own) with Commit Forcing's commit-pass reads."""
    name = "commit_forcing"

    def read_set(self, st, layer, ctx):
        return recent_reads(st.cache, layer, ctx)

    def chunk_stats(self, st):
        return with_read_stats(super().chunk_stats(st), st.cache)
