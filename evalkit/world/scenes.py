"""Drawing random scenes for a split.

`train` and `test` share one distribution (different random streams); `ood` scenes each
carry at least one factor held out of it: a held-out attribute or motion combination, or a
physical parameter outside the training range. `Scene.ood` says which.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.world.physics import simulate
from evalkit.world.spec import (
    BACKGROUNDS, COLORS, HELD_OUT_COLOR_SHAPE, HELD_OUT_KIND_BACKGROUND, HELD_OUT_KIND_SHAPE, KINDS,
    OOD_RANGES, SHAPES, SIZES, SPLITS, TRAIN_RANGES, ObjectSpec, Scene,
)

_MAX_OBJECTS = {"fall": 3, "throw": 1, "slide": 3, "collide": 2, "static": 3}
_MIN_OBJECTS = {"fall": 1, "throw": 1, "slide": 1, "collide": 2, "static": 1}
_KINDS_USING = {"gravity": ("fall", "throw"), "restitution": ("fall", "throw", "collide"),
                "friction": ("slide", "throw")}


def object_count_range(kind: str) -> tuple[int, int]:
    """(fewest, most) objects a scene of `kind` holds."""
    return _MIN_OBJECTS[kind], _MAX_OBJECTS[kind]


def held_out_reasons(kind: str, background: str, objects) -> list[str]:
    """The held-out combinations a scene contains (empty for an in-distribution scene)."""
    reasons = []
    for o in objects:
        if (o.color, o.shape) in HELD_OUT_COLOR_SHAPE:
            reasons.append(f"{o.color} {o.shape}")
        if (kind, o.shape) in HELD_OUT_KIND_SHAPE:
            reasons.append(f"{kind} {o.shape}")
    if (kind, background) in HELD_OUT_KIND_BACKGROUND:
        reasons.append(f"{kind} on {background}")
    colours = [o.color for o in objects]
    # the train split gives every object its own colour (_objects_attrs), so a prompt that repeats
    # one is outside it too (it was once accepted as part "id")
    reasons += [f"two {c} objects" for c in set(colours) if colours.count(c) > 1]
    return sorted(set(reasons))


def _pick(rng: np.random.Generator, options) -> str:
    return options[int(rng.integers(len(options)))]


def _objects_attrs(rng, n: int) -> list[tuple[str, str, str]]:
    """n (shape, colour, size) triples with distinct colours, so each object is findable by colour."""
    colors = list(rng.permutation(list(COLORS)))[:n]
    return [(_pick(rng, SHAPES), str(c), _pick(rng, list(SIZES))) for c in colors]


def _lanes(rng, n: int, sizes: list[float]) -> list[float]:
    """Centres of n equal lanes across [0, 1], jittered but keeping each object inside its lane."""
    width = 1.0 / n
    return [width * (k + 0.5) + rng.uniform(-1, 1) * max(0.0, (width - sizes[k]) / 2 - 0.02)
            for k in range(n)]


def _layout(rng, kind: str, attrs, gravity: float, duration: float) -> list[ObjectSpec]:
    sizes = [SIZES[a[2]] for a in attrs]
    n = len(attrs)
    if kind == "fall":
        xs = _lanes(rng, n, sizes)
        return [ObjectSpec(sh, c, sz, (xs[k], rng.uniform(sizes[k] / 2 + 0.03, 0.45)))
                for k, (sh, c, sz) in enumerate(attrs)]
    if kind == "throw":
        sh, c, sz = attrs[0]
        half = sizes[0] / 2
        left = rng.random() < 0.5
        x = rng.uniform(half + 0.03, 0.3)
        y = rng.uniform(0.45, 0.85 - half)
        vx = rng.uniform(0.35, 0.7)
        # Upward launch, capped so that the apex stays inside the frame.
        vy_max = math.sqrt(2 * gravity * max(y - half - 0.03, 0.0))
        vy = -rng.uniform(0.4, 1.0) * vy_max
        return [ObjectSpec(sh, c, sz, (x if left else 1 - x, y), (vx if left else -vx, vy))]
    if kind == "slide":
        ys = _lanes(rng, n, sizes)
        out = []
        for k, (sh, c, sz) in enumerate(attrs):
            half = sizes[k] / 2
            right = rng.random() < 0.5
            x = rng.uniform(half + 0.02, 0.35)
            x = x if right else 1 - x
            out.append(ObjectSpec(sh, c, sz, (x, ys[k]), (rng.uniform(0.25, 0.6) * (1 if right else -1), 0.0)))
        return out
    if kind == "collide":
        y = rng.uniform(0.3, 0.7)
        (sa, ca, za), (sb, cb, zb) = attrs
        xa = rng.uniform(sizes[0] / 2 + 0.03, 0.3)
        xb = rng.uniform(0.7, 1 - sizes[1] / 2 - 0.03)
        # The caption promises a collision: time it inside the clip, then share the closing
        # speed between the two bodies (the right one may be at rest).
        gap = xb - xa - (sizes[0] + sizes[1]) / 2
        closing = gap / (rng.uniform(0.25, 0.6) * duration)
        share = rng.uniform(0.4, 1.0)
        va, vb = share * closing, -(1 - share) * closing
        return [ObjectSpec(sa, ca, za, (xa, y), (va, 0.0)), ObjectSpec(sb, cb, zb, (xb, y), (vb, 0.0))]

    # static: objects on a jittered grid of lanes so that they never overlap
    xs = _lanes(rng, n, sizes)
    return [ObjectSpec(sh, c, sz, (xs[k], rng.uniform(sizes[k] / 2 + 0.05, 1 - sizes[k] / 2 - 0.05)))
            for k, (sh, c, sz) in enumerate(attrs)]


def _fit_slide_speed(o: ObjectSpec, friction: float) -> ObjectSpec:
    """Scale a slide's launch speed so that it stops before the wall it moves towards."""
    half = o.size / 2
    room = (1 - half - o.pos[0]) if o.vel[0] > 0 else (o.pos[0] - half)
    v_max = 0.9 * math.sqrt(2 * friction * max(room, 0.0))
    vx = math.copysign(min(abs(o.vel[0]), v_max), o.vel[0])
    return ObjectSpec(o.shape, o.color, o.size_name, o.pos, (vx, 0.0))


