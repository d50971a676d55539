"""The Slurm site config (conf/local/slurm_example.yaml) composes into hydra's submitit_slurm
launcher, and the launcher turns it into the sbatch parameters we asked for (no cluster here:
submission is intercepted at `map_array`, the sbatch script is rendered by submitit itself)."""
import submitit
from hydra import compose, initialize_config_dir
from hydra.core.utils import setup_globals
from omegaconf import OmegaConf

from conftest import ROOT


def test_slurm_example_composes_to_submitit_parameters(tmp_path, monkeypatch):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["local=slurm_example", "backbone=tiny", "eval=none",
                                           f"hydra.sweep.dir={tmp_path}/sweep"],
                      return_hydra_config=True)
        plain = compose("config", return_hydra_config=True)
    assert "BasicLauncher" in plain.hydra.launcher._target_          # no site config: local
    launcher_cfg = cfg.hydra.launcher
    assert launcher_cfg._target_.endswith("SlurmLauncher")
    assert (launcher_cfg.partition, launcher_cfg.gpus_per_node, launcher_cfg.timeout_min,
            launcher_cfg.array_parallelism) == ("gpu", 1, 240, 16)

    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
    setup_globals()
    params = OmegaConf.to_container(launcher_cfg, resolve=False)
    params.pop("_target_")
    params["submitit_folder"] = str(tmp_path / "sweep" / ".submitit" / "%j")
    launcher = SlurmLauncher(**params)
    launcher.setup(hydra_context=None, task_function=None, config=cfg)
    captured = {}

    def map_array(self, fn, *args):
        captured["executor"], captured["n"] = self, len(args[0])
        return []
    monkeypatch.setattr(submitit.AutoExecutor, "map_array", map_array)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))  # "srun found"
    launcher.launch([["cache=window"], ["cache=sink"], ["cache=tether"]], initial_job_idx=0)
    executor = captured["executor"]._executor
    assert captured["n"] == 3
    text = submitit.slurm.slurm._make_sbatch_string(command="python run.py", folder=tmp_path,
                                                     map_count=captured["n"], **executor.parameters)
    for line in ("#SBATCH --partition=gpu", "#SBATCH --gpus-per-node=1", "#SBATCH --time=240",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --mem=64GB", "#SBATCH --array=0-2%3",
                 "export OMP_NUM_THREADS=8"):
        assert line in text, (line, text)
