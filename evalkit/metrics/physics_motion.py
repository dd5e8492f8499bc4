"""The motion laws of each scene kind, tested on tracked positions.

fall/throw: constant_downward_acceleration and bounce_heights_non_increasing (`law_fall`, on
the flight segments `physics_floor` cuts out); slide: friction_slows; collide:
momentum_conserved (static's at_rest is `physics_camera`'s). Positions are in px and time in
frames; each law is None where the tracks hold too little evidence.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from evalkit.metrics.physics_floor import _flight_segments, _neighbour_max, floor_level, supported_rests
from evalkit.metrics.physics_limits import (
    G_MAX, G_MIN, PhysicsTolerances, _enough, _half_extent, _positions, camera_jitter_px,
)


def _fit_parabola(t: np.ndarray, y: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares y = c0 + c1 (t - t0) + c2 (t - t0)^2 -> (acceleration 2 c2, its standard error
    per unit position sd, rms residual, coefficients)."""
    tt = t - t[0]
    a = np.stack([np.ones_like(tt), tt, tt * tt], 1).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    res = y - a @ coef
    cov = np.linalg.pinv(a.T @ a)
    se = 2.0 * math.sqrt(max(cov[2, 2], 0.0))
    return 2 * coef[2], se, float(np.sqrt(np.mean(res**2))), coef


# A fit's rms residual over white position noise of sd j is about j; this many j are allowed
# beside the fit's own tolerance (in quadrature).
JITTER_RMS_SDS = 2.0


def _shaken(tol: PhysicsTolerances, positions, picture=None) -> PhysicsTolerances:
    """`tol` with the fits' tolerances widened, in quadrature, by a shaking camera's jitter
    (`camera_jitter_px`; 0 for the world's own clips and for erratic tracks): at 0.7 px of shake
    correct falls failed flight_rms (0.6 px) and slides slide_rms (0.5 px)."""
    j = camera_jitter_px(positions, picture)
    if j <= 0:
        return tol
    return replace(tol, pos_sigma=math.hypot(tol.pos_sigma, j),
                   flight_rms=math.hypot(tol.flight_rms, JITTER_RMS_SDS * j),
                   slide_rms=math.hypot(tol.slide_rms, JITTER_RMS_SDS * j))


