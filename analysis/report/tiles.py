"""The comparison groups: per (backbone, prompt, sample seed, horizon) a tile per run that made
the video, with its heavy data (cache timeline, per-clip quality), and a note for each run that
may have made it but is not complete."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..collect import CorruptFile
from ..rows import row_order
from .media import encode_preview
from .outdir import OwnedDir
from .timeline import timeline_segments

CLIP_KEYS = ("evaluator", "video", "clip", "start_s", "end_s")


def comparison_groups(df: pd.DataFrame, statuses: list[dict]) -> list[dict]:
    """One group per (backbone, prompt, sample seed, horizon): a tile per run that has the video,
    and a note for each run of that backbone and horizon that is not complete."""
    own = df[~df["prefix"].astype(bool)]
    not_done = [s for s in statuses if s["status"] not in ("complete", "unscored")]
    groups = []
    keys = ["backbone", "prompt", "sample_seed", "horizon"]
    own = own.assign(_order=own["variant"].map({v: i for i, v in enumerate(row_order(own["variant"]))}))
    for (bb, prompt, seed, horizon), g in own.groupby(keys, sort=False, dropna=False):
        g = g.sort_values(["_order", "run_dir"])
        labels = g["variant"].tolist()
        dup = {l for l in labels if labels.count(l) > 1}       # re-runs: name them by their dir
        tiles = [{"variant": r.variant, "label": r.variant + (f" ({Path(r.run_dir).name})" if r.variant in dup else ""),
                  "run_dir": r.run_dir, "video_id": r.video, "scored": isinstance(r.evaluator, str)}
                 for r in g.itertuples()]
        # a run that may have made this video (unknown backbone/horizon: it may have)
        missing = [s for s in not_done if s["backbone"] in (bb, None) and s["horizon"] in (horizon, None)]
        groups.append({"backbone": bb, "prompt": prompt, "seed": None if pd.isna(seed) else int(seed),
                       "horizon": horizon, "horizon_s": g["horizon_s"].iloc[0], "tiles": tiles,
                       "missing": missing})
    groups.sort(key=lambda x: (str(x["backbone"]), x["horizon_s"], str(x["prompt"]), x["seed"] or 0))
    return groups


def _finite(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, 5) if math.isfinite(v) else None


def read_clips(run_dir: Path) -> dict[str, dict]:
    """clips.csv of a run: video id -> {'start_s', 'end_s', <dim>: [...]} (NaN as null).
    CorruptFile when it cannot be read as the evaluator writes it."""
    path = Path(run_dir) / "clips.csv"
    if not path.is_file():
        return {}
    try:
        df = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise CorruptFile(path, f"not a readable CSV ({type(e).__name__})") from None
    lacking = [c for c in ("video", "start_s", "end_s") if c not in df.columns]
    if lacking or not all(pd.api.types.is_numeric_dtype(df[c]) for c in ("start_s", "end_s")):
        raise CorruptFile(path, f"no numeric {lacking[0] if lacking else 'start_s/end_s'} column")
    dims = [c for c in df.columns if c not in CLIP_KEYS and pd.api.types.is_numeric_dtype(df[c])]
    out = {}
    for vid, g in df.sort_values(["video", "end_s"]).groupby("video"):
        out[str(vid)] = {"start_s": [_finite(x) for x in g["start_s"]],
                         "end_s": [_finite(x) for x in g["end_s"]],
                         **{d: [_finite(x) for x in g[d]] for d in dims if g[d].notna().any()}}
    return out


def tile_assets(t: dict, record: dict, out: OwnedDir, preview_height: int,
                clips_of: dict) -> tuple[dict, dict, bool, list[str]]:
    """(tile for index.js, its heavy data for the group's file, whether the encode was cached,
    problems: files shown without, one line each) of one video of a complete run. Raises
    FileNotFoundError (the video is gone) or CorruptFile (it does not decode)."""
    s = next(s for s in record["samples"] if s["id"] == t["video_id"])
    fps = float((((record.get("config") or {}).get("backbone") or {}).get("codec") or {}).get("fps") or 16)
    run = Path(t["run_dir"])
    media = encode_preview(run / s.get("video", f"videos/{t['video_id']}.mp4"), out, preview_height)
    problems, timeline = [], None
    tl_path = run / s.get("timeline", f"timelines/{t['video_id']}.npz")
    if tl_path.is_file():
        try:
            timeline = timeline_segments(tl_path)
            timeline.update(spf=s["video_frames"] / fps / s["latent_frames"],   # s per latent frame
                            latent_frames=s["latent_frames"])
        except CorruptFile as e:
            problems.append(e.in_run(run))
            timeline = None
        except (KeyError, TypeError, ZeroDivisionError):
            problems.append(f"record.json: sample {t['video_id']} has no video_frames / latent_frames "
                            "for its timeline")
            timeline = None
    if t["run_dir"] not in clips_of:
        try:
            clips_of[t["run_dir"]] = read_clips(run)
        except CorruptFile as e:
            clips_of[t["run_dir"]] = e.in_run(run)
    clips = clips_of[t["run_dir"]]
    if isinstance(clips, str):                        # reported once per run, by the caller
        problems.append(clips)
        clips = {}
    cached = media.pop("cached")
    heavy = {"timeline": timeline, "clips": clips.get(t["video_id"])}
    return {**t, **media, "has_timeline": bool(timeline)}, heavy, cached, problems
