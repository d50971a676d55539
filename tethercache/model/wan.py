"""Causal Wan2.1 transformer: diffusers' modules and weight layout, our own forward.

One implementation for the real Self-Forcing 1.3B and for tiny configs. What the forward adds
over diffusers' `WanTransformer3DModel.forward`:
  * a timestep per latent frame (Self-Forcing's per-frame modulation);
  * self-attention against a KV cache: each layer hands its fresh (q, k, v) to the cache and
    gets back what to attend to, with the temporal RoPE positions the cache policy decided.
    Keys reach the cache unrotated; RoPE is applied on read (the model knows no policy);
  * text cross-attention K/V computed once per prompt (`text_kv`);
  * explicit frame positions and an optional block-causal mask for whole-sequence passes.
Numerics follow the original Wan (wan/modules/model.py): float64 timestep sinusoid and RoPE angles,
float32 RMS/Layer norms and modulation, the residual stream kept in the model dtype.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from diffusers import WanTransformer3DModel
from torch import nn

from ..cache.protocol import Attend, KVCacheLike, grid_positions
from .rope import WanRope, apply_rope


@dataclass
class WanConfig:
    dim: int = 1536
    ffn_dim: int = 8960
    heads: int = 12
    layers: int = 30
    in_channels: int = 16
    out_channels: int = 16
    text_dim: int = 4096
    freq_dim: int = 256
    patch_size: tuple[int, int, int] = (1, 2, 2)
    eps: float = 1e-6
    rope_max_positions: int = 1024
    cross_attn_norm: bool = True
    # what proj_out predicts: "flow" (noise - x0, as Wan) or "x0" (clean latents, converted to flow
    # in forward, so samplers and losses see flow either way). x0 suits wide patches: a clean patch
    # lies on a low-dimensional manifold, noise does not (Li & He 2025, "Back to Basics" / JiT).
    prediction: str = "flow"

    @property
    def head_dim(self) -> int:
        return self.dim // self.heads

    def diffusers_kwargs(self) -> dict:
        return dict(
            patch_size=tuple(self.patch_size), num_attention_heads=self.heads,
            attention_head_dim=self.head_dim, in_channels=self.in_channels,
            out_channels=self.out_channels, text_dim=self.text_dim, freq_dim=self.freq_dim,
            ffn_dim=self.ffn_dim, num_layers=self.layers, cross_attn_norm=self.cross_attn_norm,
            qk_norm="rms_norm_across_heads", eps=self.eps, rope_max_seq_len=self.rope_max_positions,
        )


X0_SIGMA_FLOOR = 0.05


@dataclass
class TextKV:
    """Per-block cross-attention keys/values of one prompt batch."""
    kv: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Wan's sinusoid (cos first), computed in float64 as the original does."""
    half = dim // 2
    freqs = torch.pow(10000.0, -torch.arange(half, dtype=torch.float64, device=t.device) / half)
    args = t.to(torch.float64)[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


def rms_norm(norm: nn.RMSNorm, x: torch.Tensor) -> torch.Tensor:
    """RMS norm in float32 whatever the input dtype (the original WanRMSNorm)."""
    xf = x.float()
    y = (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + norm.eps)).type_as(x)
    return y * norm.weight


def block_causal_mask(n_frames: int, chunk: int, tokens_per_frame: int,
                      device=None) -> torch.Tensor:
    """Boolean [L, L] mask: a token sees every token of its own chunk and of earlier chunks."""
    chunk_of = torch.arange(n_frames, device=device) // chunk
    allowed = chunk_of[:, None] >= chunk_of[None, :]
    return allowed.repeat_interleave(tokens_per_frame, 0).repeat_interleave(tokens_per_frame, 1)


