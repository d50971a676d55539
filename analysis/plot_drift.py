"""Quality over time per cache preset, and imaging quality per camera period.

    python -m analysis.plot_drift outputs/sweeps/<date>/<time> --out drift.png [--dims aesthetic_quality]

drift.png: one panel per dimension (imaging_quality first), x = seconds (end of each 2-s clip
from clips.csv), y = mean over the preset's videos, one line per preset (variant); a line that
sinks over time is quality drift. drift_periods.png: extra_imaging_period_<i> (the toy runner's
imaging quality over the i-th full camera period: position-balanced, since the ping-pong camera
can end a video where it started) per preset, mean over the videos that have period i.
One figure set per (backbone, evaluator). `plot_drift(roots, out, dims)` is the entry point.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from .collect import collect  # noqa: E402
from .tables import row_order  # noqa: E402


def load_clips(df: pd.DataFrame) -> pd.DataFrame:
    """clips.csv rows of every run in df (own horizon), tagged with its variant and backbone."""
    frames = []
    runs = df[~df["prefix"].astype(bool)].drop_duplicates("run_dir")
    for _, r in runs.iterrows():
        path = Path(r["run_dir"]) / "clips.csv"
        if path.is_file():
            c = pd.read_csv(path)
            frames.append(c.assign(run_dir=r["run_dir"], variant=r["variant"], backbone=r["backbone"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _suffixed(out: Path, tag: str, n: int) -> Path:
    """out itself when there is one figure set, else out with the (backbone, evaluator) tag."""
    return out if n == 1 else out.with_name(f"{out.stem}_{tag}{out.suffix}")


def plot_over_time(clips: pd.DataFrame, dims: list[str], out: Path, smooth: int = 1) -> Path:
    fig, axes = plt.subplots(1, len(dims), figsize=(5 * len(dims), 3.4), squeeze=False)
    for ax, d in zip(axes[0], dims):
        for label in row_order(clips["variant"]):
            c = clips[clips["variant"] == label]
            mean = c.groupby("end_s")[d].mean()            # mean over videos at each clip
            n = c.groupby("end_s")["video"].nunique().max()
            if mean.notna().any():
                y = mean.rolling(smooth, min_periods=1, center=True).mean() if smooth > 1 else mean
                ax.plot(y.index, y.values, lw=1.3, label=f"{label} (n={n})")
        ax.set(title=d, xlabel="seconds (clip end)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("mean score per 2-s clip")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_periods(df: pd.DataFrame, out: Path) -> Path | None:
    cols = sorted((c for c in df.columns if c.startswith("extra_imaging_period_")),
                  key=lambda c: int(c.rsplit("_", 1)[1]))
    own = df[~df["prefix"].astype(bool)]
    if not cols or own[cols].isna().all().all():
        return None
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    for label in row_order(own["variant"]):
        g = own[own["variant"] == label][cols]
        mean = g.mean()
        if mean.notna().any():
            idx = [int(c.rsplit("_", 1)[1]) for c in cols]
            ax.plot(idx, mean.values, marker="o", ms=3, lw=1.2, label=f"{label} (n={len(g)})")
    ax.set(xlabel="camera period (full ping-pong sweeps)", ylabel="imaging quality",
           title="imaging quality per camera period")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_drift(roots, out, dims=("imaging_quality",), smooth: int = 1) -> list[Path]:
    df = collect(roots)
    if df.empty or "evaluator" not in df or df["evaluator"].isna().all():
        raise ValueError("no scored runs (clips.csv / metrics.json) under the given dirs")
    dims = list(dict.fromkeys(["imaging_quality", *dims]))
    out, written = Path(out), []
    groups = list(df[df["evaluator"].notna()].groupby(["backbone", "evaluator"]))
    for (bb, ev), g in groups:
        target = _suffixed(out, f"{bb}_{ev}", len(groups))
        clips = load_clips(g)
        if not clips.empty:
            missing = [d for d in dims if d not in clips.columns]
            if missing:
                raise ValueError(f"--dims {missing}: not in clips.csv ({list(clips.columns)})")
            written.append(plot_over_time(clips, dims, target, smooth))
        p = plot_periods(g, target.with_name(f"{target.stem}_periods{target.suffix}"))
        if p:
            written.append(p)
    return written


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("roots", nargs="+", help="run dirs or dirs to scan (a sweep dir)")
    ap.add_argument("--out", default="drift.png", help="PNG path (default drift.png)")
    ap.add_argument("--dims", nargs="*", default=[], help="more dims besides imaging_quality")
    ap.add_argument("--smooth", type=int, default=1, help="centred moving average over N clips")
    a = ap.parse_args(argv)
    try:
        for p in plot_drift(a.roots, a.out, a.dims, a.smooth):
            print(p)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
