"""`oracle`: sink | closest-pose memory | recent, an upper bound for memory policies (toy only).

At each chunk start the memory holds the M frames, among everything evicted so far, whose
camera pose is closest to the chunk's (ties: the most recent), so even the denoising passes see
the best possible recall. It cheats twice, on purpose: it knows the camera path, and it keeps
every frame's clean K/V in an off-budget history store. The *attention* budget is the same
K = S + M + R frames as the policies it bounds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .policy import CachePolicy
from .registry import register
from .storage import MEMORY, RECENT, SINK


@register
@dataclass
class OraclePolicy(CachePolicy):
    name = "oracle"
    needs_poses = True
    rope: str = "relative"
    sink: int = 3
    recent: int = 4

    def validate(self, chunk, horizon, rope_max):
        super().validate(chunk, horizon, rope_max)
        if self.sink < 0 or self.recent < chunk or self.sink + self.recent > self.budget:
            raise ConfigError(f"cache.sink={self.sink}, cache.recent={self.recent}: need sink >= 0, "
                              f"recent >= chunk ({chunk}), sink + recent <= budget ({self.budget})")
        self._horizon = horizon

    def _store(self, cache):
        if getattr(self, "_cache", None) is not cache:      # new session: new history store
            shape = (cache.layers, cache.k.shape[1], self._horizon, *cache.k.shape[3:])
            self._cache = cache
            self._hist_k = torch.zeros(shape, dtype=cache.k.dtype, device=cache.k.device)
            self._hist_v = torch.zeros_like(self._hist_k)

    def place(self, cache, layer, frame_ids):
        self._store(cache)
        C, S = len(frame_ids), self.sink
        first = int(frame_ids[0])
        n_recent = min(self.recent - C, max(0, first - S))      # previous frames kept as recent
        recent = torch.arange(first - n_recent, first)
        history = torch.arange(S, max(S, first - n_recent))      # evicted frames
        M = self.budget - S - self.recent
        memory = history
        if len(history) > M:
            d = (cache.poses[history] - cache.poses[frame_ids].mean()).abs()
            order = sorted(range(len(history)), key=lambda i: (float(d[i]), -int(history[i])))
            memory = history[sorted(order[:M])]                   # chronological slots
        keep = min(S, first)
        cache.drop(layer, keep, cache.used[layer] - keep)         # rebuild after the sink
        for ids, region in ((memory, MEMORY), (recent, RECENT)):
            if len(ids):
                sl = cache.append(layer, ids, [region] * len(ids))
                cache.write(layer, sl.start, self._hist_k[layer][:, ids], self._hist_v[layer][:, ids])
        regions = [SINK if int(f) < S else RECENT for f in frame_ids]
        return cache.append(layer, frame_ids, regions)

    def commit(self, cache, layer, q):
        n = cache.used[layer]
        ids = cache.frames[layer, n - len(q[0]) // cache.tokens_per_frame: n]
        self._hist_k[layer][:, ids] = cache.k[layer, :, n - len(ids): n]
        self._hist_v[layer][:, ids] = cache.v[layer, :, n - len(ids): n]

    def chunk_stats(self) -> dict:
        c = self._cache
        return {"memory": [c.frames[l, : c.used[l]][c.regions[l, : c.used[l]] == MEMORY].tolist()
                           for l in range(c.layers)]}
