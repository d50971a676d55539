"""Run-dir lifecycle: a run dir never looks more finished than the run was.

    start(run_dir)            invalidate the old outputs of any earlier run in the dir
    write_record(run_dir, r)  record.json, atomically (tmp + os.replace); written last
    fail(run_dir, exc, ...)   record.json with status failed | interrupted and a one-line reason;
                              the traceback goes to run.log, never to the console
    status(run_dir)           complete | failed | interrupted | unfinished (no record.json)

A dir without record.json is unfinished: still running, or killed by SIGKILL. Only "complete"
runs are analysed (analysis/collect.py lists the others). SIGTERM is turned into `Interrupted`
(a KeyboardInterrupt) by `signals_interrupt()`, so a scheduler's kill is recorded like Ctrl-C.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

RECORD = "record.json"
STATUSES = ("complete", "failed", "interrupted", "unfinished")
# Outputs of an earlier run into the same dir: removed at start so none of them survives beside
# the new run's config (evaluator outputs included; the evaluation step rewrites its own).
STALE = (RECORD, "metrics.json", "clips.csv", "quality_over_time.png", "config.yaml",
         "videos", "timelines")
BOOKKEEPING = (".hydra", "run.log")       # what Hydra writes before our code runs

log = logging.getLogger("tethercache.run")


class Interrupted(KeyboardInterrupt):
    """SIGINT / SIGTERM: the run stops, its dir is marked interrupted."""


def _register_resolvers() -> None:
    # ${pid:} in the default run dir: two runs started in the same second (same machine) still
    # get two dirs. Cached, so every read of hydra.run.dir in one process gives the same path.
    if not OmegaConf.has_resolver("pid"):
        OmegaConf.register_new_resolver("pid", lambda: os.getpid(), use_cache=True)


_register_resolvers()


def write_json(path: Path, obj) -> None:
    """Atomic: readers see the old file or the whole new one, never a partial one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def start(run_dir: Path) -> None:
    """Invalidate any earlier run's outputs, so a new run never sits beside an old record."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in STALE:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)
    log.info("run dir %s (host %s, pid %d)", run_dir, socket.gethostname(), os.getpid())


def write_record(run_dir: Path, record: dict) -> None:
    write_json(Path(run_dir) / RECORD, {**record, "finished_at": time.time()})


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def fail(run_dir: Path, exc: BaseException, extra: dict | None = None) -> str:
    """Mark the run failed (or interrupted); return the one-line reason. Traceback -> run.log."""
    interrupted = isinstance(exc, KeyboardInterrupt)
    reason = f"interrupted ({exc.args[0] if exc.args else 'SIGINT'})" if interrupted else one_line(exc)
    with open(Path(run_dir) / "run.log", "a") as f:
        f.write(f"\n[{time.strftime('%Y-%m-%d %H:%M:%S')}] run {'interrupted' if interrupted else 'failed'}: "
                f"{reason}\n")
        if not interrupted:
            f.write("".join(traceback.format_exception(exc)))
    write_record(run_dir, {**(extra or {}), "status": "interrupted" if interrupted else "failed",
                           "reason": reason})
    return reason


def read_record(run_dir: Path) -> dict | None:
    try:
        return json.loads((Path(run_dir) / RECORD).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def status(run_dir: Path) -> str:
    rec = read_record(run_dir)
    s = (rec or {}).get("status")
    return s if s in STATUSES else "unfinished"


def only_bookkeeping(run_dir: Path) -> bool:
    """True when nothing but Hydra's own files is in the dir (nothing that looks like a run)."""
    return run_dir.is_dir() and all(p.name in BOOKKEEPING for p in run_dir.iterdir())


@contextmanager
def signals_interrupt():
    """SIGTERM raises `Interrupted` in the main thread for the duration (SIGINT already does)."""
    def handler(signum, _frame):
        raise Interrupted(signal.Signals(signum).name)
    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)
