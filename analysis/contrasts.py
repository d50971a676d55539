"""Paired contrasts between cache policies with bootstrap confidence intervals over prompts.

    python -m analysis.contrasts outputs/ --baseline window --arms sink tether --out tables/
    python -m analysis.contrasts outputs/ --baseline window --metrics quality drift_5s --resamples 4000

Two arms (variants, see collect.variant_labels) are compared on the videos they share: the same
prompts, seeds and length (horizon). Per prompt: each arm's metric is averaged over its seeds
first, then difference = arm - baseline (x100 for [0, 1] scores; drifts already are x100). The
table shows the mean difference over prompts with a percentile bootstrap 95 % interval (prompts
resampled with replacement; `--resamples`, `--seed`), marks intervals that exclude 0 with *, and
reports the seed-to-seed spread (mean over prompts of the std over seeds of the paired
difference) where prompts have several seeds. Arms that differ in prompts, seeds or lengths are
refused with a message saying what differs: a contrast over different videos is not paired.
Protocol as in the commit-forcing paper's evaluation: paired by prompt, 4,000 resamples. The
percentile interval runs slightly narrow at tens of prompts (about 93 % coverage at 40 prompts,
tests/test_contrasts.py); at the usual 200 it is close to 95 %.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tethercache.eval.metrics import METRICS, metric as metric_def

from .cli import BadArgument, Parser, count, fail, output_dir, parse, run_paths
from .collect import collect, nothing_to_do
from .markup import write_table
from .rows import add_quality, dedupe, row_order

# labels and scales to the table's x100 units: eval/metrics.py
DEFAULT_METRICS = ("quality", "imaging_quality", "drift_5s", "drift_clip")


class NotPaired(ValueError):
    """Two arms that do not share their videos."""


@dataclass
class Contrast:
    metric: str
    delta: float          # mean over prompts of (arm - baseline), table units
    lo: float
    hi: float
    n_prompts: int
    seeds: int            # seeds per prompt
    seed_spread: float    # mean over prompts of the std over seeds of the paired difference

    @property
    def excludes_zero(self) -> bool:
        return self.lo > 0 or self.hi < 0

    def cell(self, digits: int = 2) -> str:
        if math.isnan(self.delta):
            return "—"
        star = "*" if self.excludes_zero else ""
        return f"{self.delta:+.{digits}f}{star} [{self.lo:+.{digits}f}, {self.hi:+.{digits}f}]"


def bootstrap_ci(values, resamples: int = 4000, seed: int | np.random.Generator = 0,
                 level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): percentile bootstrap interval of the mean, resampling the values. `seed`: an
    int seeds this interval alone; a Generator is drawn from in place, so the cells of a table can
    share one stream in a fixed order."""
    v = np.asarray(values, dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(1)
    a = (1 - level) / 2
    return float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a))


def _describe(ids, limit: int = 3) -> str:
    ids = sorted(map(str, ids))
    return ", ".join(ids[:limit]) + (f", ... ({len(ids)})" if len(ids) > limit else "")


def check_paired(base: pd.DataFrame, arm: pd.DataFrame, names: tuple[str, str]) -> None:
    """Refuse arms whose videos differ, saying how."""
    a, b = names
    la, lb = set(base["latent_frames"].dropna()), set(arm["latent_frames"].dropna())
    if la != lb:
        raise NotPaired(f"{a} vs {b}: video lengths differ ({a}: {sorted(la)} latent frames, "
                        f"{b}: {sorted(lb)})")
    pa, pb = set(base["prompt"]), set(arm["prompt"])
    if pa != pb:
        parts = [f"{len(x)} only in {n} ({_describe(x)})" for x, n in ((pa - pb, a), (pb - pa, b)) if x]
        raise NotPaired(f"{a} vs {b}: prompt sets differ: {'; '.join(parts)}")
    sa = base.groupby("prompt")["sample_seed"].apply(frozenset)
    sb = arm.groupby("prompt")["sample_seed"].apply(frozenset)
    diff = [p for p in sa.index if sa[p] != sb[p]]
    if diff:
        raise NotPaired(f"{a} vs {b}: seeds differ for {len(diff)} prompts (e.g. {diff[0]!r}: "
                        f"{sorted(sa[diff[0]])} vs {sorted(sb[diff[0]])})")


def contrast(base: pd.DataFrame, arm: pd.DataFrame, metric: str, resamples: int = 4000,
             seed: int | np.random.Generator = 0, names=("baseline", "arm")) -> Contrast:
    """Paired contrast of one metric between two arms' rows (one row per video); prompts are
    resampled in sorted order. `seed`: as in bootstrap_ci."""
    check_paired(base, arm, names)
    scale = metric_def(metric).scale
    key = ["prompt", "sample_seed"]
    pairs = base[key + [metric]].merge(arm[key + [metric]], on=key, suffixes=("_a", "_b"))
    pairs["d"] = scale * (pairs[f"{metric}_b"] - pairs[f"{metric}_a"])
    pairs = pairs.dropna(subset=["d"])
    per_prompt = pairs.groupby("prompt")["d"]
    seeds = int(per_prompt.size().max()) if len(pairs) else 0
    spread = float(per_prompt.std(ddof=1).mean()) if seeds > 1 else math.nan
    mean, lo, hi = bootstrap_ci(per_prompt.mean().to_numpy(), resamples, seed)
    return Contrast(metric, mean, lo, hi, per_prompt.ngroups, seeds, spread)


