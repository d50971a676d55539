"""The toy-world path of run.py: grammar prompts, pose conditioning, toy evaluator outputs."""
import json

import numpy as np
import pytest
import torch

from conftest import run_cli
from tethercache.toyworld.conditioning import camera_poses


def test_poses_shift_the_model_output(tiny_model):
    """Pose conditioning is live: the same latents at other camera poses give other outputs,
    and a pure shift of every pose (RoPE is relative) gives the same output."""
    x = torch.randn(1, 12, 6, 8, 8)
    t = torch.full((1, 6), 500.0)
    kv = tiny_model.text_kv(torch.randn(1, 4, 32))
    base = torch.arange(6, dtype=torch.float32)
    with torch.no_grad():
        a = tiny_model(x, t, kv, poses=base)
        b = tiny_model(x, t, kv, poses=base * 2)
        c = tiny_model(x, t, kv, poses=base + 7)
    assert (a - b).abs().max() > 1e-3
    assert (a - c).abs().max() < 1e-4


def test_camera_poses_follow_the_prompt_speed():
    slow = camera_poses("forest scene, calm bands, red disk, slow camera", 0, 10)
    fast = camera_poses("forest scene, calm bands, red disk, fast camera", 0, 10)
    assert torch.allclose(fast, 4 * slow)


def test_toy_run_writes_metrics_clips_and_plot(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["backbone=toy", "backbone.weights=null",
                 "eval=toy", "horizon=5s", "cache=tether", "progress=false", f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    v = metrics["videos"][0]
    assert v["evaluator"] == "toy" and 0 <= v["imaging_quality"] <= 1
    assert "quality_drift" in v and "revisit_consistency" in v
    rows = (out / "clips.csv").read_text().splitlines()
    assert rows[0].startswith("evaluator,video,clip") and len(rows) >= 3
    assert (out / "quality_over_time.png").stat().st_size > 1000
    rec = json.loads((out / "record.json").read_text())
    assert rec["choices"]["cache"] == "tether"
    tl = np.load(out / "timelines" / "p000s0.npz")
    assert tl["frames"].shape[1:] == (4, 21)
