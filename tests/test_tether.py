"""`tether` policy (TetherCache GRAB + TAME, the paper's sections 5.2-5.4): the eviction schedule, the memory
decision against grab.grab(), TAME on newly admitted frames only, long-rollout invariants, the
degenerate settings (M = 0 == sink, S = 0, alpha = 0, FIFO memory), the shared-scope variant,
RoPE modes and config validation. Synthetic K/V we control; one tiny-model check."""
import json

import pytest
import torch

from conftest import drive_attends
from tethercache.cache import MEMORY, RECENT, SINK, CacheSession, build_policy
from tethercache.cache.grab import frame_relevance, grab
from tethercache.cache.tame import tame
from tethercache.errors import ConfigError

C, T, H, D, LAYERS = 3, 4, 2, 8, 2
PASSES = 2


def frame_kv(f: int, layer: int):
    """Clean K, V [T, H, D] of global frame f in `layer`: distinct per frame and per layer, with
    frame-dependent mean and scale so that GRAB and TAME have something to act on."""
    g = torch.Generator().manual_seed(10_000 * layer + f)
    k = torch.randn(T, H, D, generator=g) * (1 + 0.3 * (f % 5)) + 0.2 * ((f * 7) % 11 - 5)
    v = torch.randn(T, H, D, generator=g) * (1 + 0.2 * (f % 3)) - 0.1 * (f % 4)
    return k, v


def chunk_q(start: int, layer: int):
    g = torch.Generator().manual_seed(777 + 1000 * layer + start)
    return torch.randn(1, C * T, H, D, generator=g) + 0.3


def session_for(cfg, horizon=3000, layers=LAYERS):
    policy = build_policy({"name": "tether"} | cfg)
    policy.validate(C, horizon, 10**6)
    return CacheSession(policy, layers=layers, horizon=horizon, grid=(1, T), heads=H,
                        head_dim=D, rope_max=10**6)


def step(s, start, before_commit=None):
    """One chunk as the sampler drives it: noisy passes (K/V offset), then the clean commit pass."""
    layers = s.cache.layers
    clean = [[torch.stack(t)[None].flatten(1, 2) for t in zip(*(frame_kv(f, l)
              for f in range(start, start + C)))] for l in range(layers)]

    def qkv(p):
        if p == PASSES:
            return [(chunk_q(start, l), *clean[l]) for l in range(layers)]
        return [(chunk_q(start, l) + p, k + 100 + p, v - 100 - p) for l, (k, v) in enumerate(clean)]
    out, snap = drive_attends(s, torch.arange(start, start + C), qkv, PASSES, before_commit)
    for a in out:                   # the frames each layer read (its k_frames are its own copy)
        a.read_frames = a.k_frames[::T].tolist()
    return out, snap


def region(s, layer, code):
    c = s.cache
    return c.frame_ids(layer)[c.frame_regions(layer) == code].tolist()


def snapshot(s):
    """Per layer: frame ids and clones of the occupied K/V, taken before the commit pass."""
    c = s.cache
    return [(c.frame_ids(l).clone(), c.frame_k(l)[:, : c.n_frames(l)].clone(),
             c.frame_v(l)[:, : c.n_frames(l)].clone())
            for l in range(c.layers)]


def kv_of(f, layer):
    k, v = frame_kv(f, layer)
    return k[None], v[None]          # [B=1, T, H, D]


# ---- the schedule ----------------------------------------------------------------------------
def test_schedule_trace_K21_S3_R4_C3():
    s = session_for({})
    for j in range(6):
        step(s, j * C)
    assert s.policy.chunk_stats(s.state)["candidates"] == [[], []]
    # chunk 6 (frames 18-20) fills the cache: memory is seeded with frames 3..16, no GRAB yet
    step(s, 18)
    st = s.policy.chunk_stats(s.state)
    for l in range(LAYERS):
        assert region(s, l, SINK) == [0, 1, 2]
        assert region(s, l, MEMORY) == list(range(3, 17)) == st["memory"][l]
        assert region(s, l, RECENT) == [17, 18, 19, 20]
        assert st["candidates"][l] == st["admitted"][l] == []

    # chunk 7 (frames 21-23) stages 17, 18, 19: during its denoising passes they are in no region
    def staged(sess):
        return [(sess.cache.frame_ids(l).tolist(), [p[2].tolist() for p in sess.state.pending])
                for l in range(LAYERS)]
    _, snap = step(s, 21, staged)
    for frames, pending in snap:
        assert frames == list(range(0, 17)) + [20, 21, 22, 23]
        assert pending == [[17, 18, 19]] * LAYERS
    st = s.policy.chunk_stats(s.state)
    for l in range(LAYERS):
        assert st["candidates"][l] == list(range(3, 20))
        assert sorted(st["admitted"][l] + st["rejected"][l]) == [17, 18, 19]
        assert len(st["rejected"][l]) + len(st["demoted"][l]) == C
        assert region(s, l, RECENT) == [20, 21, 22, 23]
    # chunk 8 stages 20, 21, 22 (one frame of chunk 6, two of chunk 7)
    _, snap = step(s, 24, staged)
    for frames, pending in snap:
        assert pending == [[20, 21, 22]] * LAYERS
        assert frames[-4:] == [23, 24, 25, 26]
    assert s.policy.chunk_stats(s.state)["candidates"][0][-3:] == [20, 21, 22]


