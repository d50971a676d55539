"""Checkpoint loading: every on-disk format a tiny CausalWan can be written in loads back exactly."""
from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from tethercache.model.loading import (CheckpointError, diffusers_to_original, load_wan_weights,
                                       original_to_diffusers)
from tethercache.model.wan import CausalWan, WanConfig

TINY = WanConfig(dim=64, ffn_dim=128, heads=2, layers=2, in_channels=12, out_channels=12,
                 text_dim=32, freq_dim=32)

# The original Wan names of the tiny model (Wan-AI/Wan2.1 `WanModel`), written out by hand so the
# inverse rename is checked against the real layout, not only against itself.
ORIGINAL_TOP = {
    "patch_embedding.weight", "patch_embedding.bias", "head.head.weight", "head.head.bias",
    "head.modulation", "text_embedding.0.weight", "text_embedding.0.bias", "text_embedding.2.weight",
    "text_embedding.2.bias", "time_embedding.0.weight", "time_embedding.0.bias",
    "time_embedding.2.weight", "time_embedding.2.bias", "time_projection.1.weight",
    "time_projection.1.bias",
}
ORIGINAL_BLOCK = {
    *(f"{attn}.{p}.{w}" for attn in ("self_attn", "cross_attn") for p in "qkvo"
      for w in ("weight", "bias")),
    *(f"{attn}.{n}.weight" for attn in ("self_attn", "cross_attn") for n in ("norm_q", "norm_k")),
    "norm3.weight", "norm3.bias", "ffn.0.weight", "ffn.0.bias", "ffn.2.weight", "ffn.2.bias",
    "modulation",
}


def random_model(seed: int) -> CausalWan:
    torch.manual_seed(seed)
    model = CausalWan(TINY).eval()
    with torch.no_grad():
        for p in model.net.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def diffusers_state(model: CausalWan) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.net.state_dict().items()}


def original_state(model: CausalWan) -> dict[str, torch.Tensor]:
    return diffusers_to_original(diffusers_state(model))


def forward(model: CausalWan) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, TINY.in_channels, 2, 4, 4, generator=g)
    text = torch.randn(1, 5, TINY.text_dim, generator=g)
    with torch.no_grad():
        return model(x, torch.tensor([[500.0, 250.0]]), model.text_kv(text))


def assert_same(loaded: CausalWan, ref: CausalWan) -> None:
    ref_state = ref.net.state_dict()
    for key, value in loaded.net.state_dict().items():
        assert torch.equal(value, ref_state[key]), key
    assert torch.equal(forward(loaded), forward(ref))


@pytest.fixture(scope="module")
def ema() -> CausalWan:
    return random_model(1)


@pytest.fixture(scope="module")
def gen() -> CausalWan:
    return random_model(2)


# ---- names --------------------------------------------------------------------------------
def test_original_names_match_wan_layout(ema):
    names = set(original_state(ema))
    expected = ORIGINAL_TOP | {f"blocks.{i}.{k}" for i in range(TINY.layers) for k in ORIGINAL_BLOCK}
    assert names == expected


def test_rename_round_trip_and_norm_swap(ema):
    state = diffusers_state(ema)
    original = diffusers_to_original(state)
    # the cross-attention norm is norm2 in diffusers, norm3 in the original
    assert original["blocks.0.norm3.weight"] is state["blocks.0.norm2.weight"]
    back = original_to_diffusers({f"model.{k}": v for k, v in original.items()})
    assert back.keys() == state.keys()
    assert all(back[k] is state[k] for k in state)


# ---- formats ------------------------------------------------------------------------------
def self_forcing_checkpoint(ema: CausalWan, gen: CausalWan) -> dict:
    prefixed = lambda m: {f"model.{k}": v for k, v in original_state(m).items()}  # noqa: E731
    critic = {"model.blocks.0.self_attn.q.weight": torch.randn(8, 8)}  # a different network
    # Self-Forcing's EMA shadow is taken from FSDP-wrapped blocks: names may carry the wrapper
    fsdp = lambda k: re.sub(r"^(model\.blocks\.\d+\.)", r"\1_fsdp_wrapped_module.", k)  # noqa: E731
    ema_state = {fsdp(k): v for k, v in prefixed(ema).items()}
    assert "model.blocks.1._fsdp_wrapped_module.norm3.weight" in ema_state
    return {"generator": prefixed(gen), "critic": critic, "generator_ema": ema_state}


def test_self_forcing_pt_prefers_ema(tmp_path, ema, gen):
    path = tmp_path / "self_forcing_dmd.pt"
    torch.save(self_forcing_checkpoint(ema, gen), path)

    model = CausalWan(TINY)
    info = load_wan_weights(model, path)
    assert info["format"] == "self_forcing" and info["source"] == "generator_ema"
    assert info["n_tensors"] == len(ema.net.state_dict())
    assert_same(model, ema)

    model = CausalWan(TINY)
    assert load_wan_weights(model, path, use_ema=False)["source"] == "generator"
    assert_same(model, gen)


