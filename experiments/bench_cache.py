"""Per-chunk latency and peak memory of cache policies, side by side in one run.

Each (policy, horizon[, code]) runs in a fresh subprocess (clean peak-RSS), repeats are
interleaved so machine noise hits every policy alike, and results are reported as ratios to the
first policy at the same horizon. Generation only (no video encoding, no evaluation).
A policy may carry its own overrides: `knorm:cache.budget_tokens=672` (comma-separated).
`--baseline REV` also runs the `--baseline-policies` with the code of git revision REV (checked
out once with `git worktree add` under /tmp; this worker imports its package and configs),
interleaved with the current code, and reports current / baseline per-chunk latency, wall and
process CPU time (single-threaded, so CPU time is the robust number on a shared machine).

    python experiments/bench_cache.py                                   # tiny: window/sink/full, 30s & 240s
    python experiments/bench_cache.py --backbone toy --policies window tether --horizons 30s 240s
    python experiments/bench_cache.py --policies window tether --set cache.memory=14 --json out.json
    # the token-granular seam vs the code before it (7fc4f0c), and the token demo's KV bytes
    python experiments/bench_cache.py --backbone toy --horizons 240s --baseline 7fc4f0c \
        --policies window sink tether knorm:cache.budget_tokens=672
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(backbone: str, spec: str, horizon: str, overrides: list[str], device: str) -> dict:
    """One generation, timed per chunk (wall and process CPU time). Runs against whichever
    `tethercache` is on PYTHONPATH and the configs under $BENCH_CONF_ROOT (a baseline checkout
    uses its own): the rollout run.py makes (`tethercache.rollout`, the toy's real start chunk
    included), or, for a baseline from before it, that code's own session and loop."""
    import torch
    from hydra import compose, initialize_config_dir

    from tethercache.runner import validate
    try:
        from tethercache.backbone import build_backbone
    except ImportError:                                  # revisions before the token-granular seam
        from tethercache.model.backbone import build_backbone

    policy, own = _spec(spec)
    conf = Path(os.environ.get("BENCH_CONF_ROOT", ROOT)) / "conf"
    with initialize_config_dir(str(conf), version_base="1.3"):
        cfg = compose("config", overrides=[f"backbone={backbone}", f"cache={policy}",
                                           f"horizon={horizon}", f"device={device}", "eval=none",   # generation only
                                           *overrides, *own])
    plan = validate(cfg)
    if cfg.backbone.get("threads"):
        torch.set_num_threads(int(cfg.backbone.threads))
    bb = build_backbone(cfg.backbone, plan.device)
    prompt = plan.prompts[0]
    prompt = prompt[1] if isinstance(prompt, tuple) else prompt    # (suite index, text) in newer revisions
    session, it = _rollout(bb, plan, prompt)
    cuda = plan.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_mb()
    times, cpu, first = [], [], None
    with torch.no_grad():
        while True:
            t0, c0 = time.perf_counter(), time.process_time()
            latents = next(it, None)
            if latents is None:
                break
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            first = latents if first is None else first
    import resource
    steady, steady_cpu = times[len(times) // 4:], cpu[len(cpu) // 4:]   # skip warm-up (filling)
    out = {"policy": spec, "horizon": horizon, "chunks": len(times),
           "chunk_ms_median": 1000 * statistics.median(steady),
           "chunk_ms_mean": 1000 * statistics.fmean(steady),
           # CPU time of the (single-threaded) process: what to compare on a shared machine
           "chunk_cpu_ms_median": 1000 * statistics.median(steady_cpu),
           "kv_cache_mb": session.cache.nbytes / 2**20,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "gen_rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0,
           "threads": torch.get_num_threads(),
           # the toy's rollout starts from the world's real first chunk, as run.py's does
           "start_chunk_is_real": _is_start_chunk(bb, prompt, first)}
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _rollout(bb, plan, prompt: str):
    """(session, chunk iterator) of seed 0's rollout of `prompt`."""
    try:
        from tethercache.rollout import rollout
    except ImportError:                        # a baseline revision from before tethercache.rollout
        return _legacy_rollout(bb, plan, prompt)
    return rollout(bb, plan.policy, prompt, 0, horizon=plan.horizon, device=plan.device, record=False)


def _legacy_rollout(bb, plan, prompt: str):
    """How the bench rolled out before tethercache.rollout (no start chunk), for baselines."""
    import inspect

    from tethercache.cache import CacheSession
    from tethercache.sampling import generate
    m, c = bb.model, bb.model.config
    poses = bb.pose_fn(prompt, 0, plan.horizon) if bb.pose_fn else None
    geometry = ({"grid": bb.grid} if "grid" in inspect.signature(CacheSession).parameters
                else {"tokens_per_frame": bb.tokens_per_frame})
    session = CacheSession(plan.policy, layers=c.layers, horizon=plan.horizon, **geometry,
                           heads=c.heads, head_dim=c.head_dim, dtype=m.dtype, device=plan.device,
                           rope_max=c.rope_max_positions, record=False, poses=poses)
    text = m.text_kv(bb.text_encoder.encode([prompt]).to(plan.device))
    return session, generate(m, text, session, n_frames=plan.horizon, chunk=bb.chunk,
                             latent_shape=bb.latent_shape, seed=0, sampler=bb.sampler, poses=poses,
                             progress=False, device=plan.device)


def _is_start_chunk(bb, prompt: str, first) -> bool | None:
    """Whether the first chunk is the backbone's real start chunk; None: it has none."""
    start = getattr(bb, "start_latents", lambda *a: None)(prompt, 0)
    if start is None:
        return None
    import torch
    return torch.equal(first.cpu(), start[:, :, :first.shape[2]].cpu())


def _spec(spec: str) -> tuple[str, list[str]]:
    """'knorm:cache.budget_tokens=672,cache.sink=1'
    -> ('knorm', ['cache.budget_tokens=672', 'cache.sink=1'])."""
    name, _, own = spec.partition(":")
    return name, [o for o in own.split(",") if o]


def _baseline_root(rev: str) -> Path:
    """A detached worktree of `rev` under /tmp (created once, reused)."""
    sha = subprocess.run(["git", "rev-parse", "--short=12", rev], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout.strip()
    path = Path(f"/tmp/tethercache-baseline-{sha}")
    if not (path / "experiments" / "bench_cache.py").exists():
        subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), sha], cwd=ROOT,
                       check=True, capture_output=True)
    return path


