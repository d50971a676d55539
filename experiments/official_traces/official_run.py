"""Runs an official TetherCache work tree's inference pipeline on CPU in float32 and traces it.

Started by generate.py in a child process whose working directory is the official tree (its
configs are read relative to it) and whose import path holds that tree only: the official
repository ships its own top-level `tethercache` package, which must not meet the project's.
Nothing of the official code is copied; it is imported and patched at run time where it
hard-codes CUDA or the 1.3B geometry (each patch is listed in README.md, numbered as below).

    python official_run.py SPEC.json        (SPEC: see generate.py `official_spec`)
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F


class AttrDict(dict):
    """easydict.EasyDict's one use at import: the wan/configs tables (unused on this path)."""
    __setattr__ = dict.__setitem__

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def stub_modules() -> None:
    """P1: packages imported at module level but unused on the inference path (diffusers,
    which probes for some of them, is imported first so that it sees them absent)."""
    import diffusers.models.modeling_utils  # noqa: F401
    for name, attrs in (("ftfy", {}), ("einops", {"rearrange": None, "repeat": None}),
                        ("easydict", {"EasyDict": AttrDict})):
        if name in sys.modules:
            continue
        mod = types.ModuleType(name)
        for a, value in attrs.items():
            setattr(mod, a, value or _unused(f"{name}.{a}"))
        sys.modules[name] = mod
    for name in ("wan", "pipeline"):
        # P1b: package __init__s that pull in the image-to-video, training and sampler modules
        # (torchvision, ...); their submodules are imported directly instead
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(Path.cwd() / name)]
        sys.modules[name] = pkg


def _unused(what):
    def fail(*_, **__):
        raise RuntimeError(f"{what} was called; the trace stub assumed it is not")
    return fail


def import_official():
    """P2: demo_utils/memory.py calls torch.cuda.current_device() at import; answer 0."""
    current = torch.cuda.current_device
    torch.cuda.current_device = lambda: 0
    try:
        import pipeline.causal_inference as ci
        import tethercache as official
        import tethercache.patched_attention as pa
        import utils.wan_wrapper as ww
        import wan.modules.causal_model as cm
        import wan.modules.model as wm
    finally:
        torch.cuda.current_device = current
    return types.SimpleNamespace(ci=ci, official=official, pa=pa, ww=ww, cm=cm, wm=wm)


