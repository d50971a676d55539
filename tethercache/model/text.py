"""Text encoders: prompts -> per-token embeddings [B, L, dim] for the model's cross-attention.

The real one is Wan's UMT5-XXL encoder, read from a local Wan2.1-T2V-1.3B-Diffusers directory
(`tokenizer/`, `text_encoder/`). As in Self-Forcing's WanTextEncoder (utils/wan_wrapper.py) prompts
are padded to 512 tokens and the embeddings of padding positions are zeroed, so the model
sees the same context whatever the padding length the encoder itself would produce.
"""
from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class TextEncoder(Protocol):
    dim: int

    def encode(self, prompts: list[str]) -> torch.Tensor:  # -> [B, L, dim]
        ...


def clean_prompt(text: str) -> str:
    """Self-Forcing's 'whitespace' cleaning (minus ftfy): unescape HTML, collapse whitespace."""
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text))).strip()


class UMT5TextEncoder:
    """UMT5 encoder + tokenizer from a local `*-Diffusers` directory; never downloads."""

    def __init__(self, path: str | Path, dtype: torch.dtype = torch.bfloat16,
                 device: str | torch.device = "cpu", max_length: int = 512):
        from transformers import AutoTokenizer, UMT5EncoderModel

        root = Path(path).expanduser()
        for sub in ("tokenizer", "text_encoder"):
            if not (root / sub).is_dir():
                raise FileNotFoundError(f"{root / sub}: not found (expected a Wan2.1 *-Diffusers "
                                        f"directory with tokenizer/ and text_encoder/)")
        self.path, self.max_length, self.device = root, max_length, torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
        self.model = UMT5EncoderModel.from_pretrained(
            root / "text_encoder", dtype=dtype, local_files_only=True).to(self.device).eval()
        self.dim: int = self.model.config.d_model

    def tokenize(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (input_ids, attention_mask), each [B, max_length]."""
        tok = self.tokenizer([clean_prompt(p) for p in prompts], padding="max_length",
                             truncation=True, max_length=self.max_length,
                             add_special_tokens=True, return_tensors="pt")
        return tok.input_ids.to(self.device), tok.attention_mask.to(self.device)

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> torch.Tensor:
        ids, mask = self.tokenize(prompts)
        out = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return out.masked_fill(~mask.bool()[..., None], 0.0)     # padding rows exactly zero
