"""Train the toy causal Wan on the toy world (the same model code as the real backbone).

Objective: diffusion forcing with block-causal attention over chunks of 3 frames. Each chunk
of a 24-frame clip gets its own noise level (clean with probability `p_clean`); the model
predicts the flow (noise - x0) and the loss covers noisy chunks only. This teaches the chunk
sampler's two situations at once: denoise a chunk given clean context, and tolerate imperfect
(noisy or drifted) context, which is what long self-conditioned rollouts feed it.

    python -m tethercache.toyworld.train                      # the shipped weights (make toy-model)
    python -m tethercache.toyworld.train --steps 200 --out /tmp/toy   # a quick try

Resumable: every `--ckpt-every` steps (and at `--stop-at`) the trainer writes `<out>/checkpoint.pt`
(model, EMA, optimiser, the data sampler's and the noise generator's states, step, log); `--resume`
continues from it, and gives the same weights as an uninterrupted run (bit for bit on CPU at the
same thread count; the recipe arguments must match, checked). `--stop-at N` ends a piece after N
steps, so a long run can be split: `... --stop-at 1000`, then `... --resume`.

Sprite levers (issue 11): `--sprite-weight w` weighs the latent positions a sprite draws on w times
in the loss (sprites are ~1 % of pixels); `--sprite-clips p` draws that fraction of training clips
among the camera phases that show a sprite; `--sprite-size` / `--band-amp` / `--sprite-layout`
change the world (`WorldConfig`; recorded in the weights' metadata and the card).
"""
from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..model.codec import PixelCodec
from ..model.wan import SIZES, X0_SIGMA_FLOOR, CausalWan
from .conditioning import CODEC_FACTOR, PX_PER_TOKEN, pose_tokens
from .text import GrammarTextEncoder
from .world import WorldConfig, training_batches

WEIGHTS_DIR = Path(__file__).parent / "weights"
CHUNK = 3
CHECKPOINT = "checkpoint.pt"
# Arguments that only say where/how fast to run; every other argument is the recipe, and a resumed
# run must use the recipe its checkpoint was written with.
RUN_ONLY_ARGS = {"threads", "device", "out", "resume", "stop_at", "ckpt_every", "argv"}


def world_of(a) -> WorldConfig:
    """The toy world a recipe trains on (its world levers)."""
    return WorldConfig(sprite_size=a.sprite_size, band_amp_scale=a.band_amp, sprite_layout=a.sprite_layout)


class ResumeError(ValueError):
    """A checkpoint that cannot continue this run (the message names the differing argument)."""


