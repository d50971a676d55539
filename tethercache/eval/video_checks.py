"""Videos an evaluator must not score: constant (e.g. NaN latents decoded to one colour), non-finite
or empty. They get an "invalid" entry with the reason, never normal metrics (contracts)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def invalid_reason(frames) -> str | None:
    """None for a scoreable video [N, H, W, C], else a one-line reason."""
    frames = frames.cpu().numpy() if hasattr(frames, "cpu") else np.asarray(frames)
    if frames.size == 0:
        return "no frames"
    if frames.dtype.kind == "f" and not np.isfinite(frames).all():
        return "non-finite pixel values"
    flat = frames.reshape(-1, frames.shape[-1])
    lo, hi = flat.min(0), flat.max(0)
    if (lo == hi).all():
        return f"constant video: every pixel of every frame is {tuple(lo.tolist())}"
    return None


def scan_mp4(path) -> tuple[int, float, str | None]:
    """(frames, fps, invalid reason or None) of an mp4, decoded one frame at a time (a 240 s
    480x832 video never sits in memory)."""
    import av
    lo = hi = None
    n = 0
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        fps = float(stream.average_rate)
        for frame in c.decode(stream):
            f = frame.to_ndarray(format="rgb24").reshape(-1, 3)
            flo, fhi = f.min(0), f.max(0)
            lo = flo if lo is None else np.minimum(lo, flo)
            hi = fhi if hi is None else np.maximum(hi, fhi)
            n += 1
    if n == 0:
        return 0, fps, "no frames"
    reason = f"constant video: every pixel of every frame is {tuple(lo.tolist())}" if (lo == hi).all() else None
    return n, fps, reason


def unreadable_reason(path) -> str | None:
    """None for an mp4 whose container opens and whose first video frame decodes, else what is
    wrong with the file (empty, not a video, no video stream): checked before any scoring."""
    import av
    path = Path(path)
    if path.stat().st_size == 0:
        return "empty file (0 bytes)"
    try:
        with av.open(str(path)) as c:
            if not c.streams.video:
                return "no video stream"
            if next(c.decode(c.streams.video[0]), None) is None:
                return "no decodable video frame"
    except (av.FFmpegError, ValueError, UnicodeDecodeError) as e:
        what = getattr(e, "strerror", None) or (str(e).splitlines() or [""])[0]   # av's own text names the file
        return f"not a readable video ({type(e).__name__}: {what})"
    return None
