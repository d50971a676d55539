"""`eval=vbench_long`: VBench-Long (Vchitect/VBench `vbench2_beta_long`, pip vbench 0.1.5; repo
@45e79ec) on the videos of a finished run dir, in VBench's own venv (`make vbench-env`: vbench pins
transformers==4.33.2 and numpy<2), parsed into our schema per dimension, 2-s clip and video.

What it runs, per shard (eval.shard / eval.num_shards), in eval/vbench_long/shard-<i>-of-<n>/:
    inputs/<id>.mp4      symlinks to the run's mp4s. VBench-Long keys a long video by its clip
                         name up to the first '_' (`reorganize_clips_results`), so ids carry no '_'
    configs/             the long-mode files the 0.1.5 wheel lacks (its MANIFEST ships only vbench/*):
                         clip_length.yaml (2 s for every dimension: long_custom_input forces 2 s
                         anyway, but `preprocess` reads the file first), VBench_full_info.json ([]:
                         custom input reads no prompt suite), and for the default pure in-clip
                         consistency (eval_long.py without --dev_flag: w_inclip 1, w_clip2clip 0)
                         slow_fast_params.yaml + identity mapping tables, which that setting reads
                         but whose values it multiplies by 0. eval.slow_fast=true (--dev_flag,
                         DINOv2/DreamSim clip-to-clip fused 0.5/0.5) needs VBench's calibrated
                         tables: eval.configs_dir = a checkout's vbench2_beta_long/configs.
    results/*_eval_results.json   VBench's output: {dim: [overall, clip details, per-video]} (subject
                         and background consistency: [overall, per-video fused]); imaging quality
                         per clip and per video on 0-100, overall /100.
    vbench.log           its stdout/stderr.
The command is `<eval.python> -m vbench2_beta_long.eval_long --mode long_custom_input
--load_ckpt_from_local True ...` (see `command`), with VBENCH_CACHE_DIR = eval.cache_dir and
TORCH_HOME = <cache_dir>/torch (DINO's hub entry point loads its weights from there), offline.

Per clip: VBench splits at the video's own fps into 2-s clips; a short tail is extended backwards
(`split_video_into_clips`), so the last clip spans the video's last 2 s. Every dimension, the
fused consistency ones included, comes per clip (see `_item_key`); a per-video mean is the mean of
its clips, and VBench's overall is the mean over all clips of all videos.
Before any work, `check` names everything missing: interpreter, vbench import, GPU (eval_long.py
hard-codes cuda), weight files.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ConfigError
from ..typed_fields import as_float
from .registry import register
from .metrics import FILTERED_DIMENSIONS, LONG_CUSTOM_DIMENSIONS, METRICS
from .outputs import atomic
from .schema import CLIP_SECONDS, ClipScores, VideoScores, summarize_videos, write_clip_csv
from .scores import drifts
from .video_checks import scan_mp4

ROOT = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("vbench_probe.py")
# LONG_CUSTOM_DIMENSIONS (eval/metrics.py): what long_custom_input can score. FILTERED_DIMENSIONS:
# VBench's static filter drops static clips before scoring temporal flickering, so its clips may
# be missing by design (NaN there; a fully static video has no flickering score).

# Files under VBENCH_CACHE_DIR that vbench/utils.py init_submodules (local=True) would otherwise
# wget / git clone, per dimension; "torch/..." is our TORCH_HOME (DINO's hubconf fetches there).
WEIGHTS = {
    "subject_consistency": ["dino_model/facebookresearch_dino_main/hubconf.py",
                            "torch/hub/checkpoints/dino_vitbase16_pretrain.pth"],
    "background_consistency": ["clip_model/ViT-B-32.pt"],
    "motion_smoothness": ["amt_model/amt-s.pth"],
    "dynamic_degree": ["raft_model/models/raft-things.pth"],
    "aesthetic_quality": ["clip_model/ViT-L-14.pt", "aesthetic_model/emb_reader/sa_0_4_vit_l_14_linear.pth"],
    "imaging_quality": ["pyiqa_model/musiq_spaq_ckpt-358bb6af.pth"],
    "temporal_flickering": ["raft_model/models/raft-things.pth"],      # static filter (RAFT)
}
# --dev_flag clip-to-clip extractors: DINOv2 through torch.hub (subject), DreamSim (background).
SLOW_FAST_WEIGHTS = ["torch/hub/facebookresearch_dinov2_main/hubconf.py",
                     "torch/hub/checkpoints/dinov2_vitb14_pretrain.pth"]
SLOW_FAST_CONFIGS = ("slow_fast_params.yaml", "subject_mapping_table.yaml", "background_mapping_table.yaml")


class CorruptResults(RuntimeError):
    """A VBench result file that does not have VBench's format."""


