"""Train the toy causal Wan on the toy world (the same model code as the real backbone).

    python -m tethercache.toyworld.train --steps 200            # a quick try: outputs/toy_model/<date>/<time>-<pid>/
    make toy-model                                              # the shipped weights (their MODEL_CARD.md)

Every argument is checked before any work: a bad one is one line `error: --flag=value: ...`,
exit code 2, nothing written. `--out` must not hold a run's results (weights, card, log, curve)
unless `--overwrite` says to replace them: the package's weights folder always holds the shipped
weights, so writing there needs it too. `--resume` continues from `<out>/checkpoint.pt` (its
recipe arguments must match); `--stop-at N` ends a piece after N steps, so a long run can be
split: `... --stop-at 1000`, then `... --resume`.

Sprite levers: `--sprite-weight w` weighs the latent positions a sprite draws on w times in the
loss (sprites are ~1 % of pixels); `--sprite-clips p` draws that fraction of training clips among
the camera phases that show a sprite; `--sprite-size` / `--band-amp` / `--sprite-layout` change
the world (`WorldConfig`; recorded in the weights' metadata and the card).
"""
from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..model.wan import SIZES, X0_SIGMA_FLOOR
from .card import recipe_args, sampling_line  # noqa: F401 - re-exported: the trainer's names, reached from its CLI
from .conditioning import CHUNK
from .trainer import CHECKPOINT, RESULTS, RUN_ONLY_ARGS, WEIGHTS_DIR, ResumeError, Trainer, world_of  # noqa: F401
from .world import WorldConfig, world_config

SEED_MAX = 2**31 - 1


class ArgError(ValueError):
    """A bad argument: the message starts with `--flag=value`."""


class _Parser(argparse.ArgumentParser):
    """argparse's own errors (unknown flag, not a number) as ArgError, flag first."""

    def error(self, message):
        bad_type = re.match(r"argument (\S+): invalid (int|float) value: '(.*)'$", message)
        if bad_type:
            flag, kind, value = bad_type.groups()
            raise ArgError(f"{flag}={value}: allowed: {'a whole number' if kind == 'int' else 'a number'}")
        if message.startswith("unrecognized arguments: "):
            raise ArgError(f"{message.split(': ', 1)[1]}: unknown argument; allowed: see --help")
        raise ArgError(message.removeprefix("argument "))


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ap.add_argument("--out", default=None, help="default: a fresh outputs/toy_model/<date>/<time>-<pid>/")
    ap.add_argument("--overwrite", action="store_true",
                    help="replace the results in an --out that holds them (the package's weights folder)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--ckpt-every", type=int, default=100, help="steps between checkpoints (0: none)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt if it exists")
    ap.add_argument("--stop-at", type=int, default=None, help="end this piece after N steps (checkpointed)")
    ap.add_argument("--init", default=None, help="start from these weights (safetensors) instead of random")
    ap.add_argument("--sprite-weight", type=float, default=1.0,
                    help="loss weight of sprite positions (> 1 biases the optimum toward sprite colour: rollouts "
                         "bleed it; experiments/README.md, 'Training toy world v2')")
    ap.add_argument("--sprite-clips", type=float, default=0.0, help="fraction of clips showing a sprite")
    ap.add_argument("--sprite-size", type=int, default=WorldConfig.sprite_size, help="world: sprite px")
    ap.add_argument("--band-amp", type=float, default=WorldConfig.band_amp_scale,
                    help="world: band wave amplitude scale (0: flat bands)")
    ap.add_argument("--sprite-layout", default=WorldConfig.sprite_layout,
                    help="world: free (the seed places sprites along the strip) or start (all in the first view)")
    return ap


