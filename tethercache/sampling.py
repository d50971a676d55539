"""The Self-Forcing chunk loop, parameterised rather than forked.

For each chunk of C latent frames: start from noise; for each timestep of the (warped,
shifted) step list predict x0 and re-noise it to the next step with fresh noise; then one
more pass on the clean chunk at t = `context_noise` writes the cache (the policy commits
there). `kind: euler` integrates the flow ODE instead (optionally with restarts), for
models that are not few-step distilled (the toy). Noise is drawn from one seeded CPU generator,
so the same seed gives bitwise-equal latents on CPU whatever the device.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch
from tqdm.auto import tqdm

from .errors import ConfigError


@dataclass
class SamplerConfig:
    kind: str = "self_forcing"                 # self_forcing | euler
    steps: list[float] = field(default_factory=lambda: [1000.0, 750.0, 500.0, 250.0])
    shift: float = 5.0
    warp: bool = True                          # Self-Forcing's warp_denoising_step
    euler_steps: int = 8
    # Last noise level the Euler schedule visits (after the shift) before the final jump to 0,
    # i.e. where x0 is read out; None = the uniform grid's 1/euler_steps before the shift. An
    # x0-head model is sharpest near its floor (experiments/README.md).
    sigma_min: float | None = None
    # Restart sampling (Xu et al. 2023), euler only: after the schedule, `restarts` times re-noise
    # the chunk to `restart_sigma` with fresh noise and integrate back in `restart_steps` steps,
    # which corrects errors the first pass made at high noise. Costs restarts x restart_steps calls.
    restarts: int = 0
    restart_sigma: float = 0.15
    restart_steps: int = 2
    context_noise: float = 0.0                 # timestep of the cache-writing pass
    num_train_timesteps: int = 1000

    def validate(self) -> None:
        if self.kind not in ("self_forcing", "euler"):
            raise ConfigError(f"backbone.sampler.kind={self.kind!r}: must be self_forcing or euler")
        if self.kind == "self_forcing" and (not self.steps or any(
                not 0 < s <= self.num_train_timesteps for s in self.steps)):
            raise ConfigError(f"backbone.sampler.steps={self.steps}: each must be in "
                              f"(0, {self.num_train_timesteps}]")
        if self.kind == "euler" and self.euler_steps < 1:
            raise ConfigError(f"backbone.sampler.euler_steps={self.euler_steps}: must be >= 1")
        if self.sigma_min is not None and not 0 < self.sigma_min < 1:
            raise ConfigError(f"backbone.sampler.sigma_min={self.sigma_min}: must be in (0, 1) or null")
        if self.restarts < 0 or (self.restarts and self.kind != "euler"):
            raise ConfigError(f"backbone.sampler.restarts={self.restarts}: must be >= 0, "
                              "and 0 unless kind is euler")
        if self.restarts:
            last = self.sigmas()[-2]
            if not last < self.restart_sigma < 1:
                raise ConfigError(f"backbone.sampler.restart_sigma={self.restart_sigma}: must be in "
                                  f"({last:.4g}, 1), above the schedule's last sigma")
            if self.restart_steps < 1:
                raise ConfigError(f"backbone.sampler.restart_steps={self.restart_steps}: must be >= 1")
        if not 0 <= self.context_noise < self.num_train_timesteps:
            raise ConfigError(f"backbone.sampler.context_noise={self.context_noise}: must be in "
                              f"[0, {self.num_train_timesteps})")
        if self.shift <= 0:
            raise ConfigError(f"backbone.sampler.shift={self.shift}: must be > 0")

    def shifted(self, s: float) -> float:
        return self.shift * s / (1 + (self.shift - 1) * s)

    def unshifted(self, s: float) -> float:
        return s / (self.shift - (self.shift - 1) * s)

    def sigmas(self) -> list[float]:
        """Noise levels visited by one chunk, ending at 0 for euler (x0 is the last state)."""
        if self.kind == "euler":
            n = self.euler_steps
            last = 1 / n if self.sigma_min is None else self.unshifted(self.sigma_min)
            return [self.shifted(s) for s in _evenly(1.0, last, n)] + [0.0]
        T = self.num_train_timesteps
        return [self.shifted(s / T) if self.warp else s / T for s in self.steps]

    def restart_sigmas(self) -> list[float]:
        """One restart pass (euler): restart_sigma down to the schedule's last sigma, then 0."""
        return _evenly(self.restart_sigma, self.sigmas()[-2], self.restart_steps) + [0.0]


def _evenly(top: float, last: float, n: int) -> list[float]:
    """n values from top down to last, evenly spaced (just top when n = 1)."""
    return [top] if n == 1 else [top - i * (top - last) / (n - 1) for i in range(n)]


def flow_to_x0(x: torch.Tensor, flow: torch.Tensor, sigma: float) -> torch.Tensor:
    """x_t = (1 - s) x0 + s noise, flow = noise - x0  =>  x0 = x_t - s flow (float64 as SF)."""
    return (x.double() - sigma * flow.double()).to(x.dtype)


def add_noise(x0: torch.Tensor, noise: torch.Tensor, sigma: float) -> torch.Tensor:
    return (1 - sigma) * x0 + sigma * noise


def generate(model, text, session, *, n_frames: int, chunk: int, latent_shape: tuple[int, int, int],
             seed: int, sampler: SamplerConfig, batch: int = 1, poses: torch.Tensor | None = None,
             progress: bool = True, device=None,
             initial: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Yield the clean latents [B, C, chunk, h, w] of each chunk as soon as it is done.

    `initial` [B, C, n0, h, w] (n0 a multiple of the chunk): given leading frames (Self-Forcing's
    `initial_latent`, video extension): each of their chunks is only written to the cache by a
    clean pass, then yielded unchanged; generation starts after them.
    """
    device = device or model.device
    gen = torch.Generator().manual_seed(seed)
    sigmas = sampler.sigmas()
    restart = sampler.restart_sigmas() if sampler.restarts else []
    T = sampler.num_train_timesteps

    def randn(shape):
        return torch.randn(shape, generator=gen).to(device)

    def run(x, sigma):
        t = torch.full((batch, chunk), sigma * T, device=device)
        return model(x, t, text, cache=session, poses=poses).float()

    def integrate(x, schedule):
        for s, s_next in zip(schedule[:-1], schedule[1:]):
            x = x + (s_next - s) * run(x, s)
        return x

    shape = (batch, latent_shape[0], chunk, latent_shape[1], latent_shape[2])
    for start in tqdm(range(0, n_frames, chunk), disable=not progress, unit="chunk",
                      desc="generate"):
        session.begin_chunk(torch.arange(start, start + chunk))
        if initial is not None and start < initial.shape[2]:
            x0 = initial[:, :, start:start + chunk].to(device)
            with session.commit_pass():
                run(x0, 0.0)
            session.end_chunk()
            yield x0
            continue
        x = randn(shape)
        if sampler.kind == "euler":
            x0 = integrate(x, sigmas)
            for _ in range(sampler.restarts):
                x0 = integrate(add_noise(x0, randn(shape), restart[0]), restart)
        else:
            for i, s in enumerate(sigmas):
                x0 = flow_to_x0(x, run(x, s), s)
                if i + 1 < len(sigmas):
                    x = add_noise(x0, randn(shape), sigmas[i + 1])
        ctx_sigma = sampler.context_noise / T
        x_ctx = x0 if ctx_sigma == 0 else add_noise(x0, randn(shape), ctx_sigma)
        with session.commit_pass():
            run(x_ctx, ctx_sigma)
        session.end_chunk()
        yield x0
