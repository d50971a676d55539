"""Every check that needs no compute, run before anything is built or written.

`validate(cfg) -> Plan` raises ConfigError with one line naming the key and what is allowed.
Order: unknown keys -> required keys -> interpolations -> lists and mappings -> types and
ranges of the top-level keys and of horizon / prompts / logger -> backbone -> cache policy ->
prompts -> evaluator -> device -> sizes of the big allocations (sizes.py).
Allowed keys and list / mapping shapes are read from the config files (schema.py), so a new
option's keys are known without touching this file.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields
from pathlib import Path

import torch
from omegaconf import OmegaConf

from .cache import build_policy
from .errors import ConfigError
from .backbone import check_backbone, check_sections, model_config
from .schema import check_shapes, check_unknown_keys
from .sizes import check_sizes
from .typed_fields import as_int, as_str, coerce_fields

SEED_MAX = 2**31 - 1               # numpy / torch seeds of every sample must fit
THREADS_MAX = 1024                 # torch CPU threads
SAMPLES_MAX = 1000                 # sample seed = seed + 1000 * prompt + sample: no collisions
DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


@dataclass
class Plan:
    policy: object
    prompts: list[tuple[int, str]]     # (index in the whole suite, text): ids/seeds survive sharding
    horizon: int
    device: str


def _missing_keys(cfg, prefix: str = "") -> list[str]:
    """Mandatory (`???`) keys left unset, skipping interpolations that point at them."""
    out = []
    for key in cfg.keys():
        if OmegaConf.is_interpolation(cfg, key) or key == "hydra":
            continue
        if OmegaConf.is_missing(cfg, key):
            out.append(f"{prefix}{key}")
        elif OmegaConf.is_dict(cfg[key]):
            out += _missing_keys(cfg[key], f"{prefix}{key}.")
    return out


def _in_range(key: str, value: int, lo: int, hi: int | None = None) -> int:
    if value < lo or (hi is not None and value > hi):
        raise ConfigError(f"{key}={value}: must be in [{lo}, {hi}]" if hi is not None
                          else f"{key}={value}: must be >= {lo}")
    return value


@dataclass
class TopLevel:
    """conf/config.yaml's own scalar keys, typed like every dataclass-backed group (typed_fields)."""
    seed: int
    samples_per_prompt: int
    batch: int
    device: str
    progress: bool
    validate_only: bool
    resume: bool
    reuse_backbone: bool


@dataclass
class Horizon:
    name: str
    frames: int


def _typed(cls, node, prefix: str) -> dict:
    names = [f.name for f in fields(cls)]
    return coerce_fields(cls, {k: node[k] for k in names if k in node}, prefix)


def _top_level(cfg) -> None:
    top = _typed(TopLevel, cfg, "")
    _typed(Horizon, cfg.horizon, "horizon")
    _in_range("seed", top["seed"], 0, SEED_MAX)
    _in_range("samples_per_prompt", top["samples_per_prompt"], 1, SAMPLES_MAX - 1)
    # The codec streams and the record lists one video per generate() call: a batch > 1 would
    # silently drop videos, so it is refused (samples_per_prompt makes more videos).
    if top["batch"] != 1:
        raise ConfigError(f"batch={cfg.batch}: only 1 is supported (one video per sample); "
                          "use samples_per_prompt=N for more videos")
    if not DEVICE.match(top["device"]):
        raise ConfigError(f"device={cfg.device!r}: must be auto, cpu, mps, cuda or cuda:N")
    from .tracking import LOGGERS
    name = cfg.logger.name
    if name not in LOGGERS:
        raise ConfigError(f"logger.name={name!r}: must be one of {sorted(LOGGERS)}")
    LOGGERS[name].check(cfg.logger)


@dataclass
class BackboneNumbers:
    """Scalars of `backbone` that its own checks read with int() (a typo is a named error)."""
    chunk: int
    start_frames: int | None = None
    init_seed: int | None = None
    threads: int | None = None


@dataclass
class CodecNumbers:
    factor: int | None = None
    hold: int | None = None
    fps: int | None = None
    view_scale: int | None = None
    lossless: bool | None = None


def _at_least_one(typed: dict, prefix: str) -> None:
    for key, value in typed.items():
        if isinstance(value, int) and not isinstance(value, bool):
            _in_range(f"{prefix}.{key}", value, 1)


