"""The toy trainer: the training loop, its checkpoints and resume, and the weights it writes.

Objective: diffusion forcing with block-causal attention over chunks of 3 frames. Each chunk
of a 24-frame clip gets its own noise level (clean with probability `p_clean`); the model
predicts the flow (noise - x0) and the loss covers noisy chunks only. This teaches the chunk
sampler's two situations at once: denoise a chunk given clean context, and tolerate imperfect
(noisy or drifted) context, which is what long self-conditioned rollouts feed it.

Resumable: every `ckpt_every` steps (and at `stop_at`) the trainer writes `<out>/checkpoint.pt`
(model, EMA, optimiser, the data sampler's and the noise generator's states, step, log); `resume`
continues from it, and gives the same weights as an uninterrupted run (bit for bit on CPU at the
same thread count; the recipe arguments must match, checked).
"""
from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from ..model.codec import PixelCodec
from ..model.wan import SIZES, CausalWan
from .card import plot_loss, write_card
from .conditioning import CHUNK, CODEC_FACTOR, pose_tokens
from .text import GrammarTextEncoder
from .world import WorldConfig, training_batches

WEIGHTS_DIR = Path(__file__).parent / "weights"    # the shipped weights
CHECKPOINT = "checkpoint.pt"
WEIGHTS = "toy_wan.safetensors"
RESULTS = (WEIGHTS, "MODEL_CARD.md", "train_log.csv", "loss.png")     # what a run writes in <out>
# Arguments that only say where/how fast to run; every other argument is the recipe, and a resumed
# run must use the recipe its checkpoint was written with.
RUN_ONLY_ARGS = {"threads", "device", "out", "resume", "stop_at", "ckpt_every", "argv", "overwrite", "recipe"}


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
        save_file(sd, out / WEIGHTS, metadata={
            "format": "diffusers", "config": json.dumps(SIZES["toy"].__dict__),
            "world": json.dumps(self.world.describe())})
        plot_loss(log, out / "loss.png")
        write_card(out, self.a, log, seconds, sum(v.numel() for v in sd.values()), self.world,
                   self.a.recipe)


