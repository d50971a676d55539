"""Run dirs never look more finished than the run was: NaN weights, concurrent starts,
a re-run into a finished dir that is killed, SIGINT/SIGTERM, failures recorded with a reason."""
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from analysis import collect as collect_mod
from conftest import ROOT, run_cli
from tethercache import rundir

TINY = ["backbone=tiny", "eval=none", "cache=window", "progress=false"]


def _popen(args, cwd=ROOT, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _wait_for(predicate, proc, timeout=120):
    t0 = time.time()
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() - t0 < timeout, "timed out"
        time.sleep(0.05)


def test_nan_weights_fail_the_run_naming_the_chunk_and_nothing_is_scored(tmp_path):
    weights = tmp_path / "nan.safetensors"
    state = load_file(str(ROOT / "tethercache/toyworld/weights/toy_wan.safetensors"))
    save_file({k: torch.full_like(v, float("nan")) for k, v in state.items()}, str(weights))
    out = tmp_path / "runs" / "nan"
    r = run_cli(["backbone=toy", f"backbone.weights={weights}", "eval=toy", "cache=window",
                 "horizon=5s", "progress=false", f"hydra.run.dir={out}"])
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if not line.startswith("[")]
    assert len(err) == 1 and "chunk 1" in err[0] and "non-finite" in err[0], r.stderr
    rec = json.loads((out / "record.json").read_text())
    assert rec["status"] == "failed" and "NonFiniteError" in rec["reason"] and "chunk 1" in rec["reason"]
    assert not (out / "metrics.json").exists() and not (out / "clips.csv").exists()
    assert not list(out.rglob("*.mp4"))                         # no video of NaN frames
    assert "Traceback" in (out / "run.log").read_text()        # the traceback goes to run.log only
    assert "Traceback" not in r.stderr
    report = io.StringIO()
    df = collect_mod.collect([tmp_path / "runs"], report=report)
    assert len(df) == 0 and "failed (NonFiniteError" in report.getvalue()


def test_concurrent_starts_get_their_own_consistent_dirs(tmp_path):
    """Default run dir pattern, two runs started together: two dirs, each self-consistent."""
    procs = [_popen([*TINY, "horizon=5s", f"seed={s}"], cwd=tmp_path) for s in (3, 4)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
    dirs = sorted((tmp_path / "outputs" / "runs").glob("*/*"))
    assert len(dirs) == 2
    seeds = set()
    for d in dirs:
        rec = json.loads((d / "record.json").read_text())
        hydra_cfg = (d / ".hydra" / "config.yaml").read_text()
        assert f"seed: {rec['seed']}" in (d / "config.yaml").read_text()
        assert f"seed: {rec['seed']}" in hydra_cfg
        assert rec["samples"][0]["seed"] == rec["seed"]
        seeds.add(rec["seed"])
    assert seeds == {3, 4}


@pytest.mark.parametrize("sig,status,code", [(signal.SIGKILL, "unfinished", -9),
                                             (signal.SIGTERM, "interrupted", 130),
                                             (signal.SIGINT, "interrupted", 130)])
def test_rerun_into_a_finished_dir_then_killed_leaves_no_complete_record(tmp_path, sig, status, code):
    out = tmp_path / "run"
    r = run_cli([*TINY, "horizon=5s", f"hydra.run.dir={out}"])
    assert r.returncode == 0 and rundir.status(out) == "complete"
    p = _popen([*TINY, "horizon=240s", "seed=1", f"hydra.run.dir={out}"])
    _wait_for(lambda: list(out.glob("videos/*.partial.mp4")), p)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert p.returncode == code
    assert rundir.status(out) == status
    assert not (out / "videos" / "p000s0.mp4").exists()          # the old video is gone too
    if status == "interrupted":
        assert [line for line in err.splitlines() if not line.startswith("[")] == \
            [f"interrupted: {out} (marked interrupted)"]
        assert "seed: 1" in (out / "config.yaml").read_text()
    report = io.StringIO()
    assert len(collect_mod.collect([tmp_path], report=report)) == 0
    assert status in report.getvalue()


def test_failure_writes_a_failed_record_and_the_log(tmp_path, monkeypatch):
    """Any exception mid-run: failed marker, one-line reason, traceback in run.log, exit code 1."""
    from hydra import compose, initialize_config_dir
    from tethercache import job
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "horizon=5s"])

    def boom(*a, **k):
        raise RuntimeError("disk full\nsecond line")
    monkeypatch.setattr("tethercache.runner.Mp4Writer.write", boom)
    out = tmp_path / "run"
    assert job.run_job(cfg, out, {}) == 1
    rec = rundir.read_record(out)
    assert rec["status"] == "failed" and rec["reason"] == "RuntimeError: disk full"
    assert "second line" in (out / "run.log").read_text()


def test_record_is_written_last_and_atomically(tmp_path, monkeypatch):
    """metrics/videos exist before record.json; the write goes through a tmp file + os.replace."""
    from hydra import compose, initialize_config_dir
    from tethercache.runner import execute
    seen = []
    real = os.replace

    def spy(src, dst):
        seen.append((Path(src).name, Path(dst).name, sorted(p.name for p in Path(dst).parent.iterdir())))
        return real(src, dst)
    monkeypatch.setattr(os, "replace", spy)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "horizon=5s"])
    execute(cfg, tmp_path / "run", {})
    src, dst, present = seen[-1]
    assert dst == "record.json" and src.endswith(".tmp") and "record.json" not in present
    assert {"videos", "timelines", "config.yaml"} <= set(present)
