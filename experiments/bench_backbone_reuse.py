"""Backbone reuse across the jobs of one basic-launcher sweep: the same sweep with
reuse_backbone=true and =false, alternated in one script, R repeats each.

    OMP_NUM_THREADS=1 python experiments/bench_backbone_reuse.py --backbone toy --jobs 6 --repeats 2

Reports per mode: sweep wall seconds (whole `python run.py -m ...` process) and the backbone
seconds summed over jobs (record.json `backbone_seconds`: build + weight load, or the reuse
lookup), then the ratios reuse / no-reuse. Generation is identical in both modes (the test
tests/test_shards_reuse.py checks byte-identical videos), so the difference is loading alone.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def sweep(backbone: str, jobs: int, reuse: bool, out: Path) -> tuple[float, float]:
    budgets = ",".join(str(21 - i) for i in range(jobs))          # N distinct window jobs
    args = [sys.executable, str(ROOT / "run.py"), "-m", f"backbone={backbone}", "eval=none",
            "cache=window", f"cache.budget={budgets}", "horizon=5s", "progress=false",
            f"reuse_backbone={str(reuse).lower()}", f"hydra.sweep.dir={out}"]
    t0 = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    records = [json.loads(p.read_text()) for p in out.glob("*/record.json")]
    assert len(records) == jobs, f"{len(records)} of {jobs} jobs complete in {out}"
    return wall, sum(r["backbone_seconds"] for r in records)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="toy")
    ap.add_argument("--jobs", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    a = ap.parse_args()
    res = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.repeats):
            for reuse in (False, True):                              # alternated, side by side
                res[reuse].append(sweep(a.backbone, a.jobs, reuse, Path(tmp) / f"{reuse}-{r}"))
    med = {k: (statistics.median(w for w, _ in v), statistics.median(b for _, b in v))
           for k, v in res.items()}
    print(f"backbone={a.backbone}, {a.jobs} jobs, {a.repeats} repeats (medians)")
    print(f"{'mode':<10} {'sweep wall s':>12} {'backbone s (sum over jobs)':>27}")
    for k, name in ((False, "reload"), (True, "reuse")):
        print(f"{name:<10} {med[k][0]:>12.2f} {med[k][1]:>27.3f}")
    print(f"ratio reuse/reload: sweep wall {med[True][0] / med[False][0]:.3f}, "
          f"backbone {med[True][1] / med[False][1]:.3f}")


if __name__ == "__main__":
    main()
