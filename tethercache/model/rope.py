"""Wan's 3-axis RoPE, computed from explicit per-token positions instead of a table slice.

Head channels split into (t, h, w) axes exactly as Wan does (h = w = 2 * (D // 6), t = rest).
Angles are computed in float64 (as the original Wan and diffusers' tables are) and cast to
float32 once. Positions (t, h, w) come per token from the caller (the cache), so cached keys are
stored unrotated, rotated on read wherever the policy puts them, and a cache may hold any subset
of a frame's tokens: no h x w grid is built per key frame.
"""
from __future__ import annotations

from typing import Hashable

import torch


class WanRope:
    def __init__(self, head_dim: int, max_positions: int = 1024, theta: float = 10000.0):
        self.head_dim = head_dim
        self.max_positions = max_positions
        h = w = 2 * (head_dim // 6)
        self.split = (head_dim - h - w, h, w)
        self.inv_freq = [
            1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d)) for d in self.split
        ]
        self._memo: dict = {}

    def angles(self, pos: torch.Tensor) -> torch.Tensor:
        """Angles [(B,) N, D/2] (float64) of tokens at positions pos [(B,) N, 3] = (t, h, w)."""
        pos = pos.to(torch.float64).cpu()
        return torch.cat([pos[..., a, None] * self.inv_freq[a] for a in range(3)], dim=-1)

    def cos_sin(self, pos: torch.Tensor, device=None, key: Hashable | None = None):
        """float32 (cos, sin) on `device`, memoised on `key` (default: the positions' bytes):
        every layer and denoising pass of a chunk asks for the same positions, so they are
        computed once per cache layout, not once per call."""
        if key is None:
            key = (tuple(pos.shape), pos.to(torch.float64).cpu().numpy().tobytes())
        key = (key, str(device))
        hit = self._memo.get(key)
        if hit is None:
            ang = self.angles(pos)
            hit = (ang.cos().float().to(device), ang.sin().float().to(device))
            if len(self._memo) >= 16:
                self._memo.pop(next(iter(self._memo)))     # oldest first
            self._memo[key] = hit
        return hit


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate interleaved channel pairs of x [B, L, H, D] by angles cos/sin [(B,) L, D/2]."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    if cos.ndim == 2:
        cos, sin = cos[None], sin[None]
    c, s = cos[:, :, None, :], sin[:, :, None, :]
    out = torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], dim=-1).flatten(-2)
    return out.type_as(x)
