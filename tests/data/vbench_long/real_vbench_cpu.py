"""Run inside the VBench venv (no GPU, no weights needed): VBench-Long's own clip splitting and
result reorganisation on real videos, written with VBench's own save_json. Lets a test check our
clip spans and our parser against the real code rather than our reading of it.
    <venv>/bin/python real_vbench_cpu.py VIDEOS_DIR OUT_JSON"""
import os
import sys

from vbench.utils import save_json
from vbench2_beta_long.utils import reorganize_clips_results, split_video_into_clips

videos, out = sys.argv[1], sys.argv[2]
base = os.path.join(videos, "split_clip")
for name in sorted(os.listdir(videos)):
    if name.endswith(".mp4"):
        split_video_into_clips(os.path.join(videos, name), base, 2, fps=8)   # as VBenchLong.preprocess
details = []
for vid in sorted(os.listdir(base)):
    for i, clip in enumerate(sorted(os.listdir(os.path.join(base, vid)))):
        details.append({"video_path": os.path.join(base, vid, clip), "video_results": 50.0 + i})
save_json({"imaging_quality": list(reorganize_clips_results(details, dimension="imaging_quality"))}, out)
