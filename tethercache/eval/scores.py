"""Summary scores from per-dimension scores: VBench's Quality / Semantic / Total and quality drift.

Normalisation follows VBench `scripts/constant.py` (`NORMALIZE_DIC`, `DIM_WEIGHT`) and
`scripts/cal_final_score.py` (Vchitect/VBench@45e79ec): each dimension in [0, 1] is mapped to
(x - min) / (max - min) and weighted (dynamic degree 0.5, all others 1); Quality and Semantic are
the weighted means over their lists and Total = (4 Quality + 1 Semantic) / 5. The constants live
in the metric table (eval/metrics.py).

Deliberate deviation: VBench's Quality needs all 7 quality dimensions, but VBench's custom-prompt
mode (our videos) cannot score temporal flickering without its static filter, and no custom mode
scores the semantic dimensions. So Quality is the weighted mean over the quality dimensions that
were scored (the tables name them), as long-video papers report it; Semantic needs all 9
semantic dimensions and Total needs both, else they are None, never a partial stand-in.

Drift (x100, signed = first minus last, positive = got worse), one name per definition:
- `drift_5s`:   imaging quality of the first 5 s vs the last 5 s (Rolling Forcing, TetherCache).
                From 2-s clips each clip counts by its overlap with the window (clip 3 of a 5-s
                window counts half); an evaluator with per-frame scores (toy) reports it exactly.
- `drift_10s`:  first vs last five 2-s clips, a 10-s window at each end (as some published
                tables define drift); the clips themselves, each counted once.
- `drift_clip`: first vs last 2-s clip (commit-forcing's reading of TetherCache's metric).
- `drift_15pct`: first vs last 15 % of the video, clips weighted by overlap (HeliosBench).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .metrics import METRICS, QUALITY_LIST, SEMANTIC_LIST

QUALITY_WEIGHT, SEMANTIC_WEIGHT = 4.0, 1.0
CLIPS_10S = 5               # drift_10s: 2-s clips at each end


def _finite(x) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x))


def normalized(dim: str, score: float) -> float:
    """VBench's min-max normalisation (`NORMALIZE_DIC`); works on arrays and Series too."""
    lo, hi = METRICS[dim].normalize
    return (score - lo) / (hi - lo)


def _weighted_mean(scores: Mapping[str, float], dims: Sequence[str]) -> float:
    w = {d: METRICS[d].weight for d in dims}
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
    k = CLIPS_10S
    out["drift_10s"] = (100 * (sum(c[2] for c in finite[:k]) - sum(c[2] for c in finite[-k:])) / k
                        if len(finite) >= 2 * k else math.nan)
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
