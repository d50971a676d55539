"""The Self-Forcing loop: schedule values, x0/re-noise algebra, determinism, streaming."""
import pytest
import torch

from tethercache.cache import CacheSession, build_policy
from tethercache.errors import ConfigError
from tethercache.sampling import (GivenNoise, SamplerConfig, SeededNoise, add_noise, flow_to_x0,
                                  generate)


def test_warped_steps_match_self_forcing():
    sig = SamplerConfig().sigmas()
    assert [round(s * 1000, 2) for s in sig] == [1000.0, 937.5, 833.33, 625.0]
    assert SamplerConfig(warp=False).sigmas() == [1.0, 0.75, 0.5, 0.25]


def test_euler_schedule_ends_at_zero_and_decreases():
    sig = SamplerConfig(kind="euler", euler_steps=6, shift=3.0).sigmas()
    assert sig[0] == 1.0 and sig[-1] == 0.0 and len(sig) == 7
    assert all(a > b for a, b in zip(sig, sig[1:]))


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_euler_sigma_min_is_the_last_noise_level(shift):
    uniform = SamplerConfig(kind="euler", euler_steps=8, shift=shift)
    assert uniform.sigmas()[-2] == pytest.approx(uniform.shifted(1 / 8))
    sig = SamplerConfig(kind="euler", euler_steps=8, shift=shift, sigma_min=0.05).sigmas()
    assert len(sig) == 9 and sig[0] == 1.0 and sig[-1] == 0.0
    assert sig[-2] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(sig, sig[1:]))
    assert SamplerConfig(kind="euler", euler_steps=1, sigma_min=0.05).sigmas() == [1.0, 0.0]


def test_x0_and_noise_are_inverse():
    x0, noise = torch.randn(2, 4), torch.randn(2, 4)
    xt = add_noise(x0, noise, 0.7)
    assert torch.allclose(flow_to_x0(xt, noise - x0, 0.7), x0, atol=1e-6)


@pytest.mark.parametrize("kw,key", [
    ({"kind": "ddim"}, "kind"), ({"steps": [1200]}, "steps"), ({"steps": []}, "steps"),
    ({"context_noise": -1}, "context_noise"), ({"kind": "euler", "euler_steps": 0}, "euler_steps"),
    ({"shift": 0}, "shift"), ({"sigma_min": 0.0}, "sigma_min"), ({"sigma_min": 1.0}, "sigma_min"),
    ({"restarts": 1}, "restarts"), ({"kind": "euler", "restarts": -1}, "restarts"),
    ({"kind": "euler", "sigma_min": 0.2, "restarts": 1, "restart_sigma": 0.1}, "restart_sigma"),
    ({"kind": "euler", "shift": 1.0, "restarts": 1, "restart_steps": 0}, "restart_steps"),
    ({"context_renoise": "yes"}, "context_renoise"),
])
def test_bad_sampler_config(kw, key):
    with pytest.raises(ConfigError, match=f"backbone.sampler.{key}"):
        SamplerConfig(**kw).validate()


@pytest.fixture
def rollout(tiny_rollout):
    def roll(model, seed, sampler=None, n=12, policy="window"):
        text = model.text_kv(torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(9)))
        return tiny_rollout(model, {"name": policy, "budget": 6}, n, text, sampler=sampler,
                            seed=seed)[0]
    return roll


def test_same_seed_is_bitwise_equal_and_seeds_differ(tiny_model, rollout):
    a, b = rollout(tiny_model, 3), rollout(tiny_model, 3)
    assert torch.equal(a, b)
    assert not torch.allclose(a, rollout(tiny_model, 4))


def test_context_noise_changes_the_cache_not_the_first_chunk(tiny_model, rollout):
    """Context noise only affects what is written to the cache (and draws after chunk 0)."""
    a = rollout(tiny_model, 0)
    b = rollout(tiny_model, 0, SamplerConfig(context_noise=100))
    assert torch.equal(a[:, :, :3], b[:, :, :3])
    assert not torch.allclose(a[:, :, 3:], b[:, :, 3:])


def test_generate_streams_one_chunk_per_yield(tiny_model):
    s = CacheSession.for_model(tiny_model, build_policy({"name": "window", "budget": 6}),
                               grid=(4, 4), horizon=9)
    text = tiny_model.text_kv(torch.randn(1, 4, 32))
    it = generate(tiny_model, text, s, n_frames=9, chunk=3, latent_shape=(12, 8, 8), seed=0,
                  sampler=SamplerConfig(), progress=False)
    with torch.no_grad():
        first = next(it)
        assert first.shape == (1, 12, 3, 8, 8)
        assert s.cache.frame_ids(0).tolist() == [0, 1, 2]     # nothing beyond chunk 0 yet
        assert len(list(it)) == 2


