"""The run's big allocations, sized from the config before anything is allocated.

`check_sizes(cfg, policy, mcfg, device)` raises ConfigError naming the key that makes an
allocation larger than the device's memory (the model's weights, the KV cache, one chunk's
activations, one chunk's decoded frames, the text embedding), instead of an allocator error
after the run dir was taken over. The byte counts are lower bounds: a config that passes may
still not fit, but one that fails can never run.
"""
from __future__ import annotations

import dataclasses
import os

import torch

from .errors import ConfigError

ITEMSIZE = {"float32": 4, "bfloat16": 2, "float16": 2}
GB = 1e9


def device_bytes(device: str) -> int:
    """Memory of `device`: the GPU's own, else the machine's physical memory."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_properties(int(device.partition(":")[2] or 0)).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _fits(key: str, value, nbytes: float, what: str, limit: int) -> None:
    if nbytes > limit:
        raise ConfigError(f"{key}={value}: {what} would need {nbytes / GB:.3g} GB, more than the "
                          f"{limit / GB:.3g} GB of this device")


def _largest(values: dict, base: dict) -> str:
    """The key whose value is furthest above its usual size (the one to lower)."""
    return max(values, key=lambda k: values[k] / max(base.get(k) or 1, 1))


def _model(cfg, mcfg, itemsize: int, limit: int) -> None:
    from .model.wan import SIZES, WanConfig
    base = dataclasses.asdict(SIZES.get((cfg.backbone.get("model") or {}).get("size"), WanConfig()))
    d, f = mcfg.dim, mcfg.ffn_dim
    params = mcfg.layers * (8 * d * d + 2 * d * f) + mcfg.text_dim * d + 8 * d * d
    sized = {k: getattr(mcfg, k) for k in ("dim", "ffn_dim", "layers", "text_dim")}
    key = _largest(sized, base)
    _fits(f"backbone.model.{key}", sized[key], params * itemsize, "the model's weights", limit)


def _budget_key(policy) -> tuple[str, object]:
    """The policy's budget field (`budget`, `budget_tokens`, ...), else the horizon sizes it."""
    for field in dataclasses.fields(policy):
        if field.name.startswith("budget"):
            return f"cache.{field.name}", getattr(policy, field.name)
    return "horizon.frames", None


def check_sizes(cfg, policy, mcfg, horizon: int, device: str) -> None:
    limit = device_bytes(device)
    itemsize = ITEMSIZE.get(str(cfg.backbone.dtype), 4)
    b = cfg.backbone
    _model(cfg, mcfg, itemsize, limit)
    channels, height, width = (int(v) for v in b.latent)
    _, ph, pw = mcfg.patch_size
    tokens_per_frame = max(height // ph, 1) * max(width // pw, 1)
    chunk = int(b.chunk)
    activations = chunk * tokens_per_frame * max(mcfg.dim, mcfg.ffn_dim) * 4
    _fits("backbone.latent", list(b.latent), max(activations, chunk * channels * height * width * 4),
          "one chunk's activations", limit)
    key, value = _budget_key(policy)
    capacity = policy.capacity(horizon, tokens_per_frame)
    kv = mcfg.layers * capacity * (2 * int(cfg.batch) * mcfg.dim * itemsize + 25)
    _fits(key, value if value is not None else horizon, kv, "the KV cache", limit)
    codec = {k: int(b.codec[k]) for k in ("factor", "view_scale", "hold") if b.codec.get(k)}
    scale = codec.get("factor", 1) * codec.get("view_scale", 1)
    frames = chunk * codec.get("hold", 1) * 3 * height * width * scale * scale * 4
    if codec:
        key = _largest(codec, {"factor": 8, "view_scale": 8, "hold": 4})
        _fits(f"backbone.codec.{key}", codec[key], frames, "one chunk's decoded frames", limit)
    text = {k: int(b.text[k]) for k in ("dim", "tokens") if b.text.get(k)}
    if len(text) == 2:
        key = _largest(text, {"dim": 4096, "tokens": 512})
        _fits(f"backbone.text.{key}", text[key], text["dim"] * text["tokens"] * 4,
              "the text embedding", limit)
