"""Frame-level policies are pinned bitwise to the outputs of the code before the token-granular
cache seam. tests/data/pinned_latents.json was written ONCE from commit 7fc4f0c by
`python tests/test_pinned_latents.py` and must never be regenerated: a mismatch means a change
of behaviour, not a stale reference. The toy cases run the weights of that time (toy world v1,
kept as tethercache/toyworld/weights/toy_wan_v1.safetensors, and its sampler: 1 restart), so shipping
new toy weights or sampler defaults leaves the pins valid.

Budgets are small so a 10-chunk rollout reaches steady state: eviction, GRAB admissions and
rejections, TAME edits and oracle recall all happen (asserted below from the timelines).
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "tests" / "data" / "pinned_latents.json"
PROMPT = "forest scene, hilly bands, red disk and white square, medium camera"
N_FRAMES = 30                       # 10 chunks of 3

TETHER = {"name": "tether", "budget": 12, "sink": 2, "recent": 4}       # memory 6
POLICIES = {
    "window": {"name": "window", "budget": 9},
    "window_relative": {"name": "window", "budget": 9, "rope": "relative"},
    "sink": {"name": "sink", "budget": 9, "sink": 2},
    "full": {"name": "full"},
    "tether": TETHER,
    "tether_code": {**TETHER, "tau": 0.35},
    "tether_no_grab": {**TETHER, "grab": False},
    "tether_no_tame": {**TETHER, "tame": False},
    "tether_shared": {**TETHER, "scope": "shared"},
    "tether_absolute": {**TETHER, "rope": "absolute"},
    "fifo_relative": {**TETHER, "grab": False, "tame": False},
    "oracle": {"name": "oracle", "budget": 12, "sink": 2, "recent": 4},
}


def _sha(x) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def _backbone(kind: str):
    from omegaconf import OmegaConf
    bcfg = OmegaConf.load(ROOT / "conf" / "backbone" / f"{kind}.yaml")
    if kind == "toy":        # the toy weights, world and sampler the pins were written with
        bcfg.weights, bcfg.world = str(ROOT / "tethercache" / "toyworld" / "weights" / "toy_wan_v1.safetensors"), {}
        bcfg.sampler.restarts = 1
    try:
        from tethercache.backbone import build_backbone
    except ImportError:                                  # revisions before the token-granular seam
        from tethercache.model.backbone import build_backbone
    bb = build_backbone(bcfg)
    if kind == "tiny":       # random init has zero-initialised layers: perturb every parameter
        torch.manual_seed(0)
        with torch.no_grad():
            for p in bb.model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
    return bb


def _poses(kind, bb):
    if bb.pose_fn is not None:
        return bb.pose_fn(PROMPT, 0, N_FRAMES)
    phase = torch.arange(N_FRAMES) % 12                 # tiny: a camera panning back and forth
    return torch.where(phase <= 6, phase, 12 - phase).float()


def rollout(kind: str, policy_cfg: dict, bb) -> dict:
    """Latents and timeline digest of one short rollout."""
    from tethercache.cache import CacheSession, build_policy
    from tethercache.sampling import generate
    torch.set_num_threads(1)
    policy = build_policy(policy_cfg)
    c = bb.model.config
    policy.validate(bb.chunk, N_FRAMES, c.rope_max_positions)
    poses = _poses(kind, bb)
    session = CacheSession(policy, layers=c.layers, horizon=N_FRAMES, grid=bb.grid, heads=c.heads,
                           head_dim=c.head_dim, rope_max=c.rope_max_positions, poses=poses)
    text = bb.model.text_kv(bb.text_encoder.encode([PROMPT]))
    with torch.no_grad():
        latents = torch.cat(list(generate(
            bb.model, text, session, n_frames=N_FRAMES, chunk=bb.chunk, latent_shape=bb.latent_shape,
            seed=7, sampler=bb.sampler, progress=False,
            initial=bb.start_latents(PROMPT, 7))), 2)
    tl = session.timeline
    x = latents.numpy()
    return {"latents_sha256": _sha(x), "latents_sum": float(x.astype(np.float64).sum()),
            "frames_sha256": _sha(np.stack(tl["frames"])),
            "regions_sha256": _sha(np.stack(tl["regions"])),
            "stats_sha256": hashlib.sha256(json.dumps(tl["stats"]).encode()).hexdigest(),
            "exercised": _exercised(tl["stats"])}


def _exercised(stats: list[dict]) -> dict:
    """What the rollout exercised: GRAB admissions / rejections, TAME edits, oracle recall."""
    n = lambda key: sum(len(x) for st in stats for x in st.get(key, []))   # noqa: E731
    return {"admitted": n("admitted"), "rejected": n("rejected"), "tame_edits": n("tame_shift_k"),
            "memory": n("memory")}


CASES = [(kind, name) for kind in ("tiny", "toy") for name in POLICIES]


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def backbones():
    return {}


@pytest.mark.parametrize("kind,name", CASES)
def test_frame_policies_are_bitwise_pinned(kind, name, reference, backbones):
    if kind not in backbones:
        backbones[kind] = _backbone(kind)
    got, ref = rollout(kind, POLICIES[name], backbones[kind]), reference[kind][name]
    assert got["exercised"] == ref["exercised"]
    for key in ("frames_sha256", "regions_sha256", "latents_sha256"):
        assert got[key] == ref[key], f"{kind}/{name}: {key} changed (sum {got['latents_sum']!r} " \
                                     f"vs pinned {ref['latents_sum']!r})"


def test_the_pinned_rollouts_exercise_eviction_grab_and_tame(reference):
    for kind in ("tiny", "toy"):
        ex = reference[kind]
        for name in ("tether", "tether_code", "tether_no_tame", "tether_shared", "tether_absolute"):
            assert ex[name]["exercised"]["admitted"] > 0 and ex[name]["exercised"]["rejected"] > 0
        assert ex["tether"]["exercised"]["tame_edits"] > 0
        assert ex["tether_no_tame"]["exercised"]["tame_edits"] == 0
        assert ex["oracle"]["exercised"]["memory"] > 0


if __name__ == "__main__":
    if REFERENCE.exists():
        sys.exit(f"{REFERENCE} exists: the pinned reference is never regenerated")
    out = {}
    for kind in ("tiny", "toy"):
        bb = _backbone(kind)
        out[kind] = {name: rollout(kind, cfg, bb) for name, cfg in POLICIES.items()}
        print(kind, {k: v["exercised"] for k, v in out[kind].items()})
    REFERENCE.write_text(json.dumps(out, indent=1))
