"""Comparison report: one static page to watch policies side by side, with their drift curves,
cache timelines and the experiment tables.

    python -m analysis.report outputs/sweeps/<date>/<time> [more dirs] --out report/
    (open report/index.html from disk: no server, nothing fetched from the internet)

Per (backbone, prompt, sample seed, horizon), the reader picks which policies to compare; one
play / pause / seek moves all their players, the quality-over-time curve (per 2-s clip,
clips.csv) and each policy's cache timeline (timelines/*.npz: which global frames sat in which
cache region per layer; regions, names and colours from the region table) follow the playback
time. Tables (main, VBench dims, cost, and an ablation per preset whose runs differ in a config
key) highlight the best value per column; paired contrasts (`contrasts*.csv` under the dirs, or
--contrasts) are shown with their intervals. Runs that are failed, interrupted, unfinished,
corrupt or unscored are listed with their reason, never dropped.

Modules: status (every run's status), media (H.264 previews), timeline (timeline encoding and
region legend), tiles (comparison groups), html_tables, page (index.html), outdir (the output
folder's manifest), build (the build and the command line). Players are built when their section
scrolls near the viewport, with preload="none". H.264 plays in Chrome, Firefox, Safari and
Debian's chromium (which the test drives), so no WebM copy is written.
"""
from .build import build, main                                      # noqa: F401
from .html_tables import _best, contrasts_html, find_contrasts      # noqa: F401
from .media import encode_preview                                   # noqa: F401
from .outdir import MANIFEST                                        # noqa: F401
from .tiles import read_clips                                       # noqa: F401
from .timeline import region_legend, timeline_segments              # noqa: F401
