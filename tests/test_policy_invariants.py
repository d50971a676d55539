"""Registry-wide invariants: every registered policy, frame- or token-level, in both RoPE modes,
over a long rollout with random per-token K/V (so token scorers make real token decisions).

Budget respected in frames or tokens; storage preallocated and never reallocated; the chunk's
slots hold exactly the chunk; entries unique, ordered within each region, no hole in the used
range; positions consistent with the rope mode; two sessions of one policy object agree bitwise.
"""
import dataclasses

import pytest
import torch

from conftest import drive_attends
from tethercache.cache import EMPTY, MEMORY, POLICIES, RECENT, SINK, CacheSession, build_policy

C, GRID, H, D, LAYERS, HORIZON = 3, (2, 2), 2, 6, 2, 360
T = GRID[0] * GRID[1]


def make(name: str, rope: str):
    cfg = {"name": name, "rope": rope}
    if POLICIES[name].unit == "token":
        cfg["budget_tokens"] = 21 * T // 2        # half the tokens of a 21-frame window
    policy = build_policy(cfg)
    policy.validate(C, HORIZON, 10**6, T)
    return policy


def session(policy):
    poses = torch.arange(HORIZON).float() % 7
    return CacheSession(policy, layers=LAYERS, horizon=HORIZON, grid=GRID, heads=H, head_dim=D,
                        rope_max=10**6, poses=poses)


def rollout(policy, check=None):
    """Drive a session as the sampler does (2 noisy passes, then the committing clean pass)."""
    s = session(policy)
    gen = torch.Generator().manual_seed(0)
    reads = []
    for j in range(HORIZON // C):
        frames = torch.arange(j * C, j * C + C)
        outs, _ = drive_attends(s, frames, lambda p: [torch.randn(3, 1, C * T, H, D, generator=gen)
                                                      for _ in range(LAYERS)])
        reads.append([(o.k.clone(), o.k_pos.clone(), o.q_pos.clone()) for o in outs])
        if check:
            check(s, j, frames, outs)
    return s, reads


CASES = [(name, rope) for name in sorted(POLICIES) for rope in ("absolute", "relative")]


@pytest.mark.parametrize("name,rope", CASES)
def test_every_policy_respects_its_budget_storage_and_order(name, rope):
    policy = make(name, rope)
    token_level = policy.unit == "token"
    budget = policy.cache_budget(HORIZON, T)            # tokens (and frames, frame policies)
    storage = {}

    def check(s, j, frames, outs):
        c = s.cache
        if j == 0:
            storage.update(ptr=c.k.data_ptr(), numel=c.k.numel())
        assert c.k.data_ptr() == storage["ptr"] and c.k.numel() == storage["numel"]
        for layer in range(LAYERS):
            n = c.used[layer]
            ids, regions = c.token_frames(layer), c.token_regions(layer)
            if token_level:
                assert n <= budget["tokens"]
            else:
                assert n % T == 0 and n // T <= budget["frames"] and n <= budget["tokens"]
            sl = s.chunk_slots[layer]
            assert torch.equal(c.frames[layer, sl], frames.repeat_interleave(T))
            assert (regions != EMPTY).all() and (c.frames[layer, n:] == -1).all()
            for r in (SINK, MEMORY, RECENT):               # chronological within a region
                f = ids[regions == r]
                assert (f[1:] >= f[:-1]).all()
            keys = set(zip(ids.tolist(), c.hw[layer, :n, 0].tolist(), c.hw[layer, :n, 1].tolist()))
            assert len(keys) == n                           # no token twice
            o = outs[layer]
            assert o.k.shape[1] == n and o.k_pos.shape[0] == n
            t = o.k_pos[:, 0]
            if rope == "absolute":
                assert torch.equal(t, ids.double())
            else:                                           # storage order of the frames
                assert (t[1:] - t[:-1]).ge(0).all() and (t[1:] - t[:-1]).le(1).all() and t[0] == 0
            w = c.hw[layer, :n, 1].double() + s.info.poses[ids].double()
            assert torch.equal(o.k_pos[:, 2], w)

    s, _ = rollout(policy, check)
    if token_level:     # the budget is reached, and single tokens (not whole frames) were dropped
        counts = torch.bincount(s.cache.token_frames(0))
        assert s.cache.used[0] > budget["tokens"] - C * T and ((counts > 0) & (counts < T)).any()
        assert s.cache.nbytes == budget["tokens"] * LAYERS * H * D * 4 * 2


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_every_policy_is_deterministic_and_reusable(name):
    """One policy object, two sessions: bitwise-identical reads (no state on the dataclass)."""
    policy = make(name, "relative")
    a, reads_a = rollout(policy)
    b, reads_b = rollout(policy)
    assert torch.equal(a.cache.frames, b.cache.frames) and torch.equal(a.cache.k, b.cache.k)
    for ra, rb in zip(reads_a, reads_b):
        for x, y in zip(ra, rb):
            assert all(torch.equal(u, v) for u, v in zip(x, y))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_validate_never_writes_to_the_policy(name):
    """validate only checks: the policy's keys are what the config said (full's budget, the
    horizon, is derived by `layout`, not written)."""
    cfg = {"name": name} | ({"budget_tokens": 21 * T // 2} if POLICIES[name].unit == "token" else {})
    policy = build_policy(cfg)
    before = dataclasses.asdict(policy)
    policy.validate(C, HORIZON, 10**6, T)
    assert dataclasses.asdict(policy) == before
    assert policy.cache_budget(HORIZON, T)["tokens"] == policy.capacity(HORIZON, T)
    assert dataclasses.asdict(policy) == before
