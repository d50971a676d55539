"""VBench Quality / Semantic / Total and the named drift definitions, against hand-computed values."""
import math

import pytest

from tethercache.eval import scores
from tethercache.eval.schema import ClipScores, VideoScores

QUALITY_DIMS = {"subject_consistency": 0.9, "background_consistency": 0.8, "motion_smoothness": 0.95,
                "dynamic_degree": 0.4, "aesthetic_quality": 0.5, "imaging_quality": 0.6}
# By hand: (0.9 - 0.1462) / 0.8538, (0.8 - 0.2615) / 0.7385, (0.95 - 0.706) / 0.2915, dynamic x 0.5
QUALITY = (0.8828765518856876 + 0.7291807718348002 + 0.8370497427101201 + 0.2 + 0.5 + 0.6) / 5.5
SEMANTIC_DIMS = {"object_class": 0.5, "multiple_objects": 0.5, "human_action": 0.5, "color": 0.5,
                 "spatial_relationship": 0.5, "scene": 0.4, "appearance_style": 0.2,
                 "temporal_style": 0.3, "overall_consistency": 0.3}
SEMANTIC = (2.5 + 0.4 / 0.8222 + 0.1991 / 0.2846 + 2 * 0.3 / 0.364) / 9


def test_quality_normalises_with_vbench_constants_and_half_weight_dynamic():
    assert scores.quality(QUALITY_DIMS) == pytest.approx(QUALITY, abs=1e-12)
    assert QUALITY == pytest.approx(0.6816558302601106)
    with_flicker = {**QUALITY_DIMS, "temporal_flickering": 0.9}   # (0.9 - 0.6293) / 0.3707
    assert scores.quality(with_flicker) == pytest.approx((QUALITY * 5.5 + 0.2707 / 0.3707) / 6.5)


def test_semantic_and_total_only_when_all_semantic_dims_scored():
    assert math.isnan(scores.semantic(QUALITY_DIMS)) and math.isnan(scores.total(QUALITY_DIMS))
    partial = {**QUALITY_DIMS, **dict(list(SEMANTIC_DIMS.items())[:8])}
    assert math.isnan(scores.semantic(partial)) and math.isnan(scores.total(partial))
    full = {**QUALITY_DIMS, **SEMANTIC_DIMS}
    assert scores.semantic(full) == pytest.approx(SEMANTIC)
    assert scores.total(full) == pytest.approx((4 * QUALITY + SEMANTIC) / 5)


def test_quality_nan_when_a_named_dim_is_missing():
    assert math.isnan(scores.quality({"imaging_quality": 0.5}, dims=["imaging_quality", "aesthetic_quality"]))
    assert math.isnan(scores.quality({}))


def _clips(values, seconds=2.0):
    return [(seconds * i, seconds * (i + 1), v) for i, v in enumerate(values)]


def test_each_drift_definition_by_hand():
    # 20 s, ten 2-s clips of imaging quality 1.0, 0.9, ..., 0.1
    d = scores.drifts(_clips([1.0 - 0.1 * i for i in range(10)]), 20.0)
    assert d["drift_5s"] == pytest.approx(100 * (4.6 / 5 - 0.9 / 5))        # 0.92 - 0.18 -> 74
    assert d["drift_clip"] == pytest.approx(90.0)                            # 1.0 - 0.1
    assert d["drift_15pct"] == pytest.approx(100 * (2.9 / 3 - 0.4 / 3))     # 3 s windows
    improving = scores.with_abs(scores.drifts(_clips([0.5, 0.6, 0.7, 0.8, 0.9, 1.0]), 12.0))
    assert improving["drift_clip"] == pytest.approx(-50.0) and improving["drift_clip_abs"] == pytest.approx(50.0)
    assert improving["drift_5s"] == pytest.approx(100 * (2.9 / 5 - 4.6 / 5))      # 0.58 - 0.92


def test_drift_10s_is_first_minus_last_five_clips_by_hand():
    # 24 s, twelve 2-s clips 1.0, 0.95, ..., 0.45: (1.0 + .95 + .9 + .85 + .8) / 5 = 0.9 and
    # (.65 + .6 + .55 + .5 + .45) / 5 = 0.55 -> 35; the middle clips 0.75 and 0.7 are in neither end
    d = scores.drifts(_clips([1.0 - 0.05 * i for i in range(12)]), 24.0)
    assert d["drift_10s"] == pytest.approx(35.0)
    # a NaN clip is skipped: the ends are the first and last five scored clips
    gap = scores.drifts(_clips([0.9, math.nan, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.4]), 22.0)
    assert gap["drift_10s"] == pytest.approx(100 * (0.9 - 2.4 / 5))        # 0.9 - 0.48 -> 42
    assert math.isnan(scores.drifts(_clips([0.9] * 9), 18.0)["drift_10s"])   # under ten clips
    clips = [ClipScores(i, 2.0 * i, 2.0 * i + 2, {**QUALITY_DIMS, "imaging_quality": 0.9 - 0.05 * i})
             for i in range(10)]
    m = VideoScores("vbench_long", "v0", "p", clips, quality_drift=0.0).metrics()
    assert m["drift_10s"] == pytest.approx(25.0) and m["drift_10s_abs"] == pytest.approx(25.0)


def test_drift_needs_two_distinct_ends():
    short = scores.drifts(_clips([0.9, 0.5, 0.4]), 6.0)
    assert math.isnan(short["drift_5s"]) and short["drift_clip"] == pytest.approx(50.0)
    assert all(math.isnan(v) for v in scores.drifts(_clips([0.9]), 2.0).values())
    assert scores.drifts(_clips([0.9, math.nan, 0.4]), 6.0)["drift_clip"] == pytest.approx(50.0)


def test_video_metrics_carry_every_named_drift_and_video_level_scores():
    clips = [ClipScores(i, 2.0 * i, 2.0 * i + 2, {**QUALITY_DIMS, "imaging_quality": 0.9 - 0.1 * i,
                                                  "subject_consistency": math.nan}) for i in range(6)]
    vs = VideoScores("vbench_long", "v0", "p", clips, quality_drift=12.5,
                     video_scores={"subject_consistency": 0.9})
    m = vs.metrics()
    assert m["drift_5s"] == 12.5 and m["quality_drift"] == 12.5         # the evaluator's own value
    assert m["drift_clip"] == pytest.approx(50.0) and m["drift_15pct_abs"] == pytest.approx(50.0)
    assert m["subject_consistency"] == 0.9                                 # video-level wins over NaN clips
    assert m["imaging_quality"] == pytest.approx(0.65)
    assert m["quality"] == pytest.approx(scores.quality({**QUALITY_DIMS, "imaging_quality": 0.65}))
    assert math.isnan(m["semantic"]) and math.isnan(m["total"])
    with pytest.raises(ValueError, match="subject_consistency=1.5"):
        VideoScores("x", "v", "p", clips, 0.0, video_scores={"subject_consistency": 1.5}).validate()
