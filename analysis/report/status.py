"""Every run of the report with its status, from the one status reader (tethercache.rundir):
complete | unscored (complete, no metrics.json yet) | failed | interrupted | unfinished | corrupt,
its one-line reason, and which backbone / preset / horizon it was (from record.json, or the
config it wrote at start)."""
from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from tethercache.rundir import RunState

STATUS_ORDER = ("complete", "unscored", "corrupt", "failed", "interrupted", "unfinished")


def _load_config(run_dir: Path) -> dict:
    """The config a run wrote when it started (for runs whose record.json has none)."""
    for path in (run_dir / "config.yaml", run_dir / ".hydra" / "config.yaml"):
        if path.is_file():
            try:
                cfg = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                return cfg if isinstance(cfg, dict) else {}
            except Exception:                           # noqa: BLE001 - a half-written file
                return {}
    return {}


def run_row(state: RunState) -> dict:
    """{'run_dir', 'status', 'reason', 'backbone', 'preset', 'horizon'} of one run dir."""
    run_dir, rec = Path(state.run_dir), state.record or {}
    status, reason = state.status, state.reason
    if status == "complete" and not (run_dir / "metrics.json").is_file():
        status, reason = "unscored", "complete, but no metrics.json (no evaluator run yet)"
    cfg = rec.get("config") if isinstance(rec.get("config"), dict) else _load_config(run_dir)
    choices = rec.get("choices") if isinstance(rec.get("choices"), dict) else {}

    def pick(group: str):                    # the config-group option, e.g. cache -> "tether"
        section = cfg.get(group)
        return choices.get(group) or (section.get("name") if isinstance(section, dict) else None)
    return {"run_dir": str(run_dir), "status": status, "reason": str(reason),
            "backbone": pick("backbone"), "preset": pick("cache"), "horizon": pick("horizon")}

