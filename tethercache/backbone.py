"""Backbone = causal Wan + text encoder + codec + latent geometry + sampler, built from
`cfg.backbone`. Heavy pieces (real weights, UMT5, Wan VAE) load from local paths only."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from omegaconf import OmegaConf

from .errors import ConfigError
from .model.codec import Codec, PixelCodec
from .model.wan import CausalWan, WanConfig, config_from_dict
from .sampling import SamplerConfig
from .typed_fields import as_float, coerce_fields

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class World(Protocol):
    """The world a backbone's rollouts live in, known from (prompt, seed): camera poses to condition
    on, real frames to start from, the prompts it can show. The toy world's is `toyworld.WorldConfig`;
    a text-only backbone has none."""

    def check_prompt(self, prompt: str) -> str | None:
        """Why the world cannot show `prompt`, or None."""

    def poses(self, prompt: str, seed: int, n_frames: int) -> torch.Tensor:
        """The camera pose of each latent frame, in the model's RoPE units."""

    def real_frames(self, prompt: str, seed: int, n_frames: int) -> torch.Tensor:
        """float [1, n, 3, H, W] in [-1, 1]: the world's first frames."""


@dataclass(frozen=True)
class BackboneSpec:
    """`cfg.backbone` checked, without loading weights (`check_backbone`)."""
    model: WanConfig
    sampler: SamplerConfig
    world: World | None
    start_frames: int                # rollouts continue the world's first real frames (0: none)

    def check_prompts(self, prompts: list[tuple[int, str]]) -> None:
        """Every prompt is one the world can show (a backbone without a world takes any text)."""
        for i, prompt in prompts:
            problem = self.world.check_prompt(prompt) if self.world is not None else None
            if problem:
                raise ConfigError(f"prompts.texts[{i}]: {problem}")


@dataclass
class Backbone:
    name: str
    model: CausalWan
    text_encoder: object
    codec: Codec
    latent_shape: tuple[int, int, int]       # channels, height, width
    chunk: int
    sampler: SamplerConfig
    world: World | None = None       # where rollouts live (toy backbones); None: text-only
    start_frames: int = 0            # rollouts start from the world's first real frames

    @property
    def pose_fn(self) -> Callable[[str, int, int], torch.Tensor] | None:
        """(prompt, seed, n_frames) -> camera poses; None for a backbone without a world."""
        return self.world.poses if self.world is not None else None

    def start_latents(self, prompt: str, seed: int, batch: int = 1) -> torch.Tensor | None:
        """The world's first `start_frames` real frames as latents, else None."""
        if not self.start_frames:
            return None
        images = self.world.real_frames(prompt, seed, self.start_frames)
        return self.codec.encode(images).expand(batch, -1, -1, -1, -1)

    @property
    def tokens_per_frame(self) -> int:
        return self.model.tokens_per_frame(*self.latent_shape[1:])

    @property
    def grid(self) -> tuple[int, int]:
        """(h, w) tokens of one latent frame."""
        _, ph, pw = self.model.config.patch_size
        return self.latent_shape[1] // ph, self.latent_shape[2] // pw


def resolve_path(value) -> Path:
    """A local path; `pkg://tethercache/...` points inside the installed package (shipped weights)."""
    value = str(value)
    if value.startswith("pkg://"):
        import tethercache
        return Path(tethercache.__file__).parent.parent / value[len("pkg://"):]
    return Path(value).expanduser()


def _require_path(key: str, value) -> Path:
    if value in (None, "", "???"):
        raise ConfigError(f"{key}: required (a local path); nothing is downloaded at run time")
    path = resolve_path(value)
    if not path.exists():
        raise ConfigError(f"{key}={value}: path not found")
    return path


PREDICTIONS = ("flow", "x0")


def model_config(bcfg) -> WanConfig:
    try:
        cfg = config_from_dict(dict(bcfg.get("model") or {}))
    except TypeError as e:
        raise ConfigError(f"backbone.model: {e}") from None
    if cfg.prediction not in PREDICTIONS:
        raise ConfigError(f"backbone.model.prediction={cfg.prediction!r}: must be one of {PREDICTIONS}")
    return cfg


SECTIONS = {"text": True, "codec": True, "sampler": True, "model": False, "world": False}   # required?


def check_sections(bcfg) -> None:
    """`backbone.<section>` is a mapping (a scalar there is a typo, named before anything reads it)."""
    for key, required in SECTIONS.items():
        value = bcfg.get(key)
        if not OmegaConf.is_dict(value) and not isinstance(value, dict) and (required or value is not None):
            raise ConfigError(f"backbone.{key}={value!r}: must be a mapping of {key} fields "
                              f"(e.g. backbone.{key}.<field>=...)")


