"""index.html: the summary of run statuses, the tables, the contrasts and every run with its
status and reason (the ones not in the comparison first), around the player page's assets."""
from __future__ import annotations

import html
import shutil
from pathlib import Path

import pandas as pd

from .html_tables import contrasts_html, tables_html
from .outdir import OwnedDir
from .status import STATUS_ORDER

ASSETS = Path(__file__).with_name("assets")


def write_page(out: OwnedDir, df: pd.DataFrame, statuses: list[dict], roots, contrasts: list[Path]) -> Path:
    for asset in ("report.js", "report.css"):
        shutil.copyfile(ASSETS / asset, out.path(asset))
    counts = {}
    for s in statuses:
        counts[s["status"]] = counts.get(s["status"], 0) + 1
    page = ((ASSETS / "index.html").read_text()
            .replace("{{summary}}", _summary_html(counts, roots))
            .replace("{{tables}}", tables_html(df))
            .replace("{{contrasts}}", contrasts_html(contrasts)
                     or "<p class=empty>No contrasts files (analysis.contrasts writes them).</p>")
            .replace("{{runs}}", runs_html(statuses)))
    index = out.path("index.html")
    index.write_text(page)
    return index


def _summary_html(counts: dict, roots) -> str:
    parts = [f"<span class='st st-{html.escape(k)}'>{counts[k]} {html.escape(k)}</span>"
             for k in sorted(counts, key=lambda k: (STATUS_ORDER + (k,)).index(k))]
    where = ", ".join(html.escape(str(r)) for r in roots)
    return f"Runs under <code>{where}</code>: " + " ".join(parts)


def runs_html(statuses: list[dict]) -> str:
    """Every run with its status; the ones not in the comparison first."""
    rank = lambda s: ((STATUS_ORDER[::-1] + (s["status"],)).index(s["status"]), s["run_dir"])
    e = html.escape
    rows = "".join(
        f"<tr class='st-{e(s['status'])}'><td><span class='st st-{e(s['status'])}'>{e(s['status'])}"
        f"</span></td><td>{e(str(s['preset'] or '?'))}</td><td>{e(str(s['horizon'] or '?'))}</td>"
        f"<td>{e(str(s['backbone'] or '?'))}</td><td class=reason>{e(s['reason'])}</td>"
        f"<td><code>{e(s['run_dir'])}</code></td></tr>" for s in sorted(statuses, key=rank))
    return ("<div class=tw><table class=runs><thead><tr><th>status</th><th>cache</th><th>horizon</th>"
            f"<th>backbone</th><th>reason</th><th>run dir</th></tr></thead><tbody>{rows}</tbody></table></div>")
