"""One score file per video: eval/<evaluator>/scores/<id>.json, written atomically.

    {"video": id, "source": [mp4 size, mp4 mtime_ns], "config": <eval fingerprint>,
     "scores": {"full": VideoScores, <prefix>: VideoScores}}   or  {..., "invalid": reason}

An entry is stale (rescored) when the mp4 or the eval config changed. A file that is not such an
entry was not written by this tool: `read` raises CorruptScoreFile naming it, and the run is
refused (the user decides: delete it, or rescore with force).
"""
from __future__ import annotations

import json
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..rundir import write_json      # atomic
from .schema import VideoScores

EVAL_DIR = "eval"
# Eval keys that say where or how a job runs, not what it computes: shard jobs on different nodes
# (other paths, other env vars) still share each other's score files.
NOT_SCORE_KEYS = ("shard", "num_shards", "python", "cache_dir", "timeout_s")


class CorruptScoreFile(ConfigError):
    """A score file that is not one of ours."""


def eval_fingerprint(ecfg) -> dict:
    """The eval config that changes scores."""
    c = OmegaConf.to_container(ecfg, resolve=True) if OmegaConf.is_config(ecfg) else dict(ecfg)
    return {k: v for k, v in c.items() if k not in NOT_SCORE_KEYS}


def source(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _parse(vid: str, entry) -> dict:
    """The entry with its VideoScores parsed, or ValueError saying what is wrong."""
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    if entry.get("video") != vid:
        raise ValueError(f"names video {entry.get('video')!r}, not {vid!r}")
    if not isinstance(entry.get("source"), list) or not isinstance(entry.get("config"), dict):
        raise ValueError("lacks source / config")
    if "invalid" in entry:
        if not isinstance(entry["invalid"], str):
            raise ValueError("invalid reason is not a string")
        return entry
    scores = entry.get("scores")
    if not isinstance(scores, dict) or "full" not in scores:
        raise ValueError("has neither scores.full nor invalid")
    try:
        parsed = {k: VideoScores.from_dict(d) for k, d in scores.items()}
    except (TypeError, KeyError, AttributeError) as e:
        raise ValueError(f"scores not in the score schema ({type(e).__name__}: {e})") from None
    return {**entry, "scores": parsed}


class ScoreStore:
    def __init__(self, run_dir: Path, name: str, ecfg):
        self.run_dir, self.name = Path(run_dir), name
        self.dir = self.run_dir / EVAL_DIR / name
        self.fingerprint = eval_fingerprint(ecfg)

    def path(self, vid: str) -> Path:
        return self.dir / "scores" / f"{vid}.json"     # not "videos/": that marks a run dir

    def read(self, vid: str) -> dict | None:
        """The stored entry (scores parsed), None if absent; CorruptScoreFile if not ours."""
        p = self.path(vid)
        try:
            return _parse(vid, json.loads(p.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError, OSError) as e:   # JSONDecodeError is a ValueError
            what = "not valid JSON" if isinstance(e, json.JSONDecodeError) else str(e)
            raise CorruptScoreFile(f"{p}: corrupt score file ({what}); delete it, or rescore with "
                                   "force=true") from None

    def load(self, sample: dict) -> dict | None:
        """The stored entry, or None if absent or stale (mp4 or eval config changed)."""
        entry = self.read(sample["id"])
        fresh = entry is not None and (entry["source"] == source(self.run_dir / sample["video"])
                                       and entry["config"] == self.fingerprint)
        return entry if fresh else None

    def save(self, sample: dict, result: dict) -> None:
        entry = {"video": sample["id"], "source": source(self.run_dir / sample["video"]),
                 "config": self.fingerprint}
        if "invalid" in result:
            entry["invalid"] = result["invalid"]
        else:
            entry["scores"] = {k: v.to_dict() for k, v in result.items()}
        self.path(sample["id"]).parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path(sample["id"]), entry)
