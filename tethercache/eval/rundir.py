"""Evaluation as its own step on finished run dirs: check every run before any work, score a shard
of the videos, keep one score file per video (idempotent: re-running skips what is scored), and
merge once every video of the run is scored.

Layout inside a run dir (beside videos/, timelines/, record.json):
    eval/<evaluator>/scores/<id>.json   one video's scores (or {"invalid": reason}), written
                                        atomically; stale when the mp4 or the eval config changed
    eval/<evaluator>/metrics.json       the merged metrics of that evaluator
    metrics.json, clips.csv, ...        the same merge at the top level (what analysis reads;
                                        the evaluator merged last wins)
Nothing merged is ever deleted: a new merge replaces the old outputs only once it is written
completely (eval/outputs.py), so a failure or a half-rescored run keeps the previous complete
merge, and the log says the run is not merged yet, naming the missing videos by shard.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from ..errors import ConfigError
from ..rundir import one_line, root_problem, run_dirs_under, write_json
from . import registry
from .outputs import publish, staged
from .request import validate_request
from .run_checks import NotFinished, check_videos, check_writable, load_finished  # noqa: F401
from .score_files import EVAL_DIR, ScoreStore


# ---- which videos -----------------------------------------------------------------------------
def shard_of(ids, num_shards: int) -> dict[str, int]:
    """Deterministic round-robin over the sorted ids (prompts spread over all shards)."""
    return {vid: k % num_shards for k, vid in enumerate(sorted(ids))}


def shard_ids(ids, shard: int, num_shards: int) -> list[str]:
    return [vid for vid, s in shard_of(ids, num_shards).items() if s == shard]


def run_config(rec: dict, ecfg=None):
    """The run's own config, with `ecfg` as its eval section when given."""
    cfg = OmegaConf.create(rec.get("config") or {})
    if ecfg is not None:
        cfg.eval = ecfg
    if "eval" not in cfg or cfg.eval is None:
        cfg.eval = {"name": "none"}
    return cfg


# ---- one run ----------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """A run dir checked for scoring: what this job scores, and with what."""
    run_dir: Path
    cfg: object
    store: ScoreStore
    samples: dict[str, dict]
    todo: list[dict]
    mine: int
    shard: int
    num_shards: int


def plan_run(run_dir, ecfg=None, *, force: bool = False) -> RunPlan:
    """Every check of a run that needs no scoring; ConfigError (one line) if it cannot be scored."""
    run_dir = Path(run_dir)
    rec = load_finished(run_dir)
    cfg = run_config(rec, ecfg)
    if cfg.eval.name == "none":
        raise ConfigError(f"{run_dir}: no evaluator (the run has eval=none): pass eval=toy or eval=vbench_long")
    registry.check_evaluator(cfg)
    store = ScoreStore(run_dir, cfg.eval.name, cfg.eval)
    check_writable([run_dir, run_dir / EVAL_DIR, store.dir, store.dir / "scores"])
    samples = {s["id"]: s for s in rec["samples"]}
    shard, n = int(cfg.eval.get("shard", 0)), int(cfg.eval.get("num_shards", 1))
    mine = set(shard_ids(samples, shard, n))
    fresh = {v: None if force and v in mine else store.load(s) for v, s in samples.items()}  # corrupt: refused
    todo = [samples[v] for v in sorted(mine) if fresh[v] is None]
    check_videos(run_dir, todo)
    return RunPlan(run_dir, cfg, store, samples, todo, len(mine), shard, n)


def score_planned(plan: RunPlan, log: Callable = print) -> dict | None:
    """Score the plan's videos, then merge if every video of the run is scored."""
    evaluator = registry.build_evaluator(plan.cfg)
    head = f"{plan.run_dir}: eval={plan.store.name} shard {plan.shard}/{plan.num_shards}"
    if plan.todo:
        log(f"{head}: scoring {len(plan.todo)} of {plan.mine} videos")
        for vid, result in evaluator.score(plan.run_dir, plan.todo, plan.cfg):
            plan.store.save(plan.samples[vid], result)
    else:
        log(f"{head}: " + (f"all {plan.mine} videos already scored" if plan.mine else "no videos in this shard"))
    return merge(plan.run_dir, evaluator, plan.store, list(plan.samples.values()), plan.num_shards, log)


