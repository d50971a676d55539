"""Controlled damage to toy videos, to check that each toy metric notices what it should.

Every corruption takes toy frames uint8 [n, H, W, 3] (one frame per latent frame) and a severity
("mild" or "heavy") and returns new frames of the same shape. The sprite corruptions need the prompt.
"""
from __future__ import annotations

import numpy as np
import torch

from ..toyworld.prompts import PALETTES, SPRITE_COLOURS, parse_prompt

SEVERITIES = ("mild", "heavy")


def _noise(x: np.ndarray, severity: str, rng: np.random.Generator, prompt) -> np.ndarray:
    sigma = {"mild": 6.0, "heavy": 24.0}[severity]          # grey levels
    return x + rng.normal(0.0, sigma, x.shape)


def _blur(x: np.ndarray, severity: str, rng, prompt) -> np.ndarray:
    kernel = {"mild": np.array([1, 2, 1]) / 4, "heavy": np.array([1, 4, 6, 4, 1]) / 16}[severity]
    repeats = {"mild": 1, "heavy": 2}[severity]
    r = len(kernel) // 2
    for _ in range(repeats):
        for axis in (1, 2):   # separable, edge-replicated
            pad = [(0, 0)] * 4
            pad[axis] = (r, r)
            xp = np.pad(x, pad, mode="edge")
            x = sum(w * np.take(xp, np.arange(i, i + x.shape[axis]), axis=axis) for i, w in enumerate(kernel))
    return x


def _colour_shift(x: np.ndarray, severity: str, rng, prompt) -> np.ndarray:
    magnitude = {"mild": 16.0, "heavy": 56.0}[severity]      # Euclidean grey levels
    direction = np.array([1.0, -0.7, 0.5])
    return x + magnitude * direction / np.linalg.norm(direction)


def _frozen(x: np.ndarray, severity: str, rng, prompt) -> np.ndarray:
    """Stutter: mild repeats every 4th frame (25 % frozen), heavy holds each 4th frame for 4."""
    i = np.arange(len(x))
    src = np.where(i % 4 == 3, i - 1, i) if severity == "mild" else i - i % 4
    return x[src]


def _shuffle(x: np.ndarray, severity: str, rng: np.random.Generator, prompt) -> np.ndarray:
    """Mild: one adjacent swap per 8-frame block. Heavy: a global permutation."""
    if severity == "heavy":
        return x[rng.permutation(len(x))]
    src = np.arange(len(x))
    for block in range(0, len(x) - 1, 8):
        j = block + int(rng.integers(0, min(7, len(x) - 1 - block)))
        src[j], src[j + 1] = src[j + 1], src[j]
    return x[src]


def _sprite_swap(x: np.ndarray, severity: str, rng, prompt) -> np.ndarray:
    """Sprite identity swap: each sprite takes the colour of the next prompt sprite of another
    shape (a red square becomes a white square while the prompt says the white one is a disk), or,
    when no other shape exists, a palette colour the prompt does not name, from the middle of the
    video on (the subject is remembered wrongly after a while; a swap from the first frame would be
    a consistent wrong subject, which subject_consistency sees and a memory score rightly does not).
    Mild: every other 8-frame block of the second half; heavy: all of the second half."""
    if prompt is None:
        raise ValueError("sprite_swap needs the prompt (it must know the sprite colours)")
    spec = parse_prompt(prompt)
    sprites, named = spec.sprites, {s.colour for s in spec.sprites}
    unused = [c for c in PALETTES[spec.palette]["sprites"] if c not in named]
    new = []
    for j, s in enumerate(sprites):
        others = [sprites[(j + k) % len(sprites)] for k in range(1, len(sprites))]
        other_shape = [o.colour for o in others if o.shape != s.shape]
        new.append(other_shape[0] if other_shape else unused[0])
    label = np.linalg.norm(x[..., None, :] - spec.colours().astype(float), axis=-1).argmin(-1)
    i = np.arange(len(x))
    affected = (i >= len(x) // 2) & (((i // 8) % 2 == 0) if severity == "mild" else True)
    out = x.copy()
    for j, (s, colour) in enumerate(zip(sprites, new)):
        hit = (label == spec.n_bands + j) & affected[:, None, None]
        out[hit] += np.array(SPRITE_COLOURS[colour], float) - np.array(SPRITE_COLOURS[s.colour], float)
    return out


def _sprite_delete(x: np.ndarray, severity: str, rng, prompt) -> np.ndarray:
    """Sprite deletion: sprite pixels take the band colour just above them (the background the
    sprite hides, as the world would show it without the sprite). Mild: every other frame (a
    flickering subject); heavy: every frame (a subject the model never draws)."""
    if prompt is None:
        raise ValueError("sprite_delete needs the prompt (it must know the sprite colours)")
    spec = parse_prompt(prompt)
    palette = spec.colours().astype(float)
    label = np.linalg.norm(x[..., None, :] - palette, axis=-1).argmin(-1)        # [n, H, W]
    sprite = label >= spec.n_bands
    if severity == "mild":
        sprite[::2] = False
    rows = np.where(sprite, -1, np.arange(x.shape[1])[None, :, None])            # -1: hidden by a sprite
    above = np.maximum.accumulate(rows, axis=1)
    band = np.where(above >= 0, np.take_along_axis(label, np.maximum(above, 0), axis=1), 0)
    out = x.copy()
    out[sprite] = palette[band[sprite]]
    return out


CORRUPTIONS = {"noise": _noise, "blur": _blur, "colour_shift": _colour_shift, "frozen": _frozen,
               "shuffle": _shuffle, "sprite_swap": _sprite_swap, "sprite_delete": _sprite_delete}


def corrupt(frames: torch.Tensor, kind: str, severity: str, *, prompt: str | None = None,
            seed: int = 0) -> torch.Tensor:
    """Apply one corruption to toy frames uint8 [n, H, W, 3]; deterministic from `seed`."""
    if kind not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {kind!r}; expected one of {sorted(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; expected one of {SEVERITIES}")
    x = np.asarray(frames, dtype=np.float64)
    out = CORRUPTIONS[kind](x, severity, np.random.default_rng(seed), prompt)
    return torch.from_numpy(np.clip(np.round(out), 0, 255).astype(np.uint8))
