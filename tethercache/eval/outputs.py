"""Merged outputs (metrics.json, clips.csv, plots) replace the old ones only once written completely.

`staged(evaluator_dir)` gives an empty hidden dir beside the score files; the merge writes its whole
set there (the evaluator's `summarize` writes its files, then metrics.json). `publish` then moves
each file over the old one with os.replace (atomic per file), metrics.json last: a reader that
sees the new metrics.json sees the new clips.csv and plot too. A failure before `publish` leaves
the old complete outputs untouched, byte for byte, and removes the staging dir.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

MARKER = "metrics.json"       # what makes a run look scored: moved last


@contextmanager
def atomic(path: Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def staged(evaluator_dir: Path):
    stage = Path(evaluator_dir) / f".merge-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def publish(stage: Path, run_dir: Path, evaluator_dir: Path) -> None:
    """Move the staged set into the run dir (metrics.json last); the evaluator's own copy of
    metrics.json goes to evaluator_dir first."""
    files = sorted(p for p in stage.iterdir() if p.is_file() and p.name != MARKER)
    for p in files:
        os.replace(p, Path(run_dir) / p.name)
    with atomic(Path(evaluator_dir) / MARKER) as tmp:
        shutil.copyfile(stage / MARKER, tmp)
    os.replace(stage / MARKER, Path(run_dir) / MARKER)
