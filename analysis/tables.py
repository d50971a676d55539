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

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from tethercache.eval.metrics import METRICS, QUALITY_LIST, columns, metric
from tethercache.eval.scores import normalized

from .collect import collect, config_value, variant_labels

PRESET_ORDER = ("window", "sink", "fifo_relative", "tether_no_grab", "tether_no_tame",
                "tether_code", "tether", "oracle", "full")
MISSING = "—"

# Columns by metric name; labels, scales (x100 for [0, 1] scores) and digits: eval/metrics.py.
MAIN = columns("quality", "imaging_quality", "quality_drift", "quality_drift_abs",
               "revisit_consistency", "subject_return")
DIMS = columns(*QUALITY_LIST, "quality")
# The paper's layout for VBench-Long (TetherCache Table 1): Total / Quality / Semantic / drift.
MAIN_VBENCH = columns("total", "quality", "semantic", "drift_5s", "drift_5s_abs", "drift_10s",
                      "drift_clip", "drift_15pct")
COST = columns("chunk_ms", "kv_cache_mb", "peak_rss_mb")


def quality_dims(df: pd.DataFrame) -> list[str]:
    return [d for d in QUALITY_LIST if d in df.columns and df[d].notna().any()]


def add_quality(df: pd.DataFrame) -> pd.DataFrame:
    """Per-video VBench-style Quality in [0, 1] from the dims present (NaN if one is missing)."""
    dims = quality_dims(df)
    df = df.copy()
    if not dims:
        df["quality"] = math.nan
        return df
    w = {d: METRICS[d].weight for d in dims}
    df["quality"] = sum(w[d] * normalized(d, df[d]) for d in dims) / sum(w.values())
    return df


def dedupe(df: pd.DataFrame, report=None) -> pd.DataFrame:
    """One row per (setting, horizon, video): a video scored both as a run's own horizon and as a
    longer run's prefix (identical frames), or re-run, must count once. Own horizon and the
    newest run win."""
    key = ["backbone", "evaluator", "variant", "horizon", "prompt", "sample_seed"]
    df = df.sort_values(["prefix", "run_dir"], ascending=[True, False], kind="stable")
    out = df.drop_duplicates(key, keep="first")
    if len(out) < len(df):
        print(f"note: {len(df) - len(out)} duplicate (setting, horizon, video) rows dropped "
              "(prefix of a longer run or a re-run)", file=report or sys.stderr)
    return out.sort_index()


def row_order(labels) -> list:
    def rank(label):
        preset = str(label).split(" ")[0]
        return (PRESET_ORDER.index(preset) if preset in PRESET_ORDER else len(PRESET_ORDER), str(label))
    return sorted(set(labels), key=rank)


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


def to_markdown(rows, groups, cells, row_header: str, note: str) -> str:
    esc = lambda s: str(s).replace("|", r"\|")          # a literal | would split the cell
    header = [row_header] + [f"{h} {c}" for h, cs in groups for c in cs]
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(map(esc, [r, *c])) + " |" for r, c in zip(rows, cells)]
    return "\n".join(lines) + f"\n\n{note}\n"


def _tex(s: str) -> str:
    s = str(s).replace("\\", r"\textbackslash{}")
    for a, b in (("_", r"\_"), ("%", r"\%"), ("&", r"\&"), ("#", r"\#"), ("|", r"$|$")):
        s = s.replace(a, b)
    return s.replace(" ± ", r" $\pm$ ").replace(MISSING, "---")


def to_latex(rows, groups, cells, row_header: str, note: str) -> str:
    n_cols = sum(len(cs) for _, cs in groups)
    out = [r"% " + note.replace("\n", " "), r"\begin{tabular}{l" + "c" * n_cols + "}", r"\toprule"]
    if len(groups) > 1 or groups[0][0]:
        out.append(" & " + " & ".join(rf"\multicolumn{{{len(cs)}}}{{c}}{{{_tex(h)}}}"
                                      for h, cs in groups) + r" \\")
        start, rules = 2, []
        for _, cs in groups:
            rules.append(rf"\cmidrule(lr){{{start}-{start + len(cs) - 1}}}")
            start += len(cs)
        out.append(" ".join(rules))
    out.append(" & ".join([_tex(row_header)] + [_tex(c) for _, cs in groups for c in cs]) + r" \\")
    out.append(r"\midrule")
    out += [" & ".join([_tex(r)] + [_tex(c) for c in line]) + r" \\" for r, line in zip(rows, cells)]
    out += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(out)


def write_table(out_dir: Path, name: str, table, row_header: str, note: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex = out_dir / f"{name}.md", out_dir / f"{name}.tex"
    md.write_text(f"### {name}\n\n" + to_markdown(*table, row_header, note))
    tex.write_text(to_latex(*table, row_header, note))
    return [md, tex]


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
            from .contrasts import DEFAULT_METRICS, contrast_table, write_contrast_csv
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
    for key in keys:
        if config_value(df, key).isna().all():
            raise ValueError(f"--ablate {key}: no run records this key")
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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"], help="dirs to scan (default outputs/)")
    ap.add_argument("--out", default="tables", help="output dir (default tables/)")
    ap.add_argument("--ablate", nargs="+", default=None, metavar="KEY",
                    help="swept key(s), e.g. alpha, cache.tau, or sink memory recent")
    ap.add_argument("--baseline", default=None,
                    help="also write paired contrasts (bootstrap CIs over prompts) vs this arm")
    ap.add_argument("--resamples", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    a = ap.parse_args(argv)
    try:
        df = collect(a.roots)
        if df.empty:
            sys.exit("error: no complete runs under " + ", ".join(a.roots))
        out = Path(a.out)
        written = (ablation_tables(df, a.ablate, out) if a.ablate
                   else main_tables(df, out, a.baseline, a.resamples, a.seed))
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"error: {e}")
    if not written:
        sys.exit("error: nothing to tabulate (no scored runs: use eval=toy or eval=vbench)")
    for p in written:
        print(p)


if __name__ == "__main__":
    main()