def _check_numbers(a) -> None:
    """Ranges of the numeric arguments: (flag, ok, what is allowed)."""
    checks = [
        ("steps", a.steps >= 1, "a whole number >= 1"),
        ("batch", a.batch >= 1, "a whole number >= 1"),
        ("clip", a.clip >= CHUNK and a.clip % CHUNK == 0, f"a positive multiple of the chunk ({CHUNK})"),
        ("lr", math.isfinite(a.lr) and a.lr > 0, "a finite number > 0"),
        ("warmup", 0 <= a.warmup <= a.steps, f"a whole number in [0, --steps={a.steps}]"),
        ("weight_decay", math.isfinite(a.weight_decay) and a.weight_decay >= 0, "a finite number >= 0"),
        ("ema", 0 <= a.ema < 1, "a number in [0, 1)"),
        ("p_clean", 0 <= a.p_clean <= 1, "a number in [0, 1]"),
        ("sigma_min", a.sigma_min is None or 0 < a.sigma_min < 1, "a number in (0, 1)"),
        ("threads", a.threads >= 1, "a whole number >= 1"),
        ("seed", 0 <= a.seed <= SEED_MAX, f"a whole number in [0, {SEED_MAX}]"),
        ("log_every", a.log_every >= 1, "a whole number >= 1"),
        ("ckpt_every", a.ckpt_every >= 0, "a whole number >= 0 (0: no checkpoints)"),
        ("stop_at", a.stop_at is None or a.stop_at >= 1, "a whole number >= 1"),
        ("sprite_weight", math.isfinite(a.sprite_weight) and a.sprite_weight > 0, "a finite number > 0"),
        ("sprite_clips", 0 <= a.sprite_clips <= 1, "a fraction in [0, 1]"),
        ("device", a.device == "cpu" or a.device.startswith("cuda"), "cpu, cuda or cuda:N"),
    ]
    for key, ok, allowed in checks:
        if not ok:
            raise ArgError(f"--{key.replace('_', '-')}={getattr(a, key)}: allowed: {allowed}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        raise ArgError(f"--device={a.device}: no CUDA device here; allowed: cpu")


WORLD_FLAGS = {"sprite_size": "--sprite-size", "band_amp_scale": "--band-amp", "sprite_layout": "--sprite-layout"}


def _check_world(a) -> None:
    """The world's ranges live in one place (world.WORLD_RANGES): each flag alone, then all together
    (the start layout bounds the sprite size)."""
    fields = {field: getattr(a, flag[2:].replace("-", "_")) for field, flag in WORLD_FLAGS.items()}
    for field, given in [*((f, {f: v}) for f, v in fields.items()), ("sprite_size", fields)]:
        try:
            world_config(given, key="world")
        except ConfigError as e:
            raise ArgError(f"{WORLD_FLAGS[field]}={fields[field]}: {e}") from None


def _check_init(a) -> None:
    if a.init is None:
        return
    path = Path(a.init)
    if not path.is_file():
        raise ArgError(f"--init={a.init}: no such file; allowed: toy weights (.safetensors)")
    from safetensors import safe_open

    from ..model.wan import CausalWan
    try:
        with safe_open(str(path), "pt") as f:
            keys = set(f.keys())
    except Exception:                        # noqa: BLE001 - any unreadable header is the same answer
        raise ArgError(f"--init={a.init}: not a safetensors file; allowed: toy weights (.safetensors)") from None
    expected = set(CausalWan(SIZES["toy"]).net.state_dict())
    if keys != expected:
        raise ArgError(f"--init={a.init}: not toy-model weights ({len(expected - keys)} tensors missing, "
                       f"{len(keys - expected)} unknown); allowed: weights of model size toy")


def _check_out(a) -> None:
    """--out: a directory (made if missing) we may write, holding no results unless --overwrite."""
    out = Path(a.out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ArgError(f"--out={a.out}: {'is' if parent == out else 'below'} a file; allowed: a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise ArgError(f"--out={a.out}: {parent} is not writable; allowed: a writable directory")
            break
    held = [name for name in RESULTS if (out / name).exists()]
    resuming = a.resume and (out / CHECKPOINT).exists()
    if held and not resuming and not a.overwrite:
        shipped = " (the shipped weights)" if out.resolve() == WEIGHTS_DIR.resolve() else ""
        raise ArgError(f"--out={a.out}: holds {', '.join(held)}{shipped}; allowed: a new or empty directory, "
                       f"--resume with its {CHECKPOINT}, or --overwrite to replace them")


def default_out() -> str:
    """A fresh run dir, like the runs': outputs/toy_model/<date>/<time>-<pid>."""
    return time.strftime(f"outputs/toy_model/%Y-%m-%d/%H-%M-%S-{os.getpid()}")


def parse_args(argv=None):
    """The checked arguments; a bad one is one line `error: --flag=value: ...` and exit code 2."""
    try:
        a = build_parser().parse_args(argv)
        a.out = default_out() if a.out is None else a.out
        for check in (_check_numbers, _check_world, _check_init, _check_out):
            check(a)
    except ArgError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    _fill_defaults(a)
    a.argv = sys.argv[1:] if argv is None else list(argv)
    a.recipe = recipe_args(a, vars(_fill_defaults(build_parser().parse_args([]))), RUN_ONLY_ARGS)
    return a


def _fill_defaults(a):
    if a.sigma_min is None:      # below the floor an x0 head cannot express the flow (wan.py)
        a.sigma_min = X0_SIGMA_FLOOR if SIZES["toy"].prediction == "x0" else 0.02
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
