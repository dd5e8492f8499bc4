"""Control clips for the physics probes: world clips with one law broken on purpose, re-rendered
exactly from their scene where the violation is physical (for tests and validity studies)."""

from __future__ import annotations

import numpy as np


CONTROLS = ("shuffle", "freeze", "reverse", "flip", "vanish", "teleport", "recolour", "resize",
            "momentum", "noise")


def teleport_positions(objs, pos: np.ndarray, i: int, start: int, magnitude: float, rng) -> np.ndarray:
    """Move object i of `pos` [N, T, 2] by `magnitude` (frame fraction) from frame `start` on, in
    place: up, down, left or right, the first direction (in random order) that keeps it inside
    the frame and clear of the others, so that it stays visible."""
    half = objs[i].size / 2
    m = float(magnitude)
    for k in rng.permutation(4):
        d = np.array([[m, 0.0], [-m, 0.0], [0.0, m], [0.0, -m]][k])
        moved = pos[i, start:] + d
        inside = ((moved >= half) & (moved <= 1 - half)).all()
        clear = all(np.abs(moved - pos[j, start:]).max(1).min() > half + objs[j].size / 2 + 0.02
                    for j in range(len(objs)) if j != i)
        if inside and clear:
            break
    pos[i, start:] = np.clip(moved, half, 1 - half)
    return pos


def momentum_kick_positions(scene, pos: np.ndarray, fps: float) -> np.ndarray:
    """`pos` [N, T, 2] of a collide scene with both bodies leaving their first contact with the
    same extra velocity, re-simulated exactly from there (walls and later contacts included).

    The extra velocity is 0.6 of one body's velocity change at the contact, in that body's own
    direction of push, so that each body is still pushed away from the other (its velocity change
    keeps its sign) and the bodies separate at the world restitution times their approach: every
    contact stays lawful for no_teleport, while the centre of mass, which a contact cannot move,
    changes velocity. Of the two bodies', the one that leaves the longer clear run after the
    contact (before the next wall or contact) is used, so that momentum_conserved has frames to
    see it in. Measured over 547 world collide scenes (test and ood), the centre of mass's velocity
    changes by 0.3 to 2.0 (median 1.0) times the bodies' mass-weighted mean speed before the
    contact; momentum_conserved allows 0.1 of it plus measurement errors."""
    import dataclasses

    from evalkit.world.physics import simulate

    t = pos.shape[1]
    segs = simulate(scene, t / fps)
    if len(segs[0]) < 2:
        raise ValueError("the bodies of this collide clip never touch")
    t_c = segs[0][1].t0  # the first event of a collide scene is the bodies' contact ...
    before, after = [s[0] for s in segs[:2]], [s[1] for s in segs[:2]]
    if abs((after[1].x - after[0].x) - (scene.objects[0].size + scene.objects[1].size) / 2) > 1e-9:
        raise ValueError("the first event of this collide clip is not the bodies' contact")  # ... checked
    dv = [a.vx - b.vx for a, b in zip(after, before)]  # left body pushed left, right body right
    objs = list(scene.objects)
    best = None
    for delta in (-0.6 * dv[0], -0.6 * dv[1]):
        kicked = tuple(dataclasses.replace(o, pos=(a.x, a.y), vel=(a.vx + delta, 0.0))
                       for o, a in zip(objs[:2], after)) + tuple(objs[2:])
        later = simulate(dataclasses.replace(scene, objects=kicked), t / fps - t_c + 1.0 / fps)
        clear = later[0][1].t0 if len(later[0]) > 1 else np.inf  # the next wall or contact
        if best is None or clear > best[0]:
            best = (clear, later)
    later = best[1]
    times = np.arange(t) / fps
    out = pos.copy()
    for b in range(2):
        tab = np.array([[s.t0, s.x, s.vx] for s in later[b]])
        for f in np.nonzero(times >= t_c)[0]:
            tau = times[f] - t_c
            k = np.searchsorted(tab[:, 0], tau, side="right") - 1
            out[b, f, 0] = tab[k, 1] + tab[k, 2] * (tau - tab[k, 0])
    return out