def test_self_forcing_pt_without_ema_and_legacy_format(tmp_path, gen):
    ckpt = {"generator": {f"model.{k}": v for k, v in original_state(gen).items()}}
    path = tmp_path / "ode_init.pt"
    torch.save(ckpt, path, _use_new_zipfile_serialization=False)  # cannot be mmapped
    model = CausalWan(TINY)
    assert load_wan_weights(model, path)["source"] == "generator"
    assert_same(model, gen)


def test_original_safetensors_file(tmp_path, ema):
    path = tmp_path / "wan.safetensors"
    save_file(original_state(ema), path)
    model = CausalWan(TINY)
    info = load_wan_weights(model, path)
    assert info["naming"] == "original"
    assert_same(model, ema)


def test_original_dir_single_and_sharded(tmp_path, ema):
    state = original_state(ema)
    single = tmp_path / "Wan2.1-T2V-1.3B"
    single.mkdir()
    save_file(state, single / "diffusion_pytorch_model.safetensors")

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    keys = sorted(state)
    weight_map = {}
    for i, part in enumerate((keys[::2], keys[1::2])):
        name = f"diffusion_pytorch_model-0000{i + 1}-of-00002.safetensors"
        save_file({k: state[k] for k in part}, sharded / name)
        weight_map.update({k: name for k in part})
    (sharded / "diffusion_pytorch_model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map}))

    for path in (single, sharded):
        model = CausalWan(TINY)
        assert load_wan_weights(model, path)["naming"] == "original"
        assert_same(model, ema)


def test_diffusers_dirs_and_file(tmp_path, ema):
    ema.net.save_pretrained(tmp_path / "Diffusers" / "transformer")              # one file
    ema.net.save_pretrained(tmp_path / "sharded", max_shard_size="40KB")         # with an index
    assert list((tmp_path / "sharded").glob("*.index.json"))
    save_file(diffusers_state(ema), tmp_path / "diffusers.safetensors")
    for path in (tmp_path / "Diffusers", tmp_path / "Diffusers" / "transformer",
                 tmp_path / "sharded", tmp_path / "diffusers.safetensors"):
        model = CausalWan(TINY)
        assert load_wan_weights(model, path)["naming"] == "diffusers"
        assert_same(model, ema)


def test_casts_to_model_dtype(tmp_path, ema):
    path = tmp_path / "wan.safetensors"
    save_file(original_state(ema), path)
    model = CausalWan(TINY).to(torch.bfloat16)
    load_wan_weights(model, path)
    ref = ema.net.state_dict()
    for key, value in model.net.state_dict().items():
        assert value.dtype == torch.bfloat16 and torch.equal(value, ref[key].to(torch.bfloat16)), key


# ---- errors -------------------------------------------------------------------------------
def load_error(path) -> str:
    with pytest.raises(CheckpointError) as err:
        load_wan_weights(CausalWan(TINY), path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message
    return message


def test_missing_path(tmp_path):
    load_error(tmp_path / "nope.pt")


def test_garbage_file(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"this is not a checkpoint" * 10)
    assert "not a readable" in load_error(path)


def test_garbage_safetensors(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"\x00" * 64)
    assert "safetensors" in load_error(path)


def test_pt_without_generator_lists_keys(tmp_path):
    path = tmp_path / "critic_only.pt"
    torch.save({"critic": {"w": torch.zeros(1)}, "step": 7}, path)
    message = load_error(path)
    assert "generator" in message and "critic" in message and "step" in message


def test_empty_dir(tmp_path):
    assert "diffusion_pytorch_model.safetensors" in load_error(tmp_path)


def test_missing_key(tmp_path, ema):
    state = original_state(ema)
    del state["blocks.1.norm3.weight"]
    path = tmp_path / "missing.safetensors"
    save_file(state, path)
    message = load_error(path)
    assert "1 missing" in message and "blocks.1.norm3.weight" in message


def test_unexpected_key(tmp_path, ema):
    state = diffusers_state(ema)
    state["blocks.0.attn1.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.safetensors"
    save_file(state, path)
    message = load_error(path)
    assert "1 unexpected" in message and "blocks.0.attn1.extra.weight" in message


def test_wrong_shape(tmp_path, ema):
    state = original_state(ema)
    state["head.head.weight"] = torch.zeros(7, TINY.dim)
    path = tmp_path / "shape.safetensors"
    save_file(state, path)
    message = load_error(path)
    assert "head.head.weight" in message and "(48, 64)" in message and "(7, 64)" in message
