"""How much the mp4 codec moves toy-evaluator scores (why toy backbones write lossless videos).

Evaluation decodes the run's mp4s (`python -m tethercache.eval`). The toy evaluator scores exact
palette colours, so a lossy codec lowers scores of perfect footage. This renders real toy-world
videos (held-out worlds, 30 s), encodes them at the toy's view scale with each candidate codec,
decodes, undoes the upscale and prints each dimension's change against the exact frames.

    python experiments/toy_codec_fidelity.py [--worlds 4]
"""
import argparse
import os
import tempfile

import av
import numpy as np
from omegaconf import OmegaConf

from tethercache.eval.frame_evaluator import unscale
from tethercache.eval.toy import ToyEvaluator
from tethercache.toyworld.world import ToyWorld
from tethercache.video import read_mp4

CODECS = [("libx264 yuv420p crf 12 (default for real videos)", "libx264", "yuv420p", {"crf": "12"}),
          ("libx264 yuv444p qp 0", "libx264", "yuv444p", {"qp": "0"}),
          ("libx264rgb rgb24 qp 0 (toy: lossless)", "libx264rgb", "rgb24", {"qp": "0"})]


def encode(frames, path, codec, pix, opts, scale=4):
    big = frames.repeat(scale, 1).repeat(scale, 2)
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=16)
        s.height, s.width, s.pix_fmt, s.options = big.shape[1], big.shape[2], pix, {**opts, "preset": "veryfast"}
        for f in big:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return unscale(read_mp4(path)[0], scale), os.path.getsize(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worlds", type=int, default=4)
    a = ap.parse_args()
    prompts = OmegaConf.load("conf/prompts/heldout.yaml").texts[: a.worlds]
    ev = ToyEvaluator()
    deltas = {name: [] for name, *_ in CODECS}
    sizes = {name: 0 for name, *_ in CODECS}
    with tempfile.TemporaryDirectory() as tmp:
        for p, prompt in enumerate(prompts):
            frames = ToyWorld(prompt, 1_000_011 + 1000 * p).render(120)[0].numpy().repeat(4, 0)
            exact = ev.evaluate(frames, prompt).means
            for name, codec, pix, opts in CODECS:
                dec, size = encode(frames, os.path.join(tmp, "v.mp4"), codec, pix, opts)
                got = ev.evaluate(dec, prompt).means
                deltas[name].append({d: got[d] - exact[d] for d in exact})
                sizes[name] += size
    dims = list(deltas[CODECS[0][0]][0])
    print(f"mean score change vs exact frames over {len(prompts)} held-out worlds (30 s each):")
    print("| codec | KB/video | " + " | ".join(dims) + " |")
    print("|---|---|" + "---|" * len(dims))
    for name, *_ in CODECS:
        mean = {d: np.nanmean([x[d] for x in deltas[name]]) for d in dims}
        print(f"| {name} | {sizes[name] / len(prompts) / 1024:.0f} | "
              + " | ".join(f"{mean[d]:+.4f}" for d in dims) + " |")


if __name__ == "__main__":
    main()
