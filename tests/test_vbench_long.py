"""eval=vbench_long without a GPU: the prepared inputs, the exact command line and environment,
the checks that name what is missing, and parsing of result files in VBench-Long's format
(tests/data/vbench_long, written from vbench2_beta_long/utils.py @45e79ec), partial and corrupt
ones included. A stand-in interpreter (fake_vbench_python.py) plays the VBench venv end to end."""
import json
import math
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from tethercache.errors import ConfigError
from tethercache.eval.rundir import evaluate_run
from tethercache.eval.vbench_long import (WEIGHTS, CorruptResults, VBenchLongEvaluator, clip_spans,
                                          load_results, parse_results)
from tethercache.video import Mp4Writer

DATA = ROOT / "tests" / "data" / "vbench_long"
FIXTURE = DATA / "results_2026-12-01-10:00:00_eval_results.json"
DIMS = ["subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree",
        "aesthetic_quality", "imaging_quality"]
TIMING = {"p000s0": (192, 16.0), "p001s0": (48, 16.0)}          # 12 s and 3 s at 16 fps


def ecfg(**kw):
    base = OmegaConf.load(ROOT / "conf" / "eval" / "vbench_long.yaml")
    return OmegaConf.merge(base, kw)


@pytest.fixture
def fake_python(tmp_path):
    """An executable that stands in for <venv>/bin/python."""
    exe = tmp_path / "venv" / "bin" / "python"
    exe.parent.mkdir(parents=True)
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{DATA / "fake_vbench_python.py"}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return exe


@pytest.fixture
def weights(tmp_path):
    cache = tmp_path / "vbench_cache"
    for f in {f for d in DIMS for f in WEIGHTS[d]}:
        (cache / f).parent.mkdir(parents=True, exist_ok=True)
        (cache / f).write_bytes(b"w")
    return cache


def test_clip_spans_follow_vbench_splitting():
    assert clip_spans(192, 16.0) == [(2.0 * i, 2.0 * i + 2) for i in range(6)]
    assert clip_spans(80, 16.0) == [(0, 2), (2, 4), (3, 5)]         # tail extended backwards
    assert clip_spans(20, 16.0) == [(0, 1.25)]                       # under 2 s: kept whole


def test_parse_fixture_per_clip_per_video_and_overall():
    data = load_results(FIXTURE)
    out = parse_results(data, DIMS, TIMING, {"p000s0": "a cat", "p001s0": "a dog"}, FIXTURE)
    a, b = out["p000s0"], out["p001s0"]
    assert a.prompt == "a cat" and len(a.clips) == 6 and len(b.clips) == 2
    assert [c.scores["imaging_quality"] for c in a.clips] == pytest.approx([0.70, 0.68, 0.66, 0.64, 0.62, 0.60])
    assert [c.scores["dynamic_degree"] for c in a.clips] == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    assert [c.scores["subject_consistency"] for c in b.clips] == [0.9, 0.92]     # fused entries, per clip
    assert (b.clips[1].start_s, b.clips[1].end_s) == (1.0, 3.0)
    m = a.metrics()
    assert m["imaging_quality"] == pytest.approx(0.65) and m["dynamic_degree"] == pytest.approx(4 / 6)
    assert m["drift_clip"] == pytest.approx(10.0)
    assert m["drift_5s"] == pytest.approx(100 * (3.42 / 5 - 3.08 / 5))        # 12 s: 2-s clips by overlap
    assert math.isnan(b.metrics()["drift_5s"])                               # 3 s has no two 5-s ends
    # VBench's overall is the mean over all clips of all videos (imaging /100)
    clips = [c.scores["imaging_quality"] for v in (a, b) for c in v.clips]
    assert data["imaging_quality"][0] == pytest.approx(sum(clips) / len(clips))


