"""Prompt sharding (prompts.shard / num_shards) and backbone reuse across jobs of one process."""
import io

from hydra import compose, initialize_config_dir

from analysis import collect as collect_mod
from conftest import ROOT
from tethercache import runner
from tethercache.validation import load_prompts

TEXTS = "prompts.texts=[a red cat,a blue dog,a green fence,the snow]"


def composed(*overrides):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["backbone=tiny", "eval=none", "cache=window",
                                            "horizon=5s", "progress=false", TEXTS, *overrides])


def test_shards_partition_the_suite_deterministically_keeping_suite_indices():
    cfg = composed()
    full = load_prompts(cfg.prompts)
    shards = [load_prompts(composed(f"prompts.shard={i}", "prompts.num_shards=3").prompts)
              for i in range(3)]
    assert sorted(p for s in shards for p in s) == full
    assert shards[1] == [(1, "a blue dog")] and shards[0] == [(0, "a red cat"), (3, "the snow")]


def test_sharded_runs_merge_into_the_unsharded_videos_and_missing_shards_are_reported(tmp_path):
    runner.execute(composed(), tmp_path / "whole", {})
    root = tmp_path / "sharded"
    for i in (0, 2):
        runner.execute(composed(f"prompts.shard={i}", "prompts.num_shards=3"), root / f"shard{i}", {})
    for sid, shard in [("p000s0", 0), ("p003s0", 0), ("p002s0", 2)]:     # same ids, same seeds
        assert (root / f"shard{shard}" / "videos" / f"{sid}.mp4").read_bytes() == \
            (tmp_path / "whole" / "videos" / f"{sid}.mp4").read_bytes()
    report = io.StringIO()
    df = collect_mod.collect([root], report=report)
    assert sorted(df["video"]) == ["p000s0", "p002s0", "p003s0"] and df["variant"].nunique() == 1
    assert "missing shards [1] of 3" in report.getvalue()


def test_backbone_reuse_gives_identical_videos(tmp_path):
    runner._loaded.clear()
    rec = runner.execute(composed("reuse_backbone=false"), tmp_path / "fresh", {})
    assert not rec["backbone_reused"]
    runner.execute(composed("cache.budget=12"), tmp_path / "other", {})         # loads, keeps
    rec = runner.execute(composed(), tmp_path / "reused", {})
    assert rec["backbone_reused"]
    assert (tmp_path / "fresh" / "videos" / "p001s0.mp4").read_bytes() == \
        (tmp_path / "reused" / "videos" / "p001s0.mp4").read_bytes()
    rec = runner.execute(composed("backbone.init_seed=1"), tmp_path / "changed", {})
    assert not rec["backbone_reused"]                                           # other weights
