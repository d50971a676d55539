"""Which rows a table is made of: one per (setting, horizon, video), with VBench-style Quality,
in the presets' paper order. Shared by tables and contrasts."""
from __future__ import annotations

import math
import sys

import pandas as pd

from tethercache.eval.metrics import METRICS, QUALITY_LIST
from tethercache.eval.scores import normalized

PRESET_ORDER = ("window", "sink", "fifo_relative", "tether_no_grab", "tether_no_tame",
                "tether_code", "tether", "oracle", "full")


def quality_dims(df: pd.DataFrame) -> list[str]:
    return [d for d in QUALITY_LIST if d in df.columns and df[d].notna().any()]


def add_quality(df: pd.DataFrame) -> pd.DataFrame:
    """Per-video VBench-style Quality in [0, 1]: the weighted mean of the VBench-normalised quality
    dims an evaluator measured (NaN if one is missing)."""
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
