"""Hydra entry point: compose -> validate -> build -> generate -> evaluate -> record.

    python run.py                                   # toy world default
    python run.py cache=sink horizon=240s
    python run.py -m cache=window,sink seed=0,1     # multirun sweep (resumable into its dir)
    python run.py validate_only=true cache.alpha=2  # check a config, run nothing

Exit codes (tethercache/job.py): 0 complete, 1 run failed (record.json says why), 2 bad input
(ours: one line naming the key; Hydra's own composition errors are mapped to 2 as well),
130 interrupted. A sweep exits with its worst job: 2 invalid job, 1 failed job, else 0.
"""
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from tethercache import sweep
from tethercache.job import run_job

_task_started = False


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg):
    global _task_started
    _task_started = True
    hc = HydraConfig.get()
    choices = {k: v for k, v in hc.runtime.choices.items() if not k.startswith("hydra")}
    code = run_job(cfg, Path(hc.runtime.output_dir), choices, sweep=hc.mode == RunMode.MULTIRUN)
    if hc.mode != RunMode.MULTIRUN and code:
        sys.exit(code)
    return code


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit as e:
        # Hydra reports its own composition errors (unknown option, unknown key without `+`,
        # override syntax) and exits 1 before any job starts: that is bad input, exit 2.
        sys.exit(2 if e.code == 1 and not _task_started else e.code)
    sys.exit(sweep.exit_code)
