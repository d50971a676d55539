"""What must hold in a run dir before any of it is scored; each failure is one NotFinished line
naming the path and what is wrong, and the run is refused (or skipped and listed).

- record.json: valid JSON, an object, status complete, with a `config` object and `samples`, each
  {id, video, prompt, seed} with a unique file-safe id and a video path inside the run dir;
- no *.partial.mp4, every listed mp4 present, and the ones to be scored readable (an empty or
  random-bytes file is refused, not scored as an "invalid" video: it is not what the run wrote);
- the dirs the evaluation writes to are writable.
Timelines (timelines/*.npz) are not read by any evaluator, so they are not checked here.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import ConfigError
from .video_checks import unreadable_reason

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")     # usable as a file name
SAMPLE_FIELDS = {"id": str, "video": str, "prompt": str, "seed": int}


class NotFinished(ConfigError):
    """A run dir that must not be scored: unfinished, corrupt, or not a run of ours."""


def _sample_problem(k: int, s, run_dir: Path) -> str | None:
    if not isinstance(s, dict):
        return f"samples[{k}] is not an object"
    for key, kind in SAMPLE_FIELDS.items():
        if not isinstance(s.get(key), kind) or isinstance(s.get(key), bool):
            return f"samples[{k}].{key}={s.get(key)!r}: must be a {kind.__name__}"
    if not SAFE_ID.match(s["id"]):
        return f"samples[{k}].id={s['id']!r}: must be letters, digits, '.', '_' or '-'"
    video = (run_dir / s["video"]).resolve()
    if run_dir.resolve() not in video.parents:
        return f"samples[{k}].video={s['video']!r}: must be a path inside the run dir"
    return None


def load_finished(run_dir: Path) -> dict:
    """record.json of a run whose generation completed and whose record is whole, else NotFinished."""
    run_dir = Path(run_dir)
    rec_path = run_dir / "record.json"
    if not rec_path.is_file():
        raise NotFinished(f"{run_dir}: unfinished (no record.json: still running, or killed); not scored")
    try:
        rec = json.loads(rec_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise NotFinished(f"{rec_path}: not valid JSON (truncated or foreign); not scored") from None
    if not isinstance(rec, dict):
        raise NotFinished(f"{rec_path}: not a JSON object ({type(rec).__name__}); not scored")
    if rec.get("status") != "complete":
        why = f" ({rec['reason']})" if rec.get("reason") else ""
        raise NotFinished(f"{run_dir}: status {rec.get('status')!r}{why}; only complete runs are scored")
    if not isinstance(rec.get("config"), dict):
        raise NotFinished(f"{rec_path}: says complete but has no config object; not scored")
    samples = rec.get("samples")
    if not isinstance(samples, list) or not samples:
        raise NotFinished(f"{rec_path}: says complete but lists no samples; not scored")
    for k, s in enumerate(samples):
        problem = _sample_problem(k, s, run_dir)
        if problem:
            raise NotFinished(f"{rec_path}: {problem}; not scored")
    ids = [s["id"] for s in samples]
    dup = next((v for v in ids if ids.count(v) > 1), None)
    if dup:
        raise NotFinished(f"{rec_path}: sample id {dup!r} listed twice; not scored")
    partial = sorted(p.name for p in (run_dir / "videos").glob("*.partial.mp4"))
    if partial:
        raise NotFinished(f"{run_dir}: unfinished video videos/{partial[0]}; not scored")
    missing = [s["video"] for s in samples if not (run_dir / s["video"]).is_file()]
    if missing:
        raise NotFinished(f"{run_dir}: {missing[0]} is listed in record.json but missing; not scored")
    return rec


def check_videos(run_dir: Path, samples: list[dict]) -> None:
    """Every mp4 about to be scored opens and decodes (checked before the first is scored)."""
    for s in samples:
        reason = unreadable_reason(Path(run_dir) / s["video"])
        if reason:
            raise NotFinished(f"{Path(run_dir) / s['video']}: {reason}; not scored")


def check_writable(dirs) -> None:
    """The existing dirs among `dirs` accept new files (read-only mounts, permissions)."""
    for d in map(Path, dirs):
        if d.is_dir() and not os.access(d, os.W_OK | os.X_OK):
            raise NotFinished(f"{d}: not writable (scores and metrics are written there); not scored")