def _path(p) -> Path:
    p = Path(str(p)).expanduser()
    return p if p.is_absolute() else ROOT / p


@register("vbench_long")
class VBenchLongEvaluator:
    def __init__(self, ecfg):
        self.ecfg = ecfg
        self.python = _path(ecfg.python)
        self.cache_dir = _path(ecfg.cache_dir) if ecfg.get("cache_dir") else None
        self.dimensions = list(ecfg.dimensions)
        self.slow_fast = bool(ecfg.get("slow_fast", False))

    # ---- checks before any work ------------------------------------------------------------
    @classmethod
    def check(cls, cfg) -> None:
        e = cfg.eval
        dims = list(e.get("dimensions") or [])
        bad = [d for d in dims if d not in LONG_CUSTOM_DIMENSIONS]
        if not dims or bad:
            raise ConfigError(f"eval.dimensions: {bad or dims} not scoreable by VBench-Long on custom "
                              f"prompts; allowed: {list(LONG_CUSTOM_DIMENSIONS)}")
        if e.get("timeout_s") is not None and as_float("eval.timeout_s", e.timeout_s) <= 0:
            raise ConfigError(f"eval.timeout_s={e.timeout_s}: must be > 0 seconds, or null (no limit)")
        problems = cls(e).missing()
        if problems:
            raise ConfigError("eval=vbench_long cannot run here: " + "; ".join(problems))

    def missing(self) -> list[str]:
        """Everything that keeps VBench from running, each as 'key=value: what is missing'."""
        out = []
        if not self.python.is_file():
            out.append(f"eval.python={self.python}: no such interpreter (build the venv: make vbench-env)")
        else:
            probe = self.probe()
            if "error" in probe:
                out.append(f"eval.python={self.python}: vbench2_beta_long does not import "
                           f"({probe['error']}; rebuild: make vbench-env)")
            if not probe.get("cuda"):
                out.append(f"no CUDA GPU visible to {self.python} (torch {probe.get('torch')}): "
                           "VBench-Long's eval_long.py runs on cuda only")
        if self.cache_dir is None:
            out.append("eval.cache_dir: not set (VBench weights dir; or set VBENCH_CACHE_DIR)")
        elif not self.cache_dir.is_dir():
            out.append(f"eval.cache_dir={self.cache_dir}: no such directory")
        else:
            need = sorted({f for d in self.dimensions for f in WEIGHTS[d]}
                          | (set(SLOW_FAST_WEIGHTS) if self.slow_fast else set()))
            absent = [f for f in need if not (self.cache_dir / f).exists()]
            if absent:
                out.append(f"eval.cache_dir={self.cache_dir}: missing {', '.join(absent)} (README: VBench weights)")
        if self.slow_fast:
            cdir = _path(self.ecfg.configs_dir) if self.ecfg.get("configs_dir") else None
            if cdir is None or not all((cdir / f).is_file() for f in SLOW_FAST_CONFIGS):
                out.append(f"eval.configs_dir={cdir}: eval.slow_fast=true needs VBench's "
                           f"vbench2_beta_long/configs ({', '.join(SLOW_FAST_CONFIGS)})")
        return out

    def probe(self) -> dict:
        try:
            r = subprocess.run([str(self.python), str(PROBE)], capture_output=True, text=True,
                               timeout=300, env=self.environment())
            return json.loads(r.stdout.strip().splitlines()[-1])
        except (subprocess.SubprocessError, OSError, json.JSONDecodeError, IndexError) as e:
            return {"error": f"probe failed: {type(e).__name__}"}

    # ---- the command ----------------------------------------------------------------------
    def environment(self) -> dict:
        env = dict(os.environ)
        for k in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"):     # ours would shadow vbench's pins
            env.pop(k, None)
        if self.cache_dir is not None:
            env.update(VBENCH_CACHE_DIR=str(self.cache_dir), TORCH_HOME=str(self.cache_dir / "torch"))
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")   # nothing downloads at run time
        return env

    def command(self, work: Path) -> list[str]:
        cfgs = work / "configs"
        slow_fast = _path(self.ecfg.configs_dir) if self.slow_fast else cfgs
        cmd = [str(self.python), "-m", "vbench2_beta_long.eval_long",
               "--videos_path", str(work / "inputs"), "--output_path", str(work / "results") + "/",
               "--full_json_dir", str(cfgs / "VBench_full_info.json"),
               "--mode", "long_custom_input", "--dimension", *self.dimensions,
               "--load_ckpt_from_local", "True",
               "--imaging_quality_preprocessing_mode", "longer",
               "--clip_length_config", str(cfgs / "clip_length.yaml"),   # absolute: joined onto configs/
               "--slow_fast_eval_config", str(slow_fast / "slow_fast_params.yaml"),
               "--subject_mapping_file_path", str(slow_fast / "subject_mapping_table.yaml"),
               "--background_mapping_file_path", str(slow_fast / "background_mapping_table.yaml")]
        if self.slow_fast:
            cmd.append("--dev_flag")
        if set(self.dimensions) & set(FILTERED_DIMENSIONS):
            cmd.append("--static_filter_flag")
        return cmd

    def prepare(self, work: Path, videos: dict[str, Path]) -> None:
        """A fresh work dir: video links named <id>.mp4 and the config files (module docstring)."""
        shutil.rmtree(work, ignore_errors=True)
        (work / "inputs").mkdir(parents=True)     # not "videos/": that marks a run dir
        (work / "results").mkdir()
        for vid, src in videos.items():
            if "_" in vid:
                raise ValueError(f"video id {vid!r}: VBench-Long cuts names at '_'")
            (work / "inputs" / f"{vid}.mp4").symlink_to(Path(src).resolve())
        cfgs = work / "configs"
        cfgs.mkdir()
        dims = sorted(set(LONG_CUSTOM_DIMENSIONS))
        (cfgs / "clip_length.yaml").write_text("".join(f"{d}: {CLIP_SECONDS}\n" for d in dims))
        (cfgs / "VBench_full_info.json").write_text("[]\n")
        (cfgs / "slow_fast_params.yaml").write_text(
            "# pure in-clip consistency (eval_long.py without --dev_flag): clip-to-clip weight 0\n"
            "w_inclip_sb: 1.0\nw_clip2clip_sb: 0.0\nw_inclip_bg: 1.0\nw_clip2clip_bg: 0.0\n")
        for name in ("subject_mapping_table.yaml", "background_mapping_table.yaml"):
            (cfgs / name).write_text("# identity: unused while w_clip2clip = 0\n0.0: 0.0\n1.0: 1.0\n")

    # ---- scoring --------------------------------------------------------------------------
    def score(self, run_dir: Path, samples: list[dict], run_cfg):
        """Yield (id, result): invalid videos first, then VBench's scores for the others."""
        run_dir = Path(run_dir)
        e = self.ecfg
        work = run_dir / "eval" / "vbench_long" / f"shard-{e.get('shard', 0)}-of-{e.get('num_shards', 1)}"
        videos, timing = {}, {}
        for s in samples:
            n, fps, reason = scan_mp4(run_dir / s["video"])
            if reason:
                yield s["id"], {"invalid": reason}
                continue
            videos[s["id"]], timing[s["id"]] = run_dir / s["video"], (n, fps)
        if not videos:
            return
        self.prepare(work, videos)
        log = work / "vbench.log"
        with log.open("w") as f:
            rc = subprocess.run(self.command(work), env=self.environment(), stdout=f,
                                stderr=subprocess.STDOUT, timeout=e.get("timeout_s")).returncode
        if rc != 0:
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-3:])
            raise RuntimeError(f"VBench-Long exited {rc} (log: {log}): {tail}")
        results = latest_results(work / "results")
        prompts = {s["id"]: s["prompt"] for s in samples}
        parsed = parse_results(load_results(results), self.dimensions, timing, prompts, results)
        for vid, out in parsed.items():
            if isinstance(out, str):
                print(f"{run_dir}: {vid}: not scored ({out})")
            else:
                yield vid, {"full": out}

    def summarize(self, scored: dict, run_dir) -> dict:
        full = [m["full"] for m in scored.values()]
        with atomic(Path(run_dir) / "clips.csv") as tmp:
            write_clip_csv(tmp, full)
        return summarize_videos(full)


