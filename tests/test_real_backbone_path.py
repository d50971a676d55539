"""`backbone=self_forcing` end to end through run.py on tiny files in the real formats: the
Self-Forcing .pt (generator_ema), UMT5 text encoder and AutoencoderKLWan read from a local
Wan2.1-T2V-1.3B-Diffusers-like directory, streamed VAE decode into the mp4."""
import json

from conftest import perturbed_tiny, run_cli
from tethercache.video import read_mp4
from tiny_checkpoints import write_self_forcing_checkpoint, write_text_encoder, write_vae


def test_self_forcing_backbone_runs_on_tiny_real_format_files(tmp_path):
    wan_dir = tmp_path / "Wan2.1-T2V-1.3B-Diffusers"
    write_text_encoder(wan_dir, d_model=32)
    write_vae(wan_dir)
    model = perturbed_tiny(in_channels=4, out_channels=4)
    write_self_forcing_checkpoint(model, tmp_path / "self_forcing_dmd.pt")
    out = tmp_path / "run"
    r = run_cli(["backbone=self_forcing", "eval=none", f"backbone.weights={tmp_path / 'self_forcing_dmd.pt'}",
                 f"backbone.wan_dir={wan_dir}", "backbone.model.size=tiny",
                 "+backbone.model.in_channels=4", "+backbone.model.out_channels=4",
                 "backbone.latent=[4,4,4]", "backbone.dtype=float32", "horizon.frames=6",
                 "cache=sink", "cache.budget=6", "prompts.texts=[a red cat runs]", "progress=false",
                 f"hydra.run.dir={out}"])
    assert r.returncode == 0, r.stderr[-3000:]
    frames, fps = read_mp4(out / "videos" / "p000s0.mp4")
    assert fps == 16 and len(frames) == 1 + 4 * 5 and frames.shape[1:] == (32, 32, 3)
    rec = json.loads((out / "record.json").read_text())
    assert rec["backbone"] == "self_forcing" and rec["samples"][0]["video_frames"] == 21
