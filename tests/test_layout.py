"""One layout vocabulary (cache/layout.py): the same `sink` / `recent` give the same attended
layout in a frame policy and in a token policy; the budget's unit is in its key's name, old
token-policy configs get a named migration error; record.json states the attended budget."""
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import ROOT, perturbed_tiny
from tethercache import runner
from tethercache.cache import MEMORY, RECENT, SINK, CacheSession, Layout, build_policy
from tethercache.errors import ConfigError
from tethercache.sampling import SamplerConfig, generate

C, GRID, T = 3, (4, 4), 16
S, R, K = 2, 6, 14                     # sink | 6 middle frames | recent (chunk included)


def timeline(cfg: dict, n: int, model, text) -> tuple[dict, CacheSession]:
    policy = build_policy(cfg)
    c = model.config
    policy.validate(C, n, c.rope_max_positions, T)
    s = CacheSession(policy, layers=c.layers, horizon=n, grid=GRID, heads=c.heads, head_dim=c.head_dim)
    with torch.no_grad():
        list(generate(model, text, s, n_frames=n, chunk=C, latent_shape=(12, 8, 8), seed=0,
                      sampler=SamplerConfig(steps=[1000.0, 500.0]), progress=False))
    return s.timeline, s


def per_frame(frames: np.ndarray, regions: np.ndarray, tokens_per_slot: int):
    """{frame: (tokens held, region)} of one layer's timeline row (-1 = empty slot)."""
    out = {}
    for f, r in zip(frames.tolist(), regions.tolist()):
        if f >= 0:
            held, _ = out.get(f, (0, r))
            out[f] = (held + tokens_per_slot, r)
    return out


def test_same_sink_and_recent_give_the_same_layout_in_a_frame_and_a_token_policy():
    model = perturbed_tiny()
    text = model.text_kv(torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(0)))
    n = 45
    tl_f, tether = timeline({"name": "tether", "budget": K, "sink": S, "recent": R}, n, model, text)
    tl_t, knorm = timeline({"name": "knorm", "budget_tokens": K * T, "sink": S, "recent": R},
                           n, model, text)
    bf, bt = tether.policy.cache_budget(n, T), knorm.policy.cache_budget(n, T)
    assert bf == {"unit": "frame", "frames": K, "tokens": K * T, "sink": S, "recent": R}
    assert bt == {"unit": "token", "frames": None, "tokens": K * T, "sink": S, "recent": R}
    partial = False
    for j, start in enumerate(tl_f["chunk_start"]):
        newest = set(range(max(0, start + C - R), start + C))
        assert tl_f["tokens"][j] == tl_t["tokens"][j]          # attended tokens, every layer
        evicting = start + C > K                                 # from the first eviction on
        if evicting:
            assert tl_t["tokens"][j] == [K * T] * model.config.layers
        for layer in range(model.config.layers):
            f = per_frame(tl_f["frames"][j][layer], tl_f["regions"][j][layer], T)
            t = per_frame(tl_t["frames"][j][layer], tl_t["regions"][j][layer], 1)
            for held in (f, t):                                  # kept whole, every chunk
                assert {x for x in held if x < S} == set(range(min(S, start + C)))
                assert all(held.get(x, (0,))[0] == T for x in newest | set(range(min(S, start + C))))
            partial |= any(0 < h < T for h, _ in t.values())
            if evicting:
                for held in (f, t):
                    assert {x for x, (_, r) in held.items() if r == SINK} == set(range(S))
                    assert {x for x, (_, r) in held.items() if r == RECENT} == newest
                    assert {r for x, (_, r) in held.items() if x not in newest and x >= S} == {MEMORY}
    assert partial          # knorm made token-level decisions, so the equality means something


def test_record_json_states_the_attended_budget(tmp_path):
    def run(*overrides):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=["backbone=tiny", "eval=none", "horizon=5s",
                                               "progress=false", *overrides])
        return runner.execute(cfg, tmp_path / overrides[0].replace("=", "-"), {})
    rec = run("cache=knorm", "cache.budget_tokens=168")
    assert rec["cache_budget"] == {"unit": "token", "frames": None, "tokens": 168, "sink": 1, "recent": 6}
    rec = run("cache=full")
    frames = rec["latent_frames"]
    assert rec["cache_budget"] == {"unit": "frame", "frames": frames, "tokens": frames * T,
                                   "sink": 0, "recent": frames}


def test_old_token_budget_key_is_a_named_migration_error():
    with pytest.raises(ConfigError) as e:
        build_policy({"name": "knorm", "budget": 672})
    assert str(e.value) == ("cache.budget: knorm counts its budget in tokens: use cache.budget_tokens "
                            "(recent now includes the current chunk: the old recent=3 is recent=6)")
    with pytest.raises(ConfigError, match=r"^cache\.budget_tokens: window counts its budget in frames"):
        build_policy({"name": "window", "budget_tokens": 336})
    assert build_policy({"name": "knorm", "budget": None}).budget_tokens == 672   # the yaml's null


@pytest.mark.parametrize("layout,key", [
    (Layout("frame", 2), "cache.budget"), (Layout("frame", 21, sink=-1), "cache.sink"),
    (Layout("frame", 21, sink=19), "cache.sink"), (Layout("frame", 21, 3, 2), "cache.recent"),
    (Layout("frame", 21, 3, 19), "cache.sink + cache.recent"),
    (Layout("token", 100, 1, 6), "cache.budget_tokens"), (Layout("token", 672, 1, 1), "cache.recent"),
])
def test_layout_checks_name_the_key(layout, key):
    with pytest.raises(ConfigError, match="^" + key.replace(".", r"\.").replace("+", r"\+")):
        layout.validate(C, T)


def test_layout_vocabulary():
    window, tether, knorm = Layout("frame", 21), Layout("frame", 21, 3, 4), Layout("token", 112, 1, 6)
    for lay in (window, tether):
        lay.validate(C, T)
    knorm.validate(C, T)                                   # (1 + 6) x 16 = 112 fits exactly
    assert window.record(T) == {"unit": "frame", "frames": 21, "tokens": 336, "sink": 0, "recent": 21}
    assert tether.record(T)["recent"] == 4 and knorm.tokens(T) == 112
    assert tether.sink_regions(torch.tensor([1, 2, 3])) == [SINK, SINK, RECENT]
    assert tether.sink_regions(torch.tensor([3, 4]), MEMORY) == [MEMORY, MEMORY]
