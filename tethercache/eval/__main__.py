"""Score finished run dirs: evaluation as its own step.

    python -m tethercache.eval RUN_DIR [RUN_DIR ...] [eval=NAME] [eval.KEY=VALUE ...] [--force]

    python -m tethercache.eval outputs/runs/2026-12-01/10-00-00-toy-tether-30s     # run's own eval
    python -m tethercache.eval outputs/sweeps/2026-12-01/10-00-00 eval=toy          # every run below
    python -m tethercache.eval RUN eval=vbench_long eval.shard=3 eval.num_shards=8  # one of 8 jobs

KEY=VALUE items take score.py's keys and grammar (force=true, skip_unfinished=true; eval.* keys of
conf/eval/<NAME>.yaml); every argument is checked before any work (eval/request.py).
Re-running skips videos already scored (--force rescores this shard). Unfinished or corrupt runs
(no record.json, a *.partial.mp4, status other than complete, an unreadable mp4) are refused
before anything is scored (exit 2), unless --skip-unfinished. A run's metrics.json is written once
all its videos are scored; until then the merge names the missing videos by shard.
"""
from __future__ import annotations

import argparse
import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import OmegaConf

from ..errors import ConfigError
from .request import eval_defaults
from .rundir import run_request


def request_args(items: list[str]) -> dict:
    """RUN_DIR and KEY=VALUE items -> the request dict score.py's config would give."""
    parser, overrides = OverridesParser.create(), []
    for item in (i for i in items if "=" in i):
        try:
            overrides += parser.parse_overrides([item])
        except OverrideParseException as e:
            raise ConfigError(f"{item}: not KEY=VALUE ({str(e).splitlines()[0]})") from None
    args = {"runs": [i for i in items if "=" not in i]}
    ecfg = None
    for o in overrides:
        if o.key_or_group == "eval":
            ecfg = OmegaConf.create(eval_defaults(o.value()))
    for o in overrides:
        key = o.key_or_group
        if key.startswith("eval."):
            if ecfg is None:
                raise ConfigError(f"{key}: also pass eval=NAME (e.g. eval=toy)")
            ecfg[key.removeprefix("eval.")] = o.value()
        elif key != "eval":
            args[key] = o.value()
    if ecfg is not None:
        args["eval"] = ecfg
    return args


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tethercache.eval",
                                 description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("items", nargs="+", metavar="RUN_DIR | eval=NAME | eval.KEY=VALUE | KEY=VALUE")
    ap.add_argument("--force", action="store_true", help="rescore this shard's videos")
    ap.add_argument("--skip-unfinished", action="store_true",
                    help="score the finished runs and list the others, instead of refusing")
    a = ap.parse_intermixed_args(argv)          # flags may sit between the items
    err = lambda m: print(m, file=sys.stderr)
    try:
        args = request_args(a.items)
    except ConfigError as e:
        err(f"error: {e}")
        return 2
    for flag in ("force", "skip_unfinished"):
        if getattr(a, flag):
            args[flag] = True
    return run_request(args, err=err)


if __name__ == "__main__":
    sys.exit(main())
