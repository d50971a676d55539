"""The toy weights' model card and loss curve, written next to the weights a run produces."""
from __future__ import annotations

from pathlib import Path

import torch

from ..model.wan import SIZES
from .conditioning import CHUNK, CODEC_FACTOR, PX_PER_TOKEN
from .world import WorldConfig


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


def write_card(out: Path, a, log, seconds, n_params, world: WorldConfig, recipe: str):
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
  bf16 autocast = {a.bf16}, seed {a.seed}, {a.steps} steps, {seconds/60:.1f} min on {machine(a)}.
{init}- **Final loss**: train (smoothed) {last[1]}, held-out (EMA) {last[2]}. Curve: `loss.png`, `train_log.csv`.
- **Reproduce**: `make toy-model` (= `python -m tethercache.toyworld.train {recipe}`; resumable:
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


def recipe_args(a, defaults: dict, run_only: set) -> str:
    """The recipe's command-line arguments that differ from the CLI's `defaults` (no run-only
    flags): what `make toy-model` passes."""
    flags = []
    for k, v in vars(a).items():
        if k in run_only or v == defaults[k]:
            continue
        flag = "--" + k.replace("_", "-")
        flags.append("--no-bf16" if k == "bf16" else f"{flag} {v}")
    return " ".join(flags)


def machine(a) -> str:
    if a.device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(a.device))} (device={a.device})"
    return f"this machine's CPU ({torch.get_num_threads()} threads)"


