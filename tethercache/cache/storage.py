"""KVCache: preallocated per-layer K/V buffers, one entry per token, plus per-token tables.

Each entry (token) carries its global frame id, its region and its spatial (h, w) position in
its frame's grid; the temporal RoPE position is derived on read from the frame id (absolute) or
the frame's order in storage (relative), unless a policy wrote one (`set_temporal`: a float64
table allocated on first write, moving with its entries, NaN = the default). Storage order is
attention order. Entries tied to no frame carry synthetic ids (`protocol.synthetic_frame`).
Buffers never grow: `capacity` tokens are allocated once and entries move in place. Keys are
stored unrotated.

Frame-level policies keep whole frames (a frame = `tokens_per_frame` consecutive entries in
raster order) and use the `*_frames` helpers, in frame slots; token-level policies use the token
moves (`keep_tokens`) directly. `version[layer]` changes whenever a layer's layout (ids, regions,
order) does, so readers can memoise what they derive from it.
"""
from __future__ import annotations

import torch

from .protocol import EMPTY, MEMORY, RECENT, REGION_NAMES, SINK, STATE  # noqa: F401  (re-exported)


class KVCache:
    def __init__(self, layers: int, capacity: int, grid: tuple[int, int], heads: int,
                 head_dim: int, batch: int = 1, dtype=torch.float32, device="cpu"):
        """`capacity` in tokens; `grid` (h, w) tokens of one latent frame."""
        shape = (layers, batch, capacity, heads, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros(shape, dtype=dtype, device=device)
        self.frames = torch.full((layers, capacity), -1, dtype=torch.long)   # global frame ids
        self.regions = torch.zeros((layers, capacity), dtype=torch.int8)
        self.hw = torch.zeros((layers, capacity, 2), dtype=torch.long)       # (h, w) in the frame
        self.temporal: torch.Tensor | None = None    # [layers, capacity] float64, NaN = default
        self.used = [0] * layers                                             # tokens
        self.version = [0] * layers
        self.layers, self.capacity, self.grid = layers, capacity, tuple(grid)
        self.tokens_per_frame = grid[0] * grid[1]
        self._frame_hw = torch.stack(torch.meshgrid(torch.arange(grid[0]), torch.arange(grid[1]),
                                                    indexing="ij"), -1).reshape(-1, 2)

    def _tables(self):
        """The per-token tables with their blank value (the temporal one once written)."""
        tables = [(self.frames, -1), (self.regions, EMPTY), (self.hw, 0)]
        if self.temporal is not None:
            tables.append((self.temporal, float("nan")))
        return tables

    @property
    def nbytes(self) -> int:
        return self.k.numel() * self.k.element_size() * 2

    # ---- token reads --------------------------------------------------------------------
    def keys(self, layer: int) -> torch.Tensor:
        """[B, used, H, D] view of the occupied entries (no copy)."""
        return self.k[layer, :, : self.used[layer]]

    def values(self, layer: int) -> torch.Tensor:
        return self.v[layer, :, : self.used[layer]]

    def token_frames(self, layer: int) -> torch.Tensor:
        return self.frames[layer, : self.used[layer]]

    def token_regions(self, layer: int) -> torch.Tensor:
        return self.regions[layer, : self.used[layer]]

    # ---- token moves (in place) ---------------------------------------------------------
    def append(self, layer: int, frame_ids: torch.Tensor, regions) -> slice:
        """Append whole frames (each `tokens_per_frame` entries, raster order); `regions` one per
        frame. Returns the token slots they occupy."""
        T = self.tokens_per_frame
        n, start = len(frame_ids) * T, self.used[layer]
        if start + n > self.capacity:
            raise RuntimeError(f"cache layer {layer} overflow: {start}+{n} > {self.capacity} tokens")
        sl = slice(start, start + n)
        self.frames[layer, sl] = torch.as_tensor(frame_ids).repeat_interleave(T)
        self.regions[layer, sl] = torch.as_tensor(regions, dtype=torch.int8).repeat_interleave(T)
        self.hw[layer, sl] = self._frame_hw.repeat(len(frame_ids), 1)
        if self.temporal is not None:
            self.temporal[layer, sl] = float("nan")
        self.used[layer] = start + n
        self.version[layer] += 1
        return sl

    def drop_tokens(self, layer: int, start: int, n: int) -> None:
        """Remove entries [start, start+n), shifting the later ones left (order kept)."""
        if n <= 0:
            return
        end = self.used[layer]
        for buf in (self.k, self.v):
            buf[layer, :, start: end - n] = buf[layer, :, start + n: end].clone()
        for table, blank in self._tables():
            table[layer, start: end - n] = table[layer, start + n: end].clone()
            table[layer, end - n: end] = blank
        self.used[layer] = end - n
        self.version[layer] += 1

    def keep_tokens(self, layer: int, keep: torch.Tensor) -> None:
        """Keep only the entries at sorted indices `keep`, compacted to the front in order."""
        n, end = len(keep), self.used[layer]
        if n == end:
            return
        keep = keep.to(self.k.device)
        for buf in (self.k, self.v):
            buf[layer, :, :n] = buf[layer, :, keep]
        keep = keep.cpu()
        for table, blank in self._tables():
            table[layer, :n] = table[layer, keep]
            table[layer, n:end] = blank
        self.used[layer] = n
        self.version[layer] += 1

    def write(self, layer: int, slots, k: torch.Tensor, v: torch.Tensor) -> None:
        """Overwrite entries `slots` (a slice, or a start token index) with k, v [B, n, H, D]."""
        if not isinstance(slots, slice):
            slots = slice(slots, slots + k.shape[1])
        self.k[layer, :, slots] = k
        self.v[layer, :, slots] = v

    def set_temporal(self, layer: int, slots, t) -> None:
        """A policy's temporal RoPE position for entries `slots` (index, slice or mask; t float64,
        broadcast; NaN = back to the default). Bumps the layout version: positions are memoised
        per version, so a position written here is always seen."""
        if isinstance(slots, torch.Tensor) and slots.dtype == torch.bool:
            slots = slots.nonzero().flatten()                  # a mask over the used entries
        if self.temporal is None:
            self.temporal = torch.full(self.frames.shape, float("nan"), dtype=torch.float64)
        self.temporal[layer, slots] = torch.as_tensor(t, dtype=torch.float64)
        self.version[layer] += 1

    def token_temporal(self, layer: int) -> torch.Tensor | None:
        """[used] float64 policy-written temporal positions (NaN = default), None if none ever."""
        return None if self.temporal is None else self.temporal[layer, : self.used[layer]]

    def reset(self) -> None:
        self.frames.fill_(-1)
        self.regions.fill_(EMPTY)
        self.hw.zero_()
        if self.temporal is not None:
            self.temporal.fill_(float("nan"))
        self.used = [0] * self.layers
        self.version = [v + 1 for v in self.version]

    # ---- whole-frame helpers (frame slot s = tokens [s*T, (s+1)*T)) -------------------------
    def n_frames(self, layer: int) -> int:
        return self.used[layer] // self.tokens_per_frame

    def frame_ids(self, layer: int) -> torch.Tensor:
        """Global frame id of each occupied frame slot (whole-frame storage)."""
        return self.frames[layer, : self.used[layer]: self.tokens_per_frame]

    def frame_regions(self, layer: int) -> torch.Tensor:
        return self.regions[layer, : self.used[layer]: self.tokens_per_frame]

    def slots_of(self, layer: int, region: int) -> torch.Tensor:
        """Frame slots of `region`."""
        return torch.nonzero(self.frame_regions(layer) == region).flatten()

    def frame_k(self, layer: int) -> torch.Tensor:
        """[B, capacity/T, T, H, D] view of layer's keys by frame slot."""
        return self.k[layer].unflatten(1, (-1, self.tokens_per_frame))

    def frame_v(self, layer: int) -> torch.Tensor:
        return self.v[layer].unflatten(1, (-1, self.tokens_per_frame))

    def take_frames(self, layer: int, start: int, n: int):
        """Copies of frame slots [start, start+n): (k, v [B, n, T, H, D], frame ids [n])."""
        sl = slice(start, start + n)
        ids = self.frames[layer, start * self.tokens_per_frame: (start + n) * self.tokens_per_frame:
                          self.tokens_per_frame].clone()
        return self.frame_k(layer)[:, sl].clone(), self.frame_v(layer)[:, sl].clone(), ids

    def drop_frames(self, layer: int, start: int, n: int) -> None:
        T = self.tokens_per_frame
        self.drop_tokens(layer, start * T, n * T)

    def move_frames(self, layer: int, src: list[int], dst: int) -> None:
        """Move frame slots `src` (increasing, each >= its destination) to dst, dst+1, ... in
        order, in place (a left compaction: no copy of the frames that stay)."""
        T = self.tokens_per_frame
        for i, s in enumerate(src):
            d = dst + i
            if s == d:
                continue
            a, b = slice(s * T, (s + 1) * T), slice(d * T, (d + 1) * T)
            for buf in (self.k, self.v):
                buf[layer, :, b] = buf[layer, :, a]
            for table, _ in self._tables():
                table[layer, b] = table[layer, a]
        self.version[layer] += 1

    def set_frames(self, layer: int, start: int, frame_ids: torch.Tensor, region: int) -> None:
        """Relabel frame slots from `start` (ids and region; spatial positions stay, temporal
        ones return to the default: the slots hold other frames now)."""
        T = self.tokens_per_frame
        sl = slice(start * T, (start + len(frame_ids)) * T)
        self.frames[layer, sl] = torch.as_tensor(frame_ids).repeat_interleave(T)
        self.regions[layer, sl] = region
        if self.temporal is not None:
            self.temporal[layer, sl] = float("nan")
        self.version[layer] += 1
