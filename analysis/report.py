"""Comparison report: one static page to watch policies side by side, with their drift curves,
cache timelines and the experiment tables.

    python -m analysis.report outputs/sweeps/<date>/<time> [more dirs] --out report/
    (open report/index.html from disk: no server, nothing fetched from the internet)

Per (backbone, prompt, sample seed, horizon), the reader picks which policies to compare; one
play / pause / seek moves all their players, the quality-over-time curve (per 2-s clip,
clips.csv) and each policy's cache timeline (timelines/*.npz: which global frames sat in sink /
memory / recent per layer) follow the playback time. Tables (main, VBench dims, cost, and an
ablation per preset whose runs differ in a config key) highlight the best value per column;
paired contrasts (`contrasts*.csv` under the dirs, or --contrasts) are shown with their intervals.
Runs that are failed, interrupted, unfinished or unscored are listed, never dropped.

Videos are re-encoded once to H.264 (yuv420p, faststart, keyframe every 2 s) at a preview height
(small frames are upscaled by an integer factor with nearest neighbour, so the toy's 32x32 pixels
stay sharp), with a poster (the last frame: where a policy ended up). Encodes are cached in
<out>/media by source file identity, so a rebuild only encodes new videos. Players are built
when their section scrolls near the viewport, with preload="none". H.264 plays in Chrome, Firefox,
Safari and Debian's chromium (which the test drives), so no WebM copy is written.
"""
from __future__ import annotations

import argparse
import hashlib
import html
import io
import json
import math
import os
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from tethercache.eval.metrics import metric
from tethercache.eval.schema import DIMENSIONS

from .collect import collect, find_runs
from .tables import COST, DIMS, MAIN, MISSING, _horizons, add_quality, dedupe, row_order

ASSETS = Path(__file__).with_name("report_assets")
ENCODER = "h264-crf20-v2"              # part of the media cache key: change it to re-encode
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
           "#9c755f", "#ff9da7", "#bab0ac")


class ReportError(ValueError):
    """Bad input: one line for the user, exit code 2."""


