"""A moving camera under the static scene's law: its motion measured on the background, or from
the objects together, and `law_at_rest` tested relative to it.

A camera that zooms or shakes moves every object in the picture while none of them moves in the
scene. Where the background has texture, its motion is the camera's (`register_background`: a
similarity, shift and scale, per frame, against the middle frame, with the objects masked out);
objects are at rest when they keep their place on it. On a featureless background the objects
themselves must show the camera's motion together: a zoom scales every object's size by one
factor (`zoom_from_sizes`) and moves each along the ray from one centre in proportion; a shake
is the jitter their tracks share (`physics_limits.camera_jitter_px`). An object that moves by
itself in a zooming or shaking shot keeps that motion relative to them, and fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from evalkit.metrics.physics_limits import _enough, _positions, camera_jitter_px

# Registration: at most this many background pixels of the reference frame are used (evenly
# strided); a frame's fit stops after GN_STEPS Gauss-Newton steps.
REGISTER_PIXELS = 12000
GN_STEPS = 6
# The background shows the camera's motion when its texture fixes a shift along both axes and a
# scale: each of the three directions has a mean squared gradient of at least TEXTURE_MIN
# (levels / px)^2 (the scale's in px at half the frame's size), and the fits' standard error is
# under MAX_SE_PX. A flat backdrop under a codec's noise has ~0.3; a drawn floor line alone fixes
# only the vertical.
TEXTURE_MIN = 1.0
MAX_SE_PX = 0.15


@dataclass(frozen=True)
class CameraMotion:
    """The background's motion: frame t shows reference point q at c + scale[t] (q - c) + shift[t]."""

    scale: np.ndarray  # [T]
    shift: np.ndarray  # [T, 2] (x, y) px
    centre: tuple[float, float]  # (x, y) px: the frame's centre
    se_px: float  # the registration's typical standard error, px at the frame's edge

    def to_background(self, p: np.ndarray) -> np.ndarray:
        """Image positions p [T, 2] -> the reference frame's (where the background stays put)."""
        c = np.asarray(self.centre)
        return c + (p - c - self.shift) / self.scale[:, None]