def test_partial_results_leave_videos_unscored_with_the_reason():
    data = load_results(FIXTURE)
    data["imaging_quality"][1] = [d for d in data["imaging_quality"][1] if "p000s0_003" not in d["video_path"]]
    del data["aesthetic_quality"]
    out = parse_results(data, DIMS, TIMING, {})
    assert out["p000s0"] == "VBench results lack aesthetic_quality, imaging_quality (5 of 6 clips)"
    assert out["p001s0"] == "VBench results lack aesthetic_quality"
    longer = parse_results(load_results(FIXTURE), DIMS, {**TIMING, "p001s0": (80, 16.0)}, {})
    assert "(2 of 3 clips)" in longer["p001s0"]
    # temporal flickering: VBench's static filter drops static clips by design
    flicker = load_results(FIXTURE)
    flicker["temporal_flickering"] = [0.97, [{"video_path": "/w/videos/temporal_flickering/filtered_clips/p000s0_002.mp4",
                                              "video_results": 0.97}], []]
    out = parse_results(flicker, [*DIMS, "temporal_flickering"], TIMING, {})
    assert out["p000s0"].metrics()["temporal_flickering"] == pytest.approx(0.97)
    assert math.isnan(out["p001s0"].metrics()["temporal_flickering"])


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d.update(imaging_quality=[0.5]), "imaging_quality: expected \\[overall, details"),
    (lambda d: d["motion_smoothness"][1][0].update(video_results=float("nan")), "not a score in range"),
    (lambda d: d["imaging_quality"][1][0].update(video_results=120.0), "120.0 is not a score in range"),
    (lambda d: d["aesthetic_quality"][1][0].pop("video_path"), "aesthetic_quality: malformed entry"),
    (lambda d: d["aesthetic_quality"][1][0].update(video_path="/x/p000s0_abc.mp4"), "unexpected clip name"),
])
def test_corrupt_results_raise_naming_the_dimension(mutate, match):
    data = load_results(FIXTURE)
    mutate(data)
    with pytest.raises(CorruptResults, match=match):
        parse_results(data, DIMS, TIMING, {})


def test_truncated_file_is_corrupt(tmp_path):
    bad = tmp_path / "r_eval_results.json"
    bad.write_text(FIXTURE.read_text()[:300])
    with pytest.raises(CorruptResults, match="not valid JSON"):
        load_results(bad)
    with pytest.raises(CorruptResults, match="expected a JSON object"):
        parse_results([1, 2], DIMS, TIMING, {})


def test_exact_command_environment_and_prepared_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/ours")
    ev = VBenchLongEvaluator(ecfg(python="/opt/vb/bin/python", cache_dir=str(tmp_path / "w")))
    work = tmp_path / "work"
    video = tmp_path / "p000s0.mp4"
    video.write_bytes(b"x")
    ev.prepare(work, {"p000s0": video})
    assert ev.command(work) == [
        "/opt/vb/bin/python", "-m", "vbench2_beta_long.eval_long",
        "--videos_path", f"{work}/inputs", "--output_path", f"{work}/results/",
        "--full_json_dir", f"{work}/configs/VBench_full_info.json",
        "--mode", "long_custom_input", "--dimension", *DIMS,
        "--load_ckpt_from_local", "True", "--imaging_quality_preprocessing_mode", "longer",
        "--clip_length_config", f"{work}/configs/clip_length.yaml",
        "--slow_fast_eval_config", f"{work}/configs/slow_fast_params.yaml",
        "--subject_mapping_file_path", f"{work}/configs/subject_mapping_table.yaml",
        "--background_mapping_file_path", f"{work}/configs/background_mapping_table.yaml"]
    env = ev.environment()
    assert env["VBENCH_CACHE_DIR"] == str(tmp_path / "w") and env["TORCH_HOME"] == str(tmp_path / "w" / "torch")
    assert env["HF_HUB_OFFLINE"] == "1" and "PYTHONPATH" not in env
    assert os.readlink(work / "inputs" / "p000s0.mp4") == str(video.resolve())
    assert json.loads((work / "configs" / "VBench_full_info.json").read_text()) == []
    lengths = OmegaConf.load(work / "configs" / "clip_length.yaml")
    assert set(lengths.values()) == {2.0} and set(DIMS) <= set(lengths)
    sf = OmegaConf.load(work / "configs" / "slow_fast_params.yaml")
    assert sf.w_clip2clip_sb == 0.0 and sf.w_inclip_bg == 1.0
    flick = VBenchLongEvaluator(ecfg(python="/p", dimensions=[*DIMS, "temporal_flickering"]))
    assert flick.command(work)[-1] == "--static_filter_flag"
    with pytest.raises(ValueError, match="cuts names at '_'"):
        ev.prepare(work, {"p_0": video})


