"""Hydra callback: validate before Hydra writes anything, and `-m` sweeps
(conf/config.yaml `hydra.callbacks.sweep`).

- on_run_start: a single run is validated before Hydra creates its dir (exit 2 on bad input;
  validate_only=true exits 0 there), so neither leaves a trace.
- on_multirun_start: every job of the sweep is composed and validated before the first one runs;
  each bad job is one line naming its overrides and the key. With validate_only=true the sweep
  stops there (exit 0, or 2 if a job is invalid).
- the jobs themselves (tethercache/job.py) never raise out of Hydra: a failed job is recorded in
  its dir and the sweep goes on; complete jobs of the same config are skipped (resume).
- on_multirun_end: a summary (completed / skipped / failed / interrupted / unfinished / invalid,
  with dirs), read back from the job dirs, so it holds for any launcher (basic, submitit).
  `exit_code` (0 all good, 1 a job failed, 2 a job was invalid) is what run.py exits with.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from . import rundir

exit_code = 0          # set at the end of a sweep; run.py exits with it


def expand_jobs(config) -> list[list[str]] | None:
    """The sweep's jobs as override lists, as the basic sweeper expands them (None: other sweeper)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    if "BasicSweeper" not in str(config.hydra.sweeper.get("_target_", "")):
        return None
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def validate_job(config_name: str, overrides: list[str]) -> str | None:
    """None if the job's config is valid, else the one-line error."""
    from hydra import compose
    from .job import validation_error
    try:
        cfg = compose(config_name, overrides=overrides)
    except Exception as e:                     # noqa: BLE001 - a compose error is bad input too
        return rundir.one_line(e)
    return validation_error(cfg)


def _key(overrides) -> tuple[str, ...]:
    return tuple(sorted(str(o) for o in overrides))


class SweepCallback(Callback):
    def __init__(self) -> None:
        self.jobs: list[list[str]] = []
        self.invalid: dict[tuple, str] = {}
        self.started = time.time()

    def on_run_start(self, config, **kwargs) -> None:
        """A single run is validated before Hydra creates its dir: bad input and validate_only
        leave nothing behind (no new dir; an existing run dir untouched)."""
        overrides = list(config.hydra.overrides.task)
        err = validate_job(config.hydra.job.config_name, overrides)
        if err:
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        if config.get("validate_only"):
            print(f"config ok (validate_only: nothing run): {' '.join(overrides)}")
            sys.exit(0)

    def on_multirun_start(self, config, **kwargs) -> None:
        global exit_code
        self.started = time.time()
        self.jobs = expand_jobs(config) or []
        for i, job in enumerate(self.jobs):
            err = validate_job(config.hydra.job.config_name, job)
            if err:
                self.invalid[_key(job)] = err
                print(f"error: job {i} ({' '.join(job) or 'no overrides'}): {err}", file=sys.stderr)
        if self.jobs:
            print(f"sweep: {len(self.jobs)} jobs validated, {len(self.invalid)} invalid",
                  file=sys.stderr)
        if config.get("validate_only"):
            exit_code = 2 if self.invalid else 0
            sys.exit(exit_code)            # validate_only: no job runs, no sweep dir is written

    def on_multirun_end(self, config, **kwargs) -> None:
        global exit_code
        sweep_dir = Path(config.hydra.sweep.dir)
        dirs = {}
        for overrides_file in sweep_dir.glob("*/.hydra/overrides.yaml"):
            dirs[_key(OmegaConf.load(overrides_file))] = overrides_file.parent.parent
        rows: dict[str, list[str]] = {s: [] for s in
                                      ("completed", "skipped", "failed", "interrupted", "unfinished",
                                       "invalid")}
        for job in self.jobs:
            label = " ".join(job) or "no overrides"
            if _key(job) in self.invalid:
                rows["invalid"].append(f"{label}: {self.invalid[_key(job)]}")
                continue
            d = dirs.get(_key(job))
            rec = rundir.read_record(d) if d else None
            state = rundir.status(d) if d else "unfinished"
            if state == "complete":
                state = "completed" if rec.get("finished_at", 0) >= self.started else "skipped"
            where = str(d) if d else "(no dir)"
            reason = f" ({rec['reason']})" if rec and rec.get("reason") else ""
            rows[state].append(f"{where}{reason}")
        print(f"sweep summary ({sweep_dir}):", file=sys.stderr)
        for state, items in rows.items():
            if items:
                print(f"  {state} {len(items)}:", file=sys.stderr)
                for item in items:
                    print(f"    {item}", file=sys.stderr)
        exit_code = 2 if rows["invalid"] else 1 if any(
            rows[s] for s in ("failed", "interrupted", "unfinished")) else 0
