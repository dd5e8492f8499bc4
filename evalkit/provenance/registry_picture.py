"""How far a suspect's picture is from one the soft-binding registry holds: the comparison of
16x16 thumbnails that `registry.compare` and `registry.resolve` make.

A difference of 0 is the same picture; `MATCH` and below is a match, `DIFFERENT` and above
another picture. Brightness and contrast changes do not count, nor do the eight turns and
mirrorings (the detector reads them too), nor, with the value thumbnail (max(R, G, B)), a change
of hue or saturation.

Two measures, the larger counts (session 35). The whole picture: the RMS of what the best
contrast and brightness change leaves, over the larger picture's structure. And its finer
structure: what is left of each picture once its smoothest part (a plane and a bowl: a gradient,
a vignette, a tone curve's bend) is taken away, and how much of the registered picture's share
of it the suspect holds. A mark copied onto a gradient like the source's background matched
the whole (0.47, "match": the gradient is most of both pictures) while the ball on it, the
registered picture's finer structure, was missing from the copy. Structure the suspect adds (a
caption, a logo) does not count there: an edit adds it, a forgery onto smooth content lacks it.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from evalkit.provenance import registry_segments as seg

THUMB = seg.THUMB
MATCH, DIFFERENT = 0.53, 0.8  # `difference` of thumbnails: at most MATCH the same picture
FLOOR = 3.0  # levels: structure below this is noise, so two flat pictures agree
BLUR = 0.8  # thumbnail pixels
# (mean + 8) of the suspect over the registered one's: brightness, contrast and gamma edits of
# +-40% stay inside (gamma 0.7 on a dark clip: 1.8x)
BRIGHTNESS = (0.5, 2.0)
GAIN = (0.5, 2.0)  # the contrast changes allowed


def _smooth_basis() -> np.ndarray:
    """[THUMB * THUMB, THUMB * THUMB]: the projection onto the quadratic surfaces over the
    thumbnail (1, x, y, x^2, xy, y^2): what a gradient, a vignette or a tone curve's bend is made of."""
    y, x = (a.ravel() for a in np.mgrid[-1:1:THUMB * 1j, -1:1:THUMB * 1j])
    basis = np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=1)
    return (basis @ np.linalg.pinv(basis)).astype(np.float32)


_SMOOTH = _smooth_basis()


def finer(t: np.ndarray) -> np.ndarray:
    """The thumbnail `t` [THUMB, THUMB] less its best-fitting quadratic surface."""
    flat = np.ascontiguousarray(t, np.float32).ravel()
    return (flat - _SMOOTH @ flat).reshape(t.shape)


def views(t: np.ndarray) -> list[np.ndarray]:
    """The eight ways to lay a square thumbnail on its axes (the detector's views and turns)."""
    out = []
    for k in range(4):
        r = np.rot90(t, k)
        out += [np.ascontiguousarray(r), np.ascontiguousarray(r[:, ::-1])]
    return out