def test_initial_latents_are_kept_and_condition_the_rest(tiny_model, tiny_rollout):
    """Video extension (Self-Forcing's initial_latent): given chunks are yielded unchanged and
    written to the cache by a clean pass; what follows depends on them."""
    text = tiny_model.text_kv(torch.randn(1, 4, 32))

    def run(initial):
        return tiny_rollout(tiny_model, {"name": "window", "budget": 6}, 9, text,
                            initial=initial)[0]
    a, b = torch.randn(1, 12, 3, 8, 8), torch.randn(1, 12, 3, 8, 8)
    out_a, out_b = run(a), run(b)
    assert torch.equal(out_a[:, :, :3], a)
    assert not torch.allclose(out_a[:, :, 3:], out_b[:, :, 3:])


def test_restart_renoises_the_finished_chunk_and_integrates_back(tiny_model, rollout):
    """restarts=1: the chunk from the Euler schedule is re-noised to restart_sigma with the next
    draw of the seeded generator and integrated back to the schedule's last sigma, then to 0."""
    sampler = SamplerConfig(kind="euler", euler_steps=3, shift=1.0, sigma_min=0.1, restarts=1,
                            restart_sigma=0.4, restart_steps=2)
    sampler.validate()
    assert sampler.restart_sigmas() == pytest.approx([0.4, 0.1, 0.0])
    out = rollout(tiny_model, 5, sampler, n=3)
    text = tiny_model.text_kv(torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(9)))
    gen, shape = torch.Generator().manual_seed(5), (1, 12, 3, 8, 8)

    def integrate(x, schedule):
        for s, s_next in zip(schedule[:-1], schedule[1:]):
            with torch.no_grad():
                x = x + (s_next - s) * tiny_model(x, torch.full((1, 3), s * 1000), text).float()
        return x
    x0 = integrate(torch.randn(shape, generator=gen), sampler.sigmas())
    expected = integrate(add_noise(x0, torch.randn(shape, generator=gen), 0.4), [0.4, 0.1, 0.0])
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, x0, atol=1e-3)


