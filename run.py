"""Hydra entry point: compose -> validate -> build -> generate -> evaluate -> record.

    python run.py                                   # toy world default
    python run.py cache=sink horizon=240s
    python run.py -m cache=window,sink seed=0,1     # multirun sweep
"""
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig

from tethercache.errors import ConfigError
from tethercache.runner import execute


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        choices = dict(HydraConfig.get().runtime.choices)
        record = execute(cfg, run_dir, choices={k: v for k, v in choices.items()
                                                 if not k.startswith("hydra")})
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        # Nothing but Hydra's own bookkeeping was written: remove it, leave no run behind.
        if all(p.name in (".hydra", "run.log") for p in run_dir.iterdir()):
            shutil.rmtree(run_dir, ignore_errors=True)
        sys.exit(2)
    print(f"run complete: {run_dir}")
    return record.get("wall_seconds")


if __name__ == "__main__":
    main()
