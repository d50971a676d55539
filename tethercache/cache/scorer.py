"""Scorer policies: implement `score(...)`, get top-k retention and the storage moves for free.

In the spirit of kvpress's `ScorerPress` (NVIDIA/kvpress, presses/scorer_press.py): a policy
says how much each cached token (or frame) is worth; this base keeps the best ones within the
budget. Schedule, per layer:
  * clean context pass (`commit`): score every cached entry from the chunk's queries and the
    cached keys/values; the scores are kept alongside storage (they move with their entries);
  * chunk start (`place`): if the chunk does not fit, the lowest-scored entries leave (whole
    frames when `unit = "frame"`), the survivors are compacted in place (order kept), and the
    chunk is appended. The first `sink` frames and the newest `recent` stored frames are never
    scored out. Storage is allocated for the budget only (tokens when `unit = "token"`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .policy import CachePolicy, PolicyState
from .protocol import MEMORY, RECENT, SINK
from .storage import KVCache


def top_k_mask(score: torch.Tensor, k: int) -> torch.Tensor:
    """Bool [n] on the CPU, True for the k best scores (torch.topk's choice among ties)."""
    keep = torch.zeros(len(score), dtype=torch.bool)
    keep[torch.topk(score, k).indices.cpu()] = True
    return keep


def memory_frames(cache: KVCache) -> list[list[int]]:
    """Per layer, the global ids of the frames in the memory region (timeline statistics)."""
    return [cache.frame_ids(l)[cache.frame_regions(l) == MEMORY].tolist() for l in range(cache.layers)]


@dataclass
class ScorerPolicy(CachePolicy):
    sink: int = 0               # first frames of the video, never evicted
    recent: int = 0             # newest stored frames, never evicted
    unit = "token"

    def score(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Worth of each cached token [n] (higher is kept), from the chunk's queries q
        [B, Lq, H, D] and the cached (unrotated) keys / values [B, n, H, D]."""
        raise NotImplementedError

    def validate(self, chunk, horizon, rope_max):
        super().validate(chunk, horizon, rope_max)
        if self.sink < 0 or self.recent < 0:
            raise ConfigError(f"cache.sink={self.sink}, cache.recent={self.recent}: must be >= 0")
        if self.unit == "frame" and self.sink + self.recent + chunk > self.budget:
            raise ConfigError(f"cache.budget={self.budget}: must be >= sink + recent + chunk = "
                              f"{self.sink + self.recent + chunk} frames")

    def new_state(self, cache, info):
        st = PolicyState(cache, info)
        st.scores = torch.zeros(cache.layers, cache.capacity)
        return st

    def place(self, st, layer, frame_ids):
        cache, T = st.cache, st.cache.tokens_per_frame
        need = len(frame_ids) * T
        overflow = cache.used[layer] + need - cache.capacity
        if overflow > 0:
            self._evict(st, layer, overflow)
        regions = [SINK if int(f) < self.sink else RECENT for f in frame_ids]
        return cache.append(layer, frame_ids, regions)

    def commit(self, st, layer, q):
        cache = st.cache
        s = self.score(q, cache.keys(layer), cache.values(layer)).float().cpu()
        if self.unit == "frame":
            s = s.view(-1, cache.tokens_per_frame).mean(1).repeat_interleave(cache.tokens_per_frame)
        st.scores[layer, : cache.used[layer]] = s

    def _evict(self, st, layer: int, n: int) -> None:
        cache, T = st.cache, st.cache.tokens_per_frame
        frames = cache.token_frames(layer)
        protected = (frames < self.sink) | (frames > int(frames.max()) - self.recent)
        score = st.scores[layer, : len(frames)].masked_fill(protected, float("inf"))
        if self.unit == "frame":           # whole frames: one score per frame slot
            score, n = score[::T], n // T
        if int((score != float("inf")).sum()) < n:
            raise ConfigError(f"cache.budget={self.budget}: too small to hold sink={self.sink} + "
                              f"recent={self.recent} frames and the chunk")
        drop = torch.zeros(len(score), dtype=torch.bool)
        drop[torch.sort(score, stable=True).indices[:n]] = True    # lowest first, oldest on ties
        if self.unit == "frame":
            drop = drop.repeat_interleave(T)
        keep = (~drop).nonzero().flatten()
        cache.keep_tokens(layer, keep)
        st.scores[layer, : len(keep)] = st.scores[layer, keep].clone()
        regions = cache.token_regions(layer)
        regions[regions == RECENT] = MEMORY          # survivors older than the chunk
