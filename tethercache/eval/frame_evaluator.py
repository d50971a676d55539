"""Base of evaluators that score one decoded video at a time (the toy evaluator).

`score` decodes each mp4 of the run dir back to frames (what was written is what is scored,
so a run can be scored on another machine), undoes the writer's nearest-neighbour view upscale
(`backbone.codec.view_scale`: mean of each scale x scale block, which also averages out most of
the codec's rounding), refuses constant or non-finite videos, and calls
`evaluate(frames, prompt=, seed=, sample_id=, run_dir=) -> {"full": VideoScores, ...}`.
Only one video's frames are in memory at a time.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..video import read_mp4
from .video_checks import invalid_reason


class FrameEvaluator:
    name = "frames"

    def score(self, run_dir: Path, samples: list[dict], run_cfg):
        """Yield (video id, result) per sample, as each is scored."""
        scale = int(((run_cfg.get("backbone") or {}).get("codec") or {}).get("view_scale", 1))
        for s in samples:
            frames = unscale(read_mp4(Path(run_dir) / s["video"])[0], scale)
            reason = invalid_reason(frames)
            if reason:
                yield s["id"], {"invalid": reason}
                continue
            yield s["id"], self.evaluate(frames, prompt=s["prompt"], seed=s["seed"],
                                         sample_id=s["id"], run_dir=run_dir)

    def evaluate(self, frames, *, prompt, seed, sample_id, run_dir) -> dict:
        raise NotImplementedError

    def summarize(self, scored: dict, run_dir) -> dict:
        raise NotImplementedError


def unscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """uint8 [N, H*scale, W*scale, C] -> [N, H, W, C], each pixel the rounded mean of its block."""
    if scale == 1:
        return frames
    n, H, W, C = frames.shape
    blocks = frames.reshape(n, H // scale, scale, W // scale, scale, C).astype(np.float32)
    return np.rint(blocks.mean((2, 4))).astype(np.uint8)