# ---- runs and their status ---------------------------------------------------------------
def _load_config(run_dir: Path) -> dict:
    """The config a run wrote when it started (for runs whose record.json has none)."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                return OmegaConf.to_container(OmegaConf.load(path), resolve=False) or {}
            except Exception:                           # noqa: BLE001 - a half-written file
                return {}
    return {}


def run_status(run_dir: Path) -> dict:
    """{'run_dir', 'status': complete | failed | interrupted | unfinished | unscored, 'reason',
    'backbone', 'preset', 'horizon'} of one run dir (see the run-dir contract in README)."""
    run_dir = Path(run_dir)
    rec, status, reason = {}, "unfinished", "no record.json (still running, or killed)"
    if (run_dir / "record.json").is_file():
        try:
            rec = json.loads((run_dir / "record.json").read_text())
            status, reason = str(rec.get("status", "unfinished")), rec.get("reason") or ""
        except json.JSONDecodeError:
            reason = "record.json is not valid JSON"
    if status == "complete" and not (run_dir / "metrics.json").is_file():
        status, reason = "unscored", "complete, but no metrics.json (no evaluator run yet)"
    cfg = rec.get("config") or _load_config(run_dir)
    choices = rec.get("choices") or {}

    def pick(group: str):                    # the config-group option, e.g. cache -> "tether"
        section = cfg.get(group)
        return choices.get(group) or (section.get("name") if isinstance(section, dict) else None)
    return {"run_dir": str(run_dir), "status": status, "reason": str(reason),
            "backbone": pick("backbone"), "preset": pick("cache"), "horizon": pick("horizon")}


# ---- media --------------------------------------------------------------------------------
def _even(x: int) -> int:
    return max(2, x - x % 2)


def encode_preview(src: Path, media_dir: Path, height: int = 256) -> dict:
    """Re-encode `src` for browsers once; returns {'video', 'poster', 'width', 'height',
    'seconds', 'cached'} with paths relative to media_dir's parent."""
    st = src.stat()
    key = hashlib.sha1(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{height}|{ENCODER}"
                       .encode()).hexdigest()[:16]
    video, poster, meta = (media_dir / f"{key}{ext}" for ext in (".mp4", ".jpg", ".json"))
    if meta.is_file() and video.is_file() and poster.is_file():
        return {**json.loads(meta.read_text()), "cached": True}
    media_dir.mkdir(parents=True, exist_ok=True)
    tmp = video.with_suffix(".tmp.mp4")
    with av.open(str(src)) as inp:
        s_in = inp.streams.video[0]
        fps = Fraction(s_in.average_rate or 16)
        h, w = s_in.codec_context.height, s_in.codec_context.width
        if h <= height:                    # integer nearest-neighbour upscale: pixels stay sharp
            up = height // h
            out_w, out_h, how = _even(w * up), _even(h * up), "POINT"
        else:                              # larger than the preview: shrink smoothly
            out_w, out_h, how = _even(round(w * height / h)), _even(height), "AREA"
        last, n = None, 0
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            s = out.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = out_w, out_h, "yuv420p"
            s.codec_context.gop_size = max(1, int(round(2 * float(fps))))   # seek grain: 2 s
            s.options = {"crf": "20", "preset": "veryfast"}
            for frame in inp.decode(s_in):
                # dst_color_range=1 (limited, what the encoder signals): lossless RGB sources
                # (toy backbones) decode as full-range gbrp, which would otherwise carry over
                last = frame.reformat(out_w, out_h, "yuv420p", interpolation=how, dst_color_range=1)
                last.pts, last.time_base = n, Fraction(1) / fps    # renumbered at `fps`
                for packet in s.encode(last):
                    out.mux(packet)
                n += 1
            for packet in s.encode():
                out.mux(packet)
    if last is None:
        tmp.unlink(missing_ok=True)
        raise ReportError(f"{src}: no frames to decode")
    last.to_image().save(poster.with_suffix(".tmp.jpg"), quality=90)
    os.replace(poster.with_suffix(".tmp.jpg"), poster)
    os.replace(tmp, video)
    info = {"video": f"{media_dir.name}/{video.name}", "poster": f"{media_dir.name}/{poster.name}",
            "width": out_w, "height": out_h, "seconds": n / float(fps)}
    meta.write_text(json.dumps(info))
    return {**info, "cached": False}


