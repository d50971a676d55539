"""analysis/report.py: the comparison page, built from a small real sweep on the toy backbone
and driven in headless Chromium (Debian's `chromium`, `make browser`; Playwright's Python API,
no browser download).

The sweep: 3 policies x 2 prompts x 5 s, toy backbone with a cheap sampler (2 Euler steps, no
restart: the pictures are worse, the files and code paths are the real ones), toy evaluator; plus
a failed run, an unscored one and an unfinished one, which the page must show as such.
"""
import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from conftest import ROOT, added_region
from analysis import report
from tethercache.runner import execute
from tethercache.video import read_mp4

PROMPTS = ["forest scene, hilly bands, red disk and white square, medium camera",
           "ocean scene, wavy bands, white triangle, fast camera"]
POLICIES = ["window", "sink", "tether"]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "tests" / "artifacts"              # git-ignored


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs") / "sweeps" / "2026-01-01" / "00-00-00"
    for i, policy in enumerate(POLICIES):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[
                f"cache={policy}", "horizon=5s", "eval=toy", "progress=false",
                "backbone.threads=1", "backbone.sampler.euler_steps=2", "backbone.sampler.restarts=0",
                f"prompts.texts={json.dumps(PROMPTS)}"])
        execute(cfg, root / f"{i}-toy-{policy}-5s",
                choices={"backbone": "toy", "cache": policy, "horizon": "5s"})
    failed = root / "3-toy-oracle-5s"                 # the run-dir contract's failed marker
    shutil.copytree(root / "0-toy-window-5s", failed)
    rec = json.loads((failed / "record.json").read_text())
    rec.update(status="failed", reason="non-finite latents at chunk 3", choices={"cache": "oracle"})
    (failed / "record.json").write_text(json.dumps(rec))
    unscored = root / "4-toy-full-5s"                 # complete, evaluation not run yet
    shutil.copytree(root / "2-toy-tether-5s", unscored)
    rec = json.loads((unscored / "record.json").read_text())
    rec["choices"]["cache"] = "full"
    (unscored / "record.json").write_text(json.dumps(rec))
    for name in ("metrics.json", "clips.csv"):
        (unscored / name).unlink()
    (root / "5-toy-fifo_relative-5s" / ".hydra").mkdir(parents=True)   # killed before record.json
    return root


