"""Build the report folder: collect the runs, encode the previews, write each comparison group's
data (data/<id>.js), the index (data/index.js: groups, variants and their colours, the region
legend from the region table, clip dimensions, layers) and index.html. Bad arguments fail before
any work; a corrupt file of a run is named on stderr and beside that run, and the rest is built."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tethercache.eval.schema import DIMENSIONS

from .. import cli
from ..collect import CorruptFile, collect_runs, print_skipped
from ..rows import row_order
from . import outdir
from .html_tables import find_contrasts
from .outdir import OwnedDir
from .page import write_page
from .status import run_row
from .tiles import comparison_groups, tile_assets
from .timeline import codes_in, region_legend

PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
           "#9c755f", "#ff9da7", "#bab0ac")


def build(roots, out_dir, preview_height: int = 256, contrasts=(), log=None) -> Path | None:
    """Write the report folder; returns the path of index.html (None, and nothing written, when
    there are no run dirs under the roots). The arguments are checked as main() checks them."""
    t0, log = time.perf_counter(), log or sys.stderr
    roots = cli.run_paths(roots)
    df, states = collect_runs(roots)
    if not states:
        print(f"no run dirs under {', '.join(map(str, roots))}: nothing written", file=log)
        return None
    print_skipped(states, log)
    records = {str(s.run_dir): s.record for s in states if s.status == "complete"}
    statuses = [run_row(s) for s in states]
    out = OwnedDir.open(Path(out_dir))
    variants = row_order(df["variant"]) if len(df) else []
    colors = {v: PALETTE[i % len(PALETTE)] for i, v in enumerate(variants)}
    n_cached, index_groups, clips_of, problems, codes = 0, [], {}, {}, set()
    for g in comparison_groups(df, statuses) if len(df) else []:
        tiles, heavy = [], {}
        for t in g["tiles"]:
            try:
                tile, heavy[t["label"]], cached, bad = tile_assets(t, records[t["run_dir"]], out,
                                                                  preview_height, clips_of)
            except FileNotFoundError as e:       # complete record, but the video is gone
                g["missing"].append({"preset": t["label"], "status": "no video",
                                     "run_dir": t["run_dir"], "reason": f"{e.filename} is missing"})
                continue
            except CorruptFile as e:
                bad = [e.in_run(Path(t["run_dir"]))]
                g["missing"].append({"preset": t["label"], "status": "corrupt",
                                     "run_dir": t["run_dir"], "reason": bad[0]})
            else:
                tiles.append({**tile, "color": colors[t["variant"]]})
                n_cached += cached
                codes |= codes_in(heavy[t["label"]]["timeline"])
            for line in bad:
                problems.setdefault(t["run_dir"], {})[line] = None
        if not tiles:
            continue
        gid = f"g{len(index_groups)}"
        out.path(f"data/{gid}.js").write_text(
            f"window.reportData({json.dumps(gid)}, {json.dumps(heavy, separators=(',', ':'))});\n")
        index_groups.append({"id": gid, "prompt": g["prompt"], "seed": g["seed"],
                             "horizon": g["horizon"], "backbone": g["backbone"],
                             "seconds": max(t["seconds"] for t in tiles), "tiles": tiles,
                             "missing": [{k: m[k] for k in ("preset", "status", "reason", "run_dir")}
                                         for m in g["missing"]],
                             "layers": max((len(h["timeline"]["layers"]) for h in heavy.values()
                                            if h and h["timeline"]), default=0),
                             "dims": sorted({d for h in heavy.values() if h for d in (h["clips"] or {})}
                                            - {"start_s", "end_s"})})
    for row in statuses:                       # a run shown without some of its files
        if row["run_dir"] in problems:
            lines = list(problems[row["run_dir"]])
            row.update(status="corrupt", reason="; ".join(lines))
            for line in lines:
                print(f"corrupt ({line}; shown without it): {row['run_dir']}", file=log)
    n_tiles = sum(len(g["tiles"]) for g in index_groups)
    dims = {d for g in index_groups for d in g.pop("dims")}
    index = {"groups": index_groups, "variants": [{"label": v, "color": colors[v]} for v in variants],
             "regions": region_legend(codes),
             "dims": [d for d in ["imaging_quality", *DIMENSIONS] if d in dims] + sorted(dims - set(DIMENSIONS)),
             "layers": max((g.pop("layers") for g in index_groups), default=0)}
    out.path("data/index.js").write_text(f"window.REPORT = {json.dumps(index, separators=(',', ':'))};\n")
    index_html = write_page(out, df, statuses, roots, find_contrasts(roots, contrasts))
    out.finish()
    print(f"report: {len(index_groups)} comparisons, {len(statuses)} runs, {n_tiles - n_cached} videos "
          f"encoded, {n_cached} from cache, {time.perf_counter() - t0:.1f} s -> {index_html}", file=log)
    return index_html


def main(argv=None) -> None:
    ap = cli.Parser(description="Comparison report: a static page to watch policies side by side.")
    ap.add_argument("roots", nargs="*", default=["outputs"], help="run or sweep dirs (default outputs/)")
    ap.add_argument("--out", default="report", help="output folder (default report/)")
    ap.add_argument("--preview-height", default=256,
                    help="preview video height in pixels (default 256; smaller videos are upscaled "
                         "by an integer factor)")
    ap.add_argument("--contrasts", nargs="*", default=[], help="extra contrasts CSV files")
    ap.add_argument("--force", action="store_true",
                    help="write into a non-empty folder the report did not make (its files are kept)")

    def check(a):
        cli.run_paths(a.roots)
        a.preview_height = cli.count("--preview-height", a.preview_height, 16, 2160)
        for c in a.contrasts:
            if not Path(c).is_file():
                raise cli.BadArgument(f"--contrasts={c}: no such file")
        cli.output_dir("--out", a.out)
        outdir.check("--out", Path(a.out), a.force)
    a = cli.parse(ap, argv, check)
    index = build(a.roots, a.out, a.preview_height, a.contrasts)
    if index is not None:
        print(index)
