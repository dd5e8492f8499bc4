"""Marking a video too long to hold in memory: the same mark `watermark.embed` makes, in two
passes over a stream of frames.

`embed` needs two things of the whole clip before it marks a frame: its temporal mean (the
profile and plan are chosen on it, so that every excerpt reads alike) and its length (which
sets the segments). The first pass (`scan_frames`) sums the frames, counts them and hashes them
(the default payload is bound to the content); the second (`embed_stream`) holds one segment at
a time (under two `segment_frames`), marks it on its own mean and hands the frames on. Output
equals `embed`'s frame for frame (tested). A 30-second 1080p clip is 4.5 GB of frames: held
whole, twice (input and output), it did not fit the decode limit that `sign --watermark`
applied until session 20.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance import wm_time
from evalkit.provenance.watermark import segment_pattern, add_pattern, marking_plan
from evalkit.provenance.wm_scheme import WatermarkConfig, WatermarkInputError, check_frames, get_config


@dataclass(frozen=True)
class FrameStats:
    mean: np.ndarray  # float32 [H, W, 3]: the temporal mean, exactly as wm_grid.mean_frame gives it
    frames: int
    sha256: bytes  # of the frames' bytes in order: hashlib.sha256(frames.tobytes()) of the whole clip


def scan_frames(frames: Iterable[np.ndarray]) -> FrameStats:
    """One pass over uint8 RGB frames [H, W, 3]: their mean, count and content hash."""
    total, n, digest = None, 0, hashlib.sha256()
    for f in frames:
        if total is None:
            check_frames(f[None])
            total = np.zeros(f.shape, np.uint32)  # exact: under 2^24 frames of at most 255
        elif f.shape != total.shape:
            raise WatermarkInputError(f"frame {n} is {f.shape}, the first was {total.shape}")
        total += f
        digest.update(np.ascontiguousarray(f).data)
        n += 1
    if total is None:
        raise WatermarkInputError("no frames to mark")
    mean = (total.astype(np.float32) / np.float32(n)).astype(np.float32)
    return FrameStats(mean=mean, frames=n, sha256=digest.digest())


def embed_stream(frames: Iterable[np.ndarray], stats: FrameStats, payload: bytes, key,
                 config: WatermarkConfig | str | None = None) -> Iterator[np.ndarray]:
    """The marked frames of `frames` (the same frames `stats` was scanned from), one by one. A bad
    payload, key or config raises here, before any frame is read."""
    cfg = get_config(config)
    plan, code = marking_plan(stats.mean, payload, key, cfg)
    return _marked(iter(frames), stats, plan, code, cfg)


def _marked(it, stats: FrameStats, plan, code, cfg) -> Iterator[np.ndarray]:
    disp = None
    for a, b in wm_time.segments(stats.frames, cfg.segment_frames):
        seg = np.stack([_next(it, a + j, stats.frames) for j in range(b - a)])  # [n, H, W, 3]
        if seg.shape[1:] != stats.mean.shape:
            raise WatermarkInputError(f"frames are {seg.shape[1:]}, but were {stats.mean.shape} when scanned")
        delta, disp = segment_pattern(geo.mean_frame(seg), plan, code, cfg, disp)
        add_pattern(seg, delta, seg)
        yield from seg
    if next(it, None) is not None:
        raise WatermarkInputError(f"more than the {stats.frames} frames scanned; the video changed between passes")


def _next(it, i: int, n: int) -> np.ndarray:
    f = next(it, None)
    if f is None:
        raise WatermarkInputError(f"frame {i} is missing: {n} were scanned; the video changed between passes")
    return f