def sdpa(q, k, v, **_):
    """P3: attention in the inputs' dtype (float32), [B, L, H, D] in and out. The official
    `attention` falls back to SDPA after casting to bfloat16; `flash_attention` needs flash-attn.
    Both are called without masks or lengths on this path."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).contiguous()


class TextStub(torch.nn.Module):
    """P4: the UMT5-XXL text encoder replaced by the given prompt embedding [B, 512, text_dim]."""

    def __init__(self, embeds):
        super().__init__()
        self.embeds = embeds

    def forward(self, text_prompts):
        return {"prompt_embeds": self.embeds}


class VaeStub(torch.nn.Module):
    """P5: no VAE; the trace keeps latents (`decode_to_pixel` returns its input)."""

    def decode_to_pixel(self, latent, use_cache=False):
        return latent


def build_pipeline(o, spec, embeds):
    geom = spec["model"]
    # P6: the generator loads Wan2.1-1.3B from wan_models/; build the tiny geometry instead
    o.cm.CausalWanModel.from_pretrained = classmethod(
        lambda cls, _path, **kw: cls(model_type="t2v", **geom, **kw))
    from omegaconf import OmegaConf
    args = OmegaConf.merge(OmegaConf.load("configs/default_config.yaml"),
                           OmegaConf.load("configs/self_forcing_dmd.yaml"))
    args.context_noise = spec["context_noise"]
    pipe = o.ci.CausalInferencePipeline(args, device=torch.device("cpu"),
                                        text_encoder=TextStub(embeds), vae=VaeStub())
    state = torch.load(spec["checkpoint"], map_location="cpu", weights_only=False)
    pipe.generator.load_state_dict(state["generator_ema"])       # as inference_long.py (--use_ema)
    # P7: tokens per frame and layer count are hard-coded (1560, 30)
    h, w = spec["latent_hw"]
    pipe.frame_seq_length = (h // 2) * (w // 2)
    pipe.num_transformer_blocks = geom["num_layers"]
    # P8: the caches are allocated [B, n, 12, 128]; allocate them with the model's heads
    heads, head_dim = geom["num_heads"], geom["dim"] // geom["num_heads"]
    pipe._initialize_kv_cache = types.MethodType(_kv_cache(heads, head_dim), pipe)
    pipe._initialize_crossattn_cache = types.MethodType(_cross_cache(heads, head_dim), pipe)

    t = spec["tether"]
    o.official.force_local_attn(pipe, t["budget_size"], t["sink_size"])
    o.official.install_tethercache(pipe, o.official.TetherCacheConfig(**t))
    return pipe


def _kv_cache(heads, head_dim):
    def init(self, batch_size, dtype, device):
        size = self.local_attn_size * self.frame_seq_length
        self.kv_cache1 = [{"k": torch.zeros([batch_size, size, heads, head_dim], dtype=dtype),
                           "v": torch.zeros([batch_size, size, heads, head_dim], dtype=dtype),
                           "global_end_index": torch.tensor([0], dtype=torch.long),
                           "local_end_index": torch.tensor([0], dtype=torch.long)}
                          for _ in range(self.num_transformer_blocks)]
    return init


def _cross_cache(heads, head_dim):
    def init(self, batch_size, dtype, device):
        self.crossattn_cache = [{"k": torch.zeros([batch_size, 512, heads, head_dim], dtype=dtype),
                                 "v": torch.zeros([batch_size, 512, heads, head_dim], dtype=dtype),
                                 "is_init": False} for _ in range(self.num_transformer_blocks)]
    return init


class Tracer:
    """Records, without changing them, the pipeline's noise draws, every generator call's x0,
    the RoPE ranges and key lengths each self-attention readout uses, and after each chunk's
    context pass the cache of every layer."""

    def __init__(self, o, pipe, context_noise):
        self.o, self.pipe, self.context_noise = o, pipe, context_noise
        self.renoise, self.passes, self.chunks = [], [], []
        self.calls: list[dict] = []          # this generator call's readouts, layer order
        self._rope = o.pa.causal_rope_apply
        o.pa.causal_rope_apply = self.rope
        o.pa.attention = o.cm.attention = self.attention
        o.wm.flash_attention = sdpa
        self._randn_like = torch.randn_like
        torch.randn_like = self.randn_like
        inner = pipe.generator.forward
        pipe.generator.forward = lambda *a, **kw: self.forward(inner, *a, **kw)

    def randn_like(self, x, *a, **kw):
        draw = self._randn_like(x, *a, **kw)
        self.renoise.append(draw.clone())
        return draw

    def rope(self, x, grid_sizes, freqs, start_frame=0):
        n = int(grid_sizes[0][0])
        if not self.calls or "q" in self.calls[-1]:
            self.calls.append({"k": (start_frame, n)})
        else:
            self.calls[-1]["q"] = (start_frame, n)
        return self._rope(x, grid_sizes, freqs, start_frame=start_frame)

    def attention(self, q, k, v, **kw):
        self.calls[-1]["read"] = k.shape[1]
        return sdpa(q, k, v, **kw)

    def forward(self, inner, *args, **kwargs):
        self.calls = []
        out = inner(*args, **kwargs)
        t = float(kwargs["timestep"].flatten()[0])
        self.passes.append((t, out[1].clone()))
        if t == self.context_noise:
            self.chunks.append(self.snapshot())
        return out

    def snapshot(self):
        T = self.pipe.frame_seq_length
        layers = []
        for cache, blk, call in zip(self.pipe.kv_cache1, self.pipe.generator.model.blocks, self.calls):
            st = blk.self_attn.tether_state
            local, glob = int(cache["local_end_index"]) // T, int(cache["global_end_index"]) // T
            layers.append({
                "k": cache["k"].clone(), "v": cache["v"].clone(), "local_end": local,
                "global_end": glob, "cache_filled": bool(st.cache_filled),
                "mem_frames": (st.mem_global_frame_index.tolist()
                               if st.mem_global_frame_index is not None else None),
                "k_rope": call["k"], "q_rope": call["q"], "read_tokens": int(call["read"]),
                "admissions": st.n_admissions, "rejections": st.n_rejections, "edits": st.n_edits})
        return layers


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    stub_modules()
    o = import_official()
    inputs = torch.load(spec["inputs"], weights_only=True)
    pipe = build_pipeline(o, spec, inputs["text"])
    if spec.get("commit_rule"):
        o.cm.COMMIT_RULE["rule"] = True        # the Commit Forcing patch's switch (default off)
    tracer = Tracer(o, pipe, spec["context_noise"])
    n = spec["chunks"] * 3
    torch.manual_seed(spec["renoise_seed"])
    _, latents = pipe.inference(noise=inputs["initial"][:, :n], text_prompts=["trace"],
                                return_latents=True)
    torch.randn_like = tracer._randn_like
    out = {"latents": latents, "renoise": tracer.renoise, "passes": tracer.passes,
           "chunks": tracer.chunks,
           "commit_rule_counters": dict(o.cm.COMMIT_RULE) if hasattr(o.cm, "COMMIT_RULE") else None}
    torch.save(out, spec["out"])


if __name__ == "__main__":
    main(sys.argv[1])
