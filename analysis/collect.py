"""Collect run dirs into one table: a row per (run, video, horizon).

    python -m analysis.collect outputs/ [more roots] --out results.csv

A run's own horizon gives one row per video; each scored prefix (metrics.json "prefixes": the
leading 30 s / 60 s of a longer causal rollout, identical to the shorter run) gives another, with
`prefix=True`. Columns: run/config identity (backbone, preset, policy, cache params), the video
(id, prompt, sample seed, evaluator), every metric the evaluator wrote, and cost (chunk latency
median, KV-cache MB, peak RSS). Only complete runs give rows; every other run dir is listed on
stderr with its status and never averaged: failed / interrupted (record.json says why),
unfinished (Hydra bookkeeping or videos but no record.json: still running, or killed) and corrupt
(a record.json or metrics.json that cannot be read: the file and what is wrong).
Prompt shards (prompts.shard / num_shards) of one setting merge into one set of rows (video ids
keep the suite's prompt index); shards with no complete run are reported as missing.
"""
from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import NoReturn

import pandas as pd

from tethercache.horizons import HORIZON_FRAMES       # prefix name -> latent frames
from tethercache.rundir import RunState, run_dirs_under, run_state

from .cli import Parser, output_file, parse, run_paths

CACHE_KEYS = ("budget", "sink", "memory", "recent", "alpha", "tau", "temperature", "rope",
              "grab", "tame", "tame_target", "scope")
# Config keys that vary between runs of one setting without changing it (they choose which videos
# are made, or where/how they are logged); every other differing key makes a distinct variant.
VOLATILE = ("seed", "horizon.", "prompts.", "eval.", "logger.", "progress", "device", "tags",
            "samples_per_prompt", "batch", "validate_only", "resume", "reuse_backbone")


def _horizon_seconds(name: str) -> float:
    """'240s' -> 240.0, for sorting horizons; unknown names sort last."""
    try:
        return float(str(name).rstrip("s"))
    except ValueError:
        return float("inf")


def run_states(roots) -> list[RunState]:
    """The status of every run dir under the roots (a dir holding record.json, .hydra/ or
    videos/), sorted by path."""
    dirs: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such directory")
        dirs.update(run_dirs_under(root))
    return [run_state(d) for d in sorted(dirs)]


def find_runs(roots) -> tuple[list[Path], list[Path]]:
    """(complete run dirs, every other run dir) under the roots, sorted by path."""
    states = run_states(roots)
    return ([s.run_dir for s in states if s.status == "complete"],
            [s.run_dir for s in states if s.status != "complete"])


def describe(state: RunState) -> str:
    """'failed (NonFiniteError: ...)', 'corrupt (metrics.json: not valid JSON ...)', ..."""
    return f"{state.status} ({state.reason})"


def print_skipped(states: list[RunState], file) -> None:
    """One line per run dir that is not complete: its status, reason and path."""
    for state in states:
        if state.status != "complete":
            print(f"skipped, {describe(state)}: {state.run_dir}", file=file)


class CorruptFile(ValueError):
    """A file of a complete run that cannot be read; str() names the file and what is wrong."""

    def __init__(self, path: Path, what: str):
        super().__init__(f"{Path(path).name}: {what}")
        self.path, self.what = Path(path), what

    def in_run(self, run_dir: Path) -> str:
        """'<file relative to the run dir>: <what is wrong>'."""
        try:
            rel = self.path.relative_to(run_dir)
        except ValueError:
            rel = self.path
        return f"{rel}: {self.what}"


