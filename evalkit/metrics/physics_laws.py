"""The laws of the world's scenes, tested on tracked objects, and their tolerances.

`physics_laws(tracks, kind, fps, frame_hw)` returns {law: True | False | None}; see
`evalkit.metrics.physics` for the table of laws and how a clip is scored. Tolerances are in
pixels and time in frames, derived from the world's own limits (spec.py, scenes.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from evalkit.metrics.tracking_objects import (
    ObjectTrack, normalise_objects,
)
from evalkit.world.spec import KINDS, OOD_RANGES, SIZES, TRAIN_RANGES

# ------------------------------------------------------------------------------------------------
# The world's limits (frame fractions and seconds), from spec.py and the layouts of scenes.py.

E_MIN = min(TRAIN_RANGES["restitution"].low, OOD_RANGES["restitution"].low)  # 0.5
G_MAX = max(TRAIN_RANGES["gravity"].high, OOD_RANGES["gravity"].high)  # 6.5 frame heights / s^2
E_MAX = max(TRAIN_RANGES["restitution"].high, OOD_RANGES["restitution"].high)  # 0.95
MU_MAX = max(TRAIN_RANGES["friction"].high, OOD_RANGES["friction"].high)  # 1.3 frame widths / s^2
V_SLIDE_MAX = 0.6  # scenes.py: slide launch speed <= 0.6 frame widths / s
V_THROW_X_MAX = 0.7  # scenes.py: throw horizontal launch speed <= 0.7
_EDGE = 0.03  # scenes.py: objects start at least 0.03 from the walls
COLLIDE_GAP_MAX = 1.0 - 2 * _EDGE - 2 * min(SIZES.values())  # widest gap closed in a collision
COLLIDE_MIN_TIME = 0.25  # scenes.py: the collision happens after >= 0.25 of the clip's duration

LAWS_BY_KIND: dict[str, tuple[str, ...]] = {
    "fall": ("constant_downward_acceleration", "bounce_heights_non_increasing"),
    "throw": ("constant_downward_acceleration", "bounce_heights_non_increasing"),
    "slide": ("friction_slows",),
    "collide": ("momentum_conserved",),
    "static": ("at_rest",),
}
COMMON_LAWS = ("permanence", "constant_size", "constant_colour", "no_teleport")
LAWS = COMMON_LAWS + ("constant_downward_acceleration", "bounce_heights_non_increasing",
                      "friction_slows", "momentum_conserved", "at_rest")


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
# prompt / probe spec


def probe_spec(prompt_or_spec) -> dict:
    """{"kind", "objects": [(shape, colour, size_name)]} from a world prompt, a parse_caption-like
    dict, or a suite's probe entry. A prompt outside the world's grammar is a ValueError."""
    from evalkit.world.captions import parse_caption

    if isinstance(prompt_or_spec, str):
        parsed = parse_caption(prompt_or_spec)
        if parsed is None:
            raise ValueError(f"not a world prompt, so no physics probe: {prompt_or_spec!r}")
        return {"kind": parsed["kind"], "objects": normalise_objects(parsed["objects"])}
    if isinstance(prompt_or_spec, dict) and "kind" in prompt_or_spec and "objects" in prompt_or_spec:
        kind = prompt_or_spec["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
        return {"kind": kind, "objects": normalise_objects(prompt_or_spec["objects"])}
    raise ValueError(f"expected a world prompt or a probe spec {{kind, objects}}, got {prompt_or_spec!r}")


# ------------------------------------------------------------------------------------------------
# law helpers (positions in px, time in frames)


def _half_extent(tr: ObjectTrack) -> float:
    """Half the object's extent in pixels, from its median measured area (expected if unknown)."""
    a = float(np.median(tr.area[tr.found])) if tr.found.any() else tr.expected_area
    if not np.isfinite(a) or a <= 0:
        a = tr.expected_area
    return 0.5 * (math.sqrt(4 * a / math.pi) if tr.shape == "ball" else math.sqrt(a))


def _enough(tr: ObjectTrack, tol: PhysicsTolerances) -> bool:
    seen = tr.seen
    return seen.size > 0 and seen.mean() >= tol.min_evidence and seen.sum() >= 3


def _positions(tr: ObjectTrack) -> np.ndarray:
    return np.where(tr.seen[:, None], tr.centroid, np.nan)  # [T, 2]


def law_permanence(tracks, tol) -> tuple[bool, dict]:
    """Each object is seen in `min_presence` of the frames: found as itself, or followed through
    a change of colour or size (which constant_colour and constant_size judge, not this law)."""
    pres = [float(t.seen.mean()) for t in tracks]
    return all(p >= tol.min_presence for p in pres), {"presence": pres}


