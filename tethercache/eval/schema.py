"""One score schema for every evaluator (toy evaluator, VBench-Long runner).

VBench-Long cuts a video into 2-second clips, scores each clip on each dimension and averages
the clips; quality drift (Rolling Forcing) is imaging quality of the first 5 s minus the last 5 s,
on the x100 scale. Analysis code reads only this schema and groups by `evaluator`, never asks
which evaluator made a number.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from . import scores
# DIMENSIONS: the six every evaluator scores; OPTIONAL_DIMENSIONS: scored only by some (VBench:
# temporal flickering with its static filter; the semantic ones in its standard-prompt modes).
from .metrics import DIMENSIONS, OPTIONAL_DIMENSIONS

CLIP_SECONDS = 2.0          # VBench-Long long_custom_input clip length
DRIFT_SECONDS = 5.0         # quality drift window at each end of the video
REVISIT_GAP_BINS = ((22, 56), (57, 112), (113, 224), (225, 448), (449, 10 ** 9))  # toy frames


def gap_bin_name(lo: int, hi: int) -> str:
    return f"gap_{lo}_{hi}" if hi < 10 ** 9 else f"gap_{lo}_plus"


def quality_drift(first_iq: float, last_iq: float) -> tuple[float, float]:
    """(signed, absolute) drift on the x100 scale from [0, 1] imaging quality of both ends."""
    signed = 100.0 * (first_iq - last_iq)
    return signed, abs(signed)


@dataclass
class ClipScores:
    index: int
    start_s: float
    end_s: float
    scores: dict[str, float]           # dimension -> [0, 1]; NaN when a clip has nothing to score


@dataclass
class VideoScores:
    evaluator: str                     # "toy", "vbench_long", ...
    video: str                         # video id (VBench-Long: no "_" in names)
    prompt: str
    clips: list[ClipScores]
    quality_drift: float               # signed, x100: first 5 s minus last 5 s (positive = got worse)
    revisit_consistency: float = math.nan          # toy only: same camera x, gap > 21 frames
    revisit_by_gap: dict[str, float] = field(default_factory=dict)
    extras: dict[str, float] = field(default_factory=dict)   # evaluator-specific diagnostics
    # toy only: a sprite re-entering the view after G > 21 frames out of it, drawn as when first drawn
    subject_return: float = math.nan
    subject_return_by_gap: dict[str, float] = field(default_factory=dict)   # G binned like revisits
    # Per-video score of a dimension given by an evaluator as a whole-video number rather than
    # per clip (a VBench result keyed by the long video); wins over the mean of the clips.
    video_scores: dict[str, float] = field(default_factory=dict)

    @property
    def quality_drift_abs(self) -> float:
        return abs(self.quality_drift)

    @property
    def dimensions(self) -> list[str]:
        """The six custom-input dimensions, then any optional ones this evaluator scored."""
        seen = set(self.video_scores) | {d for c in self.clips for d in c.scores}
        return [*DIMENSIONS, *(d for d in OPTIONAL_DIMENSIONS if d in seen)]

    @property
    def duration_s(self) -> float:
        return self.clips[-1].end_s if self.clips else 0.0

    @property
    def means(self) -> dict[str, float]:
        """Per-video score of each dimension: `video_scores` if given, else the mean over its
        clips (clips with NaN are left out)."""
        out = {}
        for d in self.dimensions:
            if d in self.video_scores:
                out[d] = self.video_scores[d]
                continue
            vals = [c.scores[d] for c in self.clips if not math.isnan(c.scores.get(d, math.nan))]
            out[d] = sum(vals) / len(vals) if vals else math.nan
        return out

    def drifts(self) -> dict[str, float]:
        """Every named drift definition (eval/scores.py), signed and absolute, x100. drift_5s is
        the evaluator's own `quality_drift` (exact per frame where it has frames)."""
        clips = [(c.start_s, c.end_s, c.scores.get("imaging_quality", math.nan)) for c in self.clips]
        d = scores.drifts(clips, self.duration_s)
        d["drift_5s"] = self.quality_drift
        return scores.with_abs(d)

    def clip_rows(self) -> list[dict]:
        """Rows of the per-clip CSV (drift curves): one per 2-second clip."""
        return [{"evaluator": self.evaluator, "video": self.video, "clip": c.index,
                 "start_s": c.start_s, "end_s": c.end_s,
                 **{d: c.scores.get(d, math.nan) for d in self.dimensions}}
                for c in self.clips]

    def metrics(self) -> dict:
        """Flat metrics dict (metrics.json): means, scores, drifts, revisit, subject return, extras."""
        means = self.means
        out = {"evaluator": self.evaluator, "video": self.video, "prompt": self.prompt,
               "n_clips": len(self.clips), "duration_s": self.duration_s, **means,
               "quality": scores.quality(means), "semantic": scores.semantic(means),
               "total": scores.total(means),
               "quality_drift": self.quality_drift, "quality_drift_abs": self.quality_drift_abs,
               **self.drifts(), "revisit_consistency": self.revisit_consistency}
        out.update({f"revisit_{k}": v for k, v in self.revisit_by_gap.items()})
        out["subject_return"] = self.subject_return
        out.update({f"subject_return_{k}": v for k, v in self.subject_return_by_gap.items()})
        out.update({f"extra_{k}": v for k, v in self.extras.items()})
        return out

    def validate(self) -> None:
        known = set(DIMENSIONS) | set(OPTIONAL_DIMENSIONS)
        where = [(f"clip {c.index}", c.scores) for c in self.clips] + [("video", self.video_scores)]
        for name, row in where:
            for d, v in row.items():
                if d not in known:
                    raise ValueError(f"{self.evaluator}/{self.video} {name}: {d} is not a dimension")
                if not (math.isnan(v) or 0.0 <= v <= 1.0):
                    raise ValueError(f"{self.evaluator}/{self.video} {name}: {d}={v} outside [0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VideoScores":
        clips = [ClipScores(**c) for c in data["clips"]]
        return cls(**{**data, "clips": clips})


def write_clip_csv(path: str | Path, videos: Iterable[VideoScores]) -> Path:
    path = Path(path)
    videos = list(videos)
    rows = [r for v in videos for r in v.clip_rows()]
    extra = [d for d in OPTIONAL_DIMENSIONS if any(d in r for r in rows)]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["evaluator", "video", "clip", "start_s", "end_s",
                                               *DIMENSIONS, *extra], restval=math.nan)
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize_videos(videos: Iterable[VideoScores]) -> dict:
    """Per-video metrics plus their mean over videos (NaN as None, JSON-ready)."""
    per_video = [v.metrics() for v in videos]
    # every key any video has (a gap bin may be judged in some videos only), in first-seen order
    numeric = list(dict.fromkeys(k for m in per_video for k, val in m.items() if isinstance(val, (int, float))))
    summary = {}
    for k in numeric:
        vals = [m[k] for m in per_video if isinstance(m.get(k), (int, float)) and not math.isnan(m[k])]
        summary[k] = sum(vals) / len(vals) if vals else None
    clean = lambda m: {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in m.items()}
    return {"summary": summary, "videos": [clean(m) for m in per_video]}


def write_metrics_json(path: str | Path, videos: Iterable[VideoScores]) -> Path:
    """metrics.json: per-video metrics plus their mean over videos (NaN written as null)."""
    Path(path).write_text(json.dumps(summarize_videos(videos), indent=2))
    return Path(path)
