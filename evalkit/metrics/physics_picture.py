"""The picture behind the tracked objects: its background, the surfaces drawn in it, and how the
camera moved over it.

A bounce needs something to bounce off. The world draws its floor at the frame's bottom edge;
another tool may draw one higher up, and a generator that gets physics wrong may bounce an
object on nothing at all, which a track alone cannot tell from a floor (session 35: two bounces
at one level in mid-air passed the fall laws). `Picture.surface_under` says whether the
background shows a horizontal edge under an object at the level where it bounces or rests: a
floor line, or where the floor's colour begins, even 10 grey levels off the wall or a change of
hue alone (`step_edge`).

The background is the clip with the tracked objects masked out (`background_plate`: each
pixel's median over the frames where no object covers it). Where it has texture, it also shows
the camera's own motion (`Picture.camera`, registered in `physics_camera`): a shake, a zoom or a
pan moves the background with the objects, an object moving by itself does not.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from evalkit.metrics.physics_limits import _half_extent
from evalkit.metrics.tracking_objects import ObjectTrack

# Pixels around an object's extent that are masked too: its anti-aliased rim and the codec's
# chroma halo (2 px at 4:2:0) would otherwise leak its colour into the background.
MASK_MARGIN_PX = 2.0
# The plate is a median over at most this many evenly spaced frames (its cost stays bounded).
PLATE_FRAMES = 32
# A horizon is a sharp horizontal edge or line: the background's row profile in the object's
# column (its median over the columns there) bends, in its second difference across three rows,
# by at least EDGE_MIN (RGB distance; a step of 30 grey levels, anti-aliased, bends it ~25-50)
# and by EDGE_SNR times its typical bend in the rows around. A gradient backdrop changes evenly
# (no bend) and a texture's blobs ramp over several rows. Measured on the plates of 200 clips of
# a ball falling over backdrops (flat, gradient, textured, the world's gradient and noise; 64-128
# px; raw and H.264 at CRF 23-33): without a floor the profile bent at most 19 (7 times its
# typical bend), with a floor, line or table drawn 65 levels from the wall at least 38 (13 times).
# (A pixel-by-pixel baseline read a codec's noise as texture and missed a table at CRF 28.)
EDGE_MIN = 25.0
EDGE_SNR = 10.0
# A surface under a bounce, where the search is confined to the few rows the bounce can reach,
# is read by its step instead (`step_edge`): the change across three rows less what the slope
# of the rows beside them gives, so that an edge anti-aliased over two rows or softened by a
# codec counts in full (the bend split a 30-level floor into two bends of 22 and missed it) and
# a gradient gives nothing. Measured on 360 plates (session 36, 64-128 px, raw and H.264 CRF
# 28): a floor 10 grey levels off a flat or gradient wall steps by 13-21, 17 for a colour change
# of the same luma; with nothing drawn a flat or gradient wall stepped at most 3, a textured
# wall (blobs 10-25 levels deep) up to 7.5 times its typical step. The typical step is the
# wall's above the rows searched (a textured floor below a flat wall does not hide its edge).
STEP_MIN = 9.0
STEP_SNR = 8.0
# A horizon (the far edge of a floor seen in perspective) spans the frame at one level: beside
# the sharp bend in the object's column (`surface_edge`), the frame's columns, in HORIZON_STRIPS
# strips, must step at that level (within a row) in at least HORIZON_SPAN of the strips, each in
# the direction of their mean step (the wall above and the floor below differ as a whole), by
# STEP_MIN and HORIZON_AGREE of that mean step. A texture's local edges bend as sharply in one
# column, but step at that row across only a few strips and in no one direction (session 36: 4
# of 90 clips of a ball bouncing on nothing or in mid-air over walls with blobs 10-25 levels
# deep passed as below a horizon; none now, floors in perspective pass as before).
HORIZON_STRIPS = 8
HORIZON_SPAN = 0.75
HORIZON_AGREE = 0.5


def object_masks(tracks: Sequence[ObjectTrack], shape: tuple[int, int, int]) -> np.ndarray:
    """bool [T, H, W]: the pixels each tracked object (wherever a blob of its colour was chosen)
    covers, as a box of its extent plus MASK_MARGIN_PX."""
    t, h, w = shape
    out = np.zeros((t, h, w), bool)
    for tr in tracks:
        r = _half_extent(tr) + MASK_MARGIN_PX
        for k in np.nonzero(np.isfinite(tr.centroid).all(1))[0]:
            x, y = tr.centroid[k]
            out[k, max(int(math.floor(y - r)), 0):max(int(math.ceil(y + r)) + 1, 0),
                max(int(math.floor(x - r)), 0):max(int(math.ceil(x + r)) + 1, 0)] = True
    return out


def background_plate(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """float32 [H, W, 3]: each pixel's median over the frames (at most PLATE_FRAMES, evenly
    spaced) where no object covers it; NaN where one always does."""
    idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), PLATE_FRAMES)).round().astype(int))
    h = frames.shape[1]
    out = np.empty(frames.shape[1:], np.float32)
    band = max(1, (1 << 22) // max(1, len(idx) * frames.shape[2] * 3))  # rows at a time: ~16 MB of float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pixels stay NaN
        for r in range(0, h, band):
            f = frames[idx, r:r + band].astype(np.float32)
            f[masks[idx, r:r + band]] = np.nan
            out[r:r + band] = np.nanmedian(f, axis=0)
    return out


class Picture:
    """A clip's frames and its tracked objects, read for what the tracks cannot show: drawn
    surfaces (`surface_under`) and the camera's motion (`camera`). Both are computed when first
    asked for, once: most clips never need them."""

    def __init__(self, frames: np.ndarray, tracks: Sequence[ObjectTrack]):
        self.frames, self.tracks = frames, list(tracks)
        self._masks = self._plate = None
        self._camera: object = False  # not yet registered (None: the background shows no motion)

    @property
    def masks(self) -> np.ndarray:
        if self._masks is None:
            self._masks = object_masks(self.tracks, self.frames.shape[:3])
        return self._masks

    @property
    def plate(self) -> np.ndarray:
        if self._plate is None:
            self._plate = background_plate(self.frames, self.masks)
        return self._plate

    def camera(self):
        """`physics_camera.CameraMotion` measured on the background, or None where it has too
        little texture to measure a shift in both directions and a scale."""
        if self._camera is False:
            from evalkit.metrics.physics_camera import register_background

            self._camera = register_background(self.frames, self.masks)
        return self._camera

    def surface_under(self, x: float, half: float, top: float, bottom: float) -> bool:
        """Whether the background shows a horizontal edge (a drawn surface) between rows `top` and
        `bottom` (px, where the object's lower edge may meet it) under an object of half extent
        `half` at column `x`: the rows' median over the columns under it (its width and half
        again on each side) steps there (`step_edge`) or bends sharply (`surface_edge`: over a
        textured wall a strong floor's bend stands out more than its step)."""
        return step_edge(self.plate, x, half, top, bottom) or surface_edge(self.plate, x, half, top, bottom)

    def horizon_above(self, x: float, half: float, contact: float) -> bool:
        """Whether the background shows a horizontal edge above row `contact` (where the object's
        lower edge meets a floor) in its column: the far edge of a floor seen in perspective,
        whose own plane shows no line where a ball lands on it (another tool's 3D render), one
        that spans the frame (`horizon_edge`). A bounce below such a horizon is a bounce on the
        floor; one above it, or over a backdrop with no edge at all, is not."""
        return contact > 2 and horizon_edge(self.plate, x, half, contact - 1.0)


def _profile(plate: np.ndarray, x: float, half: float, top: float, bottom: float, pad: int):
    """(rows r0 .. r1-1 of the plate's median over the columns under an object at `x` [R, 3],
    r0), taking `pad` rows beyond top and bottom (rows `around`: at least 6, or the object's
    size); None where the window is too small."""
    h, w = plate.shape[:2]
    around = max(6, int(math.ceil(2 * half))) + pad
    r0, r1 = max(int(math.floor(top)) - around, 0), min(int(math.ceil(bottom)) + around + 1, h)
    cw = max(1.5 * half, 3.0)
    c0, c1 = max(int(math.floor(x - cw)), 0), min(int(math.ceil(x + cw)) + 1, w)
    if r1 - r0 < 5 + 2 * pad or c1 - c0 < 2:
        return None, r0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(plate[r0:r1, c0:c1], axis=1), r0


def surface_edge(plate: np.ndarray, x: float, half: float, top: float, bottom: float) -> bool:
    """Whether the plate [H, W, 3] (NaN where unknown) bends sharply between rows `top` and
    `bottom` in the column of an object at `x` (by EDGE_MIN and EDGE_SNR times its typical bend
    in the rows around): the horizon test."""
    return bool(_bend_rows(plate, x, half, top, bottom).size)


def _bend_rows(plate, x, half, top, bottom) -> np.ndarray:
    """The rows between `top` and `bottom` where `surface_edge` finds the plate bending sharply."""
    prof, r0 = _profile(plate, x, half, top, bottom, 0)
    if prof is None:
        return np.zeros(0, int)
    bend = np.linalg.norm(prof[2:] - 2 * prof[1:-1] + prof[:-2], axis=1)  # rows r0+1 .. r1-2
    rows = np.arange(r0 + 1, r0 + len(prof) - 1)
    return rows[_standing(bend, rows, top, bottom, EDGE_MIN, EDGE_SNR, above=False)]


def _steps(prof: np.ndarray) -> np.ndarray:
    """Per boundary b (between rows b-1 and b) of row profiles [..., R, 3], from b = 5 to R-5:
    p[b+1] - p[b-2] less three rows of the slope over the three rows on either side [..., R-9, 3]."""
    jump = prof[..., 6:-3, :] - prof[..., 3:-6, :]
    slope = ((prof[..., 3:-6, :] - prof[..., :-9, :]) + (prof[..., 9:, :] - prof[..., 6:-3, :])) / 6.0
    return jump - 3.0 * slope


def horizon_edge(plate: np.ndarray, x: float, half: float, bottom: float) -> bool:
    """`Picture.horizon_above` on a plate [H, W, 3] (NaN where unknown): above row `bottom`, the
    column of an object at `x` bends sharply (`surface_edge`) at a row where the whole frame's
    width steps, HORIZON_SPAN of its strips in one direction (see HORIZON_STRIPS)."""
    h, w = plate.shape[:2]
    if h < 10:
        return False
    cuts = np.linspace(0, w, HORIZON_STRIPS + 1).round().astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        prof = np.stack([np.nanmedian(plate[:, a:b], axis=1) for a, b in zip(cuts[:-1], cuts[1:]) if b > a])
        step = _steps(prof)  # [strips, boundaries 5 .. h-5, 3]
        mag = np.linalg.norm(step, axis=2)
        need = math.ceil(HORIZON_SPAN * len(prof))
        for r in _bend_rows(plate, x, half, 0.0, bottom):
            # an edge bending the column at row r lies at boundary r or r+1; a row more either
            # side allows for anti-aliasing and a slight tilt
            lo, hi = max(int(r) - 1, 5), min(int(r) + 2, h - 4)
            if hi < lo:
                continue
            win, m = step[:, lo - 5:hi - 4], mag[:, lo - 5:hi - 4]  # [strips, boundaries(, 3)]
            seen = np.isfinite(m).any(1)
            if seen.sum() < need:
                continue
            v = win[seen, np.nanargmax(np.where(np.isfinite(m[seen]), m[seen], -1.0), axis=1)]
            mean = v.mean(0)
            size = float(np.linalg.norm(mean))
            if size < STEP_MIN:
                continue
            along = v @ (mean / size)
            least = max(STEP_MIN, HORIZON_AGREE * size)
            if int((along >= least).sum()) >= need:
                return True
    return False


def step_edge(plate: np.ndarray, x: float, half: float, top: float, bottom: float) -> bool:
    """`Picture.surface_under` on a plate [H, W, 3] (NaN where unknown): the profile's step at
    each boundary b (between rows b-1 and b), p[b+1] - p[b-2] less three rows of the slope
    measured over the three rows on either side, stands out by STEP_MIN and STEP_SNR times the
    typical step of the rows above them (the wall the object falls past; `_stands_out`)."""
    prof, r0 = _profile(plate, x, half, top, bottom, 3)
    if prof is None:
        return False
    step = np.linalg.norm(_steps(prof), axis=1)  # boundaries r0+5 .. r1-4
    rows = np.arange(r0 + 5, r0 + 5 + len(step))
    return _stands_out(step, rows, top, bottom + 1, STEP_MIN, STEP_SNR, above=True)


def _stands_out(v: np.ndarray, rows: np.ndarray, top: float, bottom: float, least: float, snr: float,
                above: bool) -> bool:
    """Whether v (per row) is at least `least` and `snr` times its typical (median) value away
    from rows top .. bottom (+-1) somewhere in them; with `above`, the typical value of the rows
    above them where there are 3 or more: the wall the object falls past (a floor's texture
    does not hide its edge, and a flat floor drawn lower does not make a textured wall's
    blobs stand out)."""
    return bool(_standing(v, rows, top, bottom, least, snr, above).any())


def _standing(v, rows, top, bottom, least, snr, above) -> np.ndarray:
    """bool per row: `_stands_out` there."""
    near = (rows >= math.floor(top) - 1) & (rows <= math.ceil(bottom) + 1) & np.isfinite(v)
    if not near.any():
        return near
    far = ~near & np.isfinite(v)
    if above and (far & (rows < math.floor(top))).sum() >= 3:
        far &= rows < math.floor(top)
    typical = float(np.median(v[far])) if far.any() else 0.0
    return near & (np.where(near, v, -np.inf) >= max(least, snr * typical))
