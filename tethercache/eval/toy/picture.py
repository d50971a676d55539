"""The per-frame dimensions of a toy video: imaging, aesthetic, motion smoothness, dynamic degree.

Each is a pure function of `ToyFrames` returning one score per toy frame (dynamic degree: per
consecutive pair); the evaluator averages them over each 2-s clip.
"""
from __future__ import annotations

import numpy as np

from .features import (TAU_HARMONY, TAU_PALETTE, TAU_ROUGHNESS, TAU_SMOOTH, TAU_SPECKLE, ToyFrames,
                       warp_columns)

MOTION_MARGIN = 0.001     # mean abs error that the best shift must save over no shift
MAX_SHIFT = 12            # px per frame searched for motion (fastest camera is 8)


def _neighbours_same(labels: np.ndarray) -> np.ndarray:
    """[n, H, W] count of the 8 neighbours with the same label (edges replicated)."""
    p = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    H, W = labels.shape[1:]
    return sum((p[:, 1 + dy: 1 + dy + H, 1 + dx: 1 + dx + W] == labels).astype(np.int8)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def imaging_quality(v: ToyFrames) -> np.ndarray:
    """MUSIQ's role: technical damage. Palette distance (each pixel's distance to its nearest
    palette colour; real footage is exactly on the palette, so noise, blur, tints and model
    washing-out all raise it) times a speckle term (fraction of pixels whose palette label agrees
    with at most 2 of its 8 neighbours: plaid/checkerboard and salt-and-pepper damage that can
    stay near palette colours). Real footage is 1 except at thin structures (sprite tips), so it
    sits just under 1, depending on content."""
    speckle = (_neighbours_same(v.labels) <= 2).mean((1, 2))
    return np.exp(-v.pal_dist.mean((1, 2)) / TAU_PALETTE) * np.exp(-speckle / TAU_SPECKLE)


def aesthetic_quality(v: ToyFrames) -> np.ndarray:
    """LAION's role: is the picture well composed. Layout plausibility: the fraction of columns
    that read top-to-bottom as exactly the prompt's bands in order (sprites skipped), times a
    boundary-smoothness term (second difference of band heights across columns: real boundaries
    are smooth sinusoids, so real footage scores ~0.9, not 1), times a colour-harmony term (each
    palette class's mean colour against its palette colour: global tints)."""
    labels, n_bands = v.labels, v.spec.n_bands
    n, H, W = labels.shape
    # Sprites occlude bands: carry the band label from above through sprite pixels.
    is_band = labels < n_bands
    rows = np.where(is_band, np.arange(H)[None, :, None], 0)
    from_above = np.maximum.accumulate(rows, axis=1)
    bands = np.take_along_axis(labels, from_above, axis=1).astype(np.int64)
    bands = np.where((from_above > 0) | is_band[:, :1], bands, 0)   # sprite at the very top: top band
    steps = np.diff(bands, axis=1)
    well_formed = ((steps >= 0).all(1) & ((steps != 0).sum(1) == n_bands - 1)
                   & (bands[:, 0] == 0) & (bands[:, -1] == n_bands - 1)).mean(1)
    heights = np.stack([(bands <= k).sum(1) for k in range(n_bands - 1)], 1).astype(float)  # [n, k, W]
    roughness = np.abs(np.diff(heights, 2, axis=2)).mean((1, 2)) if W > 2 else np.zeros(n)
    # Harmony: each class's mean colour vs its palette colour, weighted by the class size.
    onehot = labels[..., None] == np.arange(len(v.palette))                     # [n, H, W, K]
    counts = onehot.sum((1, 2))                                                  # [n, K]
    sums = np.einsum("nhwk,nhwc->nkc", onehot.astype(np.float32), v.frames)
    means = sums / np.maximum(counts, 1)[..., None]
    offset = np.linalg.norm(means - v.palette, axis=-1) / 255.0
    harmony = (offset * counts).sum(1) / counts.sum(1)
    return well_formed * np.exp(-roughness / TAU_ROUGHNESS) * np.exp(-harmony / TAU_HARMONY)


def motion_smoothness(v: ToyFrames) -> np.ndarray:
    """AMT's role. Each frame is predicted from its two neighbours warped by the known camera
    motion (the average where both see the column); error against the frame itself. Stutter,
    shuffled frames and temporal noise raise it; sprite bobbing keeps real just under 1."""
    frames, poses = v.frames, v.poses
    n = len(frames)
    out = np.full(n, np.nan)
    if n < 3:
        return out
    mid = np.arange(1, n - 1)
    before, va = warp_columns(frames, poses, mid - 1, mid)
    after, vb = warp_columns(frames, poses, mid + 1, mid)
    wa, wb = va[:, None, :, None], vb[:, None, :, None]
    pred = (before * wa + after * wb) / np.maximum(wa.astype(np.float32) + wb, 1)
    seen = (va | vb)[:, None, :, None]
    err = (np.abs(pred - frames[mid]) * seen).sum((1, 2, 3)) / np.maximum(seen.sum((1, 2, 3)) * 3 * frames.shape[1], 1)
    out[mid] = np.exp(-err / 255.0 / TAU_SMOOTH)
    out[0], out[-1] = out[1], out[-2]          # ends have one neighbour: take the nearest score
    return out


def dynamic_degree(v: ToyFrames) -> np.ndarray:
    """RAFT's role, per consecutive pair. Motion is estimated by a horizontal shift search (not
    read from the poses, so frozen output shows as static); a pair is moving when the best shift
    beats no shift by more than a margin. A clip's score = its fraction of moving pairs."""
    frames = v.frames
    if len(frames) < 2:
        return np.zeros(0)
    a, b = frames[:-1], frames[1:]
    W = frames.shape[2]
    errors = []
    for s in range(-MAX_SHIFT, MAX_SHIFT + 1):   # b column c shows what a showed at column c + s
        if s >= 0:
            errors.append(np.abs(b[:, :, : W - s] - a[:, :, s:]).mean((1, 2, 3)))
        else:
            errors.append(np.abs(b[:, :, -s:] - a[:, :, : W + s]).mean((1, 2, 3)))
    errors = np.stack(errors, 1) / 255.0
    return (errors[:, MAX_SHIFT] - errors.min(1) > MOTION_MARGIN).astype(float)
