"""The per-clip consistency dimensions of a toy video: subject and background.

Each is a pure function of `ToyFrames` and the clips' toy-frame bounds [(lo, hi), ...] that
returns one score per clip (VBench-Long's in-clip form).
"""
from __future__ import annotations

import math

import numpy as np

from ...toyworld.world import sprite_mask
from .features import (SPRITE_MIN_PIXELS, TAU_BACKGROUND, TAU_JUMP, TAU_SHAPE, TAU_SPRITE_COLOUR,
                       ToyFrames, nanmean, warp_columns)


def background_consistency(v: ToyFrames, clips: list[tuple[int, int]]) -> list[float]:
    """CLIP/DreamSim's role. Camera-compensated agreement of band pixels between each frame and
    the previous frame and the clip's first frame (VBench's in-clip form), using the known camera
    x. A frozen or shuffled frame breaks it because the pose moved."""
    dst = np.arange(1, len(v))
    prev = np.concatenate([[np.nan], _pair_similarity(v, dst - 1, dst)])
    out = []
    for lo, hi in clips:
        if hi - lo < 2:
            out.append(1.0)
            continue
        idx = np.arange(lo + 1, hi)
        both = np.concatenate([prev[idx], _pair_similarity(v, np.full(len(idx), lo), idx)])
        out.append(nanmean(both) if np.isfinite(both).any() else 1.0)
    return out


def _pair_similarity(v: ToyFrames, src, dst) -> np.ndarray:
    """Similarity of band pixels of frames dst and frames src warped to dst's camera; NaN where
    fewer than 4 rows' worth of pixels are band in both."""
    n_bands = v.spec.n_bands
    warped, valid = warp_columns(v.frames, v.poses, src, dst)
    warped_labels, _ = warp_columns(v.labels[..., None], v.poses, src, dst)
    mask = valid[:, None, :] & (v.labels[dst] < n_bands) & (warped_labels[..., 0] < n_bands)
    d = np.linalg.norm(warped - v.frames[dst], axis=-1) / 255.0
    counted = mask.sum((1, 2))
    mean = (d * mask).sum((1, 2)) / np.maximum(counted, 1)
    return np.where(counted >= v.frames.shape[1] * 4, np.exp(-mean / TAU_BACKGROUND), np.nan)


def subject_consistency(v: ToyFrames, clips: list[tuple[int, int]]) -> list[float]:
    """DINO's role: the subject keeps its identity. For every prompt sprite seen (pixels of its
    colour): shape agreement with the prompt's shape (xor with the template at the best placement
    covering the visible part), colour fidelity of its pixels, and stability (a sprite is anchored
    in the world: its world x = view x + camera x must stay at its median over the video, like
    VBench-Long's clip-to-clip term; frozen or shuffled frames move it). A blob in one of the
    palette's other sprite colours is a wrong subject and scores 0. A clip where no sprite is in
    view scores NaN (nothing to judge). A missing subject counts: a video longer than one camera
    sweep shows the whole strip, so every prompt sprite must be drawn somewhere; each clip is
    scaled by the fraction of prompt sprites the video draws, and a video that draws none scores
    0 in every clip (not NaN)."""
    labels, spec = v.sprite_labels, v.spec
    n = len(labels)
    wrong_subject = (labels >= len(spec.colours())).sum((1, 2)) >= SPRITE_MIN_PIXELS          # [n]
    quality = np.full((n, len(spec.sprites)), np.nan)     # shape x colour per detection
    world_x = np.full((n, len(spec.sprites)), np.nan)     # template placement + camera x
    top = np.full((n, len(spec.sprites)), np.nan)
    for j, sprite in enumerate(spec.sprites):
        template = sprite_mask(sprite.shape, v.config.sprite_size)
        masks = labels == spec.n_bands + j     # nearest palette colour: blur keeps edges
        row_on, col_on = masks.sum(2) >= 2, masks.sum(1) >= 2
        seen = (masks.sum((1, 2)) >= SPRITE_MIN_PIXELS) & row_on.any(1) & col_on.any(1)
        for i in np.flatnonzero(seen):
            y0, y1 = np.flatnonzero(row_on[i])[[0, -1]]
            x0, x1 = np.flatnonzero(col_on[i])[[0, -1]]
            xor, ty, tx = _best_template_xor(masks[i], template, (y0, y1, x0, x1))
            colour = v.pal_dist[i][masks[i]].mean()
            quality[i, j] = np.exp(-xor / TAU_SHAPE) * np.exp(-colour / TAU_SPRITE_COLOUR)
            world_x[i, j], top[i, j] = tx + v.poses[i], ty
    # A sprite is anchored in the world: its world x (view x + camera x) and its top (up to the
    # bobbing amplitude) must stay where the video puts it most of the time (its median).
    seen = np.isfinite(world_x).any(0)
    median_x = np.full(len(spec.sprites), np.nan)
    median_top = np.full(len(spec.sprites), np.nan)
    median_x[seen] = np.nanmedian(world_x[:, seen], 0)
    median_top[seen] = np.nanmedian(top[:, seen], 0)
    deviation = np.abs(world_x - median_x) + np.maximum(np.abs(top - median_top) - 2, 0)
    stability = np.exp(-deviation / TAU_JUMP)                         # [n, sprites], NaN = unseen

    quality = np.concatenate([quality, np.where(wrong_subject, 0.0, np.nan)[:, None]], 1)
    # Nothing drawn over a whole sweep is a failure, not "no subject": 0 in every clip.
    drawn = seen.mean() if n > v.sweep else 1.0
    out = []
    for lo, hi in clips:
        q = quality[lo:hi]
        if not np.isfinite(q).any():
            out.append(0.0 if drawn == 0 else math.nan)
            continue
        s = stability[lo:hi]
        stable = nanmean(s) if np.isfinite(s).any() else 1.0
        out.append(nanmean(q) * stable * drawn)
    return out


def _best_template_xor(mask: np.ndarray, template: np.ndarray, bbox) -> tuple[float, int, int]:
    """(xor, top, left) of the best template placement covering the mask's bounding box, where xor
    = |mask xor template| / |template in view|: a sprite cut by the frame edge is matched on its
    visible part, and the placement locates it even when cut."""
    H, W = mask.shape
    S = template.shape[0]
    y0, y1, x0, x1 = bbox
    padded = np.zeros((H + 2 * S, W + 2 * S), np.int32)
    padded[S: S + H, S: S + W] = mask
    inside = np.zeros_like(padded)
    inside[S: S + H, S: S + W] = 1
    total, best = int(mask.sum()), (np.inf, y0, x0)
    for ty in range(min(y1 - S + 1, y0), y0 + 1):
        for tx in range(min(x1 - S + 1, x0), x0 + 1):
            window = (slice(ty + S, ty + 2 * S), slice(tx + S, tx + 2 * S))
            placed = int((template * inside[window]).sum())
            overlap = int((template * padded[window]).sum())
            best = min(best, ((total + placed - 2 * overlap) / max(placed, 1), ty, tx))
    return best
