"""The toy backbone's trainer and its shipped weights (the embedded default must be a real model)."""
import json

import pytest
import torch
from omegaconf import OmegaConf

from conftest import ROOT, perturbed_tiny, run_cli
from tethercache.backbone import build_backbone
from tethercache.model.wan import X0_SIGMA_FLOOR
from tethercache.sampling import flow_to_x0
from tethercache.toyworld import train

TOY_BACKBONE = OmegaConf.load(ROOT / "conf" / "backbone" / "toy.yaml")


def test_x0_prediction_is_read_as_flow():
    """prediction=x0: the head's output is the clean latent; forward returns the flow that
    makes flow_to_x0 give that latent back, at every noise level above the floor."""
    flow_model, x0_model = perturbed_tiny(3), perturbed_tiny(3, prediction="x0")
    x = torch.randn(1, 12, 6, 8, 8)
    t = torch.tensor([[1000.0, 1000, 1000, 400, 400, 400]])
    kv = flow_model.text_kv(torch.randn(1, 4, 32))
    with torch.no_grad():
        head, flow = flow_model(x, t, kv), x0_model(x, t, kv)
    for f, s in ((0, 1.0), (3, 0.4)):
        torch.testing.assert_close(flow_to_x0(x[:, :, f], flow[:, :, f], s), head[:, :, f],
                                   atol=1e-5, rtol=1e-5)
    with torch.no_grad():    # below the floor the division uses the floor, never 0
        clean = x0_model(x, torch.zeros(1, 6), kv)
    torch.testing.assert_close(clean, (x - head_at(flow_model, x, kv)) / X0_SIGMA_FLOOR)


def head_at(model, x, kv):
    with torch.no_grad():
        return model(x, torch.zeros(1, x.shape[2]), kv)