def _collision_observable(scene: Scene, duration: float) -> bool:
    """True when the pair collides and no wall is touched until a quarter clip later, so that
    momentum before and after the collision can be seen in the frames."""
    segs = simulate(scene, duration)
    events = [s.t0 for s in segs[0][1:]]  # every event starts a new segment for both bodies
    if not events:
        return False
    walls = [s.t0 for o, obj_segs in zip(scene.objects, segs) for s in obj_segs[1:]
             if min(abs(s.x - o.size / 2), abs(s.x - 1 + o.size / 2)) < 1e-9]
    return events[0] < 0.7 * duration and all(t > events[0] + 0.25 * duration for t in walls)


def _build(rng, kind, background, attrs, params, split, reasons, duration) -> Scene | None:
    """Lay out a scene of these attributes; None when a collision would not be observable."""
    g = params["gravity"] if kind in ("fall", "throw") else 0.0
    objects = _layout(rng, kind, attrs, g if g else 1.0, duration)
    if kind == "slide":
        objects = [_fit_slide_speed(o, params["friction"]) for o in objects]
    scene = Scene(
        kind=kind, background=background, objects=tuple(objects), gravity=g,
        restitution=params["restitution"] if kind in ("fall", "throw", "collide") else 0.0,
        friction=params["friction"] if kind in ("slide", "throw") else 0.0,
        split=split, ood=tuple(reasons) if split == "ood" else (),
    )
    if kind == "collide" and not _collision_observable(scene, duration):
        return None
    return scene


def scene_for(rng: np.random.Generator, kind: str, background: str, attrs, duration: float = 2.0) -> Scene:
    """A scene with the given kind, background and (shape, colour, size_name) objects, laid out
    and given physical parameters at random from the training ranges (for prompts)."""
    if kind not in KINDS or background not in BACKGROUNDS:
        raise ValueError(f"unknown kind {kind!r} or background {background!r}")
    if not _MIN_OBJECTS[kind] <= len(attrs) <= _MAX_OBJECTS[kind]:
        raise ValueError(f"a {kind} scene holds {_MIN_OBJECTS[kind]} to {_MAX_OBJECTS[kind]} objects, "
                         f"got {len(attrs)}")
    attrs = [tuple(a) for a in attrs]
    reasons = held_out_reasons(kind, background, [ObjectSpec(*a, (0, 0)) for a in attrs])
    for _ in range(1000):
        params = {name: float(rng.uniform(r.low, r.high)) for name, r in TRAIN_RANGES.items()}
        scene = _build(rng, kind, background, attrs, params, "ood" if reasons else "test", reasons,
                       duration)
        if scene is not None:
            return scene
    raise RuntimeError(f"could not lay out a {kind} scene")


def sample_scene(rng: np.random.Generator, split: str = "train", duration: float = 2.0) -> Scene:
    """Draw one scene of `split` for a clip of `duration` seconds; deterministic for the
    generator's state."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    ood_physics = None
    if split == "ood" and rng.random() < 0.5:
        ood_physics = _pick(rng, list(OOD_RANGES))
    # The kind first, uniformly among those the out-of-range parameter (if any) acts on, so that
    # rejection below (held-out combinations, unobservable collisions) does not skew the kinds.
    kinds = [k for k in KINDS if ood_physics is None or k in _KINDS_USING[ood_physics]]
    kind = _pick(rng, kinds)
    for _ in range(1000):
        background = _pick(rng, BACKGROUNDS)
        n = int(rng.integers(_MIN_OBJECTS[kind], _MAX_OBJECTS[kind] + 1))
        attrs = _objects_attrs(rng, n)
        reasons = held_out_reasons(kind, background, [ObjectSpec(*a, (0, 0)) for a in attrs])
        # train/test never hold a held-out combination; ood holds one unless physics is its factor.
        if split != "ood" and reasons:
            continue
        if split == "ood" and ood_physics is None and not reasons:
            continue
        if split == "ood" and ood_physics is not None and reasons:
            continue
        params = {name: float(rng.uniform(r.low, r.high)) for name, r in TRAIN_RANGES.items()}
        if ood_physics is not None:
            r = OOD_RANGES[ood_physics]
            params[ood_physics] = float(rng.uniform(r.low, r.high))
            reasons = [f"{ood_physics} {params[ood_physics]:.2f} outside train range "
                       f"[{TRAIN_RANGES[ood_physics].low}, {TRAIN_RANGES[ood_physics].high}]"]
        scene = _build(rng, kind, background, attrs, params, split, reasons, duration)
        if scene is not None:
            return scene
    raise RuntimeError("could not draw a scene; the split rules exclude everything")
