"""run.py end to end through the real CLI: mp4 decoded back, record, timeline, Hydra multirun,
the submitit local launcher, offline wandb; and validation before compute, one case per test."""
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT, run_cli
from tethercache.errors import ConfigError
from tethercache.runner import validate
from tethercache.video import read_mp4


def test_tiny_window_30s_writes_video_record_and_timeline(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["backbone=tiny", "eval=none", "cache=window", "horizon=30s", f"hydra.run.dir={out}",
                 "progress=false"])
    assert r.returncode == 0, r.stderr
    frames, fps = read_mp4(out / "videos" / "p000s0.mp4")
    assert fps == 16 and len(frames) == 120 * 4           # 30 s at 16 fps
    assert not list(out.rglob("*.partial.mp4"))
    rec = json.loads((out / "record.json").read_text())
    assert rec["status"] == "complete" and rec["policy"] == "window"
    s = rec["samples"][0]
    assert len(s["chunk_seconds"]) == 40 and s["video_frames"] == 480
    assert rec["memory"]["peak_rss_mb"] > 0 and s["kv_cache_mb"] > 0
    assert rec["config"]["cache"]["budget"] == 21
    tl = np.load(out / "timelines" / "p000s0.npz")
    assert tl["frames"].shape == (40, 2, 21)
    assert tl["frames"][-1, 0].tolist() == list(range(99, 120))
    assert (out / ".hydra" / "config.yaml").exists()


@pytest.mark.parametrize("args,key", [
    (["cache=nope"], "cache"),
    (["prompts=file", "prompts.file=/nonexistent/prompts.txt"], "prompts.file"),
    (["backbone.weights=/nonexistent/self_forcing_dmd.pt"], "backbone.weights"),
])
def test_cli_rejects_bad_input_before_compute(tmp_path, args, key):
    out = tmp_path / "run"
    r = run_cli(["backbone=tiny", "eval=none", *args, f"hydra.run.dir={out}"])
    assert r.returncode != 0
    assert key in r.stderr
    assert not (out / "record.json").exists() and not (out / "videos").exists()


def composed(overrides, backbone="tiny"):
    """Compose with tiny/none/window unless the overrides choose those groups themselves."""
    base = [o for o in (f"backbone={backbone}", "eval=none", "cache=window")
            if not any(x.startswith(o.split("=")[0] + "=") for x in overrides)]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


@pytest.mark.parametrize("overrides,key", [
    (["cache=sink", "cache.sink=19"], "cache.sink"),                 # S + chunk > K
    (["cache=sink", "cache.budget=2"], "cache.budget"),
    (["horizon.frames=100"], "horizon.frames"),                        # not a multiple of 3
    (["horizon.frames=0"], "horizon.frames"),
    (["prompts=file"], "prompts.file"),                                # required, unset
    (["prompts.texts=[]"], "prompts"),
    (["+cache.alpha=0.3"], "cache.alpha"),                             # not a window key
    (["cache.name=nope"], "cache.name"),
    (["backbone=self_forcing"], "backbone.wan_dir"),                    # required paths unset
    (["backbone=self_forcing", "backbone.weights=/nope.pt", "backbone.wan_dir=/tmp"], "backbone.weights"),
    (["backbone.dtype=float8"], "backbone.dtype"),
    (["backbone.sampler.shift=0"], "backbone.sampler.shift"),
    (["backbone.sampler.shift=abc"], "backbone.sampler.shift"),                 # not a number
    (["backbone=toy", "backbone.weights=null", "backbone.sampler.restarts=1.5"], "backbone.sampler.restarts"),
    (["backbone=toy", "backbone.weights=null", "backbone.sampler.restart_sigma=0.01"], "backbone.sampler.restart_sigma"),
    (["backbone=toy", "backbone.weights=null", "backbone.sampler.sigma_min=2"], "backbone.sampler.sigma_min"),
    (["cache.rope=absolute", "horizon.frames=1200"], "cache.rope"),
    (["eval.name=magic"], "eval.name"),
    (["samples_per_prompt=0"], "samples_per_prompt"),
    (["device=cuda:7"], "device"),
    (["backbone=toy", "backbone.weights=null", "prompts.texts=[a cat on a sofa]"], "prompts.texts[0]"),
    (["cache=oracle"], "cache.name"),                                   # needs a toy backbone
    (["backbone=toy", "backbone.weights=null", "eval=toy", "eval.prefixes=[45s]"], "eval.prefixes"),
    (["backbone.threads=0"], "backbone.threads"),
    (["backbone.codec.view_scale=0"], "backbone.codec.view_scale"),
    (["backbone=toy", "backbone.weights=null", "backbone.start_frames=4"], "backbone.start_frames"),
    (["backbone=toy", "backbone.weights=null", "+backbone.model.prediction=eps"], "backbone.model.prediction"),
])
def test_validation_names_the_key(overrides, key):
    import torch
    if key == "device" and torch.cuda.is_available():
        pytest.skip("has CUDA")
    with pytest.raises(ConfigError) as e:
        validate(composed(overrides))
    assert key in str(e.value).split(":")[0]
    assert "\n" not in str(e.value)


def test_every_config_group_option_composes_and_validates_or_names_a_required_path():
    for group in ("cache", "horizon", "prompts", "backbone", "eval", "logger"):
        for f in sorted((ROOT / "conf" / group).glob("*.yaml")):
            try:
                validate(composed([f"{group}={f.stem}"], backbone="tiny" if group != "backbone" else f.stem))
            except ConfigError as e:      # options that need user paths say which
                assert any(k in str(e) for k in ("weights", "prompts.file", "wan_dir", "path", "eval=", "toy-world")), str(e)


def test_multirun_sweep_with_basic_and_submitit_local_launchers(tmp_path):
    for launcher in ("basic", "submitit_local"):
        sweep = tmp_path / launcher
        r = run_cli(["-m", f"hydra/launcher={launcher}", "backbone=tiny", "eval=none",
                     "cache=window,sink", "horizon=5s",
                     f"hydra.sweep.dir={sweep}", "progress=false"])
        assert r.returncode == 0, r.stderr[-2000:]
        records = sorted(sweep.glob("*/record.json"))
        assert len(records) == 2
        policies = sorted(json.loads(p.read_text())["policy"] for p in records)
        assert policies == ["sink", "window"]


def test_wandb_offline_run_is_written(tmp_path):
    out = tmp_path / "run"
    r = run_cli(["logger=wandb", "backbone=tiny", "eval=none", "cache=window", "horizon=5s",
                 f"hydra.run.dir={out}", "progress=false"])
    assert r.returncode == 0, r.stderr[-2000:]
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
