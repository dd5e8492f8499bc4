"""Pure noise blown up into a frame: the noise check's case beyond the next pixel (sessions 34-35).

Random noise upscaled by a factor s correlates with itself out to the interpolation kernel's reach
(s px for nearest, 2s for bilinear and bicubic) and not at all beyond it, nor from one frame to
the next; its detail is spread evenly over the frame. `picture_note`'s lag of 1/32 of the frame
is inside that reach in frames under about 288 px (noise 16x16 -> 48x48, 3x nearest: 0.35 at 2 px; 3x
bilinear into 192x108: 0.26 at 3 px), where such clips read "real" at p 0.00.

Measured (session 34, 16 frames a clip): noise upscaled 1.5-4.5x (nearest, area, bilinear,
bicubic, Lanczos; 32-360 px, square and 16:9; 1,200 clips) correlates 0.14 or less at 9-16 px in
either direction and frame to frame, and its 16x16 blocks' variances spread 0.40 or less (std /
mean). Crops of the real footage at 32-256 px (1,839) correlate 0.21 or more there; world
renders go as low as 0.08 (one small object moving fast over a plain ground correlates like
noise), but each of the 10 clips under 0.3 spreads its detail 2.1 or more. With both lines, none
of 3,732 clips of footage (crops, thumbnails, both blown up 2-4x, session 32's edits), 140 world
renders or 1,646 generator clips and edits is called noise, and all 1,200 noise clips are.

Session 35: noise blown up further (32 px noise 13x into a 416 px window) reaches past 9 px and
past 1/32 of the frame; the frames are halved (2x2 means: noise upscaled s becomes noise upscaled
s/2) until 9 px apart correlate under 0.2, and judged there too (only then: a generator's clip
under white noise blown up 3x, halved once more, read as noise). And one noise picture that
persists (held, drifting, panning, or changing a little each frame) correlates from frame to
frame like footage: it is judged by its colours instead (`noise_colour`).
"""

from __future__ import annotations

import functools

import numpy as np

from detectors.noise_colour import colour_noise
from detectors.noise_picture import detailed_chroma, picture_in_time

FAR_LAGS = range(9, 17)  # px: beyond a 4x kernel's reach (bilinear 4x correlates 0.05 at 6 px, 0.02 at 8)
MIN_SIDE = 32  # px: lags of up to 16 need at least 16 px of overlap
STRUCTURE_MAX = 0.2  # |correlation| at FAR_LAGS and frame to frame: noise 0.14 or less, footage 0.21+
SPREAD_MAX = 1.0  # std / mean of 16x16 blocks' variances: noise 0.40 or less, footage and world 2.1+
BLOCK = 16
# a frame's busiest 8x8 block against its typical one (median over frames): upscaled noise 5.3 or
# less (1.5-4.5x, 32-360 px); one small ball on a plain ground under white noise, a noisy
# generator's 32 px world clip whose detail the 16 px blocks' spread misses (0.64), 10
PEAK_MAX = 7.0
# the same in a chroma channel that holds something: noise 7.6 or less (blown up 13x, halved once:
# fewer samples a block than the luma line was fitted on), a yellow object on a light ground 11.4+
CHROMA_PEAK_MAX = 10.0
SMOOTH_MIN = 0.2  # next-pixel correlation of the frame-to-frame change: upscaled 1.5x+ noise 0.33+, white noise ~0


def _corr(p: np.ndarray, q: np.ndarray) -> float:
    return float((p * q).sum() / max(float(np.sqrt((p * p).sum() * (q * q).sum())), 1e-9))


