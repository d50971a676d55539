"""Procedural panning world: a camera window ping-pongs across a wide strip of flat colour bands
with a few world-anchored sprites, so places (and sprites) leave the view and come back.

Everything is deterministic from (prompt, seed). The strip's background is rendered once as a
label map; a clip is crops of it plus sprites pasted per frame, then one palette lookup, so a
24-frame training clip costs well under a millisecond. Every pixel is a palette colour (no
anti-aliasing): any off-palette pixel in a generated video is damage.

Conventions: one toy frame per latent frame, 4 toy frames = 1 s (30 s = 120 frames).
`camera_x` (the pose) is the strip column of the view's left edge, in pixels.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from .conditioning import pose_tokens
from .prompts import PromptError, WorldSpec, parse_prompt

TOY_FPS = 4                  # toy frames (= latent frames) per second
REVISIT_MIN_GAP = 21         # frames; revisits closer than this are within a typical cache window
MAX_BOB = 2                  # px: the largest sprite bobbing amplitude


@dataclass(frozen=True)
class WorldConfig:
    height: int = 32
    width: int = 32           # camera window
    strip_width: int = 256    # world width; (strip_width - width) must be a multiple of every speed
    sprite_size: int = 8
    bob_period: int = 28      # frames; divides every camera period, so revisits one period apart match
    band_amp_scale: float = 1.0   # band-boundary wave amplitude; < 1 = simpler background (0: flat)
    # "free": the seed puts sprite i anywhere in strip segment i of n, so most sprites enter the
    # view later, unannounced. "start": every sprite stands in the first view, where rollouts begin
    # (a video introduces its subject in its first frames); the seed picks their exact places, so
    # once the camera has left, only memory tells where and how they were drawn.
    sprite_layout: str = "free"

    def describe(self) -> dict:
        """The fields that differ from the default world (what weights record they were trained on)."""
        return {k: v for k, v in self.__dict__.items() if v != getattr(DEFAULT_CONFIG, k)}

    # ---- as a backbone's world (tethercache.backbone.World) ---------------------------------
    def check_prompt(self, prompt: str) -> str | None:
        """Why this world cannot show `prompt` (the grammar's first bad slot), or None."""
        try:
            parse_prompt(prompt)
        except PromptError as e:
            return str(e)
        return None

    def poses(self, prompt: str, seed: int, n_frames: int) -> torch.Tensor:
        """The camera pose the toy backbone is conditioned on, per latent frame (the path is known)."""
        return pose_tokens(ToyWorld(prompt, seed, self).camera_x(n_frames))

    def real_frames(self, prompt: str, seed: int, n_frames: int) -> torch.Tensor:
        """float [1, n, 3, H, W] in [-1, 1]: the world's first frames, for rollouts that continue them."""
        frames, _ = ToyWorld(prompt, seed, self).render(n_frames)
        return frames.permute(0, 3, 1, 2).float()[None] / 127.5 - 1.0


DEFAULT_CONFIG = WorldConfig()


def camera_poses(prompt: str, seed: int, n_frames: int) -> torch.Tensor:
    """The pose of every latent frame of a rollout of `prompt` in the default world."""
    return DEFAULT_CONFIG.poses(prompt, seed, n_frames)
# What `world_config` accepts, with the allowed range (the model's frame size is fixed by its
# weights, so only the world's content levers can change).
WORLD_RANGES = {"sprite_size": (int, 4, 14), "band_amp_scale": (float, 0.0, 1.0),
                "sprite_layout": (str, "free", "start")}


START_MAX_SPRITE = 12        # px: the largest sprites three of which fit the first view (two rows)


def world_config(fields=None, key: str = "backbone.world") -> WorldConfig:
    """The WorldConfig from the fields that differ from the default (what `describe()` writes and
    toy weights record); an unknown field or a value out of range raises ConfigError naming `key`."""
    from ..errors import ConfigError
    fields = dict(fields or {})
    out = {}
    for name, value in fields.items():
        if name not in WORLD_RANGES:
            raise ConfigError(f"{key}.{name}: unknown; allowed: {sorted(WORLD_RANGES)}")
        cast, *allowed = WORLD_RANGES[name]
        if cast is str:
            if value not in allowed:
                raise ConfigError(f"{key}.{name}={value!r}: must be one of {allowed}")
            out[name] = value
            continue
        lo, hi = allowed
        try:
            v = cast(value)
            ok = (cast is float or float(value) == v) and lo <= v <= hi and not isinstance(value, bool)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{key}.{name}={value!r}: must be {'a whole number' if cast is int else 'a number'} "
                              f"in [{lo}, {hi}]")
        out[name] = v
    if out.get("sprite_layout") == "start" and out.get("sprite_size", DEFAULT_CONFIG.sprite_size) > START_MAX_SPRITE:
        raise ConfigError(f"{key}.sprite_size: must be <= {START_MAX_SPRITE} with sprite_layout=start "
                          f"(three sprites must fit the first view)")
    return WorldConfig(**out)


