"""Any folder of videos as training clips of a model's shape.

`generator train --data DIR` used to take only clips already at the preset's exact shape (the
world's renders); a folder of one's own footage (720p at 25 fps, a phone's portrait clips) was
refused. Each video is now cut into non-overlapping windows of the model's frame count, its
frames taken at the model's frame rate (every k-th frame, k = round(source fps / model fps), so
motion runs at the speed the model will play it), centre-cropped to a square and resized to the
model's size (area averaging when shrinking). A clip already at the model's shape and rate passes
through unchanged. Frames are read one at a time, so a long HD video needs the memory of its
windows at the model's size, not of its decoded frames.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from evalkit.video import VideoLimits, iter_frames, probe_video


def frame_stride(source_fps: float, model_fps: float) -> int:
    """Every k-th source frame gives the model's frame rate (1 where the source's is unknown)."""
    return max(1, round(source_fps / model_fps)) if source_fps > 0 and model_fps > 0 else 1


def square(frame: np.ndarray, size: int) -> np.ndarray:
    """uint8 [H, W, 3] -> [size, size, 3]: the centred square crop, resized."""
    h, w = frame.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    crop = np.ascontiguousarray(frame[y:y + s, x:x + s])
    if s == size:
        return crop
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)


def training_windows(path, frames: int, size: int, fps: float) -> list[np.ndarray]:
    """The video's windows, uint8 [frames, size, size, 3] each (none if it is too short)."""
    # streamed: the decoded-size budget guards whole-video reads, not this one
    limits = replace(VideoLimits.from_env(), max_decoded_bytes=1 << 62)
    stride = frame_stride(probe_video(Path(path), limits=limits).fps, fps)
    out, window = [], []
    for i, f in enumerate(iter_frames(path, limits=limits)):
        if i % stride:
            continue
        window.append(square(f, size))
        if len(window) == frames:
            out.append(np.stack(window))
            window = []
    return out
