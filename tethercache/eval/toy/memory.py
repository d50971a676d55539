"""The toy world's memory dimensions: revisit consistency (places) and subject return (sprites).

Both judge what a model keeps over gaps longer than a typical window (> REVISIT_MIN_GAP = 21
toy frames), pooled over all such gaps and binned by gap (schema.REVISIT_GAP_BINS).
"""
from __future__ import annotations

import math

import numpy as np

from ...toyworld.world import MAX_BOB, REVISIT_MIN_GAP
from .features import SPRITE_MIN_PIXELS, TAU_REVISIT, TAU_SHAPE, TAU_SPRITE_COLOUR, ToyFrames, by_gap

RETURN_FRAMES = 8         # frames of a return visit scored (the first with the sprite fully in view)


def revisit_consistency(v: ToyFrames) -> tuple[float, dict[str, float]]:
    """Agreement of frames at the same camera x more than 21 frames apart (beyond a typical
    window), over all such pairs and binned by gap. Sprite bobbing differs between visits, so
    real footage scores just under 1. Report it with quality: a model that copies its own damage
    faithfully also scores high here."""
    frames, poses = v.frames, v.poses
    n = len(frames)
    flat = frames.reshape(n, -1, 3)
    gaps, sims = [], []
    for x in np.unique(poses):
        idx = np.flatnonzero(poses == x)
        i, j = np.triu_indices(len(idx), 1)
        far = idx[j] - idx[i] > REVISIT_MIN_GAP
        if not far.any():
            continue
        i, j = idx[i[far]], idx[j[far]]
        for start in range(0, len(i), 256):       # bounded memory on long videos
            a, b = flat[i[start: start + 256]], flat[j[start: start + 256]]
            d = np.linalg.norm(a - b, axis=-1).mean(1) / 255.0
            sims.append(np.exp(-d / TAU_REVISIT))
        gaps.append(j - i)
    if not gaps:
        return math.nan, {}
    gaps, sims = np.concatenate(gaps), np.concatenate(sims)
    return float(sims.mean()), by_gap(gaps, sims)


def subject_return(v: ToyFrames) -> tuple[float, dict[str, float]]:
    """The subject-memory test. Each prompt sprite's world place and look (S x S mask, mean
    colour) come from its first full drawing in the video. Every later visit of that place (from
    the known camera path) after G > 21 frames entirely out of view is scored on its first
    RETURN_FRAMES frames with the place fully in view: shape (xor against the first drawing, best
    vertical offset within the bobbing range) times colour (mean colour against the first
    drawing's). Drawing nothing there, or another sprite's colour, scores 0. Mean over sprites,
    and pooled per gap G in the revisit bins. A prompt sprite never drawn in a video longer than
    a sweep scores 0 (it must have come into view). It judges memory, not prompt fidelity: a
    sprite drawn wrongly but the same way every time keeps its return score."""
    frames, labels, poses, spec = v.frames, v.sprite_labels, v.poses, v.spec
    n, H, W = labels.shape
    S = v.config.sprite_size
    per_sprite, gaps, sims = [], [], []
    for j in range(len(spec.sprites)):
        masks = labels == spec.n_bands + j
        first = _first_drawing(masks, poses, S)
        if first is None:
            if n > v.sweep:
                per_sprite.append(0.0)
            continue
        i0, x_world, top, ref_mask = first
        ref_colour = frames[i0, top: top + S, x_world - poses[i0]: x_world - poses[i0] + S][ref_mask].mean(0)
        left = x_world - poses                                    # view column of the place [n]
        out = (left + S <= 0) | (left >= W)
        full = (left >= 0) & (left + S <= W)
        scores = []
        t, out_run = i0 + 1, 0
        while t < n:
            if out[t]:
                out_run += 1
                t += 1
                continue
            visit_end = t
            while visit_end < n and not out[visit_end]:
                visit_end += 1
            if out_run > REVISIT_MIN_GAP:
                frames_in = [u for u in range(t, visit_end) if full[u]][:RETURN_FRAMES]
                if frames_in:
                    s = np.mean([_return_score(masks[u], frames[u], ref_mask, ref_colour, left[u], top, S)
                                 for u in frames_in])
                    scores.append(s)
                    gaps.append(out_run)
                    sims.append(s)
            t, out_run = visit_end, 0
        if scores:
            per_sprite.append(float(np.mean(scores)))
    if not per_sprite:
        return math.nan, {}
    return float(np.mean(per_sprite)), by_gap(np.array(gaps, int), np.array(sims))


def _first_drawing(masks: np.ndarray, poses: np.ndarray, S: int):
    """(frame, world x, top, S x S mask) of the first frame that draws the whole sprite (its
    best template placement inside the view, not cut by a side), or None."""
    n, H, W = masks.shape
    counts = masks.sum((1, 2))
    for i in np.flatnonzero(counts >= SPRITE_MIN_PIXELS):
        cols = np.flatnonzero(masks[i].any(0))
        rows = np.flatnonzero(masks[i].any(1))
        if cols[0] == 0 or cols[-1] == W - 1 or cols[-1] - cols[0] >= S or rows[-1] - rows[0] >= S:
            continue                                   # cut by a side, or not one sprite-sized blob
        left, top = min(cols[0], W - S), min(rows[0], H - S)
        return i, left + int(poses[i]), top, masks[i, top: top + S, left: left + S]
    return None


def _return_score(mask, colours, ref_mask, ref_colour, left, top, S: int) -> float:
    """One frame's drawing at the sprite's world place against the first drawing: shape (xor
    over the first drawing's area, best vertical offset within twice the bobbing range) times
    colour (mean colour of the sprite-labelled pixels). Nothing drawn there scores 0."""
    H = mask.shape[0]
    best = (np.inf, None)
    for y in range(max(0, top - 2 * MAX_BOB), min(H - S, top + 2 * MAX_BOB) + 1):
        m = mask[y: y + S, left: left + S]
        xor = (m ^ ref_mask).sum() / max(ref_mask.sum(), 1)
        if xor < best[0]:
            best = (xor, (y, m))
    xor, (y, m) = best
    if not m.any():
        return 0.0
    colour = np.linalg.norm(colours[y: y + S, left: left + S][m].mean(0) - ref_colour) / 255.0
    return float(np.exp(-xor / TAU_SHAPE) * np.exp(-colour / TAU_SPRITE_COLOUR))
