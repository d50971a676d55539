"""Train the toy causal Wan on the toy world (the same model code as the real backbone).

Objective: diffusion forcing with block-causal attention over chunks of 3 frames. Each chunk
of a 24-frame clip gets its own noise level (clean with probability `p_clean`); the model
predicts the flow (noise - x0) and the loss covers noisy chunks only. This teaches the chunk
sampler's two situations at once: denoise a chunk given clean context, and tolerate imperfect
(noisy or drifted) context, which is what long self-conditioned rollouts feed it.

    python -m tethercache.toyworld.train                      # the shipped weights (make toy-model)
    python -m tethercache.toyworld.train --steps 200 --out /tmp/toy   # a quick try
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from ..model.codec import PixelCodec
from ..model.wan import SIZES, X0_SIGMA_FLOOR, CausalWan
from .conditioning import CODEC_FACTOR, PX_PER_TOKEN, pose_tokens
from .text import GrammarTextEncoder
from .world import training_batches

WEIGHTS_DIR = Path(__file__).parent / "weights"
CHUNK = 3


class Trainer:
    def __init__(self, a):
        torch.manual_seed(a.seed)
        self.a = a
        self.model = CausalWan(SIZES["toy"]).train()
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.codec = PixelCodec(CODEC_FACTOR)
        self.text = GrammarTextEncoder(SIZES["toy"].text_dim)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=a.lr, betas=(0.9, 0.99),
                                     weight_decay=a.weight_decay)
        self.data = training_batches(a.batch, a.clip, "train", seed=a.seed)
        self.gen = torch.Generator().manual_seed(a.seed + 1)
        held = next(training_batches(a.batch, a.clip, "heldout", seed=12345))
        self.held = self._prepare(held, torch.Generator().manual_seed(7))

    def _prepare(self, batch, gen):
        """Latents, text, poses, per-frame noise levels and noisy inputs for one batch."""
        a = self.a
        x0 = self.codec.encode(batch.images())                       # [B, 12, F, 16, 16]
        B, n_chunks = x0.shape[0], a.clip // CHUNK
        u = torch.rand(B, n_chunks, generator=gen) * (1 - a.sigma_min) + a.sigma_min
        clean = torch.rand(B, n_chunks, generator=gen) < a.p_clean
        sigma = torch.where(clean, torch.zeros_like(u), u).repeat_interleave(CHUNK, dim=1)
        noise = torch.randn(x0.shape, generator=gen)
        s = sigma[:, None, :, None, None]
        return {"xt": (1 - s) * x0 + s * noise, "target": noise - x0, "sigma": sigma,
                "text": self.text.encode(batch.prompts), "poses": pose_tokens(batch.poses)}

    def loss(self, model, b):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.a.bf16):
            pred = model(b["xt"], b["sigma"] * 1000, model.text_kv(b["text"]),
                         causal_chunk=CHUNK, poses=b["poses"])
        err = (pred.float() - b["target"]).pow(2).mean(dim=(1, 3, 4))   # [B, F]
        noisy = (b["sigma"] > 0).float()
        return (err * noisy).sum() / noisy.sum().clamp(min=1)

    def lr_at(self, step):
        a = self.a
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        p = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * p)))

    @torch.no_grad()
    def update_ema(self):
        for pe, p in zip(self.ema.parameters(), self.model.parameters()):
            pe.lerp_(p, 1 - self.a.ema)

    def run(self):
        a = self.a
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        log = [("step", "loss", "heldout_ema_loss", "lr", "seconds")]
        t0, running = time.time(), None
        for step in range(a.steps):
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(step)
            b = self._prepare(next(self.data), self.gen)
            loss = self.loss(self.model, b)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.update_ema()
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if step % a.log_every == 0 or step == a.steps - 1:
                with torch.no_grad():
                    held = self.loss(self.ema, self.held).item()
                log.append((step, round(running, 5), round(held, 5), self.lr_at(step),
                            round(time.time() - t0, 1)))
                print(f"step {step:5d}  loss {running:.4f}  heldout(ema) {held:.4f}  "
                      f"{time.time() - t0:7.0f}s", flush=True)
                with open(out / "train_log.csv", "w", newline="") as f:
                    csv.writer(f).writerows(log)
        self.save(out, log, time.time() - t0)

    def save(self, out: Path, log, seconds):
        sd = {k: v.detach().float().contiguous() for k, v in self.ema.net.state_dict().items()}
        save_file(sd, out / "toy_wan.safetensors", metadata={"format": "diffusers",
                                                             "config": json.dumps(SIZES["toy"].__dict__)})
        plot_loss(log, out / "loss.png")
        write_card(out, self.a, log, seconds, sum(v.numel() for v in sd.values()))


def plot_loss(log, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = log[1:]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r[0] for r in rows], [r[1] for r in rows], label="train (smoothed)")
    ax.plot([r[0] for r in rows], [r[2] for r in rows], label="held-out, EMA weights")
    ax.set(xlabel="step", ylabel="flow MSE (noisy chunks)", yscale="log", title="toy causal Wan")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


HEAD_NOTES = {"flow": " (the network outputs the flow)",
              "x0": " (the network outputs the clean latent, read as flow (x - x0) / sigma; "
                    "Li & He 2025: precise at low noise where a flow head is not)"}


def sampling_line() -> str:
    """The toy backbone's sampler as the config ships it, so the card cannot go stale."""
    from omegaconf import OmegaConf
    cfg = Path(__file__).resolve().parents[2] / "conf" / "backbone" / "toy.yaml"
    if not cfg.exists():                  # installed without the repo's conf/
        return "see the repo's conf/backbone/toy.yaml"
    s = OmegaConf.load(cfg).sampler
    last = s.get("sigma_min") or f"1/{s.euler_steps}"
    restart = (f", {s.restarts} restart(s) from sigma {s.restart_sigma} in {s.restart_steps} steps"
               if s.get("restarts") else "")
    return (f"{s.kind}, {s.euler_steps} steps, shift {s.shift}, x0 read out at sigma {last}"
            f"{restart}, context noise {s.context_noise}")


