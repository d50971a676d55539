"""Cache storage + policies: region sizes and frame order over long rollouts, Self-Forcing's
rolling index arithmetic, RoPE modes, no storage growth, and every registered policy's basics."""
import pytest
import torch

from conftest import drive_attends
from tethercache.cache import (EMPTY, MEMORY, POLICIES, RECENT, SINK, CacheSession,
                               build_policy)
from tethercache.errors import ConfigError
from tethercache.sampling import SamplerConfig

C, T, H, D, LAYERS = 3, 2, 1, 4, 2


def pingpong_poses(n, sweep=28):
    """A camera that pans one step per frame and back, like the toy world's."""
    phase = torch.arange(n) % (2 * sweep)
    return torch.where(phase <= sweep, phase, 2 * sweep - phase).float()


def session_for(policy, horizon=3000):
    policy.validate(C, horizon, 10**6)
    return CacheSession(policy, layers=LAYERS, horizon=horizon, grid=(1, T), heads=H,
                        head_dim=D, rope_max=10**6, poses=pingpong_poses(horizon))


def step(session, start, passes=2):
    """One chunk as the sampler drives it: denoising passes, then the committing clean pass."""
    def qkv(p):
        # K/V encode (frame id, pass) so that we can check what ended up where
        kv = torch.arange(start, start + C, dtype=torch.float32).repeat_interleave(T)
        kv = (kv + p / 10)[None, :, None, None].expand(1, C * T, H, D)
        return [(torch.randn(1, C * T, H, D), kv, kv)] * LAYERS
    return drive_attends(session, torch.arange(start, start + C), qkv, passes)[0]


def self_forcing_reference(n_chunks, budget, sink):
    """Self-Forcing's kv-cache index arithmetic (its wan/modules/causal_model.py: the global and
    local end indices of the rolling cache) on frame ids."""
    buf, local_end, global_end = [-1] * budget, 0, 0
    history = []
    for j in range(n_chunks):
        start, end = j * C, j * C + C
        if end > global_end and C + local_end > budget:
            evicted = C + local_end - budget
            rolled = local_end - evicted - sink
            buf[sink:sink + rolled] = buf[sink + evicted: sink + evicted + rolled]
            local_end = local_end + end - global_end - evicted
        else:
            local_end = local_end + end - global_end
        buf[local_end - C: local_end] = list(range(start, end))
        global_end = end
        history.append(buf[:local_end])
    return history


@pytest.mark.parametrize("name,sink", [("window", 0), ("sink", 3), ("sink", 5)])
def test_rolling_matches_self_forcing_over_400_chunks(name, sink):
    budget = 21
    cfg = {"name": name, "budget": budget} | ({"sink": sink} if name == "sink" else {})
    s = session_for(build_policy(cfg))
    ref = self_forcing_reference(420, budget, sink)
    for j in range(420):
        out = step(s, j * C)
        for layer in range(LAYERS):
            frames = s.cache.frame_ids(layer).tolist()
            assert frames == ref[j]
            regions = s.cache.frame_regions(layer).tolist()
            assert regions == [SINK] * min(sink, len(frames)) + [RECENT] * (len(frames) - min(sink, len(frames)))
            # cached K/V are the clean pass's (pass index 2 -> +0.2) and belong to their frame
            k = out[layer].k[0, ::T, 0, 0]
            assert torch.allclose(k, torch.tensor(frames, dtype=torch.float32) + 0.2)
    assert s.cache.n_frames(0) == budget


def test_absolute_positions_are_frame_ids_relative_are_slots():
    for rope in ("absolute", "relative"):
        s = session_for(build_policy({"name": "sink", "budget": 9, "sink": 3, "rope": rope}))
        for j in range(10):
            out = step(s, j * C)[0]
        frames = [0, 1, 2, 24, 25, 26, 27, 28, 29]
        assert out.k_frames[::T].tolist() == frames
        k_t, q_t = out.k_pos[::T, 0].tolist(), out.q_pos[::T, 0].tolist()
        if rope == "absolute":
            assert k_t == frames and q_t == [27, 28, 29]
        else:
            assert k_t == list(range(9)) and q_t == [6, 7, 8]
        # (h, w) of every token in raster order, w shifted by the frame's camera pose
        w = torch.arange(T).repeat(9).double() + s.info.poses[torch.tensor(frames)].double().repeat_interleave(T)
        assert torch.equal(out.k_pos[:, 2], w) and out.k_pos[:, 1].eq(0).all()


def test_storage_is_preallocated_and_does_not_grow():
    s = session_for(build_policy({"name": "window", "budget": 21}))
    ptr, n = s.cache.k.data_ptr(), s.cache.k.numel()
    for j in range(50):
        step(s, j * C)
    assert s.cache.k.data_ptr() == ptr and s.cache.k.numel() == n
    assert s.cache.capacity == 21 * T


def test_full_keeps_everything():
    s = session_for(build_policy({"name": "full"}), horizon=60)
    for j in range(20):
        step(s, j * C)
    assert s.cache.frame_ids(0).tolist() == list(range(60))


def test_timeline_records_every_chunk(tmp_path):
    import json

    import numpy as np
    s = session_for(build_policy({"name": "sink", "budget": 9, "sink": 3}))
    for j in range(12):
        step(s, j * C)
    s.save_timeline(tmp_path / "t.npz")
    tl = np.load(tmp_path / "t.npz")
    assert tl["frames"].shape == (12, LAYERS, 9) and tl["regions"].shape == (12, LAYERS, 9)
    assert tl["chunk_start"].tolist() == list(range(0, 36, 3))
    assert tl["frames"][-1, 0].tolist() == [0, 1, 2, 30, 31, 32, 33, 34, 35]
    assert len(json.loads(str(tl["stats_json"]))) == 12