def test_memory_decision_equals_grab_and_is_chronological():
    s = session_for({})
    demoted = rejected = 0
    for j in range(40):
        start = j * C
        _, snap = step(s, start, snapshot)
        st = s.policy.chunk_stats(s.state)
        if start < 21:
            continue
        for l in range(LAYERS):
            ids, k, _ = snap[l]
            mem = ids[3:17]
            ev = torch.arange(start - 4, start - 1)          # the 3 frames that left recent
            cand_ids = torch.cat([mem, ev])
            cand_k = torch.cat([k[:, 3:17], torch.cat([kv_of(int(f), l)[0][:, None] for f in ev], 1)], 1)
            gs = grab(chunk_q(start, l), cand_k.flatten(1, 2), cand_ids, memory_size=14, alpha=0.35,
                      temperature=1.0, tokens_per_frame=T)
            expected = cand_ids[gs.keep].tolist()            # candidate order
            assert region(s, l, MEMORY) == expected == sorted(expected)
            assert st["score"][l] == pytest.approx(gs.score.tolist(), abs=1e-5)
            demoted += len(st["demoted"][l])
            rejected += len(st["rejected"][l])
    assert demoted > 0 and rejected > 0          # the decisions were not trivial


# ---- TAME --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg", [{}, {"tame_target": "k"}, {"tame_target": "v"}, {"tau": 0.0},
                                 {"tame": False}, {"tau": 1.0}])
def test_tame_edits_only_newly_admitted_frames(cfg):
    s = session_for(cfg)
    tau = cfg.get("tau", 0.6)
    target = cfg.get("tame_target", "both") if cfg.get("tame", True) else "none"
    admitted_seen = 0
    for j in range(30):
        start = j * C
        _, snap = step(s, start, snapshot)
        if start < 21:
            continue
        st = s.policy.chunk_stats(s.state)
        c = s.cache
        for l in range(LAYERS):
            ids, k0, v0 = snap[l]
            trusted_k, trusted_v = k0[:, :17].flatten(1, 2), v0[:, :17].flatten(1, 2)
            old = {int(f): i for i, f in enumerate(ids)}
            assert torch.equal(c.frame_k(l)[:, :3], k0[:, :3]) and torch.equal(c.frame_v(l)[:, :3], v0[:, :3])
            assert torch.equal(c.frame_k(l)[:, 17], k0[:, 17])            # recent (not the chunk) untouched
            for slot in range(3, 17):
                f = int(c.frame_ids(l)[slot])
                k, v = c.frame_k(l)[:, slot], c.frame_v(l)[:, slot]
                if f in old:                                      # kept member: bitwise unchanged
                    assert torch.equal(k, k0[:, old[f]]) and torch.equal(v, v0[:, old[f]])
                    continue
                assert f in st["admitted"][l]
                admitted_seen += 1
                ok, ov = kv_of(f, l)                              # what was evicted
                ek = tame(ok, trusted_k, tau)[0] if target in ("k", "both") else ok
                ev = tame(ov, trusted_v, tau)[0] if target in ("v", "both") else ov
                assert torch.allclose(k, ek, rtol=0, atol=1e-6) and torch.allclose(v, ev, rtol=0, atol=1e-6)
                if target in ("none", "v") or tau == 0:
                    assert torch.equal(k, ok)
                else:
                    assert not torch.allclose(k, ok, atol=1e-3)
                if target in ("none", "k") or tau == 0:
                    assert torch.equal(v, ov)
                else:
                    assert not torch.allclose(v, ov, atol=1e-3)
            n_edits = len(st["admitted"][l]) if target != "none" else 0
            for t in ("k", "v"):
                shifts = st[f"tame_shift_{t}"][l]
                assert len(shifts) == (n_edits if target in (t, "both") else 0)
                assert all((x == 0) == (tau == 0) for x in shifts)
    assert admitted_seen > 10


# ---- long-rollout invariants -----------------------------------------------------------------
@pytest.mark.parametrize("cfg", [{}, {"grab": False}, {"scope": "shared"},
                                 {"budget": 12, "sink": 2, "recent": 4}])