def read_metrics(run_dir: Path) -> dict:
    """metrics.json of a run ({} when not scored yet), checked enough to tabulate."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        m = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptFile(path, f"not valid JSON ({type(e).__name__})") from None
    if not isinstance(m, dict):
        raise CorruptFile(path, "not a JSON object")
    parts = {"videos": m.get("videos", [])}
    prefixes = m.get("prefixes") or {}
    if not isinstance(prefixes, dict) or not all(isinstance(v, dict) for v in prefixes.values()):
        raise CorruptFile(path, "'prefixes' is not an object of objects")
    parts.update({f"prefixes.{h}.videos": v.get("videos", []) for h, v in prefixes.items()})
    for where, videos in parts.items():
        if not isinstance(videos, list) or not all(isinstance(v, dict) and isinstance(v.get("video"), str)
                                                   for v in videos):
            raise CorruptFile(path, f"'{where}' is not a list of video scores")
    return m


def missing_shards(complete: list[Path]) -> list[str]:
    """One line per sharded setting with shards that have no complete run."""
    groups: dict[str, tuple[int, dict]] = {}
    for d in complete:
        rec = run_state(d).record
        n = int((rec.get("shard") or {}).get("num_shards", 1))
        if n <= 1:
            continue
        cfg = json.loads(json.dumps(rec.get("config") or {}))
        (cfg.get("prompts") or {}).pop("shard", None)
        key = json.dumps(cfg, sort_keys=True)
        groups.setdefault(key, (n, {}))[1][int(rec["shard"]["index"])] = d
    lines = []
    for n, present in groups.values():
        missing = sorted(set(range(n)) - set(present))
        if missing:
            lines.append(f"missing shards {missing} of {n} (complete: "
                         f"{', '.join(str(present[i]) for i in sorted(present))})")
    return lines


def flat_config(cfg: dict, prefix: str = "") -> dict:
    """{'cache.alpha': 0.35, ...} without the volatile keys."""
    out = {}
    for k, v in (cfg or {}).items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat_config(v, key + "."))
        elif not any(key == p or (p.endswith(".") and key.startswith(p)) for p in VOLATILE):
            out[key] = v
    return out


def _run_columns(run_dir: Path, rec: dict) -> dict:
    choices = rec.get("choices") or {}
    cache = rec["cache"] if isinstance(rec.get("cache"), dict) else {}
    cols = {"run_dir": str(run_dir), "backbone": choices.get("backbone", rec.get("backbone")),
            "preset": choices.get("cache", cache.get("name", rec.get("policy"))),
            "policy": rec.get("policy", cache.get("name")), "prompts_set": choices.get("prompts"),
            "run_seed": rec.get("seed"),
            "config_flat": json.dumps(flat_config(rec.get("config") or {}), sort_keys=True)}
    cols.update({k: cache.get(k) for k in CACHE_KEYS})
    if cols["memory"] is None and None not in (cols["budget"], cols["sink"], cols["recent"]):
        cols["memory"] = cols["budget"] - cols["sink"] - cols["recent"]   # derived: M = K - S - R
    mem = rec.get("memory") or {}
    cols["peak_rss_mb"] = mem.get("peak_rss_mb")
    cols["cuda_peak_mb"] = mem.get("cuda_peak_mb")
    return cols


def _chunk_median(sample: dict, frames: int, chunk: int | None) -> float | None:
    """Median chunk latency over the chunks that made the first `frames` latent frames."""
    cs = sample.get("chunk_seconds") or []
    if chunk and frames < sample.get("latent_frames", frames):
        cs = cs[: frames // chunk]
    return statistics.median(cs) if cs else sample.get("chunk_seconds_median")


def run_rows(run_dir: Path, rec: dict) -> list[dict]:
    """All rows of one complete run dir (its checked record.json); CorruptFile if its metrics
    cannot be read."""
    for key, kind in (("horizon", str), ("latent_frames", int)):
        if not isinstance(rec.get(key), kind) or isinstance(rec.get(key), bool):
            raise CorruptFile(run_dir / "record.json", f"status complete, but {key!r} is missing "
                                                      f"or not a {kind.__name__}")
    base = _run_columns(run_dir, rec)
    chunk = ((rec.get("config") or {}).get("backbone") or {}).get("chunk")
    metrics = read_metrics(run_dir)
    parts = [(rec["horizon"], rec["latent_frames"], False, metrics.get("videos", []))]
    for h, part in (metrics.get("prefixes") or {}).items():
        parts.append((h, HORIZON_FRAMES.get(h), True, part.get("videos", [])))
    rows = []
    for horizon, frames, is_prefix, videos in parts:
        by_id = {v["video"]: v for v in videos}
        for s in rec.get("samples", []):
            scores = by_id.get(s["id"])
            if is_prefix and scores is None:
                continue                           # this video was too short for the prefix
            row = {**base, "horizon": horizon, "horizon_s": _horizon_seconds(horizon),
                   "latent_frames": frames, "prefix": is_prefix, "video": s["id"],
                   "prompt": s.get("prompt"), "sample_seed": s.get("seed"), "evaluator": None}
            if scores:
                row.update({k: (float("nan") if v is None else v) for k, v in scores.items()})
            row["chunk_seconds_median"] = _chunk_median(s, frames or 0, chunk)
            row["kv_cache_mb"] = s.get("kv_cache_mb")
            rows.append(row)
    return rows


def collect_runs(roots) -> tuple[pd.DataFrame, list[RunState]]:
    """(one row per (run, video, horizon) over the usable complete runs, every run dir with its
    status: complete, or failed, interrupted, unfinished, corrupt with the reason)."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    rows, states = [], []
    for state in run_states(roots):
        if state.status == "complete":
            try:
                rows += run_rows(state.run_dir, state.record)
            except CorruptFile as e:
                state = RunState(state.run_dir, "corrupt", str(e), None)
        states.append(state)
    df = pd.DataFrame(rows)
    if len(df):
        df["variant"] = variant_labels(df)
        df = df.sort_values(["backbone", "preset", "horizon_s", "run_dir", "video"],
                            kind="stable").reset_index(drop=True)
    return df, states