def _peak(y: np.ndarray, b: int = 8) -> float:
    t, h, w = y.shape
    var = y[:, :h // b * b, :w // b * b].reshape(t, h // b, b, w // b, b).var(axis=(2, 4)).reshape(t, -1)
    return float(np.median(var.max(axis=1) / np.maximum(np.median(var, axis=1), 1e-9)))


def _halved(a: np.ndarray) -> np.ndarray:
    """[T, H, W, ...] -> [T, H/2, W/2, ...] float32, each pixel the mean of 2x2."""
    a = a[:, :a.shape[1] // 2 * 2, :a.shape[2] // 2 * 2].astype(np.float32, copy=False)
    return (a[:, 0::2, 0::2] + a[:, 1::2, 0::2] + a[:, 0::2, 1::2] + a[:, 1::2, 1::2]) * 0.25


def _near_far(y: np.ndarray) -> bool:
    """Whether picture_note's lag of 1/32 of the frame is inside a 4.5x upscale's reach (frames
    under about 280 px): from there on that lag judges alone."""
    return max(2, round(min(y.shape[1:]) / 32)) < FAR_LAGS.start


def _levels(y: np.ndarray):
    """(frames, times halved): the frames as given where 1/32 of them is inside a 4.5x reach, and
    halved until they correlate under STRUCTURE_MAX at FAR_LAGS' start, i.e. until noise in them is
    blown up about 7x or less (bilinear; nearest 9x): a picture ends as a thumbnail of 32-63 px."""
    if _near_far(y):
        yield y, 0
    k, d = 0, FAR_LAGS.start
    while min(y.shape[1:]) >= 2 * MIN_SIDE:
        a = y - y.mean(axis=(1, 2), keepdims=True)
        if max(_corr(a[:, :, d:], a[:, :, :-d]), _corr(a[:, d:], a[:, :-d])) < STRUCTURE_MAX:
            break
        y, k = _halved(y), k + 1
    if k and _near_far(y):
        yield y, k


def _note_at(y: np.ndarray, rgb) -> str | None:
    """The note for luma frames `y`; `rgb()` gives the same frames in colour (or None)."""
    t, h, w = y.shape
    if min(h, w) < MIN_SIDE:
        return None
    a = y - y.mean(axis=(1, 2), keepdims=True)
    structure = max([abs(_corr(a[:, :, d:], a[:, :, :-d])) for d in FAR_LAGS if w - d >= 16]
                    + [abs(_corr(a[:, d:], a[:, :-d])) for d in FAR_LAGS if h - d >= 16])
    if structure >= STRUCTURE_MAX:
        return None
    between = abs(_corr(a[1:], a[:-1])) if t > 1 else 1.0  # one frame: nothing to say of time
    colour = None
    if between < STRUCTURE_MAX and (c := rgb()) is not None and picture_in_time(c, y):
        # unlike noise drawn anew, the next frame is this one moved (a camera panning 5-6 px a frame
        # over grass or gravel shrunk to a few pixels a blade, 15 of 476 pans), in a camera's colours
        return None
    if between >= STRUCTURE_MAX:
        # One noise picture held or moving: only its colours tell it from a fine texture (gravel
        # shrunk to stones of a few pixels), and grey noise is left a picture.
        if (c := rgb()) is None or (colour := colour_noise(c)) is None:
            return None
    else:
        # What changes from frame to frame is itself smooth where noise was blown up (0.33 or more at
        # the next pixel); a picture with white noise added (a noisy generator's 32 px world clip,
        # whose small object on a plain ground correlates 0.02 at 9-16 px) changes by pixel-sized
        # grains that do not (about 0), and is a picture.
        r = y - y.mean(axis=0, keepdims=True) if t > 1 else a
        if (_corr(r[:, :, 1:], r[:, :, :-1]) + _corr(r[:, 1:], r[:, :-1])) / 2 < SMOOTH_MIN:
            return None
    blocks = y[:, :h // BLOCK * BLOCK, :w // BLOCK * BLOCK].reshape(t, h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    var = blocks.var(axis=(2, 4)).ravel()
    if float(var.std() / max(float(var.mean()), 1e-9)) >= SPREAD_MAX or _peak(y) >= PEAK_MAX:
        return None
    # The same in colour: where the luma is flat (a yellow object on a light ground, equal luma,
    # under sensor noise), the object is in the chroma, in one place; noise's chroma is blown up
    # by its luma's kernel and spread as evenly (session 36: 16 of 162 such world renders).
    if (c := rgb()) is not None and any(_peak(ch) >= CHROMA_PEAK_MAX for ch in detailed_chroma(c)):
        return None
    if colour is not None:
        return (f"the frames are noise, one noise picture held or moving (pixels correlate "
                f"{structure:.2f} or less at {FAR_LAGS.start}-{FAR_LAGS.stop - 1} px, evenly over the "
                f"frame, and its colour channels vary independently: chroma {colour['chroma']:.1f} times "
                f"the luma's; footage tried: 0.5 or less)")
    return (f"the frames are noise, upscaled (pixels correlate {structure:.2f} or less at "
            f"{FAR_LAGS.start}-{FAR_LAGS.stop - 1} px and {between:.2f} frame to frame, evenly over the frame; "
            f"footage tried: {STRUCTURE_MAX} or more, or its detail in places)")


def upscaled_noise_note(y: np.ndarray, rgb: np.ndarray | None = None) -> str | None:
    """Why the luma frames [T, H, W] (bars cut off; `rgb` the same frames in colour, [T, H, W, 3])
    are upscaled noise, or None. Frames under MIN_SIDE px are left to the next-pixel check."""
    def rgb_at(k: int):  # colour only where it is asked for (one noise picture), halved as the luma was
        return lambda: None if rgb is None else functools.reduce(lambda a, _: _halved(a), range(k), rgb)
    return next((note for y_k, k in _levels(y) if (note := _note_at(y_k, rgb_at(k)))), None)
