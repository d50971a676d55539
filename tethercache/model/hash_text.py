"""A weight-free text encoder for random tiny backbones: each word maps to a fixed vector
derived from a stable hash, padded to a fixed token count (stands in for UMT5 in smoke runs)."""
from __future__ import annotations

import hashlib

import torch


class HashTextEncoder:
    def __init__(self, dim: int = 32, tokens: int = 16):
        self.dim, self.tokens = dim, tokens

    def _word(self, word: str) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "little")
        return torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        out = torch.zeros(len(prompts), self.tokens, self.dim)
        for b, prompt in enumerate(prompts):
            for i, word in enumerate(prompt.lower().split()[: self.tokens]):
                out[b, i] = self._word(word)
        return out
