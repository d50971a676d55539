"""Weight-free text encoder for the toy grammar, standing in for UMT5 behind the same interface.

One token per grammar slot: [palette, texture, sprite 1, sprite 2, sprite 3, speed]. A token is a
sum of one-hot features (its slot, and its word(s) in a closed vocabulary); absent sprites are
zero tokens, like UMT5's zero padding in Wan. When `dim` is smaller than the feature count the
one-hots go through a fixed seeded random projection, so the encoding is still deterministic.
"""
from __future__ import annotations

import torch

from .prompts import MAX_SPRITES, PALETTES, SHAPES, SPEEDS, SPRITE_COLOURS, TEXTURES, parse_prompt

SLOTS = ("palette", "texture", *(f"sprite{i + 1}" for i in range(MAX_SPRITES)), "speed")
VOCAB = (*PALETTES, *TEXTURES, *SPRITE_COLOURS, *SHAPES, *SPEEDS)


class GrammarTextEncoder:
    """`encode(prompts) -> float [B, len(SLOTS), dim]`; unknown words raise `PromptError`."""

    def __init__(self, dim: int = 64):
        self.dim = dim
        self.n_features = len(SLOTS) + len(VOCAB)
        self._index = {w: len(SLOTS) + i for i, w in enumerate(VOCAB)}
        if dim >= self.n_features:
            self.projection = torch.eye(self.n_features, dim)
        else:   # fixed, seeded: the same on every machine and every call
            g = torch.Generator().manual_seed(0x7E7)
            self.projection = torch.randn(self.n_features, dim, generator=g) / dim ** 0.5

    @property
    def seq_len(self) -> int:
        return len(SLOTS)

    def _features(self, prompt: str) -> torch.Tensor:
        spec = parse_prompt(prompt)
        words = [[spec.palette], [spec.texture]]
        words += [[s.colour, s.shape] for s in spec.sprites] + [[]] * (MAX_SPRITES - len(spec.sprites))
        words.append([spec.speed])
        feats = torch.zeros(len(SLOTS), self.n_features)
        for slot, slot_words in enumerate(words):
            if slot_words:
                feats[slot, slot] = 1.0
                feats[slot, [self._index[w] for w in slot_words]] = 1.0
        return feats

    def encode(self, prompts: list[str]) -> torch.Tensor:
        if isinstance(prompts, str):
            raise TypeError("encode takes a list of prompts")
        return torch.stack([self._features(p) for p in prompts]) @ self.projection

    __call__ = encode