class CausalWan(nn.Module):
    def __init__(self, config: WanConfig):
        super().__init__()
        self.config = config
        self.net = WanTransformer3DModel(**config.diffusers_kwargs())
        self.rope = WanRope(config.head_dim, config.rope_max_positions)

    @property
    def dtype(self) -> torch.dtype:
        return self.net.patch_embedding.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.net.patch_embedding.weight.device

    def tokens_per_frame(self, height: int, width: int) -> int:
        _, ph, pw = self.config.patch_size
        return (height // ph) * (width // pw)

    # ---- text ---------------------------------------------------------------------------
    def text_kv(self, text_embeds: torch.Tensor) -> TextKV:
        """Project the prompt once; every denoising pass of every chunk reuses it."""
        ctx = self.net.condition_embedder.text_embedder(text_embeds.to(self.dtype))
        out = TextKV()
        for blk in self.net.blocks:
            a = blk.attn2
            k = rms_norm(a.norm_k, a.to_k(ctx)).unflatten(2, (a.heads, -1))
            v = a.to_v(ctx).unflatten(2, (a.heads, -1))
            out.kv.append((k, v))
        return out

    # ---- forward ------------------------------------------------------------------------
    def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextKV, *,
                cache: KVCacheLike | None = None,
                frame_pos: torch.Tensor | None = None,
                attn_mask: torch.Tensor | None = None,
                causal_chunk: int | None = None,
                poses: torch.Tensor | None = None,
                frame_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Flow prediction for latents x [B, C, F, H, W] at per-frame timesteps t [B, F] (or [B]).

        Without a cache the F frames attend to each other at temporal positions `frame_pos`
        (default 0..F-1), optionally under `attn_mask` [L, L] or block-causally over chunks of
        `causal_chunk` frames (the same as `block_causal_mask`, computed chunk by chunk: faster on
        CPU and no L x L mask). With a cache, each layer attends to what `cache.attend` returns,
        at the token positions it returns (the cache applies per-frame metadata such as poses).
        `poses` [N] or [B, N] (no cache only) shifts the RoPE width axis of frame i by
        poses[..., i] tokens: a camera-pose hook of the toy backbone.
        """
        cfg = self.config
        B, _, n_frames, height, width = x.shape
        pt, ph, pw = cfg.patch_size
        hh, ww = height // ph, width // pw
        T = hh * ww
        if t.ndim == 1:
            t = t[:, None].expand(B, n_frames)
        net = self.net

        h = net.patch_embedding(x.to(self.dtype)).flatten(2).transpose(1, 2).contiguous()
        temb = net.condition_embedder.time_embedder(
            timestep_sinusoid(t.reshape(-1), cfg.freq_dim).to(self._time_dtype()))
        tproj = net.condition_embedder.time_proj(F.silu(temb))
        temb = temb.float().view(B, n_frames, 1, -1)
        tproj = tproj.float().view(B, n_frames, 6, -1)

        pos = None
        if cache is None:
            if frame_ids is None:
                frame_ids = torch.arange(n_frames)
            if frame_pos is None:
                frame_pos = frame_ids.to(torch.float64)
            pos = grid_positions(frame_pos, hh, ww, None if poses is None else poses[..., frame_ids])
            pos = Attend(None, None, pos, pos, (tuple(pos.shape), pos.numpy().tobytes()))
        for layer, blk in enumerate(net.blocks):
            h = self._block(layer, blk, h, tproj, text.kv[layer], cache, (n_frames, hh, ww),
                            pos, (attn_mask, causal_chunk))

        shift, scale = (net.scale_shift_table[None].float() + temb).unbind(2)   # [B, F, dim]
        h = self._modulate(net.norm_out, h, scale, shift, n_frames, T)
        h = net.proj_out(h)
        h = h.reshape(B, n_frames, hh, ww, pt, ph, pw, -1).permute(0, 7, 1, 4, 2, 5, 3, 6)
        out = h.flatten(6, 7).flatten(4, 5).flatten(2, 3)
        if cfg.prediction == "x0":       # flow = (x_t - x0) / sigma, sigma floored as JiT does
            sigma = (t.float() / 1000).clamp_min(X0_SIGMA_FLOOR)[:, None, :, None, None]
            out = ((x.float() - out.float()) / sigma).type_as(out)
        return out

    def _time_dtype(self) -> torch.dtype:
        return next(self.net.condition_embedder.time_embedder.parameters()).dtype

    @staticmethod
    def _modulate(norm, h, scale, shift, n_frames, T):
        """norm(h) * (1 + scale) + shift, in float32, with one (scale, shift) per frame."""
        B, L, C = h.shape
        y = norm(h.float()).view(B, n_frames, T, C) * (1 + scale[:, :, None]) + shift[:, :, None]
        return y.view(B, L, C).type_as(h)

    def _block(self, layer, blk, h, tproj, text_kv, cache, grid, pos, attn_mask):
        n_frames, hh, ww = grid
        T = hh * ww
        B, L, C = h.shape
        mod = (blk.scale_shift_table[None].float() + tproj)          # [B, F, 6, dim]
        shift, scale, gate, c_shift, c_scale, c_gate = mod.unbind(2)

        y = self._modulate(blk.norm1, h, scale, shift, n_frames, T)
        y = self._self_attn(layer, blk.attn1, y, cache, grid, pos, attn_mask)
        h = (h.float().view(B, n_frames, T, C) + y.float().view(B, n_frames, T, C) * gate[:, :, None]
             ).view(B, L, C).type_as(h)

        y = blk.norm2(h.float()).type_as(h)
        h = h + self._cross_attn(blk.attn2, y, text_kv)

        y = self._modulate(blk.norm3, h, c_scale, c_shift, n_frames, T)
        y = blk.ffn(y)
        h = (h.float().view(B, n_frames, T, C) + y.float().view(B, n_frames, T, C) * c_gate[:, :, None]
             ).view(B, L, C).type_as(h)
        return h

    def _self_attn(self, layer, a, y, cache, grid, pos, attn_mask):
        n_frames, hh, ww = grid
        q = rms_norm(a.norm_q, a.to_q(y)).unflatten(2, (a.heads, -1))
        k = rms_norm(a.norm_k, a.to_k(y)).unflatten(2, (a.heads, -1))
        v = a.to_v(y).unflatten(2, (a.heads, -1))
        if cache is None:       # `pos`: the positions (and their memo key) of the whole input
            s = Attend(k, v, pos.k_pos, pos.q_pos, pos.pos_key)
        else:
            s = cache.attend(layer, q, k, v)
        qkey, kkey = (None, None) if s.pos_key is None else (("q", s.pos_key), ("k", s.pos_key))
        qc, qs = self.rope.cos_sin(s.q_pos, q.device, qkey)
        kc, ks = self.rope.cos_sin(s.k_pos, q.device, kkey)
        q, keys = apply_rope(q, qc, qs), apply_rope(s.k, kc, ks)
        vals = s.v
        if s.read is not None:  # the cache's read set, taken after RoPE: kept keys keep positions
            keys, vals = keys[:, s.read], vals[:, s.read]
        mask, causal_chunk = attn_mask
        q, keys, vals = q.transpose(1, 2), keys.transpose(1, 2), vals.transpose(1, 2)
        if causal_chunk:
            step = causal_chunk * hh * ww
            out = torch.cat([F.scaled_dot_product_attention(q[:, :, i:i + step], keys[:, :, :i + step],
                                                            vals[:, :, :i + step])
                             for i in range(0, q.shape[2], step)], dim=2)
        else:
            out = F.scaled_dot_product_attention(q, keys, vals, attn_mask=mask)
        out = out.transpose(1, 2).flatten(2).type_as(y)
        return a.to_out[0](out)

    def _cross_attn(self, a, y, text_kv):
        q = rms_norm(a.norm_q, a.to_q(y)).unflatten(2, (a.heads, -1))
        k, v = text_kv
        out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        return a.to_out[0](out.transpose(1, 2).flatten(2).type_as(y))


SIZES = {
    "self_forcing": WanConfig(),
    "tiny": WanConfig(dim=64, ffn_dim=128, heads=2, layers=2, in_channels=12, out_channels=12,
                      text_dim=32, freq_dim=32),
    # the embedded toy world's model: 32x32 frames, pixel-unshuffle 2 + patch 2 -> 64 tokens
    "toy": WanConfig(dim=128, ffn_dim=384, heads=4, layers=4, in_channels=12, out_channels=12,
                     text_dim=64, freq_dim=64, prediction="x0"),
}


def config_from_dict(d: dict) -> WanConfig:
    """`{size: <name>, <field>: value, ...}`: a named size with overrides, or explicit fields."""
    d = dict(d)
    base = asdict(SIZES[d.pop("size")]) if "size" in d else {}
    if "patch_size" in d:
        d["patch_size"] = tuple(d["patch_size"])
    return WanConfig(**{**base, **d})
