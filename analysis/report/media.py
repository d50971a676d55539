"""Browser previews of run videos: H.264 (yuv420p, faststart, a keyframe every 2 s) at a preview
height, with a poster (the last frame: where a policy ended up). Small frames are upscaled by an
integer factor with nearest neighbour, so the toy's 32x32 pixels stay sharp. Encodes are cached in
the report's media/ by source file identity, so a rebuild only encodes new videos."""
from __future__ import annotations

import hashlib
import json
import os
from fractions import Fraction
from pathlib import Path

import av

from ..collect import CorruptFile
from .outdir import OwnedDir

ENCODER = "h264-crf20-v2"              # part of the media cache key: change it to re-encode


def _even(x: int) -> int:
    return max(2, x - x % 2)


def encode_preview(src: Path, media_dir: Path | OwnedDir, height: int = 256) -> dict:
    """Re-encode `src` for browsers once; returns {'video', 'poster', 'width', 'height',
    'seconds', 'cached'} with paths relative to the report folder. A plain media_dir is used as
    is; an OwnedDir (the report's folder) records every file in its manifest. CorruptFile when
    `src` is not a decodable video (FileNotFoundError when it is gone)."""
    out = media_dir if isinstance(media_dir, OwnedDir) else OwnedDir.untracked(Path(media_dir).parent)
    sub = "media" if isinstance(media_dir, OwnedDir) else Path(media_dir).name
    st = src.stat()
    key = hashlib.sha1(f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{height}|{ENCODER}"
                       .encode()).hexdigest()[:16]
    video, poster, meta = (f"{sub}/{key}{ext}" for ext in (".mp4", ".jpg", ".json"))
    if all(out.owns(p) and (out.root / p).is_file() for p in (video, poster, meta)):
        try:
            info = json.loads((out.root / meta).read_text())
            out.keep(video, poster, meta)
            return {**info, "cached": True}
        except (OSError, ValueError):
            pass                                          # a damaged cache entry: encode again
    tmp_video, tmp_poster = f"{sub}/{key}.tmp.mp4", f"{sub}/{key}.tmp.jpg"
    out.scratch_files(tmp_video, tmp_poster)
    try:
        info = _encode(src, out.root / tmp_video, out.root / tmp_poster, height)
    except (av.FFmpegError, ValueError) as e:
        (out.root / tmp_video).unlink(missing_ok=True)
        raise CorruptFile(src, f"not a decodable video ({type(e).__name__})") from None
    out.keep(video, poster, meta)
    os.replace(out.root / tmp_poster, out.root / poster)
    os.replace(out.root / tmp_video, out.root / video)
    info = {"video": video, "poster": poster, **info}
    (out.root / meta).write_text(json.dumps(info))
    return {**info, "cached": False}


def _encode(src: Path, video: Path, poster: Path, height: int) -> dict:
    with av.open(str(src)) as inp:
        if not inp.streams.video:
            raise ValueError("no video stream")
        s_in = inp.streams.video[0]
        fps = Fraction(s_in.average_rate or 16)
        h, w = s_in.codec_context.height, s_in.codec_context.width
        if not h or not w:
            raise ValueError("no frame size")
        if h <= height:                    # integer nearest-neighbour upscale: pixels stay sharp
            up = height // h
            out_w, out_h, how = _even(w * up), _even(h * up), "POINT"
        else:                              # larger than the preview: shrink smoothly
            out_w, out_h, how = _even(round(w * height / h)), _even(height), "AREA"
        last, n = None, 0
        with av.open(str(video), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            s = out.add_stream("libx264", rate=fps)
            s.width, s.height, s.pix_fmt = out_w, out_h, "yuv420p"
            s.codec_context.gop_size = max(1, int(round(2 * float(fps))))   # seek grain: 2 s
            s.options = {"crf": "20", "preset": "veryfast"}
            for frame in inp.decode(s_in):
                # dst_color_range=1 (limited, what the encoder signals): lossless RGB sources
                # (toy backbones) decode as full-range gbrp, which would otherwise carry over
                last = frame.reformat(out_w, out_h, "yuv420p", interpolation=how, dst_color_range=1)
                last.pts, last.time_base = n, Fraction(1) / fps    # renumbered at `fps`
                for packet in s.encode(last):
                    out.mux(packet)
                n += 1
            for packet in s.encode():
                out.mux(packet)
    if last is None:
        raise ValueError("no frames to decode")
    last.to_image().save(poster, format="JPEG", quality=90)
    return {"width": out_w, "height": out_h, "seconds": n / float(fps)}
