"""The metric table: every number an evaluator writes or a table shows, defined once.

Each `Metric` says what a column is called in tables and the report (`label`), how it is shown
(`scale` to table units: x100 for [0, 1] scores as VBench tables print them, x1 for drifts, which
are already x100, and for cost; `digits`), which way is better, and, for a VBench dimension, what
VBench needs to score and combine it (`scored_by`, its Quality / Semantic list, `normalize` and
`weight` from VBench `scripts/constant.py`, `raw_scale` of VBench-Long's per-clip numbers).
Schema, scores, the evaluators, the tables, the contrasts and the report all read this table; a
name that ends in `*` is a family (`revisit_gap_22_56`, `extra_imaging_period_3`, ...).
`metric(name)` refuses a name that is not here, so a new metric cannot fall back to a wrong scale.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

HIGHER, LOWER, ZERO = "higher", "lower", "zero"     # better; ZERO: a signed drift, closest to 0


@dataclass(frozen=True)
class Metric:
    name: str
    label: str                  # column header
    scale: float                # factor to table units
    better: str | None          # HIGHER, LOWER, ZERO; None: not ranked (counts)
    description: str = ""
    digits: int = 2
    kind: str = "score"         # dimension, consistency, summary, drift, memory, diagnostic,
    #                             count, cost
    # VBench dimensions only
    scored_by: str | None = None    # "all": every evaluator (VBench-Long custom input's six);
    #                                 "long_custom": VBench-Long custom input, its static filter may
    #                                 drop clips; "standard": VBench's standard-prompt modes only
    vbench_list: str | None = None  # "quality" or "semantic"
    normalize: tuple[float, float] = (0.0, 1.0)
    weight: float = 1.0
    raw_scale: float = 1.0      # VBench-Long writes clip scores in [0, raw_scale]

    @property
    def family(self) -> bool:
        return self.name.endswith("*")

    def goodness(self, value: float) -> float:
        """Larger is better: the value, its negative, or minus its distance from 0."""
        return {HIGHER: value, LOWER: -value, ZERO: -abs(value)}[self.better]

    def matches(self, name: str) -> bool:
        return name.startswith(self.name[:-1]) if self.family else name == self.name


def _dim(name, label, scored_by, vbench_list, normalize=(0.0, 1.0), weight=1.0, raw_scale=1.0):
    return Metric(name, label, 100, HIGHER, f"VBench {name.replace('_', ' ')} in [0, 1]", kind="dimension",
                  scored_by=scored_by, vbench_list=vbench_list, normalize=normalize, weight=weight,
                  raw_scale=raw_scale)


def _drift(name, label, description):
    """A signed drift (x100, first minus last, positive = got worse) and its absolute value."""
    return [Metric(name, label, 1, ZERO, description, kind="drift"),
            Metric(f"{name}_abs", f"|{label}|", 1, LOWER, f"|{name}|", kind="drift")]


_TABLE = [
    # VBench dimensions, in VBench's dimension order: quality list, then semantic list
    _dim("subject_consistency", "Subject", "all", "quality", (0.1462, 1.0)),
    _dim("background_consistency", "Backgr.", "all", "quality", (0.2615, 1.0)),
    _dim("temporal_flickering", "Flicker", "long_custom", "quality", (0.6293, 1.0)),
    _dim("motion_smoothness", "Motion", "all", "quality", (0.706, 0.9975)),
    _dim("dynamic_degree", "Dynamic", "all", "quality", weight=0.5),
    _dim("aesthetic_quality", "Aesthetic", "all", "quality"),
    _dim("imaging_quality", "Imaging", "all", "quality", raw_scale=100.0),
    _dim("object_class", "Object", "standard", "semantic"),
    _dim("multiple_objects", "Multi-obj.", "standard", "semantic"),
    _dim("human_action", "Action", "standard", "semantic"),
    _dim("color", "Color", "standard", "semantic"),
    _dim("spatial_relationship", "Spatial", "standard", "semantic"),
    _dim("scene", "Scene", "standard", "semantic", (0.0, 0.8222)),
    _dim("appearance_style", "App. style", "standard", "semantic", (0.0009, 0.2855)),
    _dim("temporal_style", "Temp. style", "standard", "semantic", (0.0, 0.364)),
    _dim("overall_consistency", "Overall cons.", "standard", "semantic", (0.0, 0.364)),
    # VBench-Long's two parts of subject / background consistency, per video: within 2-s clips,
    # and clip to clip (published long-video tables' "Consistency"). Not in Quality; our evaluator
    # writes the fused score only, so these come from imported per-video scores.
    Metric("subject_inclip", "Subject in-clip", 100, HIGHER, kind="consistency"),
    Metric("subject_clip2clip", "Subject c2c", 100, HIGHER, "clip-to-clip subject consistency",
           kind="consistency"),
    Metric("background_inclip", "Backgr. in-clip", 100, HIGHER, kind="consistency"),
    Metric("background_clip2clip", "Backgr. c2c", 100, HIGHER, kind="consistency"),
    # VBench summaries (eval/scores.py)
    Metric("quality", "Quality", 100, HIGHER, "VBench Quality: normalised mean of the quality "
           "dimensions scored", kind="summary"),
    Metric("semantic", "Semantic", 100, HIGHER, "VBench Semantic: needs all nine semantic "
           "dimensions", kind="summary"),
    Metric("total", "Total", 100, HIGHER, "VBench Total = (4 Quality + Semantic) / 5", kind="summary"),
    # imaging-quality drift, one name per definition (eval/scores.py)
    *_drift("drift_5s", "Drift 5s", "first vs last 5 s (clips weighted by overlap)"),
    *_drift("drift_10s", "Drift 10s", "first vs last five 2-s clips"),
    *_drift("drift_clip", "Drift clip", "first vs last 2-s clip"),
    *_drift("drift_15pct", "Drift 15%", "first vs last 15 % of the video"),
    *_drift("quality_drift", "Drift", "the evaluator's own drift_5s (exact per frame for the toy)"),
    # toy world: memory of places and subjects
    Metric("revisit_consistency", "Revisit", 100, HIGHER, "agreement of frames at the same camera x "
           "more than 21 frames apart", kind="memory"),
    Metric("revisit_gap_*", "Revisit", 100, HIGHER, "revisit consistency over a gap bin", kind="memory"),
    Metric("subject_return", "Subj. return", 100, HIGHER, "a sprite back in view after > 21 frames "
           "out of it, drawn as when first drawn", kind="memory"),
    Metric("subject_return_gap_*", "Subj. return", 100, HIGHER, "subject return over a gap bin",
           kind="memory"),
    # toy world: diagnostics (metrics.json "extra_*")
    Metric("extra_palette_distance", "Palette dist.", 100, LOWER, "mean distance of a pixel to "
           "its nearest palette colour", kind="diagnostic"),
    Metric("extra_subject_consistency_generated", "Subject (gen.)", 100, HIGHER,
           "subject consistency of the generated frames alone", kind="diagnostic"),
    Metric("extra_imaging_quality_first_5s", "Imaging first 5s", 100, HIGHER, kind="diagnostic"),
    Metric("extra_imaging_quality_last_5s", "Imaging last 5s", 100, HIGHER, kind="diagnostic"),
    Metric("extra_imaging_period_*", "Imaging period", 100, HIGHER, "imaging quality over one full "
           "camera period", kind="diagnostic"),
    # counts
    Metric("n", "n", 1, None, "videos in a table cell", digits=0, kind="count"),
    Metric("n_clips", "Clips", 1, None, "2-s clips of a video", digits=0, kind="count"),
    Metric("duration_s", "Seconds", 1, None, "length of a video", digits=1, kind="count"),
    # cost (record.json)
    Metric("chunk_ms", "Chunk ms", 1, LOWER, "median chunk latency", digits=1, kind="cost"),
    Metric("kv_cache_mb", "KV MB", 1, LOWER, "KV-cache size", digits=1, kind="cost"),
    Metric("peak_rss_mb", "Peak RSS MB", 1, LOWER, "process peak RSS", digits=1, kind="cost"),
]
METRICS: dict[str, Metric] = {m.name: m for m in _TABLE}
assert len(METRICS) == len(_TABLE), "a metric name is defined twice"


def metric(name: str) -> Metric:
    """The table entry of a column (a family member gets its own name and a labelled suffix)."""
    if name in METRICS:
        return METRICS[name]
    for m in METRICS.values():
        if m.family and m.matches(name):
            suffix = name[len(m.name) - 1:].removeprefix("gap_").replace("_", "-")
            return replace(m, name=name, label=f"{m.label} {suffix}")
    raise KeyError(f"{name}: not in the metric table (tethercache/eval/metrics.py)")


def columns(*names: str) -> list[Metric]:
    return [metric(n) for n in names]


def _names(**where) -> tuple[str, ...]:
    return tuple(m.name for m in _TABLE if all(getattr(m, k) == v for k, v in where.items()))


DIMENSIONS = _names(kind="dimension", scored_by="all")
OPTIONAL_DIMENSIONS = tuple(d for d in _names(kind="dimension") if d not in DIMENSIONS)
LONG_CUSTOM_DIMENSIONS = (*DIMENSIONS, *_names(kind="dimension", scored_by="long_custom"))
FILTERED_DIMENSIONS = _names(kind="dimension", scored_by="long_custom")
QUALITY_LIST = _names(vbench_list="quality")
SEMANTIC_LIST = _names(vbench_list="semantic")
