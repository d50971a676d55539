import contextlib
import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
torch.set_num_threads(1)     # tiny models: one thread is fastest and immune to oversubscription


def perturbed_tiny(seed: int = 0, **overrides):
    """A tiny CausalWan whose parameters are all non-trivial (no zero-init shortcuts)."""
    from tethercache.model.wan import CausalWan, SIZES, WanConfig
    torch.manual_seed(seed)
    cfg = WanConfig(**{**SIZES["tiny"].__dict__, **overrides})
    model = CausalWan(cfg).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.fixture
def tiny_model():
    return perturbed_tiny()


def run_cli(args, cwd=ROOT, env=None, timeout=300):
    import subprocess
    e = {**os.environ, "HYDRA_FULL_ERROR": "0", **(env or {})}
    return subprocess.run([sys.executable, "run.py", *args], cwd=cwd, env=e, timeout=timeout,
                          capture_output=True, text=True)


def drive_attends(session, frame_ids, qkv, passes: int = 2, before_commit=None):
    """One chunk through `session.drive_chunk` with synthetic tensors: `passes` denoising passes,
    then the clean commit pass, every layer attending. `qkv(p)` gives pass p's (q, k, v) per
    layer (p == passes: the commit pass). Returns (the commit pass's Attend per layer,
    before_commit(session) taken after the denoising passes, or None)."""
    def attend_all(p):
        return [session.attend(layer, *t) for layer, t in enumerate(qkv(p))]

    def denoise():
        for p in range(passes):
            attend_all(p)
        return before_commit(session) if before_commit else None

    snap, out = session.drive_chunk(frame_ids, denoise, lambda _: attend_all(passes))
    return out, snap


@pytest.fixture
def tiny_rollout():
    """A function: (model, policy, n frames, text) -> (latents [B, C, n, 8, 8], session), the
    model's session (4 x 4 tokens per frame) built for the policy (a config dict is built and
    validated) and every chunk of 3 driven by the sampler; other keywords go to `generate`."""
    from tethercache.cache import CacheSession, build_policy
    from tethercache.sampling import SamplerConfig, generate

    def roll(model, policy, n, text, *, sampler=None, seed=0, record=True, state_frames=0, **kw):
        if isinstance(policy, dict):
            policy = build_policy(policy)
            policy.validate(3, n, model.config.rope_max_positions)
        s = CacheSession.for_model(model, policy, grid=(4, 4), horizon=n, record=record,
                                   state_frames=state_frames)
        with torch.no_grad():
            out = list(generate(model, text, s, n_frames=n, chunk=3, latent_shape=(12, 8, 8),
                                seed=seed, sampler=sampler or SamplerConfig(), progress=False,
                                state_frames=state_frames, **kw))
        return torch.cat(out, 2), s
    return roll


@contextlib.contextmanager
def added_region(name, color):
    """The cache's region table with one more region (its code is yielded), restored afterwards,
    so a test's region never leaks into another test."""
    from tethercache.cache import REGION_NAMES, REGIONS, add_region
    regions, names = list(REGIONS), dict(REGION_NAMES)
    try:
        yield add_region(name, color)
    finally:
        REGIONS[:] = regions
        REGION_NAMES.clear()
        REGION_NAMES.update(names)