def collect(roots=("outputs",), report=None) -> pd.DataFrame:
    """collect_runs' rows; the skipped runs (and missing shards) are listed on `report`."""
    df, states = collect_runs(roots)
    print_skipped(states, report or sys.stderr)
    for line in missing_shards([s.run_dir for s in states if s.status == "complete"]):
        print(line, file=report or sys.stderr)
    return df


def variant_labels(df: pd.DataFrame, ignore=()) -> pd.Series:
    """The preset name, plus every config key that differs between that preset's runs (e.g. an
    alpha sweep gives 'tether alpha=0.1', ...), so distinct settings are never averaged together.
    Keys in `ignore` (an ablation's own axis) are left out of the label."""
    ignore = {k if "." in k else f"cache.{k}" for k in ignore}
    labels = pd.Series(df["preset"].astype(str), index=df.index)
    for (_, preset), group in df.groupby(["backbone", "preset"], dropna=False):
        configs = {c: json.loads(c) for c in group["config_flat"].unique()}
        keys = sorted({k for cfg in configs.values() for k in cfg} - ignore)
        varying = [k for k in keys if len({json.dumps(cfg.get(k)) for cfg in configs.values()}) > 1]
        for c, cfg in configs.items():
            parts = [f"{k.removeprefix('cache.')}={cfg.get(k)}" for k in varying]
            labels[group.index[group["config_flat"] == c]] = " ".join([str(preset), *parts])
    return labels


def config_value(df: pd.DataFrame, key: str) -> pd.Series:
    """A config key per row: its own column if collected (alpha, sink, ...), else from the
    flattened config ('backbone.sampler.context_noise')."""
    short = key.removeprefix("cache.")
    if short in df.columns:
        return df[short]
    full = key if "." in key else f"cache.{key}"
    return df["config_flat"].map(lambda c: json.loads(c).get(full))


def main(argv=None) -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"], help="dirs to scan (default outputs/)")
    ap.add_argument("--out", default="results.csv", help="CSV path (default results.csv)")
    a = parse(ap, argv, lambda a: (run_paths(a.roots), output_file("--out", a.out)))
    df = collect(a.roots)
    if df.empty:
        nothing_to_do(a.roots)
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    print(f"{len(df)} rows from {df['run_dir'].nunique()} runs -> {a.out}", file=sys.stderr)


def nothing_to_do(roots) -> NoReturn:
    """No complete run to read: a note (exit 0) when there are no run dirs at all, an error
    (exit 1) when every run dir was skipped (listed above)."""
    where = ", ".join(map(str, roots))
    if not run_states(roots):
        print(f"no run dirs under {where}: nothing written", file=sys.stderr)
        sys.exit(0)
    print(f"error: no complete runs under {where} (the skipped ones are listed above); "
          "nothing written", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
