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


def control_clip(clip, how: str, seed: int = 0):
    """A copy of world clip `clip` (from `evalkit.world.make_clip*`) with a violation, re-rendered
    exactly from its scene where the violation is physical. Which law each breaks:

    shuffle (frames in random order: acceleration, teleport, friction, momentum), freeze (the first
    frame held: the kind's motion law; a static scene stays valid), reverse (time reversed: bounce
    heights grow; curvature and momentum survive reversal), flip (upside down: acceleration is
    upward), vanish (one object absent from a third of the frames: permanence), teleport (one object
    jumps a quarter frame from mid-clip on: no_teleport), recolour (one object takes the next
    palette colour from mid-clip on: constant_colour), resize (one object one size class bigger
    from mid-clip on: constant_size), momentum (collide: the body carrying more momentum away
    leaves the contact 2x faster: momentum_conserved), noise (uniform noise frames: nothing is found, permanence fails).
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
        gap = (pos[1, :, 0] - pos[0, :, 0]) - (objs[0].size + objs[1].size) / 2
        k = int(np.argmin(gap))
        moved = [objs[b].area * abs(pos[b, -1, 0] - pos[b, k, 0]) for b in range(2)]
        j = int(np.argmax(moved))  # the body that carries more momentum away leaves twice as fast
        pos[j, k:, 0] = pos[j, k, 0] + 2.0 * (pos[j, k:, 0] - pos[j, k, 0])
        half = objs[j].size / 2
        pos[j, :, 0] = np.clip(pos[j, :, 0], half, 1 - half)
        frames = draw(scene, pos)
    return Clip(frames=frames, fps=fps, prompt=clip.prompt, meta=dict(clip.meta))
