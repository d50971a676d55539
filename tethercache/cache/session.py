"""CacheSession: what the model talks to. Binds storage + policy + the chunk being generated.

`CacheSession.for_model` sizes one from a model's config. Every driver (the sampler, tests,
benchmarks) runs a chunk through `drive_chunk`, the one place of the chunk protocol:
`begin_chunk(frame_ids)` at chunk start, the denoising passes, `commit_pass()` around the clean
context pass, `end_chunk()` to record the timeline. The model only calls `attend`.
The session owns the per-frame info (toy camera poses), the policy's per-session state, and the
chunk's slots: the policy's `place` says which token slots the chunk occupies and every pass
writes exactly there (not "the tail of the cache").
Passes: `pass_ctx` (a PassContext) says which pass of the chunk runs; a driver that knows its
noise level declares it with `begin_pass(sigma, timestep)` before the pass (the sampler does),
otherwise layer 0's `attend` opens the next pass itself. A policy's per-pass hooks (`on_pass`,
`read_set`) are looked up once: a policy that has none costs nothing per pass.

State frames (`state_frames > 0`, e.g. AdaState's unrendered state latent): latent frames that
the sampler denoises with every chunk; their clean-pass K/V are kept in slots of their own, ahead
of everything the policy holds, and attended by every later pass. They are outside the policy's
budget and timeline. RoPE: relative mode puts them at t = 0..n-1 (the policy's frames follow);
absolute mode at t = -n..-1, just before frame 0.
"""
from __future__ import annotations

import contextlib
import json
from typing import Callable, TypeVar

import numpy as np
import torch

from ..errors import ConfigError
from .policy import CachePolicy
from .protocol import REGIONS, STATE, Attend, FrameInfo, PassContext, Region
from .storage import KVCache

X = TypeVar("X")