def _run_worker(root: Path, a, spec: str, horizon: str) -> dict:
    """This script's worker, importing `root`'s tethercache with `root`'s configs."""
    env = {**os.environ, "PYTHONPATH": str(root), "BENCH_CONF_ROOT": str(root)}
    cmd = [sys.executable, __file__, "--backbone", a.backbone,
           "--device", a.device, "--worker", spec, horizon, "--set", *a.set]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=env)
    if r.returncode:
        sys.exit(f"{spec} {horizon} ({root}) failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        import os
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tiny")
    ap.add_argument("--policies", nargs="+", default=["window", "sink", "full"])
    ap.add_argument("--horizons", nargs="+", default=["30s", "240s"])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", nargs="*", default=[], help="extra Hydra overrides for every run")
    ap.add_argument("--baseline", help="git revision to compare the current code against")
    ap.add_argument("--baseline-policies", nargs="+", default=["window", "sink", "tether"])
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--worker", nargs=2, metavar=("POLICY", "HORIZON"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.backbone, *a.worker, a.set, a.device)))
        return
    roots = {"now": ROOT}
    if a.baseline:
        roots["base"] = _baseline_root(a.baseline)
    results: dict[tuple, list[dict]] = {}
    for rep in range(a.repeats):
        order = a.policies if rep % 2 == 0 else a.policies[::-1]
        codes = list(roots) if rep % 2 == 0 else list(roots)[::-1]
        for h in a.horizons:
            for p in order:
                for code in codes:
                    if code == "base" and p not in a.baseline_policies:
                        continue
                    r = _run_worker(roots[code], a, p, h)
                    results.setdefault((p, h, code), []).append(r)
    report(results, a)


def report(results, a) -> None:
    base = a.policies[0]
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0] if isinstance(v[0][f], (int, float))}
           for k, v in results.items()}
    print(f"backbone={a.backbone} device={a.device} repeats={a.repeats} overrides={a.set} "
          f"baseline={a.baseline}")
    real = [r["start_chunk_is_real"] for k, v in results.items() if k[2] == "now" for r in v]
    print("first chunk: " + ("generated (the backbone has no start chunk)" if real[0] is None else
                             "the real start chunk (= Backbone.start_latents, as in run.py)"
                             if all(real) else "NOT the backbone's start chunk in some runs"))
    print(f"{'policy':28s} {'horizon':8s} {'ms/chunk':>9s} {'vs ' + base:>9s} {'KV MB':>9s} "
          f"{'KV vs ' + base:>10s} {'gen RSS+MB':>10s} {'peak RSS':>9s} "
          f"{'ms/chunk ' + a.horizons[-1] + '/' + a.horizons[0]:>20s}")
    for p in a.policies:
        for h in a.horizons:
            m, b = med[(p, h, "now")], med[(base, h, "now")]
            first, last = med[(p, a.horizons[0], "now")], med[(p, a.horizons[-1], "now")]
            print(f"{p:28s} {h:8s} {m['chunk_ms_median']:9.2f} {m['chunk_ms_median'] / b['chunk_ms_median']:9.3f} "
                  f"{m['kv_cache_mb']:9.2f} {m['kv_cache_mb'] / b['kv_cache_mb']:10.3f} "
                  f"{m['gen_rss_growth_mb']:10.1f} {m['peak_rss_mb']:9.0f} "
                  f"{last['chunk_ms_median'] / first['chunk_ms_median']:20.3f}")
    if a.baseline:
        print(f"\ncurrent code vs {a.baseline} (median of {a.repeats} interleaved runs each)")
        print(f"{'policy':28s} {'horizon':8s} {'ms/chunk now':>13s} {'base':>8s} {'ratio':>7s} "
              f"{'CPU ms now':>11s} {'base':>8s} {'ratio':>7s} {'gen RSS+MB now':>15s} {'base':>7s}")
        for p in a.policies:
            for h in a.horizons:
                if (p, h, "base") not in med:
                    continue
                m, b = med[(p, h, "now")], med[(p, h, "base")]
                print(f"{p:28s} {h:8s} {m['chunk_ms_median']:13.2f} {b['chunk_ms_median']:8.2f} "
                      f"{m['chunk_ms_median'] / b['chunk_ms_median']:7.3f} "
                      f"{m['chunk_cpu_ms_median']:11.2f} {b['chunk_cpu_ms_median']:8.2f} "
                      f"{m['chunk_cpu_ms_median'] / b['chunk_cpu_ms_median']:7.3f} "
                      f"{m['gen_rss_growth_mb']:15.1f} {b['gen_rss_growth_mb']:7.1f}")
    if a.json:
        Path(a.json).write_text(json.dumps([dict(r, code=k[2]) for k, v in results.items() for r in v],
                                           indent=2))


if __name__ == "__main__":
    main()
