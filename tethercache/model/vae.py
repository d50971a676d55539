"""The Wan2.1 VAE as a streaming `Codec` (diffusers' `AutoencoderKLWan`, read from a local dir).

`AutoencoderKLWan.decode()` clears its causal-conv cache on every call, so decoding chunk by
chunk with it leaves a seam at every chunk boundary (each chunk's causal convs restart from zero
padding). The stream decoder here drives `post_quant_conv` + `decoder` one latent frame at a
time, as `_decode` does, but keeps the causal-conv cache in the stream object across pushes:
the concatenation of pushes equals one whole-video decode, and two streams never share state.

Model latents are normalized per channel: latent = (z - latents_mean) / latents_std.
"""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from diffusers.models.autoencoders.autoencoder_kl_wan import WanCausalConv3d, unpatchify

from .codec import Codec, StreamDecoder, to_uint8


def find_vae_dir(path: str | Path) -> Path:
    """Accept a `*-Diffusers` root (holding `vae/`) or the vae directory itself."""
    root = Path(path).expanduser()
    for candidate in (root / "vae", root):
        if (candidate / "config.json").is_file():
            return candidate
    raise FileNotFoundError(f"{root}: no Wan VAE here (expected {root / 'vae' / 'config.json'} "
                            f"or {root / 'config.json'})")


class WanVAECodec(Codec):
    fps = 16

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu"):
        self.path = find_vae_dir(path)
        self.vae = AutoencoderKLWan.from_pretrained(
            self.path, torch_dtype=dtype, local_files_only=True).to(device).eval()
        cfg = self.vae.config
        self.latent_channels: int = cfg.z_dim
        self.spatial_factor: int = 2 ** (len(cfg.dim_mult) - 1) * (cfg.patch_size or 1)
        shape = (1, cfg.z_dim, 1, 1, 1)
        self.mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(shape).to(device)
        self.std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(shape).to(device)
        # one cache slot per causal conv of the decoder, as AutoencoderKLWan.clear_cache counts them
        self.n_decoder_convs = sum(isinstance(m, WanCausalConv3d) for m in self.vae.decoder.modules())

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self.vae.dtype

    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() - self.mean) / self.std

    def denormalize(self, latents: torch.Tensor) -> torch.Tensor:
        return latents.float().to(self.device) * self.std + self.mean

    def decoder(self) -> "WanStreamDecoder":
        return WanStreamDecoder(self)

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames [B, F, 3, H, W] in [-1, 1] (F = 1 + 4k) -> normalized latents [B, C, 1 + k, h, w]."""
        x = frames.permute(0, 2, 1, 3, 4).to(self.device, self.dtype)
        z = self.vae.encode(x).latent_dist.mode()            # the posterior mean, as Wan does
        return self.normalize(z)


class WanStreamDecoder(StreamDecoder):
    """One video's decode: the first latent frame gives 1 pixel frame, each later one 4."""

    def __init__(self, codec: WanVAECodec):
        self.codec = codec
        self.feat_cache: list = [None] * codec.n_decoder_convs
        self.frames_pushed = 0

    def push(self, latents: torch.Tensor) -> torch.Tensor:
        """Normalized latents [1, C, n, h, w] -> uint8 frames [N, H, W, 3]."""
        return to_uint8(self.push_float(latents))

    @torch.no_grad()
    def push_float(self, latents: torch.Tensor) -> torch.Tensor:
        """As `push`, but float frames in [-1, 1] (what `to_uint8` rounds)."""
        if latents.ndim != 5 or latents.shape[0] != 1:
            raise ValueError(f"stream decode takes latents [1, C, n, h, w], got {tuple(latents.shape)}")
        vae = self.codec.vae
        if latents.shape[2] == 0:
            f = self.codec.spatial_factor
            return torch.zeros(0, latents.shape[3] * f, latents.shape[4] * f, 3, device=self.codec.device)
        x = vae.post_quant_conv(self.codec.denormalize(latents).to(vae.dtype))  # 1x1x1: no cache
        out = []
        for i in range(x.shape[2]):
            out.append(vae.decoder(x[:, :, i:i + 1], feat_cache=self.feat_cache, feat_idx=[0],
                                   first_chunk=self.frames_pushed == 0))
            self.frames_pushed += 1
        video = torch.cat(out, dim=2)
        if vae.config.patch_size is not None:
            video = unpatchify(video, patch_size=vae.config.patch_size)
        return video.clamp(-1, 1)[0].permute(1, 2, 3, 0).float()
