"""Paper-style tables (markdown + LaTeX booktabs) from collected runs.

    python -m analysis.tables outputs/ --out tables/                 # main, dims, cost
    python -m analysis.tables outputs/sweeps/... --out tables/ --ablate alpha
    python -m analysis.tables outputs/ --ablate sink memory recent  # budget split at K = 21

Rows are cache presets (a preset run with several settings is split into variants, see
collect.variant_labels); column groups are horizons (30s / 60s / 240s, from prefixes too); a cell
is the mean over videos, ± the sample std when there are >= 2. One table set per (backbone,
evaluator): numbers from different evaluators are never pooled. A cell nobody measured is "—".

- main:  n videos, Quality, imaging quality, signed drift, |drift|, revisit consistency, subject return
- dims:  the six VBench-Long dimensions and Quality
- cost:  chunk latency median, KV-cache MB, peak RSS (own horizon only; runs without eval too)
- ablation_<keys>: the main metrics against the values of the swept key(s)
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from tethercache.eval.metrics import QUALITY_LIST, columns, metric

from .cli import BadArgument, Parser, count, fail, output_dir, parse, run_paths
from .collect import collect, config_value, nothing_to_do, variant_labels
from .contrasts import DEFAULT_METRICS, NotPaired, contrast_table, known_arms, write_contrast_csv
from .markup import MISSING, to_latex, to_markdown, write_table  # noqa: F401 - re-exported
from .rows import PRESET_ORDER, add_quality, dedupe, quality_dims, row_order  # noqa: F401


# Columns by metric name; labels, scales (x100 for [0, 1] scores) and digits: eval/metrics.py.
MAIN = columns("quality", "imaging_quality", "quality_drift", "quality_drift_abs",
               "revisit_consistency", "subject_return")
DIMS = columns(*QUALITY_LIST, "quality")
# The paper's layout for VBench-Long (TetherCache Table 1): Total / Quality / Semantic / drift.
MAIN_VBENCH = columns("total", "quality", "semantic", "drift_5s", "drift_5s_abs", "drift_10s",
                      "drift_clip", "drift_15pct")
COST = columns("chunk_ms", "kv_cache_mb", "peak_rss_mb")


def _fmt(vals: pd.Series, n: int, scale: float, digits: int) -> str:
    vals = vals.dropna() * scale
    if vals.empty:
        return MISSING
    s = f"{vals.mean():.{digits}f}"
    if len(vals) > 1:
        s += f" ± {vals.std():.{digits}f}"
    if len(vals) < n:
        s += f" ({len(vals)})"            # fewer videos measured this metric than the cell has
    return s


def cell_table(df: pd.DataFrame, rows: list[str], metrics, horizons: list[str],
               show_n: bool = True) -> tuple[list[str], list[tuple], list[list[str]]]:
    """(row labels, header groups [(horizon, [headers])], cells) for `rows` of df["row"]."""
    cols = ([metric("n")] if show_n else []) + list(metrics)
    groups = [(h, [c.label for c in cols]) for h in horizons]
    cells = []
    for r in rows:
        line = []
        for h in horizons:
            sub = df[(df["row"] == r) & (df["horizon"] == h)]
            for c in cols:
                if c.name == "n":
                    line.append(str(len(sub)) if len(sub) else MISSING)
                elif c.name not in sub.columns:
                    line.append(MISSING)
                else:
                    line.append(_fmt(sub[c.name], len(sub), c.scale, c.digits))
        cells.append(line)
    return rows, groups, cells


def _horizons(df: pd.DataFrame) -> list[str]:
    return list(df.sort_values("horizon_s")["horizon"].drop_duplicates())


def _note(df: pd.DataFrame, extra: str = "") -> str:
    dims = ", ".join(quality_dims(df)) or "none measured"
    return (f"Mean ± std over videos; (k) = only k videos measured that metric; {MISSING} = not "
            f"measured. Scores in [0, 1] shown x100; Drift = imaging quality of the first 5 s "
            f"minus the last 5 s (x100, positive = worse). Quality = VBench min-max normalised "
            f"mean of [{dims}], dynamic degree weight 0.5. Runs: {df['run_dir'].nunique()}.{extra}")


VBENCH_NOTE = (" VBench-Long (long_custom_input, 2-s clips). Semantic and Total need VBench's nine "
               "semantic dimensions, which custom prompts cannot score: — there. Drifts: imaging "
               "quality first minus last (x100): "
               + ", ".join(f"{m.label} = {m.description}" for m in MAIN_VBENCH
                           if m.kind == "drift" and not m.name.endswith("_abs")) + ".")


def scored_groups(df: pd.DataFrame):
    """(name suffix, rows) per (backbone, evaluator) that has scores."""
    scored = df[df["evaluator"].notna()] if "evaluator" in df.columns else df.iloc[0:0]
    for (bb, ev), g in scored.groupby(["backbone", "evaluator"], sort=True):
        yield f"{bb}_{ev}", add_quality(dedupe(g))


def main_tables(df: pd.DataFrame, out_dir: Path, baseline: str | None = None,
                resamples: int = 4000, seed: int = 0) -> list[Path]:
    written = []
    for suffix, g in scored_groups(df):
        g = g.assign(row=g["variant"])
        rows, hs = row_order(g["row"]), _horizons(g)
        vbench = set(g["evaluator"]) == {"vbench_long"}
        note = _note(g, VBENCH_NOTE if vbench else "")
        written += write_table(out_dir, f"main_{suffix}", cell_table(g, rows, MAIN_VBENCH if vbench else MAIN, hs),
                               "cache", note)
        if baseline is not None and baseline in set(g["row"]):
            metrics = ["total", "quality", "semantic", "drift_5s", "drift_clip"] if vbench else DEFAULT_METRICS
            c_rows, groups, cells, spreads, records = contrast_table(g, baseline, None, metrics,
                                                                      resamples, seed)
            c_note = (f"Paired by prompt vs {baseline}: mean over prompts of the per-prompt difference "
                      f"(seeds averaged first; x100 for scores, drifts already x100) [95 % bootstrap "
                      f"over prompts, {resamples} resamples, seed {seed}]; * = interval excludes 0."
                      + (" Seed spread: " + "; ".join(spreads) if spreads else ""))
            written += write_table(out_dir, f"contrasts_{suffix}", (c_rows, groups, cells), "contrast", c_note)
            written.append(write_contrast_csv(out_dir, f"contrasts_{suffix}", records))
        written += write_table(out_dir, f"dims_{suffix}", cell_table(g, rows, DIMS, hs, show_n=False),
                               "cache", _note(g))
    own = df[~df["prefix"].astype(bool)].assign(chunk_ms=lambda d: d["chunk_seconds_median"] * 1e3)
    for bb, g in own.groupby("backbone"):
        g = g.drop_duplicates(["run_dir", "video"]).assign(row=g["variant"])
        note = (f"Mean ± std over videos of each run's own horizon: median chunk latency (ms), "
                f"KV-cache size (MB), process peak RSS (MB; jobs of a sweep on the basic launcher "
                f"share a process and so its peak: use experiments/bench_cache.py for memory). "
                f"Runs: {g['run_dir'].nunique()}.")
        written += write_table(out_dir, f"cost_{bb}", cell_table(g, row_order(g["row"]), COST,
                                                               _horizons(g)), "cache", note)
    return written


def ablation_tables(df: pd.DataFrame, keys: list[str], out_dir: Path) -> list[Path]:
    written = []
    name = "_".join(k.removeprefix("cache.").replace(".", "-") for k in keys)
    has_keys = pd.concat([config_value(df, k).notna() for k in keys], axis=1).all(axis=1)
    df = df[has_keys]                         # e.g. window has no alpha: not part of this axis
    for suffix, g in scored_groups(df):
        base = variant_labels(g, ignore=keys)
        vals = {k: config_value(g, k) for k in keys}
        axis = pd.Series(" ".join(f"{k.removeprefix('cache.')}={_value(vals[k][i])}" for k in keys)
                         for i in g.index)
        g = g.assign(row=(base + ": " + axis.values).values,
                     _sort=[tuple(vals[k][i] for k in keys) for i in g.index])
        rows = list(g.sort_values(["_sort"], key=lambda s: s.map(_sortable))["row"].drop_duplicates())
        note = _note(g, f" Ablated: {', '.join(keys)}.")
        written += write_table(out_dir, f"ablation_{name}_{suffix}",
                               cell_table(g, rows, MAIN, _horizons(g)), "setting", note)
    return written


def _value(v) -> str:
    """3.0 -> '3' (int config keys come back as floats from a column that also holds NaN)."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _sortable(t):
    return tuple((0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool)
                 else (1, 0, str(v)) for v in t)