@pytest.mark.parametrize("cfg,key", [
    ({"name": "nope"}, "cache.name"),
    ({"name": "window", "budget": 2}, "cache.budget"),
    ({"name": "window", "rope": "spiral"}, "cache.rope"),
    ({"name": "window", "sink": 3}, "cache.sink"),            # not a window key
    ({"name": "sink", "budget": 21, "sink": 19}, "cache.sink"),
    ({"name": "sink", "budget": 21, "sink": -1}, "cache.sink"),
])
def test_bad_cache_config_names_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_policy(cfg).validate(C, 120, 1024)


def test_absolute_rope_past_table_is_a_config_error():
    with pytest.raises(ConfigError, match="cache.rope=absolute"):
        build_policy({"name": "window"}).validate(C, 1050, 1024)


@pytest.mark.parametrize("name", sorted(n for n, p in POLICIES.items() if p.unit == "frame"))
def test_every_policy_keeps_its_budget_over_a_long_rollout(name):
    """Frame-level policies (token-level too: test_policy_invariants.py): never above budget,
    the current chunk is always the tail,
    frames unique and increasing within each region, no empty slot inside the used range."""
    policy = build_policy({"name": name})
    s = session_for(policy, horizon=600)
    budget = policy.cache_budget(600, T)["frames"]
    for j in range(200):
        out = step(s, j * C)
        for layer in range(LAYERS):
            frames = s.cache.frame_ids(layer)
            regions = s.cache.frame_regions(layer)
            assert len(frames) <= budget
            assert frames[-C:].tolist() == list(range(j * C, j * C + C))
            assert len(set(frames.tolist())) == len(frames)
            assert (regions != EMPTY).all()
            for r in (SINK, MEMORY, RECENT):
                f = frames[regions == r]
                assert (f[1:] > f[:-1]).all()
            assert out[layer].k.shape[1] == len(frames) * T


def test_relative_rope_runs_past_the_rope_table(tiny_rollout):
    """1050 latent frames (> 1024 RoPE positions) with a relative window on the tiny model."""
    from conftest import perturbed_tiny
    m = perturbed_tiny(layers=1)
    n = 1050
    text = m.text_kv(torch.randn(1, 4, 32))
    sampler = SamplerConfig(kind="euler", euler_steps=1)
    latents, s = tiny_rollout(m, {"name": "window", "budget": 9, "rope": "relative"}, n, text,
                              sampler=sampler, record=False)
    chunks = latents.split(C, dim=2)
    assert len(chunks) == n // C and torch.isfinite(chunks[-1]).all()
    assert s.cache.frame_ids(0).tolist() == list(range(n - 9, n))


def test_oracle_memory_holds_the_closest_pose_frames_with_their_clean_kv():
    s = session_for(build_policy({"name": "oracle"}), horizon=600)
    poses = s.info.poses
    for j in range(60):
        out = step(s, j * C)
        first = j * C
        history = list(range(3, max(3, first - 1)))
        frames = s.cache.frame_ids(0).tolist()
        regions = s.cache.frame_regions(0).tolist()
        memory = [f for f, r in zip(frames, regions) if r == MEMORY]
        if len(history) > 14:
            d = {h: abs(float(poses[h] - poses[first:first + 3].mean())) for h in history}
            worst_kept = max(d[m] for m in memory)
            assert all(d[h] >= worst_kept for h in history if h not in memory)
            assert len(memory) == 14 and memory == sorted(memory)
        # memory K/V are the clean-pass K/V (pass 2 -> +0.2) of those very frames
        k = out[0].k[0, ::T, 0, 0]
        assert torch.allclose(k[:len(frames) - 3], torch.tensor(frames[:-3], dtype=torch.float32) + 0.2)


def test_scorer_zeroes_freed_slots_and_moves_scores_with_their_tokens():
    """An accumulating scorer (H2O-like) would read the scores of freed slots: they must be 0."""
    policy = build_policy({"name": "knorm", "budget_tokens": 10 * T, "sink": 1, "recent": 4})
    s = session_for(policy, horizon=120)
    gen = torch.Generator().manual_seed(0)
    evictions = 0
    for j in range(30):
        frames = torch.arange(j * C, j * C + C)
        before = dict(zip(zip(s.cache.token_frames(0).tolist(), s.cache.hw[0, :s.cache.used[0], 1].tolist()),
                          s.state.scores[0, :s.cache.used[0]].tolist()))
        s.begin_chunk(frames)
        kept = s.chunk_slots[0].start                 # tokens that survived, compacted to the front
        if kept < len(before):
            evictions += 1
            ids = zip(s.cache.frames[0, :kept].tolist(), s.cache.hw[0, :kept, 1].tolist())
            assert s.state.scores[0, :kept].tolist() == [before[i] for i in ids]
            assert (s.state.scores[:, kept:] == 0).all()
        for p in range(3):
            kv = [torch.randn(3, 1, C * T, H, D, generator=gen) for _ in range(LAYERS)]
            if p == 2:
                with s.commit_pass():
                    [s.attend(l, *kv[l]) for l in range(LAYERS)]
            else:
                [s.attend(l, *kv[l]) for l in range(LAYERS)]
        s.end_chunk()
    assert evictions > 10 and (s.state.scores[0, :s.cache.used[0]] != 0).all()
