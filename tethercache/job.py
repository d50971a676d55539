"""One Hydra job around `runner.execute`: exit codes, one-line messages, failure markers, resume.

    0    complete (or, in a sweep, skipped: its dir already holds a complete run of this config)
    1    the run failed: record.json {"status": "failed", "reason": <one line>}, traceback in run.log
    2    bad input (ConfigError / CheckpointError): one line naming the key; nothing is left behind
    130  interrupted (SIGINT / SIGTERM): record.json {"status": "interrupted"}

In a single run these are the process exit code; in a sweep each job returns its code and the
sweep goes on (tethercache/sweep.py prints the summary).
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

from omegaconf import OmegaConf

from . import rundir
from .errors import ConfigError
from .model.loading import CheckpointError

BAD_INPUT = (ConfigError, CheckpointError)
IGNORED_FOR_RESUME = ("progress", "resume", "reuse_backbone", "validate_only")


def _comparable(config: dict) -> dict:
    return {k: v for k, v in config.items() if k not in IGNORED_FOR_RESUME}


def already_complete(cfg, run_dir: Path) -> bool:
    """The dir holds a complete run of exactly this (resolved) config."""
    rec = rundir.read_record(run_dir)
    if not rec or rec.get("status") != "complete":
        return False
    return _comparable(rec.get("config") or {}) == _comparable(OmegaConf.to_container(cfg, resolve=True))


def validation_error(cfg) -> str | None:
    """None if `cfg` is valid, else the one-line message that follows `error: `."""
    from .validation import validate
    try:
        validate(cfg)
    except ConfigError as e:
        return str(e)
    except Exception as e:                    # noqa: BLE001 - any other refusal is bad input too
        return f"invalid config: {rundir.one_line(e)}"
    return None


def run_job(cfg, run_dir: Path, choices: dict, sweep: bool = False) -> int:
    from .runner import execute
    run_dir = Path(run_dir)
    err = validation_error(cfg)
    if err:                                   # nothing of ours touched yet: an old run stays intact
        print(f"error: {err}", file=sys.stderr)
        _remove_if_empty(run_dir)
        return 2
    if cfg.get("validate_only"):
        print(f"config ok (validate_only: nothing run): {' '.join(_overrides())}")
        _remove_if_empty(run_dir)
        return 0
    try:
        with rundir.signals_interrupt():
            if sweep and cfg.get("resume", True) and already_complete(cfg, run_dir):
                print(f"skipped (already complete): {run_dir}")
                return 0
            execute(cfg, run_dir, choices=choices)
    except BAD_INPUT as e:                    # e.g. an unreadable checkpoint, found while loading
        msg = str(e).splitlines()[0]
        print(f"error: {'backbone.weights: ' if isinstance(e, CheckpointError) else ''}{msg}",
              file=sys.stderr)
        # A record is an old run not yet touched (the weights load before the dir is taken
        # over) or this run's complete one: either stays. Other outputs are marked, never bare.
        if not _remove_if_empty(run_dir) and rundir.read_record(run_dir) is None:
            rundir.fail(run_dir, e)
        return 2
    except KeyboardInterrupt as e:
        rundir.fail(run_dir, e)
        print(f"interrupted: {run_dir} (marked interrupted)", file=sys.stderr)
        if sweep:
            raise                     # Ctrl-C stops the whole sweep (run.py exits 130)
        return 130
    except Exception as e:            # noqa: BLE001 - any failure is recorded, not lost
        reason = rundir.fail(run_dir, e)
        print(f"error: run failed: {reason} (traceback: {run_dir / 'run.log'})", file=sys.stderr)
        return 1
    print(f"run complete: {run_dir}")
    return 0


def _overrides() -> list[str]:
    from hydra.core.hydra_config import HydraConfig
    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def _remove_if_empty(run_dir: Path) -> bool:
    """Remove a dir holding only Hydra's bookkeeping: nothing that looks like a run is left.
    In a dir that holds a run, only the empty log Hydra's file handler opened goes."""
    log_file = run_dir / "run.log"
    if log_file.is_file() and log_file.stat().st_size == 0:
        log_file.unlink()
    if rundir.only_bookkeeping(run_dir):
        shutil.rmtree(run_dir, ignore_errors=True)
        return True
    return not run_dir.exists()
