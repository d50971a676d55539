"""`knorm`: keep the cached tokens with the smallest key L2 norm: the template for a token policy.

Devoto et al. 2024, "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression"
(kvpress's `KnormPress`, NVIDIA/kvpress presses/knorm_press.py): keys with a low norm receive
high attention, so a token's worth is minus its key norm (averaged over batch and heads). Keys
are stored unrotated; RoPE is a rotation, so the norm does not depend on position.
`budget_tokens` counts TOKENS (storage is allocated for exactly that many); the first `sink`
frames and the newest `recent` frames (the chunk included) are never evicted. Everything else
comes from `ScorerPolicy`.
"""
from dataclasses import dataclass

from .registry import register
from .scorer import ScorerPolicy


@register
@dataclass
class KeyNormPolicy(ScorerPolicy):
    name = "knorm"
    rope: str = "relative"
    sink: int = 1
    recent: int = 6
    budget_tokens: int = 672    # toy: 64 tokens per frame, so half of a 21-frame window

    def score(self, q, k, v):
        return -k.float().norm(dim=-1).mean(dim=(0, 2))
