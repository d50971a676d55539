"""Multirun sweeps: every job validated before the first runs, a bad job does not stop
the others, an end-of-sweep summary, resume after SIGKILL identical to an uninterrupted sweep."""
import os
import signal
import subprocess
import sys
import time

from conftest import ROOT, run_cli
from tethercache import rundir

SWEEP = ["-m", "backbone=tiny", "eval=none", "cache=window", "progress=false"]


def test_bad_middle_job_is_reported_up_front_and_the_others_complete(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli([*SWEEP, "horizon=5s", "cache.budget=21,abc,12", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 2, r.stderr[-2000:]
    err = r.stderr
    first = err.index("error: job 1 (")
    assert "cache.budget=abc): cache.budget='abc': must be a whole number" in err[first:].splitlines()[0]
    assert first < err.index("sweep: 3 jobs validated, 1 invalid") < err.index(
        "\nerror: cache.budget='abc'")                              # before any job ran
    assert rundir.status(sweep / "0-tiny-window-5s") == "complete"
    assert rundir.status(sweep / "2-tiny-window-5s") == "complete"
    assert not (sweep / "1-tiny-window-5s").exists()               # nothing that looks like a run
    summary = err[err.index("sweep summary"):]
    assert "completed 2:" in summary and "invalid 1:" in summary and "cache.budget=abc" in summary
    assert str(sweep / "0-tiny-window-5s") in summary


def test_failing_job_does_not_stop_the_sweep(tmp_path):
    """A job that fails at run time (NaN weights: non-finite latents) between two good ones."""
    import torch
    from safetensors.torch import save_file
    from tethercache.model.wan import SIZES, CausalWan
    nan = tmp_path / "nan.safetensors"
    save_file({k: torch.full_like(v, float("nan"))
               for k, v in CausalWan(SIZES["tiny"]).net.state_dict().items()}, str(nan))
    sweep = tmp_path / "sweep"
    r = run_cli([*SWEEP, "horizon=5s", f"backbone.weights=null,{nan}", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 1, r.stderr[-2000:]
    assert rundir.status(sweep / "0-tiny-window-5s") == "complete"
    assert rundir.status(sweep / "1-tiny-window-5s") == "failed"
    summary = r.stderr[r.stderr.index("sweep summary"):]
    assert "completed 1:" in summary and "failed 1:" in summary and "non-finite" in summary


def test_validate_only_sweep_runs_nothing(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli([*SWEEP, "validate_only=true", "cache.budget=21,2", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 2 and "job 1 (" in r.stderr and "cache.budget" in r.stderr
    assert not sweep.exists()
    r = run_cli([*SWEEP, "validate_only=true", "cache.budget=21,12", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 0 and "2 jobs validated, 0 invalid" in r.stderr and not sweep.exists()


def _files(sweep):
    return {p.relative_to(sweep): p.read_bytes() for p in sorted(sweep.glob("*/videos/*.mp4"))} | \
           {p.relative_to(sweep): p.read_bytes() for p in sorted(sweep.glob("*/timelines/*.npz"))}


def test_sweep_killed_with_sigkill_resumes_only_unfinished_jobs_identically(tmp_path):
    args = [*SWEEP, "horizon=30s", "cache.budget=21,15,12"]
    ref = tmp_path / "ref"
    r = run_cli([*args, f"hydra.sweep.dir={ref}"])
    assert r.returncode == 0, r.stderr[-2000:]

    sweep = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    p = subprocess.Popen([sys.executable, "run.py", *args, f"hydra.sweep.dir={sweep}"], cwd=ROOT,
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while not list(sweep.glob("1-*/videos/*.partial.mp4")):         # job 1 is mid-generation
        assert p.poll() is None and time.time() - t0 < 120
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert rundir.status(sweep / "0-tiny-window-30s") == "complete"
    assert rundir.status(sweep / "1-tiny-window-30s") == "unfinished"
    first_record = (sweep / "0-tiny-window-30s" / "record.json").read_bytes()

    r = run_cli([*args, f"hydra.sweep.dir={sweep}"])                  # resume: the same command
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"skipped (already complete): {sweep / '0-tiny-window-30s'}" in r.stdout
    assert (sweep / "0-tiny-window-30s" / "record.json").read_bytes() == first_record   # not redone
    summary = r.stderr[r.stderr.index("sweep summary"):]
    assert "skipped 1:" in summary and "completed 2:" in summary
    assert _files(sweep) == _files(ref) and len(_files(ref)) == 6
    assert not list(sweep.rglob("*.partial.mp4"))


def test_every_shipped_experiment_sweep_validates_job_by_job():
    """The same expansion and check the sweep callback runs before a sweep's first job."""
    from hydra import compose, initialize_config_dir
    from tethercache.sweep import expand_jobs, validate_job
    for exp in sorted((ROOT / "conf" / "experiment").glob("*.yaml")):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[f"experiment={exp.stem}"], return_hydra_config=True)
            jobs = expand_jobs(cfg)
            assert jobs and len(jobs) > 1, exp.stem
            errors = [e for e in (validate_job("config", job) for job in jobs) if e]
            if cfg.backbone.name == "self_forcing":   # real weights and prompts are the user's paths
                user_paths = "backbone.weights, backbone.wan_dir, prompts.file: required, not set"
                errors = [e for e in errors if not e.startswith(user_paths)]
        assert not errors, (exp.stem, errors)