def register_background(frames: np.ndarray, masks: np.ndarray) -> CameraMotion | None:
    """Each frame's similarity (shift, scale about the frame's centre) and gain/offset of light
    against the middle frame, over the background pixels (`masks`: the objects' pixels, excluded
    in both frames), by Gauss-Newton from the neighbouring frame's solution. None when the
    background's texture cannot fix all three (a flat or one-directional backdrop)."""
    t, h, w = frames.shape[:3]
    grey = frames.astype(np.float32).mean(-1)  # [T, H, W]
    k0 = t // 2
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    half = max(h, w) / 2.0
    gy0, gx0 = np.gradient(grey[k0])
    ok = ~masks[k0]
    ok[:2], ok[-2:], ok[:, :2], ok[:, -2:] = False, False, False, False
    qy, qx = np.nonzero(ok)
    if len(qy) < 100:
        return None
    step = max(1, len(qy) // REGISTER_PIXELS)
    qy, qx = qy[::step].astype(np.float64), qx[::step].astype(np.float64)
    ref = grey[k0][qy.astype(int), qx.astype(int)].astype(np.float64)
    rx, ry = (qx - c[0]) / half, (qy - c[1]) / half  # the scale's direction, per half frame
    gx, gy = gx0[qy.astype(int), qx.astype(int)], gy0[qy.astype(int), qx.astype(int)]
    tensor = np.stack([gx, gy, gx * rx + gy * ry], 1)
    if np.linalg.eigvalsh(tensor.T @ tensor / len(qy))[0] < TEXTURE_MIN:
        return None
    scale, shift, ses = np.ones(t), np.zeros((t, 2)), np.zeros(t)
    order = list(range(k0 + 1, t)) + list(range(k0 - 1, -1, -1))
    for k in order:
        prev = k - 1 if k > k0 else k + 1
        s, d, se = _register(grey[k], masks[k], qx, qy, ref, c, half, scale[prev], shift[prev])
        scale[k], shift[k], ses[k] = s, d, se
    se_px = float(np.median(ses[np.arange(t) != k0])) if t > 1 else 0.0
    if not math.isfinite(se_px) or se_px > MAX_SE_PX:
        return None
    return CameraMotion(scale=scale, shift=shift, centre=(float(c[0]), float(c[1])), se_px=se_px)


def _register(img, mask, qx, qy, ref, c, half, s, d) -> tuple[float, np.ndarray, float]:
    """(scale, shift, standard error in px) of one frame against the reference's pixels."""
    gy_img, gx_img = np.gradient(img)
    d = np.array(d, np.float64)
    gain, offset, se = 1.0, 0.0, math.inf
    for _ in range(GN_STEPS):
        wx, wy = c[0] + s * (qx - c[0]) + d[0], c[1] + s * (qy - c[1]) + d[1]
        inside = (wx >= 0) & (wx <= img.shape[1] - 1) & (wy >= 0) & (wy <= img.shape[0] - 1)
        coords = np.stack([wy, wx])
        val = ndimage.map_coordinates(img, coords, order=1, mode="nearest")
        free = inside & ~mask[np.clip(np.rint(wy).astype(int), 0, img.shape[0] - 1),
                              np.clip(np.rint(wx).astype(int), 0, img.shape[1] - 1)]
        if free.sum() < 50:
            return s, d, math.inf
        gx = ndimage.map_coordinates(gx_img, coords, order=1, mode="nearest")[free]
        gy = ndimage.map_coordinates(gy_img, coords, order=1, mode="nearest")[free]
        v = val[free]
        rx, ry = (qx[free] - c[0]) / half, (qy[free] - c[1]) / half
        # ref ~ gain * img(W(q)) + offset: the light may change over the clip
        jac = np.stack([gain * gx, gain * gy, gain * (gx * rx + gy * ry), v, np.ones_like(v)], 1)
        res = ref[free] - (gain * v + offset)
        hess = jac.T @ jac
        try:
            delta = np.linalg.solve(hess, jac.T @ res)
        except np.linalg.LinAlgError:
            return s, d, math.inf
        d = d + delta[:2]
        s, gain, offset = s + delta[2] / half, gain + delta[3], offset + delta[4]
        sigma2 = float(np.mean(res**2))
        cov = np.linalg.pinv(hess) * sigma2
        se = math.sqrt(max(cov[0, 0], cov[1, 1], cov[2, 2]))
        if np.max(np.abs(delta[:3])) < 1e-3:
            break
    return s, d, se


def zoom_from_sizes(tracks) -> np.ndarray | None:
    """[T]: one smooth scale factor (a polynomial in time, up to cubic) shared by every object's
    size (its silhouette's extent, which light does not change; else its area's root), 1 at the
    middle frame; None with fewer than 4 sizes measured."""
    t = len(tracks[0].seen)
    tt = (np.arange(t) - (t - 1) / 2.0) / max(t - 1, 1)
    deg = 3 if t >= 12 else 1
    cols, rhs = [], []
    for i, tr in enumerate(tracks):
        size = tr.extent if tr.extent is not None else np.sqrt(tr.area)
        ok = tr.seen & np.isfinite(size) & (size > 0)
        for k in np.nonzero(ok)[0]:
            onehot = np.zeros(len(tracks))
            onehot[i] = 1.0
            cols.append(np.r_[onehot, [tt[k] ** p for p in range(1, deg + 1)]])
            rhs.append(math.log(size[k]))
    if len(rhs) < 4 + deg:
        return None
    coef, *_ = np.linalg.lstsq(np.array(cols), np.array(rhs), rcond=None)
    z = sum(coef[len(tracks) + p - 1] * tt ** p for p in range(1, deg + 1))
    return np.exp(z - z[(t - 1) // 2] if t % 2 else z - 0.5 * (z[t // 2 - 1] + z[t // 2]))


ZOOM_CENTRE_OBJECTS = 3


def unzoomed(pos: list[np.ndarray], scale: np.ndarray, hw: tuple[int, int]) -> list[np.ndarray]:
    """Positions with a zoom about one fixed centre taken out: u = c + (p - c) / scale. The centre
    is fitted (least squares, nearest the frame's centre where the zoom leaves it free) with
    ZOOM_CENTRE_OBJECTS objects or more; with fewer it is the frame's centre (a lens's zoom): with
    two, one of them moving 3-6 px by itself had its motion taken for the centre's place."""
    h, w = hw
    frame_c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    cen = frame_c.copy()
    if len(pos) >= ZOOM_CENTRE_OBJECTS:
        for ax in range(2):
            rows, rhs = [], []
            for i, p in enumerate(pos):
                for k in np.nonzero(np.isfinite(p[:, ax]))[0]:
                    row = np.zeros(1 + len(pos))
                    row[0], row[1 + i] = 1 - 1 / scale[k], -1.0
                    rows.append(row)
                    # (c - frame_c) (1 - 1/s) - P_i = -p / s - frame_c (1 - 1/s)
                    rhs.append(-p[k, ax] / scale[k] - frame_c[ax] * (1 - 1 / scale[k]))
            sol, *_ = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)
            cen[ax] = frame_c[ax] + sol[0]
    return [cen + (p - cen) / scale[:, None] for p in pos]


def _worst_dev(pos: list[np.ndarray]) -> float:
    """The largest distance of an object from its median position (px)."""
    return max(float(np.nanmax(np.linalg.norm(p - np.nanmedian(p, axis=0), axis=1))) for p in pos)


# The registration's error reaches the objects' positions at this many standard errors at most.
REGISTRATION_SDS = 4.0


def law_at_rest(tracks, tol, picture=None, hw: tuple[int, int] | None = None) -> tuple[bool | None, dict]:
    """No object moves beyond `rest_px`, or beyond what a shaking camera's jitter reaches (4 sd;
    the jitter every object shares, and the background where it shows: `camera_jitter_px`). Where
    the objects do move more, the camera's own motion is taken out: the background's, where it
    has texture (then an object must keep its place on it, within `rest_px` and the
    registration's error), else a zoom shared by every object's size (`zoom_from_sizes`,
    `unzoomed`). A drift, however slow, has no third differences and keeps rest_px."""
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    pos = [_positions(tr) for tr in tracks]
    jitter = camera_jitter_px(pos, picture)
    allowed = max(tol.rest_px, 4.0 * jitter)
    worst = _worst_dev(pos) / allowed * tol.rest_px  # in units of rest_px
    info = {"max_dev": worst, "jitter_px": jitter}
    if worst <= tol.rest_px or hw is None:
        return worst <= tol.rest_px, info
    cam = picture.camera() if picture is not None else None
    if cam is not None:
        dev = _worst_dev([cam.to_background(p) for p in pos])
        allowed = tol.rest_px + REGISTRATION_SDS * cam.se_px
        info.update(camera="background", dev_on_background=dev, zoom=float(np.ptp(cam.scale)))
        return dev <= allowed, info
    scale = zoom_from_sizes(tracks)
    if scale is None:
        return False, info
    u = unzoomed(pos, scale, hw)
    jitter = camera_jitter_px(u)  # a shake on top of the zoom, shared as before
    dev = _worst_dev(u) / max(tol.rest_px, 4.0 * jitter) * tol.rest_px
    info.update(camera="objects", dev_unzoomed=dev, zoom=float(np.ptp(scale)))
    return dev <= tol.rest_px, info
