"""analysis/: collect, tables, drift plots and oracle recall on real tiny run dirs.

The runs are real (run.py's execute with the tiny backbone, then the separate evaluation step on
the run dir); only the evaluator is a stand-in that returns known scores through the toy runner's
own summarize, so metrics.json and clips.csv are written exactly as `eval=toy` writes them and
every table cell can be checked by hand.
"""
import io
import itertools
import json
import re

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT
from analysis import collect as collect_mod
from analysis import plot_drift, recall, tables
from tethercache.cache.storage import MEMORY, RECENT, SINK
from tethercache.errors import ConfigError
from tethercache.eval import registry
from tethercache.eval.rundir import evaluate_run
from tethercache.eval.schema import DIMENSIONS, ClipScores, VideoScores
from tethercache.eval.toy_runner import ToyRunEvaluator
from tethercache.runner import execute

PROMPTS = ["forest scene, hilly bands, white triangle, fast camera",
           "ocean scene, wavy bands, red disk and white square, medium camera"]
# Known per-video scores: (preset, prompt index, horizon) -> imaging quality and signed drift.
IQ = {("window", 0, "30s"): 0.50, ("window", 1, "30s"): 0.70,
      ("tether", 0, "30s"): 0.80, ("tether", 1, "30s"): 0.84,
      ("tether", 0, "60s"): 0.78, ("tether", 1, "60s"): 0.80}
DRIFT = {k: 10 * v for k, v in IQ.items()}
OTHER = {"subject_consistency": 0.9, "background_consistency": 0.8, "motion_smoothness": 0.95,
         "dynamic_degree": 0.6, "aesthetic_quality": 0.5}
SECONDS = {"30s": 30, "60s": 60}


