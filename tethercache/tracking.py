"""Optional experiment tracking (`logger=wandb`, offline by default). `logger=none` is a no-op.

Loggers are chosen by `logger.name` from LOGGERS. A new one is a class with `check(cfg.logger)`
(its keys, before compute), `__init__(cfg, run_dir)`, `log_sample(sample, metrics)` and
`finish(summary)`: one entry here and one conf/logger/<name>.yaml.
"""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf

from .errors import ConfigError


class NoLogger:
    def __init__(self, cfg=None, run_dir: Path | None = None) -> None: ...
    @staticmethod
    def check(lc) -> None: ...
    def log_sample(self, sample: dict, metrics) -> None: ...
    def finish(self, summary: dict) -> None: ...


class WandbLogger:
    MODES = ("offline", "online", "disabled")

    @staticmethod
    def check(lc) -> None:
        """The keys of `logger=wandb`, before compute (ConfigError naming the key)."""
        if lc.get("mode") not in WandbLogger.MODES:
            raise ConfigError(f"logger.mode={lc.get('mode')!r}: must be one of {list(WandbLogger.MODES)}")

    def __init__(self, cfg, run_dir: Path):
        import wandb
        lc = cfg.logger
        os.environ.setdefault("WANDB_START_METHOD", "thread")   # Hydra multirun safety
        group = lc.get("group") or run_dir.parent.name
        self.wandb = wandb
        self.run = wandb.init(
            project=lc.project, mode=lc.mode, dir=str(run_dir), group=group,
            name=run_dir.name, tags=list(lc.get("tags") or []), reinit="finish_previous",
            config=OmegaConf.to_container(cfg, resolve=True))

    def log_sample(self, sample: dict, metrics) -> None:
        for i, s in enumerate(sample["chunk_seconds"]):
            self.run.log({f"{sample['id']}/chunk_seconds": s, "chunk": i})
        if metrics:
            self.run.log({f"{sample['id']}/{k}": v for k, v in metrics.items()
                          if isinstance(v, (int, float))})

    def finish(self, summary: dict) -> None:
        flat = {k: v for k, v in summary.get("summary", {}).items() if isinstance(v, (int, float))}
        self.run.summary.update(flat)
        self.run.finish()


LOGGERS = {"none": NoLogger, "wandb": WandbLogger}


def build_logger(cfg, run_dir: Path):
    return LOGGERS[cfg.logger.name](cfg, Path(run_dir))