# ---- cache timelines and clips --------------------------------------------------------------
def timeline_segments(npz_path: Path) -> dict:
    """A timeline as runs of chunks: per layer a flat list [frame, region, first chunk, last
    chunk, ...], one entry per stretch of consecutive chunks in which a frame sat in one region
    (a few hundred numbers where the dense table has chunks x slots)."""
    tl = np.load(npz_path)
    frames, regions = tl["frames"].astype(np.int64), tl["regions"].astype(np.int64)
    n_chunks, n_layers, n_slots = frames.shape
    chunk = np.broadcast_to(np.arange(n_chunks)[:, None], (n_chunks, n_slots))
    layers = []
    for layer in range(n_layers):
        f, r = frames[:, layer], regions[:, layer]
        held = (f >= 0) & (r > 0)
        key, c = (f * 4 + r)[held], chunk[held]
        order = np.lexsort((c, key))
        key, c = key[order], c[order]
        start = np.ones(len(key), bool)
        start[1:] = (key[1:] != key[:-1]) | (c[1:] != c[:-1] + 1)
        first = np.flatnonzero(start)
        last = np.r_[first[1:], len(key)] - 1
        seg = np.stack([key[first] // 4, key[first] % 4, c[first], c[last]], axis=1)
        layers.append(seg.reshape(-1).tolist())
    return {"chunk_start": tl["chunk_start"].astype(int).tolist(), "layers": layers,
            "max_frame": int(frames.max()) if frames.size else 0}


def _finite(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return round(v, 5) if math.isfinite(v) else None


def read_clips(run_dir: Path) -> dict[str, dict]:
    """clips.csv of a run: video id -> {'start_s', 'end_s', <dim>: [...]} (NaN as null)."""
    path = Path(run_dir) / "clips.csv"
    if not path.is_file():
        return {}
    df = pd.read_csv(path)
    dims = [c for c in df.columns if c not in ("evaluator", "video", "clip", "start_s", "end_s")
            and pd.api.types.is_numeric_dtype(df[c])]
    out = {}
    for vid, g in df.sort_values(["video", "end_s"]).groupby("video"):
        out[str(vid)] = {"start_s": [_finite(x) for x in g["start_s"]],
                         "end_s": [_finite(x) for x in g["end_s"]],
                         **{d: [_finite(x) for x in g[d]] for d in dims if g[d].notna().any()}}
    return out


# ---- tables ------------------------------------------------------------------------------------
def _best(values: dict, col: str):
    """Row label(s) holding the best mean in a column (None when fewer than 2 rows compete)."""
    vals = {r: v for r, v in values.items() if v is not None and math.isfinite(v)}
    m = metric(col)                 # which way is better (eval/metrics.py); counts are not ranked
    if len(vals) < 2 or m.better is None:
        return set()
    score = {r: m.goodness(v) for r, v in vals.items()}
    top = max(score.values())
    return {r for r, s in score.items() if s == top}


def html_table(df: pd.DataFrame, rows: list, metrics, horizons: list[str], row_header: str,
               caption: str, show_n: bool = True) -> str:
    """Mean ± std over videos (k = fewer videos measured it), best mean per column in bold."""
    cols = ([metric("n")] if show_n else []) + list(metrics)
    cells, means = {}, {}
    for h in horizons:
        for m in cols:
            col, digits = m.name, m.digits
            means[(h, col)] = {}
            for r in rows:
                sub = df[(df["row"] == r) & (df["horizon"] == h)]
                if col == "n":
                    cells[(r, h, col)] = str(len(sub)) if len(sub) else MISSING
                    continue
                vals = (sub[col].dropna() * m.scale) if col in sub else pd.Series([], dtype=float)
                if vals.empty:
                    cells[(r, h, col)] = MISSING
                    continue
                means[(h, col)][r] = float(vals.mean())
                s = f"{vals.mean():.{digits}f}"
                extra = f" ± {vals.std():.{digits}f}" if len(vals) > 1 else ""
                extra += f" ({len(vals)})" if len(vals) < len(sub) else ""
                cells[(r, h, col)] = s + (f"<span class=sd>{html.escape(extra)}</span>" if extra else "")
    best = {k: _best(v, k[1]) for k, v in means.items()}
    e = html.escape
    head1 = "".join(f"<th colspan={len(cols)} class=grp>{e(h)}</th>" for h in horizons)
    head2 = "".join(f"<th>{e(m.label)}</th>" for _ in horizons for m in cols)
    body = []
    for r in rows:
        tds = "".join(f"<td{' class=best' if r in best.get((h, c), ()) else ''}>{cells[(r, h, c)]}</td>"
                      for h in horizons for c in (m.name for m in cols))
        body.append(f"<tr><th scope=row>{_row_label(str(r))}</th>{tds}</tr>")
    return (f"<div class=tw><table><caption>{e(caption)}</caption><thead><tr><th rowspan=2>{e(row_header)}</th>"
            f"{head1}</tr><tr>{head2}</tr></thead><tbody>{''.join(body)}</tbody></table></div>")


def _row_label(label: str) -> str:
    """'tether alpha=0.1': the preset, then the settings that tell its variants apart, muted."""
    preset, _, keys = label.partition(" ")
    return html.escape(preset) + (f" <span class=keys>{html.escape(keys)}</span>" if keys else "")


def ablation_axes(g: pd.DataFrame) -> dict[str, list[str]]:
    """preset -> the config keys its runs differ in (an ablation axis), from collect's variants."""
    axes = {}
    for preset, p in g.groupby("preset"):
        cfgs = [json.loads(c) for c in p["config_flat"].unique()]
        keys = sorted({k for c in cfgs for k in c})
        varying = [k for k in keys if len({json.dumps(c.get(k)) for c in cfgs}) > 1]
        if varying:
            axes[str(preset)] = varying
    return axes


def tables_html(df: pd.DataFrame) -> str:
    """All tables, one block per (backbone, evaluator); cost per backbone."""
    if df.empty:
        return "<p class=empty>No complete runs.</p>"
    note = ("Mean ± std over videos; (k): only k videos measured it; — not measured. [0, 1] "
            "scores x100; Drift = imaging quality of the first 5 s minus the last 5 s (x100, "
            "positive = worse). Best mean per column in bold (|Drift|, cost: lowest; Drift: "
            "closest to 0).")
    out = [f"<p class=note>{html.escape(note)}</p>"]
    scored = df[df["evaluator"].notna()]
    for (bb, ev), g in scored.groupby(["backbone", "evaluator"], sort=True):
        g = add_quality(dedupe(g, report=io.StringIO()))
        g = g.assign(row=g["variant"])
        rows, hs = row_order(g["row"]), _horizons(g)
        out.append(f"<h3>{html.escape(f'{bb} · evaluator {ev}')}</h3>")
        out.append(html_table(g, rows, MAIN, hs, "cache", "Main: quality and drift"))
        out.append("<details><summary>Per-dimension scores</summary>"
                   + html_table(g, rows, DIMS, hs, "cache", "VBench dimensions", show_n=False)
                   + "</details>")
        for preset, keys in ablation_axes(g).items():
            a = g[g["preset"] == preset]
            a = a.assign(row=a["variant"])
            arows = sorted(a["row"].unique(), key=lambda r: _sortable_label(a, r, keys))
            short = ", ".join(k.removeprefix("cache.") for k in keys)
            out.append(html_table(a, arows, MAIN, _horizons(a), "setting",
                                  f"Ablation: {preset} over {short}"))
    own = df[~df["prefix"].astype(bool)].assign(chunk_ms=lambda d: d["chunk_seconds_median"] * 1e3)
    for bb, g in own.groupby("backbone"):
        g = g.drop_duplicates(["run_dir", "video"]).assign(row=g["variant"])
        out.append(html_table(g, row_order(g["row"]), COST, _horizons(g), "cache",
                              f"Cost ({bb}): median chunk latency, KV-cache size, peak RSS "
                              "(own horizon; use experiments/bench_cache.py for memory)"))
    return "\n".join(out)


def _sortable_label(a: pd.DataFrame, label, keys):
    cfg = json.loads(a.loc[a["row"] == label, "config_flat"].iloc[0])
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool)
                 else (1, 0, str(v)) for v in (cfg.get(k) for k in keys))


def find_contrasts(roots, extra=()) -> list[Path]:
    """contrasts*.csv written by analysis.contrasts under the roots, plus explicit files."""
    found = [Path(p) for p in extra]
    for root in map(Path, roots):
        found += sorted(root.rglob("contrasts*.csv")) if root.is_dir() else []
    return list(dict.fromkeys(found))


INTERVAL_COLUMNS = (("lo", "hi"), ("ci_lo", "ci_hi"), ("ci_low", "ci_high"), ("lower", "upper"))


def contrasts_html(paths: list[Path]) -> str:
    """Each contrasts CSV as a table; rows whose interval excludes 0 are marked."""
    out = []
    for p in paths:
        try:
            df = pd.read_csv(p)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            out.append(f"<p class=warn>{html.escape(f'{p}: unreadable ({e})')}</p>")
            continue
        lo_hi = next(((lo, hi) for lo, hi in INTERVAL_COLUMNS if lo in df and hi in df), None)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
        body = []
        for _, r in df.iterrows():
            sig = lo_hi is not None and (r[lo_hi[0]] > 0 or r[lo_hi[1]] < 0)
            tds = "".join(f"<td>{html.escape(_cell(v))}</td>" for v in r.values)
            body.append(f"<tr{' class=sig' if sig else ''}>{tds}</tr>")
        cap = f"Paired contrasts: {p.name}" + (" (shaded: interval excludes 0)" if lo_hi else "")
        out.append(f"<div class=tw><table class=contrasts><caption>{html.escape(cap)}</caption><thead><tr>{head}"
                   f"</tr></thead><tbody>{''.join(body)}</tbody></table></div>")
    return "\n".join(out)


def _cell(v) -> str:
    if isinstance(v, float):
        return MISSING if math.isnan(v) else f"{v:.3g}" if abs(v) < 1e-2 else f"{v:.2f}"
    return str(v)


# ---- the comparison groups ---------------------------------------------------------------------
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


def _sample(run_dir: str, video_id: str) -> dict:
    rec = json.loads((Path(run_dir) / "record.json").read_text())
    s = next(s for s in rec["samples"] if s["id"] == video_id)
    fps = float((((rec.get("config") or {}).get("backbone") or {}).get("codec") or {}).get("fps") or 16)
    return {**s, "fps": fps}


def tile_assets(t: dict, media_dir: Path, preview_height: int, clips_of: dict) -> tuple[dict, dict, bool]:
    """(tile for index.js, its heavy data for the group's file, whether the encode was cached)
    of one video of a complete run."""
    s = _sample(t["run_dir"], t["video_id"])
    run = Path(t["run_dir"])
    media = encode_preview(run / s.get("video", f"videos/{t['video_id']}.mp4"), media_dir, preview_height)
    tl_path = run / s.get("timeline", f"timelines/{t['video_id']}.npz")
    timeline = timeline_segments(tl_path) if tl_path.is_file() else None
    if timeline:
        timeline.update(spf=s["video_frames"] / s["fps"] / s["latent_frames"],   # s per latent frame
                        latent_frames=s["latent_frames"])
    if t["run_dir"] not in clips_of:
        clips_of[t["run_dir"]] = read_clips(run)
    cached = media.pop("cached")
    heavy = {"timeline": timeline, "clips": clips_of[t["run_dir"]].get(t["video_id"])}
    return {**t, **media, "has_timeline": bool(timeline)}, heavy, cached


def build(roots, out_dir, preview_height: int = 256, contrasts=(), log=None) -> Path:
    """Write the report folder; returns the path of index.html."""
    t0 = time.perf_counter()
    roots = [Path(r) for r in roots]
    for r in roots:
        if not r.is_dir():
            raise ReportError(f"{r}: no such directory")
    complete, other = find_runs(roots)
    if not complete and not other:
        raise ReportError("no run dirs under " + ", ".join(map(str, roots)))
    statuses = [run_status(d) for d in complete + other]
    df = collect(roots, report=io.StringIO())        # the unfinished it skips are in statuses
    out, data_dir, media_dir = Path(out_dir), Path(out_dir) / "data", Path(out_dir) / "media"
    data_dir.mkdir(parents=True, exist_ok=True)
    variants = row_order(df["variant"]) if len(df) else []
    colors = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)}
    n_cached, index_groups, clips_of = 0, [], {}
    for g in comparison_groups(df, statuses) if len(df) else []:
        tiles, heavy = [], {}
        for t in g["tiles"]:
            try:
                tile, heavy[t["label"]], cached = tile_assets(t, media_dir, preview_height, clips_of)
            except FileNotFoundError as e:       # complete record, but the video is gone
                g["missing"].append({"preset": t["label"], "status": "no video",
                                     "run_dir": t["run_dir"], "reason": f"{e.filename} is missing"})
                continue
            tiles.append({**tile, "color": colors[t["variant"]]})
            n_cached += cached
        if not tiles:
            continue
        gid = f"g{len(index_groups)}"
        (data_dir / f"{gid}.js").write_text(
            f"window.reportData({json.dumps(gid)}, {json.dumps(heavy, separators=(',', ':'))});\n")
        index_groups.append({"id": gid, "prompt": g["prompt"], "seed": g["seed"],
                             "horizon": g["horizon"], "backbone": g["backbone"],
                             "seconds": max(t["seconds"] for t in tiles), "tiles": tiles,
                             "missing": [{k: m[k] for k in ("preset", "status", "reason", "run_dir")}
                                         for m in g["missing"]],
                             "layers": max((len(h["timeline"]["layers"]) for h in heavy.values()
                                            if h["timeline"]), default=0),
                             "dims": sorted({d for h in heavy.values() for d in (h["clips"] or {})}
                                            - {"start_s", "end_s"})})
    _prune_media(media_dir, index_groups)
    n_tiles = sum(len(g["tiles"]) for g in index_groups)
    dims = {d for g in index_groups for d in g.pop("dims")}
    index = {"groups": index_groups, "variants": [{"label": v, "color": colors[v]} for v in variants],
             "dims": [d for d in ["imaging_quality", *DIMENSIONS] if d in dims] + sorted(dims - set(DIMENSIONS)),
             "layers": max((g.pop("layers") for g in index_groups), default=0)}
    (data_dir / "index.js").write_text(f"window.REPORT = {json.dumps(index, separators=(',', ':'))};\n")
    index_html = write_page(out, df, statuses, roots, find_contrasts(roots, contrasts))
    print(f"report: {len(index_groups)} comparisons, {len(statuses)} runs, {n_tiles - n_cached} videos "
          f"encoded, {n_cached} from cache, {time.perf_counter() - t0:.1f} s -> {index_html}",
          file=log or sys.stderr)
    return index_html