class KnownScores(ToyRunEvaluator):
    """The toy runner with scores looked up instead of measured (real summarize/clips.csv)."""

    def __init__(self, preset: str, horizon: str):
        super().__init__(OmegaConf.create({"prefixes": ["30s", "60s"]}))
        self.preset, self.horizon = preset, horizon

    def _video(self, sid: str, prompt: str, h: str) -> VideoScores:
        iq = IQ[(self.preset, int(sid[1:4]), h)]
        clips = [ClipScores(i, 2.0 * i, 2.0 * i + 2, {**OTHER, "imaging_quality": iq})
                 for i in range(SECONDS[h] // 2)]
        return VideoScores("toy", sid, prompt, clips, DRIFT[(self.preset, int(sid[1:4]), h)],
                           revisit_consistency=0.9, extras={"imaging_period_0": iq})

    def evaluate(self, frames, *, prompt, seed, poses=None, sample_id, run_dir):
        out = {"full": self._video(sample_id, prompt, self.horizon)}
        if self.horizon == "60s":
            out["30s"] = self._video(sample_id, prompt, "30s")
        return out


def _run(run_dir, overrides, choices, evaluator=None, monkeypatch=None):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["backbone=tiny", "eval=none", "progress=false",
                                           f"prompts.texts={json.dumps(PROMPTS)}", *overrides])
    execute(cfg, run_dir, choices=choices)
    if evaluator is not None:                 # evaluation as its own step on the finished run dir
        class Known:
            check = classmethod(lambda cls, cfg: None)

            def __new__(cls, ecfg):
                return evaluator
        monkeypatch.setitem(registry.EVALUATORS, "known", Known)
        evaluate_run(run_dir, OmegaConf.create({"name": "known"}), log=lambda *_: None)
    monkeypatch.undo()


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    sweep = root / "sweeps" / "2026-01-01" / "00-00-00"
    mp = pytest.MonkeyPatch()
    _run(sweep / "0-tiny-window-30s", ["cache=window", "horizon=30s"],
         {"backbone": "tiny", "cache": "window", "horizon": "30s"}, KnownScores("window", "30s"), mp)
    _run(sweep / "1-tiny-tether-60s", ["cache=tether", "horizon=60s"],
         {"backbone": "tiny", "cache": "tether", "horizon": "60s"}, KnownScores("tether", "60s"), mp)
    _run(sweep / "2-tiny-oracle-30s", ["cache=oracle", "horizon=30s", "backbone.poses=true"],
         {"backbone": "tiny", "cache": "oracle", "horizon": "30s"}, None, mp)
    (sweep / "3-tiny-sink-240s" / ".hydra").mkdir(parents=True)      # killed mid-run
    (sweep / "3-tiny-sink-240s" / "videos").mkdir()
    return root


def test_collect_rows_columns_and_unfinished(outputs):
    err = io.StringIO()
    df = collect_mod.collect([outputs], report=err)
    assert "3-tiny-sink-240s" in err.getvalue()
    assert "3-tiny-sink-240s" not in " ".join(df["run_dir"])
    # window 30s: 2 videos; tether 60s: 2 videos + their 30 s prefixes; oracle: 2 unscored
    counts = df.groupby(["preset", "horizon"]).size().to_dict()
    assert counts == {("oracle", "30s"): 2, ("tether", "30s"): 2, ("tether", "60s"): 2,
                      ("window", "30s"): 2}
    for col in ["run_dir", "backbone", "preset", "policy", "budget", "sink", "memory", "recent",
                "alpha", "tau", "rope", "grab", "tame", "scope", "horizon", "latent_frames",
                "sample_seed", "video", "evaluator", "chunk_seconds_median", "kv_cache_mb",
                "peak_rss_mb", "quality_drift", "revisit_consistency", "extra_imaging_period_0",
                *DIMENSIONS]:
        assert col in df.columns, col
    t = df[df["preset"] == "tether"].set_index(["horizon", "video"])
    assert t.loc[("30s", "p001s0"), "imaging_quality"] == pytest.approx(0.84)
    assert bool(t.loc[("30s", "p001s0"), "prefix"]) and not bool(t.loc[("60s", "p001s0"), "prefix"])
    assert t.loc[("30s", "p000s0"), "latent_frames"] == 120
    assert t.loc[("60s", "p000s0"), "memory"] == 14 and t.loc[("60s", "p000s0"), "alpha"] == 0.35
    assert df.loc[df["preset"] == "oracle", "evaluator"].isna().all()


def test_collect_cli_writes_csv(outputs, tmp_path):
    collect_mod.main([str(outputs), "--out", str(tmp_path / "r.csv")])
    assert len(pd.read_csv(tmp_path / "r.csv")) == 8


def _quality(iq: float) -> float:
    """VBench D.3 by hand for OTHER + iq."""
    lo_hi = {"subject_consistency": (0.1462, 1.0), "background_consistency": (0.2615, 1.0),
             "motion_smoothness": (0.706, 0.9975)}
    dims = {**OTHER, "imaging_quality": iq}
    num = sum((0.5 if d == "dynamic_degree" else 1.0) * (v - lo_hi.get(d, (0, 1))[0])
              / (lo_hi.get(d, (0, 1))[1] - lo_hi.get(d, (0, 1))[0]) for d, v in dims.items())
    return num / 5.5


def _split(line: str) -> list[str]:
    return [c.strip().replace(r"\|", "|") for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]


def _cells(md_path, row):
    lines = [l for l in md_path.read_text().splitlines() if l.startswith("|")]
    header = _split(lines[0])
    for l in lines[2:]:
        cells = _split(l)
        if cells[0] == row:
            return dict(zip(header, cells))
    raise AssertionError(f"no row {row!r} in {md_path}")


def test_tables_equal_hand_computed_means(outputs, tmp_path):
    tables.main([str(outputs), "--out", str(tmp_path)])
    for name in ("main_tiny_toy", "dims_tiny_toy", "cost_tiny"):
        assert (tmp_path / f"{name}.md").is_file() and (tmp_path / f"{name}.tex").is_file()
    main = tmp_path / "main_tiny_toy.md"
    w, t = _cells(main, "window"), _cells(main, "tether")
    iq_w = [IQ[("window", 0, "30s")] * 100, IQ[("window", 1, "30s")] * 100]
    assert w["30s Imaging"] == f"{np.mean(iq_w):.2f} ± {np.std(iq_w, ddof=1):.2f}"
    assert w["30s n"] == "2" and w["60s n"] == "—" and w["60s Imaging"] == "—"
    drift = [DRIFT[("tether", 0, "60s")], DRIFT[("tether", 1, "60s")]]
    assert t["60s Drift"] == f"{np.mean(drift):.2f} ± {np.std(drift, ddof=1):.2f}"
    assert t["60s |Drift|"] == t["60s Drift"]
    assert t["30s Imaging"].startswith(f"{np.mean([80, 84]):.2f} ± ")     # from the 60 s prefix
    q = [_quality(IQ[("tether", i, "30s")]) * 100 for i in (0, 1)]
    assert t["30s Quality"] == f"{np.mean(q):.2f} ± {np.std(q, ddof=1):.2f}"
    assert t["30s Revisit"] == "90.00 ± 0.00"
    assert "oracle" not in main.read_text()            # no scores, so no row of "—"
    tex = (tmp_path / "main_tiny_toy.tex").read_text()
    assert r"\toprule" in tex and r"\cmidrule(lr)" in tex and r"$\pm$" in tex and "---" in tex
    cost = _cells(tmp_path / "cost_tiny.md", "oracle")
    assert cost["30s Chunk ms"] != "—" and cost["60s Chunk ms"] == "—"


def test_ablation_table(outputs, tmp_path):
    tables.main([str(outputs), "--out", str(tmp_path), "--ablate", "alpha"])
    md = (tmp_path / "ablation_alpha_tiny_toy.md").read_text()
    assert "tether: alpha=0.35" in md and "window" not in md     # window has no alpha
    with pytest.raises(SystemExit):
        tables.main([str(outputs), "--out", str(tmp_path), "--ablate", "no_such_key"])


def test_quality_uses_only_present_dims():
    df = pd.DataFrame({"imaging_quality": [0.6], "dynamic_degree": [0.4]})
    assert tables.add_quality(df)["quality"][0] == pytest.approx((0.6 + 0.5 * 0.4) / 1.5)


def test_plot_drift_writes_pngs(outputs, tmp_path):
    out = tmp_path / "drift.png"
    plot_drift.main([str(outputs), "--out", str(out), "--dims", "aesthetic_quality"])
    assert out.stat().st_size > 0 and (tmp_path / "drift_periods.png").stat().st_size > 0


# ---- recall ------------------------------------------------------------------------------
def _timeline(memory_last: list[list[int]]):
    """Chunks of one frame, sink {0}, recent 2, memory 2; the last chunk's memory per layer given."""
    states = [[(0, SINK)], [(0, SINK), (1, RECENT)], [(0, SINK), (1, RECENT), (2, RECENT)],
              [(0, SINK), (1, MEMORY), (2, RECENT), (3, RECENT)],
              [(0, SINK), (1, MEMORY), (2, MEMORY), (3, RECENT), (4, RECENT)],
              [(0, SINK), (1, MEMORY), (2, MEMORY), (4, RECENT), (5, RECENT)]]
    n_layers = len(memory_last)
    frames = np.full((7, n_layers, 5), -1)
    regions = np.zeros((7, n_layers, 5), dtype=np.uint8)
    for c, st in enumerate(states):
        for layer in range(n_layers):
            for slot, (f, r) in enumerate(st):
                frames[c, layer, slot], regions[c, layer, slot] = f, r
    for layer, mem in enumerate(memory_last):            # chunk 6: pool {1, 2, 3, 4}
        st = [(0, SINK), *[(f, MEMORY) for f in mem], (5, RECENT), (6, RECENT)]
        for slot, (f, r) in enumerate(st):
            frames[6, layer, slot], regions[6, layer, slot] = f, r
    return frames, regions, np.arange(7)


def test_recall_hand_built():
    poses = np.array([0, 5, 1, 9, 2, 8, 8])             # chunk 6 at 8: oracle = {3 (d 1), 1 (d 3)}
    frames, regions, starts = _timeline([[1, 3], [2, 4], [1, 2]])
    r = recall.timeline_recall(frames, regions, starts, poses)
    last = r[r["chunk"] == 6].set_index("layer")
    assert last["recall"].tolist() == [1.0, 0.0, 0.5] and (last["m"] == 2).all()
    assert (r["chunk"] >= 5).all()                        # chunks 0-4: warm-up, skipped


def test_recall_ties_go_to_the_newest():
    poses = np.array([0, 7, 7, 7, 0, 0, 7])             # frames 1, 2, 3 tie for chunk 6
    frames, regions, starts = _timeline([[1, 2]])
    last = recall.timeline_recall(frames, regions, starts, poses).set_index("chunk").loc[6]
    assert last["recall"] == 0.5 and last["recall_tie"] == 1.0   # oracle {3, 2}; 1 is as close
    best = recall.oracle_set(np.array([1, 2, 3, 4]), poses, np.array([6]), 1)
    assert best.tolist() == [3]


def test_recall_of_the_oracle_policy_is_one(outputs, capsys):
    run = next(outputs.rglob("2-tiny-oracle-30s"))
    df = recall.run_recall(run)
    assert len(df) == 2 * 2 and (df["recall"] == 1.0).all() and (df["chunks"] > 20).all()
    recall.main([str(run), str(next(outputs.rglob("0-tiny-window-30s")))])
    assert "no memory region" in capsys.readouterr().err


# ---- experiment configs ------------------------------------------------------------------
EXPERIMENTS = sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml"))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_job_composes_and_validates(name):
    """Each job of `run.py -m experiment=<name>` passes validation (no compute). Weights are
    not required here: the toy weights may not be built on this machine yet."""
    from tethercache.runner import validate
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        params = compose("config", overrides=[f"experiment={name}"],
                         return_hydra_config=True).hydra.sweeper.params
        assert params, f"experiment={name}: no hydra.sweeper.params"
        axes = [[f"{k}={v}" for v in str(vals).split(",")] for k, vals in params.items()]
        for job in itertools.product(*axes):
            cfg = compose("config", overrides=[f"experiment={name}", *job, "backbone.weights=null",
                                               "++backbone.require_weights=false"])
            if cfg.backbone.name == "self_forcing":      # real weights and prompts: user paths
                with pytest.raises(ConfigError, match="backbone.wan_dir, prompts.file: required"):
                    validate(cfg)
                assert cfg.prompts.name == "file" and cfg.eval.name == "none"
                continue
            plan = validate(cfg)
            if cfg.backbone.name == "toy":
                assert cfg.prompts.name == "heldout" and len(plan.prompts) == 8
                assert cfg.eval.name == "toy" and plan.horizon == 960


def test_heldout_prompts_are_the_heldout_worlds():
    from tethercache.toyworld.world import split_pairs
    texts = OmegaConf.load(ROOT / "conf" / "prompts" / "heldout.yaml").texts
    assert len(set(texts)) == 8
    for p, text in enumerate(texts):      # runner: seed of prompt p = cfg.seed + 1000 p
        assert split_pairs("heldout", 1, offset=11 + 1000 * p) == [(text, 1_000_011 + 1000 * p)]


def test_a_runs_own_eval_subdirs_are_not_runs_of_their_own(tmp_path):
    """A scored run's eval/<evaluator>/ may hold its own videos/ (the VBench-Long runner's links):
    analysis and scoring find one run, the same one, and list nothing as unfinished."""
    from fake_runs import write_run
    from tethercache.eval.rundir import find_run_dirs
    run = write_run(tmp_path / "sweep" / "0-tether", "tether", 0.8)
    (run / "eval" / "vbench_long" / "shard-0-of-1" / "videos").mkdir(parents=True)
    complete, other = collect_mod.find_runs([tmp_path / "sweep"])
    assert complete == [run] and other == []
    assert find_run_dirs([tmp_path / "sweep"]) == [run]
