"""`eval=toy` on a finished run dir: score each decoded video with the toy evaluator, also on its
standard-horizon prefixes, and write clips.csv + a quality-over-time plot.

Prefixes: generation is causal and seeded chunk by chunk, so the first 120 latent frames of a
240 s rollout are exactly the 30 s rollout; scoring prefixes gives 30s/60s/240s from one run.
Per camera period: the camera ping-pongs, so the last seconds of a video can sit at the start
position; quality per full period is position-balanced (each period shows every camera position once).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..horizons import HORIZON_FRAMES
from ..toyworld.world import DEFAULT_CONFIG, TOY_FPS, ToyWorld, world_config
from .frame_evaluator import FrameEvaluator
from .registry import register
from .outputs import atomic
from .schema import CLIP_SECONDS, VideoScores, summarize_videos, write_clip_csv
from .toy import ToyEvaluator


@register("toy")
class ToyRunEvaluator(FrameEvaluator):
    def __init__(self, ecfg):
        self.world = DEFAULT_CONFIG
        self.evaluator = ToyEvaluator()
        self.prefixes = [h for h in (ecfg.get("prefixes") or [])]
        self.hold = 4
        self.given = 0             # leading toy frames that were real input (backbone.start_frames)

    def score(self, run_dir, samples, run_cfg):
        # the run's toy world (its backbone.world; runs from before it existed: the default world)
        self.world = world_config((run_cfg.get("backbone") or {}).get("world"))
        self.given = int((run_cfg.get("backbone") or {}).get("start_frames", 0) or 0)  # toy frame = latent frame
        self.evaluator = ToyEvaluator(config=self.world)
        yield from super().score(run_dir, samples, run_cfg)

    @classmethod
    def check(cls, cfg) -> None:
        bb = cfg.get("backbone") or {}
        if not bb.get("poses", False) and (bb.get("text") or {}).get("kind") != "grammar":
            raise ConfigError(f"eval=toy: needs a toy-world backbone (backbone={bb.get('name')}); "
                              "use eval=none")
        world_config(bb.get("world"))
        for h in cfg.eval.get("prefixes") or []:
            if h not in HORIZON_FRAMES:
                raise ConfigError(f"eval.prefixes: {h!r} is not a horizon; allowed: {list(HORIZON_FRAMES)}")

    def evaluate(self, frames, *, prompt, seed, poses=None, sample_id, run_dir):
        video = frames.cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames)
        n = len(video) // self.hold
        out = {"full": self._score(video, prompt, seed, sample_id)}
        for h in self.prefixes:
            if HORIZON_FRAMES[h] < n:
                out[h] = self._score(video[: HORIZON_FRAMES[h] * self.hold], prompt, seed, sample_id)
        return out

    def _score(self, video, prompt, seed, sid) -> VideoScores:
        vs = self.evaluator.evaluate(video, prompt, video_id=sid, given_frames=self.given)
        period = ToyWorld(prompt, seed, self.world).period                     # toy frames
        per_clip = int(CLIP_SECONDS * TOY_FPS)
        iq = [c.scores["imaging_quality"] for c in vs.clips]
        clips_per_period = max(1, period // per_clip)
        for i in range(len(iq) // clips_per_period):                # complete periods only
            vs.extras[f"imaging_period_{i}"] = float(np.mean(iq[i * clips_per_period:(i + 1) * clips_per_period]))
        return vs

    def summarize(self, metrics: dict, run_dir) -> dict:
        run_dir = Path(run_dir)
        full = [m["full"] for m in metrics.values()]
        with atomic(run_dir / "clips.csv") as tmp:
            write_clip_csv(tmp, full)
        with atomic(run_dir / "quality_over_time.png") as tmp:
            plot_quality_over_time(full, tmp)
        out = summarize_videos(full)
        prefixes = {h: summarize_videos([m[h] for m in metrics.values() if h in m])
                    for h in self.prefixes if any(h in m for m in metrics.values())}
        if prefixes:
            out["prefixes"] = prefixes
        return out


def plot_quality_over_time(videos: list[VideoScores], path: Path,
                           dims=("imaging_quality", "aesthetic_quality", "subject_consistency")) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(dims), figsize=(4.2 * len(dims), 3.2), sharey=True)
    for ax, d in zip(np.atleast_1d(axes), dims):
        for v in videos:
            t = [c.end_s for c in v.clips]
            ax.plot(t, [c.scores[d] for c in v.clips], lw=1, alpha=0.6, label=v.video,
                    marker=".", ms=4)   # markers: a clip between NaN clips is still drawn
        ax.set(title=d, xlabel="seconds", ylim=(-0.03, 1.03))   # a curve at 0 stays visible
    np.atleast_1d(axes)[0].set_ylabel("score per 2-s clip")
    if len(videos) <= 6:
        np.atleast_1d(axes)[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
