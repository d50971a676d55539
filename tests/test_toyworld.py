"""Toy world: determinism, camera path, palette purity, grammar, splits, text encoder."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from tethercache.toyworld import (REVISIT_MIN_GAP, SPLIT_SEEDS, GrammarTextEncoder, PromptError, ToyWorld,
                                  WorldConfig, parse_prompt, render, sample_prompt, sample_spec, split_pairs,
                                  training_batches)
from tethercache.toyworld.world import prompt_for_seed

PROMPT = "forest scene, wavy bands, red square and white disk, medium camera"


def test_render_is_deterministic_from_prompt_and_seed():
    a, pa = render(PROMPT, 3, 50)
    b, pb = render(PROMPT, 3, 50)
    c, _ = render(PROMPT, 4, 50)
    assert a.dtype == torch.uint8 and a.shape == (50, 32, 32, 3)
    assert torch.equal(a, b) and torch.equal(pa, pb)
    assert not torch.equal(a, c)
    # a window of frames equals the same frames of a longer render
    w = ToyWorld(PROMPT, 3)
    window, poses = w.render(10, start=20)
    assert torch.equal(window, a[20:30]) and torch.equal(poses, pa[20:30])


def test_camera_ping_pongs_and_revisits():
    w = ToyWorld(PROMPT, 0)
    x = w.camera_x(3 * w.period)
    assert x.dtype == torch.long and x.min() == 0 and x.max() == 256 - 32
    assert w.sweep == 56 and w.period == 112                        # medium: 4 px per frame
    steps = x.diff().abs()
    assert torch.all(steps == 4)
    assert torch.equal(x[: w.period], x[w.period: 2 * w.period])    # periodic
    assert x[w.sweep] == 224 and x[w.sweep + 1] == 220             # turns at the strip end
    frames, poses = w.render(2 * w.period)
    # one period later the same camera x shows the same picture (sprite bobbing divides the period)
    assert torch.equal(frames[5], frames[5 + w.period])
    # revisits further apart than a cache window exist at every position
    same = (poses[:, None] == poses[None, :]) & (torch.arange(len(poses))[None, :] - torch.arange(len(poses))[:, None] > REVISIT_MIN_GAP)
    assert same.any(1)[: w.period].all()


@pytest.mark.parametrize("speed,sweep", [("slow", 112), ("medium", 56), ("fast", 28)])
def test_speeds(speed, sweep):
    w = ToyWorld(f"ocean scene, calm bands, yellow triangle, {speed} camera", 1)
    assert w.sweep == sweep


def test_every_pixel_is_on_the_prompt_palette():
    for prompt, seed in split_pairs("train", 12):
        frames, _ = render(prompt, seed, 120)
        palette = parse_prompt(prompt).colours()
        assert len(palette) <= 6
        on_palette = (frames[..., None, :] == torch.from_numpy(palette)).all(-1).any(-1)
        assert on_palette.all(), prompt
        # every sprite colour shows up over one camera sweep
        for colour in palette[parse_prompt(prompt).n_bands:]:
            assert (frames == torch.from_numpy(colour)).all(-1).any(), (prompt, colour)


def test_grammar_round_trip_and_sampling():
    rng = np.random.default_rng(0)
    for _ in range(200):
        spec = sample_spec(rng)
        assert parse_prompt(spec.prompt) == spec
    assert parse_prompt("  Forest   scene, WAVY bands, red square and white disk, medium camera ") == parse_prompt(PROMPT)
    assert isinstance(sample_prompt(rng), str)


@pytest.mark.parametrize("bad,match", [
    ("jungle scene, wavy bands, red disk, slow camera", "palette"),
    ("forest scene, furry bands, red disk, slow camera", "texture"),
    ("forest scene, wavy bands, red hexagon, slow camera", "shape"),
    ("forest scene, wavy bands, purple disk, slow camera", "colour"),
    ("forest scene, wavy bands, blue disk, slow camera", "not in the forest palette"),
    ("forest scene, wavy bands, red disk and red square, slow camera", "must differ"),
    ("forest scene, wavy bands, red disk and white disk and yellow disk and magenta disk, slow camera", "1 to 3"),
    ("forest scene, wavy bands, red disk, warp camera", "speed"),
    ("forest scene, red disk, slow camera", "4 comma-separated"),
    ("forest, wavy bands, red disk, slow camera", "palette"),
])
def test_grammar_errors_are_clear(bad, match):
    with pytest.raises(PromptError, match=match):
        parse_prompt(bad)


def test_splits_are_disjoint_and_deterministic():
    assert set(SPLIT_SEEDS["train"]).isdisjoint(SPLIT_SEEDS["heldout"])
    train, held = split_pairs("train", 50), split_pairs("heldout", 50)
    assert not {s for _, s in train} & {s for _, s in held}
    assert split_pairs("heldout", 50) == held
    batch = next(training_batches(2, split="heldout", seed=0))
    assert all(s in SPLIT_SEEDS["heldout"] for s in batch.seeds)


def test_training_batches_shape_and_content():
    it = training_batches(4, clip_frames=24, seed=1)
    batch = next(it)
    assert batch.frames.shape == (4, 24, 32, 32, 3) and batch.frames.dtype == torch.uint8
    assert batch.poses.shape == (4, 24) and batch.poses.dtype == torch.long
    images = batch.images()
    assert images.shape == (4, 24, 3, 32, 32) and images.min() >= -1 and images.max() <= 1
    # each clip is a contiguous piece of its world's video (same poses, same pixels)
    world = ToyWorld(batch.prompts[0], batch.seeds[0])
    assert (batch.poses[0].diff().abs() == world.spec.speed_px).all()
    video, poses = world.render(world.period * 8 + 24)
    starts = [s for s in range(world.period * 8) if torch.equal(video[s], batch.frames[0, 0])]
    assert any(torch.equal(video[s: s + 24], batch.frames[0]) and torch.equal(poses[s: s + 24], batch.poses[0])
               for s in starts)
    again = next(training_batches(4, clip_frames=24, seed=1))
    assert torch.equal(again.frames, batch.frames)


def test_sprite_clips_show_a_sprite_and_the_sampler_resumes():
    """sprite_clips=1: every clip shows a sprite somewhere (uniform clips often do not); the
    sprite mask is exactly the sprite-coloured pixels; a restored state replays the same clips."""
    uniform = next(training_batches(32, clip_frames=12, seed=3))
    sampler = training_batches(32, clip_frames=12, seed=3, sprite_clips=1.0)
    focused = next(sampler)
    assert focused.sprite.any(dim=(1, 2, 3)).all() and not uniform.sprite.any(dim=(1, 2, 3)).all()
    for b in range(4):
        world = ToyWorld(focused.prompts[b], focused.seeds[b])
        sprite_colours = torch.from_numpy(world.colours[world.spec.n_bands:])
        is_sprite = (focused.frames[b][..., None, :] == sprite_colours).all(-1).any(-1)
        assert torch.equal(is_sprite, focused.sprite[b])
    state = sampler.state()
    nxt = next(sampler)
    sampler.load_state(state)
    assert torch.equal(next(sampler).frames, nxt.frames)
    with pytest.raises(ValueError, match="sprite_clips"):
        training_batches(2, sprite_clips=1.5)


def test_world_levers_change_only_what_they_name():
    """sprite_size and band_amp_scale: same layout draws (rng), bigger sprites / calmer bands."""
    big = ToyWorld(PROMPT, 3, WorldConfig(sprite_size=12))
    assert all(mask.shape == (12, 12) for _, mask, *_ in big.sprites)
    flat, base = ToyWorld(PROMPT, 3, WorldConfig(band_amp_scale=0.0)), ToyWorld(PROMPT, 3)
    heights = lambda w: (w.background[:, :, None] >= np.arange(1, 3)).sum(0)     # rows per band boundary
    assert np.ptp(heights(flat), axis=0).max() <= 1 < np.ptp(heights(base), axis=0).max()
    assert [x for _, _, x, *_ in flat.sprites] == [x for _, _, x, *_ in base.sprites]
    assert WorldConfig().describe() == {} and WorldConfig(sprite_size=12).describe() == {"sprite_size": 12}


def test_start_layout_puts_every_sprite_in_the_first_view_and_free_layout_is_unchanged():
    """sprite_layout=start: every prompt sprite is whole in frame 0 (where rollouts start) and no
    two sprites touch in any bobbing phase; the seed moves them. The free layout draws what it
    always drew (pinned), so the v1 / v2 worlds and their numbers stay valid."""
    cfg = WorldConfig(sprite_size=12, sprite_layout="start")
    places = set()
    for seed in range(60):
        world = ToyWorld(prompt_for_seed(seed), seed, cfg)
        first = world.labels(1)[0]
        for label, mask, x, *_ in world.sprites:
            assert (first == label).sum() == mask.sum(), (seed, label)        # whole, not covered
            assert x >= 1            # at x 0 the left edge would cut it in every frame: never judged
        for t in range(cfg.bob_period):
            covered = np.zeros((cfg.height, cfg.strip_width), int)
            for _, mask, x, y, amp, phase in world.sprites:
                dy = int(np.round(amp * np.sin(2 * np.pi * t / cfg.bob_period + phase)))
                covered[y + dy: y + dy + 12, x: x + 12] += mask
            assert covered.max() == 1 and covered[:2].sum() == covered[-2:].sum() == 0
        places.add(tuple((x, y) for _, _, x, y, *_ in world.sprites))
    assert len(places) > 30
    free = ToyWorld("forest scene, wavy bands, red square and white disk and yellow triangle, fast camera", 5,
                    WorldConfig(sprite_size=12))
    assert [(x, y, amp) for _, _, x, y, amp, _ in free.sprites] == [(17, 17, 0), (109, 8, 2), (217, 5, 2)]


def test_config_is_configurable():
    w = ToyWorld(PROMPT, 0, WorldConfig(height=48, width=48, strip_width=304))
    frames, poses = w.render(5)
    assert frames.shape == (5, 48, 48, 3) and int(w.camera_x(100).max()) == 304 - 48
    with pytest.raises(ValueError, match="multiple"):
        ToyWorld("forest scene, wavy bands, red disk, fast camera", 0, WorldConfig(strip_width=260))


def test_text_encoder_is_deterministic_and_strict():
    enc = GrammarTextEncoder(dim=64)
    a = enc.encode([PROMPT, "night scene, calm bands, yellow triangle, slow camera"])
    assert a.shape == (2, enc.seq_len, 64)
    assert torch.equal(a, GrammarTextEncoder(dim=64).encode([PROMPT, "night scene, calm bands, yellow triangle, slow camera"]))
    assert not torch.equal(a[0], a[1])
    assert a[1, 3:5].abs().sum() == 0          # absent sprite slots are zero padding
    small = GrammarTextEncoder(dim=8).encode([PROMPT])
    assert small.shape == (1, enc.seq_len, 8)
    assert torch.equal(small, GrammarTextEncoder(dim=8).encode([PROMPT]))
    with pytest.raises(PromptError, match="palette"):
        enc.encode(["jungle scene, wavy bands, red disk, slow camera"])
    with pytest.raises(TypeError):
        enc.encode(PROMPT)


def test_world_config_reads_what_describe_writes_and_names_bad_fields():
    from tethercache.errors import ConfigError
    from tethercache.toyworld.world import world_config
    for cfg in (WorldConfig(), WorldConfig(sprite_size=12), WorldConfig(sprite_size=10, band_amp_scale=0.5),
                WorldConfig(sprite_size=12, sprite_layout="start")):
        assert world_config(cfg.describe()) == cfg
    for bad, match in (({"sprite_size": 20}, r"backbone\.world\.sprite_size=20: must be a whole number in \[4, 14\]"),
                       ({"sprite_size": 10.5}, "sprite_size"), ({"sprite_size": True}, "sprite_size"),
                       ({"band_amp_scale": "x"}, "band_amp_scale"), ({"band_amp_scale": -1}, "band_amp_scale"),
                       ({"sprite_layout": "top"}, r"sprite_layout='top': must be one of \['free', 'start'\]"),
                       ({"sprite_layout": "start", "sprite_size": 14}, r"sprite_size: must be <= 12 with sprite_layout=start"),
                       ({"height": 48}, r"backbone\.world\.height: unknown")):
        with pytest.raises(ConfigError, match=match):
            world_config(bad)
