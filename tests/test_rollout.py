"""`tethercache.rollout`, the rollout run.py and the bench both make, is the pinned toy rollout:
it starts from the toy world's real first chunk and reproduces the pinned latents bitwise."""
import json

import numpy as np
import torch

from test_pinned_latents import N_FRAMES, POLICIES, PROMPT, REFERENCE, _backbone, _sha
from tethercache.cache import build_policy
from tethercache.rollout import rollout


def test_rollout_is_the_pinned_toy_rollout_from_the_real_start_chunk():
    torch.set_num_threads(1)
    bb = _backbone("toy")
    policy = build_policy(POLICIES["tether"])
    policy.validate(bb.chunk, N_FRAMES, bb.model.config.rope_max_positions)
    session, chunks = rollout(bb, policy, PROMPT, 7, horizon=N_FRAMES)
    with torch.no_grad():
        out = list(chunks)
    start = bb.start_latents(PROMPT, 7)
    assert start is not None and torch.equal(out[0], start)
    assert not torch.equal(out[1], out[0])                      # the rest is generated
    pinned = json.loads(REFERENCE.read_text())["toy"]["tether"]
    assert _sha(torch.cat(out, 2).numpy()) == pinned["latents_sha256"]
    assert _sha(np.stack(session.timeline["frames"])) == pinned["frames_sha256"]
