"""One run: validate -> build -> generate (streamed to mp4) -> record -> evaluate.

`validate(cfg)` (validation.py) does every check that needs no compute and raises ConfigError
naming the key. `execute(cfg, run_dir)` invalidates the dir's old outputs (rundir.py), writes, per
sample: videos/<id>.mp4 and timelines/<id>.npz; then record.json last (atomically), so a run dir
without record.json is unfinished. With an evaluator, the finished run dir is then scored
(eval/rundir.py: metrics.json, clips.csv, ...), as `python -m tethercache.eval` would.
Every chunk's latents are checked finite before they are decoded (NonFiniteError).
"""
from __future__ import annotations

import json
import logging
import resource
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

from . import rundir
from .backbone import Backbone, build_backbone
from .errors import NonFiniteError
from .rollout import rollout
from .validation import Plan, load_prompts, validate  # noqa: F401  (re-exported)
from .video import Mp4Writer

log = logging.getLogger("tethercache.run")


def _peak_memory_mb(device: str) -> dict:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def check_finite(latents: torch.Tensor, chunk: int, sample_id: str) -> None:
    """One reduction per chunk: NaN/inf latents stop the run before they reach a video."""
    if not torch.isfinite(latents).all():
        raise NonFiniteError(f"sample {sample_id}, chunk {chunk}: non-finite latents (NaN/inf); "
                             "check the weights and sampler settings")


_loaded: dict = {}      # the last backbone built in this process, reused by the next job


def load_backbone(cfg, device: str) -> tuple[Backbone, bool]:
    """The backbone for `cfg.backbone` on `device`; consecutive jobs of one process (Hydra's basic
    launcher) with the same backbone config reuse it instead of reloading (reuse_backbone)."""
    key = json.dumps([OmegaConf.to_container(cfg.backbone, resolve=True), device], sort_keys=True)
    if cfg.get("reuse_backbone", True) and _loaded.get("key") == key:
        return _loaded["backbone"], True
    _loaded.clear()
    bb = build_backbone(cfg.backbone, device)
    if cfg.get("reuse_backbone", True):
        _loaded.update(key=key, backbone=bb)
    return bb, False


def generate_sample(bb: Backbone, plan: Plan, cfg, prompt: str, seed: int, video_path: Path,
                    timeline_path: Path) -> dict:
    """Generate one video, streaming chunks into the mp4 (no frames kept); returns timings."""
    session, chunks = rollout(bb, plan.policy, prompt, seed, horizon=plan.horizon,
                              batch=cfg.batch, device=plan.device, progress=cfg.progress)
    stream = bb.codec.decoder()
    chunk_s = []
    sync = torch.cuda.synchronize if plan.device.startswith("cuda") else (lambda: None)
    view_scale = int(cfg.backbone.codec.get("view_scale", 1))
    lossless = bool(cfg.backbone.codec.get("lossless", False))     # evaluators score the mp4
    with Mp4Writer(video_path, fps=bb.codec.fps, scale=view_scale, lossless=lossless) as writer:
        sample_id = Path(video_path).stem
        while True:
            t0 = time.perf_counter()
            latents = next(chunks, None)
            sync()
            if latents is None:
                break
            chunk_s.append(time.perf_counter() - t0)
            check_finite(latents, len(chunk_s) - 1, sample_id)
            frames = stream.push(latents)
            writer.write(frames)
    timeline_path.parent.mkdir(parents=True, exist_ok=True)
    session.save_timeline(timeline_path)
    return {"chunk_seconds": chunk_s, "video_frames": writer.frames_written,
            "kv_cache_mb": session.cache.nbytes / 2**20, "policy_stats": session.timeline["stats"]}


def execute(cfg, run_dir, choices: dict | None = None) -> dict:
    run_dir = Path(run_dir)
    plan = validate(cfg)
    if cfg.backbone.get("threads"):
        torch.set_num_threads(int(cfg.backbone.threads))
    t_start = time.perf_counter()
    bb, reused = load_backbone(cfg, plan.device)   # first: unreadable weights leave an old run intact
    backbone_s = time.perf_counter() - t_start
    rundir.start(run_dir)                   # the old run's record and outputs are gone from here on
    rundir.write_hydra_dir(cfg, run_dir)
    log.info("backbone %s %s in %.2f s", cfg.backbone.name, "reused" if reused else "built",
             backbone_s)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    logger = _logger(cfg, run_dir)
    samples = []
    for p_idx, prompt in plan.prompts:
        for s_idx in range(cfg.samples_per_prompt):
            sid = f"p{p_idx:03d}s{s_idx}"          # VBench-Long: no '_' in video names
            seed = int(cfg.seed) + 1000 * p_idx + s_idx
            t0 = time.perf_counter()
            out = generate_sample(bb, plan, cfg, prompt, seed, run_dir / "videos" / f"{sid}.mp4",
                                  run_dir / "timelines" / f"{sid}.npz")
            gen_s = time.perf_counter() - t0
            cs = out["chunk_seconds"]
            samples.append({"id": sid, "prompt": prompt, "seed": seed,
                            "video": f"videos/{sid}.mp4", "timeline": f"timelines/{sid}.npz",
                            "latent_frames": plan.horizon, "video_frames": out["video_frames"],
                            "seconds": gen_s, "chunk_seconds": cs,
                            "chunk_seconds_median": sorted(cs)[len(cs) // 2],
                            "kv_cache_mb": out["kv_cache_mb"]})
            log.info("sample %s: %d chunks in %.2f s", sid, len(cs), gen_s)
            logger.log_sample(samples[-1], None)
    record = {
        "status": "complete",
        "choices": choices or {},          # config-group options, e.g. cache: tether_no_tame
        "backbone": cfg.backbone.name, "cache": OmegaConf.to_container(cfg.cache, resolve=True),
        "policy": plan.policy.name, "horizon": cfg.horizon.name, "latent_frames": plan.horizon,
        # what every layer attends to, chunk included, in the policy's unit and in tokens
        "cache_budget": plan.policy.cache_budget(plan.horizon, bb.grid[0] * bb.grid[1]),
        "seed": int(cfg.seed), "device": plan.device, "dtype": cfg.backbone.dtype,
        "shard": {"index": int(cfg.prompts.get("shard", 0)),
                  "num_shards": int(cfg.prompts.get("num_shards", 1))},
        "backbone_reused": reused, "backbone_seconds": backbone_s,
        "torch_threads": torch.get_num_threads(),
        "samples": samples, "memory": _peak_memory_mb(plan.device),
        "wall_seconds": time.perf_counter() - t_start,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    rundir.write_record(run_dir, record)     # last: the run is complete only now
    log.info("run complete: %d videos in %.1f s", len(samples), record["wall_seconds"])
    # Evaluation is its own step on the finished run dir (python -m tethercache.eval), run inline
    # here when an evaluator is configured: it decodes the mp4s, so no frames were kept above.
    summary = None
    if cfg.eval.name != "none":
        from .eval.rundir import evaluate_run
        summary = evaluate_run(run_dir, cfg.eval, log=log.info)
    logger.finish(summary or {})
    return record


def _logger(cfg, run_dir):
    from .tracking import build_logger
    return build_logger(cfg, run_dir)
