"""How good can the toy model's chunks be before anything drifts? Teacher-forced chunk quality.

Each held-out clip gives the model real context frames (all but the last chunk), then
  - denoise: x0 read from the real last chunk re-noised to sigma, in the training layout
             (block-causal forward, per-frame noise levels): the denoiser's precision;
  - sample:  the last chunk drawn by the production sampler (`generate`, the real frames given
             as video extension, nothing evicted): the best chunk a rollout can produce with
             perfect context, i.e. the ceiling of a window rollout's quality.
Both are scored with the toy evaluator's imaging_quality (real footage: ~0.99).

    python experiments/toy_denoiser_ceiling.py
    python experiments/toy_denoiser_ceiling.py --weights /tmp/toy/toy_wan.safetensors --worlds 16
    python experiments/toy_denoiser_ceiling.py --schedules 8 8:0.05 8:0.05:1   # steps[:sigma_min[:restarts]]
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from tethercache.cache import CacheSession, build_policy
from tethercache.eval.toy import imaging_quality
from tethercache.backbone import build_backbone
from tethercache.model.codec import to_uint8
from tethercache.sampling import SamplerConfig, generate
from tethercache.toyworld.conditioning import pose_tokens
from tethercache.toyworld.world import WorldConfig, training_batches

ROOT = Path(__file__).resolve().parents[1]


class TeacherForced:
    def __init__(self, weights: str | None, worlds: int, clip: int, seed: int, *,
                 sprite_clips: float = 0.0, config: WorldConfig | None = None):
        """`config`: the world of `weights` (default: the backbone config's, i.e. the shipped one's)."""
        bcfg = OmegaConf.load(ROOT / "conf" / "backbone" / "toy.yaml")
        if weights:
            bcfg.weights = weights
        if config is not None:
            bcfg.world = config.describe()
        torch.set_num_threads(int(bcfg.threads))
        self.bb = build_backbone(bcfg)
        config = self.bb.world
        self.chunk, self.seed = self.bb.chunk, seed
        batch = next(training_batches(worlds, clip, "heldout", seed=seed, config=config,
                                      sprite_clips=sprite_clips))
        self.prompts, self.camera_x = batch.prompts, batch.poses
        self.x0 = self.bb.codec.encode(batch.images())                       # [B, C, F, h, w]
        self.text = self.bb.model.text_kv(self.bb.text_encoder.encode(batch.prompts))
        self.poses = pose_tokens(batch.poses)
        self.noise = torch.randn(self.x0[:, :, -self.chunk:].shape,
                                 generator=torch.Generator().manual_seed(seed))

    @torch.no_grad()
    def flow(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """The model's flow for the last chunk of x, the context frames clean."""
        t = torch.zeros(x.shape[0], x.shape[2])
        t[:, -self.chunk:] = sigma * 1000
        out = self.bb.model(x, t, self.text, causal_chunk=self.chunk, poses=self.poses)
        return out[:, :, -self.chunk:].float()

    def with_last(self, last: torch.Tensor) -> torch.Tensor:
        x = self.x0.clone()
        x[:, :, -self.chunk:] = last
        return x

    def frames(self, latents: torch.Tensor) -> np.ndarray:
        """uint8 toy frames [B, F, H, W, 3] of latents [B, C, F, h, w]."""
        return to_uint8(self.bb.codec.to_images(latents)).permute(0, 1, 3, 4, 2).numpy()

    def score(self, last: torch.Tensor) -> float:
        """Mean imaging_quality of the last-chunk latents [B, C, chunk, h, w]."""
        return float(np.mean([imaging_quality(f, p).mean() for f, p in zip(self.frames(last), self.prompts)]))

    def denoise(self, sigma: float) -> float:
        real = self.x0[:, :, -self.chunk:]
        xt = (1 - sigma) * real + sigma * self.noise
        return self.score(xt - sigma * self.flow(self.with_last(xt), sigma))

    def sample(self, sampler: SamplerConfig) -> float:
        return self.score(self.sample_chunk(sampler))

    @torch.no_grad()
    def sample_chunk(self, sampler: SamplerConfig) -> torch.Tensor:
        """The last chunk's latents drawn by the production sampler after the real context."""
        m, (B, _, n, _, _) = self.bb.model, self.x0.shape
        c = m.config
        session = CacheSession(build_policy({"name": "full"}), layers=c.layers, horizon=n,
                               grid=self.bb.grid, heads=c.heads,
                               head_dim=c.head_dim, batch=B, record=False)
        chunks = list(generate(m, self.text, session, n_frames=n, chunk=self.chunk,
                               latent_shape=self.bb.latent_shape, seed=self.seed, sampler=sampler,
                               batch=B, poses=self.poses, progress=False,
                               initial=self.x0[:, :, :-self.chunk]))
        return chunks[-1]


def parse_schedule(text: str, base: SamplerConfig) -> SamplerConfig:
    """'steps[:sigma_min[:restarts]]' on top of the toy sampler (its shift and restart sigma)."""
    steps, sigma_min, restarts = (text.split(":") + ["", ""])[:3]
    return dataclasses.replace(base, euler_steps=int(steps), context_noise=0.0,
                               sigma_min=float(sigma_min) if sigma_min else None,
                               restarts=int(restarts) if restarts else 0)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", help="toy safetensors (default: the shipped weights)")
    ap.add_argument("--worlds", type=int, default=8, help="held-out worlds, one clip each")
    ap.add_argument("--clip", type=int, default=24, help="frames per clip (context + last chunk)")
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--sigmas", type=float, nargs="+", default=[0.05, 0.125, 0.25, 0.5])
    ap.add_argument("--schedules", nargs="+", default=["8", "8:0.05", "16:0.05", "8:0.05:1"],
                    help="Euler schedules as steps[:sigma_min[:restarts]]")
    a = ap.parse_args(argv)
    tf = TeacherForced(a.weights, a.worlds, a.clip, a.seed)
    print(f"weights: {a.weights or tf.bb.name + ' (shipped)'}; {a.worlds} held-out worlds, "
          f"{a.clip - tf.chunk} real context frames\n")
    print("| teacher-forced last chunk | imaging quality |\n|---|---|")
    print(f"| real frames | {tf.score(tf.x0[:, :, -tf.chunk:]):.3f} |")
    for s in a.sigmas:
        print(f"| denoise: x0 read at sigma {s} | {tf.denoise(s):.3f} |", flush=True)
    for text in a.schedules:
        sampler = parse_schedule(text, tf.bb.sampler)
        sampler.validate()
        restart = (f", {sampler.restarts} restart(s) from {sampler.restart_sigma}"
                   if sampler.restarts else "")
        print(f"| sample: Euler {sampler.euler_steps} steps, last sigma {sampler.sigmas()[-2]:.3f}"
              f"{restart} | {tf.sample(sampler):.3f} |", flush=True)


if __name__ == "__main__":
    main()
