"""Load Wan2.1 transformer weights into `CausalWan.net`, whatever their on-disk format.

Accepted (the formats Self-Forcing and Wan2.1 publish):
  * Self-Forcing `.pt`: `torch.save({"generator", "critic", "generator_ema"})`, keys
    `model.<original Wan key>`;
  * original Wan weights (Wan-AI/Wan2.1-T2V-1.3B): a `.safetensors` file or a directory with
    `diffusion_pytorch_model.safetensors` or a sharded `*.safetensors.index.json`;
  * diffusers-named weights (a `*-Diffusers/transformer` dir, or such a file).
The naming is detected from the keys; original names go through diffusers' own converter.
Every failure raises `CheckpointError` with one line naming the path and the problem.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers
from safetensors import SafetensorError
from safetensors.torch import load_file

from .wan import CausalWan

StateDict = dict[str, torch.Tensor]
GENERATOR_KEYS = ("generator_ema", "generator")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the path and the problem."""


# ---- public API -------------------------------------------------------------------------
def load_wan_weights(model: CausalWan, path: str | Path, *, use_ema: bool = True) -> dict:
    """Load a Wan2.1 checkpoint into `model.net` (strict); returns what was loaded."""
    path = Path(path).expanduser()
    state, fmt, source = _read(path, use_ema)
    state = _clean_keys(state)
    naming = _naming(state, path)
    if naming == "original":
        state = original_to_diffusers(state)
    shown_as = _original_key if naming == "original" else str
    _check_against(model.net.state_dict(), state, path, shown_as)
    model.net.load_state_dict(state, strict=True)       # copies, casting to the model's dtype
    return {"path": str(path), "format": fmt, "naming": naming, "source": source,
            "n_tensors": len(state)}


def original_to_diffusers(state: StateDict) -> StateDict:
    """Original Wan names (optionally `model.`-prefixed) -> diffusers names (norm2/norm3 swapped)."""
    return convert_wan_transformer_to_diffusers(_clean_keys(dict(state)))


# Inverse of diffusers' rename table, applied in order to one key.
_TO_ORIGINAL = [
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.head."),
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"\.scale_shift_table$", ".modulation"),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_out\.0\.", ".o."),
    (r"\.to_([qkv])\.", r".\1."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    # diffusers' norm2 is the cross-attention norm, the original's norm3 (and vice versa)
    (r"\.norm2\.", ".norm__swap."),
    (r"\.norm3\.", ".norm2."),
    (r"\.norm__swap\.", ".norm3."),
]


def diffusers_to_original(state: StateDict) -> StateDict:
    """Diffusers names -> original Wan names (for exporting; inverse of `original_to_diffusers`)."""
    return {_original_key(k): v for k, v in state.items()}


def _original_key(key: str) -> str:
    for pattern, repl in _TO_ORIGINAL:
        key = re.sub(pattern, repl, key)
    return key


# ---- reading ----------------------------------------------------------------------------
def _read(path: Path, use_ema: bool) -> tuple[StateDict, str, str | None]:
    """-> (state dict, format, source key) from a file or a directory."""
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory")
    if path.is_dir():
        return _read_dir(path), "safetensors_dir", None
    if _is_safetensors(path):
        return _load_safetensors(path), "safetensors", None
    return _read_self_forcing(path, use_ema)


def _read_dir(path: Path) -> StateDict:
    indexes = sorted(path.glob("*.safetensors.index.json"))
    if len(indexes) > 1:
        raise CheckpointError(f"{path}: several index files: {[p.name for p in indexes]}")
    if indexes:
        return _read_sharded(indexes[0])
    single = path / "diffusion_pytorch_model.safetensors"
    if single.is_file():
        return _load_safetensors(single)
    if (path / "transformer").is_dir():          # the root of a *-Diffusers repo
        return _read_dir(path / "transformer")
    files = sorted(path.glob("*.safetensors"))
    if len(files) == 1:
        return _load_safetensors(files[0])
    raise CheckpointError(
        f"{path}: directory holds no diffusion_pytorch_model.safetensors, no *.safetensors.index.json "
        f"and not exactly one *.safetensors (found {[p.name for p in files]})")