def _prune_media(media_dir: Path, index_groups: list[dict]) -> None:
    """Drop encodes no tile uses (older versions of a video, runs no longer in the report)."""
    used = {Path(t["video"]).stem for g in index_groups for t in g["tiles"]}
    for p in media_dir.glob("*") if media_dir.is_dir() else []:
        if p.name.split(".")[0] not in used or ".tmp." in p.name:
            p.unlink()


def write_page(out: Path, df: pd.DataFrame, statuses: list[dict], roots, contrasts: list[Path]) -> Path:
    for asset in ("report.js", "report.css"):
        shutil.copyfile(ASSETS / asset, out / asset)
    counts = {}
    for s in statuses:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    page = ((ASSETS / "index.html").read_text()
            .replace("{{summary}}", _summary_html(counts, roots))
            .replace("{{tables}}", tables_html(df))
            .replace("{{contrasts}}", contrasts_html(contrasts)
                     or "<p class=empty>No contrasts files (analysis.contrasts writes them).</p>")
            .replace("{{runs}}", runs_html(statuses)))
    (out / "index.html").write_text(page)
    return out / "index.html"


STATUS_ORDER = ("complete", "unscored", "failed", "interrupted", "unfinished")


def _summary_html(counts: dict, roots) -> str:
    parts = [f"<span class='st st-{html.escape(k)}'>{counts[k]} {html.escape(k)}</span>"
             for k in sorted(counts, key=lambda k: (STATUS_ORDER + (k,)).index(k))]
    where = ", ".join(html.escape(str(r)) for r in roots)
    return f"Runs under <code>{where}</code>: " + " ".join(parts)


