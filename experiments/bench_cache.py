"""Per-chunk latency and peak memory of cache policies, side by side in one run.

Each (policy, horizon) runs in a fresh subprocess (clean peak-RSS), repeats are interleaved so
machine noise hits every policy alike, and results are reported as ratios to the first policy
at the same horizon. Generation only (no video encoding, no evaluation).

    python experiments/bench_cache.py                                   # tiny: window/sink/full, 30s & 240s
    python experiments/bench_cache.py --backbone toy --policies window tether --horizons 30s 240s
    python experiments/bench_cache.py --policies window tether --set cache.memory=14 --json out.json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def worker(backbone: str, policy: str, horizon: str, overrides: list[str], device: str) -> dict:
    import torch
    from hydra import compose, initialize_config_dir

    from tethercache.cache import CacheSession
    from tethercache.backbone import build_backbone
    from tethercache.runner import validate
    from tethercache.sampling import generate

    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"backbone={backbone}", f"cache={policy}",
                                           f"horizon={horizon}", f"device={device}", *overrides])
    plan = validate(cfg)
    if cfg.backbone.get("threads"):
        torch.set_num_threads(int(cfg.backbone.threads))
    bb = build_backbone(cfg.backbone, plan.device)
    m, c = bb.model, bb.model.config
    poses = bb.pose_fn(plan.prompts[0], 0, plan.horizon) if bb.pose_fn else None
    session = CacheSession(plan.policy, layers=c.layers, horizon=plan.horizon,
                           grid=bb.grid, heads=c.heads, head_dim=c.head_dim,
                           dtype=m.dtype, device=plan.device, rope_max=c.rope_max_positions,
                           record=False, poses=poses)
    text = m.text_kv(bb.text_encoder.encode([plan.prompts[0]]).to(plan.device))
    cuda = plan.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_mb()
    times = []
    with torch.no_grad():
        it = generate(m, text, session, n_frames=plan.horizon, chunk=bb.chunk,
                      latent_shape=bb.latent_shape, seed=0, sampler=bb.sampler,
                      progress=False, device=plan.device)
        while True:
            t0 = time.perf_counter()
            if next(it, None) is None:
                break
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    import resource
    steady = times[len(times) // 4:]            # skip warm-up (cache filling)
    out = {"policy": policy, "horizon": horizon, "chunks": len(times),
           "chunk_ms_median": 1000 * statistics.median(steady),
           "chunk_ms_mean": 1000 * statistics.fmean(steady),
           "kv_cache_mb": session.cache.nbytes / 2**20,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
           "gen_rss_growth_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0,
           "threads": torch.get_num_threads()}
    if cuda:
        out["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


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
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--worker", nargs=2, metavar=("POLICY", "HORIZON"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.backbone, *a.worker, a.set, a.device)))
        return
    results: dict[tuple, list[dict]] = {}
    for rep in range(a.repeats):
        order = a.policies if rep % 2 == 0 else a.policies[::-1]
        for h in a.horizons:
            for p in order:
                cmd = [sys.executable, __file__, "--backbone", a.backbone, "--device", a.device,
                       "--worker", p, h, "--set", *a.set]
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
                if r.returncode:
                    sys.exit(f"{p} {h} failed:\n{r.stderr[-3000:]}")
                results.setdefault((p, h), []).append(json.loads(r.stdout.strip().splitlines()[-1]))
    report(results, a)


def report(results, a) -> None:
    base = a.policies[0]
    med = {k: {f: statistics.median(r[f] for r in v) for f in v[0] if isinstance(v[0][f], (int, float))}
           for k, v in results.items()}
    print(f"backbone={a.backbone} device={a.device} repeats={a.repeats} overrides={a.set}")
    print(f"{'policy':10s} {'horizon':8s} {'ms/chunk':>9s} {'vs ' + base:>9s} {'KV MB':>9s} "
          f"{'gen RSS+MB':>10s} {'peak RSS':>9s} {'ms/chunk ' + a.horizons[-1] + '/' + a.horizons[0]:>20s}")
    for p in a.policies:
        for h in a.horizons:
            m, b = med[(p, h)], med[(base, h)]
            first, last = med[(p, a.horizons[0])], med[(p, a.horizons[-1])]
            print(f"{p:10s} {h:8s} {m['chunk_ms_median']:9.2f} {m['chunk_ms_median'] / b['chunk_ms_median']:9.3f} "
                  f"{m['kv_cache_mb']:9.2f} {m['gen_rss_growth_mb']:10.1f} {m['peak_rss_mb']:9.0f} "
                  f"{last['chunk_ms_median'] / first['chunk_ms_median']:20.3f}")
    if a.json:
        Path(a.json).write_text(json.dumps([dict(r) for v in results.values() for r in v], indent=2))


if __name__ == "__main__":
    main()
