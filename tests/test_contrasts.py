"""Paired contrasts with bootstrap intervals (analysis/contrasts.py) and the VBench-Long paper
table, on known answers: planted differences, coverage over many null draws, seeds aggregated per
prompt, refusal of unpaired arms; run dirs written in the real layout (record.json + metrics.json)."""
import numpy as np
import pandas as pd
import pytest

from analysis import contrasts, tables
from analysis.contrasts import NotPaired, bootstrap_ci, contrast
from fake_runs import write_scored_run


def arm(values, seeds=None, prompts=None, frames=240, variant="x", horizon="60s"):
    """Rows of one arm: values[i] (or values[i][k] per seed) for prompt i."""
    rows = []
    for i, v in enumerate(values):
        for k, x in enumerate(np.atleast_1d(v)):
            rows.append({"prompt": (prompts or {}).get(i, f"prompt {i}"), "sample_seed": 1000 * i + k,
                         "quality": x, "drift_5s": 100 * x, "latent_frames": frames,
                         "variant": variant, "horizon": horizon, "horizon_s": 60.0})
    return pd.DataFrame(rows)


def test_bootstrap_known_answers():
    assert bootstrap_ci([0.3] * 10) == pytest.approx((0.3, 0.3, 0.3))
    m, lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0], resamples=20000, seed=1)
    assert m == 2.5 and 1.25 <= lo <= 1.75 and 3.25 <= hi <= 3.75
    assert bootstrap_ci([1, 5, 2], seed=3) == bootstrap_ci([1, 5, 2], seed=3)     # seeded


def test_planted_difference_gives_an_interval_excluding_zero():
    rng = np.random.default_rng(0)
    base = rng.normal(0.7, 0.05, 40)
    c = contrast(arm(base), arm(base + 0.02 + rng.normal(0, 0.01, 40)), "quality", seed=0)
    assert c.delta == pytest.approx(2.0, abs=0.5) and c.lo > 0 and c.excludes_zero
    assert c.cell().startswith("+") and "*" in c.cell() and c.n_prompts == 40
    drift = contrast(arm(base), arm(base - 0.02), "drift_5s")             # already x100: not scaled again
    assert drift.delta == pytest.approx(-2.0) and drift.hi < 0


def test_no_difference_covers_zero_in_about_95_percent_of_draws():
    """The percentile bootstrap of a mean runs slightly narrow at tens of prompts (about 93 % here,
    as theory says for n = 40); 1,000 null draws with a fixed seed."""
    rng = np.random.default_rng(12345)
    draws, n, covered = 1000, 40, 0
    for i in range(draws):
        base = rng.normal(0.8, 0.05, n)
        other = base + rng.normal(0, 0.02, n)                # same mean: the true difference is 0
        _, lo, hi = bootstrap_ci(100 * (other - base), resamples=500, seed=i)
        covered += lo <= 0 <= hi
    assert 0.92 <= covered / draws <= 0.97, covered / draws


def test_seeds_are_averaged_per_prompt_first_and_their_spread_reported():
    base = arm([[0.5, 0.5]] * 3)
    other = arm([[0.51, 0.53], [0.51, 0.53], [0.51, 0.53]])    # differences 1 and 3 (x100) per prompt
    c = contrast(base, other, "quality")
    assert c.delta == pytest.approx(2.0) and c.lo == pytest.approx(2.0) and c.hi == pytest.approx(2.0)
    assert c.seeds == 2 and c.seed_spread == pytest.approx(np.std([1, 3], ddof=1))
    assert np.isnan(contrast(arm([0.5]), arm([0.6]), "quality").seed_spread)


def test_unpaired_arms_are_refused_saying_what_differs():
    with pytest.raises(NotPaired, match="prompt sets differ: 1 only in window \\(prompt 2\\); 1 only in tether \\(other\\)"):
        contrast(arm([0.5] * 3), arm([0.5] * 3, prompts={2: "other"}), "quality", names=("window", "tether"))
    with pytest.raises(NotPaired, match="video lengths differ \\(a: \\[240\\] latent frames, b: \\[120\\]\\)"):
        contrast(arm([0.5] * 3), arm([0.5] * 3, frames=120), "quality", names=("a", "b"))
    with pytest.raises(NotPaired, match="seeds differ for 3 prompts"):
        contrast(arm([[0.5, 0.5]] * 3), arm([0.5] * 3), "quality")


