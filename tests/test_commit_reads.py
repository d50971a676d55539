"""Per-pass read sets: Commit Forcing's rule as a modifier (CommitReads) and as `commit_forcing`
(tether + the rule), on tiny caches whose read sets are computed by hand; the pass context the
sampler declares; the model's use of a read set (after RoPE, the same as attending to the slice)."""
from dataclasses import dataclass, field

import torch

from test_policy_seams import C, D, H, T, chunk, session
from tethercache.cache import CacheSession, PolicyState, build_policy
from tethercache.cache.commit_reads import CommitReads
from tethercache.cache.full import FullPolicy
from tethercache.cache.protocol import Attend
from tethercache.cache.sink import SinkPolicy
from tethercache.cache.tether import TetherPolicy
from tethercache.cache.window import WindowPolicy
from tethercache.sampling import SamplerConfig


def frames_of(ids):
    return torch.tensor(ids).repeat_interleave(T)


def test_commit_pass_reads_the_recent_region_once_full_denoising_passes_read_all():
    """tether K 7 = S 1 + M 2 + R 4: full from chunk 2 on; its commit pass reads the recent
    frames (the previous chunk's last and the chunk's own 3), the denoising passes everything."""
    cf = session(build_policy({"name": "commit_forcing", "budget": 7, "sink": 1, "recent": 4,
                               "rope": "absolute"}))
    ref = session(TetherPolicy(budget=7, sink=1, recent=4, rope="absolute"))
    for j in range(4):
        torch.manual_seed(j)
        reads = chunk(cf, 3 * j)
        torch.manual_seed(j)
        plain = chunk(ref, 3 * j)
        for a, b in zip(reads, plain):                 # storage, positions: as tether's
            assert torch.equal(a.k, b.k) and torch.equal(a.k_pos, b.k_pos) and b.read is None
        assert all(a.read is None for a in reads[:-1])
        commit = reads[-1]
        if j < 2:
            assert commit.read is None                 # the cache is not full yet: no change
            continue
        assert torch.equal(commit.read, torch.arange(3 * T, 7 * T))
        last = 3 * j - 1
        assert torch.equal(commit.k_frames[commit.read], frames_of(range(last, last + 4)))
        assert torch.equal(commit.k_pos[commit.read, 0], frames_of(range(last, last + 4)).double())
    assert cf.timeline["stats"][-1]["commit_read_frames"] == [4]
    assert cf.timeline["stats"][1]["commit_read_frames"] == [None]


def test_the_modifier_composes_with_sink_window_and_full():
    sink = session(CommitReads(SinkPolicy(budget=6, sink=1)))
    # commit_forcing with no memory (recent = budget - sink): Commit Forcing's FIFO variant
    fifo = session(build_policy({"name": "commit_forcing", "budget": 6, "sink": 1, "recent": 5,
                                 "rope": "absolute"}))
    for j in range(3):
        reads = chunk(sink, 3 * j)
        for a, b in zip(reads, chunk(fifo, 3 * j)):
            assert torch.equal(a.k_frames, b.k_frames) and (a.read is None) == (b.read is None)
            assert a.read is None or torch.equal(a.read, b.read)
        if j == 0:
            assert reads[-1].read is None
    # chunk 2: storage 0 | 4 5 6 7 8; the commit pass reads all after the sink, the rest all
    assert torch.equal(reads[-1].read, torch.arange(T, 6 * T)) and reads[0].read is None
    assert torch.equal(reads[-1].k_frames[reads[-1].read], frames_of([4, 5, 6, 7, 8]))
    window = session(CommitReads(WindowPolicy(budget=6)))
    for j in range(3):
        reads = chunk(window, 3 * j)
    assert torch.equal(reads[-1].read, torch.arange(6 * T))
    full = session(CommitReads(FullPolicy()), horizon=12)
    for j in range(3):
        assert chunk(full, 3 * j)[-1].read is None     # storage = the horizon: full at the end
    assert torch.equal(chunk(full, 9)[-1].read, torch.arange(12 * T))


