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

DIMENSIONS = ("subject_consistency", "background_consistency", "motion_smoothness",
              "dynamic_degree", "aesthetic_quality", "imaging_quality")
DIMENSION_RANGES = {d: (0.0, 1.0) for d in DIMENSIONS}
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

    @property
    def quality_drift_abs(self) -> float:
        return abs(self.quality_drift)

    @property
    def means(self) -> dict[str, float]:
        """Per-video mean of each dimension over its clips (clips with NaN are left out)."""
        out = {}
        for d in DIMENSIONS:
            vals = [c.scores[d] for c in self.clips if not math.isnan(c.scores.get(d, math.nan))]
            out[d] = sum(vals) / len(vals) if vals else math.nan
        return out

    def clip_rows(self) -> list[dict]:
        """Rows of the per-clip CSV (drift curves): one per 2-second clip."""
        return [{"evaluator": self.evaluator, "video": self.video, "clip": c.index,
                 "start_s": c.start_s, "end_s": c.end_s, **{d: c.scores.get(d, math.nan) for d in DIMENSIONS}}
                for c in self.clips]

    def metrics(self) -> dict:
        """Flat metrics dict (metrics.json): means, drift, revisit, subject return, extras."""
        out = {"evaluator": self.evaluator, "video": self.video, "prompt": self.prompt,
               "n_clips": len(self.clips), **self.means,
               "quality_drift": self.quality_drift, "quality_drift_abs": self.quality_drift_abs,
               "revisit_consistency": self.revisit_consistency}
        out.update({f"revisit_{k}": v for k, v in self.revisit_by_gap.items()})
        out["subject_return"] = self.subject_return
        out.update({f"subject_return_{k}": v for k, v in self.subject_return_by_gap.items()})
        out.update({f"extra_{k}": v for k, v in self.extras.items()})
        return out

    def validate(self) -> None:
        for c in self.clips:
            for d in DIMENSIONS:
                lo, hi = DIMENSION_RANGES[d]
                v = c.scores[d]
                if not (math.isnan(v) or lo <= v <= hi):
                    raise ValueError(f"{self.evaluator}/{self.video} clip {c.index}: {d}={v} outside [{lo}, {hi}]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VideoScores":
        clips = [ClipScores(**c) for c in data["clips"]]
        return cls(**{**data, "clips": clips})


def write_clip_csv(path: str | Path, videos: Iterable[VideoScores]) -> Path:
    path = Path(path)
    rows = [r for v in videos for r in v.clip_rows()]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["evaluator", "video", "clip", "start_s", "end_s", *DIMENSIONS])
        writer.writeheader()
        writer.writerows(rows)
    return path


def summarize_videos(videos: Iterable[VideoScores]) -> dict:
    """Per-video metrics plus their mean over videos (NaN as None, JSON-ready)."""
    per_video = [v.metrics() for v in videos]
    numeric = [k for k, val in per_video[0].items() if isinstance(val, (int, float))] if per_video else []
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
