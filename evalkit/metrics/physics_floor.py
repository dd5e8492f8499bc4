"""Where a falling object can bounce or rest: the floor, the supports drawn above it, and the
flight segments between them.

The world draws its floor at the frame's bottom edge. Another tool may draw one higher up, or
a table the object rolls off; a generator that gets physics wrong may bounce an object on
nothing at all. A bounce (`turns`) above the bottom edge is believed only where the picture
shows a surface under it (`floor_level`, `physics_picture.Picture.surface_under`), and so is a
rest above the floor (`supported_rests`); the fall laws fit parabolas to the frames in between
(`_flight_segments`). Positions in px, time in frames.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.metrics.physics_limits import PhysicsTolerances


def _neighbour_max(steps: np.ndarray, itself: bool = True) -> np.ndarray:
    """Per step (last axis), the largest of its two neighbours (and of itself with `itself`), NaN
    ignored (-inf if none)."""
    pad = np.full(steps.shape[:-1] + (1,), np.nan)
    nb = [np.concatenate([pad, steps[..., :-1]], -1), np.concatenate([steps[..., 1:], pad], -1)]
    nb = np.stack(nb + [steps] if itself else nb)
    return np.max(np.where(np.isfinite(nb), nb, -np.inf), axis=0)


# A size read small (a shaded sphere's limb, motion blur through a bounce) places the bottom
# edge's floor too low by up to contact_px plus this share of the object's half extent.
SIZE_MISREAD = 0.1


def floor_level(y: np.ndarray, h: int, half: float, a_max: float, tol: PhysicsTolerances,
                x: np.ndarray | None = None, picture=None) -> tuple[float, str | None]:
    """(The object's centre y where it touches the floor, None or a note on a bounce that no
    surface explains.)

    The floor is the frame's bottom edge (the world draws it there) unless the track bounces
    somewhere the bottom edge cannot explain: another tool may draw its floor higher up (at 88%
    of the height, say). A bounce is a velocity reversal at a lowest point (`turns`: gravity
    alone never turns a fall upwards); the bottom edge explains it when the way down to it and
    back fits within the neighbouring steps plus a frame of the largest gravity (with a size
    read up to `misread_px` small: then the floor is the track's lowest point). Any other
    bounce needs a surface drawn under it, at a level its steps can have reached and no deeper
    than where its fall and rise, extrapolated, meet (`contact_depth`: at 8 fps a floor drawn a
    frame's reach below a bounce in mid-air was taken for its floor), found by
    `picture.surface_under` at column x: then the floor is the track's lowest point, after
    one bounce or several. A bounce on nothing drawn (or with no picture to
    look at) is no floor: the bottom edge stays the floor, and the laws see the bounce as the kick
    in mid-air it is."""
    geom = h - 0.5 - half
    if np.isfinite(y).sum() < 3:
        return geom, None
    rev = turns(y, tol)
    if not rev.size:
        return geom, None
    reach = _neighbour_max(np.abs(np.diff(y))) + 2 * a_max + tol.contact_px  # [T-1]
    # The lowest centre level a floor can have for the bounce at frame i: the way down to it and
    # back, over step i-1 or step i, fits in that step's reach.
    deepest = np.array([np.nanmax([(reach[s] + y[s] + y[s + 1]) / 2 for s in (i - 1, i)
                                   if 0 <= s < len(reach)] or [y[i]]) for i in rev])
    if np.all(geom <= deepest):
        return geom, None
    lowest = float(np.nanmax(y))
    slack = misread_px(half, tol)
    if np.all(geom <= deepest + slack):
        return lowest, None
    unexplained = [k for k, i in enumerate(rev) if geom > deepest[k] + slack]
    if picture is None or x is None:
        return geom, f"{len(unexplained)} bounce(s) above the frame's bottom edge with no surface drawn under them"
    # Where the fall and the rise around a bounce can be extrapolated, its contact lies between
    # the lowest sampled position and where they meet: a floor a frame's reach lower is not its.
    a = fall_accel(y, rev, a_max, tol)
    meet = [None if a is None else contact_depth(y, rev, k, a) for k in range(len(rev))]
    depth = [deepest[k] if m is None else min(deepest[k], m) for k, m in enumerate(meet)]
    if all(np.isfinite(x[rev[k]]) and (
            picture.surface_under(float(x[rev[k]]), half, y[rev[k]] + half - slack, depth[k] + half + slack)
            or picture.horizon_above(float(x[rev[k]]), half, y[rev[k]] + half - slack))
           for k in unexplained):
        return lowest, None
    return geom, f"{len(unexplained)} bounce(s) above the frame's bottom edge with no surface drawn under them"


# Frames of each side of a bounce that its contact is extrapolated from (the arcs' ends).
CONTACT_FIT_FRAMES = 3


def fall_accel(y: np.ndarray, rev: np.ndarray, a_max: float, tol: PhysicsTolerances) -> float | None:
    """The downward acceleration (px / frame^2) of a track y [T] between its bounces `rev`: the
    largest of the parabolas fitted to each arc of 4 frames or more (3 where none is longer)
    strictly between them, frames in contact with the lowest level left out; at most `a_max`.
    The largest, so that a contact is never extrapolated too shallow (a roll along a table
    before the fall flattens its arc). None with no arc of 3 frames."""
    low = float(np.nanmax(y)) - tol.contact_px
    bounds = [-1, *rev.tolist(), len(y)]
    arcs = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        k = np.arange(s + 1, e)
        k = k[np.isfinite(y[k]) & (y[k] < low)]
        if len(k) >= 3:
            arcs.append(k)
    if not arcs:
        return None
    longest = max(len(k) for k in arcs)
    accs = [2.0 * np.polyfit(k.astype(np.float64), y[k], 2)[0] for k in arcs if len(k) >= min(4, longest)]
    return float(np.clip(max(accs), 0.0, a_max))


def contact_depth(y: np.ndarray, rev: np.ndarray, n: int, a: float) -> float | None:
    """The deepest centre level (px) where bounce `n` of a track y [T] (frame rev[n], its lowest
    sample) can have met the floor: where the parabolas of acceleration `a` through the fall's
    last CONTACT_FIT_FRAMES frames and the rise's first meet, the lowest sample counted with the
    fall or with the rise (its contact lies after or before it), the meeting within half a frame
    of the frames between. None unless both guesses have 2 frames a side: with one frame after a
    bounce (the clip ending, or the next bounce), only "the lowest sample is on the rise" can be
    fitted, which puts the contact at about the lowest sample, and a floor drawn a frame's reach
    lower was missed (10% of such bounces in a review's synthetic tracks, session 36)."""
    i = int(rev[n])
    prev = int(rev[n - 1]) if n > 0 else -1
    nxt = int(rev[n + 1]) if n + 1 < len(rev) else len(y)
    before = [k for k in range(max(prev + 1, i - CONTACT_FIT_FRAMES), i) if np.isfinite(y[k])]
    after = [k for k in range(i + 1, min(nxt, i + 1 + CONTACT_FIT_FRAMES)) if np.isfinite(y[k])]
    best = None
    guesses = ((before + [i], after), (before, [i] + after))
    if any(len(down) < 2 or len(up) < 2 for down, up in guesses):
        return None
    for down, up in guesses:
        (v0, c0), (v1, c1) = (np.polyfit(np.array(f, np.float64), y[f] - 0.5 * a * np.square(f), 1)
                              for f in (down, up))
        if v0 <= v1:  # no fall meets a rise
            continue
        t = (c1 - c0) / (v0 - v1)
        if down[-1] - 0.5 <= t <= up[0] + 0.5:
            level = c0 + v0 * t + 0.5 * a * t * t
            best = level if best is None else max(best, level)
    return best


def misread_px(half: float, tol: PhysicsTolerances) -> float:
    """How much lower than its measured half extent says an object's lower edge may be (px)."""
    return tol.contact_px + SIZE_MISREAD * half


# A rest on a support: at least this many frames at one height (a ball dropped from rest drops
# a quarter of a pixel in its first two frames at 24 fps: runs that short are any fall's start).
REST_FRAMES = 3


def supported_rests(y: np.ndarray, x: np.ndarray, half: float, floor: float, tol: PhysicsTolerances,
                    picture=None) -> np.ndarray:
    """bool [T]: frames where the object rests on a surface above the floor (a table it rolls or
    stands on before it falls): runs of REST_FRAMES or more whose height stays within
    `contact_px`, with a surface drawn under them (`picture.surface_under`). Not free flight:
    gravity is balanced there. A pause in mid-air with nothing drawn under it stays flight, which
    no parabola fits."""
    out = np.zeros(len(y), bool)
    if picture is None:
        return out
    k = 0
    while k < len(y):
        j = k
        while j + 1 < len(y) and np.isfinite(y[j + 1]) and np.isfinite(y[k]) and \
                np.nanmax(y[k:j + 2]) - np.nanmin(y[k:j + 2]) <= tol.contact_px:
            j += 1
        run = np.arange(k, j + 1)
        # a support of its own, above the floor by more than a size misread either way (the flat
        # top of a small hop over the floor is no rest)
        if len(run) >= REST_FRAMES and np.nanmean(y[run]) < floor - tol.contact_px - 2 * misread_px(half, tol):
            xs = x[run][np.isfinite(x[run])]
            level = float(np.nanmax(y[run])) + half
            slack = misread_px(half, tol)
            if xs.size and picture.surface_under(float(np.median(xs)), half, level - slack, level + slack):
                out[run] = True
        k = j + 1
    return out


def turning_level(y: np.ndarray, tol: PhysicsTolerances) -> float | None:
    """The lowest point (largest y) at which a track turns from down to up (`turns`), where it
    does so at least twice: where the floor is, if one is there (`physics_jumps` lifts the bottom
    edge's floor to it by up to a size misread). None with fewer than two such turns."""
    rev = turns(y, tol)
    return float(np.max(y[rev])) if len(rev) >= 2 else None


def turns(y: np.ndarray, tol: PhysicsTolerances) -> np.ndarray:
    """Frames where a vertical track y [T] turns from down to up, by more than `contact_px` one
    way and more than a step's own noise (sqrt 2 x a centroid's) the other (gravity alone never
    does that: a surface below pushed it). Frames sample a bounce anywhere in its step, and one
    sampled a frame after the contact steps down by under a pixel (105.5, 106.4, 100.8 at 128 px;
    47.0, 47.6, 44.6 at 64 px, a clip's one bounce) where the step before it was 9. A flat, no
    step at all, says nothing of a turn, but a contact can straddle two frames: a flat of one
    step between a step down and a step up of more than `contact_px` (73.13, 73.14, 69.21 at
    96 px) turns at the lower of its two frames. (Until session 35 the weak side counted only at
    the level of a strict turn, so as not to place a floor at a teleported throw's flat; a floor
    is now believed only where a surface is drawn, `floor_level`.)"""
    dy = np.diff(y)
    c = tol.contact_px
    small = math.sqrt(2.0) * tol.pos_sigma
    with np.errstate(invalid="ignore"):
        sharp = np.nonzero((dy[:-1] > small) & (dy[1:] < -small) & ((dy[:-1] > c) | (dy[1:] < -c)))[0] + 1
        flat = np.nonzero((dy[:-2] > c) & (np.abs(dy[1:-1]) <= small) & (dy[2:] < -c))[0] + 1
    flat = np.where(y[flat + 1] > y[flat], flat + 1, flat)  # the lower frame of the flat
    return np.union1d(sharp, flat)


def _flight_segments(y: np.ndarray, floor_geom: float, a_max: float, tol: PhysicsTolerances,
                     resting: np.ndarray | None = None) -> tuple[list[np.ndarray], float]:
    """Frame indices of each flight segment of a vertical track y [T] (px, NaN where missing).

    The floor is where the object's lowest point touches the frame's bottom (`floor_geom`), or the
    lowest observed position if that is lower. Frames within `contact_px` of the floor are ground
    contact (rest, or ambiguous about which side of a bounce they lie), never flight. A segment is
    split between frames t and t+1 wherever a bounce could hide in that step: the way down to the
    floor and back up, (floor - y_t) + (floor - y_t+1), is within the reach of one step (the
    largest neighbouring step plus a frame's worth of the largest gravity). Runs of tiny hops, each
    shorter than a frame, so fall apart into single frames. A reversal in mid-air is not a bounce
    and is not split: the acceleration test sees it. `resting` frames (on a support above the
    floor: `supported_rests`) are contact too.
    """
    ok = np.isfinite(y)
    floor = max(floor_geom, float(np.nanmax(y)))
    contact = ok & (y >= floor - tol.contact_px)
    if resting is not None:
        contact |= resting
    reach = _neighbour_max(np.abs(np.diff(y))) + 2 * a_max + tol.contact_px  # [T-1]
    way = (floor - y[:-1]) + (floor - y[1:])
    split = ~(way > reach)  # [T-1]: True where a bounce may hide (or a frame is missing)
    segs, cur = [], []
    for i in range(len(y)):
        if ok[i] and not contact[i]:
            cur.append(i)
        elif cur:
            segs.append(np.array(cur))
            cur = []
        if cur and i < len(y) - 1 and split[i]:
            segs.append(np.array(cur))
            cur = []
    if cur:
        segs.append(np.array(cur))
    return segs, floor
