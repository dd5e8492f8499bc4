"""The world's limits, the laws' tolerances, and the track readings every law shares.

The limits (frame fractions and seconds) come from the world's own spec.py and scenes.py; the
tolerances are in pixels and time in frames. They sit apart from the laws so that the laws'
modules (`physics_laws`, `physics_jumps`, `physics_motion`) all read them without importing
one another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.metrics.tracking_objects import ObjectTrack
from evalkit.world.spec import KINDS, OOD_RANGES, SIZES, TRAIN_RANGES

# ------------------------------------------------------------------------------------------------
# The world's limits (frame fractions and seconds), from spec.py and the layouts of scenes.py.

E_MIN = min(TRAIN_RANGES["restitution"].low, OOD_RANGES["restitution"].low)  # 0.5
G_MAX = max(TRAIN_RANGES["gravity"].high, OOD_RANGES["gravity"].high)  # 6.5 frame heights / s^2
G_MIN = min(TRAIN_RANGES["gravity"].low, OOD_RANGES["gravity"].low)  # 2.5 frame heights / s^2
E_MAX = max(TRAIN_RANGES["restitution"].high, OOD_RANGES["restitution"].high)  # 0.95
MU_MAX = max(TRAIN_RANGES["friction"].high, OOD_RANGES["friction"].high)  # 1.3 frame widths / s^2
V_SLIDE_MAX = 0.6  # scenes.py: slide launch speed <= 0.6 frame widths / s
V_THROW_X_MAX = 0.7  # scenes.py: throw horizontal launch speed <= 0.7
_EDGE = 0.03  # scenes.py: objects start at least 0.03 from the walls
COLLIDE_GAP_MAX = 1.0 - 2 * _EDGE - 2 * min(SIZES.values())  # widest gap closed in a collision
COLLIDE_MIN_TIME = 0.25  # scenes.py: the collision happens after >= 0.25 of the clip's duration


def max_speed(kind: str, duration: float) -> float:
    """The fastest any world object of `kind` moves, in frame sizes per second.

    fall/throw: a drop through the whole frame at the largest gravity (plus a throw's horizontal
    speed); slide: its largest launch speed (friction only slows); collide: the largest closing
    speed (the widest gap closed in a quarter of the clip) times (1 + restitution), the most a
    light body can leave with; static: 0.
    """
    if kind == "fall":
        return math.sqrt(2 * G_MAX * 1.0)
    if kind == "throw":
        return math.sqrt(V_THROW_X_MAX ** 2 + 2 * G_MAX * 1.0)
    if kind == "slide":
        return V_SLIDE_MAX
    if kind == "collide":
        return (1 + E_MAX) * COLLIDE_GAP_MAX / (COLLIDE_MIN_TIME * max(duration, 1e-6))
    if kind == "static":
        return 0.0
    raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")


@dataclass(frozen=True)
class PhysicsTolerances:
    """Every threshold of the laws; pixels unless said otherwise."""

    min_presence: float = 0.9  # permanence: fraction of frames each object is seen in (found or followed)
    min_evidence: float = 0.5  # other laws: None when an object is seen in fewer frames
    size_log: float = 0.05  # constant_size: |log| ratio of run medians (see size_change), plus ...
    size_edge: float = 0.4  # ... this times perimeter / area (px^-1)
    hue_deg: float = 35.0  # constant_colour: hue within this of the prompted colour's (and nearest to it)
    jump_px: float = 2.0  # no_teleport: slack on steps and on velocity changes (tracking noise)
    speed_margin: float = 1.25  # no_teleport: factor on the world's top speed
    pos_sigma: float = 0.35  # assumed sd of a tracked centroid (H.264 at CRF 30, 32 px)
    flight_rms: float = 0.6  # acceleration: rms residual of a flight segment's parabola
    accel_rel: float = 0.25  # acceleration: segments' accelerations agree within this fraction
    accel_px: float = 0.6  # ... plus this, in px / frame^2
    accel_down: float = 0.5  # falling: at least this share of the weakest gravity (or accel_px, if less)
    contact_px: float = 1.0  # ground contact: within this of the lowest observed position
    height_rel: float = 0.1  # bounce heights: growth allowed, fraction of the previous height
    height_px: float = 1.0  # ... plus this
    slide_rms: float = 0.5  # friction: rms distance from the best never-speeding-up path
    slide_speed_px: float = 0.3  # friction: end slower than the start by this (px / frame), or below it
    slide_min_px: float = 0.5  # friction: an object slides at least this far (px)
    momentum_rel: float = 0.1  # collide: |p_after - p_before| / (sum of |m v| before), plus errors
    pos_floor: float = 0.05  # smallest centroid scatter assumed in a slope's standard error (px)
    rest_px: float = 1.0  # at_rest: max distance from the median position


DEFAULT_TOLERANCES = PhysicsTolerances()


# ------------------------------------------------------------------------------------------------
# law helpers (positions in px, time in frames)


# A flat disc's silhouette (`ObjectTrack.span`: rows a quarter covered) spans about its diameter
# + 0.5 px, +-0.5 for where it falls on the pixel grid: less this it stays under the extent its
# exact chroma mass gives, so the world's own (flat) objects keep the mass's reading.
_BOX_MARGIN_PX = 1.0


def _half_extent(tr: ObjectTrack) -> float:
    """Half the object's extent in pixels: from its median measured area (expected if unknown), or
    from its blob's spatial extent where that is larger. A shaded sphere (darker limb, a highlight)
    covers its silhouette with less chroma than a flat disc, so its chroma mass reads it a fifth
    smaller: floor and walls then sat ~3 px out and its bounces read as kicks."""
    a = float(np.median(tr.area[tr.found])) if tr.found.any() else tr.expected_area
    if not np.isfinite(a) or a <= 0:
        a = tr.expected_area
    half = 0.5 * (math.sqrt(4 * a / math.pi) if tr.shape == "ball" else math.sqrt(a))
    if tr.span is not None and tr.found.any():
        side = tr.span[tr.found]
        side = side[np.isfinite(side)]
        if side.size:
            # the mean, not the median: a moving blob's span steps by the codec's 2-px chroma
            # grid, and averages out across it
            half = max(half, 0.5 * (float(np.mean(side)) - _BOX_MARGIN_PX))
    return half


# A handheld camera's shake reads up to ~1.6 px here (0.7 px sd rendered, 128 px, H.264); a track
# more erratic than this is no shaken camera but shuffled or broken motion, and gets no allowance
# (32 shuffled frames read 8 to 50 px).
JITTER_MAX_PX = 2.0


# An object's own position noise up to this is the tracker's (H.264 at CRF 30 on 32 px frames
# reads a few tenths), allowed without asking whether the scene shares it.
JITTER_NOISE_PX = 0.25
# A shake is common to the scene when each object's jitter relative to the others' mean (and to
# the background, where its texture shows the camera's motion) is under this share of it.
COMMON_SHARE = 0.5


def camera_jitter_px(positions, picture=None) -> float:
    """The jitter every object's track shares (`jitter_px`, the least over objects), where the
    scene shares it: a shaking camera moves every object and the background with them, while one
    object's erratic motion is its own. With two objects or more, each one's jitter relative to
    their mean must be under COMMON_SHARE of it; where `picture` (`physics_picture.Picture`)
    shows the background's motion, so must each one's relative to the background. Jitter not so
    shared is allowed up to JITTER_NOISE_PX (tracking noise). One object on a featureless
    background cannot show whether its jitter is the camera's: it is allowed. 0 above
    JITTER_MAX_PX."""
    j = min((jitter_px(p) for p in positions), default=0.0)
    if j > JITTER_MAX_PX:
        return 0.0
    if j <= JITTER_NOISE_PX:
        return j

    def shared(ref: np.ndarray) -> bool:
        return all(jitter_px(p - ref) <= COMMON_SHARE * j for p in positions)

    if len(positions) >= 2 and not shared(np.mean(np.stack(positions), axis=0)):  # NaN where one is unseen
        return JITTER_NOISE_PX
    camera = picture.camera() if picture is not None else None  # registered once, when first asked
    if camera is not None and not shared(camera.shift):
        return JITTER_NOISE_PX
    return j


def jitter_px(p: np.ndarray) -> float:
    """Robust sd (px) of a track's frame-to-frame position noise, p [T, 2] (NaN where unseen): from
    its third differences, zero for any motion of constant acceleration (a flight, a slide, a rest),
    sd sqrt(20) x the noise's for white noise; their lower quartile ignores those a bounce or a
    jump makes. A handheld camera's shake (0.7 px sd) moves every object so; the world's own clips
    read under 0.1 px (a few tenths at H.264 CRF 30 on 32 px frames)."""
    d3 = np.diff(p, n=3, axis=0)
    d3 = d3[np.isfinite(d3).all(1)]
    if len(d3) < 20:  # fewer: a short clip's bounces and noise are not told apart
        return 0.0
    # the lower quartile of |d3| (0.3186 sd for white noise): a short clip's bounces (each
    # touches 3 or 4 third differences) can be most of the rest
    return float(np.max(np.quantile(np.abs(d3), 0.25, axis=0)) / 0.3186 / math.sqrt(20.0))


# A velocity change of white position noise has sd sqrt(6) x the noise; over a clip's frames and
# both axes its largest is under this many of those sds.
JITTER_KICK_SDS = 3.5


def _enough(tr: ObjectTrack, tol: PhysicsTolerances) -> bool:
    seen = tr.seen
    return seen.size > 0 and seen.mean() >= tol.min_evidence and seen.sum() >= 3


def _positions(tr: ObjectTrack) -> np.ndarray:
    return np.where(tr.seen[:, None], tr.centroid, np.nan)  # [T, 2]