class Spy:
    """The model, recording every call's input frames, timesteps and whether it committed."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.config, self.text_kv, self.dtype = model.config, model.text_kv, model.dtype

    @property
    def device(self):
        return self.model.device

    def __call__(self, x, t, text, cache):
        self.calls.append((x.clone(), t.clone(), cache.committing))
        return self.model(x, t, text, cache=cache)


@pytest.fixture
def run(tiny_rollout):
    def roll(model, n=9, sampler=None, noise=None, state_frames=0, policy=None):
        text = model.text_kv(torch.randn(1, 4, 32, generator=torch.Generator().manual_seed(9)))
        out, s = tiny_rollout(model, policy or {"name": "window", "budget": 6}, n, text,
                              sampler=sampler, noise=noise, state_frames=state_frames)
        return out, s, text
    return roll


@pytest.mark.parametrize("renoise", [False, True])
def test_context_pass_clean_chunk_or_renoised(tiny_model, renoise, run):
    """Self-Forcing (default): the clean chunk at timestep context_noise; context_renoise=true:
    re-noised to that level with one more draw first."""
    spy = Spy(tiny_model)
    noise = SeededNoise(0, record=True)
    out, _, _ = run(spy, sampler=SamplerConfig(context_noise=100, context_renoise=renoise), noise=noise)
    commits = [c for c in spy.calls if c[2]]
    assert len(commits) == 3 and all(bool((t == 100).all()) for _, t, _ in commits)
    draws_per_chunk = len(SamplerConfig().steps) - 1 + renoise
    assert len(noise.drawn["renoise"]) == 3 * draws_per_chunk
    for j, (x, _, _) in enumerate(commits):
        x0 = out[:, :, 3 * j:3 * j + 3]
        if renoise:
            eps = noise.drawn["renoise"][(j + 1) * draws_per_chunk - 1]
            assert torch.equal(x, add_noise(x0, eps, 0.1))
        else:
            assert torch.equal(x, x0)


def test_given_noise_reproduces_an_external_loop_exactly(tiny_model, run):
    """An external script's noise (initial + re-noising draws) through the injection seam gives
    exactly the latents that script's own Self-Forcing loop produces."""
    g = torch.Generator().manual_seed(123)
    shape, sf = (1, 12, 3, 8, 8), SamplerConfig()
    sigmas = sf.sigmas()
    initial = [torch.randn(shape, generator=g) for _ in range(3)]
    renoise = [torch.randn(shape, generator=g) for _ in range(3 * (len(sigmas) - 1))]
    out, _, text = run(tiny_model, noise=GivenNoise(initial, renoise))
    # the external loop, written out by hand on a fresh session (its chunk protocol is the session's)
    s = CacheSession.for_model(tiny_model, build_policy({"name": "window", "budget": 6}),
                               grid=(4, 4), horizon=9)
    draws = iter(renoise)

    def denoise(x):
        for i, sig in enumerate(sigmas):
            flow = tiny_model(x, torch.full((1, 3), sig * 1000), text, cache=s).float()
            x0 = flow_to_x0(x, flow, sig)
            if i + 1 < len(sigmas):
                x = add_noise(x0, next(draws), sigmas[i + 1])
        return x0
    with torch.no_grad():
        for j in range(3):
            x0, _ = s.drive_chunk(torch.arange(3 * j, 3 * j + 3), lambda: denoise(initial[j]),
                                  lambda x0: tiny_model(x0, torch.zeros(1, 3), text, cache=s))
            assert torch.equal(out[:, :, 3 * j:3 * j + 3], x0)
    # recorded seeded draws replay bitwise; wrong shapes and counts are named errors
    rec = SeededNoise(5, record=True)
    a, _, _ = run(tiny_model, noise=rec)
    b, _, _ = run(tiny_model, noise=GivenNoise(rec.drawn["initial"], rec.drawn["renoise"]))
    assert torch.equal(a, b) and torch.equal(a, run(tiny_model, noise=torch.Generator().manual_seed(5))[0])
    with pytest.raises(ValueError, match="initial draw 0 has shape"):
        run(tiny_model, noise=GivenNoise([torch.zeros(1, 12, 3, 8, 9)] * 3, renoise))
    with pytest.raises(ValueError, match="renoise draw 8 requested, only 8 given"):
        run(tiny_model, noise=GivenNoise(initial, renoise[:8]))
    with pytest.raises(ValueError, match="10 renoise draws given, 9 used"):
        run(tiny_model, noise=GivenNoise(initial, renoise + renoise[:1]))


def test_state_frames_are_denoised_every_chunk_cached_and_never_yielded(tiny_model, run):
    spy = Spy(tiny_model)
    out, s, _ = run(spy, n=12, state_frames=1)
    assert out.shape == (1, 12, 12, 8, 8)                   # only the video's frames come out
    # every pass (4 Self-Forcing steps + the clean pass per chunk) carries the state frame first
    assert len(spy.calls) == 4 * 5 and all(x.shape[2] == 4 for x, _, _ in spy.calls)
    for (x, t, commit) in spy.calls:
        assert torch.equal(t[:, 0], t[:, 1])                # at the chunk's timesteps
    # the state's K/V sit in their own slots (region STATE), refreshed by every clean pass
    assert s.states.used == [16, 16] and (s.states.token_regions(0) == 4).all()
    assert s.cache.frame_ids(0).tolist() == [6, 7, 8, 9, 10, 11]   # the policy never sees it
    # and the video's chunks attend to it: the same noise without the state gives other latents
    plain, _, _ = run(tiny_model, n=12)
    assert not torch.allclose(plain[:, :, 3:], out[:, :, 3:])
    # the clean pass of chunk j wrote the state K/V that chunk j+1 reads: K/V differ per chunk
    firsts = []
    sess = CacheSession.for_model(tiny_model, build_policy({"name": "window", "budget": 6}),
                                  grid=(4, 4), horizon=9, state_frames=1)
    text = tiny_model.text_kv(torch.randn(1, 4, 32))
    with torch.no_grad():
        for _ in generate(tiny_model, text, sess, n_frames=9, chunk=3, latent_shape=(12, 8, 8),
                          seed=0, sampler=SamplerConfig(), progress=False, state_frames=1):
            firsts.append(sess.states.k.clone())
    assert not torch.equal(firsts[0], firsts[1]) and not torch.equal(firsts[1], firsts[2])
