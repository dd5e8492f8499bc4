"""The laws of the world's scenes, tested on tracked objects: the entry point.

`physics_laws(tracks, kind, fps, frame_hw)` returns {law: True | False | None}; see
`evalkit.metrics.physics` for the table of laws and how a clip is scored. This module holds the
laws every kind has (permanence, constant size and colour) and runs them with no_teleport
(`physics_jumps`) and the kind's motion laws (`physics_motion`; at_rest in `physics_camera`);
the world's limits and the tolerances, in pixels and frames, are in `physics_limits`
(re-exported here).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from evalkit.metrics.physics_jumps import law_no_teleport, without_one_jump
from evalkit.metrics.physics_limits import DEFAULT_TOLERANCES, PhysicsTolerances, _enough, _half_extent
from evalkit.metrics.physics_limits import (  # noqa: F401  (re-exported)
    COLLIDE_GAP_MAX, COLLIDE_MIN_TIME, E_MAX, E_MIN, G_MAX, MU_MAX, V_SLIDE_MAX, V_THROW_X_MAX, max_speed,
)
from evalkit.metrics.physics_camera import law_at_rest
from evalkit.metrics.physics_motion import law_fall, law_friction_slows, law_momentum
from evalkit.metrics.tracking_objects import (
    ObjectTrack, normalise_objects,
)
from evalkit.world.spec import KINDS

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


# ------------------------------------------------------------------------------------------------
# prompt / probe spec


def probe_spec(prompt_or_spec) -> dict:
    """{"kind", "objects": [(shape, colour, size_name)]} from a world prompt, a parse_caption-like
    dict, or a suite's probe entry. A prompt outside the world's grammar is a ValueError."""
    from evalkit.world.captions import caption_problem, parse_caption

    if isinstance(prompt_or_spec, str):
        parsed = parse_caption(prompt_or_spec)
        if parsed is None:
            raise ValueError(f"not a world prompt, so no physics probe: {prompt_or_spec!r}")
        return {"kind": parsed["kind"], "objects": normalise_objects(parsed["objects"])}
    if isinstance(prompt_or_spec, dict) and "kind" in prompt_or_spec and "objects" in prompt_or_spec:
        kind = prompt_or_spec["kind"]
        if kind not in KINDS:
            raise ValueError(f"unknown scene kind {kind!r}; choose one of {', '.join(KINDS)}")
        objects = normalise_objects(prompt_or_spec["objects"])
        problem = caption_problem({"kind": kind, "objects": objects})
        if problem is not None:  # a probe of a scene the world never draws: its laws would not apply
            raise ValueError(problem)
        return {"kind": kind, "objects": objects}
    raise ValueError(f"expected a world prompt or a probe spec {{kind, objects}}, got {prompt_or_spec!r}")


# ------------------------------------------------------------------------------------------------
# the laws every kind has (positions in px, time in frames)


# An object under 2 px across (4 px^2) is below what the tracker follows through a codec: the
# world's own small objects at 8-16 px failed permanence, so the ceiling read 0.2-0.7 (session 33)
MIN_TRACKABLE_AREA = 4.0


def law_permanence(tracks, tol, frame_hw: tuple[int, int] | None = None) -> tuple[bool | None, dict]:
    """Each object is seen in `min_presence` of the frames: found as itself, or followed through
    a change of colour or size (which constant_colour and constant_size judge, not this law).
    The frames where it is out of the picture (unseen at the clip's start or end, or between two
    sightings, next to a frame edge it touches: it entered or left the frame) do not count:
    another tool's camera need not keep it in view. A disappearance does, whatever the clip's
    length: 2 or more frames in a row mid-clip in which no blob of its colour is the object
    (none, or the tracker's pick off its size or path: `_not_itself`), away from the edges (the 10% tolerance is for a tracker's scattered single misses, and a 3-frame vanish
    in a 32-frame clip passed it).
    None (not testable) where an object is expected smaller than MIN_TRACKABLE_AREA."""
    pres, off, vanished = [], 0, 0
    for t in tracks:
        out_of_view, gaps = _unseen_runs(t, frame_hw)
        counted = ~out_of_view
        pres.append(float(t.seen[counted].mean()) if counted.any() else 0.0)
        off += int(out_of_view.sum())
        vanished += gaps
    info = {"presence": pres}
    if off:
        info["frames_out_of_view"] = off
    if vanished:
        info["vanishings"] = vanished
    if any(t.expected_area < MIN_TRACKABLE_AREA for t in tracks):
        return None, {**info, "untestable": f"an object under {MIN_TRACKABLE_AREA:g} px^2 at this size"}
    return vanished == 0 and all(p >= tol.min_presence for p in pres), info


def _unseen_runs(t: ObjectTrack, frame_hw) -> tuple[np.ndarray, int]:
    """(bool [T]: frames where the object is out of view, the number of vanishings): a run of
    unseen frames is out of view when each sighting bounding it is at a frame edge it moves
    through (its edge within a step of it, plus 1 px, moving out before the run, in after it: an
    object resting on the floor, the world's bottom edge, has not left the frame), and it is a
    vanishing when it is mid-clip and not so, with 2 or more frames in a row that hold no blob of
    the object's colour that can be the object (`_not_itself`)."""
    seen = t.seen
    n = len(seen)
    out = np.zeros(n, bool)
    if not seen.any():
        return out, 0
    from evalkit.metrics.physics_limits import _half_extent

    half = _half_extent(t)
    p = t.centroid

    def through_edge(i: int, j: int | None, leaving: bool, reach: bool = True) -> bool:
        """Sighting i, next to the run, is at an edge and moving out of (into) the frame; j: the
        sighting on its other side, whose step to i gives the velocity; without `reach`, it must
        touch the edge already (mid-clip: a world object falling fast at the floor, the bottom
        edge, and vanishing there has not left the frame)."""
        if frame_hw is None or j is None:
            return False
        h, w = frame_hw
        v = (p[i] - p[j]) if leaving else (p[j] - p[i])  # px / frame, out of the frame is +
        sign = 1.0 if leaving else -1.0
        for room, out_speed in ((p[i, 0] + 0.5, -sign * v[0]), (w - 0.5 - p[i, 0], sign * v[0]),
                                (p[i, 1] + 0.5, -sign * v[1]), (h - 0.5 - p[i, 1], sign * v[1])):
            if out_speed > 0.5 and room - half <= (out_speed if reach else 0.0) + 1.0:
                return True
        return False

    vanished = 0
    runs = np.split(np.arange(n), np.nonzero(np.diff(seen.astype(np.int8)))[0] + 1)
    for r in runs:
        if seen[r[0]]:
            continue
        b, a = r[0] - 1, r[-1] + 1
        ends = b < 0 or a >= n  # the clip starts or ends with the object out of view
        left = b < 0 or through_edge(b, b - 1 if b >= 1 and seen[b - 1] else None, True, ends)
        back = a >= n or through_edge(a, a + 1 if a + 1 < n and seen[a + 1] else None, False, ends)
        if left and back:
            out[r] = True
        elif b >= 0 and a < n and len(r) >= 2:
            absent = _not_itself(t, r, b, a, half)
            if np.any(absent[:-1] & absent[1:]):
                vanished += 1
    return out, vanished


def _not_itself(t: ObjectTrack, r: np.ndarray, b: int, a: int, half: float) -> np.ndarray:
    """bool [len(r)]: frames of the unseen run r (between sightings b and a) in which no blob of
    the object's colour is the object itself: none at all, or the tracker's pick is under half the
    track's median area, or farther from the straight path between the two sightings than the
    object's size plus their steps (a 5 px speck of the same colour elsewhere in the frame once hid
    a 3-frame vanish)."""
    area = t.area[r]
    ref = float(np.median(t.area[t.seen])) if t.seen.any() else t.expected_area
    frac = (r - b)[:, None] / float(a - b)
    path = t.centroid[b] + frac * (t.centroid[a] - t.centroid[b])
    steps = [np.hypot(*(t.centroid[i] - t.centroid[j])) for i, j in ((b, b - 1), (a, a + 1))
             if 0 <= j < len(t.seen) and t.seen[j]]
    reach = 2.0 * half + (a - b) * max(steps, default=2.0 * half) + 2.0
    with np.errstate(invalid="ignore"):
        off_path = np.hypot(*(t.centroid[r] - path).T) > reach
        return np.isnan(area) | (area < 0.5 * ref) | off_path


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
    worst, worst_mass = 0.0, 0.0
    for t in tracks:
        sel = t.blob | t.seen
        a = t.area[sel]
        if len(a) < max(4, tol.min_evidence * len(t.blob)):
            return None, {}
        allowed = tol.size_log + tol.size_edge * 4.0 / max(2 * _half_extent(t), 1e-6)
        by_mass = size_change(a) / allowed
        # The chroma mass also changes with the light (a disc dimmed to half has half the mass):
        # a size change must show in the blob's spatial extent too (its height x width, so that
        # growth along one axis shows). The extent excuses a mass change only where it did not
        # change itself; motion blur, which lengthens the extent, keeps the mass.
        by_box = by_mass
        if t.extent is not None and np.isfinite(t.extent[sel]).all():
            by_box = size_change(np.square(t.extent[sel])) / allowed
        worst_mass = max(worst_mass, by_mass)
        worst = max(worst, min(by_mass, by_box))
    return worst <= 1.0, {"size_excess": worst, "mass_change_excess": worst_mass}


def law_constant_colour(tracks, tol) -> tuple[bool | None, dict]:
    """Each object keeps its prompted colour: in every frame where a coloured blob sits at the
    object's place (found or not, so that an object that turns another colour is still looked
    at), the blob's hue is nearest to the prompted colour among the world's palette, and within
    `hue_deg` of it. The palette's hues are 22 to 73 degrees apart; H.264 at CRF 30 turns a
    4-pixel object's hue by up to ~20 degrees (its chroma is a few quantised coefficients), so
    the test is the colour class with a generous margin, not a few degrees."""
    from evalkit.metrics.tracking_colour import palette_hues

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


# ------------------------------------------------------------------------------------------------
# the probe


def physics_laws(tracks: Sequence[ObjectTrack], kind: str, fps: float, frame_hw: tuple[int, int],
                 n_frames: int, tol: PhysicsTolerances = DEFAULT_TOLERANCES,
                 picture=None) -> tuple[dict, dict]:
    """({law: True | False | None} for `kind`'s laws, {law: diagnostic numbers}). `picture`
    (`physics_picture.Picture` of the clip) shows the surfaces drawn behind the objects and the
    camera's motion; without it a bounce above the frame's bottom edge has no floor under it, and
    only the tracks show a shake or a zoom."""
    laws, info = {}, {}
    laws["permanence"], info["permanence"] = law_permanence(tracks, tol, frame_hw)
    laws["constant_size"], info["constant_size"] = law_constant_size(tracks, tol)
    laws["constant_colour"], info["constant_colour"] = law_constant_colour(tracks, tol)
    laws["no_teleport"], info["no_teleport"] = law_no_teleport(tracks, kind, fps, frame_hw, n_frames, tol, picture)
    if laws["no_teleport"] is False:  # one jump is no_teleport's alone: the motion laws look past it
        fixed = without_one_jump(tracks, kind, fps, frame_hw, n_frames, tol, picture)
        info["no_teleport"]["jump_taken_out"] = fixed is not None
        tracks = fixed or tracks
    if kind in ("fall", "throw"):
        res, info["fall"] = law_fall(tracks, float(fps), frame_hw, tol, picture)
        laws.update(res)
    elif kind == "slide":
        laws["friction_slows"], info["friction_slows"] = law_friction_slows(tracks, tol, float(fps), frame_hw, picture)
    elif kind == "collide":
        laws["momentum_conserved"], info["momentum_conserved"] = law_momentum(tracks, n_frames, frame_hw, tol)
    elif kind == "static":
        laws["at_rest"], info["at_rest"] = law_at_rest(tracks, tol, picture, frame_hw)
    return {k: (None if v is None else bool(v)) for k, v in laws.items()}, info


def score_laws(laws: dict) -> tuple[float, bool]:
    """(physics_score, physics_pass): the fraction of applicable laws passed, and all passed.
    With no applicable law (cannot happen while `permanence` is always decided) 0.0 and False."""
    decided = [v for v in laws.values() if v is not None]
    if not decided:
        return 0.0, False
    return sum(decided) / len(decided), all(decided)
