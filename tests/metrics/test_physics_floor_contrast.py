"""A drawn floor of low contrast still carries a ball's bounces, and at low frame rates the
floor must lie where the ball's fall and rise meet, not a frame's reach lower (session 36). Exact
physics rendered with numpy here (anti-aliased discs, uint8, no codec)."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics.physics import physics_probe
from evalkit.metrics.physics_floor import contact_depth, turns
from evalkit.metrics.physics_limits import DEFAULT_TOLERANCES
from evalkit.world.spec import COLORS

S = 96
D = 0.18 * S  # the world's "medium" diameter at this size
FALL = ("no_teleport", "constant_downward_acceleration", "bounce_heights_non_increasing")


def _drop(contact, fps, n=32, y0=14.0, g=3.2 * S, e=0.7):
    """A ball's centre heights [n], dropped from rest at y0, its lower edge bouncing at `contact`
    (exact contact times, sampled at fps)."""
    bottom, ys, t0, y, v = contact - D / 2, [], 0.0, y0, 0.0
    for k in range(n):
        t = k / fps
        while True:
            tc = (-v + np.sqrt(v * v + 2 * g * (bottom - y))) / g  # the next contact
            if t0 + tc > t:
                break
            t0, y, v = t0 + tc, bottom, -e * (v + g * tc)
        ys.append(y + v * (t - t0) + 0.5 * g * (t - t0) ** 2)
    return np.array(ys)


def _film(ys, wall, floor_rgb=None, floor=None):
    """uint8 [T, S, S, 3]: a red ball at the frame's middle column over a wall of colour `wall`
    (RGB, or a grey ramp [S] of levels down the frame), with a floor of `floor_rgb` from row
    `floor` (px) down, anti-aliased."""
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    wall = np.asarray(wall, np.float64)
    bg = np.repeat(wall[:, None, None], S, 1).repeat(3, 2) if wall.shape == (S,) else np.broadcast_to(wall, (S, S, 3))
    if floor is not None:
        cover = np.clip(yy + 0.5 - floor, 0, 1)[..., None]
        bg = bg * (1 - cover) + np.asarray(floor_rgb, np.float64) * cover
    out = np.empty((len(ys), S, S, 3), np.uint8)
    for t, y in enumerate(ys):
        cover = np.clip(D / 2 + 0.5 - np.hypot(xx - S / 2, yy - y), 0, 1)[..., None]
        out[t] = np.clip(np.rint(bg * (1 - cover) + np.array(COLORS["red"], np.float64) * cover), 0, 255)
    return out


def _laws(frames, fps):
    return physics_probe(frames, {"kind": "fall", "objects": [("ball", "red", "medium")]}, fps)["physics_laws"]


def test_a_floor_a_little_off_the_wall_carries_the_bounces():
    """Before: a floor had to stand about 30 grey levels off the wall (its bend, split over two
    anti-aliased rows, was under 25); these all failed no_teleport and the fall."""
    contact = 0.8 * S
    ys = _drop(contact, 16.0)
    for wall, floor_rgb in (((120, 120, 120), (130, 130, 130)),  # 10 levels lighter
                            ((140, 140, 140), (128, 128, 128)),  # 12 darker
                            (np.linspace(90.0, 125.0, S), (100, 100, 100)),  # a gradient wall over a floor 15 darker
                            ((98, 98, 122), (106, 110, 90))):  # bluish wall over a greenish floor, one luma
        laws = _laws(_film(ys, wall, floor_rgb, contact), 16.0)
        assert all(laws[k] is True for k in FALL), (wall, floor_rgb, laws)
    # ... and with nothing drawn the same bounces still stand on nothing
    laws = _laws(_film(ys, (120, 120, 120)), 16.0)
    assert laws["no_teleport"] is False and laws["constant_downward_acceleration"] is False


def test_at_8_fps_the_floor_is_where_fall_and_rise_meet():
    """The lowest sample of a bounce lies above the contact by up to a frame's travel; the fall
    and the rise, extrapolated, meet at the contact."""
    contact = 0.75 * S
    ys = _drop(contact, 8.0, n=24)
    rev = turns(ys, DEFAULT_TOLERANCES)
    a = 3.2 * S / 8.0 ** 2
    assert len(rev) >= 2
    for n in range(len(rev)):
        depth = contact_depth(ys, rev, n, a)
        assert depth is not None and abs(depth + D / 2 - contact) < 0.5, (n, depth)
    assert contact - (ys[rev].min() + D / 2) > 5.0  # a bounce's lowest sample alone is well above it
    # a floor at the contact passes, even at 15 grey levels from the wall ...
    laws = _laws(_film(ys, (110, 110, 110), (125, 125, 125), contact), 8.0)
    assert all(laws[k] is True for k in FALL), laws


def test_at_8_fps_a_floor_a_frame_lower_is_not_the_bounces():
    """Before: the floor could be anywhere within a step and two frames of the largest gravity
    below a bounce (at 8 fps 26 px on 96 px frames), so a ball bouncing on nothing 12 px above a
    drawn floor passed every law."""
    contact = 0.62 * S
    ys = _drop(contact, 8.0, n=24, y0=10.0)
    laws = _laws(_film(ys, (40, 40, 40), (160, 160, 160), contact + 12.0), 8.0)
    assert laws["no_teleport"] is False
    laws = _laws(_film(ys, (40, 40, 40), (160, 160, 160), contact), 8.0)  # the floor where it bounces
    assert all(laws[k] is True for k in FALL), laws


def test_step_edge_finds_low_steps_but_no_gradient_or_texture():
    from scipy import ndimage

    from evalkit.metrics.physics_picture import step_edge

    yy = np.mgrid[0:S, 0:S][0].astype(np.float64)

    def plate(grey):
        return np.repeat(grey[..., None], 3, 2)

    for floor in (60.0, 60.3, 60.5, 60.8):  # anti-aliased across two rows or not
        step = plate(120.0 + 10.0 * np.clip(yy + 0.5 - floor, 0, 1))
        assert step_edge(step, 48.0, 8.0, 58.0, 63.0), floor
        assert not step_edge(step, 48.0, 8.0, 40.0, 46.0)  # not at that level
    assert not step_edge(plate(np.full((S, S), 120.0)), 48.0, 8.0, 58.0, 63.0)
    assert not step_edge(plate(np.rint(20.0 + 2.2 * yy)), 48.0, 8.0, 58.0, 63.0)  # a steep ramp, quantised
    for seed in range(8):  # a texture's blobs are no surface
        coarse = np.random.default_rng(seed).normal(0.0, 1.0, (S // 6 + 2, S // 6 + 2))
        tex = 110.0 + 25.0 * ndimage.zoom(coarse, S / (S // 6 + 2), order=1)[:S, :S]
        assert not step_edge(plate(tex), 48.0, 8.0, 58.0, 63.0), seed


def test_a_bounce_one_frame_before_the_end_keeps_the_floor_drawn_under_it():
    """With one frame after the bounce only one contact guess can be fitted, and it put the contact
    at the lowest sample: a floor drawn under the ball's reach was missed and the bounce called
    mid-air (a review's reproduction, session 36). Such a contact is no longer extrapolated."""
    from evalkit.metrics.physics_floor import contact_depth, floor_level
    from evalkit.metrics.physics_limits import PhysicsTolerances

    class Plate:  # a background whose one floor edge is at row 77.1
        def surface_under(self, x, half, top, bottom):
            return top <= 77.1 <= bottom

        def horizon_above(self, x, half, contact):
            return False

    y = np.array([12.5, 14.4, 19.0, 26.6, 36.9, 49.9, 65.0, 62.3])
    assert contact_depth(y, np.array([6]), 0, 3.0) is None
    level, why = floor_level(y, 128, 6.0, 3.0, PhysicsTolerances(), np.full(8, 50.0), Plate())
    assert why is None and level == pytest.approx(65.0)
