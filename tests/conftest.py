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