@lru_cache(maxsize=None)
def sprite_mask(shape: str, size: int) -> np.ndarray:
    """Binary [size, size] mask; shapes differ by >= 12 pixels at size 8 so they are tellable apart."""
    yy, xx = np.mgrid[:size, :size] + 0.5
    c = size / 2
    if shape == "square":
        return np.ones((size, size), bool)
    if shape == "disk":
        return (yy - c) ** 2 + (xx - c) ** 2 <= c * c
    if shape == "triangle":   # apex up, 2 px wide at the top so no pixel is isolated
        half_width = np.ceil((np.floor(yy) + 1) / 2) * (c / np.ceil(size / 2))
        return np.abs(xx - c) <= half_width
    raise ValueError(f"unknown shape {shape!r}")


def _layout_rng(spec: WorldSpec, seed: int) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(spec.prompt.encode()), int(seed)])


class ToyWorld:
    """One (prompt, seed) world: `render(n_frames, start)` and `camera_x(n_frames, start)`."""

    def __init__(self, prompt: str | WorldSpec, seed: int, config: WorldConfig = DEFAULT_CONFIG):
        self.spec = parse_prompt(prompt) if isinstance(prompt, str) else prompt
        self.seed, self.config = int(seed), config
        span = config.strip_width - config.width
        if span % self.spec.speed_px:
            raise ValueError(f"strip span {span} is not a multiple of the camera speed {self.spec.speed_px}")
        self.sweep = span // self.spec.speed_px          # frames for one pass across the strip
        self.colours = self.spec.colours()                # [K, 3] uint8
        rng = _layout_rng(self.spec, self.seed)
        self.background = self._background_labels(rng)    # [H, Ws] uint8 band labels
        self.sprites = self._sprite_layout(rng)           # list of (label, mask, x, y, amp, phase)

    @property
    def period(self) -> int:
        return 2 * self.sweep

    def camera_x(self, n_frames: int, start: int = 0) -> torch.Tensor:
        """LongTensor [n]: ping-pong pan, 0 -> strip end -> 0, `speed` px per frame."""
        phase = (np.arange(start, start + n_frames)) % self.period
        steps = np.where(phase <= self.sweep, phase, self.period - phase)
        return torch.from_numpy(steps * self.spec.speed_px).long()

    # ---- layout (seed-dependent: the model must invent it, or remember it) ------------------
    def _background_labels(self, rng: np.random.Generator) -> np.ndarray:
        cfg, texture = self.config, self.spec.texture
        H, x = cfg.height, np.arange(cfg.strip_width)
        if texture == "calm":
            bases, amps, wavelengths = [rng.uniform(0.4, 0.6) * H], [rng.uniform(2, 3.5)], [rng.uniform(48, 96)]
        elif texture == "wavy":
            bases = [rng.uniform(0.25, 0.35) * H, rng.uniform(0.62, 0.72) * H]
            amps, wavelengths = rng.uniform(2, 3, 2), rng.uniform(32, 64, 2)
        else:  # hilly: gentle horizon, big slow hills in front
            bases = [rng.uniform(0.25, 0.32) * H, rng.uniform(0.65, 0.72) * H]
            amps, wavelengths = [rng.uniform(1.5, 2.5), rng.uniform(3.5, 5)], rng.uniform(64, 128, 2)
        heights, floor = [], 2.0
        for base, amp, lam in zip(bases, amps, wavelengths):
            amp = amp * cfg.band_amp_scale         # rng draws unchanged: same layout, calmer waves
            y = base + amp * np.sin(2 * np.pi * x / lam + rng.uniform(0, 2 * np.pi))
            y = np.clip(np.maximum(y, floor), 3, H - 3)   # bands stay >= 3 px thick, ordered
            heights.append(y)
            floor = y + 4
        rows = np.arange(H)[:, None]
        return sum((rows >= np.round(h)[None, :]).astype(np.uint8) for h in heights)

    def _sprite_layout(self, rng: np.random.Generator) -> list[tuple]:
        """(label, mask, x, y, bob amplitude, bob phase) per prompt sprite; sprites never overlap."""
        cfg, n = self.config, len(self.spec.sprites)
        S, segment = cfg.sprite_size, cfg.strip_width / n
        sprites = []
        for i, sp in enumerate(self.spec.sprites):
            if cfg.sprite_layout == "start":
                x, y, amp = self._start_place(rng, i, n)
            else:                                       # one sprite per strip segment
                x = int(rng.integers(int(i * segment) + 4, int((i + 1) * segment) - S - 4 + 1))
                amp = int(rng.integers(0, MAX_BOB + 1))
                y = int(rng.integers(2 + amp, cfg.height - S - 2 - amp + 1))
            sprites.append((self.spec.n_bands + i, sprite_mask(sp.shape, S), x, y, amp, rng.uniform(0, 2 * np.pi)))
        return sprites

    def _start_place(self, rng: np.random.Generator, i: int, n: int) -> tuple[int, int, int]:
        """(x, y, amp) of sprite i of n, all inside the first view (camera x 0): spread across it,
        jittered by the seed; when they cannot stand side by side they alternate between a top and
        a bottom row, bobbing at most 1 px so the rows never touch. Never at x 0: the camera only
        moves right of 0, so such a sprite would touch the view's left edge in every frame, and a
        subject is judged from a drawing that no side cuts (eval/toy.py)."""
        cfg = self.config
        S, W, H = cfg.sprite_size, cfg.width, cfg.height
        side_by_side = n * S <= W - 2 * n
        x = 1 + round(i * (W - S - 2) / (n - 1)) if n > 1 else int(rng.integers(1, W - S))
        x = int(np.clip(x + rng.integers(-1, 2), 1, W - S))     # x 0 would be cut by the left edge for good
        amp = int(rng.integers(0, (MAX_BOB if side_by_side else 1) + 1))
        if side_by_side:
            return x, int(rng.integers(2 + amp, H - S - 2 - amp + 1)), amp
        return x, (2 + amp if i % 2 == 0 else H - S - 2 - amp), amp

    # ---- rendering --------------------------------------------------------------------------
    def labels(self, n_frames: int, start: int = 0) -> np.ndarray:
        """uint8 [n, H, W] palette indices of the frames start .. start + n - 1."""
        cfg = self.config
        t = np.arange(start, start + n_frames)
        strips = np.repeat(self.background[None], n_frames, axis=0)
        S = cfg.sprite_size
        for label, mask, x, y, amp, phase in self.sprites:
            bob = np.round(amp * np.sin(2 * np.pi * t / cfg.bob_period + phase)).astype(int)
            for i, dy in enumerate(bob):
                region = strips[i, y + dy: y + dy + S, x: x + S]
                region[mask] = label
        cols = self.camera_x(n_frames, start).numpy()[:, None] + np.arange(cfg.width)[None, :]
        return np.take_along_axis(strips, np.repeat(cols[:, None, :], cfg.height, axis=1), axis=2)

    def sprite_in_view(self, n_frames: int, start: int = 0) -> np.ndarray:
        """bool [n]: some sprite's column span overlaps the view in frame start + i."""
        cam = self.camera_x(n_frames, start).numpy()
        S, W = self.config.sprite_size, self.config.width
        xs = np.array([x for _, _, x, *_ in self.sprites])
        return ((xs[None, :] + S > cam[:, None]) & (xs[None, :] < cam[:, None] + W)).any(1)

    def render(self, n_frames: int, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(uint8 [n, H, W, 3] frames, LongTensor [n] camera x) for frames start .. start + n - 1."""
        frames = self.colours[self.labels(n_frames, start)]
        return torch.from_numpy(frames), self.camera_x(n_frames, start)


def render(spec: str | WorldSpec, seed: int, n_frames: int,
           config: WorldConfig = DEFAULT_CONFIG) -> tuple[torch.Tensor, torch.Tensor]:
    """Frames uint8 [n, H, W, 3] and poses LongTensor [n] of a (prompt, seed) world from frame 0."""
    return ToyWorld(spec, seed, config).render(n_frames)


# ---- splits and training clips ------------------------------------------------------------
SPLIT_SEEDS = {"train": range(0, 1_000_000), "heldout": range(1_000_000, 1_100_000)}


def split_pairs(split: str, n: int, offset: int = 0) -> list[tuple[str, int]]:
    """The first n (prompt, seed) pairs of a split; the prompt is drawn from the seed, so the two
    splits share the prompt vocabulary but never a (prompt, seed) world (their seeds are disjoint)."""
    seeds = SPLIT_SEEDS[split]
    if offset + n > len(seeds):
        raise ValueError(f"split {split!r} has {len(seeds)} seeds, asked for {offset + n}")
    return [(prompt_for_seed(s), s) for s in seeds[offset: offset + n]]


def prompt_for_seed(seed: int) -> str:
    from .prompts import sample_prompt
    return sample_prompt(np.random.default_rng([0x70E, int(seed)]))


@dataclass
class ClipBatch:
    frames: torch.Tensor        # uint8 [B, T, H, W, 3]
    poses: torch.Tensor         # long [B, T] camera x in pixels
    prompts: list[str]
    seeds: list[int]
    sprite: torch.Tensor | None = None   # bool [B, T, H, W]: pixels drawn by a sprite

    def images(self) -> torch.Tensor:
        """float [B, T, 3, H, W] in [-1, 1]: the PixelCodec's image convention."""
        return self.frames.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0


class ClipSampler:
    """Endless iterator of ClipBatch: random worlds of the split, each at a random camera phase.

    `sprite_clips`: the fraction of clips whose start is drawn among the phases where a sprite is
    in (or enters) the view at some frame of the clip; the rest are uniform, as before. The state
    (`state()` / `load_state()`) is the numpy generator's, so a resumed trainer sees the very
    clips an uninterrupted one would."""

    def __init__(self, batch_size: int, clip_frames: int = 24, split: str = "train", seed: int = 0,
                 config: WorldConfig = DEFAULT_CONFIG, sprite_clips: float = 0.0):
        if not 0.0 <= sprite_clips <= 1.0:
            raise ValueError(f"sprite_clips={sprite_clips} outside [0, 1]")
        self.batch_size, self.clip_frames, self.config = batch_size, clip_frames, config
        self.seeds, self.sprite_clips = SPLIT_SEEDS[split], sprite_clips
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def load_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def __iter__(self):
        return self

    def _start(self, world: ToyWorld) -> int:
        start = int(self.rng.integers(0, world.period * 8))
        if self.sprite_clips == 0 or self.rng.random() >= self.sprite_clips:   # 0: no extra draw (v1 order)
            return start
        # phases p of one period where frames p .. p + clip - 1 show a sprite somewhere
        seen = world.sprite_in_view(world.period + self.clip_frames)
        window = np.convolve(seen, np.ones(self.clip_frames), "valid")[: world.period] > 0
        phases = np.flatnonzero(window)
        if not len(phases):
            return start
        return start - start % world.period + int(phases[self.rng.integers(len(phases))])

    def __next__(self) -> ClipBatch:
        frames, poses, prompts, world_seeds, sprites = [], [], [], [], []
        for world_seed in self.rng.integers(self.seeds.start, self.seeds.stop, self.batch_size):
            world = ToyWorld(prompt_for_seed(int(world_seed)), int(world_seed), self.config)
            start = self._start(world)
            labels = world.labels(self.clip_frames, start)
            frames.append(world.colours[labels])
            sprites.append(labels >= world.spec.n_bands)
            poses.append(world.camera_x(self.clip_frames, start).numpy())
            prompts.append(world.spec.prompt)
            world_seeds.append(int(world_seed))
        # np.stack: torch.stack of uint8 is ~10x slower on CPU here
        return ClipBatch(torch.from_numpy(np.stack(frames)), torch.from_numpy(np.stack(poses)), prompts,
                         world_seeds, torch.from_numpy(np.stack(sprites)))


def training_batches(batch_size: int, clip_frames: int = 24, split: str = "train", seed: int = 0,
                     config: WorldConfig = DEFAULT_CONFIG, sprite_clips: float = 0.0) -> ClipSampler:
    """Endless iterator of ClipBatch (see `ClipSampler`)."""
    return ClipSampler(batch_size, clip_frames, split, seed, config, sprite_clips)
