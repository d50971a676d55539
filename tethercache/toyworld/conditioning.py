"""What the toy backbone is conditioned on besides the prompt: the camera pose, as a shift of
the RoPE width axis in token units (so every token carries its world column)."""
from __future__ import annotations

import torch

from ..model.wan import SIZES

CHUNK = 3                             # latent frames per causal chunk (training and sampling)
CODEC_FACTOR = 2                      # pixel-unshuffle 2, then the toy model's patch
PX_PER_TOKEN = CODEC_FACTOR * SIZES["toy"].patch_size[2]


def pose_tokens(camera_x: torch.Tensor) -> torch.Tensor:
    """Camera x in pixels -> RoPE width offset in tokens."""
    return camera_x.float() / PX_PER_TOKEN