def test_invariants_over_a_long_rollout(cfg):
    s = session_for(cfg)
    p = s.policy
    S, R, M, K = p.sink, p.recent, p.M, p.budget
    sink_kv = None
    prev = [set() for _ in range(LAYERS)]
    evicted = [set() for _ in range(LAYERS)]
    ever_discarded = [set() for _ in range(LAYERS)]
    admission = [[] for _ in range(LAYERS)]
    ptr = s.cache.k.data_ptr()
    for j in range(160):
        start = j * C
        step(s, start)
        st = p.chunk_stats(s.state)
        json.dumps(st)
        for l in range(LAYERS):
            frames = s.cache.frame_ids(l).tolist()
            sink, mem, rec = region(s, l, SINK), region(s, l, MEMORY), region(s, l, RECENT)
            assert frames == sink + mem + rec                     # slot order = region order
            if len(frames) < K:
                continue
            assert (len(sink), len(mem), len(rec)) == (S, M, R)
            assert sink == list(range(S))
            if sink_kv is None:
                sink_kv = s.cache.k[:, :, :S * T].clone(), s.cache.v[:, :, :S * T].clone()
            assert torch.equal(s.cache.k[:, :, :S * T], sink_kv[0]) and torch.equal(s.cache.v[:, :, :S * T], sink_kv[1])
            assert rec == list(range(start + C - R, start + C))   # FIFO: the newest R frames
            if not prev[l]:                                       # the seed
                evicted[l] |= set(mem)
            else:
                evicted[l] |= set(range(start - R, start - R + C))
                discarded = (prev[l] | set(range(start, start + C))) - set(frames)
                assert len(discarded) == C                        # exactly C gone per step
                assert not (set(frames) & ever_discarded[l])      # gone for good
                ever_discarded[l] |= discarded
                assert set(st["admitted"][l]) | set(st["rejected"][l]) == set(range(start - R, start - R + C))
                assert set(st["rejected"][l]) | set(st["demoted"][l]) == discarded
                admission[l] += st["admitted"][l]
            assert set(mem) <= evicted[l]
            assert mem == sorted(mem) and len(set(mem)) == len(mem)
            prev[l] = set(frames)
    for l in range(LAYERS):
        assert admission[l] == sorted(admission[l]) and len(admission[l]) > 0
    assert s.cache.k.data_ptr() == ptr and s.cache.capacity == K * T


# ---- degenerate settings and variants --------------------------------------------------------
def test_alpha_zero_is_relevance_only_top_m():
    s = session_for({"alpha": 0.0})
    for j in range(20):
        start = j * C
        _, snap = step(s, start, snapshot)
        if start < 21:
            continue
        for l in range(LAYERS):
            ids, k, _ = snap[l]
            cand_ids = torch.cat([ids[3:17], torch.arange(start - 4, start - 1)])
            cand_k = torch.cat([k[:, 3:17]] + [kv_of(f, l)[0][:, None] for f in range(start - 4, start - 1)], 1)
            rel = frame_relevance(chunk_q(start, l), cand_k.flatten(1, 2), 17)[0]
            top = sorted(cand_ids[torch.topk(rel, 14).indices].tolist())
            assert region(s, l, MEMORY) == top


def test_fifo_memory_keeps_the_newest_evicted_frames():
    s = session_for({"grab": False})
    for j in range(40):
        start = j * C
        step(s, start)
        if start >= 21:
            for l in range(LAYERS):
                assert region(s, l, MEMORY) == list(range(start - 1 - 14, start - 1))


def test_sink_zero_works():
    s = session_for({"budget": 9, "sink": 0, "recent": 3})
    for j in range(30):
        step(s, j * C)
    for l in range(LAYERS):
        assert region(s, l, SINK) == [] and len(region(s, l, MEMORY)) == 6
        assert region(s, l, RECENT) == [87, 88, 89]


