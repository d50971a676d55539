"""The metric table (tethercache/eval/metrics.py): every name an evaluator emits has exactly one
entry, and a dimension that only some evaluators score (temporal flickering) reaches the tables
and the contrasts on the same x100 scale as published VBench-Long tables print it."""
import json

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import ROOT
from analysis import tables
from tethercache.eval.metrics import DIMENSIONS, LONG_CUSTOM_DIMENSIONS, METRICS, metric
from tethercache.eval.schema import REVISIT_GAP_BINS, ClipScores, VideoScores, gap_bin_name, summarize_videos
from tethercache.eval.toy_runner import ToyRunEvaluator
from tethercache.eval.vbench_long import WEIGHTS, load_results, parse_results
from tethercache.toyworld import render, split_pairs

FIXTURE = ROOT / "tests" / "data" / "vbench_long" / "results_2026-12-01-10:00:00_eval_results.json"


def _numeric_names(metrics: dict) -> set[str]:
    return {k for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _emitted_names() -> set[str]:
    """Every numeric name the toy runner and the VBench-Long parser write to metrics.json."""
    prompt, seed = split_pairs("heldout", 8)[0]                     # fast camera: revisits, returns
    frames, _ = render(prompt, seed, 120)
    runner = ToyRunEvaluator(OmegaConf.create({"prefixes": []}))
    toy = runner.evaluate(frames.repeat_interleave(4, dim=0).numpy(), prompt=prompt, seed=seed,
                          sample_id="p000s0", run_dir=None)["full"]
    data = load_results(FIXTURE)
    data["temporal_flickering"] = [0.97, [{"video_path": "/w/split_clip/p000s0/p000s0_002.mp4",
                                           "video_results": 0.97}], []]
    vbench = parse_results(data, list(LONG_CUSTOM_DIMENSIONS), {"p000s0": (192, 16.0)}, {})["p000s0"]
    names = set()
    for summary in (summarize_videos([toy]), summarize_videos([vbench])):
        names |= _numeric_names(summary["summary"])
        for v in summary["videos"]:
            names |= _numeric_names(v)
    # gap bins a longer video would fill
    names |= {f"{kind}_{gap_bin_name(lo, hi)}" for kind in ("revisit", "subject_return")
              for lo, hi in REVISIT_GAP_BINS}
    return names


def test_every_emitted_metric_has_exactly_one_table_entry():
    names = _emitted_names()
    assert {"temporal_flickering", "drift_10s", "extra_imaging_period_0", "revisit_gap_22_56",
            "subject_return", "extra_subject_consistency_generated"} <= names
    for name in sorted(names):
        entries = [m.name for m in METRICS.values() if m.matches(name)]
        assert len(entries) == 1, f"{name}: table entries {entries}"
    with pytest.raises(KeyError, match="not in the metric table"):
        metric("no_such_metric")


def test_dimension_lists_come_from_the_table():
    assert DIMENSIONS == ("subject_consistency", "background_consistency", "motion_smoothness",
                          "dynamic_degree", "aesthetic_quality", "imaging_quality")
    assert set(WEIGHTS) == set(LONG_CUSTOM_DIMENSIONS)       # a weight list per scoreable dimension
    assert metric("temporal_flickering").scale == 100 and metric("drift_10s").scale == 1
    assert metric("revisit_gap_57_112").label == "Revisit 57-112"


# ---- temporal flickering through tables and contrasts ---------------------------------------
N_PROMPTS = 10
OTHER = {"subject_consistency": 0.95, "background_consistency": 0.96, "motion_smoothness": 0.98,
         "dynamic_degree": 0.5, "aesthetic_quality": 0.6, "imaging_quality": 0.65}
BASE = 0.95 + 0.002 * np.arange(N_PROMPTS)
# Per-prompt paired differences on [0, 1]: tether -0.0032 / -0.0052 alternating (mean -0.0042,
# published as -0.42 with an interval excluding 0); sink +-0.005 alternating (mean 0: no verdict).
FLICKER = {"window": BASE, "tether": BASE - 0.0042 + 0.001 * (-1) ** np.arange(N_PROMPTS),
           "sink": BASE + 0.005 * (-1) ** np.arange(N_PROMPTS)}


def _write_run(path, preset, flicker):
    """A scored 60 s self_forcing run dir; metrics.json written by the schema from 2-s clips."""
    path.mkdir(parents=True)
    samples = [{"id": f"p{i:03d}s0", "prompt": f"prompt {i}", "seed": 1000 * i, "video": f"videos/p{i:03d}s0.mp4",
                "latent_frames": 240, "chunk_seconds": [1.0]} for i in range(N_PROMPTS)]
    rec = {"status": "complete", "choices": {"backbone": "self_forcing", "cache": preset, "horizon": "60s"},
           "backbone": "self_forcing", "cache": {"name": preset}, "policy": preset, "horizon": "60s",
           "latent_frames": 240, "seed": 0, "samples": samples,
           "config": {"cache": {"name": preset}, "backbone": {"name": "self_forcing"}}}
    (path / "record.json").write_text(json.dumps(rec))
    videos = [VideoScores("vbench_long", s["id"], s["prompt"],
                          [ClipScores(c, 2.0 * c, 2.0 * c + 2, {**OTHER, "temporal_flickering": f})
                           for c in range(30)], quality_drift=0.0) for s, f in zip(samples, flicker)]
    (path / "metrics.json").write_text(json.dumps(summarize_videos(videos)))


def _row(md_path, label):
    lines = [l for l in md_path.read_text().splitlines() if l.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    row = next(l for l in lines if l.startswith(f"| {label} "))
    return dict(zip(header, (c.strip() for c in row.strip("|").split("|"))))


def test_temporal_flickering_delta_and_verdict_on_the_x100_scale(tmp_path):
    for preset, flicker in FLICKER.items():
        _write_run(tmp_path / preset, preset, flicker)
    out = tmp_path / "t"
    tables.main([str(tmp_path), "--out", str(out)])
    dims = _row(out / "dims_self_forcing_vbench_long.md", "tether")
    tether = 100 * FLICKER["tether"]
    assert dims["60s Flicker"] == f"{tether.mean():.2f} ± {tether.std(ddof=1):.2f}"
    from analysis.contrasts import main as contrasts_main
    contrasts_main([str(tmp_path), "--baseline", "window", "--metrics", "temporal_flickering",
                    "--out", str(out), "--resamples", "1000"])
    cells = {arm: _row(out / "contrasts_self_forcing_vbench_long.md", f"{arm} vs window")["60s Flicker"]
             for arm in ("tether", "sink")}
    assert cells["tether"].startswith("-0.42* [")                     # published: -0.42, excludes 0
    assert "*" not in cells["sink"]
    csv = pd.read_csv(out / "contrasts_self_forcing_vbench_long.csv").set_index("arm")
    assert csv.loc["tether", "delta"] == pytest.approx(-0.42)
    assert csv.loc["tether", "hi"] < 0 and bool(csv.loc["tether", "excludes_zero"])
    assert csv.loc["sink", "delta"] == pytest.approx(0.0, abs=1e-9)
    assert csv.loc["sink", "lo"] < 0 < csv.loc["sink", "hi"] and not bool(csv.loc["sink", "excludes_zero"])