def test_trainer_learns_and_writes_loadable_weights(tmp_path):
    """A short run lowers the held-out loss and writes safetensors + card + curve that the
    backbone's loader reads back into the very model (EMA weights, bit-exact)."""
    a = train.parse_args(["--steps", "40", "--batch", "2", "--clip", "6", "--warmup", "5",
                          "--lr", "3e-3", "--ema", "0.8", "--log-every", "10", "--threads", "1",
                          "--out", str(tmp_path)])
    trainer = train.Trainer(a)
    trainer.run()
    log = (tmp_path / "train_log.csv").read_text().splitlines()
    first, last = (float(r.split(",")[2]) for r in (log[1], log[-1]))
    assert last < 0.8 * first, (first, last)
    assert (tmp_path / "loss.png").stat().st_size > 1000
    assert "--steps 40" in (tmp_path / "MODEL_CARD.md").read_text()

    cfg = TOY_BACKBONE.copy()
    cfg.weights, cfg.world = str(tmp_path / "toy_wan.safetensors"), {}     # trained on the default world
    loaded = build_backbone(cfg).model
    for (name, p), q in zip(trainer.ema.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(p.float(), q), name


TINY_RUN = ["--steps", "6", "--batch", "2", "--clip", "6", "--warmup", "2", "--log-every", "2",
            "--threads", "1", "--ckpt-every", "2", "--sprite-weight", "4", "--sprite-clips", "0.5"]


def test_interrupted_and_resumed_training_matches_the_uninterrupted_run(tmp_path):
    """A run stopped after 3 of 6 steps (checkpoint) and resumed gives bit-identical EMA weights
    and the same loss log as one run straight through (CPU, same thread count)."""
    from safetensors.torch import load_file
    whole, pieces = tmp_path / "whole", tmp_path / "pieces"
    assert train.Trainer(train.parse_args([*TINY_RUN, "--out", str(whole)])).run()
    assert not train.Trainer(train.parse_args([*TINY_RUN, "--out", str(pieces), "--stop-at", "3"])).run()
    assert (pieces / train.CHECKPOINT).exists() and not (pieces / "toy_wan.safetensors").exists()
    resumed = train.Trainer(train.parse_args([*TINY_RUN, "--out", str(pieces), "--resume"]))
    assert resumed.run() and resumed.step == 6
    a, b = load_file(whole / "toy_wan.safetensors"), load_file(pieces / "toy_wan.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    cols = lambda p: [r.split(",")[:3] for r in (p / "train_log.csv").read_text().splitlines()]
    assert cols(whole) == cols(pieces) and len(cols(whole)) == 1 + 4
    assert not (pieces / train.CHECKPOINT).exists()                # spent once the weights exist
    reproduce = next(line for line in (pieces / "MODEL_CARD.md").read_text().splitlines() if "Reproduce" in line)
    assert "--sprite-weight 4.0" in reproduce and "--stop-at 3" not in reproduce, reproduce


def test_resume_with_another_recipe_is_a_clear_error(tmp_path, capsys):
    train.main([*TINY_RUN, "--out", str(tmp_path), "--stop-at", "2"])
    with pytest.raises(SystemExit) as e:
        train.main([*TINY_RUN, "--out", str(tmp_path), "--resume", "--sprite-weight", "2"])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "sprite_weight=4.0" in err, err
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--sprite-clips", "2"])
    assert e.value.code == 2 and "--sprite-clips" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        train.parse_args(["--sprite-size", "20"])
    assert e.value.code == 2 and "world.sprite_size=20: must be a whole number in [4, 14]" in capsys.readouterr().err


def test_sprite_weight_weighs_sprite_positions():
    """Loss = weighted mean over noisy positions: weight 1 is the plain MSE, weight w counts each
    sprite position w times (known answer on a hand-made error map)."""
    t = train.Trainer.__new__(train.Trainer)
    err = torch.tensor([[[[1.0, 3.0]], [[5.0, 7.0]]]])              # [B=1, F=2, 1, 2]
    b = {"sprite": torch.tensor([[[[0.0, 1.0]], [[0.0, 0.0]]]]), "sigma": torch.tensor([[0.5, 0.0]])}
    t._errors = lambda model, batch: err
    for w, expected in ((1.0, 2.0), (3.0, (1 + 3 * 3) / 4)):       # frame 1 is clean: not counted
        t.a = train.parse_args(["--sprite-weight", str(w)])
        assert t.loss(None, b).item() == pytest.approx(expected)


@pytest.fixture(scope="module")
def shipped_vs_random(tmp_path_factory):
    """5-s window rollouts of 2 held-out worlds: shipped weights and a random init, same seeds."""
    out = {}
    for name, weights in (("shipped", []), ("random", ["backbone.weights=null"])):
        d = tmp_path_factory.mktemp(name)
        r = run_cli(["backbone=toy", *weights, "cache=window", "horizon=5s", "prompts=heldout",
                     "prompts.limit=2", "seed=1000011", "eval=toy", "progress=false",
                     f"hydra.run.dir={d}"])
        assert r.returncode == 0, r.stderr[-3000:]
        out[name] = json.loads((d / "metrics.json").read_text())["summary"]
    return out


@pytest.mark.parametrize("dim", ["imaging_quality", "aesthetic_quality", "background_consistency"])
def test_shipped_weights_draw_the_world(shipped_vs_random, dim):
    """The shipped model draws held-out worlds it never saw far better than a random init
    (its base quality is not yet at real footage's level: see MODEL_CARD.md)."""
    shipped, rand = shipped_vs_random["shipped"], shipped_vs_random["random"]
    assert shipped[dim] > rand[dim] + 0.2, (shipped[dim], rand[dim])


def test_shipped_model_card_names_the_shipped_sampler():
    card = (train.WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    assert train.sampling_line() in card


def test_teacher_forced_ceiling_orders_noise_levels():
    """experiments/toy_denoiser_ceiling.py on the shipped weights: real frames score as real,
    the denoiser is more precise at low noise than at high, and a sampled chunk lands between."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("ceiling", ROOT / "experiments" / "toy_denoiser_ceiling.py")
    ceiling = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ceiling)
    tf = ceiling.TeacherForced(None, worlds=2, clip=9, seed=3)
    assert tf.score(tf.x0[:, :, -3:]) > 0.97
    low, high = tf.denoise(0.05), tf.denoise(0.5)
    sampled = tf.sample(ceiling.parse_schedule("4:0.05", tf.bb.sampler))
    assert low > high + 0.05 and low > sampled > 0.3



def test_make_toy_model_is_the_shipped_recipe_and_the_config_is_its_world():
    """`make toy-model` (Makefile TOY_RECIPE) trains exactly the recipe the shipped card states, and
    conf/backbone/toy.yaml's world is the one the shipped weights record (else every run is refused)."""
    import re

    from omegaconf import OmegaConf
    from safetensors import safe_open

    from tethercache.toyworld.world import world_config
    makefile = (ROOT / "Makefile").read_text()
    var = lambda name: re.search(rf"^{name} \?= (.*)$", makefile, re.M).group(1)      # noqa: E731
    make = var("TOY_RECIPE").replace("$(TOY_INIT)", var("TOY_INIT")).split()
    card = (train.WEIGHTS_DIR / "MODEL_CARD.md").read_text()
    shipped = re.search(r"python -m tethercache\.toyworld\.train ?([^`]*)`", card).group(1).split()
    recipe = lambda argv: {k: v for k, v in vars(train.parse_args(argv)).items()   # noqa: E731
                           if k not in train.RUN_ONLY_ARGS}
    assert recipe(make) == recipe(shipped), (make, shipped)
    with safe_open(str(train.WEIGHTS_DIR / "toy_wan.safetensors"), "pt") as f:
        recorded = json.loads(f.metadata()["world"])
    configured = OmegaConf.load(ROOT / "conf" / "backbone" / "toy.yaml").world
    assert world_config(recorded) == world_config(configured) == train.world_of(train.parse_args(make))
