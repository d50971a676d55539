"""The toy world's prompt grammar: a prompt names every slot of a `WorldSpec`, nothing else.

    "<palette> scene, <texture> bands, <colour> <shape>[ and <colour> <shape>]{0,2}, <speed> camera"
    e.g. "forest scene, wavy bands, red square and white disk, medium camera"

The vocabulary is closed so that the text encoder can be weight-free and the evaluator knows the
world (colours, sprite shapes, camera speed) from the prompt alone. The layout (band heights,
sprite positions) is NOT in the prompt: it comes from the seed, and the model must invent it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Band colours top -> bottom (sky, middle, ground) and the sprite colours that stand out on them.
PALETTES: dict[str, dict] = {
    "forest": {"bands": [(120, 180, 235), (40, 130, 60), (100, 65, 30)], "sprites": ("red", "yellow", "white", "magenta")},
    "desert": {"bands": [(250, 200, 120), (215, 150, 70), (150, 90, 40)], "sprites": ("blue", "black", "white", "cyan")},
    "ocean": {"bands": [(200, 230, 250), (30, 90, 200), (10, 30, 90)], "sprites": ("red", "yellow", "white", "magenta")},
    "night": {"bands": [(15, 15, 50), (70, 40, 120), (30, 80, 70)], "sprites": ("yellow", "white", "red", "cyan")},
}
SPRITE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30), "yellow": (250, 230, 20), "white": (250, 250, 250),
    "magenta": (220, 40, 210), "blue": (30, 40, 230), "black": (10, 10, 10), "cyan": (30, 225, 225),
}
TEXTURES = ("calm", "wavy", "hilly")           # calm: 2 bands; wavy / hilly: 3 bands
BAND_COUNT = {"calm": 2, "wavy": 3, "hilly": 3}
SHAPES = ("square", "disk", "triangle")
SPEEDS = {"slow": 2, "medium": 4, "fast": 8}  # camera pixels per toy frame
MAX_SPRITES = 3


class PromptError(ValueError):
    """A prompt that the toy grammar cannot read; the message names the slot and the choices."""


@dataclass(frozen=True)
class SpriteSpec:
    colour: str
    shape: str


@dataclass(frozen=True)
class WorldSpec:
    palette: str
    texture: str
    sprites: tuple[SpriteSpec, ...]
    speed: str

    @property
    def prompt(self) -> str:
        sprites = " and ".join(f"{s.colour} {s.shape}" for s in self.sprites)
        return f"{self.palette} scene, {self.texture} bands, {sprites}, {self.speed} camera"

    @property
    def speed_px(self) -> int:
        return SPEEDS[self.speed]

    @property
    def n_bands(self) -> int:
        return BAND_COUNT[self.texture]

    def colours(self) -> np.ndarray:
        """uint8 [K, 3]: band colours (top -> bottom) then sprite colours: the video's palette."""
        bands = PALETTES[self.palette]["bands"][: self.n_bands]
        return np.array(bands + [SPRITE_COLOURS[s.colour] for s in self.sprites], dtype=np.uint8)


def _choose(slot: str, word: str, allowed) -> str:
    if word not in allowed:
        raise PromptError(f"unknown {slot} {word!r}; expected one of {sorted(allowed)}")
    return word


def _strip_suffix(part: str, suffix: str, slot: str) -> str:
    if not part.endswith(" " + suffix):
        raise PromptError(f"the {slot} slot must read '<{slot}> {suffix}', got {part!r}")
    return part[: -len(suffix) - 1].strip()


def parse_prompt(text: str) -> WorldSpec:
    """Read a prompt into a `WorldSpec`; raise `PromptError` naming the first bad slot."""
    norm = re.sub(r"\s+", " ", text.strip().lower())
    parts = [p.strip() for p in norm.split(",")]
    if len(parts) != 4:
        raise PromptError("a prompt has 4 comma-separated slots: '<palette> scene, <texture> bands, "
                          f"<sprites>, <speed> camera'; got {len(parts)} in {text!r}")
    palette = _choose("palette", _strip_suffix(parts[0], "scene", "palette"), PALETTES)
    texture = _choose("texture", _strip_suffix(parts[1], "bands", "texture"), TEXTURES)
    speed = _choose("speed", _strip_suffix(parts[3], "camera", "speed"), SPEEDS)
    sprites = []
    for phrase in parts[2].split(" and "):
        words = phrase.split()
        if len(words) != 2:
            raise PromptError(f"a sprite reads '<colour> <shape>', got {phrase!r}")
        colour = _choose("sprite colour", words[0], SPRITE_COLOURS)
        if colour not in PALETTES[palette]["sprites"]:
            raise PromptError(f"sprite colour {colour!r} is not in the {palette} palette; "
                              f"expected one of {list(PALETTES[palette]['sprites'])}")
        sprites.append(SpriteSpec(colour, _choose("sprite shape", words[1], SHAPES)))
    if not 1 <= len(sprites) <= MAX_SPRITES:
        raise PromptError(f"a prompt has 1 to {MAX_SPRITES} sprites, got {len(sprites)}")
    if len({s.colour for s in sprites}) != len(sprites):
        raise PromptError(f"sprite colours must differ (the colour identifies the sprite): {parts[2]!r}")
    return WorldSpec(palette, texture, tuple(sprites), speed)


def sample_spec(rng: np.random.Generator) -> WorldSpec:
    palette = str(rng.choice(list(PALETTES)))
    n = int(rng.integers(1, MAX_SPRITES + 1))
    colours = rng.choice(PALETTES[palette]["sprites"], size=n, replace=False)
    sprites = tuple(SpriteSpec(str(c), str(rng.choice(SHAPES))) for c in colours)
    return WorldSpec(palette, str(rng.choice(TEXTURES)), sprites, str(rng.choice(list(SPEEDS))))


def sample_prompt(rng: np.random.Generator) -> str:
    return sample_spec(rng).prompt
