"""Which frames a cache holds over time, one panel per layer, from a run's cache timeline.

    python analysis/plot_memory.py outputs/runs/.../timelines/p000s0.npz [--out memory.png] [--layers 0 5]

x = the last generated latent frame when the chunk was committed, y = global frame id held;
each mark is one cached frame, coloured by region (sink / memory / recent / any region a policy
added: names and colours come from the region table, the timeline's own for codes this process
does not know). The dashed diagonal is the generation front: recent sits on it, the sink is a
flat band at the bottom, and memory shows which past frames a policy keeps (for `tether`: what
GRAB recalls and for how long). `plot_memory(timeline_path, out_path, layers=None)` is the
importable entry point; `memory_figure` returns the figure unsaved.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
from tethercache.cache.protocol import EMPTY, Region  # noqa: E402
from tethercache.cache.session import timeline_regions  # noqa: E402

MAX_DEFAULT_PANELS = 8


def default_layers(n_layers: int) -> list[int]:
    """All layers, or MAX_DEFAULT_PANELS evenly spaced ones (first and last included)."""
    if n_layers <= MAX_DEFAULT_PANELS:
        return list(range(n_layers))
    return sorted({int(round(x)) for x in np.linspace(0, n_layers - 1, MAX_DEFAULT_PANELS)})


def _admissions(stats: list, layer: int) -> int | None:
    try:
        return sum(len(s["admitted"][layer]) for s in stats if s.get("admitted"))
    except (KeyError, IndexError, TypeError):
        return None


def memory_figure(timeline_path, layers: list[int] | None = None):
    """The figure of the timeline at `timeline_path` (.npz from CacheSession.save_timeline)."""
    tl = np.load(timeline_path)
    frames, regions = tl["frames"], tl["regions"]            # [chunks, layers, slots]
    table = timeline_regions(tl)
    held = np.unique(regions[frames >= 0])         # codes in neither table (corrupt file): grey
    style = [table.get(int(c), Region(int(c), f"region {c}", "0.5")) for c in held if c != EMPTY]
    stats = json.loads(str(tl["stats_json"])) if "stats_json" in tl else []
    n_chunks, n_layers, _ = frames.shape
    layers = default_layers(n_layers) if not layers else list(layers)
    bad = [l for l in layers if not 0 <= l < n_layers]
    if bad:
        raise ValueError(f"--layers {bad}: the timeline has layers 0..{n_layers - 1}")
    front = frames.max(axis=(1, 2))                          # last generated frame per chunk

    cols = 1 if len(layers) <= 3 else 2
    rows = -(-len(layers) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(7 * cols, 2.6 * rows + 0.6), sharex=True,
                             sharey=True, squeeze=False)
    # each held frame is a short horizontal tick one chunk wide, so a frame kept over many
    # chunks reads as a line; the tick length adapts to the number of chunks
    tick = float(np.clip(6.3 * 72 / max(n_chunks, 1), 0.5, 20))
    for ax, layer in zip(axes.flat, layers):
        f, r = frames[:, layer], regions[:, layer]
        x = np.broadcast_to(front[:, None], f.shape)
        for region in style:
            m = (r == region.code) & (f >= 0)
            if m.any():
                ax.scatter(x[m], f[m], s=tick ** 2, c=region.color, marker="_", linewidths=1.0,
                           label=region.name, rasterized=True)
        ax.plot([0, front.max()], [0, front.max()], ls="--", lw=0.6, c="0.6")
        n_adm = _admissions(stats, layer)
        ax.set_title(f"layer {layer}" + (f"  ({n_adm} admissions)" if n_adm else ""), fontsize=9)
        ax.grid(alpha=0.25)
    for ax in axes.flat[len(layers):]:
        ax.axis("off")
    for ax in axes[-1]:
        ax.set_xlabel("generated latent frames (chunk end)")
    for ax in axes[:, 0]:
        ax.set_ylabel("frame id held")
    legend = {}                               # every region drawn in any panel, in code order
    for ax in axes.flat:
        handles, names = ax.get_legend_handles_labels()
        legend.update(zip(names, handles))
    labels = [r.name for r in style if r.name in legend]
    fig.legend([legend[n] for n in labels], labels, loc="upper right", ncol=max(len(labels), 1),
               markerscale=max(1.0, 12 / tick), frameon=False)
    fig.suptitle(f"cache contents over time: {Path(timeline_path).name}", x=0.02, ha="left",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return fig


def plot_memory(timeline_path, out_path, layers: list[int] | None = None) -> Path:
    """Render the timeline at `timeline_path` (.npz from CacheSession.save_timeline) to a PNG."""
    fig = memory_figure(timeline_path, layers)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=130)
    plt.close(fig)
    return out_path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("timeline", help="timelines/<id>.npz of a run")
    ap.add_argument("--out", default=None, help="PNG path (default: <timeline>_memory.png)")
    ap.add_argument("--layers", type=int, nargs="+", default=None,
                    help=f"layers to draw (default: all, or {MAX_DEFAULT_PANELS} evenly spaced)")
    a = ap.parse_args(argv)
    out = a.out or str(Path(a.timeline).with_name(Path(a.timeline).stem + "_memory.png"))
    try:
        print(plot_memory(a.timeline, out, a.layers))
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