def crop(t: np.ndarray, box) -> np.ndarray:
    """The part `box` = (y0, y1, x0, x1) of the unit square of thumbnail t, resampled to THUMB."""
    y0, y1, x0, x1 = (min(max(float(v), 0.0), 1.0) for v in box)
    if y1 - y0 < 0.2 or x1 - x0 < 0.2 or (y0, y1, x0, x1) == (0.0, 1.0, 0.0, 1.0):
        return t
    big = cv2.resize(t, (THUMB * 8, THUMB * 8), interpolation=cv2.INTER_LINEAR)
    part = big[int(round(y0 * THUMB * 8)):int(round(y1 * THUMB * 8)), int(round(x0 * THUMB * 8)):int(round(x1 * THUMB * 8))]
    return cv2.resize(part, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def whole(ref: np.ndarray, sus: np.ndarray) -> tuple[float, float]:
    """(difference, contrast gain) of the whole pictures: the RMS of what the best contrast
    (`GAIN`) and brightness change leaves, over the larger picture's structure (at least `FLOOR`
    levels, so that two flat pictures agree). For two structured pictures with correlation r it
    is sqrt(1 - r^2): 0.53 at r 0.85, 0.8 at r 0.6."""
    a_ref, a_sus = ref - ref.mean(), sus - sus.mean()
    var = float((a_ref * a_ref).mean())
    gain = float(np.clip((a_ref * a_sus).mean() / var, *GAIN)) if var > 1e-9 else 1.0
    resid = float(np.sqrt(((a_sus - gain * a_ref) ** 2).mean()))
    return resid / max(float(a_ref.std()) * gain, float(a_sus.std()), FLOOR), gain


def _missing(ref_fine: np.ndarray, sus_fine: np.ndarray, gain: float) -> float:
    """The share of the registered picture's finer structure (over `FLOOR` levels) that the
    suspect lacks: 1 less the suspect's projection on it, taken relative to the whole picture's
    contrast `gain`. 0 where the registered picture has none to lack (under `FLOOR` levels)."""
    var = float((ref_fine * ref_fine).mean())
    if math.sqrt(var) < FLOOR:
        return 0.0
    held = float((ref_fine * sus_fine).mean()) / var / gain
    return 1.0 - min(max(held, 0.0), 1.0)


def difference(ref: tuple[np.ndarray, np.ndarray], sus: tuple[np.ndarray, np.ndarray]) -> tuple[float, bool]:
    """How far a suspect's picture is from a registered one, each (`blurred` thumbnail, its
    `fine` structure), with the suspect laid the best of the eight ways: the larger of the whole
    pictures' difference and the share of the registered picture's finer structure the suspect
    lacks. Returns (difference, whether the finer structure's lack decided it)."""
    best, by_fine = math.inf, False
    for v, v_fine in zip(views(sus[0]), views(sus[1])):  # (the quadratic surfaces turn with them)
        d, gain = whole(ref[0], v)
        if d < best:
            lack = _missing(ref[1], v_fine, gain)
            best, by_fine = min((best, by_fine), (max(d, lack), lack > d))
    return best, by_fine


def content(d: float) -> str:
    return "match" if d <= MATCH else "different" if d >= DIFFERENT else "uncertain"


def blurred(t: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(t, (0, 0), BLUR)


def fine(t: np.ndarray) -> np.ndarray:
    """The blurred finer structure of thumbnail `t`: its smooth part taken away before the blur,
    which would bend a gradient at the thumbnail's edges into structure of its own."""
    return blurred(finer(t))


def prepared(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(blurred, fine) of a thumbnail: what `difference` compares."""
    return blurred(t), fine(t)


def suspect(mean: np.ndarray) -> tuple[tuple, tuple]:
    """The `prepared` luma and value thumbnails of a suspect's mean frame [H, W, 3]."""
    return prepared(seg.luma_thumbnail(mean)), prepared(seg.value_thumbnail(mean))


def _bright(a: np.ndarray, b: np.ndarray) -> bool:
    return BRIGHTNESS[0] <= (float(a.mean()) + 8.0) / (float(b.mean()) + 8.0) <= BRIGHTNESS[1]


def picture_difference(luma: np.ndarray, value: np.ndarray | None, mean: np.ndarray | None, box,
                       sus: tuple | None = None) -> tuple[float | None, float | str | None, bool]:
    """(difference, the luma difference where the value thumbnails decided, else None, whether the
    registered picture's finer structure missing from the suspect decided) of the suspect's mean
    frame from one registered picture (thumbnails `luma` and `value`, None for a record
    without); (None, why, False) where its brightness is beyond any grading. `sus`: the
    suspect's `suspect()` thumbnails, made once by a caller that compares many pictures."""
    sy, sv = sus if sus is not None else suspect(mean)
    ref = prepared(crop(luma, box) if box is not None else luma)
    ref_v = prepared(crop(value, box) if box is not None else value) if value is not None else None
    # beyond any grading, in luma and in value: a dark clip is not a grey card (a hue turn can move
    # luma's mean alone: green to blue is 0.59 to 0.11 of its level)
    too_far = None, (f"the picture's brightness differs from the one registered (mean {sy[0].mean():.0f} "
                     f"against {ref[0].mean():.0f})"), False
    if not _bright(sy[0], ref[0]) and not (ref_v is not None and _bright(sv[0], ref_v[0])):
        return too_far
    d, fine_y = difference(ref, sy) if _bright(sy[0], ref[0]) else (math.inf, False)
    # two flat value pictures agree whatever the luma says: a saturated clip's max(R, G, B) is
    # flat, and so is a grey card's, which matched at 0.18 against 0.99 in luma (session 34's
    # recheck); the value picture counts only where both hold structure
    if ref_v is None or min(float(ref_v[0].std()), float(sv[0].std())) < FLOOR:
        return too_far if math.isinf(d) else (round(d, 3), None, fine_y)
    d_v, fine_v = difference(ref_v, sv) if _bright(sv[0], ref_v[0]) else (math.inf, False)
    if d_v < d and content(d) != content(d_v):  # HSV's V holds where hue or saturation moved luma
        return round(d_v, 3), round(d, 3), fine_v
    return (round(d, 3), None, fine_y) if d <= d_v else (round(d_v, 3), None, fine_v)


__all__ = ["MATCH", "DIFFERENT", "FLOOR", "BLUR", "BRIGHTNESS", "finer", "views", "crop", "whole", "difference",
           "content", "blurred", "fine", "prepared", "suspect", "picture_difference"]
