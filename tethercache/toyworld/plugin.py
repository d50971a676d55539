"""The toy world as a backbone's world: `backbone.world` read into the `WorldConfig` that gives
rollouts their camera poses and real first frames and checks their prompts
(`tethercache.backbone.World`)."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import ConfigError
from .world import WorldConfig, world_config


def toy_world(fields, weights: Path | None = None) -> WorldConfig:
    """`backbone.world` (the fields that differ from the default world) as a WorldConfig. Toy weights
    record the world they were trained on; a rollout in another world (other sprite sizes, ...)
    would be scored against a world the model never saw, so it is refused."""
    world = world_config(fields)
    trained = trained_world(weights) if weights is not None else None
    if trained is not None and trained != world:
        raise ConfigError(f"backbone.world={world.describe()} but {weights} was trained on world "
                          f"{trained.describe()}: set backbone.world to match the weights")
    return world


def trained_world(weights: Path) -> WorldConfig | None:
    """The world toy weights record in their safetensors metadata; None when they record none."""
    try:
        from safetensors import safe_open
        with safe_open(str(weights), "pt") as f:
            recorded = (f.metadata() or {}).get("world")
    except Exception:                      # noqa: BLE001 - not safetensors: nothing recorded
        return None
    return None if recorded is None else world_config(json.loads(recorded), key=f"{weights} metadata world")
