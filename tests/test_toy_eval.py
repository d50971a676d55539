"""Validation of the toy evaluator on held-out real toy videos (held-out seeds).

Each dimension must rank real > mild > heavy, on every test video, for each corruption it is
designed to notice:

| dimension              | must notice                                   | barely moves (by design)      |
|------------------------|-----------------------------------------------|-------------------------------|
| imaging_quality        | noise, blur, colour_shift                     | frozen, shuffle, sprite_swap  |
| aesthetic_quality      | blur, colour_shift                            | frozen, shuffle, sprite_swap  |
| subject_consistency    | noise, blur, colour_shift, sprite_swap        | background-only damage        |
| subject_return         | noise, sprite_swap, sprite_delete             | blur, colour_shift            |
| background_consistency | noise, frozen, shuffle                        | blur, colour_shift, swap      |
| motion_smoothness      | noise, frozen, shuffle                        | blur, colour_shift, swap      |
| dynamic_degree         | frozen                                        | everything else               |
| revisit_consistency    | noise, frozen, shuffle                        | blur, colour_shift            |

Notes: aesthetic sees noise only when it is heavy enough to flip palette labels (checked
separately). Subject also drops for frozen / shuffled frames that show a sprite (the sprite
leaves its world place), but a mild stutter can miss every sprite frame of a video, so it is not
required. A uniform tint or blur is consistent over time, so the consistency dimensions rightly
ignore it. Sprite swaps and deletions are memory failures: they start in the second half (swap)
or flicker (mild deletion), so the first drawing is intact and the returns are not. A sprite
never drawn (heavy deletion) is a missing subject: subject_consistency 0, not NaN.
Drift: ~0 on real video, large and positive when the second half is noised.
"""
from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from tethercache.eval import DIMENSIONS, ToyEvaluator, VideoScores, corrupt, write_clip_csv, write_metrics_json
from tethercache.eval.schema import summarize_videos
from tethercache.toyworld import render, split_pairs

NOTICES = {
    "imaging_quality": ("noise", "blur", "colour_shift"),
    "aesthetic_quality": ("blur", "colour_shift"),
    "subject_consistency": ("noise", "blur", "colour_shift", "sprite_swap"),
    "subject_return": ("noise", "sprite_swap", "sprite_delete"),
    "background_consistency": ("noise", "frozen", "shuffle"),
    "motion_smoothness": ("noise", "frozen", "shuffle"),
    "dynamic_degree": ("frozen",),
    "revisit_consistency": ("noise", "frozen", "shuffle"),
}
N_FRAMES = 240                        # 60 s: revisits beyond 21 frames at every camera speed
EVALUATOR = ToyEvaluator()


def _videos():
    pairs = split_pairs("heldout", 8)
    return [pairs[i] for i in (0, 1, 2, 4)]    # fast/medium/slow cameras, 1-2 sprites, 3 palettes


def _score(frames, prompt, poses) -> dict:
    s = EVALUATOR.evaluate(frames, prompt, poses, hold=1)
    return {**s.means, "revisit_consistency": s.revisit_consistency, "subject_return": s.subject_return}


@pytest.fixture(scope="module")
def scored():
    out = []
    for prompt, seed in _videos():
        frames, poses = render(prompt, seed, N_FRAMES)
        kinds = {k for ks in NOTICES.values() for k in ks}
        table = {("real", "-"): _score(frames, prompt, poses)}
        for kind in sorted(kinds):
            for sev in ("mild", "heavy"):
                table[(kind, sev)] = _score(corrupt(frames, kind, sev, prompt=prompt, seed=seed), prompt, poses)
        out.append((prompt, seed, table))
    return out


@pytest.mark.parametrize("dim", sorted(NOTICES))
def test_dimension_ranks_real_above_mild_above_heavy(scored, dim):
    for prompt, seed, table in scored:
        real = table[("real", "-")][dim]
        for kind in NOTICES[dim]:
            mild, heavy = table[(kind, "mild")][dim], table[(kind, "heavy")][dim]
            assert real > mild > heavy, f"{dim} / {kind} on {prompt!r} seed {seed}: {real:.3f} {mild:.3f} {heavy:.3f}"


