"""Cache timelines for the page: which global frame sat in which region, as runs of chunks, and
the region legend (code, name, colour) from the region table, so a region a policy adds is drawn
like the built-in ones."""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from tethercache.cache.protocol import EMPTY, REGIONS

from ..collect import CorruptFile

UNKNOWN_COLOR = "#9ca3af"          # a code the table of this process does not know (still drawn)


def timeline_segments(npz_path: Path) -> dict:
    """A timeline as runs of chunks: per layer a flat list [frame, region, first chunk, last
    chunk, ...], one entry per stretch of consecutive chunks in which a frame sat in one region
    (a few hundred numbers where the dense table has chunks x slots). Region codes are kept as
    they are (any number of regions); empty slots are dropped. CorruptFile when unreadable."""
    try:
        with np.load(npz_path) as tl:
            frames, regions = tl["frames"].astype(np.int64), tl["regions"].astype(np.int64)
            chunk_start = tl["chunk_start"].astype(np.int64)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise CorruptFile(npz_path, f"not a readable timeline ({type(e).__name__}: {e})"[:200]) from None
    if frames.ndim != 3 or frames.shape != regions.shape or len(chunk_start) != len(frames):
        raise CorruptFile(npz_path, f"frames {frames.shape}, regions {regions.shape} and "
                                    f"chunk_start {chunk_start.shape} do not match")
    n_chunks, n_layers, n_slots = frames.shape
    chunk = np.broadcast_to(np.arange(n_chunks)[:, None], (n_chunks, n_slots))
    layers = []
    for layer in range(n_layers):
        f, r = frames[:, layer], regions[:, layer]
        held = (f >= 0) & (r != EMPTY)
        f, r, c = f[held], r[held], chunk[held]
        order = np.lexsort((c, r, f))                    # by frame, then region, then chunk
        f, r, c = f[order], r[order], c[order]
        start = np.ones(len(f), bool)
        start[1:] = (f[1:] != f[:-1]) | (r[1:] != r[:-1]) | (c[1:] != c[:-1] + 1)
        first = np.flatnonzero(start)
        last = np.r_[first[1:], len(f)] - 1
        seg = np.stack([f[first], r[first], c[first], c[last]], axis=1)
        layers.append(seg.reshape(-1).tolist())
    return {"chunk_start": chunk_start.tolist(), "layers": layers,
            "max_frame": int(frames.max()) if frames.size else 0}


def region_legend(codes) -> list[dict]:
    """{code, name, color} of each region code present (empty excluded), in code order."""
    table = {r.code: r for r in REGIONS}
    out = []
    for code in sorted(set(codes) - {EMPTY}):
        r = table.get(code)
        out.append({"code": code, "name": r.name if r else f"region {code}",
                    "color": r.color if r else UNKNOWN_COLOR})
    return out


def codes_in(timeline: dict | None) -> set[int]:
    return {c for flat in (timeline or {}).get("layers", []) for c in flat[1::4]}