def _check(**kw):
    cfg = OmegaConf.create({"eval": ecfg(**kw)})
    with pytest.raises(ConfigError) as e:
        VBenchLongEvaluator.check(cfg)
    return str(e.value)


def test_check_names_everything_missing_before_any_work(tmp_path, fake_python, weights, monkeypatch):
    msg = _check(python=str(tmp_path / "none" / "python"), cache_dir=None)
    assert "no such interpreter (build the venv: make vbench-env)" in msg
    assert "eval.cache_dir: not set" in msg and "\n" not in msg
    monkeypatch.setenv("FAKE_VBENCH", "nogpu")
    (weights / WEIGHTS["imaging_quality"][0]).unlink()
    msg = _check(python=str(fake_python), cache_dir=str(weights))
    assert "no CUDA GPU visible" in msg and "missing pyiqa_model/musiq_spaq_ckpt-358bb6af.pth" in msg
    msg = _check(python=str(fake_python), cache_dir=str(weights), slow_fast=True)
    assert "torch/hub/checkpoints/dinov2_vitb14_pretrain.pth" in msg and "eval.configs_dir=None" in msg
    assert "eval.dimensions: ['scene']" in _check(python=str(fake_python), dimensions=["scene"])
    monkeypatch.delenv("FAKE_VBENCH")
    (weights / WEIGHTS["imaging_quality"][0]).write_bytes(b"w")
    VBenchLongEvaluator.check(OmegaConf.create({"eval": ecfg(python=str(fake_python), cache_dir=str(weights))}))


@pytest.fixture
def run_dir(tmp_path):
    """A finished run dir with two real mp4s (12 s and 3 s at 16 fps) and one constant video."""
    run = tmp_path / "run"
    rng = np.random.default_rng(0)
    samples = []
    for sid, n in (("p000s0", 192), ("p001s0", 48), ("p002s0", 40)):
        frames = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
        if sid == "p002s0":
            frames[:] = 0
        with Mp4Writer(run / "videos" / f"{sid}.mp4", fps=16) as w:
            w.write(frames)
        samples.append({"id": sid, "prompt": f"prompt {sid}", "seed": 0, "video": f"videos/{sid}.mp4"})
    (run / "record.json").write_text(json.dumps({"status": "complete", "samples": samples,
                                                 "config": {"eval": {"name": "none"}}}))
    return run


def test_end_to_end_with_a_stand_in_interpreter(run_dir, fake_python, weights, monkeypatch):
    e = ecfg(python=str(fake_python), cache_dir=str(weights))
    logs = []
    summary = evaluate_run(run_dir, e, log=logs.append)
    assert summary["evaluator"] == "vbench_long"
    assert summary["invalid"] == [{"video": "p002s0", "reason": "constant video: every pixel of every frame is (0, 0, 0)"}]
    a = next(v for v in summary["videos"] if v["video"] == "p000s0")
    assert a["n_clips"] == 6 and a["imaging_quality"] == pytest.approx(0.75)   # 80, 78, ..., 70
    assert a["drift_clip"] == pytest.approx(10.0) and a["prompt"] == "prompt p000s0"
    work = run_dir / "eval" / "vbench_long" / "shard-0-of-1"
    inv = json.loads((work / "invocation.json").read_text())
    assert inv["argv"] == VBenchLongEvaluator(e).command(work)[1:]
    assert inv["env"]["VBENCH_CACHE_DIR"] == str(weights) and inv["env"]["PYTHONPATH"] is None
    assert sorted(p.name for p in (work / "inputs").glob("*.mp4")) == ["p000s0.mp4", "p001s0.mp4"]
    rows = (run_dir / "clips.csv").read_text().splitlines()
    assert len(rows) == 1 + 6 + 2
    # idempotent: nothing left to score, VBench is not started again
    (work / "invocation.json").unlink()
    logs.clear()
    evaluate_run(run_dir, e, log=logs.append)
    assert not (work / "invocation.json").exists() and "all 3 videos already scored" in logs[0]
    # another node with the weights elsewhere (a shard job) reuses the scores
    other = shutil.copytree(weights, weights.parent / "elsewhere")
    logs.clear()
    evaluate_run(run_dir, ecfg(python=str(fake_python), cache_dir=str(other), shard=0), log=logs.append)
    assert "all 3 videos already scored" in logs[0]


