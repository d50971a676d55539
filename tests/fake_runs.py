"""Small complete run dirs in the real formats (record.json, metrics.json, clips.csv, one
timeline and one mp4 per video, a score file per video), written in milliseconds, for tests of
the analysis tools that need many sweeps: known scores, every file a tool reads."""
import json
from pathlib import Path

import numpy as np
import pandas as pd

from tethercache.cache.protocol import MEMORY, RECENT, SINK
from tethercache.horizons import HORIZON_FRAMES
from tethercache.video import Mp4Writer

PROMPTS = ["forest scene, hilly bands, white triangle, fast camera",
           "ocean scene, wavy bands, red disk and white square, medium camera"]
CHUNKS, LAYERS, CHUNK = 4, 2, 3                 # 12 latent frames, 4 chunks of 3
VIDEO_FRAMES, FPS = 12, 16


def timeline(regions_of_slot=(SINK, MEMORY, RECENT, RECENT)) -> dict:
    """Arrays of a timeline npz: chunk c holds frames 0..3 (all of them from chunk 1 on), slot i
    in region regions_of_slot[i]."""
    frames = np.full((CHUNKS, LAYERS, len(regions_of_slot)), -1, np.int32)
    regions = np.zeros(frames.shape, np.int8)
    for c in range(CHUNKS):
        for slot, region in enumerate(regions_of_slot[:CHUNK * (c + 1)]):
            frames[c, :, slot], regions[c, :, slot] = slot, region
    return {"chunk_start": np.arange(CHUNKS) * CHUNK, "frames": frames, "regions": regions,
            "stats_json": np.array("[]")}


def write_run(run_dir: Path, preset: str, quality: float, regions=None) -> Path:
    """A complete, scored toy run of `preset` over PROMPTS: imaging quality `quality` (+ 0.01
    per prompt), a 12-frame 32x32 video per prompt."""
    run_dir = Path(run_dir)
    samples, videos, clips = [], [], []
    for p, prompt in enumerate(PROMPTS):
        sid = f"p{p:03d}s0"
        frames = np.zeros((VIDEO_FRAMES, 32, 32, 3), np.uint8)
        frames[:, :, :, p] = np.linspace(40, 220, VIDEO_FRAMES, dtype=np.uint8)[:, None, None]
        with Mp4Writer(run_dir / "videos" / f"{sid}.mp4", fps=FPS) as w:
            w.write(frames)
        (run_dir / "timelines").mkdir(exist_ok=True)
        np.savez_compressed(run_dir / "timelines" / f"{sid}.npz", **timeline(*(regions,) if regions else ()))
        iq = quality + 0.01 * p
        score = {"evaluator": "toy", "video": sid, "prompt": prompt, "n_clips": 2,
                 "imaging_quality": iq, "aesthetic_quality": 0.5, "quality_drift": 10 * iq,
                 "quality_drift_abs": 10 * iq}
        videos.append(score)
        (run_dir / "eval" / "toy" / "scores").mkdir(parents=True, exist_ok=True)
        (run_dir / "eval" / "toy" / "scores" / f"{sid}.json").write_text(json.dumps(score))
        clips += [{"evaluator": "toy", "video": sid, "clip": i, "start_s": 0.375 * i,
                   "end_s": 0.375 * (i + 1), "imaging_quality": iq, "aesthetic_quality": 0.5}
                  for i in range(2)]
        samples.append({"id": sid, "prompt": prompt, "seed": 1000 * p, "video": f"videos/{sid}.mp4",
                        "timeline": f"timelines/{sid}.npz", "latent_frames": CHUNKS * CHUNK,
                        "video_frames": VIDEO_FRAMES, "chunk_seconds": [0.01] * CHUNKS,
                        "kv_cache_mb": 1.0})
    pd.DataFrame(clips).to_csv(run_dir / "clips.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps({"evaluator": "toy", "summary": {}, "videos": videos}))
    cache = {"name": preset, "budget": 21, "sink": 3, "recent": 4}
    (run_dir / "record.json").write_text(json.dumps({
        "status": "complete", "choices": {"backbone": "toy", "cache": preset, "horizon": "5s"},
        "backbone": "toy", "cache": cache, "policy": preset, "horizon": "5s",
        "latent_frames": CHUNKS * CHUNK, "seed": 0, "samples": samples, "memory": {"peak_rss_mb": 100.0},
        "config": {"backbone": {"name": "toy", "chunk": CHUNK, "codec": {"fps": FPS}}, "cache": cache}}))
    return run_dir


def write_sweep(root: Path, presets=("window", "sink", "tether")) -> list[Path]:
    return [write_run(Path(root) / f"{i}-toy-{p}-5s", p, 0.5 + 0.1 * i) for i, p in enumerate(presets)]


def write_scored_run(run_dir: Path, preset: str, horizon: str, videos: list[dict],
                     cache: dict | None = None, backbone: str = "self_forcing",
                     evaluator: str = "vbench_long") -> Path:
    """A complete, scored run dir as run.py + `python -m tethercache.eval` leave it: record.json
    with one sample per video, metrics.json with the per-video scores. Each of `videos` is
    {"video": id, "prompt": ..., "seed": sample seed, <metric>: value, ...}."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True)
    frames = HORIZON_FRAMES[horizon]
    cache = {"name": preset, **(cache or {})}
    samples = [{"id": v["video"], "prompt": v["prompt"], "seed": v["seed"], "video": f"videos/{v['video']}.mp4",
                "latent_frames": frames, "chunk_seconds": [1.0]} for v in videos]
    (run_dir / "record.json").write_text(json.dumps({
        "status": "complete", "choices": {"backbone": backbone, "cache": preset, "horizon": horizon},
        "backbone": backbone, "cache": cache, "policy": preset, "horizon": horizon,
        "latent_frames": frames, "seed": 0, "samples": samples,
        "config": {"cache": cache, "backbone": {"name": backbone}}}))
    scores = [{"evaluator": evaluator, **{k: x for k, x in v.items() if k != "seed"}} for v in videos]
    (run_dir / "metrics.json").write_text(json.dumps({"evaluator": evaluator, "videos": scores}))
    return run_dir
