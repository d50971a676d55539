"""`tether`: TetherCache (arXiv 2606.13035): sink | memory | recent, GRAB recall + TAME editing.

Layout per layer, in slot order (= RoPE order in relative mode):
    [ sink S | memory M | recent R ],   K = budget = S + M + R frames, current chunk included.
Schedule (official release, reference §5.2-5.4), every layer with its own state:
  * chunk start (`place`): warm-up appends the chunk; regions by slot. Once full, the C oldest
    recent frames (the head of `recent`) are copied out as the layer's *pending* frames and
    dropped (recent shifts left), and the chunk is appended as recent. While the chunk denoises
    the pending frames are in no region: the denoising passes see sink + old memory + recent.
  * clean context pass (`commit`, before readout):
      C.1 the first time the cache is full, what sits in the memory slots becomes memory (no TAME);
      C.2 candidates = memory members (slot order) + pending frames (time order). GRAB keeps the
          top-M by relevance + alpha * diversity (`grab=False`: the newest M, i.e. FIFO memory).
          Kept members are moved unchanged, newly admitted frames are TAME'd toward the trusted
          pool (sink + memory as it was before this step), and the kept candidates are written,
          in candidate order (so chronologically), into slots [S, S+M). Losers are gone for good.
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

from dataclasses import dataclass

import torch

from ..errors import ConfigError
from .grab import grab as grab_scores
from .policy import CachePolicy
from .registry import register
from .storage import MEMORY, RECENT, SINK, KVCache
from .tame import channel_stats, tame as tame_edit

TAME_TARGETS = ("k", "v", "both")
SCOPES = ("per_layer", "shared")
STAT_KEYS = ("candidates", "relevance", "diversity", "score", "admitted", "rejected", "demoted",
             "tame_shift_k", "tame_shift_v")


def _floats(x: torch.Tensor) -> list[float]:
    return [round(float(f), 6) for f in x.tolist()]


@register
@dataclass
class TetherPolicy(CachePolicy):
    name = "tether"
    rope: str = "relative"
    sink: int = 3                   # S: first frames, never evicted, never edited
    recent: int = 4                 # R: newest frames (current chunk included), FIFO
    memory: int | None = None       # M: None = budget - sink - recent (the only allowed value)
    alpha: float = 0.35             # GRAB diversity weight
    tau: float = 0.6                # TAME blend strength (paper; the released code uses 0.35)
    temperature: float = 1.0        # GRAB relevance softmax temperature
    grab: bool = True               # False: FIFO memory (keep the newest M candidates)
    tame: bool = True
    tame_target: str = "both"       # k | v | both
    scope: str = "per_layer"        # per_layer (paper) | shared (one decision for all layers)

    def __post_init__(self):
        self._cache: KVCache | None = None     # the session's storage the state below belongs to

    @property
    def M(self) -> int:
        return self.budget - self.sink - self.recent

    # ---- configuration ------------------------------------------------------------------
    def validate(self, chunk, horizon, rope_max):
        super().validate(chunk, horizon, rope_max)
        K, S, R, M = self.budget, self.sink, self.recent, self.M
        if S < 0:
            raise ConfigError(f"cache.sink={S}: must be >= 0")
        if R < chunk:
            raise ConfigError(f"cache.recent={R}: must be >= the chunk ({chunk} frames)")
        if S + R > K:
            raise ConfigError(f"cache.sink + cache.recent = {S} + {R}: must be <= cache.budget = {K} "
                              f"(memory = budget - sink - recent >= 0)")
        if self.memory is not None and self.memory != M:
            raise ConfigError(f"cache.memory={self.memory}: must be null or budget - sink - "
                              f"recent = {M}")
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
    def place(self, cache, layer, frame_ids):
        if cache is not self._cache or (layer == 0 and cache.used[0] == 0):
            self._bind(cache)                      # a new session (or a reset cache)
        self._stats[layer] = {}
        n, used = len(frame_ids), cache.used[layer]
        overflow = used + n - self.budget
        if overflow <= 0:                          # warm-up: append, regions by slot
            regions = [SINK if s < self.sink else MEMORY if s < self.sink + self.M else RECENT
                       for s in range(used, used + n)]
            return cache.append(layer, frame_ids, regions)
        head = self.sink + self.M                  # steady: the head of recent leaves
        if self.M > 0:
            self._pending[layer] = cache.take(layer, head, overflow)
        cache.drop(layer, head, overflow)
        return cache.append(layer, frame_ids, [RECENT] * n)

    # ---- clean context pass -------------------------------------------------------------
    def commit(self, cache, layer, q):
        S, M = self.sink, self.M
        if not self._seeded[layer] and cache.used[layer] == self.budget:
            self._seeded[layer] = True             # C.1: the memory slots' frames become memory
        if self._pending[layer] is None or not self._seeded[layer] or M == 0:
            self._pending[layer] = None
            return
        if not self.grab:                          # FIFO memory: candidates are chronological
            n = M + len(self._pending[layer][2])
            keep = torch.arange(n) >= n - M
            self._admit(cache, layer, keep)
            return
        # GRAB's frame logits only need each candidate's mean key (grab.py): pass those as
        # one-token frames instead of copying every candidate key
        ids, mean_k = self._candidate_mean_keys(cache, layer)
        gs = grab_scores(q, mean_k, ids, memory_size=M, alpha=self.alpha,
                         temperature=self.temperature, tokens_per_frame=1)
        st = self._stats[layer]
        st["relevance"], st["diversity"] = _floats(gs.relevance.mean(0)), _floats(gs.diversity.mean(0))
        if self.scope == "per_layer":
            st["score"] = _floats(gs.score)
            self._admit(cache, layer, gs.keep.cpu())
            return
        self._scores[layer] = gs.score
        if layer < cache.layers - 1:               # shared: decide once every layer has scored
            return
        score = torch.stack(self._scores).mean(0)
        keep = torch.zeros(len(score), dtype=torch.bool)
        keep[torch.topk(score, M).indices.cpu()] = True
        for l in range(cache.layers):
            self._stats[l]["score"] = _floats(score)
            self._admit(cache, l, keep)
        self._scores = [None] * cache.layers

    # ---- helpers ------------------------------------------------------------------------
    def _bind(self, cache: KVCache) -> None:
        L = cache.layers
        self._cache = cache
        self._seeded = [False] * L
        self._pending: list = [None] * L           # (k, v, ids) staged at chunk start
        self._scores: list = [None] * L            # shared scope: per-layer GRAB scores
        self._stats: list[dict] = [{} for _ in range(L)]

    def _candidates(self, cache, layer):
        """Memory members (slot order) + pending frames: ids [n], k, v [B, n, T, H, D] (copies)."""
        S, M = self.sink, self.M
        ev_k, ev_v, ev_ids = self._pending[layer]
        ids = torch.cat([cache.frames[layer, S:S + M], ev_ids])
        k = torch.cat([cache.k[layer, :, S:S + M], ev_k], dim=1)
        v = torch.cat([cache.v[layer, :, S:S + M], ev_v], dim=1)
        return ids, k, v

    def _candidate_mean_keys(self, cache, layer):
        """Memory members + pending frames: ids [n] and per-frame mean keys [B, n, H, D] (fp32)."""
        S, M = self.sink, self.M
        ev_k, _, ev_ids = self._pending[layer]
        means = [cache.k[layer, :, S:S + M].mean(dim=2, dtype=torch.float32),
                 ev_k.mean(dim=2, dtype=torch.float32)]
        return torch.cat([cache.frames[layer, S:S + M], ev_ids]), torch.cat(means, dim=1)

    def _admit(self, cache, layer, keep: torch.Tensor) -> None:
        """Rewrite layer's memory with the kept candidates; TAME the newly admitted ones."""
        S, M = self.sink, self.M
        ids, k, v = self._candidates(cache, layer)
        kept = keep.nonzero().flatten()
        assert len(kept) == M, "memory is full once seeded, so top-M always keeps M"
        new_k, new_v = k[:, kept], v[:, kept]      # candidate order = chronological
        st = self._stats[layer]
        st["tame_shift_k"], st["tame_shift_v"] = [], []
        admitted = [j for j, c in enumerate(kept.tolist()) if c >= M] if self.tame else []
        # trusted pool: sink + memory as it is now (read before the write below); its statistics
        # are the same for every frame admitted this step, so compute them once
        trusted = {t: channel_stats(store[layer, :, :S + M].flatten(1, 2))
                   for t, store in (("k", cache.k), ("v", cache.v))
                   if admitted and self.tame_target in (t, "both")}
        for j in admitted:                          # kept members are never re-edited
            for target, new in (("k", new_k), ("v", new_v)):
                if target in trusted:
                    edited, _, ts = tame_edit(new[:, j], trusted[target], self.tau)
                    new[:, j] = edited
                    st[f"tame_shift_{target}"].append(round(ts.shift, 6))
        if bool((kept >= M).any()):                # else every member stayed: nothing to write
            cache.write(layer, S, new_k, new_v)
            cache.frames[layer, S:S + M] = ids[kept]
            cache.regions[layer, S:S + M] = MEMORY
        self._pending[layer] = None
        st["candidates"] = ids.tolist()
        st["admitted"] = [int(i) for c, i in enumerate(ids) if c >= M and keep[c]]
        st["rejected"] = [int(i) for c, i in enumerate(ids) if c >= M and not keep[c]]
        st["demoted"] = [int(i) for c, i in enumerate(ids) if c < M and not keep[c]]

    # ---- timeline -----------------------------------------------------------------------
    def chunk_stats(self) -> dict:
        c = self._cache
        if c is None:
            return {}
        out = {"memory": [c.frames[l, : c.used[l]][c.regions[l, : c.used[l]] == MEMORY].tolist()
                          for l in range(c.layers)]}
        for key in STAT_KEYS:
            out[key] = [st.get(key, []) for st in self._stats]
        return out