def test_real_scores_high_in_range(scored):
    for prompt, _, table in scored:
        real = table[("real", "-")]
        for dim in (*DIMENSIONS, "revisit_consistency", "subject_return"):
            assert 0.85 <= real[dim] <= 1.0, (dim, real[dim], prompt)


def test_heavy_noise_breaks_aesthetic_layout(scored):
    for _, _, table in scored:
        assert table[("noise", "heavy")]["aesthetic_quality"] < 0.5 * table[("real", "-")]["aesthetic_quality"]


def test_a_sprite_never_drawn_is_a_missing_subject(scored):
    """Heavy deletion: no sprite anywhere in a video that sweeps the strip -> 0, not NaN."""
    for prompt, _, table in scored:
        deleted = table[("sprite_delete", "heavy")]
        assert deleted["subject_consistency"] == 0.0 and deleted["subject_return"] == 0.0, prompt


def test_subject_return_is_binned_by_gap_and_sees_the_forgotten_returns():
    prompt, seed = split_pairs("heldout", 8)[2]          # two sprites, returns after 22-112 frames
    frames, poses = render(prompt, seed, 480)
    s = EVALUATOR.evaluate(frames, prompt, poses, hold=1)
    assert set(s.subject_return_by_gap) >= {"gap_22_56", "gap_57_112"}
    assert all(v == pytest.approx(1.0) for v in s.subject_return_by_gap.values())
    swapped = EVALUATOR.evaluate(corrupt(frames, "sprite_swap", "heavy", prompt=prompt), prompt, poses, hold=1)
    assert all(swapped.subject_return_by_gap[k] < 0.8 for k in s.subject_return_by_gap)
    m = swapped.metrics()
    assert m["subject_return"] == swapped.subject_return and "subject_return_gap_22_56" in m


def test_quality_drift_zero_on_real_and_positive_when_second_half_degrades():
    prompt, seed = split_pairs("heldout", 1)[0]
    frames, poses = render(prompt, seed, 120)
    video = frames.repeat_interleave(4, dim=0)                 # decoded video: 16 fps, hold 4
    real = EVALUATOR.evaluate(video, prompt, poses)
    assert abs(real.quality_drift) < 1.0
    half = len(frames) // 2
    damaged = torch.cat([frames[:half], corrupt(frames[half:], "noise", "heavy", seed=1)])
    bad = EVALUATOR.evaluate(damaged.repeat_interleave(4, dim=0), prompt, poses)
    assert bad.quality_drift > 30.0 and bad.quality_drift_abs == pytest.approx(bad.quality_drift)
    assert len(bad.clips) == 15 and bad.clips[-1].end_s == pytest.approx(30.0)


def test_revisit_is_binned_by_gap():
    prompt, seed = split_pairs("heldout", 2)[1]
    frames, poses = render(prompt, seed, 240)
    s = EVALUATOR.evaluate(frames, prompt, poses, hold=1)
    assert s.revisit_by_gap and all(0.85 <= v <= 1.0 for v in s.revisit_by_gap.values())
    noisy = EVALUATOR.evaluate(corrupt(frames, "noise", "mild"), prompt, poses, hold=1)
    assert all(noisy.revisit_by_gap[k] < v for k, v in s.revisit_by_gap.items())


def test_960_frames_evaluate_in_seconds():
    prompt, seed = split_pairs("heldout", 1)[0]
    frames, poses = render(prompt, seed, 960)
    video = frames.repeat_interleave(4, dim=0)
    start = time.perf_counter()
    s = EVALUATOR.evaluate(video, prompt, poses)
    assert time.perf_counter() - start < 10.0
    assert len(s.clips) == 120


