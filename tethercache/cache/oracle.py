"""`oracle`: sink | closest-pose memory | recent, an upper bound for memory policies (toy only).

At each chunk start the memory holds the M frames, among everything evicted so far, whose
camera pose is closest to the chunk's (ties: the most recent), so even the denoising passes see
the best possible recall. It cheats twice, on purpose: it knows the camera path, and it keeps
every frame's clean K/V in an off-budget history store. The *attention* budget is the same
K = S + M + R frames as the policies it bounds.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .policy import CachePolicy, PolicyState
from .protocol import MEMORY, RECENT
from .registry import register
from .scorer import memory_frames


@dataclass(slots=True)
class OracleState(PolicyState):
    hist_k: torch.Tensor = field(init=False)    # [layers, B, horizon, T, H, D] every frame's clean K
    hist_v: torch.Tensor = field(init=False)

    def __post_init__(self):
        c = self.cache
        shape = (c.layers, c.k.shape[1], self.info.horizon, c.tokens_per_frame, *c.k.shape[3:])
        self.hist_k = torch.zeros(shape, dtype=c.k.dtype, device=c.k.device)
        self.hist_v = torch.zeros_like(self.hist_k)


@register
@dataclass
class OraclePolicy(CachePolicy):
    name = "oracle"
    needs_poses = True
    state_type = OracleState
    rope: str = "relative"
    budget: int = 21            # K frames attended per layer, current chunk included
    sink: int = 3               # S
    recent: int = 4             # R (current chunk included); memory M = K - S - R

    def place(self, st, layer, frame_ids):
        cache, poses = st.cache, st.info.poses
        C, S = len(frame_ids), self.sink
        first = int(frame_ids[0])
        n_recent = min(self.recent - C, max(0, first - S))      # previous frames kept as recent
        recent = torch.arange(first - n_recent, first)
        history = torch.arange(S, max(S, first - n_recent))      # evicted frames
        M = self.budget - S - self.recent
        memory = history
        if len(history) > M:
            d = (poses[history] - poses[frame_ids].mean()).abs()
            order = sorted(range(len(history)), key=lambda i: (float(d[i]), -int(history[i])))
            memory = history[sorted(order[:M])]                   # chronological slots
        keep = min(S, first)
        cache.drop_frames(layer, keep, cache.n_frames(layer) - keep)   # rebuild after the sink
        for ids, region in ((memory, MEMORY), (recent, RECENT)):
            if len(ids):
                sl = cache.append(layer, ids, [region] * len(ids))
                cache.write(layer, sl, st.hist_k[layer][:, ids].flatten(1, 2),
                            st.hist_v[layer][:, ids].flatten(1, 2))
        return cache.append(layer, frame_ids, self.layout(st.info.horizon).sink_regions(frame_ids))

    def commit(self, st, layer, q):
        cache = st.cache
        n = cache.n_frames(layer)
        ids = cache.frame_ids(layer)[n - len(q[0]) // cache.tokens_per_frame: n]
        st.hist_k[layer][:, ids] = cache.frame_k(layer)[:, n - len(ids): n]
        st.hist_v[layer][:, ids] = cache.frame_v(layer)[:, n - len(ids): n]

    def chunk_stats(self, st) -> dict:
        return {"memory": memory_frames(st.cache)}