def control_clip(clip, how: str, seed: int = 0):
    """A copy of world clip `clip` (from `evalkit.world.make_clip*`) with a violation, re-rendered
    exactly from its scene where the violation is physical. Which law each breaks:

    shuffle (frames in random order: acceleration, teleport, friction, momentum), freeze (the first
    frame held: the kind's motion law; a static scene stays valid), reverse (time reversed: bounce
    heights grow; curvature and momentum survive reversal), flip (upside down: acceleration is
    upward), vanish (one object absent from a third of the frames: permanence), teleport (one object
    jumps a quarter frame from mid-clip on: no_teleport), recolour (one object takes the next
    palette colour from mid-clip on: constant_colour), resize (one object one size class bigger
    from mid-clip on: constant_size), momentum (collide: both bodies leave the contact with one
    extra velocity, each still pushed away and at a world restitution: momentum_conserved; see
    `momentum_kick_positions`), noise (uniform noise frames: nothing is found, permanence fails).
    """
    import dataclasses

    from evalkit.clip import Clip
    from evalkit.world.physics import trajectories
    from evalkit.world.render import render
    from evalkit.world.spec import COLORS, SIZES as _SIZES

    if how not in CONTROLS:
        raise ValueError(f"unknown control {how!r}; choose one of {', '.join(CONTROLS)}")
    rng = np.random.default_rng(seed)
    f = clip.frames
    t = len(f)
    if how == "noise":
        return clip.with_frames(rng.integers(0, 256, f.shape, dtype=np.uint8))
    if how == "shuffle":
        return clip.with_frames(np.ascontiguousarray(f[rng.permutation(t)]))
    if how == "freeze":
        return clip.with_frames(np.repeat(f[:1], t, axis=0))
    if how == "reverse":
        return clip.with_frames(np.ascontiguousarray(f[::-1]))
    if how == "flip":
        return clip.with_frames(np.ascontiguousarray(f[:, ::-1]))
    record, scene = clip.meta["record"], clip.meta["scene"]
    size, fps, noise = record["size"][0], clip.fps, float(record.get("noise", 0.0))
    pos = trajectories(scene, t, fps).pos.copy()  # [N, T, 2] frame fractions
    objs = list(scene.objects)
    i = int(rng.integers(len(objs)))
    mid = t // 2

    def draw(sc, p):
        return render(sc, p, size, np.random.default_rng([record["seed"], 1]), noise)

    frames = draw(scene, pos)
    if how == "vanish":
        keep = [k for k in range(len(objs)) if k != i]
        gone = draw(dataclasses.replace(scene, objects=tuple(objs[k] for k in keep)), pos[keep])
        start = int(rng.integers(1, t - t // 3))
        frames[start:start + t // 3] = gone[start:start + t // 3]
    elif how == "teleport":
        teleport_positions(objs, pos, i, mid, 0.25, rng)
        frames = draw(scene, pos)
    elif how in ("recolour", "resize"):
        o = objs[i]
        if how == "recolour":
            names = list(COLORS)
            used = {p.color for p in objs}
            new = next(c for c in names[names.index(o.color) + 1:] + names if c not in used)
            o2 = dataclasses.replace(o, color=new)
        else:
            names = list(_SIZES)
            o2 = dataclasses.replace(o, size_name=names[min(names.index(o.size_name) + 1, len(names) - 1)]
                                     if o.size_name != names[-1] else names[0])
        sc2 = dataclasses.replace(scene, objects=tuple(o2 if k == i else p for k, p in enumerate(objs)))
        frames[mid:] = draw(sc2, pos)[mid:]
    elif how == "momentum":
        if scene.kind != "collide":
            raise ValueError("the momentum control needs a collide clip")
        pos = momentum_kick_positions(scene, pos, fps)
        frames = draw(scene, pos)
    return Clip(frames=frames, fps=fps, prompt=clip.prompt, meta=dict(clip.meta))
