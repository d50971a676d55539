"""Per-frame features of a toy video, computed once and read by every dimension.

All distances are colour distances in [0, 1] units (Euclidean RGB / 255). Each raw error e maps
to a score exp(-e / tau); the taus below are set from real toy videos and the corruptions
(tests/test_toy_eval.py) so that a mild corruption costs a clear fraction of the score and a
heavy one most of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ...toyworld.prompts import PALETTES, SPRITE_COLOURS, WorldSpec
from ...toyworld.world import ToyWorld, WorldConfig
from ..schema import REVISIT_GAP_BINS, gap_bin_name

# Score scales (tau): score = exp(-error / tau). Calibrated on held-out real videos + corruptions.
TAU_PALETTE = 0.1         # mean palette distance; mild noise (sigma 6) gives ~0.035
TAU_SPECKLE = 0.05        # fraction of isolated-label pixels
TAU_ROUGHNESS = 4.0       # mean |second difference| of band heights, pixels
TAU_HARMONY = 0.1         # count-weighted distance of class mean colours to the palette
TAU_SHAPE = 0.08          # xor / template area; a disk drawn for a square is 0.19
TAU_SPRITE_COLOUR = 0.15    # mean distance of sprite pixels to the prompt's colour
TAU_JUMP = 4.0            # pixels a sprite strays from its usual world place
TAU_BACKGROUND = 0.1      # mean colour distance of camera-aligned band pixels
TAU_SMOOTH = 0.05         # mean colour error of the two-sided camera-warped prediction
TAU_REVISIT = 0.1         # mean colour distance between two visits of the same camera x
SPRITE_MIN_PIXELS = 10    # fewer visible pixels: too little of the sprite in view to judge


@dataclass(frozen=True)
class ToyFrames:
    """One toy video as the dimensions see it: toy frames (no hold), camera x per frame, the
    prompt's world knowledge, and each pixel's nearest prompt-palette colour."""
    frames: np.ndarray        # float32 [n, H, W, 3], 0..255
    poses: np.ndarray         # int64 [n], camera x
    spec: WorldSpec
    config: WorldConfig
    palette: np.ndarray       # float32 [K, 3]: the prompt's bands, then its sprites
    labels: np.ndarray        # int8 [n, H, W]: nearest palette colour
    pal_dist: np.ndarray      # [n, H, W]: distance to it, [0, 1] units

    @classmethod
    def of(cls, frames, spec: WorldSpec, poses, config: WorldConfig) -> "ToyFrames":
        frames = np.asarray(frames, np.float32)
        palette = spec.colours().astype(np.float32)
        labels, pal_dist = palette_labels(frames, palette)
        return cls(frames, np.asarray(poses, np.int64), spec, config, palette, labels, pal_dist)

    def tail(self, start: int) -> "ToyFrames":
        """Frames start.. as a video of their own."""
        s = slice(start, None)
        return ToyFrames(self.frames[s], self.poses[s], self.spec, self.config, self.palette,
                         self.labels[s], self.pal_dist[s])

    def __len__(self) -> int:
        return len(self.frames)

    @cached_property
    def sprite_labels(self) -> np.ndarray:
        """Labels over the prompt palette plus the palette's other sprite colours: a blob of a
        sprite colour the prompt does not name is a wrong subject (e.g. a recoloured sprite)."""
        named = {s.colour for s in self.spec.sprites}
        foreign = [SPRITE_COLOURS[c] for c in PALETTES[self.spec.palette]["sprites"] if c not in named]
        palette = np.concatenate([self.spec.colours(), np.array(foreign, np.uint8).reshape(-1, 3)]).astype(np.float32)
        return ((self.frames[..., None, :] - palette) ** 2).sum(-1).argmin(-1)

    @property
    def sweep(self) -> int:
        """Toy frames of one camera pass across the whole strip."""
        return ToyWorld(self.spec, 0, self.config).sweep


def palette_labels(frames: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [n, H, W, 3] and palette [K, 3] in 0..255 -> (int8 nearest-colour labels [n, H, W],
    palette distance [n, H, W] in [0, 1] units)."""
    dist2 = ((np.asarray(frames, np.float32)[..., None, :] - palette) ** 2).sum(-1)   # [n, H, W, K]
    return dist2.argmin(-1).astype(np.int8), np.sqrt(dist2.min(-1)) / 255.0


def nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def warp_columns(frames: np.ndarray, poses: np.ndarray, src: np.ndarray, dst: np.ndarray):
    """Frames src seen from camera dst: ([P, H, W, C] warped, [P, W] column valid)."""
    W = frames.shape[2]
    cols = np.arange(W)[None, :] + (poses[dst] - poses[src])[:, None]      # src column of each dst column
    valid = (cols >= 0) & (cols < W)
    warped = frames[src[:, None], :, np.clip(cols, 0, W - 1)]            # [P, W, H, C]
    return warped.transpose(0, 2, 1, 3), valid


def by_gap(gaps: np.ndarray, sims: np.ndarray) -> dict[str, float]:
    """Mean similarity per revisit gap bin (toy frames), bins with no pair left out."""
    return {gap_bin_name(lo, hi): float(sims[(gaps >= lo) & (gaps <= hi)].mean())
            for lo, hi in REVISIT_GAP_BINS if ((gaps >= lo) & (gaps <= hi)).any()}