class CacheSession:
    def __init__(self, policy: CachePolicy, *, layers: int, horizon: int, grid: tuple[int, int],
                 heads: int, head_dim: int, batch: int = 1, dtype=torch.float32, device="cpu",
                 rope_max: int = 1024, record: bool = True, poses: torch.Tensor | None = None,
                 state_frames: int = 0):
        self.policy = policy
        T = grid[0] * grid[1]
        capacity = policy.capacity(horizon, T)
        if capacity < 1:
            layout = policy.layout(horizon)
            raise ConfigError(f"{layout.key}={layout.budget}: leaves no storage")
        self.cache = KVCache(layers, capacity, grid, heads, head_dim, batch, dtype, device)
        self.info = FrameInfo(poses, horizon)
        self.state = policy.new_state(self.cache, self.info)
        self.state_frames = state_frames
        self.states = (KVCache(layers, state_frames * T, grid, heads, head_dim, batch, dtype, device)
                       if state_frames else None)
        self.rope_max = rope_max
        self.chunk_frames: torch.Tensor | None = None
        self.chunk_slots: list[slice] = [slice(0, 0)] * layers
        self._pos: list = [None] * layers          # (layout version, positions) per layer
        self.committing = False
        self.pass_ctx = PassContext(-1)
        self._declared = False                      # begin_pass opened the coming pass
        self._on_pass = _hook(policy, "on_pass")
        self._read_set = _hook(policy, "read_set")
        self.record = record
        self.timeline: dict[str, list] = {"chunk_start": [], "frames": [], "regions": [],
                                          "tokens": [], "stats": []}

    @classmethod
    def for_model(cls, model, policy: CachePolicy, *, grid: tuple[int, int], horizon: int,
                  batch: int = 1, poses: torch.Tensor | None = None, record: bool = True,
                  device=None, state_frames: int = 0) -> "CacheSession":
        """A session shaped for `model` (layers, heads, head dim, dtype, RoPE table from its
        config) over `grid` tokens per latent frame (a backbone's `grid`)."""
        c = model.config
        return cls(policy, layers=c.layers, horizon=horizon, grid=grid, heads=c.heads,
                   head_dim=c.head_dim, batch=batch, dtype=model.dtype,
                   device=model.device if device is None else device,
                   rope_max=c.rope_max_positions, record=record, poses=poses,
                   state_frames=state_frames)

    def drive_chunk(self, frame_ids: torch.Tensor, denoise: Callable[[], X],
                    commit: Callable[[X], object]) -> tuple[X, object]:
        """One chunk, the protocol every driver follows: the policy places the chunk's frames,
        `denoise()` runs the denoising passes (each overwrites the chunk's slots) and returns the
        chunk, `commit(chunk)` runs the clean context pass (K/V final, the policy commits), and
        the timeline records the chunk. Returns (denoise's result, commit's result)."""
        self.begin_chunk(frame_ids)
        x = denoise()
        with self.commit_pass():
            out = commit(x)
        self.end_chunk()
        return x, out

    def begin_chunk(self, frame_ids: torch.Tensor) -> None:
        """Chunk start, every layer: the policy makes room and places the chunk's frames."""
        if self.policy.rope == "absolute" and int(frame_ids.max()) >= self.rope_max:
            raise RuntimeError(f"frame {int(frame_ids.max())} is past the RoPE table "
                               f"({self.rope_max}); use cache.rope=relative")
        self.chunk_frames = frame_ids
        self.pass_ctx, self._declared = PassContext(-1), False
        self.chunk_slots = [self.policy.place(self.state, layer, frame_ids)
                            for layer in range(self.cache.layers)]
        if self.states is not None and self.states.used[0] == 0:
            for layer in range(self.cache.layers):
                self.states.append(layer, torch.arange(-self.state_frames, 0),
                                   [STATE] * self.state_frames)

    def begin_pass(self, sigma: float | None = None, timestep: float | None = None) -> None:
        """The next pass of the chunk starts, at this noise level."""
        self.pass_ctx = PassContext(self.pass_ctx.index + 1, sigma, timestep, self.committing)
        self._declared = True

    @contextlib.contextmanager
    def commit_pass(self):
        """The clean context pass: K/V written now are final, and the policy commits."""
        self.committing = True
        try:
            yield
        finally:
            self.committing = False

    def attend(self, layer: int, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> Attend:
        """q, k, v [B, n, H, D] of the pass's tokens: the state frames' (if any), then the chunk's."""
        c = self.cache
        if layer == 0:
            if not self._declared:
                self.begin_pass()
            self._declared = False
        n_state = self.states.used[layer] if self.states is not None else 0
        if n_state:
            self.states.write(layer, slice(0, n_state), k[:, :n_state], v[:, :n_state])
            q, k, v = q[:, n_state:], k[:, n_state:], v[:, n_state:]
        c.write(layer, self.chunk_slots[layer], k, v)          # each pass overwrites the noisier one
        if self._on_pass is not None:                          # may move entries: new chunk slots
            moved = self._on_pass(self.state, layer, q, k, self.pass_ctx)
            if moved is not None:
                self.chunk_slots[layer] = moved
        if self.committing:
            self.policy.commit(self.state, layer, q)
        k_pos, q_pos, key, k_frames, q_frames = self._positions(layer)
        keys, vals = c.keys(layer), c.values(layer)
        if n_state:
            keys = torch.cat([self.states.keys(layer), keys], dim=1)
            vals = torch.cat([self.states.values(layer), vals], dim=1)
        return Attend(keys, vals, k_pos, q_pos, key, k_frames, q_frames,
                      None if self._read_set is None else self._read(layer, n_state))

    def _read(self, layer: int, n_state: int) -> torch.Tensor | None:
        """The policy's read set for this pass as key indices (state frames always read)."""
        read = self._read_set(self.state, layer, self.pass_ctx)
        if read is None:
            return None
        read = torch.as_tensor(read)
        if read.dtype == torch.bool:
            read = read.nonzero().flatten()
        if n_state:
            read = torch.cat([torch.arange(n_state), read.cpu() + n_state])
        return read.to(self.cache.k.device)

    # ---- positions ------------------------------------------------------------------------
    def _positions(self, layer: int):
        """(t, h, w) of every key and query token, rebuilt only when the layer's layout changed."""
        memo = self._pos[layer]
        if memo is not None and memo[0] == self.cache.version[layer]:
            return memo[1]
        k_pos = self._token_positions(self.cache, layer, self.policy.rope)
        q_pos = k_pos[..., self.chunk_slots[layer], :]
        k_frames = self.cache.token_frames(layer).clone()
        q_frames = self.cache.frames[layer, self.chunk_slots[layer]].clone()
        if self.states is not None:
            s_frames = self.states.token_frames(layer)
            k_frames, q_frames = torch.cat([s_frames, k_frames]), torch.cat([s_frames, q_frames])
            s_pos = self._token_positions(self.states, layer, "absolute")
            if self.policy.rope == "relative":
                s_pos[..., 0] += self.state_frames              # -n..-1 -> 0..n-1
                k_pos = k_pos.clone()
                k_pos[..., 0] += self.state_frames
                q_pos = q_pos.clone()
                q_pos[..., 0] += self.state_frames
            k_pos = torch.cat([s_pos, k_pos], dim=-2)
            q_pos = torch.cat([s_pos, q_pos], dim=-2)
        key = (tuple(k_pos.shape), k_pos.numpy().tobytes(), tuple(q_pos.shape), q_pos.numpy().tobytes())
        out = (k_pos, q_pos, key, k_frames, q_frames)
        self._pos[layer] = (self.cache.version[layer], out)
        return out

    def _token_positions(self, store: KVCache, layer: int, rope: str) -> torch.Tensor:
        """[(B,) n, 3] float64: t = global frame id (absolute) or the frame's order in storage
        (relative), or what the policy wrote (`set_temporal`); (h, w) in the frame, w shifted by
        the frame's camera pose (toy)."""
        frames = store.token_frames(layer)
        if rope == "absolute":
            t = frames.double()
        else:
            new = torch.ones_like(frames, dtype=torch.bool)
            new[1:] = frames[1:] != frames[:-1]
            t = (torch.cumsum(new, 0) - 1).double()
        chosen = store.token_temporal(layer)                  # a policy's own positions win
        if chosen is not None:
            t = torch.where(chosen.isnan(), t, chosen)
        hw = store.hw[layer, : len(frames)].double()
        w = hw[:, 1]
        poses = self.info.poses
        if poses is not None:
            shift = poses[..., frames.clamp_min(0)].to(torch.float64).cpu()
            w = w + torch.where(frames >= 0, shift, torch.zeros((), dtype=torch.float64))
            t, h = t.expand_as(w), hw[:, 0].expand_as(w)
            return torch.stack([t, h, w], dim=-1)
        return torch.stack([t, hw[:, 0], w], dim=-1)

    # ---- timeline -------------------------------------------------------------------------
    def end_chunk(self) -> None:
        if not self.record:
            return
        c, tl = self.cache, self.timeline
        step = c.tokens_per_frame if self.policy.unit == "frame" else 1   # one row per slot
        tl["chunk_start"].append(int(self.chunk_frames[0]))
        tl["frames"].append(c.frames[:, ::step].numpy().astype(np.int32).copy())
        tl["regions"].append(c.regions[:, ::step].numpy().copy())
        tl["tokens"].append(list(c.used))
        tl["stats"].append(self.policy.chunk_stats(self.state))

    def save_timeline(self, path) -> None:
        """Compact per-chunk x layer x slot tables (global frame id, region code; a slot is a
        frame for frame-level policies, a token for token-level ones), the tokens held per layer,
        plus the policy's per-chunk decisions as JSON (their shapes vary from policy to policy) and
        the region table (code, name, colour), so a reader knows codes its own table lacks."""
        tl = self.timeline
        np.savez_compressed(path, chunk_start=np.array(tl["chunk_start"], np.int32),
                            frames=np.stack(tl["frames"]), regions=np.stack(tl["regions"]),
                            tokens=np.array(tl["tokens"], np.int32),
                            unit=np.array(self.policy.unit),
                            stats_json=np.array(json.dumps(tl["stats"])),
                            region_codes=np.array([r.code for r in REGIONS], np.int32),
                            region_names=np.array([r.name for r in REGIONS]),
                            region_colors=np.array([r.color for r in REGIONS]))


def _hook(policy, name: str):
    """The policy's bound hook `name`, or None where it keeps CachePolicy's no-op."""
    hook = getattr(policy, name, None)
    return None if getattr(hook, "__func__", None) is getattr(CachePolicy, name) else hook


def timeline_regions(timeline) -> dict[int, Region]:
    """Code -> Region for a saved timeline (the loaded .npz): this process's region table, plus
    the codes it lacks from the timeline's own table (regions added by the writing process)."""
    table = {r.code: r for r in REGIONS}
    if "region_codes" in timeline:
        for code, name, color in zip(timeline["region_codes"].tolist(),
                                     timeline["region_names"].tolist(),
                                     timeline["region_colors"].tolist()):
            table.setdefault(int(code), Region(int(code), str(name), str(color)))
    return table
