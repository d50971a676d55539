"""Latent <-> pixel codecs behind one interface (the real Wan VAE and the toy pixel codec).

Pixels are uint8 [N, H, W, 3] frames at `fps`; latents are [B, C, F, h, w]. A codec decodes
as a stream: `stream = codec.decoder(); stream.push(chunk) -> pixel frames` so a video can be
written while it is generated, and the concatenation of pushes equals one whole decode.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


class StreamDecoder:
    def push(self, latents: torch.Tensor) -> torch.Tensor:  # [1, C, n, h, w] -> uint8 [N, H, W, 3]
        raise NotImplementedError


class Codec:
    latent_channels: int
    spatial_factor: int          # pixels per latent cell along H and W
    fps: int = 16

    def decoder(self) -> StreamDecoder:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Whole-video decode, by definition one push of everything."""
        return self.decoder().push(latents)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} cannot encode")


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] float -> uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class PixelCodec(Codec):
    """Invertible pixel-unshuffle codec: a latent frame is one image, `hold` video frames long.

    `hold` repeats each decoded image so that a latent frame lasts 4 video frames at 16 fps,
    as with the Wan VAE (4 pixel frames per latent frame): 4 latent frames = 1 s.
    """

    def __init__(self, factor: int = 4, hold: int = 4, fps: int = 16):
        self.factor, self.hold, self.fps = factor, hold, fps
        self.latent_channels = 3 * factor * factor
        self.spatial_factor = factor

    def to_images(self, latents: torch.Tensor) -> torch.Tensor:
        """[B, C, F, h, w] latents -> [B, F, 3, H, W] images in [-1, 1] (float)."""
        B, C, n, h, w = latents.shape
        x = latents.permute(0, 2, 1, 3, 4).reshape(B * n, C, h, w).float()
        return F.pixel_shuffle(x, self.factor).reshape(B, n, 3, h * self.factor, w * self.factor)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Images [B, F, 3, H, W] in [-1, 1] -> latents [B, C, F, h, w]."""
        B, n, c, H, W = frames.shape
        x = F.pixel_unshuffle(frames.reshape(B * n, c, H, W).float(), self.factor)
        return x.reshape(B, n, *x.shape[1:]).permute(0, 2, 1, 3, 4)

    def decoder(self) -> StreamDecoder:
        codec = self

        class _Stream(StreamDecoder):
            def push(self, latents):
                img = to_uint8(codec.to_images(latents[:1]))[0]          # [n, 3, H, W]
                return img.permute(0, 2, 3, 1).repeat_interleave(codec.hold, dim=0)

        return _Stream()