def size_change(area: np.ndarray) -> float:
    """Largest |log| ratio of the median area over a run of frames to the median over the rest,
    over every prefix/suffix split and every window of a quarter of the frames (at least 3): a
    step, a trend or a lasting bulge all show, while a codec's per-frame area noise (a 4-pixel
    object under H.264 at CRF 30 varies by +-50% frame to frame) averages out in the medians."""
    a = np.asarray(area, np.float64)
    n = len(a)
    if n < 4 or not (a > 0).all():
        return math.inf if n >= 4 else 0.0
    la = np.log(a)
    idx = np.arange(n)
    m = max(2, n // 4)
    ks = np.arange(m, n - m + 1)[:, None]  # prefix / suffix splits
    w = max(3, n // 4)
    ss = np.arange(1, max(1, n - w))[:, None]  # interior windows
    inside = np.concatenate([idx[None, :] < ks, (idx[None, :] >= ss) & (idx[None, :] < ss + w)])
    if not len(inside):
        return 0.0
    return float(np.max(np.abs(_masked_median(la, inside) - _masked_median(la, ~inside))))


def _masked_median(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Median of x [n] over each row's selection mask [rows, n] (every row selects something)."""
    v = np.sort(np.where(mask, x[None, :], np.inf), axis=1)
    cnt = mask.sum(1)
    r = np.arange(len(v))
    return 0.5 * (v[r, (cnt - 1) // 2] + v[r, cnt // 2])


def law_constant_size(tracks, tol) -> tuple[bool | None, dict]:
    """Each object's area (over the frames with its blob, of any size, or where it is followed in
    another colour) does not change: the `size_change` statistic stays below `size_log` +
    `size_edge` x perimeter / area (boundary pixels make small objects' areas noisier; 4 / d for
    a disc or square of extent d px)."""
    worst = 0.0
    for t in tracks:
        a = t.area[t.blob | t.seen]
        if len(a) < max(4, tol.min_evidence * len(t.blob)):
            return None, {}
        allowed = tol.size_log + tol.size_edge * 4.0 / max(2 * _half_extent(t), 1e-6)
        worst = max(worst, size_change(a) / allowed)
    return worst <= 1.0, {"size_excess": worst}


def law_constant_colour(tracks, tol) -> tuple[bool | None, dict]:
    """Each object keeps its prompted colour: in every frame where a coloured blob sits at the
    object's place (found or not, so that an object that turns another colour is still looked
    at), the blob's hue is nearest to the prompted colour among the world's palette, and within
    `hue_deg` of it. The palette's hues are 22 to 73 degrees apart; H.264 at CRF 30 turns a
    4-pixel object's hue by up to ~20 degrees (its chroma is a few quantised coefficients), so
    the test is the colour class with a generous margin, not a few degrees."""
    from evalkit.metrics.tracking_objects import palette_hues

    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    hues = palette_hues()
    names = list(hues)
    ref = np.radians(np.array([hues[n] for n in names]))
    worst, wrong = 0.0, 0
    for t in tracks:
        hue = t.hue[np.isfinite(t.hue)]
        if len(hue) < 3:
            return None, {}
        rad = np.radians(hue)[:, None]
        dist = np.degrees(np.abs(np.angle(np.exp(1j * (rad - ref[None, :])))))  # [n, K]
        own = dist[:, names.index(t.color)]
        wrong += int(np.sum(np.argmin(dist, axis=1) != names.index(t.color)))
        worst = max(worst, float(own.max()))
    return wrong == 0 and worst <= tol.hue_deg, {"hue_dev_deg": worst, "frames_other_colour": wrong}


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


def law_no_teleport(tracks, kind, fps, hw, n_frames, tol) -> tuple[bool | None, dict]:
    """No step is longer than the world's top speed for the kind allows (`max_speed` x
    `speed_margin`, plus `jump_px`), and no velocity change (second difference) goes beyond what
    gravity and friction give (plus `jump_px`) unless a surface that pushes that way (the floor
    upwards in fall/throw, a wall inwards, the other body away from it in collide) can have been
    touched around that frame. A jump and its arrival are two opposite velocity changes, and no
    single surface explains both, so any jump larger than the slack is seen."""
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    pos = [_positions(t) for t in tracks]
    halves = [_half_extent(t) for t in tracks]
    worst_step, worst_kick = 0.0, -math.inf
    for i in range(len(pos)):
        step, kick = _worst(*_unexplained(i, pos, halves, kind, fps, hw, n_frames, tol))
        worst_step, worst_kick = max(worst_step, step), max(worst_kick, kick)
    passed = worst_step <= 1.0 and worst_kick <= 0.0
    return passed, {"step_ratio": worst_step, "kick_px": worst_kick}


def _worst(step: np.ndarray, kick: np.ndarray) -> tuple[float, float]:
    """(largest step ratio, 0 if none known; largest unexplained kick, -inf if none known)."""
    s = float(np.max(step[np.isfinite(step)])) if np.isfinite(step).any() else 0.0
    k = kick[np.isfinite(kick)]
    return s, float(k.max()) if k.size else -math.inf


def _unexplained(i, pos, halves, kind, fps, hw, n_frames, tol) -> tuple[np.ndarray, np.ndarray]:
    """Object i's steps over the kind's bound (ratio [T-1], <= 1 passes) and velocity changes
    beyond what gravity, friction and the surfaces it can touch explain (px / frame^2 [T-2], the
    change between steps s and s+1 at index s, <= 0 passes), NaN where unknown; `pos`: every
    object's positions [T, 2] (NaN where unseen), `halves`: their half extents."""
    h, w = hw
    scale = np.array([w, h], np.float64)
    v_max = max_speed(kind, n_frames / fps) * scale / fps * tol.speed_margin  # px / frame, per axis
    step_bound = float(np.hypot(*v_max)) + tol.jump_px
    # Free accelerations (px / frame^2): gravity acts down in fall/throw, friction along x.
    g = G_MAX * h / fps**2 if kind in ("fall", "throw") else 0.0
    mu = MU_MAX * w / fps**2 if kind in ("slide", "throw", "fall") else 0.0
    a_slack = g + tol.jump_px  # a bounce's step may hold up to a frame of gravity more
    p = pos[i]
    steps = np.diff(p, axis=0)  # [T-1, 2]
    step = np.linalg.norm(steps, axis=1)  # [T-1]
    d2 = steps[1:] - steps[:-1]  # [T-2, 2]
    n = len(d2)
    lo = np.tile([-mu, 0.0], (n, 1)) - tol.jump_px
    hi = np.tile([mu, g], (n, 1)) + tol.jump_px
    half = halves[i]
    x, y = p[:, 0], p[:, 1]
    if kind in ("fall", "throw"):  # the floor pushes up
        lo[_contact_possible((h - 0.5) - (y + half), steps[:, 1], a_slack), 1] = -np.inf
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
    return step / step_bound, over


def without_one_jump(tracks, kind, fps, hw, n_frames, tol) -> list[ObjectTrack] | None:
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
        return _unexplained(i, p, halves, kind, fps, hw, n_frames, tol)

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


def _neighbour_max(steps: np.ndarray, itself: bool = True) -> np.ndarray:
    """Per step (last axis), the largest of its two neighbours (and of itself with `itself`), NaN
    ignored (-inf if none)."""
    pad = np.full(steps.shape[:-1] + (1,), np.nan)
    nb = [np.concatenate([pad, steps[..., :-1]], -1), np.concatenate([steps[..., 1:], pad], -1)]
    nb = np.stack(nb + [steps] if itself else nb)
    return np.max(np.where(np.isfinite(nb), nb, -np.inf), axis=0)


def _flight_segments(y: np.ndarray, floor_geom: float, a_max: float,
                     tol: PhysicsTolerances) -> tuple[list[np.ndarray], float]:
    """Frame indices of each flight segment of a vertical track y [T] (px, NaN where missing).

    The floor is where the object's lowest point touches the frame's bottom (`floor_geom`), or the
    lowest observed position if that is lower. Frames within `contact_px` of the floor are ground
    contact (rest, or ambiguous about which side of a bounce they lie), never flight. A segment is
    split between frames t and t+1 wherever a bounce could hide in that step: the way down to the
    floor and back up, (floor - y_t) + (floor - y_t+1), is within the reach of one step (the
    largest neighbouring step plus a frame's worth of the largest gravity). Runs of tiny hops, each
    shorter than a frame, so fall apart into single frames. A reversal in mid-air is not a bounce
    and is not split: the acceleration test sees it.
    """
    ok = np.isfinite(y)
    floor = max(floor_geom, float(np.nanmax(y)))
    contact = ok & (y >= floor - tol.contact_px)
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


def law_fall(tracks, fps, hw, tol) -> tuple[dict, dict]:
    """constant_downward_acceleration and bounce_heights_non_increasing, over all objects."""
    if not all(_enough(t, tol) for t in tracks):
        return {"constant_downward_acceleration": None, "bounce_heights_non_increasing": None}, {}
    h = hw[0]
    a_max = G_MAX * h / fps**2  # px / frame^2
    acc_ok, heights_ok, info = True, None, {"accel": [], "heights": []}
    for tr in tracks:
        y = _positions(tr)[:, 1]
        segs, floor = _flight_segments(y, h - 0.5 - _half_extent(tr), a_max, tol)
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
        down = a_ref >= max(tol.accel_px, se_ref)
        agree = all(abs(a - a_ref) <= tol.accel_rel * abs(a_ref) + tol.accel_px + 2 * se
                    for a, se in zip(accs, ses))
        smooth = all(f[3] <= tol.flight_rms for f in fits if len(f[0]) >= 4)
        acc_ok = acc_ok and bool(down and agree and smooth)
        info["accel"].append({"a": accs.tolist(), "se": ses.tolist(), "a_ref": a_ref, "down": down,
                              "agree": agree, "rms": [f[3] for f in fits]})
        # Apex height of each arc (segments of >= 2 frames), with the acceleration fixed to a_ref.
        hs = []
        for sg in segs:
            if len(sg) < 2 or a_ref <= 0:
                continue
            tt = sg.astype(np.float64) - sg[0]
            c1, c0 = np.polyfit(tt, y[sg] - 0.5 * a_ref * tt * tt, 1)  # y = c0 + c1 t + a t^2 / 2
            tv = -c1 / a_ref
            apex = c0 - c1 * c1 / (2 * a_ref) if -1.0 <= tv <= tt[-1] + 1.0 else float(np.min(y[sg]))
            hs.append(floor - apex)
        info["heights"].append(hs)
        if len(hs) >= 2:
            grow = all(hs[i + 1] <= hs[i] * (1 + tol.height_rel) + tol.height_px for i in range(len(hs) - 1))
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


def law_friction_slows(tracks, tol) -> tuple[bool | None, dict]:
    """Each object slides (moves at least `slide_min_px`), along a path whose position is a concave
    non-decreasing function of time in its direction of motion (speed never rises) within
    `slide_rms` px, and ends slower than it starts by `slide_speed_px` px/frame or at rest."""
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
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
    """The two bodies meet (their facing edges come within `jump_px` + `contact_px`), and the total
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
    if gap[k] > tol.jump_px + tol.contact_px:  # they never met (or met while one was unseen)
        return (False if ok.all() else None), {"min_gap": float(gap[k])}
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


def law_at_rest(tracks, tol) -> tuple[bool | None, dict]:
    if not all(_enough(t, tol) for t in tracks):
        return None, {}
    worst = 0.0
    for tr in tracks:
        p = _positions(tr)
        med = np.nanmedian(p, axis=0)
        worst = max(worst, float(np.nanmax(np.linalg.norm(p - med, axis=1))))
    return worst <= tol.rest_px, {"max_dev": worst}


# ------------------------------------------------------------------------------------------------
# the probe


def physics_laws(tracks: Sequence[ObjectTrack], kind: str, fps: float, frame_hw: tuple[int, int],
                 n_frames: int, tol: PhysicsTolerances = DEFAULT_TOLERANCES) -> tuple[dict, dict]:
    """({law: True | False | None} for `kind`'s laws, {law: diagnostic numbers})."""
    laws, info = {}, {}
    laws["permanence"], info["permanence"] = law_permanence(tracks, tol)
    laws["constant_size"], info["constant_size"] = law_constant_size(tracks, tol)
    laws["constant_colour"], info["constant_colour"] = law_constant_colour(tracks, tol)
    laws["no_teleport"], info["no_teleport"] = law_no_teleport(tracks, kind, fps, frame_hw, n_frames, tol)
    if laws["no_teleport"] is False:  # one jump is no_teleport's alone: the motion laws look past it
        fixed = without_one_jump(tracks, kind, fps, frame_hw, n_frames, tol)
        info["no_teleport"]["jump_taken_out"] = fixed is not None
        tracks = fixed or tracks
    if kind in ("fall", "throw"):
        res, info["fall"] = law_fall(tracks, float(fps), frame_hw, tol)
        laws.update(res)
    elif kind == "slide":
        laws["friction_slows"], info["friction_slows"] = law_friction_slows(tracks, tol)
    elif kind == "collide":
        laws["momentum_conserved"], info["momentum_conserved"] = law_momentum(tracks, n_frames, frame_hw, tol)
    elif kind == "static":
        laws["at_rest"], info["at_rest"] = law_at_rest(tracks, tol)
    return {k: (None if v is None else bool(v)) for k, v in laws.items()}, info


def score_laws(laws: dict) -> tuple[float, bool]:
    """(physics_score, physics_pass): the fraction of applicable laws passed, and all passed.
    With no applicable law (cannot happen while `permanence` is always decided) 0.0 and False."""
    decided = [v for v in laws.values() if v is not None]
    if not decided:
        return 0.0, False
    return sum(decided) / len(decided), all(decided)
