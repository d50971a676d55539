"""Which sprite levers make the toy model learn sprites? Short probe trainings at equal steps.

Each probe fine-tunes the v1 weights (`--init`; the background is learned already, so a
short run measures what the lever does to the part that is not: sprites) with one lever, on
1 thread, then scores on held-out worlds drawn with a sprite in view (`sprite_clips=1`), in the
probe's own world:
  - held-out EMA loss on sprite positions and on background positions (the trainer's `heldout()`);
  - a sampled chunk: the last 3 frames drawn by the production sampler after real context,
    scored with the toy evaluator's subject_consistency and imaging_quality.
`init*` probes (the v1 weights, no training) are the references, one per world.

    OMP_NUM_THREADS=1 nice -n 10 python experiments/toy_sprite_probes.py --steps 50
    python experiments/toy_sprite_probes.py --probes init baseline weight10 --steps 20
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from tethercache.eval.toy import imaging_quality, subject_consistency
from tethercache.toyworld import train
from tethercache.toyworld.world import WorldConfig, training_batches

import importlib.util

_spec = importlib.util.spec_from_file_location("ceiling", Path(__file__).with_name("toy_denoiser_ceiling.py"))
ceiling = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ceiling)

# the weights the probes fine-tune: v1 (records no world, so it can be scored in any world)
BASE = str(train.WEIGHTS_DIR / "toy_wan_v1.safetensors")
# name -> trainer arguments of the lever (on top of the common fine-tune arguments); init*: no
# training, the v1 weights scored in that world
PROBES = {
    "init": [],
    "init_size12": ["--sprite-size", "12"],
    "init_calm_bands": ["--band-amp", "0.3"],
    "baseline": [],
    "weight3": ["--sprite-weight", "3"],
    "weight10": ["--sprite-weight", "10"],
    "clips": ["--sprite-clips", "1.0"],
    "size12": ["--sprite-size", "12"],
    "calm_bands": ["--band-amp", "0.3"],
    "weight10_clips": ["--sprite-weight", "10", "--sprite-clips", "1.0"],
    "weight3_clips_size12": ["--sprite-weight", "3", "--sprite-clips", "0.5", "--sprite-size", "12"],
}


def world_of(args: list[str]) -> WorldConfig:
    return train.world_of(train.parse_args(args))


def score(weights: str, world: WorldConfig, worlds: int, clip: int, seed: int) -> dict:
    """Held-out sprite/background loss and a sampled chunk's subject and imaging scores."""
    t = train.Trainer(train.parse_args(["--init", weights, "--batch", str(worlds), "--clip", str(clip),
                                        "--sprite-size", str(world.sprite_size),
                                        "--band-amp", str(world.band_amp_scale), "--threads", "1"]))
    t.held = t._prepare(next(training_batches(worlds, clip, "heldout", seed=seed, config=world,
                                              sprite_clips=1.0)), torch.Generator().manual_seed(7))
    losses = t.heldout()
    tf = ceiling.TeacherForced(weights, worlds, clip, seed, sprite_clips=1.0, config=world)
    torch.set_num_threads(1)                  # the backbone config asks for 2; probes use 1
    last = tf.sample_chunk(tf.bb.sampler)
    frames = tf.frames(tf.x0.clone().index_copy_(2, torch.arange(clip - 3, clip), last))
    subj = [subject_consistency(f, p, x, clip - 3, clip, config=world)
            for f, p, x in zip(frames, tf.prompts, tf.camera_x)]
    real = [subject_consistency(f, p, x, clip - 3, clip, config=world)
            for f, p, x in zip(tf.frames(tf.x0), tf.prompts, tf.camera_x)]
    iq = [imaging_quality(f[-3:], p).mean() for f, p in zip(frames, tf.prompts)]
    # over the clips whose real last chunk shows a sprite; a sprite the model did not draw scores 0
    judged = [(s if math.isfinite(s) else 0.0) for s, r in zip(subj, real) if math.isfinite(r)]
    drawn = sum(math.isfinite(s) for s, r in zip(subj, real) if math.isfinite(r))
    return {"heldout_sprite_loss": losses["sprite"], "heldout_background_loss": losses["background"],
            "sampled_subject": float(np.mean(judged)) if judged else math.nan,
            "sampled_subject_seen": f"{drawn}/{len(judged)}",
            "real_subject": float(np.nanmean(real)), "sampled_imaging": float(np.mean(iq))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--probes", nargs="+", default=list(PROBES), choices=list(PROBES))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--worlds", type=int, default=16, help="held-out clips scored per probe")
    ap.add_argument("--clip", type=int, default=12, help="frames per scored clip (context + 3)")
    ap.add_argument("--out", default="/tmp/toy_sprite_probes")
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    results = {}
    for name in a.probes:
        t0 = time.process_time()
        lever, weights = PROBES[name], BASE
        args = ["--init", BASE, "--steps", str(a.steps), "--lr", str(a.lr), "--warmup", "5",
                "--ema", "0.9", "--threads", "1", "--ckpt-every", "0", "--log-every", str(a.steps),
                "--out", str(out / name), "--overwrite", *lever]     # probes are scratch: rerun in place
        world = world_of(args)
        if not name.startswith("init"):
            train.Trainer(train.parse_args(args)).run()
            weights = str(out / name / "toy_wan.safetensors")
        results[name] = {**score(weights, world, a.worlds, a.clip, seed=4321),
                         "cpu_seconds": round(time.process_time() - t0, 1)}
        print(name, json.dumps(results[name]), flush=True)
    print(f"\n{a.steps} fine-tuning steps from the v1 weights (lr {a.lr}), {a.worlds} held-out clips "
          f"with a sprite in view, last 3 of {a.clip} frames sampled\n")
    print("| probe | sprite loss | background loss | sampled subject (sprite drawn / shown) "
          "| real subject | sampled imaging | CPU s |\n|---|---|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['heldout_sprite_loss']:.4f} | {r['heldout_background_loss']:.4f} | "
              f"{r['sampled_subject']:.3f} ({r['sampled_subject_seen']}) | {r['real_subject']:.3f} | "
              f"{r['sampled_imaging']:.3f} | {r['cpu_seconds']} |")
    (out / "results.json").parent.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
