"""KVCache: preallocated per-layer K/V buffers in slot order plus a per-layer frame table.

Slot order is the attention order (and the RoPE order in relative mode). Buffers never grow:
`capacity` frames are allocated once and frames move in place. Keys are stored unrotated.
"""
from __future__ import annotations

import torch

EMPTY, SINK, MEMORY, RECENT = 0, 1, 2, 3
REGION_NAMES = {EMPTY: "empty", SINK: "sink", MEMORY: "memory", RECENT: "recent"}


class KVCache:
    def __init__(self, layers: int, capacity: int, tokens_per_frame: int, heads: int,
                 head_dim: int, batch: int = 1, dtype=torch.float32, device="cpu"):
        shape = (layers, batch, capacity, tokens_per_frame, heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.frames = torch.full((layers, capacity), -1, dtype=torch.long)   # global frame ids
        self.regions = torch.zeros((layers, capacity), dtype=torch.int8)
        self.used = [0] * layers
        self.poses: torch.Tensor | None = None        # optional per-frame metadata (toy camera pose)
        self.layers, self.capacity, self.tokens_per_frame = layers, capacity, tokens_per_frame

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    # ---- reads --------------------------------------------------------------------------
    def keys(self, layer: int) -> torch.Tensor:
        """[B, used*T, H, D] view of the occupied slots (no copy)."""
        return self.k[layer, :, : self.used[layer]].flatten(1, 2)

    def values(self, layer: int) -> torch.Tensor:
        return self.v[layer, :, : self.used[layer]].flatten(1, 2)

    def frame_ids(self, layer: int) -> torch.Tensor:
        return self.frames[layer, : self.used[layer]]

    def slots_of(self, layer: int, region: int) -> torch.Tensor:
        return torch.nonzero(self.regions[layer, : self.used[layer]] == region).flatten()

    def take(self, layer: int, start: int, n: int):
        """Copies of slots [start, start+n): (k, v, frame ids)."""
        sl = slice(start, start + n)
        return self.k[layer, :, sl].clone(), self.v[layer, :, sl].clone(), self.frames[layer, sl].clone()

    # ---- in-place moves -----------------------------------------------------------------
    def append(self, layer: int, frame_ids: torch.Tensor, regions) -> slice:
        n, start = len(frame_ids), self.used[layer]
        if start + n > self.capacity:
            raise RuntimeError(f"cache layer {layer} overflow: {start}+{n} > {self.capacity} frames")
        sl = slice(start, start + n)
        self.frames[layer, sl] = frame_ids
        self.regions[layer, sl] = torch.as_tensor(regions, dtype=torch.int8)
        self.used[layer] = start + n
        return sl

    def drop(self, layer: int, start: int, n: int) -> None:
        """Remove slots [start, start+n), shifting the later ones left (order kept)."""
        if n <= 0:
            return
        end = self.used[layer]
        for buf in (self.k, self.v):
            buf[layer, :, start: end - n] = buf[layer, :, start + n: end].clone()
        for table, blank in ((self.frames, -1), (self.regions, EMPTY)):
            table[layer, start: end - n] = table[layer, start + n: end].clone()
            table[layer, end - n: end] = blank
        self.used[layer] = end - n

    def write(self, layer: int, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Overwrite slots from `start` with k, v given as [B, n*T, H, D] or [B, n, T, H, D]."""
        B = self.k.shape[1]
        k = k.reshape(B, -1, *self.k.shape[3:])
        v = v.reshape(B, -1, *self.v.shape[3:])
        self.k[layer, :, start: start + k.shape[1]] = k
        self.v[layer, :, start: start + v.shape[1]] = v

    def reset(self) -> None:
        self.frames.fill_(-1)
        self.regions.fill_(EMPTY)
        self.used = [0] * self.layers
