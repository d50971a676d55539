"""Wan's 3-axis RoPE, computed from explicit positions instead of a table slice.

Head channels split into (t, h, w) axes exactly as Wan does (h = w = 2 * (D // 6), t = rest).
Angles are computed in float64 (as the original Wan and diffusers' tables are) and cast to
float32 once. Temporal positions come from the caller (the cache policy), so cached keys can
be stored unrotated and rotated on read at whatever position the policy decides.
"""
from __future__ import annotations

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
        self._grid_cache: dict = {}
        self._memo: dict = {}

    def _axis(self, axis: int, pos: torch.Tensor) -> torch.Tensor:
        return torch.outer(pos.to(torch.float64).cpu(), self.inv_freq[axis])  # [N, d/2]

    def _spatial(self, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = (height, width)
        if key not in self._grid_cache:
            self._grid_cache[key] = (
                self._axis(1, torch.arange(height)), self._axis(2, torch.arange(width))
            )
        return self._grid_cache[key]

    def angles(self, frame_pos: torch.Tensor, height: int, width: int,
               w_offset: torch.Tensor | None = None) -> torch.Tensor:
        """Angles [F*h*w, D/2] (float64) for frames at temporal positions `frame_pos` [F].

        `w_offset` [F] or [B, F] shifts each frame's width axis (a camera-pose hook for the toy
        world); with a batch dimension the result is [B, F*h*w, D/2].
        """
        n = frame_pos.shape[0]
        at = self._axis(0, frame_pos)[:, None, None, :].expand(n, height, width, -1)
        ah, aw = self._spatial(height, width)
        ah = ah[None, :, None, :].expand(n, height, width, -1)
        if w_offset is None:
            aw = aw[None, None, :, :].expand(n, height, width, -1)
            return torch.cat([at, ah, aw], dim=-1).reshape(n * height * width, -1)
        off = w_offset.to(torch.float64).cpu().reshape(-1, n)                   # [B, F]
        cols = torch.arange(width, dtype=torch.float64)[None, None, :] + off[..., None]
        aw = self._axis(2, cols.reshape(-1)).reshape(off.shape[0], n, 1, width, -1)
        b = off.shape[0]
        ang = torch.cat([at.expand(b, *at.shape), ah.expand(b, *ah.shape),
                         aw.expand(b, n, height, width, -1)], dim=-1)
        ang = ang.reshape(b, n * height * width, -1)
        return ang if w_offset.ndim == 2 else ang[0]

    def cos_sin(self, frame_pos, height, width, w_offset=None, device=None):
        """float32 (cos, sin) on `device`, memoised: every layer and denoising pass of a chunk
        asks for the same positions, so they are computed once per chunk, not once per call."""
        key = (frame_pos.to(torch.float64).cpu().numpy().tobytes(), height, width, str(device),
               None if w_offset is None else
               (tuple(w_offset.shape), w_offset.to(torch.float64).cpu().numpy().tobytes()))
        hit = self._memo.get(key)
        if hit is None:
            ang = self.angles(frame_pos, height, width, w_offset)
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
