"""The analysis reproduces a published table from its per-video scores: commit-forcing's 240 s,
MovieGen-32, seed-0 VBench-Long table of TetherCache (GRAB + TAME) vs TetherCache's FIFO baseline
(source, columns and what is checked: tests/data/published/commit_forcing_240s/README.md).

Their per-video rows become run dirs in the real layout (record.json + metrics.json, as run.py
and the evaluation step leave them); then analysis.collect -> rows.add_quality (Quality from the
seven dimensions, never their quality column) -> tables.cell_table (means) -> the contrasts CLI
(paired deltas, 95 % bootstrap intervals over prompts)."""
import math

import numpy as np
import pandas as pd
import pytest

from analysis import contrasts
from analysis.collect import collect
from analysis.contrasts import contrast
from analysis.tables import cell_table, scored_groups
from conftest import ROOT
from fake_runs import write_scored_run
from tethercache.eval.metrics import QUALITY_LIST, columns, metric

DATA = ROOT / "tests" / "data" / "published" / "commit_forcing_240s"
# their label -> our preset and its cache settings (TetherCache's code defaults, as they ran it)
ARMS = {"tethercache_fifo": ("fifo_relative", {"budget": 21, "sink": 3, "recent": 4, "grab": False,
                                               "tame": False, "rope": "relative"}),
        "tethercache": ("tether", {"budget": 21, "sink": 3, "recent": 4, "memory": 14, "tau": 0.35,
                                   "grab": True, "tame": True, "rope": "relative"})}
BASE, ARM = (preset for preset, _ in ARMS.values())
# Published (x100; drifts already x100): FIFO mean, TetherCache mean, "delta[*] [lo, hi]", in the
# order their bootstrap drew them (quality, the seven dimensions, the two drifts, the four parts).
PUBLISHED = {
    "quality": ("80.70", "82.87", "+2.17* [+0.47, +3.64]"),
    "dynamic_degree": ("37.58", "68.52", "+30.94* [+21.02, +41.59]"),
    "motion_smoothness": ("98.28", "97.77", "-0.52 [-1.64, +0.12]"),
    "temporal_flickering": ("97.24", "95.77", "-1.47* [-2.56, -0.65]"),
    "imaging_quality": ("68.25", "71.13", "+2.88* [+0.70, +4.82]"),
    "aesthetic_quality": ("58.81", "60.91", "+2.10* [+0.35, +3.77]"),
    "subject_consistency": ("97.02", "96.68", "-0.34 [-1.02, +0.14]"),
    "background_consistency": ("96.07", "95.93", "-0.14 [-0.41, +0.11]"),
    "drift_clip": ("12.20", "2.35", "-9.85* [-14.88, -4.72]"),
    "drift_10s": ("12.46", "2.27", "-10.18* [-14.65, -5.39]"),
    "subject_inclip": ("96.57", "95.94", "-0.63 [-1.76, +0.15]"),
    "subject_clip2clip": ("76.62", "76.71", "+0.09 [-2.62, +2.86]"),
    "background_inclip": ("95.67", "95.26", "-0.41* [-0.83, -0.01]"),
    "background_clip2clip": ("81.27", "82.69", "+1.42 [-0.77, +3.52]"),
}
# Their table's bootstrap: one generator seeded 0 for the whole table, 4,000 resamples of the 32
# prompts per cell, drawn contrast by contrast, metric by metric; this contrast is the third.
RESAMPLES, PROMPTS, CELLS_BEFORE = 4000, 32, 2 * len(PUBLISHED)
# Our own per-cell seeding gives other draws of the same bootstrap: bounds agree within a share
# of the bootstrap standard error (README there: the Monte Carlo spread is <= 0.06 SE per run).
BOUND_TOL_SE = 0.3


def parse_cell(cell: str) -> tuple[float, bool, float, float]:
    """'+2.17* [+0.47, +3.64]' -> (2.17, True, 0.47, 3.64)."""
    delta, bounds = cell.split(" [")
    lo, hi = bounds.rstrip("]").split(", ")
    return float(delta.rstrip("*")), delta.endswith("*"), float(lo), float(hi)


def published_videos() -> pd.DataFrame:
    """Their per-video scores and drifts, one row per (label, prompt), drifts on our x100 scale."""
    scores = pd.read_csv(DATA / "vbench_long_240s_moviegen32.csv")
    drift = pd.read_csv(DATA / "quality_drift_240s_moviegen32.csv")
    rows = scores.merge(drift, on=["label", "seed", "prompt"], validate="one_to_one")
    assert len(rows) == len(scores) == len(drift) == 2 * PROMPTS
    return rows.assign(drift_clip=100 * rows["dDrift1"], drift_10s=100 * rows["dDrift5"])


