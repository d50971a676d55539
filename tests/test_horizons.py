"""One source for horizons: tethercache/horizons.py reads Hydra's conf/horizon group, and the toy
evaluator's prefixes and analysis use that table."""
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import ROOT
from tethercache.errors import ConfigError
from tethercache.eval.toy_runner import ToyRunEvaluator
from tethercache.horizons import HORIZON_FRAMES, _read


def test_table_is_what_hydra_composes_for_each_horizon():
    names = sorted(p.stem for p in (ROOT / "conf" / "horizon").glob("*.yaml"))
    assert sorted(HORIZON_FRAMES) == names and {"30s", "60s", "240s"} <= set(names)
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        for name in names:
            cfg = compose("config", overrides=[f"horizon={name}", "eval=none"])
            assert HORIZON_FRAMES[name] == cfg.horizon.frames, name
    assert list(HORIZON_FRAMES.values()) == sorted(HORIZON_FRAMES.values())   # shortest first


def test_a_malformed_horizon_file_is_refused(tmp_path):
    (tmp_path / "90s.yaml").write_text("name: 90s\nframes: 360\n")
    assert _read(tmp_path) == {"90s": 360}
    (tmp_path / "45s.yaml").write_text("name: 50s\nframes: 180\n")
    with pytest.raises(ValueError, match="45s.yaml: needs name: 45s and frames: a positive int"):
        _read(tmp_path)
    (tmp_path / "45s.yaml").write_text("name: 45s\nframes: 0\n")
    with pytest.raises(ValueError, match="45s.yaml"):
        _read(tmp_path)


def test_toy_prefixes_are_checked_against_the_table():
    def cfg(prefixes):
        return OmegaConf.create({"backbone": {"poses": True}, "eval": {"prefixes": prefixes}})
    ToyRunEvaluator.check(cfg(list(HORIZON_FRAMES)))
    with pytest.raises(ConfigError, match="eval.prefixes: '45s' is not a horizon; allowed: "):
        ToyRunEvaluator.check(cfg(["30s", "45s"]))
