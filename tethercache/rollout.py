"""A backbone's video for one prompt and seed, as chunks: the session, the text, the camera path
and the start chunk (toy: the world's real first frames), then the sampler's loop. `run.py`
(runner.generate_sample) and experiments/bench_cache.py both roll out through `rollout`, so a
benchmark times exactly the rollout a run makes."""
from __future__ import annotations

from typing import Iterator

import torch

from .cache import CachePolicy, CacheSession
from .sampling import generate


def rollout(bb, policy: CachePolicy, prompt: str, seed: int, *, horizon: int, batch: int = 1,
            device=None, record: bool = True,
            progress: bool = False) -> tuple[CacheSession, Iterator[torch.Tensor]]:
    """(the session, an iterator of each chunk's clean latents [B, C, chunk, h, w]) for `horizon`
    latent frames of backbone `bb`; the first chunk is generated at the first `next`."""
    device = bb.model.device if device is None else device
    poses = bb.pose_fn(prompt, seed, horizon) if bb.pose_fn else None
    session = CacheSession.for_model(bb.model, policy, grid=bb.grid, horizon=horizon, batch=batch,
                                     poses=poses, record=record, device=device)
    text = bb.model.text_kv(bb.text_encoder.encode([prompt] * batch).to(device))
    chunks = generate(bb.model, text, session, n_frames=horizon, chunk=bb.chunk,
                      latent_shape=bb.latent_shape, seed=seed, sampler=bb.sampler, batch=batch,
                      progress=progress, device=device,
                      initial=bb.start_latents(prompt, seed, batch))
    return session, chunks
