"""Evaluation as its own step on finished run dirs: refuse unfinished ones, score a shard of the
videos, keep one score file per video (idempotent: re-running skips what is scored), and merge
into metrics.json once every video of the run is scored.

Layout inside a run dir (beside videos/, timelines/, record.json):
    eval/<evaluator>/scores/<id>.json   one video's scores (or {"invalid": reason}), written
                                        atomically; stale when the mp4 or the eval config changed
    eval/<evaluator>/metrics.json       the merged metrics of that evaluator
    metrics.json, clips.csv, ...        the same merge at the top level (what analysis reads;
                                        the evaluator merged last wins)
A run with videos that are not all scored has no merged metrics for that evaluator: it is
"unscored", and the merge names the missing videos by shard.
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..rundir import write_json      # atomic
from . import registry
from .schema import VideoScores

EVAL_DIR = "eval"
# Eval keys that say where or how a job runs, not what it computes: shard jobs on different nodes
# (other paths, other env vars) still share each other's score files.
NOT_SCORE_KEYS = ("shard", "num_shards", "python", "cache_dir", "timeout_s")


class NotFinished(ConfigError):
    """A run dir that must not be scored (yet)."""


# ---- files ------------------------------------------------------------------------------------
@contextmanager
def atomic(path: Path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# ---- which runs and videos --------------------------------------------------------------------
def load_finished(run_dir: Path) -> dict:
    """record.json of a run whose generation completed, else NotFinished naming why."""
    rec_path = run_dir / "record.json"
    if not rec_path.is_file():
        raise NotFinished(f"{run_dir}: unfinished (no record.json: still running, or killed); not scored")
    try:
        rec = json.loads(rec_path.read_text())
    except json.JSONDecodeError:
        raise NotFinished(f"{run_dir}: record.json is not valid JSON; not scored") from None
    if rec.get("status") != "complete":
        why = f" ({rec['reason']})" if rec.get("reason") else ""
        raise NotFinished(f"{run_dir}: status {rec.get('status')!r}{why}; only complete runs are scored")
    partial = sorted(p.name for p in (run_dir / "videos").glob("*.partial.mp4"))
    if partial:
        raise NotFinished(f"{run_dir}: unfinished video videos/{partial[0]}; not scored")
    missing = [s["video"] for s in rec.get("samples", []) if not (run_dir / s["video"]).is_file()]
    if missing:
        raise NotFinished(f"{run_dir}: {missing[0]} is listed in record.json but missing; not scored")
    return rec


def check_shard(ecfg) -> None:
    n, i = ecfg.get("num_shards", 1), ecfg.get("shard", 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"eval.num_shards={n}: must be an integer >= 1")
    if not isinstance(i, int) or isinstance(i, bool) or not 0 <= i < n:
        raise ConfigError(f"eval.shard={i}: must be an integer in [0, {n - 1}] (eval.num_shards={n})")


def shard_of(ids, num_shards: int) -> dict[str, int]:
    """Deterministic round-robin over the sorted ids (prompts spread over all shards)."""
    return {vid: k % num_shards for k, vid in enumerate(sorted(ids))}


def shard_ids(ids, shard: int, num_shards: int) -> list[str]:
    return [vid for vid, s in shard_of(ids, num_shards).items() if s == shard]


# ---- one video's stored scores ----------------------------------------------------------------
def eval_fingerprint(ecfg) -> dict:
    """The eval config that changes scores."""
    c = OmegaConf.to_container(ecfg, resolve=True) if OmegaConf.is_config(ecfg) else dict(ecfg)
    return {k: v for k, v in c.items() if k not in NOT_SCORE_KEYS}


def _source(path: Path) -> list:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


class ScoreStore:
    def __init__(self, run_dir: Path, name: str, ecfg):
        self.run_dir, self.name = run_dir, name
        self.dir = run_dir / EVAL_DIR / name
        self.fingerprint = eval_fingerprint(ecfg)

    def path(self, vid: str) -> Path:
        return self.dir / "scores" / f"{vid}.json"     # not "videos/": that marks a run dir

    def load(self, sample: dict) -> dict | None:
        """The stored entry, or None if absent or stale (mp4 or eval config changed)."""
        p = self.path(sample["id"])
        try:
            entry = json.loads(p.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        fresh = (entry.get("source") == _source(self.run_dir / sample["video"])
                 and entry.get("config") == self.fingerprint)
        return entry if fresh else None

    def save(self, sample: dict, result: dict) -> None:
        entry = {"video": sample["id"], "source": _source(self.run_dir / sample["video"]),
                 "config": self.fingerprint}
        if "invalid" in result:
            entry["invalid"] = result["invalid"]
        else:
            entry["scores"] = {k: v.to_dict() for k, v in result.items()}
        self.path(sample["id"]).parent.mkdir(parents=True, exist_ok=True)
        write_json(self.path(sample["id"]), entry)

    def forget(self, samples) -> None:
        for s in samples:
            self.path(s["id"]).unlink(missing_ok=True)
        self.drop_merged()

    def drop_merged(self) -> None:
        """Remove merged metrics of this evaluator (the run becomes unscored for it)."""
        (self.dir / "metrics.json").unlink(missing_ok=True)
        top = self.run_dir / "metrics.json"
        try:
            if json.loads(top.read_text()).get("evaluator") == self.name:
                top.unlink()
        except (FileNotFoundError, json.JSONDecodeError):
            pass


# ---- driver -----------------------------------------------------------------------------------
def run_config(rec: dict, ecfg=None):
    """The run's own config, with `ecfg` as its eval section when given."""
    cfg = OmegaConf.create(rec.get("config") or {})
    if ecfg is not None:
        cfg.eval = ecfg
    if "eval" not in cfg or cfg.eval is None:
        cfg.eval = {"name": "none"}
    return cfg