def law_fall(tracks, fps, hw, tol, picture=None) -> tuple[dict, dict]:
    """constant_downward_acceleration and bounce_heights_non_increasing, over all objects; the
    floor and the supports an object rests on are believed where `picture` shows them
    (`floor_level`, `supported_rests`)."""
    if not all(_enough(t, tol) for t in tracks):
        return {"constant_downward_acceleration": None, "bounce_heights_non_increasing": None}, {}
    h = hw[0]
    a_max, g_min = G_MAX * h / fps**2, G_MIN * h / fps**2  # px / frame^2
    tol = _shaken(tol, [_positions(t) for t in tracks], picture)
    acc_ok, heights_ok, info = True, None, {"accel": [], "heights": []}
    for tr in tracks:
        x, y = _positions(tr).T
        half = _half_extent(tr)
        level, unsupported = floor_level(y, h, half, a_max, tol, x, picture)
        if unsupported:
            info["unsupported_bounce"] = unsupported
        resting = supported_rests(y, x, half, max(level, float(np.nanmax(y))), tol, picture)
        segs, floor = _flight_segments(y, level, a_max, tol, resting)
        fits = [(sg, *_fit_parabola(sg.astype(np.float64), y[sg])) for sg in segs if len(sg) >= 3]
        if not fits:  # no flight seen: the prompted fall did not happen (or happened unseen)
            if not tr.seen.all():
                return {"constant_downward_acceleration": None, "bounce_heights_non_increasing": None}, info
            acc_ok = False
            info["accel"].append(None)
            continue
        accs = np.array([f[1] for f in fits])
        ses = np.array([f[2] for f in fits]) * tol.pos_sigma
        wts = 1.0 / ses**2
        a_ref = float(np.sum(wts * accs) / wts.sum())
        se_ref = float(1.0 / math.sqrt(wts.sum()))
        # The weakest gravity is G_MIN * h / fps^2 px / frame^2: 1.25 at 32 px and 8 fps, but 0.31 at
        # 16 fps, where the fixed 0.6 once failed every correct fall.
        down = a_ref >= max(min(tol.accel_px, tol.accel_down * g_min), se_ref)
        agree = all(abs(a - a_ref) <= tol.accel_rel * abs(a_ref) + tol.accel_px + 2 * se
                    for a, se in zip(accs, ses))
        smooth = all(f[3] <= tol.flight_rms for f in fits if len(f[0]) >= 4)
        acc_ok = acc_ok and bool(down and agree and smooth)
        info["accel"].append({"a": accs.tolist(), "se": ses.tolist(), "a_ref": a_ref, "down": down,
                              "agree": agree, "rms": [f[3] for f in fits]})
        # Apex height of each arc (segments of >= 2 frames), with the acceleration fixed to a_ref.
        hs, cut = [], []  # cut: the arc borders unseen frames, so its apex may be unseen
        for sg in segs:
            if len(sg) < 2 or a_ref <= 0:
                continue
            cut.append(any(0 <= k < len(y) and np.isnan(y[k]) for k in (sg[0] - 1, sg[-1] + 1)))
            tt = sg.astype(np.float64) - sg[0]
            c1, c0 = np.polyfit(tt, y[sg] - 0.5 * a_ref * tt * tt, 1)  # y = c0 + c1 t + a t^2 / 2
            tv = -c1 / a_ref
            apex = c0 - c1 * c1 / (2 * a_ref) if -1.0 <= tv <= tt[-1] + 1.0 else float(np.min(y[sg]))
            hs.append(floor - apex)
        info["heights"].append(hs)
        if len(hs) >= 2:
            # An arc cut by unseen frames (a vanishing: permanence's) may have its apex among them,
            # its height then read low: it bounds no later arc's height.
            grow = all(hs[i + 1] <= hs[i] * (1 + tol.height_rel) + tol.height_px
                       for i in range(len(hs) - 1) if not cut[i])
            heights_ok = grow if heights_ok is None else heights_ok and grow
    return {"constant_downward_acceleration": acc_ok, "bounce_heights_non_increasing": heights_ok}, info


