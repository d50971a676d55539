"""Oracle recall: how often a policy's memory holds the frames the pose oracle would keep.

    python -m analysis.recall <run_dir> [<run_dir> ...] [--csv recall.csv]

For each chunk and layer of a run's timeline: M = the memory-region slots in use; the pool = every
frame that has left the recent region so far and is not a sink frame (derived from the timeline
itself, so it holds for any policy); the oracle set = the M pool frames whose camera pose is
closest to the chunk's mean pose (ties: the most recent, as cache/oracle.py picks).

    recall     = |memory ∩ oracle set| / M
    recall_tie = fraction of memory frames at least as close as the oracle's M-th frame
                 (the ping-pong camera revisits poses exactly, so equally good frames tie)

Warm-up chunks (no memory yet, or a pool no bigger than M: nothing to choose) are skipped. Poses
come from the toy world (prompt, seed) of each sample, so runs of non-toy prompts are skipped.
The sink / memory / recent codes are looked up by name in the timeline's region table.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tethercache.cache.protocol import REGIONS
from tethercache.cache.session import timeline_regions


def oracle_set(pool: np.ndarray, poses: np.ndarray, chunk_ids: np.ndarray, m: int) -> np.ndarray:
    """The m pool frames closest in pose to the chunk's mean pose; ties go to the most recent."""
    d = np.abs(poses[pool] - poses[chunk_ids].mean())
    order = np.lexsort((-pool, d))                    # by distance, then newest first
    return pool[order[:m]]


def timeline_recall(frames: np.ndarray, regions: np.ndarray, chunk_start: np.ndarray,
                    poses: np.ndarray, table=None) -> pd.DataFrame:
    """Rows (chunk, layer, m, recall, recall_tie) for every non-warm-up chunk and layer.

    frames/regions: [chunks, layers, slots] as saved by CacheSession.save_timeline; poses: one
    camera pose per global frame id; table: the timeline's regions (code -> Region, default this
    process's table)."""
    code = {r.name: r.code for r in (table.values() if table else REGIONS)}
    poses = np.asarray(poses, dtype=float)
    n_chunks, n_layers, _ = frames.shape
    chunk = int(chunk_start[1] - chunk_start[0]) if n_chunks > 1 else int(frames[0].max()) + 1
    rows = []
    for layer in range(n_layers):
        seen_recent, sinks = set(), set()
        for c in range(n_chunks):
            f, r = frames[c, layer], regions[c, layer]
            recent = set(f[r == code["recent"]].tolist())
            seen_recent |= recent
            sinks |= set(f[r == code["sink"]].tolist())
            memory = f[r == code["memory"]]
            pool = np.array(sorted(seen_recent - recent - sinks), dtype=np.int64)
            m = len(memory)
            if m == 0 or len(pool) <= m:
                continue                                # warm-up: nothing to choose yet
            ids = np.arange(chunk_start[c], chunk_start[c] + chunk)
            best = oracle_set(pool, poses, ids, m)
            d_mem = np.abs(poses[memory] - poses[ids].mean())
            d_cut = np.abs(poses[best] - poses[ids].mean()).max()
            rows.append({"chunk": c, "layer": layer, "m": m,
                         "recall": len(set(memory.tolist()) & set(best.tolist())) / m,
                         "recall_tie": float((d_mem <= d_cut + 1e-9).mean())})
    return pd.DataFrame(rows, columns=["chunk", "layer", "m", "recall", "recall_tie"])


def run_recall(run_dir: Path, report=None) -> pd.DataFrame:
    """Per (video, layer) mean recall over chunks for one run dir."""
    from tethercache.toyworld.world import camera_poses
    rec = json.loads((run_dir / "record.json").read_text())
    preset = (rec.get("choices") or {}).get("cache", rec.get("policy"))
    out = []
    for s in rec["samples"]:
        tl_path = run_dir / s["timeline"]
        if not tl_path.is_file():
            print(f"{run_dir}: {s['id']}: no timeline, skipped", file=report or sys.stderr)
            continue
        try:
            poses = camera_poses(s["prompt"], s["seed"], s["latent_frames"]).numpy()
        except ValueError as e:                         # not a toy-world grammar prompt
            print(f"{run_dir}: {s['id']}: no camera poses ({e}), skipped", file=report or sys.stderr)
            continue
        tl = np.load(tl_path)
        per = timeline_recall(tl["frames"], tl["regions"], tl["chunk_start"], poses,
                              timeline_regions(tl))
        if per.empty:
            print(f"{run_dir}: {s['id']}: no memory region after warm-up ({preset}), skipped",
                  file=report or sys.stderr)
            continue
        g = per.groupby("layer").agg(chunks=("chunk", "size"), m=("m", "mean"),
                                     recall=("recall", "mean"), recall_tie=("recall_tie", "mean"))
        out.append(g.reset_index().assign(run_dir=str(run_dir), preset=preset, video=s["id"]))
    cols = ["run_dir", "preset", "video", "layer", "chunks", "m", "recall", "recall_tie"]
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def summary_table(df: pd.DataFrame, value: str = "recall") -> pd.DataFrame:
    """Rows (preset, run, video), columns layer 0..L-1 and their mean."""
    t = df.pivot_table(index=["preset", "run_dir", "video"], columns="layer", values=value)
    t.columns = [f"L{c}" for c in t.columns]
    t["mean"] = t.mean(axis=1)
    return t


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", help="run dirs (with record.json and timelines/)")
    ap.add_argument("--csv", default=None, help="also write per (run, video, layer) rows here")
    a = ap.parse_args(argv)
    parts = []
    for r in map(Path, a.runs):
        if not (r / "record.json").is_file():
            print(f"{r}: no record.json (unfinished or not a run dir), skipped", file=sys.stderr)
            continue
        parts.append(run_recall(r))
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if df.empty:
        sys.exit("error: no run with a memory region and toy-world poses")
    pd.set_option("display.width", 200)
    for value in ("recall", "recall_tie"):
        print(f"\n{value} (mean over non-warm-up chunks)")
        print(summary_table(df, value).round(3).to_string())
    if a.csv:
        df.to_csv(a.csv, index=False)
        print(f"\n-> {a.csv}")


if __name__ == "__main__":
    main()