def evaluate_run(run_dir, ecfg=None, *, force: bool = False, log: Callable = print) -> dict | None:
    """Score this job's shard of a finished run dir and merge if every video is scored.
    `ecfg`: the eval config (default: the run's own). Returns the merged metrics, or None while
    videos are unscored (reported through `log`)."""
    run_dir = Path(run_dir)
    rec = load_finished(run_dir)
    cfg = run_config(rec, ecfg)
    if cfg.eval.name == "none":
        raise ConfigError(f"{run_dir}: no evaluator (the run has eval=none): pass eval=toy or eval=vbench_long")
    registry.check_evaluator(cfg)
    evaluator = registry.build_evaluator(cfg)
    name = cfg.eval.name
    store = ScoreStore(run_dir, name, cfg.eval)
    samples = {s["id"]: s for s in rec.get("samples", [])}
    shard, n = cfg.eval.get("shard", 0), cfg.eval.get("num_shards", 1)
    mine = [samples[v] for v in shard_ids(samples, shard, n)]
    if force:
        store.forget(mine)
    todo = [s for s in mine if store.load(s) is None]
    if todo:
        store.drop_merged()                    # some videos change: the old merge is stale
        log(f"{run_dir}: eval={name} shard {shard}/{n}: scoring {len(todo)} of {len(mine)} videos")
        for vid, result in evaluator.score(run_dir, todo, cfg):
            store.save(samples[vid], result)
    else:
        log(f"{run_dir}: eval={name} shard {shard}/{n}: "
            + (f"all {len(mine)} videos already scored" if mine else "no videos in this shard"))
    return merge(run_dir, evaluator, store, list(samples.values()), n, log)


def merge(run_dir: Path, evaluator, store: ScoreStore, samples: list[dict], num_shards: int,
          log: Callable = print) -> dict | None:
    entries = {s["id"]: store.load(s) for s in samples}
    missing = [v for v, e in entries.items() if e is None]
    if missing:
        store.drop_merged()
        log(f"{run_dir}: eval={store.name}: not merged, {len(missing)} of {len(entries)} videos "
            f"unscored: {describe_missing(entries, num_shards)}")
        return None
    scored = {v: {k: VideoScores.from_dict(d) for k, d in e["scores"].items()}
              for v, e in entries.items() if "scores" in e}
    invalid = [{"video": v, "reason": e["invalid"]} for v, e in entries.items() if "invalid" in e]
    for item in invalid:
        log(f"{run_dir}: {item['video']}: not scored ({item['reason']})")
    summary = evaluator.summarize(scored, run_dir) if scored else {"summary": {}, "videos": []}
    summary = {"evaluator": store.name, **summary, "invalid": invalid}
    store.dir.mkdir(parents=True, exist_ok=True)
    write_json(store.dir / "metrics.json", summary)
    write_json(run_dir / "metrics.json", summary)
    log(f"{run_dir}: eval={store.name}: merged {len(scored)} videos"
        + (f", {len(invalid)} invalid" if invalid else "") + " -> metrics.json")
    return summary


def describe_missing(entries: dict, num_shards: int) -> str:
    """'shard 1/4 not started (p001s0, p005s0); shard 2/4 half-scored, 1 of 3 missing (p002s0)'."""
    shards = shard_of(entries, num_shards)
    parts = []
    for k in range(num_shards):
        ids = sorted(v for v, s in shards.items() if s == k)
        miss = [v for v in ids if entries[v] is None]
        if not miss:
            continue
        state = "not started" if len(miss) == len(ids) else f"half-scored, {len(miss)} of {len(ids)} missing"
        parts.append(f"shard {k}/{num_shards} {state} ({', '.join(miss)})")
    return "; ".join(parts)


def find_run_dirs(paths) -> list[Path]:
    """Run dirs among `paths`: a dir with record.json, videos/ or .hydra/ is one; any other dir is
    searched below for them (e.g. a sweep dir)."""
    markers = ("record.json", "videos", ".hydra")
    out = []
    for p in map(Path, paths):
        if not p.is_dir():
            raise ConfigError(f"{p}: no such directory")
        if any((p / m).exists() for m in markers):
            out.append(p)
            continue
        found = {q.parent for m in markers for q in p.rglob(m)}
        found = sorted(d for d in found if not any(a in found for a in d.parents))  # not eval/x/videos
        if not found:
            raise ConfigError(f"{p}: no run dirs below (no record.json, videos/ or .hydra/)")
        out += found
    return out


def evaluate_paths(paths, ecfg=None, *, force: bool = False, skip_unfinished: bool = False,
                   log: Callable = print, err: Callable = print) -> int:
    """Score every run dir under `paths` (CLI and score.py). Unfinished runs are refused before
    anything is scored (exit status 2) unless `skip_unfinished`. Returns the exit status."""
    runs = find_run_dirs(paths)
    refused = {}
    for r in runs:
        try:
            load_finished(r)
        except NotFinished as e:
            refused[r] = str(e)
    for msg in refused.values():
        err(f"{'skipped' if skip_unfinished else 'error'}: {msg}")
    if refused and not skip_unfinished:
        return 2
    unmerged = sum(evaluate_run(r, ecfg, force=force, log=log) is None for r in runs if r not in refused)
    if unmerged:
        err(f"{unmerged} run(s) not merged yet (videos unscored, see above)")
    return 0
