"""Hydra entry point for scoring finished run dirs as jobs, through run.py's launchers: one job per
shard, so n GPU jobs (e.g. a Slurm array) score one arm. Same work as `python -m tethercache.eval`.

    python score.py runs=[outputs/sweeps/2026-12-01/10-00-00] eval=vbench_long
    python score.py -m runs=[outputs/sweeps/2026-12-01/10-00-00/3-self_forcing-tether-60s] \\
        eval=vbench_long eval.num_shards=8 eval.shard='range(8)' hydra/launcher=submitit_slurm

Each job scores its slice and merges when it finds every video scored, so the last shard to
finish writes metrics.json; a re-run (e.g. after a failed shard) only scores what is missing.
"""
import sys

import hydra

from tethercache.errors import ConfigError
from tethercache.eval.rundir import evaluate_paths


@hydra.main(version_base="1.3", config_path="conf", config_name="score")
def main(cfg):
    try:
        status = evaluate_paths(list(cfg.runs), cfg.eval, force=cfg.force,
                                skip_unfinished=cfg.skip_unfinished,
                                err=lambda m: print(m, file=sys.stderr))
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        status = 2
    if status:
        sys.exit(status)


if __name__ == "__main__":
    main()