def main(argv=None) -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"], help="dirs to scan (default outputs/)")
    ap.add_argument("--out", default="tables", help="output dir (default tables/)")
    ap.add_argument("--ablate", nargs="+", default=None, metavar="KEY",
                    help="swept key(s), e.g. alpha, cache.tau, or sink memory recent")
    ap.add_argument("--baseline", default=None,
                    help="also write paired contrasts (bootstrap CIs over prompts) vs this arm")
    ap.add_argument("--resamples", default=4000, help="bootstrap resamples (>= 100)")
    ap.add_argument("--seed", default=0, help="bootstrap seed")

    def check(a):
        run_paths(a.roots)
        output_dir("--out", a.out)
        a.resamples, a.seed = count("--resamples", a.resamples, 100), count("--seed", a.seed, 0)
    a = parse(ap, argv, check)
    df = collect(a.roots)
    if df.empty:
        nothing_to_do(a.roots)
    out = Path(a.out)
    try:
        if a.baseline is not None:
            known_arms(df, a.baseline)
        for key in a.ablate or ():
            if config_value(df, key).isna().all():
                raise BadArgument(f"--ablate={key}: no run records this key")
    except BadArgument as e:
        fail(e)
    try:
        written = (ablation_tables(df, a.ablate, out) if a.ablate
                   else main_tables(df, out, a.baseline, a.resamples, a.seed))
    except NotPaired as e:
        sys.exit(f"error: {e}")
    if not written:
        sys.exit("error: nothing to tabulate (no scored runs: use eval=toy or eval=vbench)")
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