def _concave_fit(t: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Least-squares fit of u(t) by a concave non-decreasing piecewise-linear function (knots at the
    frames): u = c + sum_k b_k min(t - t0, k), b >= 0 (NNLS). Returns (fit, first slope, last slope)."""
    from scipy.optimize import nnls

    tt = t - t[0]
    knots = tt[1:]  # each knot bends the line down at a frame
    basis = np.minimum(tt[:, None], knots[None, :])  # [n, K]
    a = np.concatenate([np.ones((len(t), 1)), -np.ones((len(t), 1)), basis], 1)
    coef, _ = nnls(a, u)
    fit = a @ coef
    b = coef[2:]
    return fit, float(b.sum()), float(b[-1]) if len(b) else 0.0


# The frame width and rate the slide tolerances were calibrated at: a speed of one frame width a
# second is 4 px a frame there.
_SLIDE_CALIBRATION_PX_PER_FRAME = 32 / 8.0


# A world slide over 3 frames slows by 0.2-0.3 px/frame, under what the law asks: 0 of 9 passed at
# 3 frames, 7 of 9 at 4, 9 of 9 from 5 (session 33): fewer frames are not testable
MIN_SLIDE_FRAMES = 5


def law_friction_slows(tracks, tol, fps: float = 8.0, hw=(32, 32), picture=None) -> tuple[bool | None, dict]:
    """Each object slides (moves at least `slide_min_px`), along a path whose position is a concave
    non-decreasing function of time in its direction of motion (speed never rises) within
    `slide_rms` px, and ends slower than it starts by `slide_speed_px` px/frame or at rest.

    The speed and distance floors hold in the world's own units (frame widths, seconds): they are
    scaled from their calibration at 32 px and 8 fps to the clip's width and rate (at 16 fps a
    slide's speed in px/frame halves, and "at rest under 0.3 px/frame" passed 8 of 14 slides at a
    constant speed, against 1 of 14 at 8 fps), never below a tenth of a pixel."""
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    if min(len(t.seen) for t in tracks) < MIN_SLIDE_FRAMES:  # too short to show the slowing
        return None, {"untestable": f"fewer than {MIN_SLIDE_FRAMES} frames"}
    scale = (hw[1] / fps) / _SLIDE_CALIBRATION_PX_PER_FRAME
    tol = replace(_shaken(tol, [_positions(t) for t in tracks], picture),
                  slide_speed_px=max(0.1 * tol.slide_speed_px, tol.slide_speed_px * scale),
                  slide_min_px=max(tol.slide_min_px, tol.slide_min_px * hw[1] / 32))
    ok, info = True, []
    for tr in tracks:
        x = _positions(tr)[:, 0]
        idx = np.nonzero(np.isfinite(x))[0]
        dist = float(abs(x[idx[-1]] - x[idx[0]]))
        if dist < tol.slide_min_px:  # it never slid (or slid while unseen: no evidence)
            if not tr.seen.all():
                return None, {"slide": info}
            ok = False
            info.append({"distance": dist})
            continue
        u = x[idx] * math.copysign(1.0, x[idx[-1]] - x[idx[0]])
        fit, v0, v1 = _concave_fit(idx.astype(np.float64), u)
        rms = float(np.sqrt(np.mean((u - fit) ** 2)))
        slows = v1 <= v0 - tol.slide_speed_px or v1 <= tol.slide_speed_px
        ok = ok and rms <= tol.slide_rms and bool(slows)
        info.append({"distance": dist, "rms": rms, "v_start": v0, "v_end": v1})
    return ok, {"slide": info}


def _robust_slope(t: np.ndarray, x: np.ndarray) -> float:
    """Theil-Sen slope: the median of pairwise slopes (a codec's repeated frame moves it little)."""
    i, j = np.triu_indices(len(t), 1)
    return float(np.median((x[j] - x[i]) / (t[j] - t[i])))


def law_momentum(tracks, n_frames, hw, tol) -> tuple[bool | None, dict]:
    """The two bodies meet (their facing edges come within `jump_px` + `contact_px`, plus a frame's
    closing speed, of each other), and the total
    horizontal momentum after the contact equals that before within `momentum_rel` of the sum of
    |m v| before.

    Total momentum is M times the velocity of the centre of mass, which moves smoothly through the
    contact: so the test compares the centre of mass's velocity (robust line fits) over the
    frames up to the closest approach with that over the frames from it on, until a body can
    reach a wall (a wall changes momentum). Masses are the median measured areas (one density).
    Using every frame, contact included, is what makes it work on 4-pixel objects under H.264.
    """
    if len(tracks) != 2 or not all(_enough(t, tol) for t in tracks):
        return None, {}
    w = hw[1]
    (ta, tb) = tracks
    if np.nanmean(ta.centroid[ta.found, 0]) > np.nanmean(tb.centroid[tb.found, 0]):
        ta, tb = tb, ta  # a is the left body
    pa, pb = _positions(ta)[:, 0], _positions(tb)[:, 0]
    ha, hb = _half_extent(ta), _half_extent(tb)
    ma, mb = float(np.nanmedian(ta.area[ta.found])), float(np.nanmedian(tb.area[tb.found]))
    gap = (pb - pa) - (ha + hb)  # [T] px between facing edges
    ok = np.isfinite(gap)
    if ok.sum() < 4:
        return None, {}
    k = int(np.nanargmin(np.where(ok, gap, np.nan)))
    # Frames sample the motion: bodies that touch between frames k and k +- 1 are seen at most a
    # frame's closing (or opening) apart. At 256 px and 8 fps that is several px, so a fixed 3 px
    # once called a fifth of the world's own collisions "never met".
    around = [gap[j] - gap[k] for j in (k - 1, k + 1) if 0 <= j < len(gap) and ok[j]]
    step = max([0.0, *around])
    if gap[k] > tol.jump_px + tol.contact_px + step:  # they never met (or met while one was unseen)
        return (False if ok.all() else None), {"min_gap": float(gap[k]), "step": float(step)}
    # A wall may be touched in step (f, f+1) when the way there and back fits in the step.
    room = np.stack([pa - ha + 0.5, (w - 0.5) - (pb + hb)])  # [2, T] distance to the outer walls
    steps = np.abs(np.diff(np.stack([pa, pb]), axis=1))  # [2, T-1]
    reach = _neighbour_max(steps) + 2 * tol.contact_px  # [2, T-1]
    wall_step = ((room[:, :-1] + room[:, 1:]) <= reach).any(0)  # [T-1]
    wall_step |= ~(np.isfinite(steps).all(0))  # unknown: treat as possible
    start = k
    while start > 0 and not wall_step[start - 1]:
        start -= 1
    end = k
    while end < len(gap) - 1 and not wall_step[end]:
        end += 1
    cm = (ma * pa + mb * pb) / (ma + mb)
    before = np.arange(start, k + 1)
    after = np.arange(k, end + 1)
    before, after = before[ok[before]], after[ok[after]]
    if len(before) < 3 or len(after) < 3:
        return None, {"contact": k}
    fb, fa = before.astype(np.float64), after.astype(np.float64)
    (v_before, se_b), (v_after, se_a) = _slope_se(fb, cm[before], tol), _slope_se(fa, cm[after], tol)
    va, vb = _robust_slope(fb, pa[before]), _robust_slope(fb, pb[before])
    dva, dvb = _robust_slope(fa, pa[after]) - va, _robust_slope(fa, pb[after]) - vb
    scale = (ma * abs(va) + mb * abs(vb)) / (ma + mb)
    if scale <= 0:
        return False, {"contact": k}
    # Allowed kink of the centre of mass: a base fraction, the slopes' statistical error, and what
    # an error of the measured masses makes of the velocity changes the contact really brings (the
    # mass error taken as the areas' robust relative scatter over the frames, at least 3%: a codec
    # that blurs a small object's area frame to frame biases its median too).
    dm = [max(0.03, 1.4826 * float(np.median(np.abs(a - np.median(a)))) / float(np.median(a)))
          for a in (ta.area[ta.found], tb.area[tb.found])]
    mass_term = (dm[0] * ma * abs(dva) + dm[1] * mb * abs(dvb)) / (ma + mb)
    allowed = tol.momentum_rel * scale + 2.0 * math.hypot(se_b, se_a) + mass_term
    err = abs(v_after - v_before)
    return err <= allowed, {"contact": k, "window": (int(start), int(end)), "v_cm_before": v_before,
                            "v_cm_after": v_after, "rel_err": err / scale, "allowed_rel": allowed / scale}


def _slope_se(t: np.ndarray, x: np.ndarray, tol: PhysicsTolerances) -> tuple[float, float]:
    """(Theil-Sen slope, its standard error from the robust scatter of the residuals, floored at
    `pos_floor` px)."""
    slope = _robust_slope(t, x)
    res = x - slope * t
    res -= np.median(res)
    sigma = max(1.4826 * float(np.median(np.abs(res))), tol.pos_floor)
    return slope, sigma / math.sqrt(float(np.sum((t - t.mean()) ** 2)))
