"""Toy evaluator: VBench-Long's six dimensions re-made for the toy world, same schema.

It knows the world from the prompt (palette, band count, sprite colours and shapes, camera path)
but not the seed's layout (band heights, sprite positions): every metric is reference-free with
respect to layout and uses only world knowledge. Per-frame features are computed once
(`features.ToyFrames`); each dimension is a pure function of them, its docstring saying what it
measures:
- picture.py:     imaging_quality, aesthetic_quality, motion_smoothness, dynamic_degree
- consistency.py: subject_consistency, background_consistency (per 2-s clip)
- memory.py:      revisit_consistency, subject_return (toy only: places and sprites over gaps
                  longer than a window)
- evaluator.py:   ToyEvaluator, the wiring into VideoScores (clips, drift, extras)
The functions below score raw frames, for experiments that need one dimension alone.
"""
from __future__ import annotations

import numpy as np

from ...toyworld.prompts import parse_prompt
from ...toyworld.world import DEFAULT_CONFIG, ToyWorld, WorldConfig
from . import consistency, picture
from .evaluator import ToyEvaluator
from .features import ToyFrames, palette_labels

__all__ = ["ToyEvaluator", "ToyFrames", "imaging_quality", "palette_labels", "subject_consistency"]


def imaging_quality(frames: np.ndarray, prompt: str) -> np.ndarray:
    """Per-frame imaging_quality of uint8 toy frames [n, H, W, 3] (no hold) of `prompt`."""
    spec = parse_prompt(prompt)
    poses = ToyWorld(spec, 0, DEFAULT_CONFIG).camera_x(len(frames))     # not read by this dimension
    return picture.imaging_quality(ToyFrames.of(frames, spec, poses, DEFAULT_CONFIG))


def subject_consistency(frames: np.ndarray, prompt: str, poses, lo: int = 0, hi: int | None = None,
                        config: WorldConfig = DEFAULT_CONFIG) -> float:
    """subject_consistency of toy frames [n, H, W, 3] (no hold) over frames lo .. hi - 1, the
    sprites' world places taken from all n frames (NaN when no sprite is in view there)."""
    v = ToyFrames.of(frames, parse_prompt(prompt), poses, config)
    return consistency.subject_consistency(v, [(lo, len(frames) if hi is None else hi)])[0]