def check_backbone(bcfg) -> BackboneSpec:
    """Everything about `cfg.backbone` that can be checked without loading weights."""
    check_sections(bcfg)
    model = model_config(bcfg)
    if bcfg.get("weights") is not None:
        _require_path("backbone.weights", bcfg.get("weights"))
    elif bcfg.get("require_weights", False):
        _require_path("backbone.weights", None)
    for section, table in PARTS.items():
        kind = bcfg[section].kind
        if kind not in table:
            raise ConfigError(f"backbone.{section}.kind={kind!r}: must be one of {tuple(table)}")
        if table[kind].reads_path:
            _require_path(f"backbone.{section}.path", bcfg[section].get("path"))
    if bcfg.dtype not in DTYPES:
        raise ConfigError(f"backbone.dtype={bcfg.dtype!r}: must be one of {list(DTYPES)}")
    if bcfg.chunk < 1:
        raise ConfigError(f"backbone.chunk={bcfg.chunk}: must be >= 1")
    threads = bcfg.get("threads")
    if threads is not None and int(threads) < 1:
        raise ConfigError(f"backbone.threads={threads}: must be null (torch default) or >= 1")
    if int(bcfg.codec.get("view_scale", 1)) < 1:
        raise ConfigError(f"backbone.codec.view_scale={bcfg.codec.view_scale}: must be >= 1")
    world = backbone_world(bcfg)
    if bcfg.text.kind == "grammar" and world is None:
        raise ConfigError("backbone.text.kind=grammar: reads toy-world prompts, so only toy-world "
                          "backbones (poses: true) use it")
    start = int(bcfg.get("start_frames", 0))
    if start and (start % bcfg.chunk or world is None):
        raise ConfigError(f"backbone.start_frames={start}: must be 0 or a multiple of the chunk "
                          f"({bcfg.chunk}), and only toy-world backbones have real frames")
    sampler = sampler_config(bcfg)
    sampler.validate()
    return BackboneSpec(model, sampler, world, start)


def backbone_world(bcfg) -> World | None:
    """The world the backbone lives in: `poses: true` backbones live in the toy world of
    `backbone.world`, checked against the world their weights record; None for the others."""
    if not bcfg.get("poses", False):
        if bcfg.get("world"):
            raise ConfigError("backbone.world: only toy-world backbones (poses: true) live in a toy world")
        return None
    from .toyworld.plugin import toy_world
    weights = bcfg.get("weights")
    return toy_world(bcfg.get("world"), resolve_path(weights) if weights else None)


def sampler_config(bcfg) -> SamplerConfig:
    """SamplerConfig from `backbone.sampler`, typed from its fields so a typo is a named error."""
    s = coerce_fields(SamplerConfig, dict(bcfg.sampler), "backbone.sampler")
    if "steps" in s:
        s["steps"] = [as_float(f"backbone.sampler.steps[{i}]", x) for i, x in enumerate(s["steps"])]
    try:
        return SamplerConfig(**s)
    except TypeError as e:
        raise ConfigError(f"backbone.sampler: {e}") from None


@dataclass(frozen=True)
class Part:
    """A text encoder or codec by its `kind`: how to build it, and whether it reads `path`."""
    build: Callable         # (section cfg, text_dim, device, dtype) -> the part
    reads_path: bool = False


def _hash_text(tcfg, text_dim, device, dtype):
    from .model.hash_text import HashTextEncoder
    return HashTextEncoder(tcfg.dim, tcfg.get("tokens", 16))


def _grammar_text(tcfg, text_dim, device, dtype):
    from .toyworld.text import GrammarTextEncoder
    return GrammarTextEncoder(text_dim)


def _umt5_text(tcfg, text_dim, device, dtype):
    from .model.text import UMT5TextEncoder
    return UMT5TextEncoder(tcfg.path, dtype=dtype, device=device, max_length=tcfg.get("max_length", 512))


def _pixel_codec(ccfg, text_dim, device, dtype) -> Codec:
    return PixelCodec(ccfg.factor, ccfg.get("hold", 4), ccfg.get("fps", 16))


def _wan_vae_codec(ccfg, text_dim, device, dtype) -> Codec:
    from .model.vae import WanVAECodec
    return WanVAECodec(ccfg.path, device=device, dtype=dtype)


# backbone.<section>.kind -> Part: a new encoder or codec is one builder and one entry here
PARTS = {
    "text": {"hash": Part(_hash_text), "grammar": Part(_grammar_text),
             "umt5": Part(_umt5_text, reads_path=True)},
    "codec": {"pixel": Part(_pixel_codec), "wan_vae": Part(_wan_vae_codec, reads_path=True)},
}


def build_part(bcfg, section: str, text_dim: int, device, dtype):
    cfg = bcfg[section]
    return PARTS[section][cfg.kind].build(cfg, text_dim, device, dtype)


def build_backbone(bcfg, device: str = "cpu") -> Backbone:
    spec = check_backbone(bcfg)
    dtype = DTYPES[bcfg.dtype]
    torch.manual_seed(bcfg.get("init_seed", 0))
    model = CausalWan(spec.model)
    if bcfg.get("weights"):
        from .model.loading import load_wan_weights
        load_wan_weights(model, resolve_path(bcfg.weights), use_ema=bcfg.get("use_ema", True))
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    return Backbone(
        name=bcfg.name, model=model, latent_shape=tuple(bcfg.latent),
        text_encoder=build_part(bcfg, "text", model.config.text_dim, device, dtype),
        codec=build_part(bcfg, "codec", model.config.text_dim, device, dtype),
        chunk=bcfg.chunk, sampler=spec.sampler, world=spec.world, start_frames=spec.start_frames)