def test_failures_never_look_scored(run_dir, fake_python, weights, monkeypatch):
    e = ecfg(python=str(fake_python), cache_dir=str(weights))
    monkeypatch.setenv("FAKE_VBENCH", "crash")
    with pytest.raises(RuntimeError, match="VBench-Long exited 1 .*CUDA out of memory"):
        evaluate_run(run_dir, e, log=lambda *_: None)
    monkeypatch.setenv("FAKE_VBENCH", "corrupt")
    with pytest.raises(CorruptResults, match="not valid JSON"):
        evaluate_run(run_dir, e, log=lambda *_: None)
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.setenv("FAKE_VBENCH", "drop:p001s0")
    logs = []
    assert evaluate_run(run_dir, e, log=logs.append) is None
    assert "p001s0" in logs[-1] and "shard 0/1 half-scored, 1 of 3 missing (p001s0)" in logs[-1]
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.delenv("FAKE_VBENCH")
    assert len(evaluate_run(run_dir, e, log=logs.append)["videos"]) == 2      # only p001s0 rescored


VENV_PYTHON = ROOT / ".venv-vbench" / "bin" / "python"


@pytest.mark.slow
@pytest.mark.skipif(not VENV_PYTHON.is_file(), reason="needs the VBench venv (make vbench-env)")
def test_real_vbench_splitting_and_result_format_match_our_parser(tmp_path):
    """VBench's own split_video_into_clips + reorganize_clips_results + save_json (CPU) on real
    mp4s: our clip spans and parser agree with what it cut and wrote."""
    import subprocess

    from tethercache.eval.video_checks import scan_mp4
    videos = tmp_path / "videos"
    rng = np.random.default_rng(0)
    for sid, n in (("p000s0", 80), ("p001s0", 20), ("p002s0", 64)):
        with Mp4Writer(videos / f"{sid}.mp4", fps=16) as w:
            w.write(rng.integers(0, 255, (n, 32, 32, 3), dtype=np.uint8))
    out = tmp_path / "r_eval_results.json"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([str(VENV_PYTHON), str(DATA / "real_vbench_cpu.py"), str(videos), str(out)],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    timing = {p.stem: scan_mp4(p)[:2] for p in videos.glob("*.mp4")}
    parsed = parse_results(load_results(out), ["imaging_quality"], timing, {})
    for sid, n_clips in (("p000s0", 3), ("p001s0", 1), ("p002s0", 2)):
        cut = sorted((videos / "split_clip" / sid).glob("*.mp4"))
        assert len(cut) == n_clips == len(parsed[sid].clips)
        assert [c.scores["imaging_quality"] for c in parsed[sid].clips] == pytest.approx(
            [(50 + i) / 100 for i in range(n_clips)])
        frames = [scan_mp4(c)[0] for c in cut]
        spans = clip_spans(*timing[sid])
        assert frames == [round(16 * (b - a)) for a, b in spans]


def test_clip_length_uses_vbenchs_truncated_fps():
    assert len(clip_spans(240, 23.976)) == 6 and clip_spans(240, 23.976)[0][1] == pytest.approx(46 / 23.976)
