"""Physics probes read the picture behind the objects (session 35 red team): a bounce needs a
surface drawn under it (the frame's bottom edge, or a floor or table drawn higher), and a camera
that zooms or shakes moves the background with the objects, while an object moving or jittering
by itself does not. Exact physics rendered with numpy here (anti-aliased discs, uint8, no codec)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from evalkit.metrics.physics import physics_probe
from evalkit.world.spec import COLORS

S, T, FPS = 96, 32, 16.0
D = 0.18 * S  # the world's "medium" diameter at this size
C = (S - 1) / 2.0  # the frame's centre


def _backdrop(kind="flat", floor=None, line=False, table=None, seed=0):
    """float [S, S, 3]: flat dark grey, or a smooth texture (the world's "noise" kind); `floor`
    (px): a light floor drawn from there down, or only a 2 px line there with `line`; `table`
    (top, right end): a table top, 4 px thick, from the left edge."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    if kind == "flat":
        bg = np.full((S, S), 30.0)
    else:
        coarse = np.random.default_rng(seed).normal(0.0, 1.0, (S // 6 + 2, S // 6 + 2))
        bg = 110.0 + 25.0 * ndimage.zoom(coarse, S / (S // 6 + 2), order=1)[:S, :S]
    if floor is not None:
        cover = np.clip(yy + 0.5 - floor, 0, 1)
        if line:
            cover = np.clip(np.minimum(yy + 0.5 - floor, floor + 2 - (yy - 0.5)), 0, 1)
        bg = bg * (1 - cover) + 170.0 * cover
    if table is not None:
        top, right = table
        cover = np.clip(yy + 0.5 - top, 0, 1) * np.clip(top + 4 - (yy - 0.5), 0, 1) * np.clip(right - (xx - 0.5), 0, 1)
        bg = bg * (1 - cover) + 120.0 * cover
    return np.repeat(bg[..., None], 3, axis=2)


def _film(objects, bg, zoom=None, shake=0.0, jitter=None, seed=0):
    """uint8 [T, S, S, 3]: `objects` [(colour, xs [T], ys [T])] of diameter D over `bg`, filmed by
    a camera that zooms by zoom[t] about the frame's centre and shakes by `shake` px (sd; the
    background with them); `jitter` {object index: sd px} shakes that object alone."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    out = np.empty((len(objects[0][1]), S, S, 3), np.uint8)
    for t in range(len(out)):
        s = 1.0 if zoom is None else zoom[t]
        dx, dy = rng.normal(0.0, shake, 2) if shake else (0.0, 0.0)
        src = [C + (yy - dy - C) / s, C + (xx - dx - C) / s]
        im = np.stack([ndimage.map_coordinates(bg[..., k], src, order=1, mode="nearest") for k in range(3)], -1)
        for j, (colour, xs, ys) in enumerate(objects):
            ox, oy = rng.normal(0.0, jitter[j], 2) if jitter and j in jitter else (0.0, 0.0)
            x, y = C + s * (xs[t] + ox - C) + dx, C + s * (ys[t] + oy - C) + dy
            cover = np.clip(s * D / 2 + 0.5 - np.hypot(xx - x, yy - y), 0, 1)[..., None]
            im = im * (1 - cover) + np.array(COLORS[colour], np.float64) * cover
        out[t] = np.clip(np.rint(im), 0, 255)
    return out


def _drop(floor, n=T, y0=12.0, g=4.0 * S, e=0.7, rest_until=-1.0, x0=S / 2, vx=0.0):
    """(xs, ys): a ball's centre, dropped at y0 (or rolling along at y0 until its centre passes
    x = rest_until) onto a floor at height `floor` (its lower edge stops there)."""
    dt, x, y, v, xs, ys = 1e-4, x0, y0, 0.0, [], []
    for _frame in range(n):
        xs.append(x)
        ys.append(y)
        for _ in range(int(round(1 / FPS / dt))):
            x += vx * dt
            if x > rest_until:
                v += g * dt
                y += v * dt
                if y + D / 2 > floor and v > 0:
                    y, v = floor - D / 2, -e * v
    return np.array(xs), np.array(ys)


def _laws(frames, kind, colours=("red",)):
    spec = {"kind": kind, "objects": [("ball", c, "medium") for c in colours]}
    return physics_probe(frames, spec, FPS)["physics_laws"]


FALL = ("no_teleport", "constant_downward_acceleration")


def test_bounces_on_nothing_drawn_are_no_floor():
    """Before: two bounces at one level were a floor wherever they were (all laws passed)."""
    xs, ys = _drop(0.8 * S)
    for bg in (_backdrop(), _backdrop("texture")):  # nothing drawn: a texture is no floor
        laws = _laws(_film([("red", xs, ys)], bg), "fall")
        assert laws["no_teleport"] is False and laws["constant_downward_acceleration"] is False
    for bg in (_backdrop(floor=0.8 * S), _backdrop("texture", floor=0.8 * S), _backdrop(floor=0.8 * S, line=True)):
        laws = _laws(_film([("red", xs, ys)], bg), "fall")
        assert all(laws[k] is True for k in FALL + ("bounce_heights_non_increasing",)), laws
    # the world's floor, the frame's bottom edge, needs nothing drawn
    xs, ys = _drop(S - 0.5)
    assert all(_laws(_film([("red", xs, ys)], _backdrop()), "fall")[k] is True for k in FALL)


def test_a_bounce_below_a_floor_seen_in_perspective_is_on_the_floor():
    """Another tool's 3D render: the floor plane begins at a horizon line half-way up and shows no
    line where the ball lands on it. A bounce below the horizon is on the floor; the same bounce
    with the horizon drawn below it, or over a backdrop with no edge, is on nothing."""
    xs, ys = _drop(0.8 * S)
    for bg in (_backdrop(floor=0.5 * S), _backdrop("texture", floor=0.45 * S)):
        laws = _laws(_film([("red", xs, ys)], bg), "fall")
        assert all(laws[k] is True for k in FALL + ("bounce_heights_non_increasing",)), laws
    for seed in range(4):  # a texture's blobs make no horizon
        laws = _laws(_film([("red", xs, ys)], _backdrop("texture", seed=seed)), "fall")
        assert laws["no_teleport"] is False, seed


def test_a_floor_drawn_well_below_the_bounces_is_not_theirs():
    xs, ys = _drop(0.7 * S)
    laws = _laws(_film([("red", xs, ys)], _backdrop(floor=0.85 * S)), "fall")
    assert laws["no_teleport"] is False


def test_a_single_bounce_on_a_drawn_floor_is_tested():
    """Before: one bounce above the bottom edge made the fall laws None, floor drawn or not."""
    xs, ys = _drop(0.75 * S, n=18, e=0.6)  # one bounce, the clip ends on its way up and down
    laws = _laws(_film([("red", xs, ys)], _backdrop(floor=0.75 * S)), "fall")
    assert all(laws[k] is True for k in FALL), laws
    laws = _laws(_film([("red", xs, ys)], _backdrop()), "fall")
    assert laws["no_teleport"] is False and laws["constant_downward_acceleration"] is False


def test_a_slow_zoom_is_no_motion_but_an_object_moving_in_it_is():
    """Before: an 8% zoom failed at_rest on a static scene of three balls (2.6 px at 33 px from its centre)."""
    zoom = np.linspace(1.0, 1.08, T)
    still = [(c, np.full(T, x), np.full(T, y)) for c, x, y in
             (("red", 20.0, 30.0), ("blue", 50.0, 66.0), ("green", 78.0, 40.0))]
    colours = ("red", "blue", "green")
    assert _laws(_film(still, _backdrop(), zoom=zoom), "static", colours)["at_rest"] is True
    # ... found from the objects' sizes together (flat backdrop) or from the background's texture
    one = [("red", np.full(T, 22.0), np.full(T, 24.0))]
    assert _laws(_film(one, _backdrop("texture"), zoom=zoom), "static")["at_rest"] is True
    assert _laws(_film(one, _backdrop(), zoom=zoom), "static")["at_rest"] is True
    moving = list(still)
    moving[1] = ("blue", 50.0 + np.linspace(0.0, 4.0, T), np.full(T, 66.0))
    assert _laws(_film(moving, _backdrop(), zoom=zoom), "static", colours)["at_rest"] is False
    one_moving = [("red", 22.0 + np.linspace(0.0, 4.0, T), np.full(T, 24.0))]
    assert _laws(_film(one_moving, _backdrop("texture"), zoom=zoom), "static")["at_rest"] is False


def test_an_object_jittering_by_itself_is_no_camera_shake():
    """Before: one ball jittering over a still textured background passed at_rest as a shake, as
    did two balls each jittering by itself."""
    one = [("red", np.full(T, 40.0), np.full(T, 50.0))]
    laws = _laws(_film(one, _backdrop("texture"), jitter={0: 0.7}), "static")
    assert laws["at_rest"] is False
    laws = _laws(_film(one, _backdrop("texture"), shake=0.7), "static")  # the camera: all of it moves
    assert laws["at_rest"] is True and laws["no_teleport"] is True
    two = one + [("blue", np.full(T, 70.0), np.full(T, 30.0))]
    laws = _laws(_film(two, _backdrop(), jitter={0: 0.7, 1: 0.7}), "static", ("red", "blue"))
    assert laws["at_rest"] is False
    assert _laws(_film(two, _backdrop(), shake=0.7), "static", ("red", "blue"))["at_rest"] is True


def test_a_ball_rolling_off_a_table_falls_freely_from_its_edge():
    """Before: the roll along the table top was fitted as part of the fall's parabola."""
    top, edge = 0.45 * S, 0.4 * S
    xs, ys = _drop(S - 0.5, y0=top - D / 2, rest_until=edge, x0=0.15 * S, vx=0.2 * S, e=0.6)
    laws = _laws(_film([("red", xs, ys)], _backdrop(table=(top, edge))), "fall")
    assert all(laws[k] is True for k in FALL + ("bounce_heights_non_increasing",)), laws
    # the same path with no table drawn: it hovers, then falls
    assert _laws(_film([("red", xs, ys)], _backdrop()), "fall")["constant_downward_acceleration"] is False


def test_surface_edge_needs_a_sharp_horizontal_edge():
    from evalkit.metrics.physics_picture import surface_edge

    assert surface_edge(_backdrop(floor=60.0), 48.0, 8.0, 58.0, 63.0)
    assert surface_edge(_backdrop(floor=60.0, line=True), 48.0, 8.0, 58.0, 63.0)
    assert not surface_edge(_backdrop(floor=60.0), 48.0, 8.0, 40.0, 46.0)  # not at that level
    assert not surface_edge(_backdrop(), 48.0, 8.0, 58.0, 63.0)
    ramp = np.repeat(np.linspace(20.0, 230.0, S)[:, None, None], S, 1).repeat(3, 2)  # a steep gradient
    assert not surface_edge(ramp, 48.0, 8.0, 58.0, 63.0)
    for seed in range(8):  # a texture's blobs are no surface
        assert not surface_edge(_backdrop("texture", seed=seed), 48.0, 8.0, 58.0, 63.0)


def test_a_horizon_spans_the_frame_where_a_texture_edge_does_not():
    """Before: one sharp bend of a deep texture in the ball's column was taken for a horizon (2
    of 30 bounces on nothing and 2 of 60 in mid-air over a lower floor passed). A horizon must
    step at that level across the frame's width, in one direction."""
    from evalkit.metrics.physics_picture import horizon_edge, surface_edge

    yy = np.mgrid[0:S, 0:S][0].astype(np.float64)
    for seed in (12, 35, 37, 42):
        coarse = np.random.default_rng(seed).normal(0.0, 1.0, (S // 6 + 2, S // 6 + 2))
        tex = 110.0 + 40.0 * ndimage.zoom(coarse, S / (S // 6 + 2), order=1)[:S, :S]
        wall = np.repeat(tex[..., None], 3, 2)
        assert surface_edge(wall, 48.0, 8.0, 0.0, 76.0), seed  # the column bends sharply ...
        assert not horizon_edge(wall, 48.0, 8.0, 76.0), seed  # ... but no edge spans the frame
        floor = np.clip(yy + 0.5 - 0.45 * S, 0, 1)[..., None]  # a floor plane from 45% down
        assert horizon_edge(wall * (1 - floor) + 170.0 * floor, 48.0, 8.0, 76.0), seed
