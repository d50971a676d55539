"""Summary scores from per-dimension scores: VBench's Quality / Semantic / Total and quality drift.

Normalisation follows VBench `scripts/constant.py` (`NORMALIZE_DIC`, `DIM_WEIGHT`) and
`scripts/cal_final_score.py` (Vchitect/VBench@45e79ec): each dimension in [0, 1] is mapped to
(x - min) / (max - min) and weighted (dynamic degree 0.5, all others 1); Quality and Semantic are
the weighted means over their lists and Total = (4 Quality + 1 Semantic) / 5.

Deliberate deviation: VBench's Quality needs all 7 quality dimensions, but VBench's custom-prompt
mode (our videos) cannot score temporal flickering without its static filter, and no custom mode
scores the semantic dimensions. So Quality is the weighted mean over the quality dimensions that
were scored (the tables name them), as long-video papers report it; Semantic needs all 9
semantic dimensions and Total needs both, else they are None, never a partial stand-in.

Drift (x100, signed = first minus last, positive = got worse), one name per definition:
- `drift_5s`:   imaging quality of the first 5 s vs the last 5 s (Rolling Forcing, TetherCache).
                From 2-s clips each clip counts by its overlap with the window (clip 3 of a 5-s
                window counts half); an evaluator with per-frame scores (toy) reports it exactly.
- `drift_clip`: first vs last 2-s clip (commit-forcing's reading of TetherCache's metric).
- `drift_15pct`: first vs last 15 % of the video, clips weighted by overlap (HeliosBench).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

# VBench scripts/constant.py NORMALIZE_DIC, in our dimension names.
NORMALIZE = {
    "subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
    "temporal_flickering": (0.6293, 1.0), "motion_smoothness": (0.706, 0.9975),
    "dynamic_degree": (0.0, 1.0), "aesthetic_quality": (0.0, 1.0), "imaging_quality": (0.0, 1.0),
    "object_class": (0.0, 1.0), "multiple_objects": (0.0, 1.0), "human_action": (0.0, 1.0),
    "color": (0.0, 1.0), "spatial_relationship": (0.0, 1.0), "scene": (0.0, 0.8222),
    "appearance_style": (0.0009, 0.2855), "temporal_style": (0.0, 0.364),
    "overall_consistency": (0.0, 0.364),
}
DIM_WEIGHT = {"dynamic_degree": 0.5}
QUALITY_LIST = ("subject_consistency", "background_consistency", "temporal_flickering",
                "motion_smoothness", "aesthetic_quality", "imaging_quality", "dynamic_degree")
SEMANTIC_LIST = ("object_class", "multiple_objects", "human_action", "color",
                 "spatial_relationship", "scene", "appearance_style", "temporal_style",
                 "overall_consistency")
QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0

DRIFT_DEFINITIONS = {
    "drift_5s": "imaging quality, first 5 s minus last 5 s (x100)",
    "drift_clip": "imaging quality, first minus last 2-s clip (x100)",
    "drift_15pct": "imaging quality, first 15 % minus last 15 % of the video (x100)",
}


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def normalized(dim: str, score: float) -> float:
    lo, hi = NORMALIZE[dim]
    return (score - lo) / (hi - lo)


def _weighted_mean(scores: Mapping[str, float], dims: Sequence[str]) -> float:
    w = {d: DIM_WEIGHT.get(d, 1.0) for d in dims}
    return sum(w[d] * normalized(d, scores[d]) for d in dims) / sum(w.values())


def quality_dims(scores: Mapping[str, float]) -> list[str]:
    """The quality dimensions that carry a finite score."""
    return [d for d in QUALITY_LIST if _finite(scores.get(d))]


def quality(scores: Mapping[str, float], dims: Sequence[str] | None = None) -> float:
    """Weighted normalised mean over `dims` (default: the quality dims scored); NaN if one of
    `dims` is missing or none is scored."""
    dims = quality_dims(scores) if dims is None else list(dims)
    if not dims or not all(_finite(scores.get(d)) for d in dims):
        return math.nan
    return _weighted_mean(scores, dims)


def semantic(scores: Mapping[str, float]) -> float:
    """VBench Semantic: needs all nine semantic dimensions, else NaN."""
    if not all(_finite(scores.get(d)) for d in SEMANTIC_LIST):
        return math.nan
    return _weighted_mean(scores, SEMANTIC_LIST)


def total(scores: Mapping[str, float]) -> float:
    q, s = quality(scores), semantic(scores)
    if math.isnan(q) or math.isnan(s):
        return math.nan
    return (QUALITY_WEIGHT * q + SEMANTIC_WEIGHT * s) / (QUALITY_WEIGHT + SEMANTIC_WEIGHT)


def window_mean(clips: Sequence[tuple[float, float, float]], lo: float, hi: float) -> float:
    """Mean of clip scores over the time window [lo, hi), each (start_s, end_s, score) clip
    weighted by its overlap with the window; NaN scores are left out."""
    num = den = 0.0
    for start, end, score in clips:
        overlap = max(0.0, min(end, hi) - max(start, lo))
        if overlap > 0 and _finite(score):
            num, den = num + overlap * score, den + overlap
    return num / den if den else math.nan


def drifts(clips: Sequence[tuple[float, float, float]], duration: float,
           window_s: float = 5.0, fraction: float = 0.15) -> dict[str, float]:
    """Every drift definition (signed x100) from (start_s, end_s, imaging quality in [0, 1]) clips
    of a video lasting `duration` seconds. NaN where the video is too short to have two
    distinct ends (e.g. under 2 windows)."""
    finite = [c for c in clips if _finite(c[2])]
    out = {}
    if duration >= 2 * window_s:
        out["drift_5s"] = 100 * (window_mean(clips, 0, window_s)
                                 - window_mean(clips, duration - window_s, duration))
    else:
        out["drift_5s"] = math.nan
    out["drift_clip"] = 100 * (finite[0][2] - finite[-1][2]) if len(finite) >= 2 else math.nan
    f = fraction * duration
    out["drift_15pct"] = (100 * (window_mean(clips, 0, f) - window_mean(clips, duration - f, duration))
                          if len(finite) >= 2 else math.nan)
    return out


def with_abs(d: Mapping[str, float]) -> dict[str, float]:
    """{name: signed, name_abs: |signed|} for every drift."""
    out = {}
    for k, v in d.items():
        out[k], out[f"{k}_abs"] = v, abs(v)
    return out
