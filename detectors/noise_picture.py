"""A picture that the luma's correlations call noise (session 36): its structure is in its colour,
or in time.

`picture_note`'s older lines call frames noise where their luma correlates under 0.3 with the
next pixel or under 0.2 at 1/32 of the frame, and `upscaled_noise` where nothing persists from one
frame to the next at the same place. Noise has structure in none of luma, colour or time; a
picture has it in at least one, and the lines looked at the luma of one frame (and, upscaled, at
frames unmoved). Measured on 16-frame clips (runs/s36/detnoise), pictures they called noise:
- a yellow object on a light ground under sensor noise: yellow's luma (198) is the ground's, so
  the luma is the sensor's grain alone, while its chroma (Cb) correlates 0.51 or more with the
  next pixel (96 of 162 such world renders were called noise). In noise every channel is blown up
  by one kernel, and its chroma correlates no better than its luma (control:noise 0.01 or less);
- one colour under faint grain (a generator's unformed sample: uvit:small-stage1's light ground
  under grain of 4 levels, 3 of 144 raw generator clips): the frames are a picture, flat but for
  the grain, and the grain is what the detector judges; the noise the guard exists for fills the
  8-bit range (luma std 14.7 or more, control:noise 49; under GRAIN_MAX, 8, it is grain);
- a camera over a texture of a few pixels a stone, blade or star (grass, gravel, brick shrunk,
  the Hubble deep field; 64 of 812 photo clips): in one frame it correlates like noise, but the
  next frame is the same picture moved. Its best match among shifts of up to 8 px correlates 0.77
  or more, fresh noise 0.34 or less (148 clips of control:noise, noise changing every frame and
  noise blown up 13x). What persists can still be one noise picture held or panned: where its
  colours are drawn per channel (its chroma holds 0.7 of the luma's energy or more,
  `noise_colour.CHROMA_MIN`; uniform noise 1.8, photographs far less) it stays noise. Grey frames
  (no chroma detail) that persist stay noise too: a grey noise picture held or panned is, in luma,
  a gravel bed's twin, and the families call it "real" with confidence, so the grey textures
  (scikit-image's grass, gravel and brick are grey photographs) keep abstaining with it.
"""

from __future__ import annotations

import cv2
import numpy as np

from detectors.noise_colour import CB, CHROMA_MIN, CR, LUMA

PERSIST_MIN = 0.5  # best shifted frame-to-frame correlation: fresh noise 0.34 or less, textures 0.77+
SHIFT_MAX = 8  # px a frame searched: pans of up to 8 px (session 35's panned noise went as fast)
SIDE = 128  # px: the centre crop judged (a larger one costs time, not accuracy)
FLAT_STD = 2.0  # a chroma channel under this spatial std holds nothing (grey frames: 0)
# luma std (levels) under which frames are one colour under grain, not a noise picture: the noise
# the guard abstains on fills the range (control:noise 49, the least of session 35's noise kinds
# 14.7), a generator's unformed sample on a light ground varies 3.7-4.6 (uvit:small-stage1)
GRAIN_MAX = 8.0


def _corr(p: np.ndarray, q: np.ndarray, axes=None) -> np.ndarray:
    return (p * q).sum(axes) / np.maximum(np.sqrt((p * p).sum(axes) * (q * q).sum(axes)), 1e-9)


def persistence(y: np.ndarray) -> float:
    """Median over consecutive frames of luma [T, H, W] of the best correlation of a frame with the
    next one shifted by up to SHIFT_MAX px (a quarter of the frame where that is less): 1 for a
    picture moved whole, about 0 for noise drawn anew each frame."""
    t, h, w = y.shape
    r = min(SHIFT_MAX, h // 4, w // 4)
    if t < 2 or r < 1:
        return 0.0
    h0, w0 = max(0, (h - SIDE) // 2), max(0, (w - SIDE) // 2)
    a = np.ascontiguousarray(y[:, h0:h0 + SIDE, w0:w0 + SIDE], dtype=np.float32)
    # each frame's middle (r px in from every side) sought in the next frame: every shift of up to r
    best = [float(cv2.matchTemplate(a[i + 1], a[i, r:-r, r:-r], cv2.TM_CCOEFF_NORMED).max()) for i in range(t - 1)]
    return float(np.median(best))


def persists(y: np.ndarray) -> bool:
    return persistence(y) >= PERSIST_MIN


def _lag(c: np.ndarray, lag: int) -> float:
    a = c - c.mean(axis=(1, 2), keepdims=True)
    return float(_corr(a[:, :, lag:], a[:, :, :-lag])) if c.shape[2] > lag else 1.0


def detailed_chroma(frames: np.ndarray) -> list[np.ndarray]:
    """The chroma channels (Cb, Cr; [T, H, W] float32) of `frames` that hold something."""
    f = frames.astype(np.float32)
    return [c for c in (f @ CB, f @ CR) if float(np.median(c.reshape(len(c), -1).std(axis=1))) >= FLAT_STD]


def grain_on_one_colour(y: np.ndarray) -> bool:
    """Whether luma frames [T, H, W] vary by a few levels only: the grain of a picture of one colour
    (a sampler's or a sensor's), which the families read like any picture's, not noise to abstain on."""
    return float(np.median(y.reshape(len(y), -1).std(axis=1))) < GRAIN_MAX


def picture_in_colour(frames: np.ndarray, far: int | None, near_line: float, far_line: float) -> bool:
    """Whether a chroma channel of `frames` [T, H, W, 3] holds something and correlates as a
    picture's does where the luma did not: `near_line` or more at the next pixel and, where `far`
    is given, `far_line` or more at `far` px."""
    for c in detailed_chroma(frames):
        if _lag(c, 1) >= near_line and (far is None or _lag(c, far) >= far_line):
            return True
    return False


def picture_in_time(frames: np.ndarray, y: np.ndarray) -> bool:
    """Whether the frames persist from one to the next (moved or not) with a camera's colours, not
    colours drawn per channel (one noise picture held or panned stays noise)."""
    if not persists(y) or not detailed_chroma(frames):
        # Grey frames that persist are left noise: a grey noise picture held or panned is, in luma,
        # a gravel bed's twin, and the families read it as a camera's ("real", p_generated 0.000
        # at 64 px): abstaining on both is honest, a confident verdict on noise is not.
        return False
    return chroma_share(frames) < CHROMA_MIN


def chroma_share(frames: np.ndarray) -> float:
    """The chroma's spatial variance over the luma's (frames [T, H, W, 3]): independent channels
    1.8 (uniform noise), a camera's colours, which follow its luma, far less."""
    f = frames.astype(np.float32)
    var = [float((f @ m).var(axis=(1, 2)).mean()) for m in (LUMA, CB, CR)]
    return (var[1] + var[2]) / max(var[0], 1e-9)
