"""GRAB / TAME against the official release's unit cases, plus hand-checkable properties.

`data/grab_tame_units.pt` holds seeded inputs and the outputs that my4f175/TetherCache @37c581a
computes for them (CPU, float32). Tolerances are float32-level: the only numeric difference
from the release is the mean-of-means logit (summation order), observed error <= 1.5e-6.
"""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from tethercache.cache.grab import GrabScores, frame_relevance, grab, temporal_diversity
from tethercache.cache.tame import STD_FLOOR, tame, validate_tau

UNITS = torch.load(Path(__file__).parent / "data" / "grab_tame_units.pt", weights_only=True)
GRAB_CASES = UNITS["grab_cases"] + UNITS["grab_extra_cases"]
TAME_CASES = UNITS["adain_cases"] + UNITS["adain_extra_cases"]
TOL = dict(atol=1e-5, rtol=1e-5)


def run_case(case: dict) -> GrabScores:
    return grab(case["q_chunk"], case["candidate_k"], case["candidate_frame_indices"],
                memory_size=case["memory_size"], alpha=case["alpha"],
                temperature=case["temperature"], tokens_per_frame=case["frame_seqlen"])


# ---------------------------------------------------------------- reference cases (release)

def test_reference_file_is_complete() -> None:
    assert UNITS["source_rev"] == "37c581a"
    assert (len(UNITS["grab_cases"]), len(UNITS["grab_extra_cases"])) == (20, 4)
    assert (len(UNITS["adain_cases"]), len(UNITS["adain_extra_cases"])) == (20, 2)


@pytest.mark.parametrize("case", GRAB_CASES, ids=[c["tag"] for c in GRAB_CASES])
def test_grab_matches_release(case: dict) -> None:
    result = run_case(case)
    assert torch.equal(result.keep, case["keep"])
    assert int(result.keep.sum()) == min(case["memory_size"], case["n_cand"])
    torch.testing.assert_close(result.relevance, case["attention_mass"], **TOL)
    torch.testing.assert_close(result.diversity, case["temporal_diversity"], **TOL)
    torch.testing.assert_close(result.score, case["scores"], **TOL)


@pytest.mark.parametrize("case", TAME_CASES, ids=[c["tag"] for c in TAME_CASES])
def test_tame_matches_release(case: dict) -> None:
    out, edited, stats = tame(case["x"], case["trusted"], case["tau"])
    assert edited == case["edited"]
    assert out.dtype == case["x"].dtype
    torch.testing.assert_close(out, case["out"], **TOL)
    torch.testing.assert_close(stats.mu_x, case["mu_x"], **TOL)
    torch.testing.assert_close(stats.sigma_x, case["sigma_x"], **TOL)
    if case["trusted"] is None:
        assert stats.mu_t is None and stats.sigma_t is None
    else:
        torch.testing.assert_close(stats.mu_t, case["mu_t"], **TOL)
        torch.testing.assert_close(stats.sigma_t, case["sigma_t"], **TOL)


# ---------------------------------------------------------------- GRAB properties

