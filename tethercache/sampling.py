"""The Self-Forcing chunk loop, parameterised rather than forked.

For each chunk of C latent frames: start from noise; for each timestep of the (warped,
shifted) step list predict x0 and re-noise it to the next step with fresh noise; then one
more pass at t = `context_noise` writes the cache (the policy commits there): on the clean
chunk, as Self-Forcing does, or re-noised to that level first (`context_renoise`).
`kind: euler` integrates the flow ODE instead (optionally with restarts), for models that are
not few-step distilled (the toy). Noise comes from a `NoiseSource`: by default one seeded CPU
generator, so the same seed gives bitwise-equal latents on CPU whatever the device; or given
tensors (another codebase's draws), used in order. Each chunk goes through the session's
`drive_chunk` (the chunk protocol: place, denoising passes, committing clean pass, timeline).
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
    # With context_noise > 0: false = the clean chunk is fed at timestep context_noise
    # (Self-Forcing, guandeh17/Self-Forcing pipeline/causal_inference.py: `generator(denoised_pred,
    # timestep=ones * context_noise)`); true = it is first re-noised to that level with fresh noise.
    context_renoise: bool = False
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
        if not isinstance(self.context_renoise, bool):
            raise ConfigError(f"backbone.sampler.context_renoise={self.context_renoise!r}: "
                              "must be true or false")
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


class NoiseSource:
    """Where `generate` gets its noise: each chunk's initial noise, then its re-noising draws
    (Self-Forcing steps, restarts, a re-noised context pass), in the order the sampler uses them."""

    def draw(self, kind: str, shape: tuple) -> torch.Tensor:
        """The next draw of `kind` ("initial" or "renoise") with this shape."""
        raise NotImplementedError

    def initial(self, shape: tuple) -> torch.Tensor:
        return self.draw("initial", shape)

    def renoise(self, shape: tuple) -> torch.Tensor:
        return self.draw("renoise", shape)

    def finish(self) -> None:
        """Called after the last chunk."""


class SeededNoise(NoiseSource):
    """Draws from one CPU generator (`record=True` keeps every draw, e.g. to replay them)."""

    def __init__(self, generator: torch.Generator | int, record: bool = False):
        self.gen = (generator if isinstance(generator, torch.Generator)
                    else torch.Generator().manual_seed(int(generator)))
        self.drawn: dict[str, list] | None = {"initial": [], "renoise": []} if record else None

    def draw(self, kind, shape):
        x = torch.randn(shape, generator=self.gen)
        if self.drawn is not None:
            self.drawn[kind].append(x.clone())
        return x


class GivenNoise(NoiseSource):
    """Given tensors, used in order: `initial` one per chunk, `renoise` one per re-noising draw.
    Each must have the shape the sampler asks for; too few or too many is an error."""

    def __init__(self, initial, renoise=()):
        self.queues = {"initial": list(initial), "renoise": list(renoise)}
        self.used = {"initial": 0, "renoise": 0}

    def draw(self, kind, shape):
        i, queue = self.used[kind], self.queues[kind]
        if i >= len(queue):
            raise ValueError(f"given noise: {kind} draw {i} requested, only {len(queue)} given")
        x = queue[i]
        if tuple(x.shape) != tuple(shape):
            raise ValueError(f"given noise: {kind} draw {i} has shape {tuple(x.shape)}, "
                             f"the sampler needs {tuple(shape)}")
        self.used[kind] = i + 1
        return x

    def finish(self):
        for kind, queue in self.queues.items():
            if self.used[kind] != len(queue):
                raise ValueError(f"given noise: {len(queue)} {kind} draws given, "
                                 f"{self.used[kind]} used")


def generate(model, text, session, *, n_frames: int, chunk: int, latent_shape: tuple[int, int, int],
             seed: int, sampler: SamplerConfig, batch: int = 1, poses: torch.Tensor | None = None,
             progress: bool = True, device=None, initial: torch.Tensor | None = None,
             noise: NoiseSource | torch.Generator | None = None,
             state_frames: int = 0) -> Iterator[torch.Tensor]:
    """Yield the clean latents [B, C, chunk, h, w] of each chunk as soon as it is done.

    `initial` [B, C, n0, h, w] (n0 a multiple of the chunk): given leading frames (Self-Forcing's
    `initial_latent`, video extension): each of their chunks is only written to the cache by a
    clean pass, then yielded unchanged; generation starts after them.
    `noise`: a NoiseSource or a torch.Generator (default: a generator seeded with `seed`).
    `state_frames`: latent frames denoised with every chunk (ahead of it in the model input, at
    the chunk's timesteps, from fresh noise), whose clean-pass K/V the session keeps in slots of
    their own (`CacheSession(state_frames=...)`); they are never yielded nor decoded.
    `poses` (toy camera path) goes to the session's frame info.
    """
    device = device or model.device
    if noise is None or isinstance(noise, torch.Generator):
        noise = SeededNoise(torch.Generator().manual_seed(seed) if noise is None else noise)
    if state_frames != getattr(session, "state_frames", 0):
        raise ValueError(f"state_frames={state_frames} but the session keeps "
                         f"{getattr(session, 'state_frames', 0)}")
    if state_frames and initial is not None:
        raise ValueError("state_frames and initial latents cannot be combined")
    if poses is not None:
        session.info.poses = poses
    sigmas = sampler.sigmas()
    restart = sampler.restart_sigmas() if sampler.restarts else []
    T = sampler.num_train_timesteps
    n_in = state_frames + chunk                          # model input frames per pass

    def run(x, sigma):
        t = torch.full((batch, x.shape[2]), sigma * T, device=device)
        session.begin_pass(sigma, sigma * T)
        return model(x, t, text, cache=session).float()

    def integrate(x, schedule):
        for s, s_next in zip(schedule[:-1], schedule[1:]):
            x = x + (s_next - s) * run(x, s)
        return x

    shape = (batch, latent_shape[0], n_in, latent_shape[1], latent_shape[2])

    def denoise(x):
        """The chunk's denoising passes from noise x: its clean latents x0."""
        if sampler.kind == "euler":
            x0 = integrate(x, sigmas)
            for _ in range(sampler.restarts):
                x0 = integrate(add_noise(x0, noise.renoise(shape).to(device), restart[0]), restart)
            return x0
        for i, s in enumerate(sigmas):
            x0 = flow_to_x0(x, run(x, s), s)
            if i + 1 < len(sigmas):
                x = add_noise(x0, noise.renoise(shape).to(device), sigmas[i + 1])
        return x0

    def commit(x0):
        """The cache-writing pass at context_noise: on x0, or on x0 re-noised to that level."""
        ctx_sigma = sampler.context_noise / T
        if ctx_sigma and sampler.context_renoise:
            x0 = add_noise(x0, noise.renoise(shape).to(device), ctx_sigma)
        run(x0, ctx_sigma)

    for start in tqdm(range(0, n_frames, chunk), disable=not progress, unit="chunk",
                      desc="generate"):
        frame_ids = torch.arange(start, start + chunk)
        if initial is not None and start < initial.shape[2]:
            given = initial[:, :, start:start + chunk].to(device)
            x0, _ = session.drive_chunk(frame_ids, lambda: given, lambda x: run(x, 0.0))
        else:
            x0, _ = session.drive_chunk(frame_ids, lambda: denoise(noise.initial(shape).to(device)),
                                        commit)
        yield x0[:, :, state_frames:]
    noise.finish()