def evaluate_run(run_dir, ecfg=None, *, force: bool = False, log: Callable = print) -> dict | None:
    """Score this job's shard of a finished run dir and merge if every video is scored.
    `ecfg`: the eval config (default: the run's own). Returns the merged metrics, or None while
    videos are unscored (reported through `log`)."""
    return score_planned(plan_run(run_dir, ecfg, force=force), log)


def merge(run_dir: Path, evaluator, store: ScoreStore, samples: list[dict], num_shards: int,
          log: Callable = print) -> dict | None:
    entries = {s["id"]: store.load(s) for s in samples}
    missing = [v for v, e in entries.items() if e is None]
    if missing:
        kept = "; metrics.json keeps the previous complete merge" if (store.dir / "metrics.json").is_file() else ""
        log(f"{run_dir}: eval={store.name}: not merged, {len(missing)} of {len(entries)} videos "
            f"unscored: {describe_missing(entries, num_shards)}{kept}")
        return None
    scored = {v: e["scores"] for v, e in entries.items() if "scores" in e}
    invalid = [{"video": v, "reason": e["invalid"]} for v, e in entries.items() if "invalid" in e]
    for item in invalid:
        log(f"{run_dir}: {item['video']}: not scored ({item['reason']})")
    with staged(store.dir) as stage:
        summary = evaluator.summarize(scored, stage) if scored else {"summary": {}, "videos": []}
        summary = {"evaluator": store.name, **summary, "invalid": invalid}
        write_json(stage / "metrics.json", summary)
        publish(stage, run_dir, store.dir)
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


# ---- many runs --------------------------------------------------------------------------------
def find_run_dirs(paths, note: Callable = print) -> list[Path]:
    """Run dirs among `paths`: a dir with record.json, videos/ or .hydra/ is one; any other dir is
    searched below for them (e.g. a sweep dir). An empty dir holds no runs yet (noted)."""
    out = []
    for p in map(Path, paths):
        problem = root_problem(p)
        if problem:
            raise ConfigError(problem)
        if not any(p.iterdir()):
            note(f"note: {p}: empty dir, no runs in it yet")
            continue
        found = run_dirs_under(p)
        if not found:
            raise ConfigError(f"{p}: no run dirs below (no record.json, videos/ or .hydra/)")
        out += found
    return out


def run_request(args: dict, *, log: Callable = print, err: Callable = print) -> int:
    """The step behind both CLIs: validate `args` ({runs, eval, force, skip_unfinished}), check
    every run, then score. Exit status: 2 bad input or a refused run (nothing scored; with
    skip_unfinished the others are scored and 2 only if none could be), 1 scoring failed, else 0."""
    try:
        req = validate_request(args)
        notes = []
        runs = find_run_dirs(req.runs, note=notes.append)
    except ConfigError as e:
        err(f"error: {e}")
        return 2
    if not runs:
        err(f"nothing to score: {', '.join(req.runs)}: empty, no runs in it yet")
        return 0
    for n in notes:
        err(n)
    plans, refused = {}, {}
    for r in runs:
        try:
            plans[r] = plan_run(r, req.eval, force=req.force)
        except ConfigError as e:
            refused[r] = str(e)
    for msg in _grouped(refused):
        err(f"{'skipped' if req.skip_unfinished else 'error'}: {msg}")
    if refused and (not req.skip_unfinished or not plans):
        return 2
    failed = unmerged = 0
    for r, plan in plans.items():
        try:
            unmerged += score_planned(plan, log) is None
        except Exception as e:          # noqa: BLE001 - one run's failure is reported, the rest go on
            failed += 1
            err(f"error: {r}: scoring failed: {one_line(e)} (traceback: {_log_traceback(plan)})")
    if unmerged:
        err(f"{unmerged} run(s) not merged yet (videos unscored, see above)")
    return 1 if failed else 0


def _grouped(refused: dict[Path, str]) -> list[str]:
    """One line per reason: a reason that names no run (a bad eval key) is said once, with the
    runs it refused."""
    by_reason: dict[str, list[Path]] = {}
    for run, msg in refused.items():
        by_reason.setdefault(msg, []).append(run)
    return [msg if str(runs[0]) in msg else
            f"{msg} (run {runs[0]}" + (f" and {len(runs) - 1} more)" if len(runs) > 1 else ")")
            for msg, runs in by_reason.items()]


def _log_traceback(plan: RunPlan) -> Path:
    path = plan.store.dir / "errors.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(traceback.format_exc())
    return path