def runs_html(statuses: list[dict]) -> str:
    """Every run with its status; the ones not in the comparison first."""
    rank = lambda s: ((STATUS_ORDER[::-1] + (s["status"],)).index(s["status"]), s["run_dir"])
    e = html.escape
    rows = "".join(
        f"<tr class='st-{e(s['status'])}'><td><span class='st st-{e(s['status'])}'>{e(s['status'])}"
        f"</span></td><td>{e(str(s['preset'] or '?'))}</td><td>{e(str(s['horizon'] or '?'))}</td>"
        f"<td>{e(str(s['backbone'] or '?'))}</td><td class=reason>{e(s['reason'])}</td>"
        f"<td><code>{e(s['run_dir'])}</code></td></tr>" for s in sorted(statuses, key=rank))
    return ("<div class=tw><table class=runs><thead><tr><th>status</th><th>cache</th><th>horizon</th>"
            f"<th>backbone</th><th>reason</th><th>run dir</th></tr></thead><tbody>{rows}</tbody></table></div>")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"], help="run or sweep dirs (default outputs/)")
    ap.add_argument("--out", default="report", help="output folder (default report/)")
    ap.add_argument("--preview-height", type=int, default=256,
                    help="preview video height in pixels (default 256; smaller videos are upscaled "
                         "by an integer factor)")
    ap.add_argument("--contrasts", nargs="*", default=[], help="extra contrasts CSV files")
    a = ap.parse_args(argv)
    try:
        if not 16 <= a.preview_height <= 2160:
            raise ReportError(f"--preview-height={a.preview_height}: must be in [16, 2160]")
        for c in a.contrasts:
            if not Path(c).is_file():
                raise ReportError(f"--contrasts {c}: no such file")
        print(build(a.roots, a.out, a.preview_height, a.contrasts))
    except ReportError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
