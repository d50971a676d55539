"""Scorer policies: implement `score(...)`, get top-k retention and the storage moves for free.

In the spirit of kvpress's `ScorerPress` (NVIDIA/kvpress, presses/scorer_press.py): a policy
says how much each cached token (or frame) is worth; this base keeps the best ones within the
budget. Schedule, per layer:
  * clean context pass (`commit`): score every cached entry from the chunk's queries and the
    cached keys/values; the scores are kept alongside storage (they move with their entries);
  * chunk start (`place`): if the chunk does not fit, the lowest-scored entries leave (whole
    frames when `unit = "frame"`), the survivors are compacted in place (order kept, the freed
    slots' scores zeroed), and the chunk is appended. The layout's sink and its newest `recent`
    frames (the chunk included, so the newest `recent - chunk` stored ones) are never scored
    out; they are the sink and recent regions, the other survivors are memory.
A token scorer declares `budget_tokens` (storage is allocated for exactly that many), a frame
scorer (`unit = "frame"`) declares `budget`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from .policy import CachePolicy, PolicyState
from .protocol import MEMORY, RECENT
from .storage import KVCache


def top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [n] on the CPU, True for the k best scores (torch.topk's choice among ties)."""
    keep = torch.zeros(len(score), dtype=torch.bool)
    keep[torch.topk(score, k).indices.cpu()] = True
    return keep


def memory_frames(cache: KVCache) -> list[list[int]]:
    """Per layer, the global ids of the frames in the memory region (timeline statistics)."""
    return [cache.frame_ids(l)[cache.frame_regions(l) == MEMORY].tolist() for l in range(cache.layers)]


@dataclass(slots=True)
class ScorerState(PolicyState):
    scores: torch.Tensor = field(init=False)    # [layers, capacity] worth of each stored token

    def __post_init__(self):
        self.scores = torch.zeros(self.cache.layers, self.cache.capacity)


@dataclass
class ScorerPolicy(CachePolicy):
    sink: int = 0               # first frames of the video, never evicted
    recent: int = 3             # newest frames, the current chunk included (>= chunk), never evicted
    unit = "token"
    state_type = ScorerState

    def score(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Worth of each cached token [n] (higher is kept), from the chunk's queries q
        [B, Lq, H, D] and the cached (unrotated) keys / values [B, n, H, D]."""
        raise NotImplementedError

    def place(self, st, layer, frame_ids):
        cache = st.cache
        overflow = cache.used[layer] + len(frame_ids) * cache.tokens_per_frame - cache.capacity
        layout = self.layout(st.info.horizon)
        if overflow > 0:
            self._evict(st, layer, overflow, layout.recent - len(frame_ids))
        return cache.append(layer, frame_ids, layout.sink_regions(frame_ids))

    def commit(self, st, layer, q):
        cache = st.cache
        s = self.score(q, cache.keys(layer), cache.values(layer)).float().cpu()
        if self.unit == "frame":
            s = s.view(-1, cache.tokens_per_frame).mean(1).repeat_interleave(cache.tokens_per_frame)
        st.scores[layer, : cache.used[layer]] = s

    def _evict(self, st, layer: int, n: int, newest: int) -> None:
        """Drop the n lowest-scored tokens, never the sink nor the `newest` stored frames."""
        cache, T = st.cache, st.cache.tokens_per_frame
        layout = self.layout(st.info.horizon)
        frames = cache.token_frames(layer)
        older = frames <= int(frames.max()) - newest          # not among the newest stored frames
        score = st.scores[layer, : len(frames)].masked_fill(layout.is_sink(frames) | ~older,
                                                            float("inf"))
        if self.unit == "frame":           # whole frames: one score per frame slot
            score, n = score[::T], n // T
        if int((score != float("inf")).sum()) < n:
            raise ConfigError(f"{layout.key}={layout.budget}: too small to hold sink={self.sink} + "
                              f"recent={self.recent} frames (current chunk included)")
        drop = torch.zeros(len(score), dtype=torch.bool)
        drop[torch.sort(score, stable=True).indices[:n]] = True    # lowest first, oldest on ties
        if self.unit == "frame":
            drop = drop.repeat_interleave(T)
        keep = (~drop).nonzero().flatten()
        cache.keep_tokens(layer, keep)
        st.scores[layer, : len(keep)] = st.scores[layer, keep].clone()
        st.scores[layer, len(keep):] = 0                       # freed slots hold no stale worth
        regions = cache.token_regions(layer)
        regions[(regions == RECENT) & older[keep]] = MEMORY   # survivors outside the recent frames
