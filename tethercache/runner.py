"""One run: validate -> build -> generate (streaming) -> decode to mp4 -> evaluate -> record.

`validate(cfg)` does every check that needs no compute and raises ConfigError naming the key.
`execute(cfg, run_dir)` writes, per sample: videos/<id>.mp4, timelines/<id>.npz and, with an
evaluator, per-clip rows; then metrics.json and record.json last (atomically), so a run dir
without record.json is an unfinished run.
"""
from __future__ import annotations

import json
import os
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .cache import CacheSession, build_policy
from .errors import ConfigError
from .backbone import Backbone, build_backbone, check_backbone, model_config
from .sampling import generate
from .video import Mp4Writer


@dataclass
class Plan:
    policy: object
    prompts: list[str]
    horizon: int
    device: str


def load_prompts(pcfg) -> list[str]:
    texts = list(pcfg.get("texts") or [])
    if pcfg.get("file") not in (None, ""):
        if pcfg.file == "???":
            raise ConfigError("prompts.file: required (a text file, one prompt per line)")
        path = Path(str(pcfg.file)).expanduser()
        if not path.is_file():
            raise ConfigError(f"prompts.file={pcfg.file}: file not found")
        texts += [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if pcfg.get("limit"):
        texts = texts[: int(pcfg.limit)]
    if not texts:
        raise ConfigError("prompts: no prompts (set prompts.texts or prompts.file)")
    return texts


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: CUDA is not available on this machine")
    return name


def _missing_keys(cfg, prefix: str = "") -> list[str]:
    """Mandatory (`???`) keys left unset, skipping interpolations that point at them."""
    out = []
    for key in cfg.keys():
        if OmegaConf.is_interpolation(cfg, key) or key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            out.append(f"{prefix}{key}")
        elif OmegaConf.is_dict(cfg[key]):
            out += _missing_keys(cfg[key], f"{prefix}{key}.")
    return out


def validate(cfg) -> Plan:
    """All checks that need no compute, before anything is built."""
    missing = _missing_keys(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required, not set "
                          f"(e.g. python run.py {missing[0]}=...)")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # interpolation errors
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None
    check_backbone(cfg.backbone)
    chunk, horizon = cfg.backbone.chunk, int(cfg.horizon.frames)
    if horizon <= 0 or horizon % chunk:
        raise ConfigError(f"horizon.frames={horizon}: must be a positive multiple of the chunk "
                          f"({chunk} latent frames)")
    policy = build_policy(OmegaConf.to_container(cfg.cache, resolve=True))
    policy.validate(chunk, horizon, model_config(cfg.backbone).rope_max_positions)
    prompts = load_prompts(cfg.prompts)
    if cfg.backbone.text.kind == "grammar":            # toy prompts must parse before compute
        from .toyworld.prompts import PromptError, parse_prompt
        for i, p in enumerate(prompts):
            try:
                parse_prompt(p)
            except PromptError as e:
                raise ConfigError(f"prompts.texts[{i}]: {e}") from None
    for key in ("samples_per_prompt", "batch"):
        if int(cfg[key]) < 1:
            raise ConfigError(f"{key}={cfg[key]}: must be >= 1")
    if policy.needs_poses and not cfg.backbone.get("poses", False):
        raise ConfigError(f"cache.name={policy.name}: needs camera poses, i.e. a toy-world "
                          f"backbone (backbone={cfg.backbone.name})")
    from .eval.registry import check_evaluator
    check_evaluator(cfg)
    return Plan(policy, prompts, horizon, resolve_device(cfg.device))


def _peak_memory_mb(device: str) -> dict:
    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device.startswith("cuda"):
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _write_json(path: Path, obj) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


def generate_sample(bb: Backbone, plan: Plan, cfg, prompt: str, seed: int, video_path: Path,
                    timeline_path: Path, poses: torch.Tensor | None = None) -> dict:
    """Generate one video, streaming chunks into the mp4; returns timings and frames."""
    model = bb.model
    c = model.config
    session = CacheSession(plan.policy, layers=c.layers, horizon=plan.horizon,
                           grid=bb.grid, heads=c.heads,
                           head_dim=c.head_dim, batch=cfg.batch, dtype=model.dtype,
                           device=plan.device, rope_max=c.rope_max_positions, poses=poses)
    text = model.text_kv(bb.text_encoder.encode([prompt] * cfg.batch).to(plan.device))
    stream = bb.codec.decoder()
    chunk_s, decoded = [], []
    sync = torch.cuda.synchronize if plan.device.startswith("cuda") else (lambda: None)
    view_scale = int(cfg.backbone.codec.get("view_scale", 1))
    with Mp4Writer(video_path, fps=bb.codec.fps, scale=view_scale) as writer:
        chunks = generate(model, text, session, n_frames=plan.horizon, chunk=bb.chunk,
                          latent_shape=bb.latent_shape, seed=seed, sampler=bb.sampler,
                          batch=cfg.batch, progress=cfg.progress, device=plan.device,
                          initial=bb.start_latents(prompt, seed, cfg.batch))
        while True:
            t0 = time.perf_counter()
            latents = next(chunks, None)
            sync()
            if latents is None:
                break
            chunk_s.append(time.perf_counter() - t0)
            frames = stream.push(latents)
            writer.write(frames)
            decoded.append(frames)
    timeline_path.parent.mkdir(parents=True, exist_ok=True)
    session.save_timeline(timeline_path)
    return {"chunk_seconds": chunk_s, "frames": torch.cat(decoded),
            "kv_cache_mb": session.cache.nbytes / 2**20, "policy_stats": session.timeline["stats"]}


def execute(cfg, run_dir, choices: dict | None = None) -> dict:
    run_dir = Path(run_dir)
    plan = validate(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    if cfg.backbone.get("threads"):
        torch.set_num_threads(int(cfg.backbone.threads))
    t_start = time.perf_counter()
    bb = build_backbone(cfg.backbone, plan.device)
    from .eval.registry import build_evaluator
    evaluator = build_evaluator(cfg)
    logger = _logger(cfg, run_dir)
    samples, metrics = [], {}
    for p_idx, prompt in enumerate(plan.prompts):
        for s_idx in range(cfg.samples_per_prompt):
            sid = f"p{p_idx:03d}s{s_idx}"          # VBench-Long: no '_' in video names
            seed = int(cfg.seed) + 1000 * p_idx + s_idx
            poses = bb.pose_fn(prompt, seed, plan.horizon) if bb.pose_fn else None
            t0 = time.perf_counter()
            out = generate_sample(bb, plan, cfg, prompt, seed, run_dir / "videos" / f"{sid}.mp4",
                                  run_dir / "timelines" / f"{sid}.npz", poses)
            gen_s = time.perf_counter() - t0
            result = evaluator.evaluate(out["frames"], prompt=prompt, seed=seed, sample_id=sid,
                                        run_dir=run_dir)
            if result is not None:
                metrics[sid] = result
            cs = out["chunk_seconds"]
            samples.append({"id": sid, "prompt": prompt, "seed": seed,
                            "video": f"videos/{sid}.mp4", "timeline": f"timelines/{sid}.npz",
                            "latent_frames": plan.horizon, "video_frames": len(out["frames"]),
                            "seconds": gen_s, "chunk_seconds": cs,
                            "chunk_seconds_median": sorted(cs)[len(cs) // 2],
                            "kv_cache_mb": out["kv_cache_mb"]})
            logger.log_sample(samples[-1], result["full"].metrics() if result else None)
    summary = evaluator.summarize(metrics, run_dir) if metrics else {}
    if summary:
        _write_json(run_dir / "metrics.json", summary)
    record = {
        "status": "complete",
        "choices": choices or {},          # config-group options, e.g. cache: tether_no_tame
        "backbone": cfg.backbone.name, "cache": OmegaConf.to_container(cfg.cache, resolve=True),
        "policy": plan.policy.name, "horizon": cfg.horizon.name, "latent_frames": plan.horizon,
        "seed": int(cfg.seed), "device": plan.device, "dtype": cfg.backbone.dtype,
        "torch_threads": torch.get_num_threads(),
        "samples": samples, "memory": _peak_memory_mb(plan.device),
        "wall_seconds": time.perf_counter() - t_start,
        "config": OmegaConf.to_container(cfg, resolve=True),
    }
    _write_json(run_dir / "record.json", record)
    logger.finish(summary)
    return record


def _logger(cfg, run_dir):
    from .tracking import build_logger
    return build_logger(cfg, run_dir)
