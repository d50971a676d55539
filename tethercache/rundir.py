"""Run-dir lifecycle: a run dir never looks more finished than the run was.

    start(run_dir)            invalidate the old outputs of any earlier run in the dir
    write_record(run_dir, r)  record.json, atomically (tmp + os.replace); written last
    fail(run_dir, exc, ...)   record.json with status failed | interrupted and a one-line reason;
                              the traceback goes to run.log, never to the console
    status(run_dir)           complete | failed | interrupted | unfinished (no record.json)
    run_state(run_dir)        the status with its one-line reason and the record: what analysis
                              reads (a record.json that cannot be trusted is "corrupt")

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
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

RECORD = "record.json"
STATUSES = ("complete", "failed", "interrupted", "unfinished")
# Outputs of an earlier run into the same dir: removed at start so none of them survives beside
# the new run's config (evaluator outputs included; the evaluation step rewrites its own).
STALE = (RECORD, "metrics.json", "clips.csv", "quality_over_time.png", "config.yaml",
         "videos", "timelines", "eval")
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
    """record.json as a dict, or None when it is missing or cannot be trusted (see run_state)."""
    return run_state(run_dir).record


def status(run_dir: Path) -> str:
    """complete | failed | interrupted | unfinished (a corrupt record counts as unfinished: the
    run must be redone)."""
    s = run_state(run_dir).status
    return s if s in STATUSES else "unfinished"


@dataclass(frozen=True)
class RunState:
    run_dir: Path
    status: str              # one of STATUSES, or "corrupt"
    reason: str              # one line; names the file and what is wrong when corrupt
    record: dict | None      # the parsed record.json (None when missing or corrupt)


def run_state(run_dir: Path) -> RunState:
    """The one reader of a run dir's status: what record.json says, checked."""
    run_dir = Path(run_dir)
    path = run_dir / RECORD
    if not path.exists():
        return RunState(run_dir, "unfinished", "no record.json (still running, or killed)", None)
    try:
        rec = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return RunState(run_dir, "corrupt", f"{RECORD}: not valid JSON ({one_line(e)})", None)
    if not isinstance(rec, dict):
        return RunState(run_dir, "corrupt", f"{RECORD}: not a JSON object", None)
    state = rec.get("status")
    if state == "complete":
        problem = _incomplete(rec)
        if problem:
            return RunState(run_dir, "corrupt", f"{RECORD}: status complete, but {problem}", None)
        return RunState(run_dir, "complete", "", rec)
    if state in ("failed", "interrupted"):
        return RunState(run_dir, state, str(rec.get("reason") or "no reason recorded"), rec)
    return RunState(run_dir, "unfinished", f"{RECORD}: status {state!r}", rec)


def _incomplete(rec: dict) -> str:
    """What a complete record lacks to name its videos ('' when nothing)."""
    if not isinstance(rec.get("samples"), list):
        return "'samples' is missing or not a list"
    for i, s in enumerate(rec["samples"]):
        if not isinstance(s, dict) or not isinstance(s.get("id"), str):
            return f"samples[{i}] has no video id"
    return ""


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


def write_hydra_dir(cfg, run_dir: Path) -> None:
    """`.hydra/` (config.yaml, and inside a Hydra job hydra.yaml, overrides.yaml), as Hydra writes
    it; conf/config.yaml turns Hydra's own writing off, so only a run that really starts has it."""
    from hydra.core.hydra_config import HydraConfig
    out = Path(run_dir) / ".hydra"
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.instance().cfg
        (out / "hydra.yaml").write_text(OmegaConf.to_yaml(hydra_cfg))
        (out / "overrides.yaml").write_text(OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task))


RUN_MARKERS = ("record.json", "videos", ".hydra")


def root_problem(root) -> str | None:
    """What is wrong with a path given as a run dir or a dir of runs (one line), or None."""
    root = Path(root)
    if not root.exists():
        return f"{root}: no such directory"
    if not root.is_dir():
        return f"{root}: is a file, not a run dir or a dir of runs"
    return None


def run_dirs_under(root) -> list[Path]:
    """Run dirs at or below `root`, sorted: a dir holding record.json, videos/ or .hydra/. A run's
    own subdirs (e.g. an evaluator's eval/<name>/ with its video links) are not runs of their own."""
    root = Path(root)
    if any((root / m).exists() for m in RUN_MARKERS):
        return [root]
    found = {q.parent for m in RUN_MARKERS for q in root.rglob(m)}
    return sorted(d for d in found if not any(a in found for a in d.parents))
