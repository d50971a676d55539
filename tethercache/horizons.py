"""The standard horizons: name -> latent frames, read once from conf/horizon/*.yaml.

Those files are Hydra's `horizon` config group (what `horizon=240s` composes), so they are the
one definition; the toy evaluator's prefixes and analysis read this table instead of keeping a
copy. A new conf/horizon/<name>.yaml is a valid prefix with nothing else to edit.
"""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

HORIZON_DIR = Path(__file__).resolve().parents[1] / "conf" / "horizon"


def _read(directory: Path) -> dict[str, int]:
    """{name: frames} of every <name>.yaml, shortest first; a file whose `name` is not its stem
    or whose `frames` is not a positive int is refused (Hydra would compose it under its stem)."""
    out = {}
    for path in sorted(directory.glob("*.yaml")):
        cfg = OmegaConf.load(path)
        frames = cfg.get("frames")
        positive_int = isinstance(frames, int) and not isinstance(frames, bool) and frames > 0
        if cfg.get("name") != path.stem or not positive_int:
            raise ValueError(f"{path}: needs name: {path.stem} and frames: a positive int")
        out[path.stem] = frames
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


HORIZON_FRAMES: dict[str, int] = _read(HORIZON_DIR)
