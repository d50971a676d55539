"""Seams a policy may use without the model knowing it: temporal positions it chooses, entries
tied to no single frame (synthetic ids, a region of their own), per-pass hooks. Tiny policies
defined here drive a session with synthetic K/V whose values say which frame they came from."""
from dataclasses import dataclass, field

import numpy as np
import torch

from conftest import added_region
from tethercache.cache import RECENT, CacheSession, CachePolicy, PolicyState
from tethercache.cache.layout import Layout
from tethercache.cache.protocol import SYNTHETIC_FRAMES, synthetic_frame
from tethercache.cache.scorer import memory_frames
from tethercache.cache.session import timeline_regions
from tethercache.cache.sink import SinkPolicy
from tethercache.cache.storage import KVCache
from tethercache.cache.window import WindowPolicy

C, T, H, D = 3, 2, 1, 6


def session(policy, horizon=60, layers=1):
    return CacheSession(policy, layers=layers, horizon=horizon, grid=(1, T), heads=H, head_dim=D,
                        rope_max=10**6)


def chunk(s, start, passes=2):
    """One chunk through drive_chunk; K/V of every token = its frame id + pass / 10. Returns the
    Attend of every pass (layer 0), the commit pass last."""
    seen = []

    def one(p):
        kv = (torch.arange(start, start + C, dtype=torch.float32).repeat_interleave(T) + p / 10)
        kv = kv[None, :, None, None].expand(1, C * T, H, D)
        for layer in range(s.cache.layers):
            a = s.attend(layer, torch.randn(1, C * T, H, D), kv, kv)
            if layer == 0:
                seen.append(a)

    s.drive_chunk(torch.arange(start, start + C), lambda: [one(p) for p in range(passes)],
                  lambda _: one(passes))
    return seen


# ---- positions a policy chooses --------------------------------------------------------------
@dataclass
class RealignedSink(SinkPolicy):
    """Deep Sink's idea: the sink sits just before the current chunk; at commit it moves by
    `nudge` (a position change with no layout change)."""
    nudge: float = 0.0

    def place(self, st, layer, frame_ids):
        sl = super().place(st, layer, frame_ids)
        sink = st.cache.token_frames(layer) < self.sink
        st.cache.set_temporal(layer, sink, st.cache.token_frames(layer)[sink].double()
                              + int(frame_ids[0]) - self.sink)
        return sl

    def commit(self, st, layer, q):
        if self.nudge:
            sink = st.cache.token_frames(layer) < self.sink
            st.cache.set_temporal(layer, sink, st.cache.token_temporal(layer)[sink] + self.nudge)


def test_policy_chosen_positions_reach_attend_exactly():
    s = session(RealignedSink(budget=9, sink=3))
    for j in range(5):
        reads = chunk(s, 3 * j)
    # chunk 4 (frames 12..14): storage 0 1 2 | 9 10 11 12 13 14, the sink re-aligned to 9 10 11
    want_t = torch.tensor([9., 10, 11, 9, 10, 11, 12, 13, 14]).repeat_interleave(T)
    frames = torch.tensor([0, 1, 2, 9, 10, 11, 12, 13, 14]).repeat_interleave(T)
    for a in reads:
        assert torch.equal(a.k_frames, frames)
        assert torch.equal(a.k_pos[:, 0], want_t)
        assert torch.equal(a.q_pos[:, 0], torch.tensor([12., 13, 14]).repeat_interleave(T))
        assert torch.equal(a.k_pos[:, 2], torch.arange(T, dtype=torch.float64).repeat(9))


def test_positions_written_without_a_layout_change_invalidate_the_memo():
    s = session(RealignedSink(budget=9, sink=3, nudge=0.5))
    for j in range(3):
        noisy, _, clean = chunk(s, 3 * j)
    # chunk 2 (frames 6..8): the sink at 3 4 5 in the denoising passes, 3.5 4.5 5.5 in the commit
    sink = slice(0, 3 * T)
    assert torch.equal(noisy.k_pos[sink, 0], torch.tensor([3., 4, 5]).repeat_interleave(T))
    assert torch.equal(clean.k_pos[sink, 0], torch.tensor([3.5, 4.5, 5.5]).repeat_interleave(T))
    assert noisy.pos_key != clean.pos_key and torch.equal(clean.k_pos[3 * T:], noisy.k_pos[3 * T:])


def test_the_temporal_table_moves_with_its_entries_and_relabelling_clears_it():
    c = KVCache(1, 4 * T, (1, T), H, D)
    c.append(0, torch.arange(4), [RECENT] * 4)
    assert c.token_temporal(0) is None                      # nothing written: no table at all
    v = c.version[0]
    c.set_temporal(0, slice(2 * T, 4 * T), torch.tensor([7.0, 7, 8, 8]))
    assert c.version[0] == v + 1
    c.drop_frames(0, 0, 1)                                   # frames 1 2 3 left
    assert c.token_temporal(0).isnan().tolist() == [True, True, False, False, False, False]
    assert torch.equal(c.token_temporal(0)[T:], torch.tensor([7.0, 7, 8, 8], dtype=torch.float64))
    c.set_frames(0, 1, torch.tensor([9]), RECENT)           # slot 1 holds another frame now
    assert c.token_temporal(0)[T:2 * T].isnan().all() and not c.token_temporal(0)[2 * T:].isnan().any()


# ---- entries tied to no single frame ---------------------------------------------------------


@dataclass(slots=True)
class EmaState(PolicyState):
    merged: list = field(init=False)           # per layer: frames blended into the EMA entry

    def __post_init__(self):
        self.merged = [0] * self.cache.layers


