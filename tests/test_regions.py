"""A region added to the table (`add_region`) is saved with the timeline and drawn by
analysis/plot_memory.py in its own name and colour, also by a process that never added it."""
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from matplotlib.colors import to_hex

from analysis.plot_memory import memory_figure, plot_memory
from conftest import added_region, drive_attends
from tethercache.cache import REGION_NAMES, REGIONS, CacheSession
from tethercache.cache.session import timeline_regions
from tethercache.cache.window import WindowPolicy

C, GRID, H, D, LAYERS = 3, (1, 2), 1, 4, 2
EMA_COLOR = "#123456"


@pytest.fixture
def ema():
    with added_region("ema", EMA_COLOR) as code:
        yield code


@dataclass
class EmaWindow(WindowPolicy):
    """A window whose first frame of every chunk is an `ema` entry (stands in for a policy's
    synthetic entries)."""
    ema: int = 0

    def place(self, st, layer, frame_ids):
        sl = super().place(st, layer, frame_ids)
        T = st.cache.tokens_per_frame
        st.cache.regions[layer, sl.start: sl.start + T] = self.ema
        return sl


def record_timeline(path, code, chunks=8):
    policy = EmaWindow(budget=9, ema=code)
    policy.validate(C, chunks * C, 10**6)
    s = CacheSession(policy, layers=LAYERS, horizon=chunks * C, grid=GRID, heads=H, head_dim=D)
    gen = torch.Generator().manual_seed(0)
    n = C * GRID[0] * GRID[1]
    for j in range(chunks):
        drive_attends(s, torch.arange(j * C, j * C + C),
                      lambda p: [[torch.randn(1, n, H, D, generator=gen)] * 3] * LAYERS)
    s.save_timeline(path)
    return path


def colour_of(name):
    return next(r.color for r in REGIONS if r.name == name)


def drawn(fig):
    """(legend labels, {label: colours drawn with that label})."""
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    colours = {}
    for ax in fig.axes:
        for coll in ax.collections:
            colours.setdefault(coll.get_label(), set()).update(to_hex(c) for c in coll.get_facecolor())
    return labels, colours


def test_the_timeline_saves_the_region_table(ema, tmp_path):
    tl = np.load(record_timeline(tmp_path / "t.npz", ema))
    assert (tl["regions"] == ema).any()
    table = dict(zip(tl["region_names"].tolist(), tl["region_colors"].tolist()))
    assert table["ema"] == EMA_COLOR and table["memory"] == colour_of("memory")
    assert tl["region_codes"].tolist() == list(range(len(REGIONS)))


def test_plot_memory_draws_an_added_region(ema, tmp_path):
    fig = memory_figure(record_timeline(tmp_path / "t.npz", ema))
    labels, colours = drawn(fig)
    assert labels == ["recent", "ema"]
    assert colours["ema"] == {EMA_COLOR}
    assert colours["recent"] == {colour_of("recent")}
    assert plot_memory(tmp_path / "t.npz", tmp_path / "t.png").stat().st_size > 0


def test_a_reader_without_the_region_uses_the_timelines_table(tmp_path):
    with added_region("ema", EMA_COLOR) as code:
        path = record_timeline(tmp_path / "t.npz", code)
    assert "ema" not in REGION_NAMES.values()                  # this process no longer knows it
    assert timeline_regions(np.load(path))[code].name == "ema"
    labels, colours = drawn(memory_figure(path))
    assert "ema" in labels and colours["ema"] == {EMA_COLOR}
