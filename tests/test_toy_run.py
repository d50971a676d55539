"""The toy-world path of run.py: grammar prompts, pose conditioning, toy evaluator outputs."""
import json

import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli
from tethercache.toyworld.world import camera_poses


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


def _toy_weights_of_world(path, world: dict):
    """Random toy weights in the shipped format, recording the world they were 'trained' on."""
    from safetensors.torch import save_file

    from tethercache.model.wan import SIZES, CausalWan
    net = CausalWan(SIZES["toy"]).net
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path),
              metadata={"format": "diffusers", "world": json.dumps(world)})
    return path


def test_backbone_lives_in_the_world_its_weights_were_trained_on(tmp_path):
    """backbone.world sets the real start chunk's world; weights recording another world are refused."""
    from omegaconf import OmegaConf

    from tethercache.backbone import build_backbone
    from tethercache.errors import ConfigError
    from tethercache.toyworld.world import ToyWorld, WorldConfig
    bcfg = OmegaConf.load(ROOT / "conf" / "backbone" / "toy.yaml")
    bcfg.weights = str(_toy_weights_of_world(tmp_path / "w12.safetensors", {"sprite_size": 12}))
    bcfg.world = {}
    prompt, seed = "forest scene, calm bands, red square, medium camera", 16   # a sprite in view at frame 0
    with pytest.raises(ConfigError, match=r"backbone\.world=\{\} but .*w12\.safetensors was trained on world "
                                          r"\{'sprite_size': 12\}"):
        build_backbone(bcfg)
    bcfg.world = {"sprite_size": 12}
    bb = build_backbone(bcfg)
    assert bb.world == WorldConfig(sprite_size=12)
    frames, _ = ToyWorld(prompt, seed, WorldConfig(sprite_size=12)).render(3)
    expected = bb.codec.encode(frames.permute(0, 3, 1, 2).float()[None] / 127.5 - 1.0)
    assert torch.equal(bb.start_latents(prompt, seed), expected)
    default, _ = ToyWorld(prompt, seed).render(3)
    assert not torch.equal(default, frames)      # the worlds differ where a sprite is in view


def test_toy_eval_scores_in_the_runs_world(tmp_path):
    """eval=toy reads the run's backbone.world: real footage of a 12-px-sprite world is a perfect
    subject there, and judged against the default world's 8-px templates it is not."""
    from omegaconf import OmegaConf

    from tethercache.eval.toy_runner import ToyRunEvaluator
    from tethercache.toyworld.world import ToyWorld, WorldConfig
    from tethercache.video import Mp4Writer
    prompt, seed = "forest scene, calm bands, red square and white disk, medium camera", 1000011
    frames, _ = ToyWorld(prompt, seed, WorldConfig(sprite_size=12)).render(120)
    writer = Mp4Writer(tmp_path / "v.mp4", fps=16, lossless=True)
    writer.write(frames.numpy().repeat(4, 0))
    writer.close()
    sample = {"id": "v", "video": "v.mp4", "prompt": prompt, "seed": seed}
    scores = {}
    for name, world in (("v2", {"sprite_size": 12}), ("default", {})):
        run_cfg = OmegaConf.create({"backbone": {"poses": True, "world": world, "codec": {"view_scale": 1}}})
        ev = ToyRunEvaluator(OmegaConf.create({"prefixes": []}))
        [(_, result)] = list(ev.score(tmp_path, [sample], run_cfg))
        scores[name] = result["full"].means["subject_consistency"]
    assert scores["v2"] > 0.99 and scores["default"] < 0.5, scores
