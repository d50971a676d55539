"""The benchmark scripts run end to end (they are how speed and memory claims are measured)."""
import json
import subprocess
import sys

from conftest import ROOT


def test_bench_cache_runs_and_token_budget_halves_kv_bytes(tmp_path):
    out = tmp_path / "bench.json"
    # tiny: 8x8 latents, patch 2 -> 16 tokens per frame; window K = 21 frames = 336 tokens
    subprocess.run([sys.executable, "experiments/bench_cache.py", "--backbone", "tiny",
                    "--horizons", "5s", "--repeats", "1", "--policies", "window",
                    "knorm:cache.budget_tokens=168", "--json", str(out)],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    rows = {r["policy"]: r for r in json.loads(out.read_text())}
    window, knorm = rows["window"], rows["knorm:cache.budget_tokens=168"]
    assert window["chunks"] == knorm["chunks"] == 7
    assert window["chunk_ms_median"] > 0 and knorm["chunk_cpu_ms_median"] > 0
    assert knorm["kv_cache_mb"] / window["kv_cache_mb"] == 0.5


def test_bench_times_the_toy_rollout_from_its_real_start_chunk(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "experiments/bench_cache.py", "--backbone", "toy",
                        "--horizons", "5s", "--repeats", "1", "--policies", "window",
                        "--json", str(out)],
                       cwd=ROOT, check=True, capture_output=True, text=True, timeout=300)
    (row,) = json.loads(out.read_text())
    assert row["start_chunk_is_real"] is True
    assert "first chunk: the real start chunk" in r.stdout
