"""no_teleport: jumps in a track, told apart from the bounces and contacts that explain them.

A step faster than the world allows, or a velocity change that neither gravity, friction nor a
surface the object can have touched explains, is a jump (`law_no_teleport`). A single jump is
no_teleport's alone: `without_one_jump` takes it out so that the motion laws judge the motion on
either side of it.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from evalkit.metrics.physics_limits import (
    E_MAX, E_MIN, G_MAX, JITTER_KICK_SDS, MU_MAX, _enough, _half_extent, _positions, camera_jitter_px, max_speed,
)
from evalkit.metrics.physics_floor import floor_level, misread_px, turning_level
from evalkit.metrics.tracking_objects import ObjectTrack


def _contact_possible(room: np.ndarray, toward: np.ndarray, slack: float) -> np.ndarray:
    """bool [T-2], per middle frame of each triple: a bounce off a surface can have happened in
    the step before or after that frame.

    room [T]: px from the object's edge to the surface; toward [T-1]: each step's displacement
    towards it. A bounce inside step s folds it: the way there and back, room_s + room_s+1, fits
    within the speed of the neighbouring steps; the step before approaches the surface, and the
    step after leaves it at between E_MIN and E_MAX times the approach speed (the world's
    restitutions; a jump would need a restitution far above 1, or an approach it never made).
    `slack` (px) absorbs tracking noise and a frame of gravity. Unknown neighbours count as
    possible.
    """
    n = len(toward)
    app = np.r_[np.nan, toward[:-1]]  # approach: the step before step s
    reb = np.r_[-toward[1:], np.nan]  # rebound: the step after step s, positive = leaving
    way = room[:-1] + room[1:]
    reach = np.fmax(np.abs(app), np.abs(reb))
    reach = np.where(np.isfinite(reach), reach, np.inf)
    with np.errstate(invalid="ignore"):
        ok = ~(way > reach + slack)
        ok &= ~(app < -slack)
        ok &= ~(reb < E_MIN * app - slack)
        ok &= ~(reb > E_MAX * np.abs(app) + slack)
    return ok[:-1] | ok[1:] if n >= 2 else np.zeros(0, bool)


def law_no_teleport(tracks, kind, fps, hw, n_frames, tol, picture=None) -> tuple[bool | None, dict]:
    """No step is longer than the world's top speed for the kind allows (`max_speed` x
    `speed_margin`, plus `jump_px`), and no velocity change (second difference) goes beyond what
    gravity and friction give (plus `jump_px`) unless a surface that pushes that way (the floor
    upwards in fall/throw, a wall inwards, the other body away from it in collide) can have been
    touched around that frame. A jump and its arrival are two opposite velocity changes, and no
    single surface explains both, so any jump larger than the slack is seen. The floor is the
    frame's bottom edge, or one drawn higher that `picture` shows under the bounces
    (`floor_level`): a bounce on nothing drawn is a kick."""
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    pos = [_positions(t) for t in tracks]
    halves = [_half_extent(t) for t in tracks]

    worst_step, worst_kick = 0.0, -math.inf
    for i in range(len(pos)):
        step, kick = _worst(*_unexplained(i, pos, halves, kind, fps, hw, n_frames, tol, picture))
        worst_step, worst_kick = max(worst_step, step), max(worst_kick, kick)
    return worst_step <= 1.0 and worst_kick <= 0.0, {"step_ratio": worst_step, "kick_px": worst_kick}


def _worst(step: np.ndarray, kick: np.ndarray) -> tuple[float, float]:
    """(largest step ratio, 0 if none known; largest unexplained kick, -inf if none known)."""
    s = float(np.max(step[np.isfinite(step)])) if np.isfinite(step).any() else 0.0
    k = kick[np.isfinite(kick)]
    return s, float(k.max()) if k.size else -math.inf


def _unexplained(i, pos, halves, kind, fps, hw, n_frames, tol, picture=None) -> tuple[np.ndarray, np.ndarray]:
    """Object i's steps over the kind's bound (ratio [T-1], <= 1 passes) and velocity changes
    beyond what gravity, friction and the surfaces it can touch explain (px / frame^2 [T-2], the
    change between steps s and s+1 at index s, <= 0 passes), NaN where unknown; `pos`: every
    object's positions [T, 2] (NaN where unseen), `halves`: their half extents; `picture`: the
    clip's, for the surfaces drawn in it and the camera's shake."""
    h, w = hw
    scale = np.array([w, h], np.float64)
    v_max = max_speed(kind, n_frames / fps) * scale / fps * tol.speed_margin  # px / frame, per axis
    # Free accelerations (px / frame^2): gravity acts down in fall/throw, friction along x.
    g = G_MAX * h / fps**2 if kind in ("fall", "throw") else 0.0
    mu = MU_MAX * w / fps**2 if kind in ("slide", "throw", "fall") else 0.0
    p = pos[i]
    # Tracking noise and a shaking camera's jitter: velocity changes within their reach are no kick
    slack = max(tol.jump_px, JITTER_KICK_SDS * math.sqrt(6.0) * camera_jitter_px(pos, picture))
    step_bound = float(np.hypot(*v_max)) + slack
    a_slack = g + slack  # a bounce's step may hold up to a frame of gravity more
    steps = np.diff(p, axis=0)  # [T-1, 2]
    step = np.linalg.norm(steps, axis=1)  # [T-1]
    d2 = steps[1:] - steps[:-1]  # [T-2, 2]
    n = len(d2)
    lo = np.tile([-mu, 0.0], (n, 1)) - slack
    hi = np.tile([mu, g], (n, 1)) + slack
    half = halves[i]
    x, y = p[:, 0], p[:, 1]
    if kind in ("fall", "throw"):  # the floor pushes up
        level, unsupported = floor_level(y, h, half, g, tol, x, picture)  # the bottom edge, or drawn higher
        # Where the track turns up twice or more at one lowest point on that floor, the floor is
        # no lower: a size read a pixel small (a shaded sphere's limb, motion blur through the
        # bounce) put the floor out of a bounce's reach and called it a kick. Not where the turns
        # are above it by more than such a misreading (bounces on nothing drawn).
        turn = turning_level(y, tol)
        if turn is not None and turn >= level - misread_px(half, tol):
            level = min(level, turn)
        lo[_contact_possible(level - y, steps[:, 1], a_slack), 1] = -np.inf
    if kind != "static":  # the walls push inwards
        hi[_contact_possible(x - half + 0.5, -steps[:, 0], a_slack), 0] = np.inf
        lo[_contact_possible((w - 0.5) - (x + half), steps[:, 0], a_slack), 0] = -np.inf
    if kind == "collide":  # the other body pushes away from itself
        for j, q in enumerate(pos):
            if j == i:
                continue
            gap = np.abs(x - q[:, 0]) - half - halves[j]  # [T] px between facing edges
            touch = _contact_possible(gap, -np.diff(gap), a_slack)
            # ... and around their closest approach, whatever the (codec-blurred) gaps say.
            if np.isfinite(gap).any():
                with np.errstate(invalid="ignore"):
                    touch |= gap[1:-1] <= np.nanmin(gap) + tol.jump_px + tol.contact_px
            # Which side the other body is on: bodies on one line never pass each other, so
            # where either is unseen, the side it is on in the frames where both are seen.
            with np.errstate(invalid="ignore"):
                left = q[:, 0] < x
            both = np.isfinite(q[:, 0]) & np.isfinite(x)
            if both.any():
                left = np.where(both, left, np.mean(left[both]) >= 0.5)
            other_left = left[1:-1]
            hi[touch & other_left, 0] = np.inf
            lo[touch & ~other_left, 0] = -np.inf
    over = np.fmax(d2 - hi, lo - d2).max(1)  # > 0: an unexplained velocity change, px / frame^2
    over = np.where(np.isfinite(d2).all(1) & ~np.isinf(over), over, np.nan)
    ratio = step / step_bound
    # A collision can send a body off faster than it came: across a gap it gets the kind's bound.
    v_cap = v_max if kind == "collide" else None
    gaps = _gap_ratios(p, half, hw, step_bound, np.array([mu, g]), slack, v_cap)
    return np.where(np.isfinite(gaps), gaps, ratio), over


def _gap_ratios(p, half, hw, step_bound, acc, slack, v_cap) -> np.ndarray:
    """[T-1]: at the step out of sighting b, before a run of unseen frames that ends at sighting
    a, how far the object moved across it against how far it could (<= 1 passes; NaN elsewhere).

    Per axis it could cover the gap's k = a - b frames at the larger of its speeds just before
    and just after (a wall's or the floor's bounce turns a speed, never raises it), plus what
    `acc` (gravity down, friction along x; px / frame^2) adds over k frames, plus `slack`; and
    never more than k steps of the kind's top speed. Runs next to a frame edge are skipped: an
    object may leave the picture and come back elsewhere (permanence's frames out of view)."""
    h, w = hw
    out = np.full(len(p) - 1, np.nan)
    seen = np.isfinite(p).all(1)
    idx = np.nonzero(seen)[0]
    for b, a in zip(idx[:-1], idx[1:]):
        k = int(a - b)
        if k < 2:
            continue
        v = [np.abs(p[i] - p[j]) for i, j in ((b, b - 1), (a + 1, a)) if 0 <= min(i, j) and
             max(i, j) < len(p) and seen[i] and seen[j]]
        speed = np.max(v, axis=0) if v else np.full(2, step_bound)
        reach = max(float(np.hypot(*speed)), 1.0) + half + 1.0
        if any(min(q[0], w - 1 - q[0], q[1], h - 1 - q[1]) <= reach for q in (p[b], p[a])):
            continue
        if v_cap is not None:
            speed = np.maximum(speed, v_cap)
        allowed = k * speed + 0.5 * acc * k * k + slack
        d = np.abs(p[a] - p[b])
        out[b] = max(float(np.max(d / allowed)), float(np.hypot(*d)) / (k * step_bound))
    return out


def without_one_jump(tracks, kind, fps, hw, n_frames, tol, picture=None) -> list[ObjectTrack] | None:
    """The tracks with each object's single jump taken out, when that is all that breaks
    no_teleport; None when no_teleport passes, is undecided, or fails for more than one jump.

    A jump belongs to no_teleport: the other laws judge the motion around it, so that a teleport
    does not also fail the acceleration, friction, rest or momentum laws of a motion that is
    lawful on either side of it (as they would, seeing a parabola, a slide or a rest broken in
    two). Taking out a jump in step s shifts the frames after it by that step's excess over what
    its neighbours predict: their mean, or the continuation of the two steps before it or after
    it (exact for a parabola, a uniform slide and a rest, whose steps change linearly; one side
    is enough where a bounce sits on the other). The step must have velocity changes into it and
    out of it in opposite directions, at least one unexplained: a bounce, even one that gains
    energy, turns the velocity one way only, and is no jump. The take-out counts only if
    no_teleport then passes for every object: a second jump, a shuffle or an erratic track never
    do, and the other laws see them as they are."""
    if not all(_enough(t, tol) for t in tracks):
        return None
    pos = [_positions(t) for t in tracks]
    halves = [_half_extent(t) for t in tracks]

    def check(i, p) -> tuple[np.ndarray, np.ndarray]:
        return _unexplained(i, p, halves, kind, fps, hw, n_frames, tol, picture)

    def passes(i, p) -> bool:
        step, kick = _worst(*check(i, p))
        return step <= 1.0 and kick <= 0.0

    broken = [i for i in range(len(pos)) if not passes(i, pos)]
    if not broken:
        return None
    fixed = list(pos)
    for i in broken:
        fixed = _take_out_jump(i, fixed, check, passes)
        if fixed is None:
            return None
    return [replace(t, centroid=np.where(np.isfinite(p), p, t.centroid)) for t, p in zip(tracks, fixed)]


def _take_out_jump(i, pos, check, passes) -> list[np.ndarray] | None:
    """`pos` with object i's one jump taken out (see `without_one_jump`), or None."""
    _, kick = check(i, pos)
    st = np.diff(pos[i], axis=0)  # [T-1, 2]
    n = len(st)
    d2 = np.diff(st, axis=0)  # [T-2, 2]: the change from step s to s+1
    with np.errstate(invalid="ignore"):
        bad = kick > 0
        # A jump in step s is two velocity changes, into it and out of it, in opposite directions
        # (a bounce, even one that gains energy, turns the velocity one way only), at least one
        # of them unexplained; at the clip's ends only one is seen.
        there_and_back = np.einsum("sc,sc->s", d2[:-1], d2[1:]) < 0
        suspects = np.nonzero(np.r_[bad[:1], (bad[:-1] | bad[1:]) & there_and_back, bad[-1:]])[0]
    for s in suspects:
        guesses = []
        if 0 < s < n - 1:
            guesses.append(0.5 * (st[s - 1] + st[s + 1]))
        if s >= 2:
            guesses.append(2 * st[s - 1] - st[s - 2])
        if s <= n - 3:
            guesses.append(2 * st[s + 1] - st[s + 2])
        for g in guesses:
            excess = st[s] - g
            if not np.isfinite(excess).all():
                continue
            trial = list(pos)
            trial[i] = pos[i].copy()
            trial[i][s + 1:] -= excess
            if all(passes(j, trial) for j in range(len(pos))):
                return trial
    return None
