"""Collect run dirs into one table: a row per (run, video, horizon).

    python -m analysis.collect outputs/ [more roots] --out results.csv

A run's own horizon gives one row per video; each scored prefix (metrics.json "prefixes": the
leading 30 s / 60 s of a longer causal rollout, identical to the shorter run) gives another, with
`prefix=True`. Columns: run/config identity (backbone, preset, policy, cache params), the video
(id, prompt, sample seed, evaluator), every metric the evaluator wrote, and cost (chunk latency
median, KV-cache MB, peak RSS). Only complete runs give rows; every other run dir is listed on
stderr with its status and never averaged: failed / interrupted (record.json says why) and
unfinished (Hydra bookkeeping or videos but no record.json: still running, or killed).
Prompt shards (prompts.shard / num_shards) of one setting merge into one set of rows (video ids
keep the suite's prompt index); shards with no complete run are reported as missing.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pandas as pd

from tethercache.horizons import HORIZON_FRAMES       # prefix name -> latent frames
from tethercache.rundir import read_record, status

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


def find_runs(roots) -> tuple[list[Path], list[Path]]:
    """(complete run dirs, unfinished run dirs) under the roots, sorted by path."""
    dirs: set[Path] = set()
    for root in map(Path, roots):
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such directory")
        for marker in ("record.json", ".hydra", "videos"):
            dirs |= {p.parent for p in root.rglob(marker)}
            if (root / marker).exists():
                dirs.add(root)
    complete, unfinished = [], []
    for d in sorted(dirs):
        (complete if status(d) == "complete" else unfinished).append(d)
    return complete, unfinished


def describe(run_dir: Path) -> str:
    """'failed (NonFiniteError: ...)', 'interrupted (...)' or 'unfinished (no record.json)'."""
    state = status(run_dir)
    if state == "unfinished":
        return "unfinished (no complete record.json: still running or killed)"
    return f"{state} ({(read_record(run_dir) or {}).get('reason', 'no reason recorded')})"


def missing_shards(complete: list[Path]) -> list[str]:
    """One line per sharded setting with shards that have no complete run."""
    groups: dict[str, tuple[int, dict]] = {}
    for d in complete:
        rec = read_record(d) or {}
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


def run_rows(run_dir: Path) -> list[dict]:
    """All rows of one complete run dir."""
    rec = json.loads((run_dir / "record.json").read_text())
    base = _run_columns(run_dir, rec)
    chunk = ((rec.get("config") or {}).get("backbone") or {}).get("chunk")
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
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


def collect(roots=("outputs",), report=None) -> pd.DataFrame:
    """One row per (run, video, horizon) over every complete run dir under the roots."""
    roots = [roots] if isinstance(roots, (str, Path)) else list(roots)
    complete, unfinished = find_runs(roots)
    for d in unfinished:
        print(f"skipped, {describe(d)}: {d}", file=report or sys.stderr)
    for line in missing_shards(complete):
        print(line, file=report or sys.stderr)
    rows = [r for d in complete for r in run_rows(d)]
    df = pd.DataFrame(rows)
    if len(df):
        df["variant"] = variant_labels(df)
        df = df.sort_values(["backbone", "preset", "horizon_s", "run_dir", "video"],
                            kind="stable").reset_index(drop=True)
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"], help="dirs to scan (default outputs/)")
    ap.add_argument("--out", default="results.csv", help="CSV path (default results.csv)")
    a = ap.parse_args(argv)
    try:
        df = collect(a.roots)
    except FileNotFoundError as e:
        sys.exit(f"error: {e}")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(a.out, index=False)
    n_runs = df["run_dir"].nunique() if len(df) else 0
    print(f"{len(df)} rows from {n_runs} runs -> {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
