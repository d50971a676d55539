"""Optional experiment tracking (`logger=wandb`, offline by default). `logger=none` is a no-op."""
from __future__ import annotations

import os
from pathlib import Path

from omegaconf import OmegaConf


class NoLogger:
    def log_sample(self, sample: dict, metrics) -> None: ...
    def finish(self, summary: dict) -> None: ...


class WandbLogger:
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


def build_logger(cfg, run_dir: Path):
    return WandbLogger(cfg, Path(run_dir)) if cfg.logger.name == "wandb" else NoLogger()
