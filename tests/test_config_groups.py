"""Every option of every config group composes with Hydra's compose API and validates as
`validate_only` would (no compute). Options that need the user's files may fail only by naming
exactly those keys. (Each experiment's sweep jobs: tests/test_sweep.py.)"""
import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT
from tethercache.job import validation_error

GROUPS = ("backbone", "cache", "horizon", "prompts", "eval", "logger", "experiment", "local")
OPTIONS = [(g, f.stem) for g in GROUPS for f in sorted((ROOT / "conf" / g).glob("*.yaml"))]
USER_PATHS = {          # option -> the one-line error it may give: only the user's own paths
    ("backbone", "self_forcing"): "backbone.weights, backbone.wan_dir: required, not set",
    ("prompts", "file"): "prompts.file: required, not set",
    ("experiment", "self_forcing_policies"):
        "backbone.weights, backbone.wan_dir, prompts.file: required, not set",
    ("experiment", "self_forcing_ablations"):
        "backbone.weights, backbone.wan_dir, prompts.file: required, not set",
    ("eval", "vbench_long"): "eval=vbench_long cannot run here: eval.",  # python, cache_dir
}
WITH = {("backbone", "tiny"): ["eval=none"]}     # the default evaluator (toy) needs a toy world


def test_every_group_has_options():
    assert {g for g, _ in OPTIONS} == set(GROUPS) and len(OPTIONS) >= 30


@pytest.mark.parametrize("group,option", OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_option_composes_and_validates(group, option):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        overrides = [f"{group}={option}", "progress=false", *WITH.get((group, option), [])]
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
        if group == "local":                 # a launcher: its plugin must import
            from hydra.utils import get_class
            assert get_class(cfg.hydra.launcher._target_)
        task = compose("config", overrides=overrides)
    err = validation_error(task)
    expected = USER_PATHS.get((group, option))
    if expected is None:
        assert err is None, err
    else:
        assert err and err.startswith(expected), err
