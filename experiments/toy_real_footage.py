"""Real footage of the 8 held-out worlds scored by the toy evaluator: the reference row beside
a model's numbers (what `eval=toy` gives a perfect generator, per world and on average).

    python experiments/toy_real_footage.py                       # 30 s, the shipped weights' world
    python experiments/toy_real_footage.py --seconds 240 --world sprite_size=8

The worlds are those of `prompts=heldout seed=1000011` (conf/prompts/heldout.yaml); the world
defaults to `backbone.world` in conf/backbone/toy.yaml, the world the shipped weights draw.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from tethercache.eval.toy import ToyEvaluator
from tethercache.toyworld.world import TOY_FPS, ToyWorld, world_config

ROOT = Path(__file__).resolve().parents[1]
DIMS = ("imaging_quality", "aesthetic_quality", "subject_consistency", "background_consistency",
        "motion_smoothness", "dynamic_degree")
HOLD = 4          # the toy codec's frame hold (conf/backbone/toy.yaml codec.hold)


def heldout_worlds(seed: int = 1000011) -> list[tuple[str, int]]:
    texts = OmegaConf.load(ROOT / "conf" / "prompts" / "heldout.yaml").texts
    return [(t, seed + 1000 * p) for p, t in enumerate(texts)]


def score_real(seconds: int, world) -> list[dict]:
    ev = ToyEvaluator(config=world)
    rows = []
    for prompt, seed in heldout_worlds():
        frames, _ = ToyWorld(prompt, seed, world).render(seconds * TOY_FPS)
        vs = ev.evaluate(frames.numpy().repeat(HOLD, 0), prompt, video_id=f"{seed}")
        m = vs.metrics()
        rows.append({"prompt": prompt, **{d: m[d] for d in DIMS},
                     "revisit_consistency": m["revisit_consistency"], "subject_return": m["subject_return"]})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--world", nargs="*", default=None, metavar="FIELD=VALUE",
                    help="world fields (default: conf/backbone/toy.yaml backbone.world)")
    a = ap.parse_args(argv)
    fields = (OmegaConf.load(ROOT / "conf" / "backbone" / "toy.yaml").world if a.world is None
              else dict(f.split("=", 1) for f in a.world))
    world = world_config(fields, key="--world")
    rows = score_real(a.seconds, world)
    cols = [*DIMS, "revisit_consistency", "subject_return"]
    print(f"real footage, {a.seconds} s, world {world.describe() or 'default'}\n")
    print("| world | " + " | ".join(cols) + " |\n|---|" + "---|" * len(cols))
    for r in rows:
        print(f"| {r['prompt']} | " + " | ".join(f"{r[c]:.3f}" for c in cols) + " |")
    print("| **mean** | " + " | ".join(f"{np.nanmean([r[c] for r in rows]):.3f}" for c in cols) + " |")


if __name__ == "__main__":
    main()
