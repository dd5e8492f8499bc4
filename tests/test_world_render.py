"""The pixels match the ground truth: every object is found where its track says."""

from __future__ import annotations

import numpy as np
import pytest

from evalkit.world import WorldConfig, make_clip
from evalkit.world.render import coverage


def locate(frame: np.ndarray, rgb, tol: float = 40.0):
    """Centroid (x, y) in pixel-index units and pixel count of the pixels close to `rgb`."""
    d = np.linalg.norm(frame.astype(np.float32) - np.asarray(rgb, np.float32), axis=-1)
    ys, xs = np.nonzero(d < tol)
    if len(xs) == 0:
        return None, 0
    return (xs.mean(), ys.mean()), len(xs)


def check_clip_against_track(frames, record, tol_px):
    """Per object and frame, the signed (dx, dy) from track to the located centroid."""
    errors = []
    for obj in record["scene"]["objects"]:
        for t, (x, y, visible) in enumerate(obj["track"]):
            found, count = locate(frames[t], obj["rgb"])
            assert visible == 1 and found is not None, (record["id"], obj["color"], t)
            errors.append((found[0] - x, found[1] - y))
            expected_area = (np.pi / 4 if obj["shape"] == "ball" else 1.0) * obj["size"] ** 2
            assert count == pytest.approx(expected_area, rel=0.35, abs=6)
    dist = np.hypot(*np.array(errors).T)
    assert dist.max() < tol_px, (record["id"], dist.max())
    return errors


@pytest.mark.parametrize("split", ["train", "test", "ood"])
def test_rendered_objects_are_where_their_tracks_say(split):
    errors = []
    for i in range(40):
        clip = make_clip(split, i, seed=3, config=WorldConfig(size=64))
        errors += check_clip_against_track(clip.frames, clip.meta["record"], tol_px=0.75)
    errors = np.array(errors)
    # A hard colour threshold quantises the centroid (about 0.1 px on average), but a
    # convention error (pixel corners vs centres, a swapped axis) would show as a bias.
    assert np.hypot(*errors.T).mean() < 0.2
    assert np.all(np.abs(errors.mean(axis=0)) < 0.05)


def test_sensor_noise_keeps_objects_locatable_and_changes_pixels():
    clean = make_clip("train", 1, config=WorldConfig(size=64))
    noisy = make_clip("train", 1, config=WorldConfig(size=64, noise=4.0))
    diff = noisy.frames.astype(int) - clean.frames.astype(int)
    assert 3.0 < diff.std() < 5.0
    check_clip_against_track(noisy.frames, noisy.meta["record"], tol_px=0.8)


def test_anti_aliasing_gives_partial_coverage_and_exact_area():
    centres = np.array([[0.5, 0.5], [0.513, 0.47]])
    for shape, area in [("ball", np.pi / 4 * 12.8**2), ("square", 12.8**2)]:
        cov = coverage(shape, centres, 0.2, 64, 64)  # extent 12.8 px
        assert cov.shape == (2, 64, 64)
        partial = ((cov > 0.01) & (cov < 0.99)).sum(axis=(1, 2))
        assert np.all(partial > 10)  # edges are blended, not stair-stepped
        np.testing.assert_allclose(cov.sum(axis=(1, 2)), area, rtol=0.02)


def test_same_seed_same_clip_and_different_index_different_clip():
    a = make_clip("train", 7, seed=11)
    b = make_clip("train", 7, seed=11)
    c = make_clip("train", 8, seed=11)
    d = make_clip("test", 7, seed=11)
    assert np.array_equal(a.frames, b.frames) and a.meta["record"] == b.meta["record"]
    assert not np.array_equal(a.frames, c.frames)
    assert a.prompt != d.prompt or not np.array_equal(a.frames, d.frames)


@pytest.mark.parametrize("frames,size,fps", [(16, 32, 8.0), (8, 48, 4.0), (24, 64, 12.0)])
def test_clip_has_requested_shape_and_record_matches(frames, size, fps):
    clip = make_clip("test", 0, config=WorldConfig(frames=frames, size=size, fps=fps))
    assert clip.frames.shape == (frames, size, size, 3) and clip.frames.dtype == np.uint8
    rec = clip.meta["record"]
    assert rec["frames"] == frames and rec["size"] == [size, size] and rec["fps"] == fps
    assert rec["prompt"] == clip.prompt and rec["split"] == "test"
    for obj in rec["scene"]["objects"]:
        assert len(obj["track"]) == frames and len(obj["velocity"]) == frames
        assert set(obj) >= {"shape", "color", "rgb", "size", "track"}
