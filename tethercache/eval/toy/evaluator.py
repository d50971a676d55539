"""`ToyEvaluator`: the wiring that turns a toy video into `VideoScores`: features once, then each
dimension's pure function, averaged per 2-s clip (8 toy frames), plus drift and the extras."""
from __future__ import annotations

import math

import numpy as np
import torch

from ...toyworld.prompts import parse_prompt
from ...toyworld.world import DEFAULT_CONFIG, ToyWorld, WorldConfig
from ..schema import CLIP_SECONDS, DIMENSIONS, DRIFT_SECONDS, ClipScores, VideoScores, quality_drift
from .consistency import background_consistency, subject_consistency
from .features import ToyFrames, nanmean
from .memory import revisit_consistency, subject_return
from .picture import aesthetic_quality, dynamic_degree, imaging_quality, motion_smoothness


class ToyEvaluator:
    """`evaluate(video, prompt, poses) -> VideoScores`; video uint8 [N, H, W, 3] at `fps`."""

    name = "toy"

    def __init__(self, fps: int = 16, hold: int = 4, config: WorldConfig = DEFAULT_CONFIG):
        self.fps, self.hold, self.config = fps, hold, config

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
        v = ToyFrames.of(frames, spec, poses, self.config)

        bounds = self.clip_bounds(n)
        per_frame = {"imaging_quality": imaging_quality(v), "aesthetic_quality": aesthetic_quality(v),
                     "motion_smoothness": motion_smoothness(v)}
        per_pair = {"dynamic_degree": dynamic_degree(v)}
        per_clip = {"subject_consistency": subject_consistency(v, bounds),
                    "background_consistency": background_consistency(v, bounds)}
        clips = self._clips(n, bounds, per_frame, per_pair, per_clip)
        iq = per_frame["imaging_quality"]
        k = max(1, round(DRIFT_SECONDS * self.fps / self.hold))       # 5 s of toy frames
        drift, _ = quality_drift(float(iq[:k].mean()), float(iq[-k:].mean()))
        revisit, revisit_by_gap = revisit_consistency(v)
        returned, return_by_gap = subject_return(v)
        extras = {"palette_distance": float(v.pal_dist.mean()),
                  "subject_consistency_generated": self._generated_only(v, given_frames),
                  "imaging_quality_first_5s": float(iq[:k].mean()),
                  "imaging_quality_last_5s": float(iq[-k:].mean())}
        scores = VideoScores(self.name, video_id, spec.prompt, clips, drift, revisit, revisit_by_gap, extras,
                             returned, return_by_gap)
        scores.validate()
        return scores

    def _generated_only(self, v: ToyFrames, given: int) -> float:
        """subject_consistency of the generated frames as a video of their own (the `given` real
        frames dropped): a subject copied from a real start chunk is not credited to the model,
        and a prompt sprite the generated frames never draw counts as missing."""
        generated = v.tail(given)
        return nanmean(np.array(subject_consistency(generated, self.clip_bounds(len(generated))), float))

    def clip_bounds(self, n: int) -> list[tuple[int, int]]:
        """(lo, hi) toy frames of each 2-s clip; a short tail is extended backwards (VBench-Long)."""
        clip_len = max(1, round(CLIP_SECONDS * self.fps / self.hold))
        return [(lo, min(n, lo + clip_len))
                for lo in (max(0, min(c * clip_len, n - clip_len)) for c in range(math.ceil(n / clip_len)))]

    def _clips(self, n, bounds, per_frame, per_pair, per_clip) -> list[ClipScores]:
        clip_len = max(1, round(CLIP_SECONDS * self.fps / self.hold))
        toy_seconds = self.hold / self.fps
        clips = []
        for c, (lo, hi) in enumerate(bounds):
            row = {d: nanmean(x[lo:hi]) for d, x in per_frame.items()}
            row.update({d: float(x[lo:hi - 1].mean()) if hi - 1 > lo else math.nan   # pairs (i, i+1)
                        for d, x in per_pair.items()})
            row.update({d: x[c] for d, x in per_clip.items()})
            clips.append(ClipScores(c, c * clip_len * toy_seconds, min(n, (c + 1) * clip_len) * toy_seconds,
                                    {d: row[d] for d in DIMENSIONS}))
        return clips
