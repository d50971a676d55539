"""`tether`: TetherCache (arXiv 2606.13035): sink | memory | recent, GRAB recall + TAME editing.

Layout per layer, in slot order (= RoPE order in relative mode):
    [ sink S | memory M | recent R ],   K = budget = S + M + R frames, current chunk included.
Schedule (the official release; the paper's sections 5.2-5.4), every layer with its own state:
  * chunk start (`place`): warm-up appends the chunk; regions by slot. Once full, the C oldest
    recent frames (the head of `recent`) are copied out as the layer's *pending* frames and
    dropped (recent shifts left), and the chunk is appended as recent. While the chunk denoises
    the pending frames are in no region: the denoising passes see sink + old memory + recent.
  * clean context pass (`commit`, before readout):
      C.1 the first time the cache is full, what sits in the memory slots becomes memory (no TAME);
      C.2 candidates = memory members (slot order) + pending frames (time order). GRAB keeps the
          top-M by relevance + alpha * diversity (`grab=False`: the newest M, i.e. FIFO memory).
          Kept members are moved unchanged, newly admitted frames are TAME'd toward the trusted
          pool (sink + memory as it was before this step), and the kept candidates end up, in
          candidate order (so chronologically), in slots [S, S+M): in place, the kept members
          slide left over the demoted ones and only the admitted frames are written (no copy of
          all M + C candidates). Losers are gone for good.
    With M == 0 nothing is staged: the policy is `sink` (frame sink + FIFO window).
`scope="shared"` (ours, not in the paper): one memory decision for all layers, top-M of the
layer-averaged GRAB scores. Layer l's clean-pass readout runs before layer l+1 has queries, so
the decision is taken when the LAST layer commits and applied to every layer then: the clean
pass of layers < L-1 reads the pre-decision memory (as the denoising passes do); the last
layer's readout only feeds the discarded clean-pass output. TAME stays per layer (each layer
edits against its own trusted pool); the recorded `score` is the shared (averaged) one.
RoPE: relative by default (recalled frames are re-indexed by slot, as the release does);
`rope=absolute` keeps every key at its global frame index.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError
from .grab import grab as grab_scores
from .policy import CachePolicy, PolicyState
from .protocol import MEMORY, RECENT
from .registry import register
from .scorer import memory_frames, top_k_mask
from .tame import channel_stats, tame as tame_edit

TAME_TARGETS = ("k", "v", "both")
SCOPES = ("per_layer", "shared")
STAT_KEYS = ("candidates", "relevance", "diversity", "score", "admitted", "rejected", "demoted",
             "tame_shift_k", "tame_shift_v")


def _floats(x: torch.Tensor) -> list[float]:
    return [round(float(f), 6) for f in x.tolist()]


@dataclass(slots=True)
class TetherState(PolicyState):
    seeded: list[bool] = field(init=False)        # per layer: memory seeded (C.1 done)
    pending: list = field(init=False)             # per layer: (k, v, ids) staged at chunk start
    shared_scores: list = field(init=False)       # shared scope: each layer's GRAB scores
    stats: list[dict] = field(init=False)         # per layer: this chunk's decisions

    def __post_init__(self):
        L = self.cache.layers
        self.seeded, self.pending, self.shared_scores = [False] * L, [None] * L, [None] * L
        self.stats = [{} for _ in range(L)]


@register
@dataclass
class TetherPolicy(CachePolicy):
    name = "tether"
    state_type = TetherState
    rope: str = "relative"
    budget: int = 21                # K: frames attended per layer, current chunk included
    sink: int = 3                   # S: first frames, never evicted, never edited
    recent: int = 4                 # R: newest frames (current chunk included), FIFO
    memory: int | None = None       # M: None = budget - sink - recent; a number must equal it
    alpha: float = 0.35             # GRAB diversity weight
    tau: float = 0.6                # TAME blend strength (paper; the released code uses 0.35)
    temperature: float = 1.0        # GRAB relevance softmax temperature
    grab: bool = True               # False: FIFO memory (keep the newest M candidates)
    tame: bool = True
    tame_target: str = "both"       # k | v | both
    scope: str = "per_layer"        # per_layer (paper) | shared (one decision for all layers)

    @property
    def M(self) -> int:
        return self.budget - self.sink - self.recent

    # ---- configuration ------------------------------------------------------------------
    def validate(self, chunk, horizon, rope_max, tokens_per_frame=None):
        super().validate(chunk, horizon, rope_max, tokens_per_frame)
        K, S, R, M = self.budget, self.sink, self.recent, self.memory
        if M is not None and S + M + R != K:
            raise ConfigError(f"cache.memory={M}: sink + memory + recent = {S + M + R} must equal "
                              f"cache.budget = {K} (set cache.budget={S + M + R} too, or "
                              f"cache.memory=null for budget - sink - recent = {K - S - R})")
        if not self.alpha >= 0:
            raise ConfigError(f"cache.alpha={self.alpha}: must be >= 0")
        if not 0 <= self.tau <= 1:
            raise ConfigError(f"cache.tau={self.tau}: must be in [0, 1]")
        if not self.temperature > 0:
            raise ConfigError(f"cache.temperature={self.temperature}: must be > 0")
        for key in ("grab", "tame"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"cache.{key}={getattr(self, key)!r}: must be true or false")
        if self.tame_target not in TAME_TARGETS:
            raise ConfigError(f"cache.tame_target={self.tame_target!r}: must be one of {TAME_TARGETS}")
        if self.scope not in SCOPES:
            raise ConfigError(f"cache.scope={self.scope!r}: must be one of {SCOPES}")

    # ---- chunk start --------------------------------------------------------------------
    def place(self, st, layer, frame_ids):
        cache = st.cache
        st.stats[layer] = {}
        n, used = len(frame_ids), cache.n_frames(layer)
        overflow = used + n - self.budget
        if overflow <= 0:                          # warm-up: the sink, then memory slots, recent
            regions = self.layout(st.info.horizon).sink_regions(frame_ids)
            regions = [MEMORY if r == RECENT and s < self.sink + self.M else r
                       for s, r in zip(range(used, used + n), regions)]
            return cache.append(layer, frame_ids, regions)
        head = self.sink + self.M                  # steady: the head of recent leaves
        if self.M > 0:
            st.pending[layer] = cache.take_frames(layer, head, overflow)
        cache.drop_frames(layer, head, overflow)
        return cache.append(layer, frame_ids, [RECENT] * n)

    # ---- clean context pass -------------------------------------------------------------
    def commit(self, st, layer, q):
        cache, M = st.cache, self.M
        if not st.seeded[layer] and cache.n_frames(layer) == self.budget:
            st.seeded[layer] = True                # C.1: the memory slots' frames become memory
        if st.pending[layer] is None or not st.seeded[layer] or M == 0:
            st.pending[layer] = None
            return
        if not self.grab:                          # FIFO memory: candidates are chronological
            n = M + len(st.pending[layer][2])
            self._admit(st, layer, torch.arange(n) >= n - M)
            return
        # GRAB's frame logits only need each candidate's mean key (grab.py): pass those as
        # one-token frames instead of copying every candidate key
        ids, mean_k = self._candidate_mean_keys(st, layer)
        gs = grab_scores(q, mean_k, ids, memory_size=M, alpha=self.alpha,
                         temperature=self.temperature, tokens_per_frame=1)
        stats = st.stats[layer]
        stats["relevance"], stats["diversity"] = _floats(gs.relevance.mean(0)), _floats(gs.diversity.mean(0))
        if self.scope == "per_layer":
            stats["score"] = _floats(gs.score)
            self._admit(st, layer, gs.keep.cpu())
            return
        st.shared_scores[layer] = gs.score
        if layer < cache.layers - 1:               # shared: decide once every layer has scored
            return
        score = torch.stack(st.shared_scores).mean(0)
        keep = top_k_mask(score, M)
        for l in range(cache.layers):
            st.stats[l]["score"] = _floats(score)
            self._admit(st, l, keep)
        st.shared_scores = [None] * cache.layers

    # ---- helpers ------------------------------------------------------------------------
    def _candidate_ids(self, st, layer) -> torch.Tensor:
        S, M = self.sink, self.M
        return torch.cat([st.cache.frame_ids(layer)[S:S + M], st.pending[layer][2]])

    def _candidate_mean_keys(self, st, layer):
        """Memory members + pending frames: ids [n] and per-frame mean keys [B, n, H, D] (fp32)."""
        S, M = self.sink, self.M
        ev_k = st.pending[layer][0]
        means = [st.cache.frame_k(layer)[:, S:S + M].mean(dim=2, dtype=torch.float32),
                 ev_k.mean(dim=2, dtype=torch.float32)]
        return self._candidate_ids(st, layer), torch.cat(means, dim=1)

    def _admit(self, st, layer, keep: torch.Tensor) -> None:
        """Rewrite layer's memory with the kept candidates, in candidate (= chronological) order,
        in place: kept members slide left over the demoted ones, then only the newly admitted
        pending frames are written (TAME'd toward the trusted pool)."""
        cache, S, M = st.cache, self.sink, self.M
        ids = self._candidate_ids(st, layer)
        kept = keep.nonzero().flatten()
        assert len(kept) == M, "memory is full once seeded, so top-M always keeps M"
        members = [int(c) for c in kept if c < M]
        admitted = [int(c) - M for c in kept if c >= M]
        stats = st.stats[layer]
        stats["tame_shift_k"], stats["tame_shift_v"] = [], []
        # trusted pool: sink + memory as it is now (read before any move); its statistics are
        # the same for every frame admitted this step, so compute them once
        T = cache.tokens_per_frame
        trusted = {t: channel_stats(store[layer, :, :(S + M) * T])
                   for t, store in (("k", cache.k), ("v", cache.v))
                   if admitted and self.tame and self.tame_target in (t, "both")}
        if admitted:
            ev_k, ev_v, ev_ids = st.pending[layer]
            new = {"k": ev_k[:, admitted], "v": ev_v[:, admitted]}
            for j in range(len(admitted)):          # kept members are never re-edited
                for target in ("k", "v"):
                    if target in trusted:
                        edited, _, ts = tame_edit(new[target][:, j], trusted[target], self.tau)
                        new[target][:, j] = edited
                        stats[f"tame_shift_{target}"].append(round(ts.shift, 6))
            cache.move_frames(layer, [S + c for c in members], S)
            dst = S + len(members)
            cache.write(layer, slice(dst * T, (S + M) * T), new["k"].flatten(1, 2),
                        new["v"].flatten(1, 2))
            cache.set_frames(layer, dst, ev_ids[admitted], MEMORY)
        st.pending[layer] = None
        stats["candidates"] = ids.tolist()
        stats["admitted"] = [int(i) for c, i in enumerate(ids) if c >= M and keep[c]]
        stats["rejected"] = [int(i) for c, i in enumerate(ids) if c >= M and not keep[c]]
        stats["demoted"] = [int(i) for c, i in enumerate(ids) if c < M and not keep[c]]

    # ---- timeline -----------------------------------------------------------------------
    def chunk_stats(self, st) -> dict:
        out = {"memory": memory_frames(st.cache)}
        for key in STAT_KEYS:
            out[key] = [layer_stats.get(key, []) for layer_stats in st.stats]
        return out
