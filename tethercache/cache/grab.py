"""GRAB (Gated Recall with Attention-Diversity Balancing): score memory candidates, keep the top-M.

Pure tensor functions; the cache policy owns the state and decides what the candidates are
(existing memory members in slot order, then the frames just evicted from `recent`).

Semantics follow the official release (my4f175/TetherCache @37c581a, `grab.py`):
  relevance_f = softmax_f( mean_{h, i in query, j in frame f} <q_i, k_j>/sqrt(D) / temperature )
  diversity_f = max(0, 1 - max_{g != f} exp(-|t_f - t_g| / sigma) * relevance_g),
                sigma = max(1, (max t - min t + 1) / 2)
  score_f     = mean_b(relevance + alpha * diversity);  keep = top-M(score)
The release materialises the full [B, H, Lq, n*T] logit tensor (~6 GB per block at Wan scale).
By linearity the mean logit is <mean_i q_i, mean_{j in f} k_j>/sqrt(D) per head, so we only
ever build [B, H, D] and [B, n, H, D] means: memory is O(n*T + Lq), never O(Lq * n*T).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class GrabScores:
    relevance: torch.Tensor  # [B, n] softmax over candidates ("attention mass")
    diversity: torch.Tensor  # [B, n] temporal diversity in [0, 1]
    score: torch.Tensor      # [n] batch-mean gated score (all zeros when every candidate is kept)
    keep: torch.Tensor       # [n] bool, True for the top-`memory_size` candidates

    @property
    def kept_indices(self) -> torch.Tensor:
        """Kept candidate positions in candidate order (the order memory is rewritten in)."""
        return self.keep.nonzero().flatten()

    @property
    def dropped_indices(self) -> torch.Tensor:
        """Candidates that lose the top-M competition (demoted members or rejected evictions)."""
        return (~self.keep).nonzero().flatten()

    @property
    def ranking(self) -> torch.Tensor:
        """Candidate positions by decreasing score (ties broken by candidate order), for logging."""
        return torch.sort(self.score, descending=True, stable=True).indices


def validate_grab_params(memory_size: int, alpha: float, temperature: float) -> None:
    if memory_size < 0:
        raise ValueError(f"memory_size must be >= 0, got {memory_size}")
    if alpha < 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def frame_relevance(q: torch.Tensor, cand_k: torch.Tensor, n_frames: int,
                    temperature: float = 1.0) -> torch.Tensor:
    """Softmax over candidate frames of the mean q.k/sqrt(D) logit -> [B, n] (float32)."""
    B, Lk, H, D = cand_k.shape
    if Lk % n_frames:
        raise ValueError(f"{Lk} candidate tokens do not split into {n_frames} frames")
    q_mean = q.mean(dim=1, dtype=torch.float32)                                  # [B, H, D]
    k_mean = cand_k.reshape(B, n_frames, Lk // n_frames, H, D).mean(dim=2, dtype=torch.float32)
    logits = torch.einsum("bhd,bnhd->bn", q_mean, k_mean) / (H * math.sqrt(D))   # mean over heads
    return torch.softmax(logits / temperature, dim=-1)


def temporal_diversity(relevance: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """1 - (strongest relevance-weighted temporal neighbour), clamped at 0 -> [B, n]."""
    if frames.numel() == 0:
        return torch.ones_like(relevance)
    t = frames.to(device=relevance.device, dtype=torch.float32)
    sigma = max(1.0, 0.5 * (t.max() - t.min() + 1).item())
    sim = torch.exp(-(t[:, None] - t[None, :]).abs() / sigma)                   # [n, n]
    sim.fill_diagonal_(0.0)  # a frame is not redundant with itself
    redundancy = (sim[None] * relevance[:, None, :]).amax(dim=-1)   # max over g
    return (1.0 - redundancy).clamp_min(0.0)


def grab(q: torch.Tensor, cand_k: torch.Tensor, cand_frames: torch.Tensor, *,
         memory_size: int, alpha: float, temperature: float,
         tokens_per_frame: int) -> GrabScores:
    """Score `n` candidate frames and keep the best `memory_size`.

    q: [B, Lq, H, D] current chunk's unrotated queries; cand_k: [B, n*T, H, D] unrotated keys,
    frame-major; cand_frames: [n] global frame indices (drive the diversity term only).
    """
    validate_grab_params(memory_size, alpha, temperature)
    n = cand_frames.numel()
    if cand_k.shape[1] != n * tokens_per_frame:
        raise ValueError(f"cand_k has {cand_k.shape[1]} tokens, expected {n} x {tokens_per_frame}")
    if q.shape[0] != cand_k.shape[0] or q.shape[2:] != cand_k.shape[2:]:
        raise ValueError(f"q {tuple(q.shape)} and cand_k {tuple(cand_k.shape)} disagree on B/H/D")

    relevance = frame_relevance(q, cand_k, n, temperature)
    diversity = temporal_diversity(relevance, cand_frames)
    if n <= memory_size:
        # The release skips the competition entirely: everything is kept and scores stay zero.
        score = torch.zeros(n, dtype=torch.float32, device=relevance.device)
        keep = torch.ones(n, dtype=torch.bool, device=relevance.device)
    else:
        score = (relevance + alpha * diversity).mean(dim=0)
        keep = torch.zeros(n, dtype=torch.bool, device=relevance.device)
        keep[torch.topk(score, memory_size).indices] = True
    return GrabScores(relevance=relevance, diversity=diversity, score=score, keep=keep)
