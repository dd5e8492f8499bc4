"""The world's physics is right: checked on exact trajectories over many random scenes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from evalkit.world.physics import trajectories
from evalkit.world.scenes import sample_scene
from evalkit.world.spec import SPLITS, TRAIN_RANGES

FPS, FRAMES = 8.0, 16


def scenes(kind: str, n: int = 150, split: str = "train"):
    out, seed = [], 0
    while len(out) < n and seed < 50 * n:
        s = sample_scene(np.random.default_rng(seed), split)
        if s.kind == kind:
            out.append(s)
        seed += 1
    assert len(out) == n
    return out


def segment_index(segs, times):
    starts = np.array([s.t0 for s in segs])
    return np.searchsorted(starts, times, side="right") - 1


@pytest.mark.parametrize("kind", ["fall", "throw"])
def test_constant_downward_acceleration_between_bounces(kind):
    checked = 0
    for scene in scenes(kind):
        tr = trajectories(scene, FRAMES, FPS)
        dt = 1 / FPS
        for n, segs in enumerate(tr.segments):
            idx = segment_index(segs, tr.times)
            y = tr.pos[n, :, 1]
            for k in range(1, FRAMES - 1):
                if idx[k - 1] == idx[k + 1] and segs[idx[k]].ay > 0:  # one flight, no bounce between
                    assert y[k + 1] - 2 * y[k] + y[k - 1] == pytest.approx(scene.gravity * dt * dt, rel=1e-9)
                    checked += 1
    assert checked > 500  # the check is not vacuous


@pytest.mark.parametrize("kind", ["fall", "throw"])
def test_bounce_heights_never_grow_and_rebound_follows_restitution(kind):
    bounces = 0
    for scene in scenes(kind):
        assert 0 < scene.restitution < 1
        tr = trajectories(scene, 48, FPS)  # long enough for several bounces
        for obj, segs in zip(scene.objects, tr.segments):
            floor = 1 - obj.size / 2
            flights = [s for s in segs if s.ay > 0 and abs(s.y - floor) < 1e-9 and s.vy < 0]
            heights = [s.vy ** 2 / (2 * scene.gravity) for s in flights]
            assert all(b <= a + 1e-12 for a, b in zip(heights, heights[1:]))
            for a, b in zip(heights, heights[1:]):
                assert b / a == pytest.approx(scene.restitution ** 2, rel=1e-6)
            bounces += len(flights)
    assert bounces > 100


def test_friction_only_slows():
    moving = 0
    for scene in scenes("slide"):
        tr = trajectories(scene, FRAMES, FPS)
        speed = np.abs(tr.vel[:, :, 0])  # [N, T]
        assert np.all(np.diff(speed, axis=1) <= 1e-12)
        assert np.all(tr.vel[:, :, 1] == 0)
        # While moving, the deceleration is exactly the friction.
        dv = -np.diff(speed, axis=1) * FPS
        both_moving = (speed[:, :-1] > 0) & (speed[:, 1:] > 0)
        np.testing.assert_allclose(dv[both_moving], scene.friction, rtol=1e-9)
        moving += int(both_moving.sum())
    assert moving > 500


def test_momentum_conserved_in_collisions():
    collided = 0
    for scene in scenes("collide"):
        a, b = scene.objects[:2]
        tr = trajectories(scene, FRAMES, FPS)
        v0 = tr.vel[0, :, 0]
        v1 = tr.vel[1, :, 0]
        p = a.area * v0 + b.area * v1
        # Before the first wall contact (an edge touching x = 0 or 1), momentum is constant.
        first_wall = FRAMES
        for obj, segs in zip((a, b), tr.segments):
            half = obj.size / 2
            for s in segs[1:]:
                if min(abs(s.x - half), abs(s.x - (1 - half))) < 1e-9 and s.t0 <= tr.times[-1]:
                    first_wall = min(first_wall, int(np.searchsorted(tr.times, s.t0)))
        np.testing.assert_allclose(p[:first_wall], p[0], rtol=1e-9, atol=1e-12)
        # A collision happens inside the clip, as the caption says, and bodies never overlap.
        assert not np.allclose(v0[:first_wall], v0[0]), "no collision before the walls"
        collided += 1
        gap = (tr.pos[1, :, 0] - tr.pos[0, :, 0]) - (a.size + b.size) / 2
        assert np.all(gap >= -1e-9)
    assert collided == 150


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), split=st.sampled_from(SPLITS), frames=st.integers(2, 40),
       fps=st.sampled_from([4.0, 8.0, 12.0, 24.0]))
def test_objects_stay_inside_the_frame(seed, split, frames, fps):
    scene = sample_scene(np.random.default_rng(seed), split, duration=frames / fps)
    tr = trajectories(scene, frames, fps)
    for obj, p in zip(scene.objects, tr.pos):
        half = obj.size / 2
        assert np.all(p >= half - 1e-9) and np.all(p <= 1 - half + 1e-9), (scene, p)
    assert np.all(np.isfinite(tr.vel))


def test_restitution_below_one_in_every_split():
    for split in SPLITS:
        for seed in range(300):
            s = sample_scene(np.random.default_rng(seed), split)
            assert 0 <= s.restitution < 1
            if s.kind in ("fall", "throw", "collide"):
                assert s.restitution > 0
            if s.kind in ("fall", "throw"):
                assert s.gravity > 0


def test_static_scene_does_not_move():
    for scene in scenes("static", n=30):
        tr = trajectories(scene, FRAMES, FPS)
        assert np.all(tr.pos == tr.pos[:, :1]) and np.all(tr.vel == 0)


def test_train_ranges_are_inside_physics_bounds():
    assert TRAIN_RANGES["restitution"].high < 1
