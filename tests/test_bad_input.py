"""Bad input, table-driven over every config group: each case must give exit code 2,
exactly one line `error: <key>...` naming the key, no compute (the backbone is never built), and
no run dir left behind. A few cases go through the real CLI (Hydra's own errors, a corrupt
checkpoint). Counting: `len(CASES)` in-process cases plus the CLI ones."""
import pytest
import torch
from hydra import compose, initialize_config_dir

from conftest import ROOT, run_cli
from tethercache import job

TOY = ["backbone=toy", "backbone.weights=null"]

CASES = [
    # ---- top level ------------------------------------------------------------------------
    (["seed=abc"], "seed"), (["seed=-1"], "seed"), (["seed=1.5"], "seed"),
    (["seed=99999999999999"], "seed"), (["seed=nan"], "seed"), ([*TOY, "seed=-1"], "seed"),
    (["samples_per_prompt=0"], "samples_per_prompt"), (["samples_per_prompt=abc"], "samples_per_prompt"),
    (["samples_per_prompt=1000"], "samples_per_prompt"),
    (["batch=abc"], "batch"), (["batch=0"], "batch"), (["batch=2"], "batch"), (["batch=1.5"], "batch"),
    (["device=tpu"], "device"), (["device=cuda:x"], "device"),
    (["progress=maybe"], "progress"), (["validate_only=maybe"], "validate_only"),
    (["resume=2"], "resume"), (["reuse_backbone=abc"], "reuse_backbone"), (["tags=5"], "tags"),
    (["+foo=1"], "foo"), (["+cach=1"], "cach"),
    # ---- horizon -----------------------------------------------------------------------------
    (["horizon.frames=abc"], "horizon.frames"), (["horizon.frames=3.5"], "horizon.frames"),
    (["horizon.frames=0"], "horizon.frames"), (["horizon.frames=-3"], "horizon.frames"),
    (["horizon.frames=100"], "horizon.frames"), (["horizon.frames=inf"], "horizon.frames"),
    (["+horizon.seconds=5"], "horizon.seconds"),
    # ---- prompts -----------------------------------------------------------------------------
    (["prompts.texts=[]"], "prompts"), (["prompts.texts=['']"], "prompts.texts[0]"),
    (["prompts.texts=['  ']"], "prompts.texts[0]"), (["prompts.texts=[a cat,'']"], "prompts.texts[1]"),
    (["prompts.limit=-1"], "prompts.limit"), (["prompts.limit=0"], "prompts.limit"),
    (["prompts.limit=abc"], "prompts.limit"), (["prompts=file"], "prompts.file"),
    (["prompts=file", "prompts.file=/nonexistent/prompts.txt"], "prompts.file"),
    (["prompts=file", "prompts.file=@EMPTY"], "prompts"),
    (["prompts=file", "prompts.file=@BINARY"], "prompts.file"),
    (["prompts=file", "prompts.file=@DIR"], "prompts.file"),
    (["prompts=heldout", "prompts.shard=2", "prompts.num_shards=2"], "prompts.shard"),
    (["prompts=heldout", "prompts.shard=-1", "prompts.num_shards=2"], "prompts.shard"),
    (["prompts.num_shards=0"], "prompts.num_shards"), (["prompts.num_shards=abc"], "prompts.num_shards"),
    (["prompts.num_shards=2"], "prompts.num_shards"),              # more shards than prompts
    (["+prompts.foo=1"], "prompts.foo"),
    ([*TOY, "prompts.texts=[a cat on a sofa]"], "prompts.texts[0]"),
    # ---- cache -------------------------------------------------------------------------------
    (["cache=knorm", "cache.budget_tokens=100"], "cache.budget_tokens"),   # < (1 + 6) frames x 16 tokens
    (["cache=knorm", "cache.budget=672"], "cache.budget"),      # the old key: a migration error
    (["cache=knorm", "cache.recent=2"], "cache.recent"),        # recent includes the chunk (3)
    (["cache=tether", "cache.alpha=abc"], "cache.alpha"), (["cache=tether", "cache.alpha=inf"], "cache.alpha"),
    (["cache=tether", "cache.alpha=nan"], "cache.alpha"), (["cache=tether", "cache.alpha=-1"], "cache.alpha"),
    (["cache=tether", "cache.sink=1.5"], "cache.sink"), (["cache=tether", "cache.tau=abc"], "cache.tau"),
    (["cache=tether", "cache.tau=2"], "cache.tau"), (["cache=tether", "cache.grab=maybe"], "cache.grab"),
    (["cache=tether", "cache.tame_target=x"], "cache.tame_target"),
    (["cache=tether", "cache.scope=global"], "cache.scope"),
    (["cache=tether", "cache.rope=sideways"], "cache.rope"),
    (["cache=tether", "cache.memory=5"], "cache.memory"),
    (["cache=tether", "cache.temperature=0"], "cache.temperature"),
    (["cache=tether", "cache.recent=1"], "cache.recent"),
    (["cache=window", "cache.budget=abc"], "cache.budget"), (["cache=window", "cache.budget=2"], "cache.budget"),
    (["cache=window", "cache.budget=21.5"], "cache.budget"),
    (["cache=window", "cache.budget=1e400"], "cache.budget"),
    (["cache=sink", "cache.sink=19"], "cache.sink"), (["cache=sink", "cache.sink=-1"], "cache.sink"),
    (["cache=window", "+cache.alpha=0.3"], "cache.alpha"), (["cache.name=nope"], "cache.name"),
    (["cache=oracle"], "cache.name"),                               # needs a toy backbone
    (["cache=window", "cache.rope=absolute", "horizon.frames=1200"], "cache.rope"),
    # ---- backbone ----------------------------------------------------------------------------
    (["backbone.dtype=float8"], "backbone.dtype"), (["backbone.chunk=abc"], "backbone.chunk"),
    (["backbone.chunk=0"], "backbone.chunk"), (["backbone.threads=0"], "backbone.threads"),
    ([*TOY, "++backbone.world.sprite_size=99"], "backbone.world.sprite_size"),
    ([*TOY, "++backbone.world.sprite_size=abc"], "backbone.world.sprite_size"),
    ([*TOY, "+backbone.world.height=48"], "backbone.world.height"),
    (["+backbone.world.sprite_size=12"], "backbone.world"),
    ([*TOY, "++backbone.world.sprite_layout=top"], "backbone.world.sprite_layout"),
    (["backbone.threads=abc"], "backbone.threads"), (["backbone.codec.view_scale=0"], "backbone.codec.view_scale"),
    (["backbone.codec.fps=abc"], "backbone.codec.fps"), (["backbone.latent=[12,8]"], "backbone.latent"),
    (["backbone.codec.lossless=abc"], "backbone.codec.lossless"),
    (["backbone.sampler.context_renoise=maybe"], "backbone.sampler.context_renoise"),
    (["backbone.latent=[12,8,abc]"], "backbone.latent[2]"),
    (["backbone.sampler.shift=0"], "backbone.sampler.shift"),
    (["backbone.sampler.shift=abc"], "backbone.sampler.shift"),
    ([*TOY, "backbone.sampler.shift=nan"], "backbone.sampler.shift"),
    ([*TOY, "backbone.sampler.restarts=1.5"], "backbone.sampler.restarts"),
    ([*TOY, "backbone.start_frames=4"], "backbone.start_frames"),
    (["backbone.weights=/nonexistent/self_forcing_dmd.pt"], "backbone.weights"),
    (["backbone=self_forcing"], "backbone.wan_dir"),
    (["backbone.text.kind=bert"], "backbone.text.kind"), (["backbone.codec.kind=jpeg"], "backbone.codec.kind"),
    (["+backbone.foo=1"], "backbone.foo"), (["backbone.init_seed=abc"], "backbone.init_seed"),
    (["backbone.model.size=huge"], "backbone.model"),
    # ---- eval / logger -----------------------------------------------------------------------
    (["eval.name=magic"], "eval.name"), (["eval=toy"], "eval"),
    ([*TOY, "eval=toy", "eval.prefixes=[45s]"], "eval.prefixes"), (["+eval.foo=1"], "eval.foo"),
    (["logger.name=tensorboard"], "logger.name"), (["logger=wandb", "logger.mode=sometimes"], "logger.mode"),
    (["+logger.foo=1"], "logger.foo"),
    # ---- backbone sub-sections ----
    ([*TOY, "backbone.world=5"], "backbone.world"), (["backbone.codec=5"], "backbone.codec"),
    (["backbone.model=5"], "backbone.model"), (["backbone.sampler=5"], "backbone.sampler"),
    (["backbone.text=5"], "backbone.text"), ([*TOY, "backbone.sampler=null"], "backbone.sampler"),
    (["backbone.text.kind=grammar"], "backbone.text.kind"),
    # ---- a scalar where a list or a mapping belongs --------------------------------------------
    (["prompts.texts=hello"], "prompts.texts"), (["tags=abc"], "tags"),
    (["backbone.sampler.steps=500"], "backbone.sampler.steps"), (["backbone.latent=abc"], "backbone.latent"),
    (["backbone.codec=abc"], "backbone.codec"), (["backbone.sampler=abc"], "backbone.sampler"),
    (["backbone.model=abc"], "backbone.model"),
    # ---- numbers too large to allocate (or to be a count at all) -----------------------------
    (["horizon.frames=1000000000002", "cache.rope=relative"], "horizon.frames"),
    (["samples_per_prompt=1000000000000"], "samples_per_prompt"),
    (["cache.budget=1000000000000"], "cache.budget"), (["cache.budget=1000000000"], "cache.budget"),
    (["cache=sink", "cache.sink=100000000", "cache.budget=100000021"], "cache.budget"),
    (["cache=sink", "cache.sink=1000000000000"], "cache.sink"),
    (["cache=full", "horizon.frames=300000000", "cache.rope=relative"], "horizon.frames"),  # full: budget = horizon
    (["+backbone.model.dim=1000000000000"], "backbone.model.dim"),
    (["+backbone.model.dim=1000000"], "backbone.model.dim"),
    (["+backbone.model.layers=1000000000"], "backbone.model.layers"),
    (["+backbone.model.ffn_dim=100000000000"], "backbone.model.ffn_dim"),
    (["+backbone.model.heads=0"], "backbone.model.heads"), (["+backbone.model.heads=3"], "backbone.model.heads"),
    (["+backbone.model.dim=abc"], "backbone.model.dim"),
    (["backbone.text.dim=1000000000"], "backbone.text.dim"),
    (["backbone.text.tokens=1000000000"], "backbone.text.tokens"),
    (["backbone.latent=[12,100000,100000]"], "backbone.latent"),
    (["backbone.latent=[100000000,8,8]"], "backbone.latent"),
    (["backbone.codec.factor=1000000000"], "backbone.codec.factor"),
    (["backbone.codec.view_scale=100000"], "backbone.codec.view_scale"),
    (["backbone.codec.hold=1000000000"], "backbone.codec.hold"),
    (["backbone.init_seed=-1"], "backbone.init_seed"),
    (["backbone.init_seed=100000000000000000000"], "backbone.init_seed"),
    (["backbone.threads=100000000"], "backbone.threads"),
]