def test_schema_outputs(tmp_path):
    prompt, seed = split_pairs("heldout", 1)[0]
    frames, poses = render(prompt, seed, 40)
    s = EVALUATOR.evaluate(frames, prompt, None, hold=1, video_id="v0")   # default poses = world path
    m = s.metrics()
    assert m["evaluator"] == "toy" and set(DIMENSIONS) <= set(m)
    assert json.dumps(VideoScores.from_dict(s.to_dict()).to_dict()) == json.dumps(s.to_dict())
    assert 0.9 < m["revisit_consistency"] <= 1.0          # fast camera: revisits within 40 frames
    rows = (tmp_path / "clips.csv")
    write_clip_csv(rows, [s])
    assert rows.read_text().splitlines()[0].startswith("evaluator,video,clip,start_s,end_s")
    assert len(rows.read_text().splitlines()) == 1 + len(s.clips) == 1 + 5
    write_metrics_json(tmp_path / "metrics.json", [s])
    assert "summary" in (tmp_path / "metrics.json").read_text()
    # the summary averages every key any video has: a gap bin judged in the second video only
    later = VideoScores.from_dict({**s.to_dict(), "video": "v1", "subject_return_by_gap": {"gap_113_224": 0.5}})
    first = VideoScores.from_dict({**s.to_dict(), "subject_return_by_gap": {}})
    assert summarize_videos([first, later])["summary"]["subject_return_gap_113_224"] == 0.5


@pytest.mark.parametrize("n_frames", [2, 9, 120])
def test_short_videos_score_without_crashing(n_frames):
    prompt = "forest scene, calm bands, red disk, slow camera"       # slow: no revisit within 120 frames
    frames, poses = render(prompt, 7, n_frames)
    s = EVALUATOR.evaluate(frames, prompt, poses, hold=1)
    assert len(s.clips) == math.ceil(n_frames / 8) and math.isnan(s.revisit_consistency)
    assert all(0.0 <= v <= 1.0 for k, v in s.means.items() if not math.isnan(v))


def test_bad_inputs_raise():
    prompt, seed = split_pairs("heldout", 1)[0]
    frames, poses = render(prompt, seed, 16)
    with pytest.raises(ValueError, match="poses"):
        EVALUATOR.evaluate(frames, prompt, poses[:8], hold=1)
    with pytest.raises(ValueError, match="unknown"):
        EVALUATOR.evaluate(frames, "jungle scene, wavy bands, red disk, slow camera", poses, hold=1)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(frames, "jpeg", "mild")
    with pytest.raises(ValueError, match="prompt"):
        corrupt(frames, "sprite_swap", "mild")
    with pytest.raises(ValueError, match="prompt"):
        corrupt(frames, "sprite_delete", "mild")


def test_imaging_quality_helper_matches_the_evaluator():
    from tethercache.eval.toy import imaging_quality
    prompt = "forest scene, wavy bands, red square, medium camera"
    frames, poses = render(prompt, 5, 16)
    scores = ToyEvaluator().evaluate(frames, prompt, poses, hold=1)
    per_frame = imaging_quality(frames.numpy(), prompt)
    assert per_frame.shape == (16,)
    assert per_frame.mean() == pytest.approx(scores.means["imaging_quality"], abs=1e-6)


def test_subject_copied_from_the_real_start_chunk_is_not_credited_to_the_model():
    """A rollout whose real start chunk shows the subjects and whose generated frames draw none:
    the standard score keeps the real frames (high), subject_consistency_generated scores the
    generated frames as their own video (0: every prompt sprite is missing there); on real footage
    both are ~1."""
    from tethercache.toyworld.world import ToyWorld, WorldConfig
    cfg = WorldConfig(sprite_size=12, sprite_layout="start")
    prompt = "forest scene, calm bands, red square and white disk, fast camera"
    world = ToyWorld(prompt, 7, cfg)
    frames, poses = world.render(60)
    evaluator = ToyEvaluator(config=cfg)
    real = evaluator.evaluate(frames, prompt, poses, hold=1, given_frames=3)
    deleted = frames.clone()
    deleted[3:] = corrupt(frames, "sprite_delete", "heavy", prompt=prompt)[3:]
    fake = evaluator.evaluate(deleted, prompt, poses, hold=1, given_frames=3)
    assert real.means["subject_consistency"] > 0.95 and real.extras["subject_consistency_generated"] > 0.95
    assert fake.means["subject_consistency"] > 0.95          # what the real start chunk alone earns
    assert fake.extras["subject_consistency_generated"] == 0.0
    assert evaluator.evaluate(deleted, prompt, poses, hold=1).extras["subject_consistency_generated"] > 0.95