def write_card(out: Path, a, log, seconds, n_params):
    last = log[-1]
    (out / "MODEL_CARD.md").write_text(f"""# Toy causal Wan (embedded default backbone)

- **Model**: the project's `CausalWan` (diffusers `WanTransformer3DModel` modules) at size `toy`
  ({SIZES['toy'].layers} blocks, width {SIZES['toy'].dim}, {SIZES['toy'].heads} heads, ffn {SIZES['toy'].ffn_dim}), {n_params/1e6:.2f} M parameters,
  EMA weights ({a.ema}) in diffusers naming, float32 safetensors.
- **Data**: procedural toy world (`tethercache/toyworld`), train split seeds 0..999999, 24-frame
  clips at random camera phases, 32x32 RGB, pixel-unshuffle {CODEC_FACTOR} -> 12x16x16 latents,
  patch {SIZES['toy'].patch_size[1]} -> {(32 // PX_PER_TOKEN) ** 2} tokens of {PX_PER_TOKEN}x{PX_PER_TOKEN} px per frame.
- **Conditioning**: grammar prompt (GrammarTextEncoder, 6 tokens) and **camera pose**: the
  camera's x (pixels / {PX_PER_TOKEN}) shifts the RoPE width axis, so tokens carry world columns.
  The real Self-Forcing model is text-only; pose conditioning is a property of this toy backbone.
- **Objective**: diffusion forcing, block-causal attention over chunks of {CHUNK} frames, per-chunk
  sigma ~ U({a.sigma_min}, 1) or clean with p = {a.p_clean}, flow (noise - x0) MSE on noisy chunks.
  Head: `prediction: {SIZES['toy'].prediction}`{HEAD_NOTES[SIZES['toy'].prediction]}.
- **Optimiser**: AdamW lr {a.lr} (warm-up {a.warmup}, cosine to 10 %), batch {a.batch}, grad clip 1,
  bf16 autocast = {a.bf16}, seed {a.seed}, {a.steps} steps, {seconds/60:.1f} min on this machine's CPU
  ({__import__('torch').get_num_threads()} threads).
- **Final loss**: train (smoothed) {last[1]}, held-out (EMA) {last[2]}. Curve: `loss.png`, `train_log.csv`.
- **Reproduce**: `make toy-model` (= `python -m tethercache.toyworld.train {' '.join(a.argv)}`).
- **Sampling** (`conf/backbone/toy.yaml`): {sampling_line()}; the cache-writing pass sees
  the chunk re-noised (`context_noise`, the drift dial: see `experiments/README.md`);
  rollouts start from the world's first real chunk (`start_frames: 3`), because from text alone
  this model draws a blurry, blocky first chunk that every later chunk inherits.
- **Limits**: not close to real footage yet (measured numbers: `experiments/README.md`): the
  first 30 s of a window rollout score at the level of mildly corrupted real video on imaging
  quality, sprites are drawn as coloured blobs (subject consistency near 0), and quality keeps
  drifting over minutes.
""")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--clip", type=int, default=24)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--ema", type=float, default=0.998)
    ap.add_argument("--p-clean", type=float, default=0.3)
    ap.add_argument("--sigma-min", type=float, default=None,
                    help="lowest training sigma (default 0.02; the x0 floor for x0-prediction)")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=50)
    ap.add_argument("--out", default=str(WEIGHTS_DIR))
    a = ap.parse_args(argv)
    if a.sigma_min is None:      # below the floor an x0 head cannot express the flow (wan.py)
        a.sigma_min = X0_SIGMA_FLOOR if SIZES["toy"].prediction == "x0" else 0.02
    import sys
    a.argv = sys.argv[1:] if argv is None else list(argv)
    return a


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    Trainer(a).run()


if __name__ == "__main__":
    main()
