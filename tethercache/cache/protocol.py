"""The seam between the model and a KV cache: the only module of `cache/` the model imports.

Each self-attention layer hands its fresh (q, k, v) for the current chunk to `attend` and gets
back an `Attend`: the keys/values to attend to (unrotated) and the RoPE position (t, h, w) of
every key and query token. The cache decides positions (a policy's rope mode, per-frame metadata
such as a toy camera pose); the model only rotates and attends. Tokens are the unit: a cache may
hold whole frames or single tokens of a frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Protocol

import torch

@dataclass(frozen=True)
class Region:
    """A kind of cache entry. Timelines store the code per slot; plots, the report's timeline
    encoding, its colours and legend all read this table, so a new region is one line here."""
    code: int
    name: str
    color: str              # hex colour in plots and the report


# the region table, in code order (0 = an empty slot); `add_region` extends it
REGIONS: list[Region] = [
    Region(0, "empty", "#ffffff"),
    Region(1, "sink", "#c44e52"),
    Region(2, "memory", "#4c72b0"),
    Region(3, "recent", "#55a868"),
    Region(4, "state", "#8172b2"),
]
EMPTY, SINK, MEMORY, RECENT, STATE = (r.code for r in REGIONS)
REGION_NAMES = {r.code: r.name for r in REGIONS}


def add_region(name: str, color: str) -> int:
    """Register a new region (e.g. a policy's synthetic entries); returns its code. Idempotent
    by name. Codes fit the timelines' int8."""
    for r in REGIONS:
        if r.name == name:
            return r.code
    code = len(REGIONS)
    if code > 127:
        raise ValueError("region table full (int8 codes)")
    REGIONS.append(Region(code, name, color))
    REGION_NAMES[code] = name
    return code


# Synthetic frame ids: storage entries tied to no single frame (an EMA memory blending many
# evicted frames) carry ids from SYNTHETIC_FRAMES up, far below the state frames' -n..-1 and the
# empty slots' -1, so every reader that keeps `frame id >= 0` (timelines, plots, the report,
# recall) ignores them. They take a region of their own (`add_region`) and their temporal
# positions from the policy (`KVCache.set_temporal`).
SYNTHETIC_FRAMES = -(1 << 30)


def synthetic_frame(i: int) -> int:
    """Id of a policy's i-th synthetic entry (0 <= i < 2**29): negative, never a video frame."""
    if not 0 <= i < 1 << 29:
        raise ValueError(f"synthetic entry {i}: must be in [0, 2**29)")
    return SYNTHETIC_FRAMES + i


@dataclass
class Attend:
    """What one self-attention layer attends to."""
    k: torch.Tensor                 # [B, Nk, H, D] unrotated keys
    v: torch.Tensor                 # [B, Nk, H, D]
    k_pos: torch.Tensor             # [Nk, 3] or [B, Nk, 3] float64 RoPE position (t, h, w) per key
    q_pos: torch.Tensor             # [Nq, 3] or [B, Nq, 3] per query token
    # identifies (k_pos, q_pos) for the RoPE memo: equal keys mean equal positions. None = hash the
    # positions. A cache that rebuilds positions only when its layout changes passes its digest.
    pos_key: Hashable | None = None
    k_frames: torch.Tensor | None = None   # [Nk] global frame id of each key token (inspection)
    q_frames: torch.Tensor | None = None   # [Nq]
    # the pass reads only these key indices (long, on the keys' device), selected after RoPE so
    # kept keys keep their positions; None = every key. A policy's `read_set` chooses it.
    read: torch.Tensor | None = None


@dataclass(frozen=True)
class PassContext:
    """The pass a session is running: its index within the chunk (0 = the first denoising pass,
    the commit pass last), its noise level (sigma in [0, 1] and the model timestep, None when the
    driver did not say) and whether it is the clean commit pass."""
    index: int
    sigma: float | None = None
    timestep: float | None = None
    is_commit: bool = False


class KVCacheLike(Protocol):
    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Attend: ...


@dataclass
class FrameInfo:
    """Per global frame metadata a session owns (not storage): today the toy camera pose, which
    shifts the RoPE width axis of frame i by poses[..., i] tokens (toy backbones only)."""
    poses: torch.Tensor | None = None     # [N] or [B, N]
    horizon: int = 0                      # N: frames of the video


def grid_positions(t: torch.Tensor, height: int, width: int,
                   w_shift: torch.Tensor | None = None) -> torch.Tensor:
    """(t, h, w) float64 of every token of frames at temporal positions t [F], frame-major, each
    frame's tokens in raster order: [F*h*w, 3] (or [B, F*h*w, 3] with w_shift [B, F])."""
    n = t.shape[0]
    tt = t.to(torch.float64).cpu()[:, None, None].expand(n, height, width)
    hh = torch.arange(height, dtype=torch.float64)[None, :, None].expand(n, height, width)
    ww = torch.arange(width, dtype=torch.float64)[None, None, :].expand(n, height, width)
    pos = torch.stack([tt, hh, ww], dim=-1).reshape(n * height * width, 3)
    if w_shift is None:
        return pos
    off = w_shift.to(torch.float64).cpu().reshape(-1, n)                        # [B, F]
    out = pos.expand(off.shape[0], *pos.shape).clone()
    out[..., 2] += off.repeat_interleave(height * width, dim=1)
    return out if w_shift.ndim == 2 else out[0]