# ---- VBench's result files ------------------------------------------------------------------
def load_results(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptResults(f"{path}: not valid JSON ({e})") from None


def latest_results(results_dir: Path) -> Path:
    found = sorted(Path(results_dir).glob("*_eval_results.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise CorruptResults(f"{results_dir}: VBench wrote no *_eval_results.json")
    return found[-1]


def clip_spans(n_frames: int, fps: float) -> list[tuple[float, float]]:
    """(start_s, end_s) of each clip as vbench2_beta_long/utils.py split_video_into_clips cuts it:
    int(fps) * 2 frames each (VBench truncates the fps first), a short tail extended backwards, a
    video under 2 s kept whole."""
    seg = int(fps) * int(CLIP_SECONDS)
    if n_frames < seg:
        return [(0.0, n_frames / fps)]
    spans = [(i * seg / fps, (i + 1) * seg / fps) for i in range(n_frames // seg)]
    if n_frames % seg:
        spans.append(((n_frames - seg) / fps, n_frames / fps))
    return spans


def _item_key(path: str) -> tuple[str, int | None]:
    """(video id, clip index or None for a whole-video score) of a VBench result path:
    '.../split_clip/p000s0/p000s0_003.mp4' -> ('p000s0', 3) ('_full': the whole short video, 0);
    '.../p000s0_003.mp4/p000s0.mp4' -> ('p000s0', 3): `reorganize_clips_results` builds its
    "per long video" keys from each clip's own path, so those lists hold one entry per clip;
    '.../p000s0.mp4' -> ('p000s0', None)."""
    def split(name):
        stem = name.rsplit(".", 1)[0]
        vid, sep, idx = stem.partition("_")
        if not sep:
            return vid, None
        if idx == "full":
            return vid, 0
        if idx.isdigit():
            return vid, int(idx)
        raise ValueError(f"unexpected clip name {name!r}")
    vid, idx = split(os.path.basename(path))
    if idx is None:
        parent_vid, parent_idx = split(os.path.basename(os.path.dirname(path)) or "x")
        if parent_vid == vid and parent_idx is not None:
            return vid, parent_idx
    return vid, idx


def _number(x, where: str, scale: float) -> float:
    if isinstance(x, bool) or isinstance(x, (int, float)):     # dynamic degree: per-clip bool
        v = float(x) / scale
        if math.isfinite(v) and 0.0 <= v <= 1.0:
            return v
    raise CorruptResults(f"{where}: {x!r} is not a score in range")


def parse_results(data, dims: list[str], timing: dict[str, tuple[int, float]],
                  prompts: dict[str, str], source="results") -> dict[str, VideoScores | str]:
    """VBench-Long's {dim: [...]} -> per video a VideoScores, or a reason why it is not scored
    (a requested dimension or clip missing for it). CorruptResults when the file is not in
    VBench's format at all."""
    if not isinstance(data, dict):
        raise CorruptResults(f"{source}: expected a JSON object {{dimension: [...]}}")
    clip_vals = {v: {} for v in timing}          # vid -> dim -> {clip index: score}
    video_vals = {v: {} for v in timing}         # vid -> dim -> score
    for dim in dims:
        if dim not in data:
            continue
        entry = data[dim]
        if not isinstance(entry, list) or len(entry) not in (2, 3) or not isinstance(entry[1], list):
            raise CorruptResults(f"{source}: {dim}: expected [overall, details(, per-video)]")
        scale = METRICS[dim].raw_scale      # imaging quality: clips 0-100, only the overall /100
        # [overall, clip details, per-clip "averages"] or, for subject/background consistency,
        # [overall, fused in-clip + clip-to-clip entries]: entry[1] holds the scores either way.
        try:
            for item in entry[1]:
                vid, idx = _item_key(item["video_path"])
                if vid not in timing:
                    continue
                v = _number(item["video_results"], f"{source}: {dim} {item['video_path']}", scale)
                if idx is None:
                    video_vals[vid][dim] = v
                else:
                    clip_vals[vid].setdefault(dim, {})[idx] = v
        except (TypeError, KeyError, ValueError) as e:
            raise CorruptResults(f"{source}: {dim}: malformed entry ({type(e).__name__}: {e})") from None
    out = {}
    for vid, (n, fps) in timing.items():
        spans = clip_spans(n, fps)
        lacking = []
        for dim in dims:
            if dim in video_vals[vid] or dim in FILTERED_DIMENSIONS:
                continue
            if set(clip_vals[vid].get(dim, {})) != set(range(len(spans))):
                have = len(clip_vals[vid].get(dim, {}))
                lacking.append(f"{dim} ({have} of {len(spans)} clips)" if have else dim)
        if lacking:
            out[vid] = f"VBench results lack {', '.join(lacking)}"
            continue
        clips = [ClipScores(i, a, b, {d: clip_vals[vid].get(d, {}).get(i, math.nan) for d in dims})
                 for i, (a, b) in enumerate(spans)]
        iq = [(c.start_s, c.end_s, c.scores.get("imaging_quality", math.nan)) for c in clips]
        vs = VideoScores("vbench_long", vid, prompts.get(vid, ""), clips,
                         drifts(iq, spans[-1][1])["drift_5s"], video_scores=video_vals[vid])
        vs.validate()
        out[vid] = vs
    return out
