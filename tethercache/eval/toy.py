"""Toy evaluator: VBench-Long's six dimensions re-made for the toy world, same schema.

It knows the world from the prompt (palette, band count, sprite colours and shapes, camera path)
but not the seed's layout (band heights, sprite positions): every metric is reference-free with
respect to layout and uses only world knowledge. All distances are colour distances in [0, 1]
units (Euclidean RGB / 255). Each raw error e maps to a score exp(-e / tau); tau is set from real
toy videos and the corruptions (tests/test_toy_eval.py) so that a mild corruption costs a clear
fraction of the score and a heavy one most of it.

Per dimension (per toy frame or frame pair, then averaged over each 2-second clip = 8 toy frames):

- imaging_quality (MUSIQ's role: technical damage). Palette distance (each pixel's distance to
  its nearest palette colour; real footage is exactly on the palette, so noise, blur, tints and
  model washing-out all raise it) times a speckle term (fraction of pixels whose palette label
  agrees with at most 2 of its 8 neighbours: plaid/checkerboard and salt-and-pepper damage that
  can stay near palette colours). Real footage is 1 except at thin structures (sprite tips),
  so it sits just under 1, depending on content.
- aesthetic_quality (LAION's role: is the picture well composed). Layout plausibility: the
  fraction of columns that read top-to-bottom as exactly the prompt's bands in order (sprites
  skipped), times a boundary-smoothness term (second difference of band heights across columns:
  real boundaries are smooth sinusoids, so real footage scores ~0.9, not 1), times a colour-harmony
  term (each palette class's mean colour against its palette colour: global tints).
- subject_consistency (DINO's role: the subject keeps its identity). For every prompt sprite seen
  (pixels of its colour): shape agreement with the prompt's shape (xor with the template at the
  best placement covering the visible part), colour fidelity of its pixels, and stability (a sprite
  is anchored in the world: its world x = view x + camera x must stay at its median over the
  video, like VBench-Long's clip-to-clip term; frozen or shuffled frames move it).
  A blob in one of the palette's other sprite colours is a wrong subject and scores 0.
  Clips where no sprite is in view score NaN (nothing to judge) and are left out of the mean.
  A missing subject counts: a video longer than one camera sweep shows the whole strip, so every
  prompt sprite must be drawn somewhere; each clip is scaled by the fraction of prompt sprites the
  video draws, and a video that draws none scores 0 in every clip (not NaN).
- background_consistency (CLIP/DreamSim's role). Camera-compensated agreement of band pixels
  between each frame and the previous frame and the clip's first frame (VBench's in-clip form),
  using the known camera x. A frozen or shuffled frame breaks it because the pose moved.
- motion_smoothness (AMT's role). Each frame is predicted from its two neighbours warped by the
  known camera motion (the average where both see the column); error against the frame itself.
  Stutter, shuffled frames and temporal noise raise it; sprite bobbing keeps real just under 1.
- dynamic_degree (RAFT's role). Motion between consecutive frames is estimated by a horizontal
  shift search (not read from the poses, so frozen output shows as static); a pair is moving when
  the best shift beats no shift by more than a margin. Score = fraction of moving pairs in a clip.
- revisit_consistency (toy only). Agreement of frames at the same camera x more than 21 frames
  apart (beyond a typical window), over all such pairs and binned by gap. Sprite bobbing differs
  between visits, so real footage scores just under 1. Report it with quality: a model that
  copies its own damage faithfully also scores high here.
- subject_return (toy only, the subject-memory test). Each prompt sprite's world place and look
  (S x S mask, mean colour) come from its first full drawing in the video. Every later visit of
  that place (from the known camera path) after G > 21 frames entirely out of view is scored on
  its first frames with the place fully in view: shape (xor against the first drawing, best
  vertical offset within the bobbing range) times colour (mean colour against the first drawing's).
  Drawing nothing there, or another sprite's colour, scores 0. Mean over sprites, and pooled per
  gap G in the revisit bins (`subject_return_by_gap`). A prompt sprite never drawn in a video
  longer than a sweep scores 0. It judges memory, not prompt fidelity: a sprite drawn wrongly but
  the same way every time keeps its return score (subject_consistency sees that).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..toyworld.prompts import PALETTES, SPRITE_COLOURS, parse_prompt
from ..toyworld.world import DEFAULT_CONFIG, MAX_BOB, REVISIT_MIN_GAP, ToyWorld, WorldConfig, sprite_mask
from .schema import (CLIP_SECONDS, DIMENSIONS, DRIFT_SECONDS, REVISIT_GAP_BINS, ClipScores,
                     VideoScores, gap_bin_name, quality_drift)

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
RETURN_FRAMES = 8         # frames of a return visit scored (the first with the sprite fully in view)
MOTION_MARGIN = 0.001     # mean abs error that the best shift must save over no shift
MAX_SHIFT = 12            # px per frame searched for motion (fastest camera is 8)


def _nanmean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else math.nan


def _neighbours_same(labels: np.ndarray) -> np.ndarray:
    """[n, H, W] count of the 8 neighbours with the same label (edges replicated)."""
    p = np.pad(labels, ((0, 0), (1, 1), (1, 1)), mode="edge")
    H, W = labels.shape[1:]
    return sum((p[:, 1 + dy: 1 + dy + H, 1 + dx: 1 + dx + W] == labels).astype(np.int8)
               for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)


def _warp_columns(frames: np.ndarray, poses: np.ndarray, src: np.ndarray, dst: np.ndarray):
    """Frames src seen from camera dst: ([P, H, W, C] warped, [P, W] column valid)."""
    W = frames.shape[2]
    cols = np.arange(W)[None, :] + (poses[dst] - poses[src])[:, None]      # src column of each dst column
    valid = (cols >= 0) & (cols < W)
    warped = frames[src[:, None], :, np.clip(cols, 0, W - 1)]            # [P, W, H, C]
    return warped.transpose(0, 2, 1, 3), valid


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


def palette_labels(frames: np.ndarray, palette: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames [n, H, W, 3] and palette [K, 3] in 0..255 -> (int8 nearest-colour labels [n, H, W],
    palette distance [n, H, W] in [0, 1] units)."""
    dist2 = ((np.asarray(frames, np.float32)[..., None, :] - palette) ** 2).sum(-1)   # [n, H, W, K]
    return dist2.argmin(-1).astype(np.int8), np.sqrt(dist2.min(-1)) / 255.0