def _fill(overrides, tmp_path):
    (tmp_path / "empty.txt").write_text("\n  \n")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x81" * 8)
    files = {"@EMPTY": tmp_path / "empty.txt", "@BINARY": tmp_path / "binary.txt", "@DIR": tmp_path}
    for tag, path in files.items():
        overrides = [o.replace(tag, str(path)) for o in overrides]
    return overrides


def composed(overrides):
    base = [o for o in ("backbone=tiny", "eval=none", "cache=window", "progress=false")
            if not any(x.startswith(o.split("=")[0] + "=") for x in overrides)]
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=[*base, *overrides])


def test_enough_cases_over_every_group():
    groups = {o.split("=")[0].lstrip("+").split(".")[0] for case, _ in CASES for o in case[-1:]}
    assert len(CASES) >= 60
    assert {"backbone", "cache", "horizon", "prompts", "eval", "logger", "seed", "batch"} <= groups


@pytest.mark.parametrize("overrides,key", CASES, ids=[" ".join(c) for c, _ in CASES])
def test_bad_value_is_one_line_naming_the_key_exit_2_no_compute_no_run_dir(
        overrides, key, tmp_path, capsys, monkeypatch):
    if key == "device" and torch.cuda.is_available() and overrides == ["device=cuda:x"]:
        pytest.skip("has CUDA")
    cfg = composed(_fill(overrides, tmp_path))

    def no_compute(*a, **k):
        raise AssertionError("the backbone was built: compute started before validation failed")
    monkeypatch.setattr("tethercache.runner.build_backbone", no_compute)
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)                 # what Hydra writes before the job
    capsys.readouterr()
    assert job.run_job(cfg, run_dir, {}) == 2
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.err
    named = lines[0].removeprefix("error: ").split(": ")[0]
    assert key in named, lines[0]
    assert not run_dir.exists()