def contrast_table(df: pd.DataFrame, baseline: str, arms: list[str] | None, metrics,
                   resamples: int = 4000, seed: int = 0):
    """(rows, header groups, cells, notes, records) for write_table / write_contrast_csv: rows =
    arms vs baseline, column groups = horizons, cells = Δ [lo, hi]; records = one dict per cell."""
    df = df.assign(row=df["variant"])
    if baseline not in set(df["row"]):
        raise NotPaired(f"--baseline {baseline}: no such arm; arms: {row_order(df['row'])}")
    arms = arms or [r for r in row_order(df["row"]) if r != baseline]
    missing = [a for a in arms if a not in set(df["row"])]
    if missing:
        raise NotPaired(f"--arms {missing[0]}: no such arm; arms: {row_order(df['row'])}")
    horizons = list(df.sort_values("horizon_s")["horizon"].drop_duplicates())
    metrics = [m for m in metrics if m in df.columns and df[m].notna().any()]
    if not metrics:
        raise NotPaired("none of the metrics was measured")
    groups = [(h, [metric_def(m).label for m in metrics]) for h in horizons]
    cells, spreads, records = [], [], []
    for arm in arms:
        line = []
        for h in horizons:
            a = df[(df["row"] == baseline) & (df["horizon"] == h)]
            b = df[(df["row"] == arm) & (df["horizon"] == h)]
            if a.empty or b.empty:
                line += ["—"] * len(metrics)
                continue
            for m in metrics:
                c = contrast(a, b, m, resamples, seed, names=(f"{baseline} {h}", f"{arm} {h}"))
                line.append(c.cell())
                records.append({"arm": arm, "baseline": baseline, "horizon": h, "metric": m,
                                "delta": c.delta, "lo": c.lo, "hi": c.hi,
                                "excludes_zero": c.excludes_zero, "prompts": c.n_prompts,
                                "seeds": c.seeds, "seed_spread": c.seed_spread})
                if not math.isnan(c.seed_spread):
                    spreads.append(f"{arm} {h} {m}: {c.seed_spread:.2f} ({c.seeds} seeds)")
        cells.append(line)
    return [f"{a} vs {baseline}" for a in arms], groups, cells, spreads, records


def known_arms(df: pd.DataFrame, *names: str) -> list[str]:
    """The scored arms (variant labels); BadArgument naming the first of `names` that is not one."""
    arms = row_order(df.loc[df["evaluator"].notna(), "variant"]) if "evaluator" in df else []
    for flag, name in zip(("--baseline", *["--arms"] * (len(names) - 1)), names):
        if name not in arms:
            raise BadArgument(f"{flag}={name}: no such arm (scored arms: {', '.join(arms) or 'none'})")
    return arms


def write_contrast_csv(out_dir: Path, name: str, records: list[dict]) -> Path:
    """The contrasts in long form (one row per arm x horizon x metric, with lo/hi): what
    `analysis.report` reads, and what a script should read rather than the markdown."""
    path = Path(out_dir) / f"{name}.csv"
    pd.DataFrame(records).to_csv(path, index=False)
    return path


def main(argv=None) -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="*", default=["outputs"])
    ap.add_argument("--baseline", required=True, help="the arm (variant label) others are compared to")
    ap.add_argument("--arms", nargs="+", default=None, help="arms to compare (default: all others)")
    ap.add_argument("--metrics", nargs="+", default=list(DEFAULT_METRICS))
    ap.add_argument("--resamples", default=4000, help="bootstrap resamples (>= 100)")
    ap.add_argument("--seed", default=0, help="bootstrap seed")
    ap.add_argument("--out", default="tables")

    def check(a):
        run_paths(a.roots)
        output_dir("--out", a.out)
        a.resamples, a.seed = count("--resamples", a.resamples, 100), count("--seed", a.seed, 0)
        for m in a.metrics:
            try:
                metric_def(m)
            except KeyError:
                raise BadArgument(f"--metrics={m}: unknown metric; known: {', '.join(METRICS)}") from None
    a = parse(ap, argv, check)
    df = collect(a.roots)
    if df.empty:
        nothing_to_do(a.roots)
    try:
        known_arms(df, a.baseline, *(a.arms or ()))
    except BadArgument as e:
        fail(e)
    tables = []
    try:
        for (bb, ev), g in df[df["evaluator"].notna()].groupby(["backbone", "evaluator"]):
            g = add_quality(dedupe(g))
            if a.baseline not in set(g["variant"]):
                continue
            arms = [x for x in a.arms if x in set(g["variant"])] if a.arms else None
            if arms == []:
                continue
            tables.append((f"contrasts_{bb}_{ev}", contrast_table(g, a.baseline, arms, a.metrics,
                                                                   a.resamples, a.seed)))
    except NotPaired as e:
        sys.exit(f"error: {e}")
    if not tables:
        sys.exit(f"error: --baseline={a.baseline}: no evaluator scored it beside the --arms")
    spread_note = lambda spreads: (                        # noqa: E731
        "Seed-to-seed spread (std over seeds of the paired difference, mean over prompts): "
        + "; ".join(spreads) + "." if spreads else "One seed per prompt.")
    for name, (rows, groups, cells, spreads, records) in tables:       # written only when all computed
        note = (f"Paired by prompt: per-prompt mean over seeds of (arm - {a.baseline}), x100 for "
                f"[0, 1] scores (drifts already x100); mean over prompts [95 % percentile bootstrap "
                f"over prompts, {a.resamples} resamples, seed {a.seed}]; * = interval excludes 0. "
                + spread_note(spreads))
        for p in [*write_table(Path(a.out), name, (rows, groups, cells), "contrast", note),
                  write_contrast_csv(Path(a.out), name, records)]:
            print(p)


if __name__ == "__main__":
    main()