def _read_sharded(index: Path) -> StateDict:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as e:
        raise CheckpointError(f"{index}: unreadable shard index ({type(e).__name__}: {e})") from None
    state: StateDict = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index.parent / shard
        if not shard_path.is_file():
            raise CheckpointError(f"{index}: shard {shard} listed in the index is missing")
        state.update(_load_safetensors(shard_path))
    listed, found = set(weight_map), set(state)
    if listed != found:
        diff = sorted(listed ^ found)
        raise CheckpointError(f"{index}: index and shards disagree on {len(diff)} keys, e.g. {diff[:5]}")
    return state


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length then a JSON object."""
    if path.suffix == ".safetensors":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError as e:
        raise CheckpointError(f"{path}: cannot be read ({_first_line(e)})") from None
    return len(head) == 9 and head[8:9] == b"{"


def _load_safetensors(path: Path) -> StateDict:
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{path}: not a readable safetensors file ({_first_line(e)})") from None


def _read_self_forcing(path: Path, use_ema: bool) -> tuple[StateDict, str, str]:
    obj = _torch_load(path)
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: torch file holds a {type(obj).__name__}, expected a dict "
                              f"with {' or '.join(GENERATOR_KEYS)}")
    order = GENERATOR_KEYS if use_ema else ("generator",)
    source = next((k for k in order if k in obj), None)
    if source is None:
        found = [str(k) for k in list(obj)[:10]]
        want = " or ".join(order)
        raise CheckpointError(f"{path}: no {want} in the checkpoint (top-level keys: {found}"
                              f"{', ...' if len(obj) > 10 else ''})")
    state = obj[source]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: '{source}' is not a dict of tensors")
    return state, "self_forcing", source


def _torch_load(path: Path):
    """torch.load with weights_only (never unpickle code); mmap when the file format allows it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # legacy (non-zip) files cannot be mmapped: retry plainly
        pass
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable torch or safetensors checkpoint "
                              f"({_first_line(e)})") from None


def _first_line(e: Exception) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0] if lines else ''}"


# ---- naming and validation --------------------------------------------------------------
# Wrapper fragments FSDP / activation checkpointing / torch.compile leave in parameter names;
# Self-Forcing's generator_ema can hold `_fsdp_wrapped_module.` (its inference.py strips it).
WRAPPER_FRAGMENTS = ("_fsdp_wrapped_module.", "_checkpoint_wrapped_module.", "_orig_mod.")


def _clean_keys(state: StateDict) -> StateDict:
    """Drop wrapper fragments, then Self-Forcing's `model.` prefix (or `model.diffusion_model.`)."""
    if any(f in k for k in state for f in WRAPPER_FRAGMENTS):
        state = {_drop_fragments(k): v for k, v in state.items()}
    for prefix in ("model.diffusion_model.", "model."):
        if state and all(k.startswith(prefix) for k in state):
            return {k[len(prefix):]: v for k, v in state.items()}
    return state


def _drop_fragments(key: str) -> str:
    for fragment in WRAPPER_FRAGMENTS:
        key = key.replace(fragment, "")
    return key


def _naming(state: StateDict, path: Path) -> str:
    keys = list(state)
    if any(".self_attn." in k or k.startswith("head.") for k in keys):
        return "original"
    if any(".attn1." in k or k.startswith("condition_embedder.") for k in keys):
        return "diffusers"
    raise CheckpointError(f"{path}: keys look like neither original Wan nor diffusers Wan "
                          f"({len(keys)} keys, e.g. {keys[:5]})")


def _check_against(expected: StateDict, state: StateDict, path: Path, shown_as) -> None:
    """Strict key and shape check; keys are reported in the checkpoint's own naming."""
    missing = sorted(shown_as(k) for k in set(expected) - set(state))
    unexpected = sorted(shown_as(k) for k in set(state) - set(expected))
    problems = [f"{len(names)} {what} keys, e.g. {names[:5]}"
                for what, names in (("missing", missing), ("unexpected", unexpected)) if names]
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))
    for key, ref in expected.items():
        got = state[key]
        if got.shape != ref.shape:
            raise CheckpointError(f"{path}: shape mismatch for {shown_as(key)}: model expects "
                                  f"{tuple(ref.shape)}, checkpoint has {tuple(got.shape)}")
