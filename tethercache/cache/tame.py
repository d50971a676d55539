"""TAME (Trusted Alignment via Memory Editing): pull a recalled frame's K or V toward a trusted pool.

Per (head, channel) AdaIN against the statistics of the trusted pool (sink + current memory),
blended with strength tau, as in the official release (my4f175/TetherCache @37c581a, `tame.py`):
  out = (1 - tau) * x + tau * (sigma_t * (x - mu_x) / sigma_x + mu_t)
Statistics are mean / population std over (batch, tokens), std clamped at 1e-6 so a constant
channel maps to mu_t instead of NaN. Computed in float32, cast back to x.dtype (bf16 caches).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

STD_FLOOR = 1e-6


@dataclass
class TameStats:
    mu_x: torch.Tensor                # [H, D] statistics of the edited tokens
    sigma_x: torch.Tensor             # [H, D]
    mu_t: torch.Tensor | None         # [H, D] statistics of the trusted pool (None without one)
    sigma_t: torch.Tensor | None      # [H, D]
    shift: float                      # mean |out - x| / mean |x|: how far the edit moved x (logging)


def validate_tau(tau: float) -> None:
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")


def channel_stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and clamped population std per (head, channel) over (batch, tokens): 2 x [H, D]."""
    x32 = x.float()
    std, mean = torch.std_mean(x32, dim=(0, 1), correction=0)
    return mean, std.clamp_min(STD_FLOOR)


def tame(x: torch.Tensor, trusted: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None,
         tau: float) -> tuple[torch.Tensor, bool, TameStats]:
    """Blend x [B, F, H, D] toward the per-(head, channel) statistics of trusted [B, Lt, H, D]
    (or of its precomputed `channel_stats`, to share them across the frames admitted together).

    Returns (out, edited, stats). With tau == 0 or no trusted pool, `out` is `x` itself
    (not a copy) and edited is False; statistics are still reported for logging.
    """
    validate_tau(tau)
    mu_x, sigma_x = channel_stats(x)
    if trusted is None:
        return x, False, TameStats(mu_x, sigma_x, None, None, 0.0)
    mu_t, sigma_t = trusted if isinstance(trusted, tuple) else channel_stats(trusted)
    if mu_t.shape != mu_x.shape:
        raise ValueError(f"trusted statistics {tuple(mu_t.shape)} and x {tuple(x.shape)} disagree on H/D")
    if tau == 0.0:
        return x, False, TameStats(mu_x, sigma_x, mu_t, sigma_t, 0.0)

    x32 = x.float()
    adain = sigma_t * (x32 - mu_x) / sigma_x + mu_t
    out32 = (1.0 - tau) * x32 + tau * adain
    shift = ((out32 - x32).abs().mean() / x32.abs().mean().clamp_min(STD_FLOOR)).item()
    return out32.to(x.dtype), True, TameStats(mu_x, sigma_x, mu_t, sigma_t, shift)