def direct_relevance(q: torch.Tensor, cand_k: torch.Tensor, n: int, temperature: float) -> torch.Tensor:
    """The release's formulation: materialise every q.k logit, then average (float64 here)."""
    B, Lk, H, D = cand_k.shape
    logits = torch.einsum("bihd,bjhd->bhij", q.double(), cand_k.double()) / math.sqrt(D)
    per_frame = logits.reshape(B, H, q.shape[1], n, Lk // n).mean(dim=(1, 2, 4))  # [B, n]
    return torch.softmax(per_frame / temperature, dim=-1)


@pytest.mark.parametrize("B,Lq,H,D,n,T,temperature",
                         [(1, 12, 2, 8, 5, 4, 1.0), (2, 30, 3, 16, 7, 6, 0.5), (3, 7, 1, 4, 2, 9, 2.0)])
def test_mean_of_means_equals_full_logits(B, Lq, H, D, n, T, temperature) -> None:
    gen = torch.Generator().manual_seed(B * 100 + n)
    q = torch.randn(B, Lq, H, D, generator=gen) * 2 + 0.5   # non-zero mean: means matter
    k = torch.randn(B, n * T, H, D, generator=gen) * 2 - 0.3
    ours = frame_relevance(q, k, n, temperature)
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours.double(), direct_relevance(q, k, n, temperature),
                               atol=1e-6, rtol=1e-5)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any aten op produces."""

    def __init__(self) -> None:
        super().__init__()
        self.max_numel = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.max_numel = max(self.max_numel, t.numel())
        return out


def test_grab_never_builds_query_key_tensor() -> None:
    B, Lq, H, D, n, T = 1, 96, 2, 4, 6, 16
    q, k = torch.randn(B, Lq, H, D), torch.randn(B, n * T, H, D)
    with LargestTensor() as probe:
        grab(q, k, torch.arange(n) * 2, memory_size=3, alpha=0.35, temperature=1.0,
             tokens_per_frame=T)
    assert probe.max_numel <= max(q.numel(), k.numel())  # a q.k tensor would be B*H*Lq*n*T


def test_hand_computed_three_candidates() -> None:
    # One head, D = 1, one token each: logit_f = q * k_f. Keys 0, ln2, ln4 -> softmax 1:2:4.
    q = torch.ones(1, 1, 1, 1)
    k = torch.tensor([0.0, math.log(2), math.log(4)]).reshape(1, 3, 1, 1)
    frames = torch.tensor([0, 9, 10])
    # extent = 11 -> sigma = 5.5; pairwise gaps 9 (0-1), 10 (0-2), 1 (1-2).
    a, b, c = 1 / 7, 2 / 7, 4 / 7
    s01, s02, s12 = math.exp(-9 / 5.5), math.exp(-10 / 5.5), math.exp(-1 / 5.5)
    rel = [a, b, c]
    div = [1 - max(s01 * b, s02 * c), 1 - max(s01 * a, s12 * c), 1 - max(s02 * a, s12 * b)]
    score = [r + 1.0 * d for r, d in zip(rel, div)]

    out = grab(q, k, frames, memory_size=2, alpha=1.0, temperature=1.0, tokens_per_frame=1)
    torch.testing.assert_close(out.relevance, torch.tensor([rel]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.diversity, torch.tensor([div]), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.score, torch.tensor(score), atol=1e-6, rtol=0)
    # Frame 9 is more relevant than frame 0 but sits next to frame 10's mass (div ~0.52 vs
    # ~0.91): diversity hands the slot to the lone frame 0 (relevance alone keeps {9, 10}).
    assert out.keep.tolist() == [True, False, True]
    assert out.kept_indices.tolist() == [0, 2] and out.dropped_indices.tolist() == [1]
    assert out.ranking.tolist() == [2, 0, 1]

    relevance_only = grab(q, k, frames, memory_size=2, alpha=0.0, temperature=1.0,
                          tokens_per_frame=1)
    assert relevance_only.keep.tolist() == [False, True, True]

    # Temperature 0.5 doubles the logits: softmax 1:4:16.
    sharp = grab(q, k, frames, memory_size=2, alpha=0.0, temperature=0.5, tokens_per_frame=1)
    torch.testing.assert_close(sharp.relevance, torch.tensor([[1 / 21, 4 / 21, 16 / 21]]),
                               atol=1e-6, rtol=0)


def test_alpha_zero_is_relevance_top_m() -> None:
    gen = torch.Generator().manual_seed(7)
    B, n, T, M = 2, 11, 5, 6
    q, k = torch.randn(B, 15, 3, 8, generator=gen), torch.randn(B, n * T, 3, 8, generator=gen)
    frames = torch.sort(torch.randperm(60, generator=gen)[:n]).values
    out = grab(q, k, frames, memory_size=M, alpha=0.0, temperature=1.0, tokens_per_frame=T)
    torch.testing.assert_close(out.score, out.relevance.mean(0))
    expected = torch.zeros(n, dtype=torch.bool)
    expected[torch.topk(out.relevance.mean(0), M).indices] = True
    assert torch.equal(out.keep, expected)


def test_keep_all_when_candidates_fit() -> None:
    q, k = torch.randn(1, 6, 2, 4), torch.randn(1, 4 * 3, 2, 4)
    for memory_size in (4, 10):
        out = grab(q, k, torch.tensor([2, 5, 6, 9]), memory_size=memory_size, alpha=0.35,
                   temperature=1.0, tokens_per_frame=3)
        assert out.keep.all() and torch.equal(out.score, torch.zeros(4))
        torch.testing.assert_close(out.relevance.sum(-1), torch.ones(1))  # still reported


def test_single_candidate_is_fully_diverse() -> None:
    div = temporal_diversity(torch.ones(1, 1), torch.tensor([5]))
    assert div.tolist() == [[1.0]]


def test_grab_rejects_bad_inputs() -> None:
    q, k = torch.randn(1, 6, 2, 4), torch.randn(1, 12, 2, 4)
    with pytest.raises(ValueError):
        grab(q, k, torch.arange(5), memory_size=2, alpha=0.35, temperature=1.0, tokens_per_frame=3)
    with pytest.raises(ValueError):
        grab(q, k, torch.arange(4), memory_size=2, alpha=0.35, temperature=0.0, tokens_per_frame=3)


def test_grab_accepts_bf16_and_scores_in_float32() -> None:
    gen = torch.Generator().manual_seed(3)
    q, k = torch.randn(1, 9, 2, 8, generator=gen), torch.randn(1, 7 * 3, 2, 8, generator=gen)
    frames = torch.arange(7) * 3
    ref = grab(q, k, frames, memory_size=4, alpha=0.35, temperature=1.0, tokens_per_frame=3)
    low = grab(q.bfloat16(), k.bfloat16(), frames, memory_size=4, alpha=0.35, temperature=1.0,
               tokens_per_frame=3)
    assert low.relevance.dtype == torch.float32
    torch.testing.assert_close(low.relevance, ref.relevance, atol=2e-2, rtol=2e-2)


# ---------------------------------------------------------------- TAME properties

def random_pair(seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 16, 3, 8, generator=gen) * 0.5 + 1.0
    trusted = torch.randn(2, 40, 3, 8, generator=gen) * 2.0 - 3.0
    return x.to(dtype), trusted.to(dtype)


def test_tau_zero_is_identity() -> None:
    x, trusted = random_pair(0)
    out, edited, stats = tame(x, trusted, 0.0)
    assert out is x and not edited and stats.shift == 0.0


def test_tau_one_is_adain_with_trusted_statistics() -> None:
    x, trusted = random_pair(1)
    out, edited, stats = tame(x, trusted, 1.0)
    assert edited and stats.shift > 0
    mu_x, sd_x = x.mean((0, 1)), x.std((0, 1), correction=0)
    mu_t, sd_t = trusted.mean((0, 1)), trusted.std((0, 1), correction=0)
    torch.testing.assert_close(out, sd_t * (x - mu_x) / sd_x + mu_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.mean((0, 1)), mu_t, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.std((0, 1), correction=0), sd_t, atol=1e-5, rtol=1e-5)


def test_partial_tau_interpolates() -> None:
    x, trusted = random_pair(2)
    full, _, _ = tame(x, trusted, 1.0)
    part, edited, _ = tame(x, trusted, 0.35)
    assert edited
    torch.testing.assert_close(part, 0.65 * x + 0.35 * full, atol=1e-5, rtol=1e-5)


def test_constant_channel_does_not_produce_nan() -> None:
    x, trusted = random_pair(3)
    x[:, :, 1, 2] = 0.75
    out, edited, stats = tame(x, trusted, 0.6)
    assert edited and torch.isfinite(out).all()
    assert stats.sigma_x[1, 2] == pytest.approx(STD_FLOOR)
    # x - mu_x is exactly 0 there, so the channel moves to (1 - tau) * c + tau * mu_t.
    expected = 0.4 * 0.75 + 0.6 * stats.mu_t[1, 2]
    torch.testing.assert_close(out[:, :, 1, 2], expected.expand(2, 16), atol=1e-6, rtol=0)


def test_no_trusted_pool_leaves_x_alone() -> None:
    x, _ = random_pair(4)
    out, edited, stats = tame(x, None, 0.6)
    assert out is x and not edited and stats.mu_t is None


def test_bf16_round_trip_keeps_dtype() -> None:
    x, trusted = random_pair(5, torch.bfloat16)
    out, edited, _ = tame(x, trusted, 0.35)
    ref, _, _ = tame(x.float(), trusted.float(), 0.35)
    assert edited and out.dtype == torch.bfloat16
    assert torch.equal(out, ref.bfloat16())  # same float32 math, one cast at the end


@pytest.mark.parametrize("tau", [-0.1, 1.5, float("nan")])
def test_tau_out_of_range_is_rejected(tau: float) -> None:
    with pytest.raises(ValueError):
        validate_tau(tau)
    x, trusted = random_pair(6)
    with pytest.raises(ValueError):
        tame(x, trusted, tau)