def test_shared_scope_one_decision_for_all_layers():
    shared, per_layer = session_for({"scope": "shared"}), session_for({})
    differ, changed = False, 0
    for j in range(30):
        start = j * C
        out, snap = step(shared, start, snapshot)
        step(per_layer, start)
        if start < 21:
            continue
        mems = [region(shared, l, MEMORY) for l in range(LAYERS)]
        assert all(m == mems[0] for m in mems)
        differ |= region(per_layer, 0, MEMORY) != region(per_layer, 1, MEMORY)
        # the decision: top-M of the layer-averaged GRAB scores
        scores = []
        for l in range(LAYERS):
            ids, k, _ = snap[l]
            cand_ids = torch.cat([ids[3:17], torch.arange(start - 4, start - 1)])
            cand_k = torch.cat([k[:, 3:17]] + [kv_of(f, l)[0][:, None] for f in range(start - 4, start - 1)], 1)
            scores.append(grab(chunk_q(start, l), cand_k.flatten(1, 2), cand_ids, memory_size=14,
                               alpha=0.35, temperature=1.0, tokens_per_frame=T).score)
        keep = torch.topk(torch.stack(scores).mean(0), 14).indices
        assert mems[0] == sorted(cand_ids[keep].tolist())
        # layer 0's clean-pass readout saw the pre-decision memory; the last layer the new one
        assert out[0].read_frames == snap[0][0].tolist()
        assert out[-1].read_frames == shared.cache.frame_ids(LAYERS - 1).tolist()
        changed += out[-1].read_frames != out[0].read_frames
    assert changed > 0
    assert differ          # per-layer decisions do differ on this data, so the test means something


def test_rope_positions():
    for rope in ("absolute", "relative"):
        s = session_for({"rope": rope})
        for j in range(12):
            out, _ = step(s, j * C)
        o = out[0]
        frames = s.cache.frame_ids(0).tolist()
        assert o.k_frames[::T].tolist() == frames and o.q_frames[::T].tolist() == [33, 34, 35]
        if rope == "absolute":
            assert o.k_pos[::T, 0].tolist() == frames and o.q_pos[::T, 0].tolist() == [33, 34, 35]
        else:
            assert o.k_pos[::T, 0].tolist() == list(range(21)) and o.q_pos[::T, 0].tolist() == [18, 19, 20]


def test_policy_reused_across_sessions_starts_fresh():
    """The runner builds the policy once and runs it for every prompt/sample."""
    fresh = session_for({})
    for j in range(15):
        step(fresh, j * C)
    s = session_for({})
    for j in range(11):
        step(s, j * C)
    again = CacheSession(s.policy, layers=LAYERS, horizon=3000, grid=(1, T), heads=H,
                         head_dim=D, rope_max=10**6)
    for j in range(15):
        step(again, j * C)
    assert torch.equal(again.cache.frames, fresh.cache.frames)
    assert torch.equal(again.cache.k, fresh.cache.k)


@torch.no_grad()
def test_memory_zero_equals_sink_on_a_tiny_model(tiny_rollout):
    from conftest import perturbed_tiny
    from tethercache.sampling import SamplerConfig
    model = perturbed_tiny()
    text = model.text_kv(torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(0)))
    n, outs = 27, {}
    sampler = SamplerConfig(steps=[1000.0, 500.0])
    for name, cfg in [("sink", {"name": "sink", "budget": 9, "sink": 3, "rope": "relative"}),
                      ("tether", {"name": "tether", "budget": 9, "sink": 3, "recent": 6}),
                      ("tether_m", {"name": "tether", "budget": 9, "sink": 2, "recent": 3})]:
        outs[name] = tiny_rollout(model, cfg, n, text, sampler=sampler, record=False)[0]
    assert (outs["tether"] - outs["sink"]).abs().max() <= 1e-5
    assert torch.isfinite(outs["tether_m"]).all()
    assert (outs["tether_m"] - outs["sink"]).abs().max() > 1e-4     # memory does change the video


# ---- validation --------------------------------------------------------------------------------
@pytest.mark.parametrize("cfg,key", [
    ({"tau": 1.5}, "cache.tau"), ({"tau": -0.1}, "cache.tau"),
    ({"alpha": -0.1}, "cache.alpha"), ({"temperature": 0.0}, "cache.temperature"),
    ({"sink": -1}, "cache.sink"), ({"recent": 2}, "cache.recent"),
    ({"recent": 19}, "cache.recent"), ({"sink": 18}, "cache.sink"),
    ({"memory": 10}, "cache.memory"), ({"tame_target": "q"}, "cache.tame_target"),
    ({"scope": "global"}, "cache.scope"), ({"grab": "yes"}, "cache.grab"),
    ({"tame": 1}, "cache.tame"), ({"rope": "spiral"}, "cache.rope"), ({"budget": 2}, "cache.budget"),
    ({"gamma": 1}, "cache.gamma"),
])
def test_bad_values_name_the_key(cfg, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        build_policy({"name": "tether"} | cfg).validate(C, 120, 1024)


def test_good_values_validate():
    for cfg in [{}, {"memory": 14}, {"sink": 0}, {"budget": 7, "sink": 3, "recent": 4},
                {"tau": 0.0, "alpha": 0.0, "tame_target": "v", "scope": "shared", "rope": "absolute"}]:
        build_policy({"name": "tether"} | cfg).validate(C, 120, 1024)
