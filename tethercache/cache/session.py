"""CacheSession: what the model talks to. Binds storage + policy + the chunk being generated.

The sampler drives it: `begin_chunk(frame_ids)` at chunk start, `commit_pass()` around the
clean context pass, `end_chunk()` to record the timeline. The model only calls `attend`.
"""
from __future__ import annotations

import contextlib
import json

import numpy as np
import torch

from ..model.wan import Attend
from .policy import CachePolicy
from .storage import KVCache


class CacheSession:
    def __init__(self, policy: CachePolicy, *, layers: int, horizon: int, tokens_per_frame: int,
                 heads: int, head_dim: int, batch: int = 1, dtype=torch.float32, device="cpu",
                 rope_max: int = 1024, record: bool = True, poses: torch.Tensor | None = None):
        self.policy = policy
        self.cache = KVCache(layers, policy.capacity(horizon), tokens_per_frame, heads, head_dim,
                             batch, dtype, device)
        self.cache.poses = poses           # per global frame (toy camera pose), for policies that use it
        self.rope_max = rope_max
        self.chunk_frames: torch.Tensor | None = None
        self.chunk_slots: list[slice] = [slice(0, 0)] * layers
        self.committing = False
        self.record = record
        self.timeline: dict[str, list] = {"chunk_start": [], "frames": [], "regions": [], "stats": []}

    def begin_chunk(self, frame_ids: torch.Tensor) -> None:
        """Chunk start, every layer: the policy makes room and appends the chunk's slots."""
        if self.policy.rope == "absolute" and int(frame_ids.max()) >= self.rope_max:
            raise RuntimeError(f"frame {int(frame_ids.max())} is past the RoPE table "
                               f"({self.rope_max}); use cache.rope=relative")
        self.chunk_frames = frame_ids
        self.chunk_slots = [self.policy.place(self.cache, layer, frame_ids)
                            for layer in range(self.cache.layers)]

    @contextlib.contextmanager
    def commit_pass(self):
        """The clean context pass: K/V written now are final, and the policy commits."""
        self.committing = True
        try:
            yield
        finally:
            self.committing = False

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Attend:
        c = self.cache
        sl = self.chunk_slots[layer]
        c.write(layer, sl.start, k, v)          # each pass overwrites the noisier one
        if self.committing:
            self.policy.commit(c, layer, q)
        frames = c.frame_ids(layer)
        n, n_q = len(frames), len(self.chunk_frames)
        q_frames = frames[n - n_q:]
        if self.policy.rope == "absolute":
            k_pos, q_pos = frames.double(), q_frames.double()
        else:
            k_pos = torch.arange(n, dtype=torch.float64)
            q_pos = k_pos[n - n_q:]
        return Attend(c.keys(layer), c.values(layer), k_pos, q_pos, frames, q_frames)

    def end_chunk(self) -> None:
        if not self.record:
            return
        tl = self.timeline
        tl["chunk_start"].append(int(self.chunk_frames[0]))
        tl["frames"].append(self.cache.frames.numpy().astype(np.int32).copy())
        tl["regions"].append(self.cache.regions.numpy().copy())
        tl["stats"].append(self.policy.chunk_stats())

    def save_timeline(self, path) -> None:
        """Compact per-chunk x layer x slot tables (global frame id, region code), plus the
        policy's per-chunk decisions as JSON (their shapes vary from policy to policy)."""
        tl = self.timeline
        np.savez_compressed(path, chunk_start=np.array(tl["chunk_start"], np.int32),
                            frames=np.stack(tl["frames"]), regions=np.stack(tl["regions"]),
                            stats_json=np.array(json.dumps(tl["stats"])))
