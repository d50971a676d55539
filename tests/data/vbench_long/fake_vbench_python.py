"""Stand-in for the VBench venv's interpreter in tests (no GPU, no weights here). Answers the probe
like a working GPU venv would, and `-m vbench2_beta_long.eval_long ...` by writing a result file in
VBench-Long's format (per-clip details cut exactly as split_video_into_clips cuts them) plus
invocation.json with its argv and environment, so tests see what the runner really ran.
FAKE_VBENCH=nogpu / crash / corrupt / drop:<video id> change its behaviour."""
import json
import os
import sys
from pathlib import Path

mode = os.environ.get("FAKE_VBENCH", "")
if sys.argv[1].endswith("vbench_probe.py"):
    print(json.dumps({"python": "3.11", "torch": "fake", "cuda": mode != "nogpu", "vbench": "0.1.5",
                      "vbench_long": True}))
    sys.exit(0)
assert sys.argv[1:3] == ["-m", "vbench2_beta_long.eval_long"], sys.argv
args = sys.argv[3:]
opt = lambda k: args[args.index(k) + 1]
dims = args[args.index("--dimension") + 1: args.index("--load_ckpt_from_local")]
out = Path(opt("--output_path"))
(out.parent / "invocation.json").write_text(json.dumps({
    "argv": sys.argv[1:], "env": {k: os.environ.get(k) for k in ("VBENCH_CACHE_DIR", "TORCH_HOME",
                                                                  "HF_HUB_OFFLINE", "PYTHONPATH")}}))
print("Splitting videos into clips ...")
if mode == "crash":
    print("RuntimeError: CUDA out of memory")
    sys.exit(1)
import av  # noqa: E402

videos = Path(opt("--videos_path"))
result = {}
for dim in dims:
    details = []
    for mp4 in sorted(videos.glob("*.mp4")):
        vid = mp4.stem
        if mode == f"drop:{vid}" and dim == "imaging_quality":
            continue
        with av.open(str(mp4)) as c:
            fps = float(c.streams.video[0].average_rate)
            n = sum(1 for _ in c.decode(video=0))
        seg = int(fps * 2)
        k = 1 if n < seg else n // seg + (1 if n % seg else 0)
        for i in range(k):
            name = f"{vid}_full.mp4" if n < seg else f"{vid}_{i:03d}.mp4"
            score = {"imaging_quality": 80.0 - 2 * i, "dynamic_degree": i % 2 == 0}.get(dim, 0.9 - 0.01 * i)
            details.append({"video_path": str(videos / "split_clip" / vid / name), "video_results": score})
    overall = sum(float(d["video_results"]) for d in details) / max(len(details), 1)
    per_clip = [{**d, "video_path": d["video_path"] + "/" + d["video_path"].split("/")[-2] + ".mp4"}
                for d in details]                                  # reorganize_clips_results' keys
    result[dim] = [overall / (100 if dim == "imaging_quality" else 1), details, per_clip]
text = json.dumps(result, indent=4)
(out / "results_2026-12-01-10:00:00_eval_results.json").write_text(text[:200] if mode == "corrupt" else text)
print("done")
