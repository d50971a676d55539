"""The causal forward equals diffusers' forward, and chunk-by-chunk through the cache equals one
block-causal forward over the whole sequence (fp32, max abs diff <= 1e-5)."""
import pytest
import torch

from tethercache.cache import CacheSession, build_policy
from tethercache.model.wan import block_causal_mask

TOL = 1e-5
C, H, W = 3, 8, 8


def inputs(n_frames, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(1, 12, n_frames, H, W, generator=g), torch.randn(1, 7, 32, generator=g),
            torch.rand(1, n_frames, generator=g) * 1000)


@torch.no_grad()
@pytest.mark.parametrize("t", [0.0, 625.0, 937.5, 1000.0])
def test_no_cache_matches_diffusers(tiny_model, t):
    x, text, _ = inputs(6)
    ref = tiny_model.net(x, torch.tensor([t]), text, return_dict=False)[0]
    out = tiny_model(x, torch.tensor([t]), tiny_model.text_kv(text))
    assert (out - ref).abs().max() <= TOL


@torch.no_grad()
def test_per_frame_timesteps_match_per_token_diffusers(tiny_model):
    """Our [B, F] timesteps == diffusers' per-token path (Wan2.2 TI2V) with t repeated per token."""
    x, text, t = inputs(6)
    T = tiny_model.tokens_per_frame(H, W)
    ref = tiny_model.net(x, t.repeat_interleave(T, dim=1), text, return_dict=False)[0]
    out = tiny_model(x, t, tiny_model.text_kv(text))
    assert (out - ref).abs().max() <= TOL


def chunkwise(model, x, text, t, policy, n_frames):
    """Each chunk in one pass: the chunk protocol with no denoising passes, then the clean pass."""
    policy.validate(C, n_frames, model.config.rope_max_positions)
    session = CacheSession.for_model(model, policy, grid=(H // 2, W // 2), horizon=n_frames)
    kv = model.text_kv(text)
    outs = [session.drive_chunk(torch.arange(s, s + C), lambda: None,
                                lambda _: model(x[:, :, s:s + C], t[:, s:s + C], kv, cache=session))[1]
            for s in range(0, n_frames, C)]
    return torch.cat(outs, dim=2)


@torch.no_grad()
@pytest.mark.parametrize("rope", ["absolute", "relative"])
def test_full_cache_chunkwise_equals_block_causal(tiny_model, rope):
    n = 15
    x, text, t = inputs(n)
    T = tiny_model.tokens_per_frame(H, W)
    ref = tiny_model(x, t, tiny_model.text_kv(text), attn_mask=block_causal_mask(n, C, T))
    out = chunkwise(tiny_model, x, text, t, build_policy({"name": "full", "rope": rope}), n)
    assert (out - ref).abs().max() <= TOL


def local_block_mask(n, chunk, T, window, sink=0):
    """Self-Forcing's training mask with local attention (+ LongLive's sink): a query in chunk j
    sees keys in [end_j - window, end_j) and the first `sink` frames."""
    f = torch.arange(n)
    end = (f // chunk + 1) * chunk
    allowed = (f[None, :] < end[:, None]) & ((f[None, :] >= end[:, None] - window) | (f[None, :] < sink))
    return allowed.repeat_interleave(T, 0).repeat_interleave(T, 1)


@torch.no_grad()
@pytest.mark.parametrize("name,sink", [("window", 0), ("sink", 3)])
def test_absolute_rolling_equals_local_attention_mask(tiny_model, name, sink):
    n, K = 24, 9
    x, text, t = inputs(n)
    T = tiny_model.tokens_per_frame(H, W)
    ref = tiny_model(x, t, tiny_model.text_kv(text), attn_mask=local_block_mask(n, C, T, K - sink, sink))
    cfg = {"name": name, "budget": K, "rope": "absolute"} | ({"sink": sink} if sink else {})
    out = chunkwise(tiny_model, x, text, t, build_policy(cfg), n)
    assert (out - ref).abs().max() <= TOL


@torch.no_grad()
def test_relative_window_sees_slot_positions():
    """Relative RoPE: the window attends at positions 0..K-1 whatever the absolute time, so a
    window far into the video equals the same frames run as positions 0..K-1. One layer, so a
    frame's K/V do not depend on the context it was generated in."""
    from conftest import perturbed_tiny
    tiny_model = perturbed_tiny(layers=1)
    n, K = 18, 9
    x, text, t = inputs(n)
    out = chunkwise(tiny_model, x, text, t, build_policy({"name": "window", "budget": K, "rope": "relative"}), n)
    # the last chunk attended frames 9..17 at positions 0..8: rerun those frames from scratch
    tail = chunkwise(tiny_model, x[:, :, 9:], text, t[:, 9:], build_policy({"name": "full", "rope": "absolute"}), 9)
    assert (out[:, :, -3:] - tail[:, :, -3:]).abs().max() <= TOL
    # RoPE only sees position differences: a contiguous window is the same in both modes ...
    absolute = chunkwise(tiny_model, x, text, t, build_policy({"name": "window", "budget": K}), n)
    assert (out - absolute).abs().max() <= TOL
    # ... but a sink is not: relative mode packs sink + window into contiguous slots.
    sink = chunkwise(tiny_model, x, text, t, build_policy(
        {"name": "sink", "budget": K, "sink": 3, "rope": "relative"}), n)
    keep = torch.tensor([0, 1, 2, 12, 13, 14, 15, 16, 17])      # what the last chunk sees
    packed = chunkwise(tiny_model, x[:, :, keep], text, t[:, keep],
                       build_policy({"name": "full"}), len(keep))
    assert (sink[:, :, -3:] - packed[:, :, -3:]).abs().max() <= TOL
    sink_abs = chunkwise(tiny_model, x, text, t, build_policy({"name": "sink", "budget": K, "sink": 3}), n)
    assert (sink[:, :, -3:] - sink_abs[:, :, -3:]).abs().max() > 1e-4


@torch.no_grad()
def test_bf16_close_to_fp32(tiny_model):
    x, text, t = inputs(6)
    ref = tiny_model(x, t, tiny_model.text_kv(text))
    m16 = tiny_model.to(torch.bfloat16)
    out = m16(x, t, m16.text_kv(text)).float()
    rel = (out - ref).abs().mean() / ref.abs().mean()
    assert rel < 0.03


@torch.no_grad()
def test_chunked_causal_attention_equals_the_mask(tiny_model):
    n = 12
    x, text, t = inputs(n)
    kv = tiny_model.text_kv(text)
    T = tiny_model.tokens_per_frame(H, W)
    ref = tiny_model(x, t, kv, attn_mask=block_causal_mask(n, C, T))
    assert (tiny_model(x, t, kv, causal_chunk=C) - ref).abs().max() <= TOL
