"""The world's colours as the tracker sees them: hues in the chroma plane.

Each pixel's RGB is projected on the plane orthogonal to the grey axis (`chroma_planes`), where
the world's grey backgrounds are zero and a pixel's chroma is its object's coverage times the
object colour's (see `tracking_objects`); a pixel's colour class is the palette colour nearest
in hue (`_hue_class`). The tracker and the colour law (`palette_hues`) share these.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.world.spec import COLORS

# Orthonormal basis of the chroma plane (orthogonal to grey (1, 1, 1)).
_CHROMA = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2.0)], [math.sqrt(6.0)]])
_PALETTE_NAMES = tuple(COLORS)
_PALETTE = np.array([_CHROMA @ np.asarray(COLORS[c], np.float64) for c in _PALETTE_NAMES])  # [K, 2]
_PALETTE_UNIT = _PALETTE / np.linalg.norm(_PALETTE, axis=1, keepdims=True)


def palette_hues() -> dict[str, float]:
    """Hue angle (degrees) of each world colour in the chroma plane used here."""
    return {n: float(np.degrees(np.arctan2(q[1], q[0]))) for n, q in zip(_PALETTE_NAMES, _PALETTE)}


def _median_rows(x: np.ndarray) -> np.ndarray:
    """np.median(x, axis=1) of a float32 [R, N] without NaN, bit for bit (a sort is several times
    faster than numpy's partition here): the middle value, or the float32 mean of the two."""
    v = np.sort(x, axis=1)
    n = v.shape[1]
    return v[:, n // 2] if n % 2 else (v[:, n // 2 - 1] + v[:, n // 2]) / np.float32(2)


def chroma_planes(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chroma float32 [T, H, W, 2] with each frame's median removed, robust spread float32 [T]).

    The medians are taken over at most ~2048 evenly strided pixels of each frame (exact up to 64 x
    32): the background is most of any world frame, and its chroma is what they estimate."""
    t, h, w, _ = frames.shape
    f32 = frames if frames.dtype == np.float32 else frames.astype(np.float32)  # one conversion
    r, g, b = (f32[..., i] for i in range(3))
    v0 = np.multiply(r - g, np.float32(_CHROMA[0, 0]))  # (R - G) / sqrt 2
    v1 = np.multiply(r + g - 2 * b, np.float32(_CHROMA[1, 0]))  # (R + G - 2B) / sqrt 6
    n = h * w
    step = max(1, n // 2048)
    s0, s1 = v0.reshape(t, n)[:, ::step], v1.reshape(t, n)[:, ::step]
    m0, m1 = _median_rows(s0), _median_rows(s1)  # [T] each
    c = np.empty((t, h, w, 2), np.float32)
    np.subtract(v0, m0[:, None, None], out=c[..., 0])
    np.subtract(v1, m1[:, None, None], out=c[..., 1])
    # As before (bit for bit): the spread's sample was a view of c, so the median is taken off twice.
    d0, d1 = (s0 - m0[:, None]) - m0[:, None], (s1 - m1[:, None]) - m1[:, None]
    spread = np.float32(1.4826) * _median_rows(np.sqrt(d0 * d0 + d1 * d1))  # robust radius scale
    return c, spread.astype(np.float32)


# Nearest palette colour by hue, tabulated on a 0.1 degree grid of angles (nearest by cosine).
_HUE_BINS = 3600
_HUE_LUT = np.argmax(np.stack([np.cos(np.linspace(-np.pi, np.pi, _HUE_BINS + 1)),
                               np.sin(np.linspace(-np.pi, np.pi, _HUE_BINS + 1))], 1) @ _PALETTE_UNIT.T,
                     axis=1).astype(np.int8)


def _hue_class(c: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """int8 [T, H, W]: index of the palette colour nearest in hue, per pixel (with `where`, bool
    [T, H, W], only there, and -1 elsewhere)."""
    if where is not None:
        out = np.full(c.shape[:-1], -1, np.int8)
        on = np.flatnonzero(where)
        out.reshape(-1)[on] = _hue_class(c.reshape(-1, 2)[on])
        return out
    ang = np.arctan2(c[..., 1], c[..., 0])  # [-pi, pi]
    return _HUE_LUT[np.rint((ang + np.pi) * (_HUE_BINS / (2 * np.pi))).astype(np.int32)]