# ---- run dirs in the real layout -> main_self_forcing_vbench_long + contrasts ----------------
DIMS = {"subject_consistency": 0.95, "background_consistency": 0.95, "motion_smoothness": 0.98,
        "dynamic_degree": 0.5, "aesthetic_quality": 0.6}


def _write_run(path, preset, horizon, iq, drift):
    """A scored self_forcing run dir as run.py + `python -m tethercache.eval eval=vbench_long` leave it."""
    write_scored_run(path, preset, horizon, [
        {"video": f"p{i:03d}s0", "prompt": f"prompt {i}", "seed": 1000 * i, **DIMS, "imaging_quality": q,
         "semantic": None, "total": None, "drift_5s": d, "drift_5s_abs": abs(d), "drift_clip": d,
         "drift_15pct": d} for i, (q, d) in enumerate(zip(iq, drift))])


def test_vbench_paper_table_and_contrasts_from_run_dirs(tmp_path, capsys):
    rng = np.random.default_rng(0)
    iq = rng.uniform(0.6, 0.7, 12)
    _write_run(tmp_path / "a", "window", "60s", iq, 10 + rng.normal(0, 1, 12))
    _write_run(tmp_path / "b", "tether", "60s", iq + 0.03, 2 + rng.normal(0, 1, 12))
    _write_run(tmp_path / "c", "window", "30s", iq, np.zeros(12))
    tables.main([str(tmp_path), "--out", str(tmp_path / "t"), "--baseline", "window", "--resamples", "500"])
    md = (tmp_path / "t" / "main_self_forcing_vbench_long.md").read_text()
    header = md.splitlines()[2]
    assert "30s Total | 30s Quality | 30s Semantic | 30s Drift 5s" in header and "60s Drift 15%" in header
    window = next(l for l in md.splitlines() if l.startswith("| window"))
    assert "—" in window and "semantic dimensions" in md
    tex = (tmp_path / "t" / "main_self_forcing_vbench_long.tex").read_text()
    assert r"\begin{tabular}" in tex and r"\multicolumn{9}{c}{60s}" in tex      # n + 8 columns (drift_10s too)
    con = (tmp_path / "t" / "contrasts_self_forcing_vbench_long.md").read_text()
    line = next(l for l in con.splitlines() if l.startswith("| tether vs window"))
    cells = [c.strip() for c in line.split("|")[1:-1]]
    assert cells[1:4] == ["—", "—", "—"]                            # tether has no 30 s run
    assert cells[4].startswith("+0.55* [+0.55, +0.55]")        # imaging +0.03 -> Quality +3 / 5.5
    assert cells[5].startswith("-7.") and "*" in cells[5]          # drift 10 -> 2 (x100 already)
    # the same contrasts in long form, which the comparison report reads and shades
    csv = pd.read_csv(tmp_path / "t" / "contrasts_self_forcing_vbench_long.csv")
    row = csv[(csv["arm"] == "tether") & (csv["horizon"] == "60s") & (csv["metric"] == "drift_5s")].iloc[0]
    assert row["lo"] <= row["delta"] <= row["hi"] < 0 and row["excludes_zero"]
    from analysis.report import contrasts_html
    assert "class=sig" in contrasts_html([tmp_path / "t" / "contrasts_self_forcing_vbench_long.csv"])
    # the contrasts CLI on its own refuses an unknown arm
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        contrasts.main([str(tmp_path), "--baseline", "window", "--arms", "nope", "--out", str(tmp_path / "t")])
    assert e.value.code == 2
    assert "error: --arms=nope: no such arm (scored arms: window, tether)" in capsys.readouterr().err