def test_validate_only_checks_a_config_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    (run_dir / ".hydra").mkdir(parents=True)
    assert job.run_job(composed(["validate_only=true", "horizon=5s"]), run_dir, {}) == 0
    assert not run_dir.exists() and "config ok" in capsys.readouterr().out


def test_bad_input_through_the_cli(tmp_path):
    """Hydra's own errors (unknown option, unknown key without +) and our errors both exit 2;
    a corrupt checkpoint is one line naming backbone.weights and leaves no run dir."""
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    for args, expect in [(["cache=nope"], "cache"), (["foo=1"], "foo"),
                         (["cache=window", "cache.budget=abc"], "cache.budget"),
                         ([f"backbone.weights={corrupt}"], "backbone.weights")]:
        out = tmp_path / "run"
        r = run_cli(["backbone=tiny", "eval=none", "horizon=5s", "progress=false", *args,
                     f"hydra.run.dir={out}"])
        assert r.returncode == 2, (args, r.stderr)
        assert expect in r.stderr and "Traceback" not in r.stderr
        assert not out.exists()
        if expect in ("cache.budget", "backbone.weights"):
            assert [line for line in r.stderr.splitlines() if not line.startswith("[")] == \
                [line for line in r.stderr.splitlines() if line.startswith(f"error: {expect}")]
