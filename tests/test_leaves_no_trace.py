"""validate_only and bad input (exit 2) write nothing: no new dir for a fresh run dir, and every
file of an existing run dir (Hydra's `.hydra/` included) byte-identical, single runs and `-m`
sweeps alike. A valid run still writes `.hydra/` (config, hydra, overrides)."""
import hashlib
import os
import subprocess
import sys

import pytest

from conftest import ROOT, run_cli
from tethercache import rundir

TINY = ["backbone=tiny", "eval=none", "cache=window", "horizon=5s", "progress=false"]


def snapshot(root):
    """Every path under `root` with its content's checksum (dirs: None)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file()
            else None for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def complete_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("complete") / "run"
    r = run_cli([*TINY, f"hydra.run.dir={out}"])
    assert r.returncode == 0 and rundir.status(out) == "complete", r.stderr[-2000:]
    assert {".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml"} <= set(snapshot(out))
    return out


@pytest.mark.parametrize("args,code", [
    (["validate_only=true", "seed=4"], 0),          # a valid config that differs from the run's
    (["validate_only=true", "seed=abc"], 2),
    (["seed=abc"], 2),
    (["cache.budget=2"], 2),
    (["prompts=file", "prompts.file=/nonexistent/prompts.txt"], 2),
    (["backbone.weights=@CORRUPT"], 2),             # found only while loading the weights
])
def test_existing_run_dir_is_byte_identical(complete_run, args, code, tmp_path):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    before = snapshot(complete_run)
    r = run_cli([*TINY, *[a.replace("@CORRUPT", str(corrupt)) for a in args],
                 f"hydra.run.dir={complete_run}"])
    assert r.returncode == code, r.stderr[-2000:]
    assert snapshot(complete_run) == before


@pytest.mark.parametrize("args,code", [(["validate_only=true"], 0), (["seed=abc"], 2),
                                       (["validate_only=true", "seed=abc"], 2),
                                       (["cache.budget=1000000000"], 2),     # too large to allocate
                                       (["prompts.texts=hello"], 2)])
def test_fresh_run_dir_is_never_created(tmp_path, args, code):
    r = run_cli([*TINY, *args, f"hydra.run.dir={tmp_path / 'a' / 'b' / 'run'}"])
    assert r.returncode == code, r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_default_run_dir_is_never_created(tmp_path):
    """The default dir (outputs/runs/<date>/...) under the working dir: not even outputs/."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "0",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for args, code in ((["validate_only=true"], 0), (["seed=abc"], 2)):
        r = subprocess.run([sys.executable, str(ROOT / "run.py"), *TINY, *args], cwd=tmp_path,
                           env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == code, r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_sweep_validate_only_and_invalid_job_leave_existing_job_dirs_identical(tmp_path):
    sweep = tmp_path / "sweep"
    r = run_cli(["-m", *TINY, "seed=0,1", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 0, r.stderr[-2000:]
    before = snapshot(sweep)
    r = run_cli(["-m", *TINY, "validate_only=true", "seed=5,6", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 0 and snapshot(sweep) == before, r.stderr[-2000:]
    r = run_cli(["-m", *TINY, "validate_only=true", "seed=0,abc", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 2 and snapshot(sweep) == before, r.stderr[-2000:]
    # A real sweep: job 0 is skipped (complete, same config), job 1 is invalid; neither dir changes.
    job_dirs = {k: v for k, v in before.items() if not k.startswith("multirun.yaml")}
    r = run_cli(["-m", *TINY, "seed=0,abc", f"hydra.sweep.dir={sweep}"])
    assert r.returncode == 2, r.stderr[-2000:]
    assert "skipped 1:" in r.stderr and "invalid 1:" in r.stderr
    assert {k: v for k, v in snapshot(sweep).items() if not k.startswith("multirun.yaml")} == job_dirs
