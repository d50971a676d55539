"""Hydra entry point for scoring finished run dirs as jobs, through run.py's launchers: one job per
shard, so n GPU jobs (e.g. a Slurm array) score one arm. Same work as `python -m tethercache.eval`,
through the same checks (tethercache/eval/request.py) before any work.

    python score.py runs=[outputs/sweeps/2026-12-01/10-00-00] eval=vbench_long
    python score.py -m runs=[outputs/sweeps/2026-12-01/10-00-00/3-self_forcing-tether-60s] \\
        eval=vbench_long eval.num_shards=8 eval.shard='range(8)' hydra/launcher=submitit_slurm

Each job scores its slice and merges when it finds every video scored, so the last shard to
finish writes metrics.json; a re-run (e.g. after a failed shard) only scores what is missing.
Exit codes: 0 done (or nothing to score), 1 scoring failed, 2 bad input or a refused run (Hydra's
own composition errors too). A job that scored nothing removes its Hydra output dir again.
"""
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from tethercache.errors import ConfigError
from tethercache.eval.request import check_eval_key, default_eval
from tethercache.eval.rundir import run_request

_task_started = False
HYDRA_FILES = {".hydra", "score.log"}        # what Hydra writes into a job's dir before our code


@hydra.main(version_base="1.3", config_path="conf", config_name="score")
def main(cfg):
    global _task_started
    _task_started = True
    lines = []
    err = lambda m: print(m, file=sys.stderr)
    try:
        args = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as e:                 # e.g. an ${oc.env:...} that is unset
        err(f"error: {str(e).splitlines()[0]}")
        status = 2
    else:
        status = run_request(args, log=lambda m: (lines.append(m), print(m)), err=err)
    out = Path(HydraConfig.get().runtime.output_dir)
    if not lines and out.is_dir() and {p.name for p in out.iterdir()} <= HYDRA_FILES:
        shutil.rmtree(out, ignore_errors=True)       # nothing was scored: leave nothing behind
    if status:
        sys.exit(status)


def refuse_unknown_eval_keys(argv: list[str]) -> None:
    """Hydra refuses `eval.KEY=V` with an unknown KEY in its own many lines: say it in ours,
    with the allowed keys (`+eval.KEY=V` reaches the job and is refused there)."""
    try:
        overrides = OverridesParser.create().parse_overrides([a for a in argv if "=" in a and a[0] != "-"])
    except OverrideParseException:
        return                                      # Hydra names the syntax error itself
    name = next((o.value() for o in overrides if o.key_or_group == "eval"), default_eval())
    for o in overrides:
        if o.key_or_group.startswith("eval.") and not o.is_add() and isinstance(name, str):
            check_eval_key(name, o.key_or_group.removeprefix("eval."))


if __name__ == "__main__":
    try:
        refuse_unknown_eval_keys(sys.argv[1:])
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        main()
    except SystemExit as e:
        # Hydra reports its own composition errors (unknown option, unknown key without `+`,
        # override syntax) and exits 1 before any job starts: that is bad input, exit 2.
        sys.exit(2 if e.code == 1 and not _task_started else e.code)