def _backbone_numbers(b) -> None:
    top = _typed(BackboneNumbers, b, "backbone")
    if top.get("init_seed") is not None:
        _in_range("backbone.init_seed", top["init_seed"], 0, SEED_MAX)
    if top.get("threads") is not None:
        _in_range("backbone.threads", top["threads"], 1, THREADS_MAX)
    _at_least_one(_typed(CodecNumbers, b.codec, "backbone.codec"), "backbone.codec")
    size = (b.get("model") or {}).get("size")
    if size is not None:
        from .model.wan import SIZES
        if size not in SIZES:
            raise ConfigError(f"backbone.model.size={size!r}: must be one of {sorted(SIZES)}")
    _model_numbers(b)
    latent = list(b.latent) if OmegaConf.is_list(b.get("latent")) else None
    if not latent or len(latent) != 3:
        raise ConfigError(f"backbone.latent={b.get('latent')!r}: must be [channels, height, width]")
    for i, v in enumerate(latent):
        _in_range(f"backbone.latent[{i}]", as_int(f"backbone.latent[{i}]", v), 1)


def _model_numbers(b) -> None:
    """`backbone.model` fields typed from WanConfig; sizes and counts are >= 1."""
    from .model.wan import WanConfig
    model = dict(b.get("model") or {})
    typed = coerce_fields(WanConfig, model, "backbone.model")
    _at_least_one(typed, "backbone.model")
    if "heads" in typed or "dim" in typed:
        mcfg = model_config(b)
        if mcfg.dim % mcfg.heads:
            raise ConfigError(f"backbone.model.heads={mcfg.heads}: must divide backbone.model.dim "
                              f"= {mcfg.dim}")


def load_prompts(pcfg) -> list[tuple[int, str]]:
    """(suite index, text) of this shard's prompts: prompt i belongs to shard i % num_shards."""
    texts = list(pcfg.get("texts") or [])
    if pcfg.get("file") not in (None, ""):
        if pcfg.file == "???":
            raise ConfigError("prompts.file: required (a text file, one prompt per line)")
        path = Path(str(pcfg.file)).expanduser()
        if not path.is_file():
            raise ConfigError(f"prompts.file={pcfg.file}: file not found")
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"prompts.file={pcfg.file}: not a readable text file "
                              f"({type(e).__name__})") from None
        texts += [line.strip() for line in lines if line.strip()]
    for i, t in enumerate(texts):
        if not isinstance(t, str) or not t.strip():
            raise ConfigError(f"prompts.texts[{i}]={t!r}: must be a non-empty string")
    if pcfg.get("limit") is not None:
        texts = texts[: _in_range("prompts.limit", as_int("prompts.limit", pcfg.limit), 1)]
    if not texts:
        raise ConfigError("prompts: no prompts (set prompts.texts or prompts.file)")
    n = _in_range("prompts.num_shards", as_int("prompts.num_shards", pcfg.get("num_shards", 1)), 1,
                  len(texts))
    shard = _in_range("prompts.shard", as_int("prompts.shard", pcfg.get("shard", 0)), 0, n - 1)
    return [(i, t) for i, t in enumerate(texts) if i % n == shard]


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device={name}: CUDA is not available on this machine")
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device={name}: this machine has {torch.cuda.device_count()} GPUs")
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("device=mps: MPS is not available on this machine")
    return name


def validate(cfg) -> Plan:
    """All checks that need no compute, before anything is built."""
    check_unknown_keys(cfg)
    missing = _missing_keys(cfg)
    if missing:
        raise ConfigError(f"{', '.join(missing)}: required, not set "
                          f"(e.g. python run.py {missing[0]}=...)")
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except Exception as e:  # interpolation errors
        key = getattr(e, "full_key", None) or "config"
        raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None
    check_shapes(cfg)
    _top_level(cfg)
    check_sections(cfg.backbone)
    _backbone_numbers(cfg.backbone)
    backbone = check_backbone(cfg.backbone)
    chunk, horizon = int(cfg.backbone.chunk), int(cfg.horizon.frames)
    if horizon <= 0 or horizon % chunk:
        raise ConfigError(f"horizon.frames={horizon}: must be a positive multiple of the chunk "
                          f"({chunk} latent frames)")
    policy = build_policy(OmegaConf.to_container(cfg.cache, resolve=True))
    mcfg = model_config(cfg.backbone)
    _, ph, pw = mcfg.patch_size
    policy.validate(chunk, horizon, mcfg.rope_max_positions,
                    (int(cfg.backbone.latent[1]) // ph) * (int(cfg.backbone.latent[2]) // pw))
    prompts = load_prompts(cfg.prompts)
    backbone.check_prompts(prompts)                    # e.g. toy prompts must parse before compute
    if policy.needs_poses and backbone.world is None:
        raise ConfigError(f"cache.name={policy.name}: needs camera poses, i.e. a toy-world "
                          f"backbone (backbone={cfg.backbone.name})")
    from .eval.registry import check_evaluator
    check_evaluator(cfg)
    as_str("backbone.name", cfg.backbone.name)
    device = resolve_device(cfg.device)
    check_sizes(cfg, policy, mcfg, horizon, device)
    return Plan(policy, prompts, horizon, device)
