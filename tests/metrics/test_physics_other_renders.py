"""Physics probes on clips drawn the way other tools draw world prompts (session 34 red team):
a floor above the frame's bottom edge, shaded spheres, lighting changes, a shaking camera,
objects entering or leaving the frame, and a short disappearance. Exact physics, rendered with
numpy here (an anti-aliased disc over a dark grey background, uint8, no codec)."""

from __future__ import annotations

import numpy as np

from evalkit.metrics.physics import physics_probe
from evalkit.metrics.physics_limits import _half_extent
from evalkit.metrics.tracking_objects import track_objects
from evalkit.world.spec import COLORS

S, T, FPS = 96, 32, 16.0
MEDIUM_D = 0.18 * S  # the world's "medium" size at this frame size


def _render(xs, ys, d=MEDIUM_D, colour="red", shade=False, light=None, shake=0.0, seed=0, wide=None,
            floor=None):
    """Frames [T, S, S, 3] of a disc of diameter d at (xs[t], ys[t]) (NaN: not drawn); wide[t]
    stretches it along x into an ellipse; `floor`: a floor drawn from that height (px) down, a
    lighter grey than the wall above it."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float64)
    rgb = np.array(COLORS[colour], np.float64)
    bg = np.full((S, S, 3), 30.0)
    if floor is not None:
        below = np.clip(yy + 0.5 - floor, 0.0, 1.0)[..., None]
        bg = bg * (1 - below) + 80.0 * below
    out = np.empty((len(xs), S, S, 3), np.uint8)
    for t, (x, y) in enumerate(zip(xs, ys)):
        sx, sy = rng.normal(0.0, shake, 2) if shake else (0.0, 0.0)
        im = bg.copy()
        if np.isfinite(x):
            dist = np.hypot((xx - x - sx) / (1.0 if wide is None else wide[t]), yy - y - sy)
            cover = np.clip(d / 2 + 0.5 - dist, 0.0, 1.0)[..., None]
            colour_t = rgb * (1.0 if light is None else light[t])
            if shade:  # darker towards the limb, as a lit sphere: 1 at the centre, 0.4 at the edge
                colour_t = colour_t * (1.0 - 0.6 * np.clip(dist / (d / 2), 0.0, 1.0) ** 2)[..., None]
            im = im * (1 - cover) + colour_t * cover
        out[t] = np.clip(np.rint(im), 0, 255)
    return out


def _bouncing_fall(floor_y, d=MEDIUM_D, y0=12.0, g_frame_heights=4.0, e=0.7):
    """Centre heights of a ball dropped from rest at y0 onto a floor at floor_y (its bottom edge
    stops there), sampled at FPS, integrated finely."""
    g = g_frame_heights * S  # px / s^2
    dt, y, v, ys = 1e-4, y0, 0.0, []
    for _frame in range(T):
        ys.append(y)
        for _ in range(int(round(1 / FPS / dt))):
            v += g * dt
            y += v * dt
            if y + d / 2 > floor_y and v > 0:
                y, v = floor_y - d / 2, -e * v
    return np.array(ys)


def _laws(frames, kind):
    return physics_probe(frames, {"kind": kind, "objects": [("ball", "red", "medium")]}, FPS)["physics_laws"]


def test_a_floor_drawn_above_the_bottom_edge_is_found_from_the_bounces():
    ys = _bouncing_fall(0.88 * S)
    laws = _laws(_render(np.full(T, S / 2), ys, floor=0.88 * S), "fall")
    assert laws["constant_downward_acceleration"] is True
    assert laws["no_teleport"] is True
    assert laws["bounce_heights_non_increasing"] is True
    # the same fall on the bottom edge, the world's floor, as before
    assert _laws(_render(np.full(T, S / 2), _bouncing_fall(S - 0.5)), "fall")["no_teleport"] is True


def test_a_kick_up_in_mid_air_still_fails_with_a_floor_above_the_bottom_edge():
    ys = _bouncing_fall(0.88 * S)
    ys[20:] -= 12.0  # teleported up mid-clip
    assert _laws(_render(np.full(T, S / 2), ys, floor=0.88 * S), "fall")["no_teleport"] is False


def test_a_shaded_sphere_is_measured_by_its_silhouette():
    ys = _bouncing_fall(S - 0.5)
    frames = _render(np.full(T, S / 2), ys, shade=True)
    (tr,) = track_objects(frames, [("ball", "red", "medium")])
    assert abs(_half_extent(tr) - MEDIUM_D / 2) <= 1.0
    laws = _laws(frames, "fall")
    assert laws["no_teleport"] is True and laws["constant_downward_acceleration"] is True


def test_dimming_light_is_no_size_change_but_a_growing_object_is():
    light = np.linspace(1.15, 0.55, T)
    assert _laws(_render(np.full(T, S / 2), np.full(T, S / 2), light=light), "static")["constant_size"] is True
    grow = np.linspace(1.0, 1.5, T) * MEDIUM_D
    frames = np.stack([_render([S / 2], [S / 2], d=float(dd))[0] for dd in grow])
    assert _laws(frames, "static")["constant_size"] is False


def test_a_three_frame_vanish_fails_permanence_but_a_single_miss_does_not():
    xs = np.linspace(20.0, 70.0, T)
    ys = np.full(T, S / 2)
    gone = xs.copy()
    gone[14:17] = np.nan
    laws = _laws(_render(gone, ys), "slide")
    assert laws["permanence"] is False
    one = xs.copy()
    one[14] = np.nan
    assert _laws(_render(one, ys), "slide")["permanence"] is True


def test_entering_and_leaving_the_frame_is_not_a_permanence_failure():
    xs = np.linspace(-12.0, S + 12.0, T)  # across the frame, in at the left, out at the right
    laws = _laws(_render(xs, np.full(T, S / 2)), "slide")
    assert laws["permanence"] is True


def test_a_shaking_camera_is_no_teleport_and_no_motion_at_rest():
    frames = _render(np.full(T, S / 2), np.full(T, S / 2), shake=0.7)
    laws = _laws(frames, "static")
    assert laws["no_teleport"] is True and laws["at_rest"] is True
    # ... while a jump a quarter of the frame still is one, shaking or not
    xs = np.full(T, S / 2)
    xs[16:] += 0.25 * S
    assert _laws(_render(xs, np.full(T, S / 2), shake=0.7), "static")["no_teleport"] is False


def test_score_says_when_the_named_objects_are_never_found(tmp_path):
    """Real footage under a world prompt: no red ball anywhere is told apart from a red ball that
    breaks a law (per clip, and in a warning), while the score stays 0 as the contract says."""
    import json

    from evalkit.metrics.score import score_folders
    from evalkit.video import write_video

    grey = np.full((8, 32, 32, 3), 90, np.uint8)
    ball = _render(np.full(8, S / 2), np.full(8, S / 2))
    write_video(tmp_path / "grey.mp4", grey, fps=8, crf=0)
    write_video(tmp_path / "ball.mp4", ball, fps=8, crf=0)
    prompt = "a medium red ball rests still, on a dark background"
    (tmp_path / "index.jsonl").write_text("".join(json.dumps({"id": n, "file": f"{n}.mp4", "prompt": prompt}) + "\n"
                                                  for n in ("grey", "ball")))
    res = score_folders(tmp_path, metrics=["physics"], progress=False)
    rows = {r["id"]: r for r in res["per_clip"]}
    assert rows["grey"]["physics_untested"] == "objects not found" and rows["grey"]["physics_score"] == 0.0
    assert "physics_untested" not in rows["ball"] and rows["ball"]["physics_pass"] is True
    assert any("1 of 2 clips a named object is never found" in w for w in res["warnings"])


def test_shuffled_frames_are_not_taken_for_a_shaking_camera():
    frames = _render(np.full(T, S / 2), _bouncing_fall(S - 0.5))
    shuffled = frames[np.random.default_rng(0).permutation(T)]
    assert _laws(shuffled, "fall")["no_teleport"] is False


def test_a_ball_stretched_to_twice_its_width_changes_size():
    wide = np.where(np.arange(T) >= T // 2, 2.0, 1.0)
    frames = _render(np.full(T, S / 2), np.full(T, S / 2), wide=wide)
    assert _laws(frames, "static")["constant_size"] is False


def _with_speck(frames, x=8.0, y=8.0, d=5.0):
    """`frames` with a still dot of the same red drawn in (the background is 30 everywhere)."""
    dot = _render(np.full(len(frames), x), np.full(len(frames), y), d=d).astype(np.int16) - 30
    return np.clip(frames.astype(np.int16) + dot, 0, 255).astype(np.uint8)


def test_a_vanish_is_seen_past_a_speck_of_the_same_colour_and_a_jump_across_it_is_a_teleport():
    ys = _bouncing_fall(S - 0.5)
    xs = np.full(T, S / 2)
    gone = xs.copy()
    gone[16:19] = np.nan
    laws = _laws(_with_speck(_render(gone, ys)), "fall")
    assert laws["permanence"] is False and laws["no_teleport"] is True  # it fell on as it would
    moved = gone.copy()
    moved[19:] += 0.3 * S  # ... but comes back a third of the frame to the side
    assert _laws(_with_speck(_render(moved, ys)), "fall")["no_teleport"] is False
    # a speck beside a ball always in view changes nothing
    laws = _laws(_with_speck(_render(xs, ys)), "fall")
    assert laws["permanence"] is True and laws["no_teleport"] is True


def test_a_bounce_sampled_a_frame_after_its_contact_is_a_bounce():
    # A ball on a floor drawn at 0.95 of the height (two_floors' lower ball, 128 px scaled to 96):
    # its second bounce is sampled 72.5, 79.1, 79.9, 75.8, a 0.75 px step down into it.
    y128 = [38.5, 39.1, 41.4, 45.2, 50.4, 57.1, 65.4, 75.1, 86.3, 99.1, 107.8, 98.6, 91.0, 84.8, 80.3,
            77.1, 75.5, 75.3, 76.6, 79.3, 83.6, 89.4, 96.7, 105.5, 106.5, 101.0, 96.8, 94.2, 93.0, 93.4,
            95.3, 98.7]
    laws = _laws(_render(np.full(T, S / 2), np.array(y128) * S / 128, floor=0.95 * S), "fall")
    assert laws["no_teleport"] is True and laws["constant_downward_acceleration"] is True


def test_a_shaking_camera_widens_the_fall_and_friction_fits_but_a_speeding_slide_still_fails():
    fall = _laws(_render(np.full(T, S / 2), _bouncing_fall(S - 0.5), shake=0.7, seed=3), "fall")
    assert fall["constant_downward_acceleration"] is True
    t = np.arange(T) / FPS
    slide = _render((0.2 + 0.45 * t - 0.1 * t * t) * S, np.full(T, S / 2), shake=0.7, seed=3)
    assert _laws(slide, "slide")["friction_slows"] is True
    faster = _render((0.2 + 0.1 * t + 0.2 * t * t) * S, np.full(T, S / 2), shake=0.7, seed=3)
    assert _laws(faster, "slide")["friction_slows"] is False