@dataclass
class EmaMemory(CachePolicy):
    """A FIFO window whose evicted frames are blended into one EMA entry (their running mean),
    placed just before the oldest frame it holds."""
    budget: int = 7                   # frames of storage: the EMA entry + the window
    region: int = 0                   # the EMA entry's region code (add_region)
    state_type = EmaState

    def place(self, st, layer, frame_ids):
        c, T_ = st.cache, st.cache.tokens_per_frame
        ids = c.frame_ids(layer)
        real = (ids >= 0).nonzero().flatten()
        has_ema = len(real) < len(ids)
        overflow = len(ids) + len(frame_ids) + (0 if has_ema else 1) - self.budget
        if overflow > 0:
            gone, n = real[:overflow], st.merged[layer]
            k, v = c.frame_k(layer)[:, gone].sum(1), c.frame_v(layer)[:, gone].sum(1)
            if has_ema:
                e = int((ids < 0).nonzero()[0])
                k, v = k + c.frame_k(layer)[:, e] * n, v + c.frame_v(layer)[:, e] * n
            keep = torch.ones(len(ids), dtype=torch.bool)
            keep[gone] = False
            c.keep_tokens(layer, keep.repeat_interleave(T_).nonzero().flatten())
            st.merged[layer] = n = n + overflow
            if has_ema:
                e = int((c.frame_ids(layer) < 0).nonzero()[0])
                c.write(layer, slice(e * T_, (e + 1) * T_), k / n, v / n)
            else:
                c.write(layer, c.append(layer, [synthetic_frame(0)], [self.region]), k / n, v / n)
        sl = c.append(layer, frame_ids, [RECENT] * len(frame_ids))
        frames = c.token_frames(layer)
        if (frames < 0).any():
            c.set_temporal(layer, frames < 0, float(frames[frames >= 0].min()) - 1)
        return sl


def test_an_ema_entry_blends_evicted_frames_and_is_never_a_video_frame(tmp_path):
    with added_region("ema", "#dd8452") as ema:
        check_ema_entry(tmp_path, ema)


def check_ema_entry(tmp_path, EMA):
    from analysis.report.timeline import timeline_segments
    s = session(EmaMemory(region=EMA))
    for j in range(4):
        commit = chunk(s, 3 * j)[-1]
    # chunk 2 evicts frames 0 1 2 (clean K/V = id + 0.2): EMA 1.2; chunk 3 evicts 3 4 5:
    # EMA = (3 x 1.2 + 3.2 + 4.2 + 5.2) / 6 = 2.7; storage: EMA | 6 .. 11, the EMA at t = 6 - 1
    ids = torch.tensor([synthetic_frame(0), 6, 7, 8, 9, 10, 11]).repeat_interleave(T)
    assert torch.equal(commit.k_frames, ids)
    assert torch.allclose(commit.k[0, :T], torch.full((T, H, D), 2.7), atol=1e-6)
    assert torch.equal(commit.k_pos[:, 0], torch.tensor([5., 6, 7, 8, 9, 10, 11]).repeat_interleave(T))
    assert torch.equal(s.cache.token_regions(0)[:T], torch.full((T,), EMA, dtype=torch.int8))
    assert memory_frames(s.cache) == [[]] and not Layout("frame", 7, sink=1).is_sink(ids[:1]).any()
    path = tmp_path / "timeline.npz"
    s.save_timeline(path)
    with np.load(path) as tl:
        assert timeline_regions(tl)[EMA].name == "ema"
        assert (tl["frames"][-1, 0] <= SYNTHETIC_FRAMES + 1).sum() == 1      # one EMA slot
        assert tl["regions"][-1, 0, 0] == EMA
    seg = np.array(timeline_segments(path)["layers"][0]).reshape(-1, 4)
    assert seg[:, 0].min() >= 0 and EMA not in seg[:, 1]                      # no video frame
    assert timeline_segments(path)["max_frame"] == 11


# ---- a per-pass hook -------------------------------------------------------------------------
@dataclass(slots=True)
class LogState(PolicyState):
    passes: list = field(default_factory=list)      # (layer, pass index, is_commit) seen


@dataclass
class FirstPassCompress(WindowPolicy):
    """Drops the oldest frame in the chunk's first denoising pass (and logs every pass)."""
    state_type = LogState

    def on_pass(self, st, layer, q, k, ctx):
        st.passes.append((layer, ctx.index, ctx.is_commit))
        if ctx.index == 0 and st.cache.n_frames(layer) > C:
            st.cache.drop_frames(layer, 0, 1)
            n = st.cache.used[layer]
            return slice(n - C * T, n)


def test_on_pass_acts_in_the_chosen_pass_and_moves_the_chunk_slots():
    p = FirstPassCompress(budget=6)
    s = CacheSession(p, layers=2, horizon=60, grid=(1, T), heads=H, head_dim=D, rope_max=10**6)
    for j in range(3):
        reads = chunk(s, 3 * j)
    assert s.state.passes[-6:] == [(0, 0, False), (1, 0, False), (0, 1, False), (1, 1, False),
                        (0, 2, True), (1, 2, True)]
    # chunk 1 appended 3 4 5 after 0 1 2 and its first pass dropped 0; chunk 2: place drops
    # 1 2 (FIFO of 6), appends 6 7 8, the first pass drops 3 -> 4 5 6 7 8
    assert s.cache.frame_ids(0).tolist() == [4, 5, 6, 7, 8]
    chunk_kv = torch.tensor([6.2, 7.2, 8.2]).repeat_interleave(T)
    assert torch.equal(s.cache.frames[0, s.chunk_slots[0]], torch.tensor([6, 7, 8]).repeat_interleave(T))
    assert torch.allclose(reads[-1].k[0, -C * T:, 0, 0], chunk_kv)    # the chunk, moved
