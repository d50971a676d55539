"""Tiny stand-ins for the real weights, written in the real on-disk formats:
a Wan2.1-T2V-1.3B-Diffusers-like directory (tokenizer/, text_encoder/ UMT5, vae/ AutoencoderKLWan)
and a Self-Forcing checkpoint (torch.save dict with generator / generator_ema, `model.<Wan key>`)."""
from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKLWan
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

WORDS = "a cat dog runs jumps over the red fence in snow".split()
VOCAB = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(WORDS)}}
LATENT_MEAN = [0.5, -1.0, 0.25, 2.0]
LATENT_STD = [2.0, 0.5, 1.5, 3.0]


def write_text_encoder(root: Path, d_model: int = 32) -> None:
    tok = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(root / "tokenizer")
    torch.manual_seed(0)
    config = UMT5Config(vocab_size=len(VOCAB), d_model=d_model, d_kv=8, d_ff=64, num_layers=2,
                        num_heads=4, relative_attention_num_buckets=8, pad_token_id=0,
                        eos_token_id=1, decoder_start_token_id=0)
    UMT5EncoderModel(config).save_pretrained(root / "text_encoder")


def write_vae(root: Path) -> None:
    """Tiny random AutoencoderKLWan with Wan's strides (x8 spatial, x4 temporal), 4 latent channels."""
    torch.manual_seed(0)
    AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                     temperal_downsample=[False, True, True], latents_mean=LATENT_MEAN,
                     latents_std=LATENT_STD).save_pretrained(root / "vae")


def write_self_forcing_checkpoint(model, path: Path) -> None:
    """`generator_ema` = the model; `generator` and `critic` differ, as in a real DMD checkpoint."""
    from tethercache.model.loading import diffusers_to_original
    ema = {f"model.{k}": v.clone() for k, v in diffusers_to_original(model.net.state_dict()).items()}
    gen = {k: v + 1.0 for k, v in ema.items()}
    torch.save({"generator": gen, "critic": {"model.x": torch.zeros(1)}, "generator_ema": ema}, path)