@pytest.fixture(scope="module")
def built(sweep, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    report.main([str(sweep), "--out", str(out)])
    return out


def _index(out: Path) -> dict:
    text = (out / "data" / "index.js").read_text()
    return json.loads(text[text.index("{"):text.rindex("}") + 1])


def test_groups_tiles_and_statuses(built, sweep):
    idx = _index(built)
    assert [v["label"] for v in idx["variants"]] == [*POLICIES, "full"]   # tables' preset order
    assert len(idx["groups"]) == 2 and {g["prompt"] for g in idx["groups"]} == set(PROMPTS)
    for g in idx["groups"]:
        assert [(t["variant"], t["scored"]) for t in g["tiles"]] == [
            ("window", True), ("sink", True), ("tether", True), ("full", False)]
        assert {(m["preset"], m["status"]) for m in g["missing"]} == {("oracle", "failed"),
                                                                       (None, "unfinished")}
        assert g["seconds"] == pytest.approx(84 / 16)
    page = (built / "index.html").read_text()
    assert "non-finite latents at chunk 3" in page and "5-toy-fifo_relative-5s" in page
    for n_status in ("3 complete", "1 unscored", "1 failed", "1 unfinished"):
        assert n_status in page
    assert "class=best" in page and "Main: quality and drift" in page
    assert "http://" not in page and "https://" not in page     # nothing from the internet
    assert "http" not in (built / "report.js").read_text()


def test_preview_is_h264_nearest_upscaled_with_poster(built, sweep):
    tile = _index(built)["groups"][0]["tiles"][0]
    src, _ = read_mp4(Path(tile["run_dir"]) / "videos" / f"{tile['video_id']}.mp4")   # 128 px
    prev, fps = read_mp4(built / tile["video"])
    assert prev.shape == (len(src), 256, 256, 3) and fps == 16
    with av.open(str(built / tile["video"])) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264" and s.codec_context.pix_fmt == "yuv420p"
    raw = (built / tile["video"]).read_bytes()
    assert raw.index(b"moov") < raw.index(b"mdat")              # faststart: plays while loading
    up = src.repeat(2, 1).repeat(2, 2).astype(float)
    assert np.abs(prev.astype(float) - up).mean() < 4           # same picture, lossy codec
    assert (built / tile["poster"]).stat().st_size > 0


def test_large_videos_are_shrunk(tmp_path):
    """A 480x832 video (Self-Forcing's size) is scaled down smoothly to the preview height."""
    from tethercache.video import Mp4Writer
    src = tmp_path / "big.mp4"
    frames = np.zeros((8, 480, 832, 3), np.uint8)
    frames[:, :, 416:] = 200
    with Mp4Writer(src, fps=16) as w:
        w.write(frames)
    info = report.encode_preview(src, tmp_path / "media", 256)
    assert (info["width"], info["height"], info["seconds"]) == (444, 256, 0.5)
    prev, _ = read_mp4(tmp_path / info["video"])
    assert prev.shape == (8, 256, 444, 3) and abs(prev[:, :, 300:].mean() - 200) < 3


def test_rebuild_reuses_encodes(built, sweep, capsys):
    media = {p: p.stat().st_mtime_ns for p in (built / "media").glob("*.mp4")}
    assert len(media) == 8
    report.main([str(sweep), "--out", str(built)])
    assert "0 videos encoded, 8 from cache" in capsys.readouterr().err
    assert {p: p.stat().st_mtime_ns for p in (built / "media").glob("*.mp4")} == media


def _dense(seg: dict) -> list:
    out = [[set() for _ in seg["layers"]] for _ in seg["chunk_start"]]
    for layer, flat in enumerate(seg["layers"]):
        for f, r, c0, c1 in np.asarray(flat, dtype=np.int64).reshape(-1, 4):
            for c in range(c0, c1 + 1):
                out[c][layer].add((int(f), int(r)))
    return out


def test_timeline_segments_are_the_timeline(sweep):
    path = sweep / "2-toy-tether-5s" / "timelines" / "p000s0.npz"
    tl = np.load(path)
    seg = report.timeline_segments(path)
    frames, regions = tl["frames"], tl["regions"]
    want = [[{(int(f), int(r)) for f, r in zip(frames[c, l], regions[c, l]) if f >= 0 and r > 0}
             for l in range(frames.shape[1])] for c in range(frames.shape[0])]
    assert _dense(seg) == want
    assert seg["chunk_start"] == tl["chunk_start"].tolist()
    regions_seen = {r for flat in seg["layers"] for r in flat[1::4]}
    assert regions_seen == {1, 2, 3}                            # tether: sink, memory, recent


def test_best_per_column_direction():
    assert report._best({"a": 1.0, "b": 2.0}, "quality") == {"b"}
    assert report._best({"a": 1.0, "b": 2.0}, "quality_drift_abs") == {"a"}
    assert report._best({"a": -0.5, "b": 2.0}, "quality_drift") == {"a"}     # closest to 0
    assert report._best({"a": 1.0, "b": None}, "quality") == set()           # nothing to beat


def test_contrasts_read_when_present(tmp_path):
    p = tmp_path / "contrasts_tether_vs_window.csv"
    pd.DataFrame({"metric": ["imaging_quality", "quality_drift"], "delta": [3.0, 0.5],
                  "lo": [1.0, -0.2], "hi": [5.0, 1.1]}).to_csv(p, index=False)
    page = report.contrasts_html(report.find_contrasts([tmp_path]))
    assert page.count("<tr class=sig>") == 1 and "imaging_quality" in page


@pytest.mark.parametrize("args, msg", [(["/no/such/dir"], "/no/such/dir: no such directory"),
                                       (["--preview-height", "5"], "--preview-height=5: must be in")])
def test_bad_input_is_one_line_exit_2(args, msg, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        report.main([*args, str(tmp_path), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


# ---- in a real browser ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} missing: `make browser` installs Debian's chromium")
        pytest.skip("chromium not installed (`make browser`)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


TIMES = "[...document.querySelectorAll('#g0 .tile:not([hidden]) video')].map(v => v.currentTime)"


def test_page_in_chromium(built, browser):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto((built / "index.html").as_uri())
    page.wait_for_selector("#g0 .tile video")
    assert page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64001e\"')")
    assert page.eval_on_selector_all("#g0 .tile video", "vs => vs.map(v => v.preload)") == ["none"] * 4

    # play: every player advances, together
    page.click("#g0 button.play")
    page.wait_for_function(f"{TIMES}.every(t => t > 1.0)", timeout=15000)
    t1 = page.evaluate(TIMES)
    page.wait_for_timeout(400)
    t2 = page.evaluate(TIMES)
    assert len(t1) == 4 and all(b > a for a, b in zip(t1, t2)), (t1, t2)
    assert max(t2) - min(t2) < 0.35, t2
    page.click("#g0 button.play")                                   # pause all
    page.wait_for_function("[...document.querySelectorAll('#g0 video')].every(v => v.paused)")

    # seeking one player (its own controls) moves the others and the shared scrubber
    page.evaluate("document.querySelectorAll('#g0 video')[2].currentTime = 3.5")
    page.wait_for_function(f"{TIMES}.every(t => Math.abs(t - 3.5) < 0.05)", timeout=5000)
    page.wait_for_function("Math.abs(+document.querySelector('#g0 .scrub').value - 3.5) < 0.05")
    # ... and the shared scrubber moves them all
    page.eval_on_selector("#g0 .scrub", "s => { s.value = '1.5'; s.dispatchEvent(new Event('input')); }")
    page.wait_for_function(f"{TIMES}.every(t => Math.abs(t - 1.5) < 0.05)", timeout=5000)
    assert "1.5 / 5.3 s" in page.inner_text("#g0 .time")

    # the selector decides which policies are compared
    page.click("#variants .chip[data-variant=sink]")
    shown = page.eval_on_selector_all("#g0 .tile:not([hidden])", "ts => ts.map(t => t.dataset.variant)")
    assert shown == ["window", "tether", "full"]
    assert page.evaluate("decodeURIComponent(location.hash)") == "#show=window|tether|full"
    page.click("#variants .chip[data-variant=sink]")
    assert len(page.eval_on_selector_all("#g0 .tile:not([hidden])", "ts => ts")) == 4
    page.wait_for_function(f"{TIMES}.every(t => Math.abs(t - 1.5) < 0.05)", timeout=5000)

    # the cache readout follows playback (tether at 1.5 s holds its sink) and layers switch
    assert "3 sink" in page.inner_text("#g0 .tile[data-variant=tether] .now")
    assert "unscored" in page.inner_text("#g0 .tile[data-variant=full] .name")
    page.select_option("#layer", "1")
    assert "Runs" in page.inner_text("#runs") and "failed" in page.inner_text("#runs")

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"screenshot: {shot}")
    # a linked comparison opens with its policies
    page.goto((built / "index.html").as_uri() + "#show=sink|tether")
    page.reload()
    page.wait_for_selector("#g0 .tile:not([hidden]) video")
    shown = page.eval_on_selector_all("#g0 .tile:not([hidden])", "ts => ts.map(t => t.dataset.variant)")
    assert shown == ["sink", "tether"]
    assert not errors, errors
    assert all(u.startswith(("file://", "data:")) for u in requests), requests


# ---- a full-size sweep opens lazily (slow: `pytest -m slow tests/test_report.py -s`) -------
def _fake_run(run_dir: Path, preset: str, prompts: list, video: Path, rng) -> None:
    """A complete 240 s run dir in the shared formats: record.json, metrics.json, clips.csv,
    a timeline per video (sink 3 | memory 14 with random evictions | recent 4; 4 layers) and
    the video (a link to one real 240 s toy mp4: one encode stands for all)."""
    chunks, layers, n_clips = 320, 4, 120
    (run_dir / "videos").mkdir(parents=True)
    (run_dir / "timelines").mkdir()
    samples, metrics, clips = [], [], []
    for p, prompt in enumerate(prompts):
        sid = f"p{p:03d}s0"
        (run_dir / "videos" / f"{sid}.mp4").symlink_to(video)
        frames = np.full((chunks, layers, 21), -1, np.int32)
        regions = np.zeros((chunks, layers, 21), np.uint8)
        for layer in range(layers):
            memory: list[int] = []
            for c in range(chunks):
                made = list(range(3, 3 * c + 3))
                recent = made[-4:]
                if len(made) > 4 and made[-5] not in memory:
                    memory.append(made[-5])
                while len(memory) > 14:
                    memory.pop(int(rng.integers(len(memory))))
                held = [(f, 1) for f in (0, 1, 2)] + [(f, 2) for f in memory] + [(f, 3) for f in recent]
                for slot, (f, r) in enumerate(held):
                    frames[c, layer, slot], regions[c, layer, slot] = f, r
        np.savez_compressed(run_dir / "timelines" / f"{sid}.npz", chunk_start=np.arange(chunks) * 3,
                            frames=frames, regions=regions, stats_json=np.array("[]"))
        scores = {d: rng.uniform(0.4, 0.9, n_clips) for d in ("imaging_quality", "aesthetic_quality")}
        clips += [{"evaluator": "toy", "video": sid, "clip": i, "start_s": 2.0 * i, "end_s": 2.0 * i + 2,
                   **{d: v[i] for d, v in scores.items()}} for i in range(n_clips)]
        metrics.append({"evaluator": "toy", "video": sid, "prompt": prompt, "n_clips": n_clips,
                        **{d: float(v.mean()) for d, v in scores.items()}, "quality_drift": 1.0,
                        "quality_drift_abs": 1.0})
        samples.append({"id": sid, "prompt": prompt, "seed": 1000 * p, "video": f"videos/{sid}.mp4",
                        "timeline": f"timelines/{sid}.npz", "latent_frames": 960, "video_frames": 3840,
                        "chunk_seconds": [0.1] * chunks, "kv_cache_mb": 5.0})
    pd.DataFrame(clips).to_csv(run_dir / "clips.csv", index=False)
    (run_dir / "metrics.json").write_text(json.dumps({"summary": {}, "videos": metrics}))
    cache = {"name": preset, "budget": 21, "sink": 3, "recent": 4}
    (run_dir / "record.json").write_text(json.dumps({
        "status": "complete", "choices": {"backbone": "toy", "cache": preset, "horizon": "240s"},
        "backbone": "toy", "cache": cache, "policy": preset, "horizon": "240s", "latent_frames": 960,
        "seed": 0, "samples": samples, "memory": {"peak_rss_mb": 500.0},
        "config": {"backbone": {"name": "toy", "codec": {"fps": 16}}, "cache": cache}}))


@pytest.mark.slow
def test_full_size_sweep_opens_lazily(tmp_path, browser):
    """9 policies x 8 prompts x 240 s: only the sections near the viewport load their data and
    build players, and no video bytes are requested until play. Timings are printed, not asserted."""
    import time
    from analysis.tables import PRESET_ORDER
    from tethercache.toyworld.world import render
    from tethercache.video import Mp4Writer
    video = tmp_path / "source_240s.mp4"
    frames, _ = render(PROMPTS[0], 0, 240 * 16)
    with Mp4Writer(video, fps=16, scale=4) as w:
        w.write(frames)
    rng = np.random.default_rng(0)
    prompts = [f"{PROMPTS[p % 2]} #{p}" for p in range(8)]
    for i, preset in enumerate(PRESET_ORDER):
        _fake_run(tmp_path / "sweep" / f"{i}-toy-{preset}-240s", preset, prompts, video, rng)
    t0 = time.perf_counter()
    report.build([tmp_path / "sweep"], tmp_path / "report")
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    report.build([tmp_path / "sweep"], tmp_path / "report")
    t_rebuild = time.perf_counter() - t0

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    t0 = time.perf_counter()
    page.goto((tmp_path / "report" / "index.html").as_uri(), wait_until="load")
    page.wait_for_selector("#g0 .tile video")
    t_open = time.perf_counter() - t0
    page.wait_for_timeout(500)
    groups = page.eval_on_selector_all(".group", "gs => gs.length")
    built_groups = page.eval_on_selector_all(".group .tiles", "ts => ts.length")
    data = [u for u in requests if "/data/g" in u]
    assert groups == 8 and 1 <= built_groups <= 3 and len(data) == built_groups
    assert not [u for u in requests if u.endswith(".mp4")]            # preload="none"
    assert page.eval_on_selector_all("#g0 .tile:not([hidden])", "ts => ts.length") == 4   # of 9
    page.click("#g0 button.play")
    page.wait_for_function(f"{TIMES}.length == 4 && {TIMES}.every(t => t > 0.5)", timeout=20000)
    sizes = {p.name: p.stat().st_size for p in (tmp_path / "report" / "data").iterdir()}
    print(f"\n9 x 8 x 240 s: build {t_build:.1f} s (1 encode), rebuild {t_rebuild:.1f} s, "
          f"page open to first players {t_open:.2f} s, {built_groups}/8 sections built at open, "
          f"index.js {sizes['index.js'] / 1e3:.0f} kB, a section's data {sizes['g0.js'] / 1e6:.2f} MB")


# ---- a region added to the region table is drawn like the built-in ones --------------------------
@pytest.fixture
def ema_region():
    with added_region("ema", "#123456") as code:
        yield code


EMA_PIXELS = """() => { const c = document.querySelector('#g0 .tile canvas.tl');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
  for (let i = 0; i < d.length; i += 4)
    if (Math.abs(d[i] - 0x12) < 8 && Math.abs(d[i + 1] - 0x34) < 8 && Math.abs(d[i + 2] - 0x56) < 8) n++;
  return n; }"""


def test_an_added_region_is_in_the_data_legend_and_canvas(ema_region, tmp_path, browser):
    from fake_runs import write_run
    from tethercache.cache.protocol import RECENT, SINK
    assert ema_region > 4                                   # beyond the built-in codes
    write_run(tmp_path / "sweep" / "0-toy-tether-5s", "tether", 0.6,
              regions=(SINK, ema_region, ema_region, RECENT))
    out = tmp_path / "report"
    report.main([str(tmp_path / "sweep"), "--out", str(out)])
    idx = _index(out)
    assert idx["regions"] == [{"code": SINK, "name": "sink", "color": "#c44e52"},
                              {"code": RECENT, "name": "recent", "color": "#55a868"},
                              {"code": ema_region, "name": "ema", "color": "#123456"}]
    text = (out / "data" / "g0.js").read_text()
    heavy = json.loads(text[text.index("{"):text.rindex("}") + 1])
    seg = heavy["tether"]["timeline"]["layers"][0]
    assert {(f, r) for f, r in zip(seg[0::4], seg[1::4])} == {(0, SINK), (1, ema_region),
                                                             (2, ema_region), (3, RECENT)}
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((out / "index.html").as_uri())
    page.wait_for_selector("#g0 .tile video")
    assert page.inner_text("#legend").split() == ["sink", "recent", "ema"]
    assert page.eval_on_selector(f"#legend i[data-region='{ema_region}']",
                                 "i => getComputedStyle(i).backgroundColor") == "rgb(18, 52, 86)"
    page.wait_for_function(f"({EMA_PIXELS})() > 20", timeout=5000)    # ema lines on the timeline
    assert "2 ema" in page.inner_text("#g0 .tile .now")
    assert not errors, errors
