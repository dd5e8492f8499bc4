"""Controlled corruptions and clip sources of the validity study (`metrics.py`).

The corruptions map uint8 [T, H, W, 3] frames to frames of the same shape, deterministically in
(frames, level, seed), so that every severity sweep can be rerun exactly; `teleport` re-renders a
world clip with a physical violation. The clip sources are the world test clips and 16-frame
segments of the real footage. They live apart from the study so that the sweeps, the statistics
and the reporting can be read without the pixel-level details.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
REAL_DIR = ROOT.parent / "shared" / "data" / "real-videos"


# --------------------------------------------------------------------------------------------
# corruptions: uint8 [T, H, W, 3] -> uint8 [T, H, W, 3], deterministic in (frames, level, seed)


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def add_flicker(frames: np.ndarray, amp: float, seed: int = 0) -> np.ndarray:
    """Brightness flicker: +amp grey levels on even frames, -amp on odd ones (clipped)."""
    if amp == 0:
        return frames.copy()
    sign = np.where(np.arange(len(frames)) % 2 == 0, 1.0, -1.0)[:, None, None, None]
    return _u8(frames.astype(np.float32) + np.float32(amp) * sign.astype(np.float32))


def add_noise(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """i.i.d. Gaussian noise of `sigma` grey levels (seeded)."""
    if sigma == 0:
        return frames.copy()
    rng = np.random.default_rng(seed)
    return _u8(frames.astype(np.float32) + rng.standard_normal(frames.shape, dtype=np.float32) * np.float32(sigma))


def blur(frames: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """Spatial Gaussian blur of each frame (cv2, kernel from sigma, reflected borders)."""
    if sigma == 0:
        return frames.copy()
    return np.stack([cv2.GaussianBlur(f, (0, 0), sigmaX=float(sigma)) for f in frames])


def shuffle_frames(frames: np.ndarray, frac: float, seed: int = 0) -> np.ndarray:
    """Move round(frac * T) frames: a seeded choice of positions (nested as frac grows, in a seeded
    random order) whose frames move one step along that order (one random cycle), so that every
    chosen frame leaves its place and lands next to frames it did not neighbour."""
    t = len(frames)
    k = int(round(frac * t))
    out = frames.copy()
    if k < 2:
        return out
    pos = np.random.default_rng(seed).permutation(t)[:k]
    out[pos] = frames[np.roll(pos, 1)]
    return out


CORRUPT = {"flicker": add_flicker, "noise": add_noise, "shuffle": shuffle_frames, "blur": blur}


def teleport(clip, magnitude: float, seed: int = 0):
    """World clip re-rendered with one object jumping `magnitude` (fraction of the frame) from
    mid-clip on, in the first of the 4 directions that keeps it inside and clear of the others
    (the `control_clip(..., "teleport")` construction with a variable jump)."""
    from evalkit.clip import Clip
    from evalkit.metrics.physics_controls import teleport_positions
    from evalkit.world.physics import trajectories
    from evalkit.world.render import render

    if magnitude == 0:
        return clip.with_frames(clip.frames.copy())
    rng = np.random.default_rng(seed)
    record, scene = clip.meta["record"], clip.meta["scene"]
    size, t = record["size"][0], clip.num_frames
    pos = trajectories(scene, t, clip.fps).pos.copy()
    objs = list(scene.objects)
    i = int(rng.integers(len(objs)))
    teleport_positions(objs, pos, i, t // 2, magnitude, rng)
    frames = render(scene, pos, size, np.random.default_rng([record["seed"], 1]), float(record.get("noise", 0.0)))
    return Clip(frames=frames, fps=clip.fps, prompt=clip.prompt, meta=dict(clip.meta))


# --------------------------------------------------------------------------------------------
# data


def world_clips(n: int, start: int = 0, size: int = 64, seed: int = 0) -> list:
    from evalkit.world import WorldConfig, make_clip

    cfg = WorldConfig(size=size)
    return [make_clip("test", i, seed=seed, config=cfg) for i in range(start, start + n)]


def real_segments(max_segments: int = 16, per_video: int = 4, size: int | None = 64, folder=REAL_DIR) -> list:
    """16-frame segments of the real footage (uint8 [16, H, W, 3]); [] if the folder is missing."""
    from evalkit.video import read_video

    folder = Path(folder)
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.glob("*.mp4")):
        clip = read_video(p, max_frames=16 * per_video)
        f = clip.frames
        for s in range(0, len(f) - 15, 16):
            seg = f[s:s + 16]
            if size is not None:
                seg = np.stack([cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA) for x in seg])
            out.append(np.ascontiguousarray(seg))
    return out[:max_segments]