def test_read_sets_follow_state_frames():
    s = CacheSession(CommitReads(SinkPolicy(budget=6, sink=1)), layers=1, horizon=60, grid=(1, T),
                     heads=H, head_dim=D, rope_max=10**6, state_frames=1)
    for j in range(2):
        frames = torch.arange(3 * j, 3 * j + C)
        qkv = lambda: torch.randn(1, (C + 1) * T, H, D)
        out = []
        s.drive_chunk(frames, lambda: s.attend(0, qkv(), qkv(), qkv()),
                      lambda _: out.append(s.attend(0, qkv(), qkv(), qkv())))
    # the state frame's T keys first, always read; then storage 0 | 1 .. 5 minus the sink
    assert torch.equal(out[0].read, torch.cat([torch.arange(T), torch.arange(2 * T, 7 * T)]))


@dataclass(slots=True)
class PassLog(PolicyState):
    seen: list = field(default_factory=list)


@dataclass
class LoggedWindow(WindowPolicy):
    state_type = PassLog

    def on_pass(self, st, layer, q, k, ctx):
        if layer == 0:
            st.seen.append(ctx)


def test_the_sampler_declares_each_pass_and_hooks_change_nothing(tiny_model, tiny_rollout):
    text = tiny_model.text_kv(torch.randn(1, 4, 32))
    logged, s = tiny_rollout(tiny_model, LoggedWindow(budget=6), 6, text)
    plain, _ = tiny_rollout(tiny_model, WindowPolicy(budget=6), 6, text)
    assert torch.equal(logged, plain)
    sigmas = SamplerConfig().sigmas()
    want = [(i, s_, s_ * 1000, False) for i, s_ in enumerate(sigmas)] + [(4, 0.0, 0.0, True)]
    got = [(c.index, c.sigma, c.timestep, c.is_commit) for c in s.state.seen]
    assert got == want * 2


class SlicedOrRead:
    """A cache over fixed past K/V: either Attend.read selects keys, or the keys are sliced."""

    def __init__(self, past, keep, use_read):
        self.past, self.keep, self.use_read = past, keep, use_read

    def attend(self, layer, q, k, v):
        n = q.shape[1]
        keys = torch.cat([self.past[layer][0], k], 1)
        vals = torch.cat([self.past[layer][1], v], 1)
        pos = torch.stack([torch.arange(keys.shape[1] // 16).double().repeat_interleave(16),
                           torch.zeros(keys.shape[1], dtype=torch.float64),
                           torch.arange(16).double().repeat(keys.shape[1] // 16)], -1)
        keep = torch.cat([self.keep, torch.arange(len(pos) - n, len(pos))])
        if self.use_read:
            return Attend(keys, vals, pos, pos[-n:], read=keep)
        return Attend(keys[:, keep], vals[:, keep], pos[keep], pos[-n:])


def test_the_model_reads_the_read_set_after_rope_as_a_slice_would():
    from conftest import perturbed_tiny
    m = perturbed_tiny(layers=2)
    c = m.config
    past = [(torch.randn(1, 48, c.heads, c.head_dim), torch.randn(1, 48, c.heads, c.head_dim))
            for _ in range(c.layers)]
    x, t = torch.randn(1, 12, 1, 8, 8), torch.full((1, 1), 500.0)
    text = m.text_kv(torch.randn(1, 4, 32))
    keep = torch.tensor([3, 5, 17, 20, 40])
    with torch.no_grad():
        a = m(x, t, text, cache=SlicedOrRead(past, keep, True))
        b = m(x, t, text, cache=SlicedOrRead(past, keep, False))
        full = m(x, t, text, cache=SlicedOrRead(past, torch.arange(48), True))
    assert torch.equal(a, b) and not torch.equal(a, full)
