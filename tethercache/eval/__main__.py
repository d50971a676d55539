"""Score finished run dirs: evaluation as its own step (contracts: issue 12).

    python -m tethercache.eval RUN_DIR [RUN_DIR ...] [eval=NAME] [eval.KEY=VALUE ...] [--force]

    python -m tethercache.eval outputs/runs/2026-12-01/10-00-00-toy-tether-30s     # run's own eval
    python -m tethercache.eval outputs/sweeps/2026-12-01/10-00-00 eval=toy          # every run below
    python -m tethercache.eval RUN eval=vbench_long eval.shard=3 eval.num_shards=8  # one of 8 jobs

Re-running skips videos already scored (--force rescores this shard). Unfinished runs (no
record.json, a *.partial.mp4, status other than complete) are refused before anything is scored
(exit 2), unless --skip-unfinished. A run's metrics.json is written once all its videos are scored;
until then the merge names the missing videos by shard.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError
from .rundir import evaluate_paths

CONF = Path(__file__).resolve().parents[2] / "conf" / "eval"


def eval_config(overrides: list[str]):
    """None (each run's own eval config) or the composed eval group + eval.* overrides."""
    name = [o.split("=", 1)[1] for o in overrides if o.startswith("eval=")]
    keys = [o for o in overrides if o.startswith("eval.")]
    bad = [o for o in overrides if not o.startswith(("eval=", "eval."))]
    if bad:
        raise ConfigError(f"{bad[0]}: only eval=NAME and eval.KEY=VALUE overrides are accepted here")
    if not name and not keys:
        return None
    if not name:
        raise ConfigError(f"{keys[0]}: also pass eval=NAME (e.g. eval=toy)")
    path = CONF / f"{name[-1]}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in CONF.glob("*.yaml"))
        raise ConfigError(f"eval={name[-1]}: no such option; allowed: {options}")
    ecfg = OmegaConf.load(path)
    try:
        ecfg.merge_with(OmegaConf.from_dotlist([k.removeprefix("eval.") for k in keys]))
    except Exception as e:
        raise ConfigError(f"{keys[0]}: {e}") from None
    return ecfg


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tethercache.eval",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("items", nargs="+", metavar="RUN_DIR | eval=NAME | eval.KEY=VALUE")
    ap.add_argument("--force", action="store_true", help="rescore this shard's videos")
    ap.add_argument("--skip-unfinished", action="store_true",
                    help="score the finished runs and list the others, instead of refusing")
    a = ap.parse_args(argv)
    overrides = [i for i in a.items if "=" in i]
    paths = [i for i in a.items if "=" not in i]
    err = lambda m: print(m, file=sys.stderr)
    try:
        if not paths:
            raise ConfigError("no run dirs given")
        return evaluate_paths(paths, eval_config(overrides), force=a.force,
                              skip_unfinished=a.skip_unfinished, err=err)
    except ConfigError as e:
        err(f"error: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