class Trainer:
    def __init__(self, a):
        torch.manual_seed(a.seed)
        self.a = a
        self.device = torch.device(a.device)
        self.world = world_of(a)
        self.model = CausalWan(SIZES["toy"]).train()
        if a.init:                        # fine-tune from existing weights (probes)
            from safetensors.torch import load_file
            self.model.net.load_state_dict(load_file(a.init))
        self.model.to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.codec = PixelCodec(CODEC_FACTOR)
        self.text = GrammarTextEncoder(SIZES["toy"].text_dim)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=a.lr, betas=(0.9, 0.99),
                                     weight_decay=a.weight_decay)
        self.data = training_batches(a.batch, a.clip, "train", seed=a.seed, config=self.world,
                                     sprite_clips=a.sprite_clips)
        self.gen = torch.Generator().manual_seed(a.seed + 1)    # on CPU: same draws on every device
        held = next(training_batches(a.batch, a.clip, "heldout", seed=12345, config=self.world))
        self.held = self._prepare(held, torch.Generator().manual_seed(7))
        self.step, self.seconds, self.running = 0, 0.0, None
        self.log = [("step", "loss", "heldout_ema_loss", "lr", "seconds")]

    def _prepare(self, batch, gen):
        """Latents, text, poses, per-frame noise levels, noisy inputs and loss weights for one batch."""
        a = self.a
        x0 = self.codec.encode(batch.images())                       # [B, 12, F, 16, 16]
        B, n_chunks = x0.shape[0], a.clip // CHUNK
        u = torch.rand(B, n_chunks, generator=gen) * (1 - a.sigma_min) + a.sigma_min
        clean = torch.rand(B, n_chunks, generator=gen) < a.p_clean
        sigma = torch.where(clean, torch.zeros_like(u), u).repeat_interleave(CHUNK, dim=1)
        noise = torch.randn(x0.shape, generator=gen)
        s = sigma[:, None, :, None, None]
        # a latent position is a sprite's when any of its CODEC_FACTOR^2 pixels is
        sprite = F.max_pool2d(batch.sprite.flatten(0, 1)[:, None].float(), CODEC_FACTOR)
        sprite = sprite.view(B, -1, *x0.shape[-2:])                  # [B, F, 16, 16]
        b = {"xt": (1 - s) * x0 + s * noise, "target": noise - x0, "sigma": sigma,
             "text": self.text.encode(batch.prompts), "poses": pose_tokens(batch.poses), "sprite": sprite}
        return {k: v.to(self.device) for k, v in b.items()}

    def _errors(self, model, b):
        """Per-position squared error [B, F, h, w] (mean over channels)."""
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.a.bf16):
            pred = model(b["xt"], b["sigma"] * 1000, model.text_kv(b["text"]),
                         causal_chunk=CHUNK, poses=b["poses"])
        return (pred.float() - b["target"]).pow(2).mean(dim=1)

    def loss(self, model, b):
        """Flow MSE over noisy chunks; sprite positions weigh `sprite_weight` times (1: plain MSE)."""
        weight = (1 + (self.a.sprite_weight - 1) * b["sprite"]) * (b["sigma"] > 0).float()[..., None, None]
        return (self._errors(model, b) * weight).sum() / weight.sum().clamp(min=1)

    @torch.no_grad()
    def heldout(self) -> dict:
        """EMA model on the fixed held-out batch: the unweighted loss, and split by sprite/background."""
        err, b = self._errors(self.ema, self.held), self.held
        noisy = (b["sigma"] > 0).float()[..., None, None].expand_as(err)
        parts = {"loss": noisy, "sprite": noisy * b["sprite"], "background": noisy * (1 - b["sprite"])}
        return {k: float((err * m).sum() / m.sum().clamp(min=1)) for k, m in parts.items()}

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

    # ---- checkpoints ------------------------------------------------------------------------
    def recipe(self) -> dict:
        return {k: v for k, v in vars(self.a).items() if k not in RUN_ONLY_ARGS}

    def save_checkpoint(self, out: Path) -> Path:
        state = {"step": self.step, "seconds": self.seconds, "running": self.running, "log": self.log,
                 "recipe": self.recipe(), "model": self.model.state_dict(), "ema": self.ema.state_dict(),
                 "opt": self.opt.state_dict(), "gen": self.gen.get_state(), "data": self.data.state(),
                 "torch_rng": torch.get_rng_state()}
        tmp = out / (CHECKPOINT + ".tmp")
        torch.save(state, tmp)
        os.replace(tmp, out / CHECKPOINT)          # a kill mid-write leaves the previous checkpoint
        return out / CHECKPOINT

    def load_checkpoint(self, path: Path) -> None:
        state = torch.load(path, map_location=self.device, weights_only=False)
        mine = self.recipe()
        for k in sorted(set(mine) | set(state["recipe"])):
            if mine.get(k) != state["recipe"].get(k):
                raise ResumeError(f"--resume: {path} was written with {k}={state['recipe'].get(k)!r}, "
                                  f"this run has {k}={mine.get(k)!r}; use the same recipe or another --out")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
        self.data.load_state(state["data"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.seconds, self.running = state["step"], state["seconds"], state["running"]
        self.log = [tuple(r) for r in state["log"]]

    # ---- loop -------------------------------------------------------------------------------
    def run(self) -> bool:
        """Train until `steps` (True: weights written) or `stop_at` (False: checkpoint written)."""
        a = self.a
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        if a.resume and (out / CHECKPOINT).exists():
            self.load_checkpoint(out / CHECKPOINT)
            print(f"resumed from {out / CHECKPOINT} at step {self.step}", flush=True)
        elif a.resume:
            print(f"--resume: no {CHECKPOINT} in {out}: starting at step 0", flush=True)
        end = a.steps if a.stop_at is None else min(a.steps, a.stop_at)
        t0 = time.time() - self.seconds
        while self.step < end:
            step = self.step
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(step)
            b = self._prepare(next(self.data), self.gen)
            loss = self.loss(self.model, b)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            self.opt.step()
            self.update_ema()
            self.running = loss.item() if self.running is None else 0.98 * self.running + 0.02 * loss.item()
            self.step, self.seconds = step + 1, time.time() - t0
            if step % a.log_every == 0 or step == a.steps - 1:
                held = self.heldout()
                self.log.append((step, round(self.running, 5), round(held["loss"], 5), self.lr_at(step),
                                 round(self.seconds, 1), round(held["sprite"], 5), round(held["background"], 5)))
                print(f"step {step:5d}  loss {self.running:.4f}  heldout(ema) {held['loss']:.4f}  "
                      f"sprite {held['sprite']:.4f}  background {held['background']:.4f}  "
                      f"{self.seconds:7.0f}s", flush=True)
                self.write_log(out)
            if a.ckpt_every and self.step % a.ckpt_every == 0 and self.step < end:
                self.save_checkpoint(out)
        if self.step < a.steps:
            path = self.save_checkpoint(out)
            print(f"stopped at step {self.step}: {path}; continue with --resume", flush=True)
            return False
        self.save(out, self.log, self.seconds)
        (out / CHECKPOINT).unlink(missing_ok=True)   # the weights are the result; the piece state is spent
        return True

    def write_log(self, out: Path):
        header = (*self.log[0], "heldout_sprite_loss", "heldout_background_loss")
        with open(out / "train_log.csv", "w", newline="") as f:
            csv.writer(f).writerows([header, *self.log[1:]])

    def save(self, out: Path, log, seconds):
        sd = {k: v.detach().float().cpu().contiguous() for k, v in self.ema.net.state_dict().items()}
        save_file(sd, out / "toy_wan.safetensors", metadata={
            "format": "diffusers", "config": json.dumps(SIZES["toy"].__dict__),
            "world": json.dumps(self.world.describe())})
        plot_loss(log, out / "loss.png")
        write_card(out, self.a, log, seconds, sum(v.numel() for v in sd.values()), self.world)


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


def write_card(out: Path, a, log, seconds, n_params, world: WorldConfig):
    last = log[-1]
    levers = (f" Sprite levers: loss weight {a.sprite_weight} on sprite positions, "
              f"{a.sprite_clips:.0%} of clips drawn with a sprite in view, world {world.describe() or 'default'}."
              if a.sprite_weight != 1 or a.sprite_clips or world.describe() else "")
    init = (f"- **Starts from** `{a.init}`, not a random init: the previous stage, kept in the package\n"
            f"  (the Makefile retrains every stage: `make toy-model-v1`, `make toy-model-v2`), so the steps and\n"
            f"  time above are this stage's only.\n" if a.init else "")
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
  sigma ~ U({a.sigma_min}, 1) or clean with p = {a.p_clean}, flow (noise - x0) MSE on noisy chunks.{levers}
  Head: `prediction: {SIZES['toy'].prediction}`{HEAD_NOTES[SIZES['toy'].prediction]}.
- **Optimiser**: AdamW lr {a.lr} (warm-up {a.warmup}, cosine to 10 %), batch {a.batch}, grad clip 1,
  bf16 autocast = {a.bf16}, seed {a.seed}, {a.steps} steps, {seconds/60:.1f} min on {_machine(a)}.
{init}- **Final loss**: train (smoothed) {last[1]}, held-out (EMA) {last[2]}. Curve: `loss.png`, `train_log.csv`.
- **Reproduce**: `make toy-model` (= `python -m tethercache.toyworld.train {recipe_args(a)}`; resumable:
  add `--resume`, and `--stop-at N` to run it in pieces).
- **Sampling** (`conf/backbone/toy.yaml`): {sampling_line()}; the cache-writing pass sees
  the chunk re-noised (`context_noise`, the drift dial: see `experiments/README.md`);
  rollouts start from the world's first real chunk (`start_frames: 3`), because from text alone
  this model draws a blurry, blocky first chunk that every later chunk inherits.
- **World**: {world.describe() or 'the default world'} (recorded in the safetensors metadata `world`);
  `backbone.world` in `conf/backbone/toy.yaml` must name the same fields, or runs are refused.
- **Measured** (30 s window rollouts of the 8 held-out worlds, policy tables, drift, subject return):
  `experiments/README.md`.
""")


def recipe_args(a) -> str:
    """The recipe's command-line arguments that differ from the defaults (no run-only flags)."""
    defaults = vars(parse_args([]))
    flags = []
    for k, v in vars(a).items():
        if k in RUN_ONLY_ARGS or v == defaults[k]:
            continue
        flag = "--" + k.replace("_", "-")
        flags.append("--no-bf16" if k == "bf16" else f"{flag} {v}")
    return " ".join(flags)


def _machine(a) -> str:
    if a.device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(a.device))} (device={a.device})"
    return f"this machine's CPU ({torch.get_num_threads()} threads)"


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
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints (0: none)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if it exists")
    ap.add_argument("--stop-at", type=int, default=None, help="end this piece after N steps (checkpointed)")
    ap.add_argument("--init", default=None, help="start from these weights (safetensors) instead of random")
    ap.add_argument("--sprite-weight", type=float, default=1.0, help="loss weight of sprite positions (> 1 biases the optimum toward sprite colour: rollouts "
                         "bleed it; experiments/README.md, 'Training toy world v2')")
    ap.add_argument("--sprite-clips", type=float, default=0.0, help="fraction of clips showing a sprite")
    ap.add_argument("--sprite-size", type=int, default=WorldConfig.sprite_size, help="world: sprite px")
    ap.add_argument("--band-amp", type=float, default=WorldConfig.band_amp_scale,
                    help="world: band wave amplitude scale (0: flat bands)")
    ap.add_argument("--sprite-layout", default=WorldConfig.sprite_layout,
                    help="world: free (the seed places sprites along the strip) or start (all in the first view)")
    a = ap.parse_args(argv)
    checks = {"steps": a.steps >= 1, "batch": a.batch >= 1, "clip": a.clip >= CHUNK and a.clip % CHUNK == 0,
              "sprite_weight": a.sprite_weight > 0, "sprite_clips": 0 <= a.sprite_clips <= 1,
              "ckpt_every": a.ckpt_every >= 0, "stop_at": a.stop_at is None or a.stop_at >= 1,
              "device": a.device == "cpu" or a.device.startswith("cuda")}
    for key, ok in checks.items():
        if not ok:
            ap.error(f"--{key.replace('_', '-')}={getattr(a, key)!r} is out of range")
    from ..errors import ConfigError
    from .world import world_config
    try:                                 # the world's ranges live in one place (world.WORLD_RANGES)
        world_config({"sprite_size": a.sprite_size, "band_amp_scale": a.band_amp,
                      "sprite_layout": a.sprite_layout}, key="world")
    except ConfigError as e:
        ap.error(f"--sprite-size / --band-amp / --sprite-layout: {e}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device={a.device}: no CUDA device here")
    if a.sigma_min is None:      # below the floor an x0 head cannot express the flow (wan.py)
        a.sigma_min = X0_SIGMA_FLOOR if SIZES["toy"].prediction == "x0" else 0.02
    a.argv = sys.argv[1:] if argv is None else list(argv)
    return a


def main(argv=None):
    a = parse_args(argv)
    torch.set_num_threads(a.threads)
    try:
        Trainer(a).run()
    except ResumeError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