def imaging_quality(frames: np.ndarray, prompt: str) -> np.ndarray:
    """Per-frame imaging_quality of uint8 toy frames [n, H, W, 3] (no hold) of `prompt`."""
    return ToyEvaluator._imaging(*palette_labels(frames, parse_prompt(prompt).colours().astype(np.float32)))


def subject_consistency(frames: np.ndarray, prompt: str, poses, lo: int = 0, hi: int | None = None,
                        config: WorldConfig = DEFAULT_CONFIG) -> float:
    """subject_consistency of toy frames [n, H, W, 3] (no hold) over frames lo .. hi - 1, the
    sprites' world places taken from all n frames (NaN when no sprite is in view there)."""
    frames = np.asarray(frames, np.float32)
    spec = parse_prompt(prompt)
    _, pal_dist = palette_labels(frames, spec.colours().astype(np.float32))
    evaluator = ToyEvaluator(config=config)
    score = evaluator._subject(frames, evaluator._sprite_labels(frames, spec), pal_dist,
                               np.asarray(poses, np.int64), spec)
    return score(lo, len(frames) if hi is None else hi)


class ToyEvaluator:
    """`evaluate(video, prompt, poses) -> VideoScores`; video uint8 [N, H, W, 3] at `fps`."""

    name = "toy"

    def __init__(self, fps: int = 16, hold: int = 4, config: WorldConfig = DEFAULT_CONFIG):
        self.fps, self.hold, self.config = fps, hold, config

    # ---- entry point --------------------------------------------------------------------------
    def evaluate(self, video: torch.Tensor, prompt: str, poses: torch.Tensor | None = None, *,
                 video_id: str = "video", hold: int | None = None, given_frames: int = 0) -> VideoScores:
        """`hold`: video frames per toy frame in `video` (default 4: decoded 16 fps video; 1: toy
        frames as rendered). Toy time is always fps / self.hold toy frames per second.
        `poses`: camera x per toy frame; default = the world's camera path for this prompt.
        `given_frames`: leading toy frames that were real input, not generated (a rollout's start
        chunk); the extra `subject_consistency_generated` scores the subject on the rest only."""
        hold = self.hold if hold is None else hold
        frames = np.asarray(video)[::hold].astype(np.float32)
        n = len(frames)
        spec = parse_prompt(prompt)
        if poses is None:
            poses = ToyWorld(spec, 0, self.config).camera_x(n)
        poses = np.asarray(poses, dtype=np.int64)[:n]
        if len(poses) != n:
            raise ValueError(f"{len(poses)} poses for {n} toy frames")
        palette = spec.colours().astype(np.float32)
        labels, pal_dist = palette_labels(frames, palette)

        per_frame = {
            "imaging_quality": self._imaging(labels, pal_dist),
            "aesthetic_quality": self._aesthetic(frames, labels, palette, spec.n_bands),
            "motion_smoothness": self._smoothness(frames, poses),
        }
        per_pair = {"dynamic_degree": self._dynamic(frames)}
        sprite_labels = self._sprite_labels(frames, spec)
        subject = self._subject(frames, sprite_labels, pal_dist, poses, spec)
        clips = self._clips(n, per_frame, per_pair, subject,
                            self._background(frames, labels, poses, spec.n_bands))
        iq = per_frame["imaging_quality"]
        k = max(1, round(DRIFT_SECONDS * self.fps / self.hold))       # 5 s of toy frames
        drift, _ = quality_drift(float(iq[:k].mean()), float(iq[-k:].mean()))
        revisit, by_gap = self._revisit(frames, poses)
        subject_return, return_by_gap = self._subject_return(frames, sprite_labels, poses, spec)
        extras = {"palette_distance": float(pal_dist.mean()),
                  "subject_consistency_generated": self._generated_only(frames, sprite_labels, pal_dist, poses,
                                                                        spec, given_frames),
                  "imaging_quality_first_5s": float(iq[:k].mean()),
                  "imaging_quality_last_5s": float(iq[-k:].mean())}
        scores = VideoScores(self.name, video_id, spec.prompt, clips, drift, revisit, by_gap, extras,
                             subject_return, return_by_gap)
        scores.validate()
        return scores

    def _generated_only(self, frames, sprite_labels, pal_dist, poses, spec, given) -> float:
        """subject_consistency of the generated frames as a video of their own (the `given` real
        frames dropped): a subject copied from a real start chunk is not credited to the model,
        and a prompt sprite the generated frames never draw counts as missing."""
        g = slice(given, None)
        subject = self._subject(frames[g], sprite_labels[g], pal_dist[g], poses[g], spec)
        return _nanmean(np.array([subject(lo, hi) for lo, hi in self._clip_bounds(len(frames) - given)], float))

    def _clip_bounds(self, n) -> list[tuple[int, int]]:
        """(lo, hi) toy frames of each 2-s clip; a short tail is extended backwards (VBench-Long)."""
        clip_len = max(1, round(CLIP_SECONDS * self.fps / self.hold))
        return [(lo, min(n, lo + clip_len))
                for lo in (max(0, min(c * clip_len, n - clip_len)) for c in range(math.ceil(n / clip_len)))]

    # ---- clips --------------------------------------------------------------------------------
    def _clips(self, n, per_frame, per_pair, subject, background) -> list[ClipScores]:
        clip_len = max(1, round(CLIP_SECONDS * self.fps / self.hold))
        toy_seconds = self.hold / self.fps
        clips = []
        for c, (lo, hi) in enumerate(self._clip_bounds(n)):
            row = {d: _nanmean(v[lo:hi]) for d, v in per_frame.items()}
            row.update({d: float(v[lo:hi - 1].mean()) if hi - 1 > lo else math.nan   # pairs (i, i+1)
                        for d, v in per_pair.items()})
            row["subject_consistency"] = subject(lo, hi)
            row["background_consistency"] = background(lo, hi)
            clips.append(ClipScores(c, c * clip_len * toy_seconds, min(n, (c + 1) * clip_len) * toy_seconds,
                                    {d: row[d] for d in DIMENSIONS}))
        return clips

    # ---- per-frame dimensions -----------------------------------------------------------------
    @staticmethod
    def _imaging(labels, pal_dist) -> np.ndarray:
        speckle = (_neighbours_same(labels) <= 2).mean((1, 2))
        return np.exp(-pal_dist.mean((1, 2)) / TAU_PALETTE) * np.exp(-speckle / TAU_SPECKLE)

    @staticmethod
    def _aesthetic(frames, labels, palette, n_bands) -> np.ndarray:
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
        onehot = labels[..., None] == np.arange(len(palette))                       # [n, H, W, K]
        counts = onehot.sum((1, 2))                                                  # [n, K]
        sums = np.einsum("nhwk,nhwc->nkc", onehot.astype(np.float32), frames)
        means = sums / np.maximum(counts, 1)[..., None]
        offset = np.linalg.norm(means - palette, axis=-1) / 255.0
        harmony = (offset * counts).sum(1) / counts.sum(1)
        return well_formed * np.exp(-roughness / TAU_ROUGHNESS) * np.exp(-harmony / TAU_HARMONY)

    @staticmethod
    def _smoothness(frames, poses) -> np.ndarray:
        n = len(frames)
        out = np.full(n, np.nan)
        if n < 3:
            return out
        mid = np.arange(1, n - 1)
        before, va = _warp_columns(frames, poses, mid - 1, mid)
        after, vb = _warp_columns(frames, poses, mid + 1, mid)
        wa, wb = va[:, None, :, None], vb[:, None, :, None]
        pred = (before * wa + after * wb) / np.maximum(wa.astype(np.float32) + wb, 1)
        seen = (va | vb)[:, None, :, None]
        err = (np.abs(pred - frames[mid]) * seen).sum((1, 2, 3)) / np.maximum(seen.sum((1, 2, 3)) * 3 * frames.shape[1], 1)
        out[mid] = np.exp(-err / 255.0 / TAU_SMOOTH)
        out[0], out[-1] = out[1], out[-2]          # ends have one neighbour: take the nearest score
        return out

    @staticmethod
    def _dynamic(frames) -> np.ndarray:
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

    # ---- clip dimensions ----------------------------------------------------------------------
    @staticmethod
    def _background(frames, labels, poses, n_bands):
        """Clip score = mean similarity of each frame to its previous frame and to the clip's first."""
        n = len(frames)
        dst = np.arange(1, n)
        prev = np.concatenate([[np.nan], ToyEvaluator._pair_similarity(frames, labels, poses, dst - 1, dst, n_bands)])

        def score(lo, hi):
            if hi - lo < 2:
                return 1.0
            idx = np.arange(lo + 1, hi)
            first = ToyEvaluator._pair_similarity(frames, labels, poses, np.full(len(idx), lo), idx, n_bands)
            both = np.concatenate([prev[idx], first])
            return _nanmean(both) if np.isfinite(both).any() else 1.0
        return score

    @staticmethod
    def _pair_similarity(frames, labels, poses, src, dst, n_bands) -> np.ndarray:
        warped, valid = _warp_columns(frames, poses, src, dst)
        warped_labels, _ = _warp_columns(labels[..., None], poses, src, dst)
        mask = valid[:, None, :] & (labels[dst] < n_bands) & (warped_labels[..., 0] < n_bands)
        d = np.linalg.norm(warped - frames[dst], axis=-1) / 255.0
        counted = mask.sum((1, 2))
        mean = (d * mask).sum((1, 2)) / np.maximum(counted, 1)
        return np.where(counted >= frames.shape[1] * 4, np.exp(-mean / TAU_BACKGROUND), np.nan)

    @staticmethod
    def _sprite_labels(frames, spec) -> np.ndarray:
        """Labels over the prompt palette plus the palette's other sprite colours: a blob of a
        sprite colour the prompt does not name is a wrong subject (e.g. a recoloured sprite)."""
        named = {s.colour for s in spec.sprites}
        foreign = [SPRITE_COLOURS[c] for c in PALETTES[spec.palette]["sprites"] if c not in named]
        palette = np.concatenate([spec.colours(), np.array(foreign, np.uint8).reshape(-1, 3)]).astype(np.float32)
        return ((frames[..., None, :] - palette) ** 2).sum(-1).argmin(-1)

    def _subject(self, frames, labels, pal_dist, poses, spec):
        n, H, W = labels.shape
        n_named = len(spec.colours())
        wrong_subject = (labels >= n_named).sum((1, 2)) >= SPRITE_MIN_PIXELS          # [n]
        S = self.config.sprite_size
        quality = np.full((n, len(spec.sprites)), np.nan)     # shape x colour per detection
        world_x = np.full((n, len(spec.sprites)), np.nan)     # template placement + camera x
        top = np.full((n, len(spec.sprites)), np.nan)
        for j, sprite in enumerate(spec.sprites):
            template = sprite_mask(sprite.shape, S)
            masks = labels == spec.n_bands + j     # nearest palette colour: blur keeps edges
            row_on, col_on = masks.sum(2) >= 2, masks.sum(1) >= 2
            seen = (masks.sum((1, 2)) >= SPRITE_MIN_PIXELS) & row_on.any(1) & col_on.any(1)
            for i in np.flatnonzero(seen):
                y0, y1 = np.flatnonzero(row_on[i])[[0, -1]]
                x0, x1 = np.flatnonzero(col_on[i])[[0, -1]]
                xor, ty, tx = _best_template_xor(masks[i], template, (y0, y1, x0, x1))
                colour = pal_dist[i][masks[i]].mean()
                quality[i, j] = np.exp(-xor / TAU_SHAPE) * np.exp(-colour / TAU_SPRITE_COLOUR)
                world_x[i, j], top[i, j] = tx + poses[i], ty
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
        # A missing subject: over a whole sweep the camera shows the whole strip, so every prompt
        # sprite must be drawn somewhere; one never drawn scales every clip down, and a video that
        # draws none scores 0 in every clip (not NaN: nothing drawn is a failure, not "no subject").
        drawn = seen.mean() if n > ToyWorld(spec, 0, self.config).sweep else 1.0

        def score(lo, hi):
            q = quality[lo:hi]
            if not np.isfinite(q).any():
                return 0.0 if drawn == 0 else math.nan
            s = stability[lo:hi]
            stable = _nanmean(s) if np.isfinite(s).any() else 1.0
            return _nanmean(q) * stable * drawn
        return score

    # ---- subject return -----------------------------------------------------------------------
    def _first_drawing(self, masks, poses):
        """(frame, world x, top, S x S mask) of the first frame that draws the whole sprite (its
        best template placement inside the view, not cut by a side), or None."""
        S, (n, H, W) = self.config.sprite_size, masks.shape
        counts = masks.sum((1, 2))
        for i in np.flatnonzero(counts >= SPRITE_MIN_PIXELS):
            cols = np.flatnonzero(masks[i].any(0))
            rows = np.flatnonzero(masks[i].any(1))
            if cols[0] == 0 or cols[-1] == W - 1 or cols[-1] - cols[0] >= S or rows[-1] - rows[0] >= S:
                continue                                   # cut by a side, or not one sprite-sized blob
            left, top = min(cols[0], W - S), min(rows[0], H - S)
            return i, left + int(poses[i]), top, masks[i, top: top + S, left: left + S]
        return None

    def _return_score(self, mask, colours, ref_mask, ref_colour, left, top) -> float:
        """One frame's drawing at the sprite's world place against the first drawing: shape (xor
        over the first drawing's area, best vertical offset within twice the bobbing range) times
        colour (mean colour of the sprite-labelled pixels). Nothing drawn there scores 0."""
        S, H = self.config.sprite_size, mask.shape[0]
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

    def _subject_return(self, frames, labels, poses, spec) -> tuple[float, dict[str, float]]:
        """Subject memory: each prompt sprite's world place and look are taken from its first full
        drawing; every later visit of that place (the camera path is known) after G > 21 frames
        entirely out of view is scored on its first RETURN_FRAMES frames with the sprite fully in
        view. A prompt sprite never drawn in a video that sweeps the whole strip scores 0 (it must
        have come into view). Score = mean over sprites of their returns; by_gap pools returns."""
        n, H, W = labels.shape
        S = self.config.sprite_size
        sweep = ToyWorld(spec, 0, self.config).sweep
        per_sprite, gaps, sims = [], [], []
        for j in range(len(spec.sprites)):
            masks = labels == spec.n_bands + j
            first = self._first_drawing(masks, poses)
            if first is None:
                if n > sweep:
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
                        s = np.mean([self._return_score(masks[u], frames[u], ref_mask, ref_colour, left[u], top)
                                     for u in frames_in])
                        scores.append(s)
                        gaps.append(out_run)
                        sims.append(s)
                t, out_run = visit_end, 0
            if scores:
                per_sprite.append(float(np.mean(scores)))
        if not per_sprite:
            return math.nan, {}
        gaps, sims = np.array(gaps, int), np.array(sims)
        by_gap = {gap_bin_name(lo, hi): float(sims[(gaps >= lo) & (gaps <= hi)].mean())
                  for lo, hi in REVISIT_GAP_BINS if ((gaps >= lo) & (gaps <= hi)).any()}
        return float(np.mean(per_sprite)), by_gap

    # ---- revisits -----------------------------------------------------------------------------
    @staticmethod
    def _revisit(frames, poses) -> tuple[float, dict[str, float]]:
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
        by_gap = {gap_bin_name(lo, hi): float(sims[(gaps >= lo) & (gaps <= hi)].mean())
                  for lo, hi in REVISIT_GAP_BINS if ((gaps >= lo) & (gaps <= hi)).any()}
        return float(sims.mean()), by_gap