def write_published_runs(root):
    """`root`, with one 240 s run dir per arm written in it. Prompts are named by their index in
    the suite (zero-padded: the sorted order our bootstrap resamples in is theirs); their quality
    column is left out."""
    metrics = [m for m in PUBLISHED if m != "quality"]
    for label, g in published_videos().groupby("label"):
        preset, cache = ARMS[label]
        videos = [{"video": f"p{r.prompt:03d}s{r.seed}", "seed": int(r.seed),
                   "prompt": f"MovieGenVideoBench_extended #{r.prompt:02d}",
                   **{m: float(getattr(r, m)) for m in metrics}} for r in g.itertuples()]
        write_scored_run(root / f"{preset}-240s", preset, "240s", videos, cache)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return write_published_runs(tmp_path_factory.mktemp("published"))


@pytest.fixture(scope="module")
def rows(runs):
    """The table rows: collected, deduplicated, Quality added (one group: self_forcing, vbench_long)."""
    groups = list(scored_groups(collect([runs])))
    assert [name for name, _ in groups] == ["self_forcing_vbench_long"]
    return groups[0][1]


def test_quality_from_the_dimensions_is_their_quality(rows):
    """add_quality (VBench normalisation, dynamic degree weight 0.5, temporal flickering in) gives
    their per-video quality column to float precision."""
    theirs = published_videos().assign(preset=lambda d: d["label"].map(lambda l: ARMS[l][0]))
    ours = rows.assign(prompt_index=rows["video"].str[1:4].astype(int))
    both = ours.merge(theirs, left_on=["preset", "prompt_index"], right_on=["preset", "prompt"],
                      suffixes=("_ours", "_theirs"))
    assert len(both) == 2 * PROMPTS and set(QUALITY_LIST) <= set(rows.columns)
    assert np.abs(both["quality_ours"] - both["quality_theirs"]).max() < 1e-12
    assert not math.isclose(both["quality_ours"].std(), 0)


def test_means_reproduce_the_published_table(rows):
    table = rows.assign(row=rows["variant"])
    _, groups, cells = cell_table(table, [BASE, ARM], columns(*PUBLISHED), ["240s"], show_n=False)
    assert groups[0][0] == "240s"
    for line, which in zip(cells, (0, 1)):
        means = [c.split(" ±")[0] for c in line]
        assert means == [PUBLISHED[m][which] for m in PUBLISHED], (BASE, ARM)[which]


def test_contrasts_cli_reproduces_deltas_verdicts_and_intervals(runs, tmp_path):
    """Deltas exactly (to the published 2 decimals) and every verdict (* = excludes 0); bounds
    within BOUND_TOL_SE bootstrap standard errors (our seed draws other resamples than theirs)."""
    contrasts.main([str(runs), "--baseline", BASE, "--arms", ARM, "--metrics", *PUBLISHED,
                    "--resamples", str(RESAMPLES), "--seed", "0", "--out", str(tmp_path)])
    got = pd.read_csv(tmp_path / "contrasts_self_forcing_vbench_long.csv").set_index("metric")
    assert list(got.index) == list(PUBLISHED) and set(got["prompts"]) == {PROMPTS}
    videos = published_videos()
    for m, (_, _, cell) in PUBLISHED.items():
        delta, excludes_zero, lo, hi = parse_cell(cell)
        r = got.loc[m]
        assert f"{r['delta']:+.2f}" == f"{delta:+.2f}" and bool(r["excludes_zero"]) == excludes_zero, m
        d = videos.pivot(index="prompt", columns="label", values=m)
        diff = metric(m).scale * (d["tethercache"] - d["tethercache_fifo"])
        se = diff.std(ddof=0) / math.sqrt(PROMPTS)          # the bootstrap standard error of the mean
        tol = BOUND_TOL_SE * se + 0.005                      # + the published rounding
        assert abs(r["lo"] - lo) <= tol and abs(r["hi"] - hi) <= tol, (m, r["lo"], r["hi"], tol)


def test_their_bootstrap_stream_gives_every_published_interval_exactly(rows):
    """Our contrast() drawing from their one stream, in their order, prints their cells digit for
    digit: the same paired percentile bootstrap over prompts, nothing else differs."""
    stream = np.random.default_rng(0)
    stream.integers(0, PROMPTS, size=(CELLS_BEFORE * RESAMPLES, PROMPTS))   # the two contrasts before
    base, arm = rows[rows["variant"] == BASE], rows[rows["variant"] == ARM]
    cells = {m: contrast(base, arm, m, RESAMPLES, stream, names=(BASE, ARM)).cell() for m in PUBLISHED}
    assert cells == {m: cell for m, (_, _, cell) in PUBLISHED.items()}
