"""Reference traces of the official TetherCache release, for tests/test_official_traces.py.

    python experiments/official_traces/generate.py --tree /tmp/traces/tc --out T.pt \
        [--alpha A --tau T --sink S --recent R --budget K --chunks N --commit-rule]

`--tree`: a work tree of the official repository (my4f175/TetherCache at 37c581a; with
`--commit-rule`, that tree with Commit Forcing's `integrations/tethercache/commit_rule.patch`
applied). The project builds the inputs: a tiny Self-Forcing-format checkpoint (tests/
tiny_checkpoints.py, seeded), a prompt embedding and the initial noise; the official pipeline
runs on them in a child process (official_run.py, inside the tree) on CPU in float32, and this
script turns what it recorded into the trace. The trace holds everything the project needs to
replay the run (`GivenNoise`) and, per chunk, the official output latents, every pass's x0 and
each layer's cache after the context pass: frame per slot, region per slot, the RoPE time
position each slot and each query had in that pass's readout, and the stored K/V.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("official_run.py")
LATENT_HW = (4, 8)                  # 2 x 4 tokens per frame, h != w so both RoPE axes differ
TEXT_TOKENS = 7                     # prompt embedding tokens (the model pads to Wan's 512)
SEED, NOISE_SEED, RENOISE_SEED = 0, 1, 2
EMPTY, SINK, MEMORY, RECENT = 0, 1, 2, 3       # tethercache.cache.protocol codes


def tiny_model():
    from conftest import perturbed_tiny              # tests/: the project's seeded tiny model
    return perturbed_tiny(SEED)


def fingerprint(state: dict) -> str:
    """sha256 over names, shapes and float32 bytes of a state dict (independent of torch.save)."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().float().contiguous()
        h.update(f"{name}{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def official_geometry(cfg) -> dict:
    """The tiny WanConfig as the official CausalWanModel's constructor arguments."""
    return dict(in_dim=cfg.in_channels, dim=cfg.dim, ffn_dim=cfg.ffn_dim, freq_dim=cfg.freq_dim,
                text_dim=cfg.text_dim, out_dim=cfg.out_channels, num_heads=cfg.heads,
                num_layers=cfg.layers, qk_norm=True, cross_attn_norm=cfg.cross_attn_norm,
                eps=cfg.eps)


def make_inputs(cfg, frames: int) -> dict:
    g = torch.Generator().manual_seed(NOISE_SEED)
    text = torch.randn(1, TEXT_TOKENS, cfg.text_dim, generator=g)
    initial = torch.randn(1, frames, cfg.in_channels, *LATENT_HW, generator=g)   # [B, F, C, H, W]
    return {"text": text, "initial": initial}


def slot_table(layer: dict, S: int, M: int, K: int, T: int):
    """(frame, region) of each of the K slots, from the official pointers and memory index:
    sink slots hold frames 0..S-1; memory slots frame j until the cache first fills, then the
    frame the official memory index names; recent slots the newest frames, the chunk last.
    A slot whose K is all zero was never written (empty), wherever the pointers put it."""
    local, glob, filled, mem = layer["local_end"], layer["global_end"], layer["cache_filled"], layer["mem_frames"]
    written = layer["k"][0].unflatten(0, (K, T)).flatten(1).ne(0).any(1).tolist()
    frames, regions = [], []
    for j in range(K):
        if j >= local or not written[j]:
            f, r = -1, EMPTY
        elif j < S:
            f, r = j, SINK
        elif j < S + M:
            f, r = (mem[j - S] if filled else j), MEMORY
        else:
            f, r = glob - local + j, RECENT
        frames.append(f)
        regions.append(r if f >= 0 else EMPTY)
    return frames, regions


def to_trace(raw: dict, inputs: dict, meta: dict) -> dict:
    S, R, K = meta["tether"]["sink_size"], meta["tether"]["recent_size"], meta["tether"]["budget_size"]
    M = K - S - R
    T = (LATENT_HW[0] // 2) * (LATENT_HW[1] // 2)
    n_steps = len(raw["passes"]) // meta["chunks"] - 1
    chunks = []
    for c, layers in enumerate(raw["chunks"]):
        table = [slot_table(l, S, M, K, T) for l in layers]
        k0, kn = zip(*(l["k_rope"] for l in layers))
        q0, qn = zip(*(l["q_rope"] for l in layers))
        chunks.append({
            "frames": torch.tensor([t[0] for t in table]), "regions": torch.tensor([t[1] for t in table]),
            "k_pos": torch.tensor([[s + j if j < n else -1 for j in range(K)] for s, n in zip(k0, kn)]),
            "q_pos": torch.tensor([[s + i for i in range(n)] for s, n in zip(q0, qn)]),
            "read_frames": torch.tensor([l["read_tokens"] // T for l in layers]),
            "k": torch.stack([l["k"][0] for l in layers]), "v": torch.stack([l["v"][0] for l in layers]),
            "passes": torch.stack([x for _, x in raw["passes"][c * (n_steps + 1):(c + 1) * (n_steps + 1)]]),
            "edits": [l["edits"] for l in layers], "admissions": [l["admissions"] for l in layers]})
    return {"meta": meta, "initial": inputs["initial"][:, :meta["chunks"] * 3], "text": inputs["text"],
            "renoise": torch.stack(raw["renoise"]), "latents": raw["latents"], "chunks": chunks,
            "timesteps": [t for t, _ in raw["passes"][:n_steps + 1]]}


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"error: {message}\n")


def parse(argv):
    p = OneLineParser(description=__doc__.split("\n")[0])
    p.add_argument("--tree", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--repo", default="my4f175/TetherCache@37c581a")
    p.add_argument("--patches", default="", help="patches applied to the tree, as recorded")
    p.add_argument("--budget", type=int, default=9)
    p.add_argument("--sink", type=int, default=2)
    p.add_argument("--recent", type=int, default=4)
    p.add_argument("--alpha", type=float, default=0.35)
    p.add_argument("--tau", type=float, default=0.35)
    p.add_argument("--chunks", type=int, default=7)
    p.add_argument("--commit-rule", action="store_true")
    a = p.parse_args(argv)
    if a.out.is_dir() or a.out.parent.is_file():
        p.exit(2, f"error: --out={a.out}: must be a file path in a directory\n")
    for f in ("pipeline/causal_inference.py", "tethercache/patched_attention.py"):
        if not (a.tree / f).is_file():
            p.exit(2, f"error: --tree={a.tree}: not an official TetherCache work tree (no {f})\n")
    if a.commit_rule and "COMMIT_RULE" not in (a.tree / "wan/modules/causal_model.py").read_text():
        p.exit(2, f"error: --tree={a.tree}: --commit-rule needs the Commit Forcing patch applied\n")
    if not (a.sink >= 0 and a.recent >= 3 and a.budget >= a.sink + a.recent and a.chunks >= 1):
        p.exit(2, "error: --budget/--sink/--recent/--chunks: need recent >= 3, "
                  "budget >= sink + recent, chunks >= 1\n")
    return a


def main(argv=None) -> None:
    a = parse(argv)
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_checkpoints import write_self_forcing_checkpoint
    torch.set_num_threads(1)
    model = tiny_model()
    inputs = make_inputs(model.config, 3 * a.chunks)
    tether = dict(budget_size=a.budget, sink_size=a.sink, recent_size=a.recent, memory_size=None,
                  alpha=a.alpha, tau=a.tau, score_temperature=1.0)
    with tempfile.TemporaryDirectory(prefix="official_traces-") as tmp:
        tmp = Path(tmp)
        write_self_forcing_checkpoint(model, tmp / "tiny_self_forcing.pt")
        ema = torch.load(tmp / "tiny_self_forcing.pt", weights_only=True)["generator_ema"]
        torch.save(inputs, tmp / "inputs.pt")
        spec = {"model": official_geometry(model.config), "latent_hw": list(LATENT_HW),
                "checkpoint": str(tmp / "tiny_self_forcing.pt"), "inputs": str(tmp / "inputs.pt"),
                "tether": tether, "chunks": a.chunks, "context_noise": 0,
                "renoise_seed": RENOISE_SEED, "commit_rule": a.commit_rule, "out": str(tmp / "raw.pt")}
        (tmp / "spec.json").write_text(json.dumps(spec))
        done = subprocess.run([sys.executable, str(WORKER), str(tmp / "spec.json")], cwd=a.tree,
                              env={"PYTHONPATH": str(a.tree.resolve()), "PATH": "/usr/bin:/bin"},
                              stdout=subprocess.DEVNULL)
        if done.returncode:
            sys.exit(f"error: the official pipeline in {a.tree} failed (exit {done.returncode}, "
                     "its traceback above)")
        raw = torch.load(tmp / "raw.pt", weights_only=False)
    meta = {"repo": a.repo, "patches": a.patches, "tether": tether, "chunks": a.chunks,
            "commit_rule": a.commit_rule, "latent_hw": list(LATENT_HW), "seed": SEED,
            "checkpoint_fingerprint": fingerprint(ema), "commit_rule_counters": raw["commit_rule_counters"]}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(to_trace(raw, inputs, meta), a.out)
    print(f"{a.out}: sha256 {hashlib.sha256(a.out.read_bytes()).hexdigest()}")


if __name__ == "__main__":
    main()
