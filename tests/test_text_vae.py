"""UMT5 text encoder and streaming Wan VAE, on tiny random models saved in the Diffusers layout."""
from __future__ import annotations

import pytest
import torch

from tethercache.model.codec import to_uint8
from tiny_checkpoints import LATENT_MEAN as MEAN, LATENT_STD as STD, VOCAB, write_text_encoder, write_vae
from tethercache.model.text import TextEncoder, UMT5TextEncoder
from tethercache.model.vae import WanVAECodec

PROMPTS = ["a red cat runs", "the dog jumps over a red fence in  the\n snow"]


# ---- text ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def wan_dir(tmp_path_factory):
    """A tiny Wan2.1-T2V-1.3B-Diffusers lookalike: tokenizer/ and text_encoder/."""
    root = tmp_path_factory.mktemp("Wan2.1-T2V-1.3B-Diffusers")
    write_text_encoder(root)
    return root


@pytest.fixture(scope="module")
def text_encoder(wan_dir):
    return UMT5TextEncoder(wan_dir, dtype=torch.float32)


def by_hand_ids(prompt: str, length: int = 512) -> tuple[torch.Tensor, int]:
    ids = [VOCAB[w] for w in prompt.split()] + [VOCAB["</s>"]]
    return torch.tensor(ids + [VOCAB["<pad>"]] * (length - len(ids))), len(ids)


def test_umt5_output_shape_padding_and_values(text_encoder):
    assert isinstance(text_encoder, TextEncoder) and text_encoder.dim == 32
    out = text_encoder.encode(PROMPTS)
    assert out.shape == (2, 512, 32) and out.dtype == torch.float32

    rows = [by_hand_ids(p) for p in PROMPTS]
    ids = torch.stack([r[0] for r in rows])
    mask = (ids != VOCAB["<pad>"]).long()
    with torch.no_grad():
        direct = text_encoder.model(input_ids=ids, attention_mask=mask).last_hidden_state
    for b, (_, n) in enumerate(rows):
        assert torch.equal(out[b, :n], direct[b, :n])
        assert (out[b, :n].abs().sum(-1) > 0).all()
        assert torch.equal(out[b, n:], torch.zeros(512 - n, 32))     # padding exactly zero


def test_umt5_deterministic_and_padding_independent(wan_dir, text_encoder):
    first = text_encoder.encode(PROMPTS)
    assert torch.equal(first, text_encoder.encode(PROMPTS))
    assert torch.equal(first, UMT5TextEncoder(wan_dir, dtype=torch.float32).encode(PROMPTS))
    # a prompt's rows do not depend on how far it is padded, nor on its batch mates
    short = UMT5TextEncoder(wan_dir, dtype=torch.float32, max_length=16).encode(PROMPTS[:1])
    n = by_hand_ids(PROMPTS[0])[1]
    torch.testing.assert_close(short[0, :n], first[0, :n], atol=1e-5, rtol=1e-5)


def test_umt5_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        UMT5TextEncoder(tmp_path / "nowhere")


# ---- VAE ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def vae_root(tmp_path_factory):
    """Tiny random AutoencoderKLWan with Wan's strides (x8 spatial, x4 temporal) in <root>/vae."""
    root = tmp_path_factory.mktemp("wan_vae")
    write_vae(root)
    return root


@pytest.fixture(scope="module")
def codec(vae_root):
    return WanVAECodec(vae_root)


def whole_decode(codec: WanVAECodec, latents: torch.Tensor) -> torch.Tensor:
    """diffusers' one-shot decode of the un-normalized latents, as float [N, H, W, 3]."""
    z = latents * torch.tensor(STD).view(1, -1, 1, 1, 1) + torch.tensor(MEAN).view(1, -1, 1, 1, 1)
    with torch.no_grad():
        video = codec.vae.decode(z).sample
    return video[0].permute(1, 2, 3, 0)


def stream_decode(codec: WanVAECodec, latents: torch.Tensor, chunks: list[int]):
    stream, start, pieces = codec.decoder(), 0, []
    for n in chunks:
        pieces.append(stream.push_float(latents[:, :, start:start + n]))
        start += n
    return pieces


@pytest.fixture(scope="module")
def latents():
    return torch.randn(1, 4, 7, 2, 3, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def reference(codec, latents):
    return whole_decode(codec, latents)


def test_vae_codec_attributes(codec, vae_root):
    assert (codec.latent_channels, codec.spatial_factor, codec.fps) == (4, 8, 16)
    assert WanVAECodec(vae_root / "vae").path == codec.path        # the vae dir itself works too


@pytest.mark.parametrize("chunks", [[3, 3, 1], [1, 2, 3, 1]])
def test_stream_decode_is_seamless(codec, latents, reference, chunks):
    pieces = stream_decode(codec, latents, chunks)
    counts = [p.shape[0] for p in pieces]
    assert counts == [1 + 4 * (chunks[0] - 1)] + [4 * n for n in chunks[1:]]
    video = torch.cat(pieces)
    assert video.shape == (1 + 4 * 6, 16, 24, 3) == reference.shape
    assert (video - reference).abs().max() <= 1e-5


def test_push_returns_uint8_frames(codec, latents, reference):
    frames = codec.decoder().push(latents[:, :, :3])
    assert frames.dtype == torch.uint8 and frames.shape == (9, 16, 24, 3)
    assert (frames.int() - to_uint8(reference[:9]).int()).abs().max() <= 1
    assert torch.equal(codec.decode(latents), to_uint8(codec.decoder().push_float(latents)))
    assert codec.decoder().push(latents[:, :, :0]).shape == (0, 16, 24, 3)   # nothing yet


def test_streams_do_not_interfere(codec, latents, reference):
    other = torch.randn(1, 4, 4, 2, 3, generator=torch.Generator().manual_seed(2))
    a, b = codec.decoder(), codec.decoder()
    a1, b1 = a.push_float(latents[:, :, :3]), b.push_float(other[:, :, :2])
    a2, b2 = a.push_float(latents[:, :, 3:]), b.push_float(other[:, :, 2:])
    assert (torch.cat([a1, a2]) - reference).abs().max() <= 1e-5
    assert (torch.cat([b1, b2]) - whole_decode(codec, other)).abs().max() <= 1e-5


def test_encode_normalizes(codec):
    frames = torch.rand(1, 5, 3, 16, 24, generator=torch.Generator().manual_seed(3)) * 2 - 1
    latents = codec.encode(frames)
    assert latents.shape == (1, 4, 2, 2, 3)
    with torch.no_grad():
        z = codec.vae.encode(frames.permute(0, 2, 1, 3, 4)).latent_dist.mean
    expected = (z - torch.tensor(MEAN).view(1, -1, 1, 1, 1)) / torch.tensor(STD).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(latents, expected)


def test_vae_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        WanVAECodec(tmp_path / "nowhere")
