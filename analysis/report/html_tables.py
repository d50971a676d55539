"""The report's tables as HTML: main, VBench dimensions, cost and an ablation per preset whose
runs differ in a config key (best mean per column in bold), and the paired contrasts CSVs
(`contrasts*.csv` under the dirs, or --contrasts; rows whose interval excludes 0 are shaded)."""
from __future__ import annotations

import html
import io
import json
import math
from pathlib import Path

import pandas as pd

from tethercache.eval.metrics import metric

from ..markup import MISSING
from ..rows import add_quality, dedupe, row_order
from ..tables import COST, DIMS, MAIN, _horizons

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
        except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            out.append(f"<p class=warn>{html.escape(f'{p}: unreadable ({e})')}</p>")
            continue
        lo_hi = next(((lo, hi) for lo, hi in INTERVAL_COLUMNS if lo in df and hi in df), None)
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
        body = []
        for _, r in df.iterrows():
            lo, hi = (pd.to_numeric(r[c], errors="coerce") for c in lo_hi) if lo_hi else (0, 0)
            sig = bool(lo > 0 or hi < 0)                 # a non-number never counts
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
