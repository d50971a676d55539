"""Evaluation as its own step on finished run dirs (`python -m tethercache.eval`): decoded mp4s are
what is scored, re-running skips what is scored, unfinished runs are refused, shards cover every
video once and the merge names what is missing, constant videos never get normal metrics."""
import hashlib
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from tethercache.errors import ConfigError
from tethercache.eval.__main__ import main as cli_main
from tethercache.eval.frame_evaluator import unscale
from tethercache.eval.rundir import (NotFinished, evaluate_run, find_run_dirs, load_finished,
                                     shard_ids, shard_of)
from tethercache.eval.toy import ToyEvaluator
from tethercache.eval.toy_runner import ToyRunEvaluator
from tethercache.toyworld.world import ToyWorld
from tethercache.video import Mp4Writer, read_mp4

PROMPTS = ["forest scene, hilly bands, white triangle, fast camera",
           "ocean scene, wavy bands, red disk, slow camera"]
TOY = OmegaConf.create({"name": "toy", "prefixes": [], "shard": 0, "num_shards": 1})


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished run dir in the run.py layout (record.json complete, lossless 4x-upscaled mp4s at
    16 fps, 4 video frames per toy frame), holding real toy-world footage: 2 prompts x 2 seeds, 5 s."""
    out = tmp_path_factory.mktemp("runs") / "toy-5s"
    samples = []
    for p, prompt in enumerate(PROMPTS):
        for k in range(2):
            sid, seed = f"p{p:03d}s{k}", 1000 * p + k
            frames = ToyWorld(prompt, seed).render(20)[0].numpy().repeat(4, axis=0)
            with Mp4Writer(out / "videos" / f"{sid}.mp4", fps=16, scale=4, lossless=True) as w:
                w.write(frames)
            samples.append({"id": sid, "prompt": prompt, "seed": seed, "video": f"videos/{sid}.mp4"})
    config = {"backbone": {"name": "toy", "poses": True, "codec": {"view_scale": 4}}, "eval": {"name": "none"}}
    (out / "record.json").write_text(json.dumps({"status": "complete", "samples": samples, "config": config}))
    return out


def _copy(run_dir, tmp_path, name="run"):
    dst = tmp_path / name
    shutil.copytree(run_dir, dst)
    return dst


def _score_files(run):
    return {p.name: p.stat().st_mtime_ns for p in (run / "eval" / "toy" / "scores").glob("*.json")}


def test_lossless_mp4_decodes_back_to_the_exact_toy_frames(tmp_path):
    frames = ToyWorld(PROMPTS[0], 3).render(24)[0].numpy()
    with Mp4Writer(tmp_path / "v.mp4", fps=16, scale=4, lossless=True) as w:
        w.write(frames)
    decoded, fps = read_mp4(tmp_path / "v.mp4")
    assert fps == 16 and np.array_equal(unscale(decoded, 4), frames)


def test_scores_are_written_once_and_rerunning_skips_them(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    logs = []
    summary = evaluate_run(run, TOY, log=logs.append)
    assert summary["evaluator"] == "toy" and len(summary["videos"]) == 4 and summary["invalid"] == []
    assert json.loads((run / "metrics.json").read_text()) == json.loads((run / "eval/toy/metrics.json").read_text())
    assert (run / "clips.csv").read_text().startswith("evaluator,video,clip")
    # the decoded video is what is scored: same numbers as scoring the exact frames of the mp4
    s0 = json.loads((run / "record.json").read_text())["samples"][0]
    frames = unscale(read_mp4(run / s0["video"])[0], 4)
    direct = ToyEvaluator().evaluate(frames, s0["prompt"], video_id=s0["id"]).metrics()
    stored = next(v for v in summary["videos"] if v["video"] == s0["id"])
    assert stored["imaging_quality"] == pytest.approx(direct["imaging_quality"], abs=1e-12)
    before = _score_files(run)
    again = evaluate_run(run, TOY, log=logs.append)
    assert "all 4 videos already scored" in logs[-2] and _score_files(run) == before
    assert again["videos"] == summary["videos"]
    evaluate_run(run, TOY, force=True, log=logs.append)
    assert "scoring 4 of 4" in logs[-2] and all(_score_files(run)[k] > before[k] for k in before)


def test_a_changed_video_or_eval_config_is_rescored(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    evaluate_run(run, TOY, log=lambda *_: None)
    before = _score_files(run)
    (run / "videos" / "p001s1.mp4").touch()                      # regenerated video
    logs = []
    evaluate_run(run, TOY, log=logs.append)
    assert "scoring 1 of 4" in logs[0]
    after = _score_files(run)
    assert after["p001s1.json"] > before["p001s1.json"] and after["p000s0.json"] == before["p000s0.json"]
    evaluate_run(run, OmegaConf.merge(TOY, {"prefixes": ["5s"]}), log=logs.append)
    assert "scoring 4 of 4" in logs[-2]


def test_unfinished_runs_are_refused_with_the_reason(run_dir, tmp_path):
    partial = _copy(run_dir, tmp_path, "partial")
    (partial / "videos" / "p000s0.partial.mp4").write_bytes(b"")
    with pytest.raises(NotFinished, match="unfinished video videos/p000s0.partial.mp4"):
        evaluate_run(partial, TOY)
    running = _copy(run_dir, tmp_path, "running")
    (running / "record.json").unlink()
    with pytest.raises(NotFinished, match="no record.json"):
        load_finished(running)
    failed = _copy(run_dir, tmp_path, "failed")
    rec = json.loads((failed / "record.json").read_text())
    (failed / "record.json").write_text(json.dumps({**rec, "status": "failed", "reason": "non-finite latents"}))
    with pytest.raises(NotFinished, match="status 'failed' \\(non-finite latents\\)"):
        load_finished(failed)
    assert not (partial / "eval").exists() and not (partial / "metrics.json").exists()
    # the CLI refuses before scoring anything (exit 2), or skips them when asked
    cli = [sys.executable, "-m", "tethercache.eval", str(tmp_path)]
    r = subprocess.run(cli, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "partial.mp4" in r.stderr and "no record.json" in r.stderr
    assert not (failed / "eval").exists()


def test_cli_rejects_bad_keys_and_runs_without_an_evaluator(run_dir, tmp_path, capsys):
    run = _copy(run_dir, tmp_path)
    for args, msg in [(["eval=toy", "eval.shard=3", "eval.num_shards=2"], "eval.shard=3: must be an integer in [0, 1]"),
                      (["eval=nope"], "eval=nope: no such option"),
                      (["seed=1"], "seed: unknown key; allowed: ['eval', 'force', 'runs', 'skip_unfinished']"),
                      ([], "no evaluator (the run has eval=none)")]:
        assert cli_main([str(run), *args]) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1, (args, err)
    assert not (run / "eval").exists()


@pytest.mark.parametrize("n_ids,n_shards", [(1, 1), (4, 3), (7, 8), (200, 8)])
def test_shards_cover_every_video_exactly_once(n_ids, n_shards):
    ids = [f"p{i:03d}s{i % 3}" for i in range(n_ids)]
    slices = [shard_ids(ids, k, n_shards) for k in range(n_shards)]
    assert sorted(v for s in slices for v in s) == sorted(ids)
    assert max(map(len, slices)) - min(map(len, slices)) <= 1
    assert shard_ids(list(reversed(ids)), 0, n_shards) == slices[0]          # order-independent
    assert shard_of(ids, n_shards) == shard_of(ids[::-1], n_shards)


def test_sharded_scoring_merges_only_when_every_shard_is_done(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    shard = lambda k: OmegaConf.merge(TOY, {"shard": k, "num_shards": 2})
    logs = []
    assert evaluate_run(run, shard(1), log=logs.append) is None
    assert "shard 0/2 not started (p000s0, p001s0)" in logs[-1] and not (run / "metrics.json").exists()
    (run / "eval" / "toy" / "scores" / "p001s1.json").unlink()                  # a half-done shard
    assert evaluate_run(run, OmegaConf.merge(TOY, {"shard": 0, "num_shards": 4}), log=logs.append) is None
    assert "half-scored" not in logs[-1]
    merged_logs = []
    assert evaluate_run(run, shard(0), log=merged_logs.append) is None
    assert "shard 1/2 half-scored, 1 of 2 missing (p001s1)" in merged_logs[-1]
    summary = evaluate_run(run, shard(1), log=merged_logs.append)
    assert sorted(v["video"] for v in summary["videos"]) == ["p000s0", "p000s1", "p001s0", "p001s1"]


def test_constant_video_gets_no_metrics_and_is_listed(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    grey = np.full((20, 32, 64, 3), 77, np.uint8)
    with Mp4Writer(run / "videos" / "p000s1.mp4", fps=16, scale=4, lossless=True) as w:
        w.write(grey)
    summary = evaluate_run(run, TOY, log=lambda *_: None)
    assert [v["video"] for v in summary["videos"]] == ["p000s0", "p001s0", "p001s1"]
    assert summary["invalid"] == [{"video": "p000s1",
                                   "reason": "constant video: every pixel of every frame is (77, 77, 77)"}]
    rows = (run / "clips.csv").read_text()
    assert "p000s1" not in rows


def test_find_run_dirs_expands_a_sweep_dir_but_not_eval_subdirs(run_dir, tmp_path):
    a = _copy(run_dir, tmp_path / "sweep", "0-a")
    b = _copy(run_dir, tmp_path / "sweep", "1-b")
    evaluate_run(a, TOY, log=lambda *_: None)                 # creates eval/toy/scores inside a
    assert find_run_dirs([tmp_path / "sweep"]) == [a, b]
    from analysis.collect import find_runs         # nothing under eval/ looks like a run dir
    assert find_runs([tmp_path / "sweep"]) == ([a, b], [])
    with pytest.raises(ConfigError, match="no such directory"):
        find_run_dirs([tmp_path / "nope"])


def test_score_py_runs_one_job_per_shard_through_hydra_multirun(run_dir, tmp_path):
    run = _copy(run_dir, tmp_path)
    r = subprocess.run([sys.executable, "score.py", "-m", f"runs=[{run}]", "eval=toy", "eval.prefixes=[]",
                        "eval.num_shards=2", "eval.shard=0,1", f"hydra.sweep.dir={tmp_path / 'score'}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "score").iterdir() if p.is_dir()) == ["shard-0-of-2", "shard-1-of-2"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["videos"]) == 4 and "shard 1/2 not started (p000s1, p001s1)" in r.stdout


MERGED = ("metrics.json", "clips.csv", "quality_over_time.png", "eval/toy/metrics.json")


def _merged_sums(run):
    return {rel: hashlib.sha256((run / rel).read_bytes()).hexdigest() for rel in MERGED}


def test_merged_outputs_survive_every_failure_and_are_replaced_only_whole(run_dir, tmp_path, monkeypatch):
    run = _copy(run_dir, tmp_path)
    evaluate_run(run, TOY, log=lambda *_: None)
    before = _merged_sums(run)
    # a replaced mp4, then a rescore of every video that dies at the second one
    frames = ToyWorld(PROMPTS[1], 7).render(20)[0].numpy().repeat(4, axis=0)
    with Mp4Writer(run / "videos" / "p001s1.mp4", fps=16, scale=4, lossless=True) as w:
        w.write(frames)
    original, calls = ToyRunEvaluator.evaluate, []

    def dies_at_the_second(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("node lost")
        return original(self, *a, **k)
    monkeypatch.setattr(ToyRunEvaluator, "evaluate", dies_at_the_second)
    with pytest.raises(RuntimeError, match="node lost"):
        evaluate_run(run, TOY, force=True, log=lambda *_: None)
    assert _merged_sums(run) == before
    monkeypatch.undo()
    # a failure while the new merge is written (clips.csv done, the plot fails)
    monkeypatch.setattr("tethercache.eval.toy_runner.plot_quality_over_time",
                        lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        evaluate_run(run, TOY, log=lambda *_: None)
    assert _merged_sums(run) == before and not list(run.rglob(".merge-*"))
    monkeypatch.undo()
    # half-rescored (shard 0 of 2 done, shard 1 not): the previous complete merge stays, said so
    two = lambda k: OmegaConf.merge(TOY, {"shard": k, "num_shards": 2})
    logs = []
    for vid in ("p000s0", "p000s1"):                  # one video in each shard
        (run / "videos" / f"{vid}.mp4").touch()
    assert evaluate_run(run, two(0), force=True, log=logs.append) is None
    assert "metrics.json keeps the previous complete merge" in logs[-1] and _merged_sums(run) == before
    # complete again: the whole new set replaces the old one
    summary = evaluate_run(run, two(1), log=logs.append)
    after = _merged_sums(run)
    assert all(after[rel] != before[rel] for rel in MERGED if rel != "eval/toy/metrics.json")
    assert json.loads((run / "metrics.json").read_text()) == summary
    assert after["metrics.json"] == after["eval/toy/metrics.json"]
