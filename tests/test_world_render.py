"""The pixels match the ground truth: every object is found where its track says."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_dilation

from evalkit.world import WorldConfig, make_clip
from evalkit.world.render import coverage


def locate(frame: np.ndarray, rgb, others=(), tol: float = 40.0):
    """Centroid (x, y) in pixel-index units and area (pixels) of the object of colour `rgb`.

    Pixels close to `rgb` give the object; its anti-aliased edge is recovered by weighting every
    pixel near it with its estimated coverage (projection onto rgb - background, the background
    taken as a plane fitted to the clearly-background pixels around the object, other objects
    `others` masked out), which makes the centroid sub-pixel exact.
    """
    f = frame.astype(np.float32)
    c = np.asarray(rgb, np.float32)
    core = np.linalg.norm(f - c, axis=-1) < tol
    ys, xs = np.nonzero(core)
    if len(xs) == 0:
        return None, 0
    h, w = core.shape
    y0, y1, x0, x1 = max(ys.min() - 3, 0), min(ys.max() + 4, h), max(xs.min() - 3, 0), min(xs.max() + 4, w)
    win = f[y0:y1, x0:x1]
    other = np.zeros(win.shape[:2], bool)
    for o in others:  # pixels of (or blended with) another object
        other |= np.linalg.norm(win - np.asarray(o, np.float32), axis=-1) < 2.5 * tol
    clear_bg = (np.linalg.norm(win - c, axis=-1) > 2.5 * tol) & ~other
    # A plane per channel fitted to the clear background handles gradient backgrounds.
    yy, xx = np.mgrid[y0:y1, x0:x1]
    design = np.stack([np.ones_like(yy), yy, xx], -1).astype(np.float32)  # [h, w, 3]
    coef, *_ = np.linalg.lstsq(design[clear_bg], win[clear_bg], rcond=None)
    bg = design @ coef  # [h, w, 3]
    diff = c - bg
    a = np.clip(((win - bg) * diff).sum(-1) / np.maximum((diff * diff).sum(-1), 1.0), 0, 1)  # [h, w]
    near = binary_dilation(core[y0:y1, x0:x1], iterations=2)  # the object and its blended edge
    a[(a < 0.05) | ~near | (other & (a < 0.9))] = 0  # texture and neighbours are not object
    return ((a * xx).sum() / a.sum(), (a * yy).sum() / a.sum()), float(a.sum())


def check_clip_against_track(frames, record, tol_px, area_rel=0.35):
    """Per object and frame, the signed (dx, dy) from track to the located centroid."""
    errors = []
    for obj in record["scene"]["objects"]:
        for t, (x, y, visible) in enumerate(obj["track"]):
            others = [o["rgb"] for o in record["scene"]["objects"] if o is not obj]
            found, area = locate(frames[t], obj["rgb"], others)
            assert visible == 1 and found is not None, (record["id"], obj["color"], t)
            errors.append((found[0] - x, found[1] - y))
            expected_area = (np.pi / 4 if obj["shape"] == "ball" else 1.0) * obj["size"] ** 2
            if area_rel is not None:
                assert area == pytest.approx(expected_area, rel=area_rel, abs=3)
    dist = np.hypot(*np.array(errors).T)
    assert dist.max() < tol_px, (record["id"], dist.max())
    return errors


@pytest.mark.parametrize("split", ["train", "test", "ood"])
def test_rendered_objects_are_where_their_tracks_say(split):
    errors = []
    for i in range(40):
        clip = make_clip(split, i, seed=3, config=WorldConfig(size=64))
        errors += check_clip_against_track(clip.frames, clip.meta["record"], tol_px=0.6)
    errors = np.array(errors)
    # A convention error (pixel corners vs centres, a swapped axis) would show as a bias.
    assert np.hypot(*errors.T).mean() < 0.06
    assert np.all(np.abs(errors.mean(axis=0)) < 0.03)


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


@pytest.mark.parametrize("frames,size,fps", [(16, 32, 8.0), (8, 48, 4.0), (24, 64, 12.0), (8, 32, 12.5)])
def test_clip_has_requested_shape_and_record_matches(frames, size, fps):
    clip = make_clip("test", 0, config=WorldConfig(frames=frames, size=size, fps=fps))
    assert clip.frames.shape == (frames, size, size, 3) and clip.frames.dtype == np.uint8
    rec = clip.meta["record"]
    assert rec["frames"] == frames and rec["size"] == [size, size] and rec["fps"] == fps
    # DESIGN.md's index format: a whole rate is an int (8, not 8.0), a rate with a fraction a float
    assert type(rec["fps"]) is (int if fps.is_integer() else float)
    assert rec["prompt"] == clip.prompt and rec["split"] == "test"
    for obj in rec["scene"]["objects"]:
        assert len(obj["track"]) == frames and len(obj["velocity"]) == frames
        assert set(obj) >= {"shape", "color", "rgb", "size", "track"}


def test_an_index_line_records_what_decides_its_pixels_and_score_carries_it(tmp_path):
    """`world render --crf 30` wrote the same index as CRF 18 (a clip could not be re-derived from its
    line), and `score`'s protocol dropped settings an index records, e.g. bf16 sampling (session 33)."""
    import json

    from evalkit.clipset import read_index
    from evalkit.metrics.score import generation_protocol
    from evalkit.video import Clip
    from evalkit.world.export import render_folder

    plain = render_folder(tmp_path / "a", n=2, config=WorldConfig(frames=4, size=16), progress=False)
    coarse = render_folder(tmp_path / "b", n=2, config=WorldConfig(frames=4, size=16), crf=30, progress=False)
    assert "crf" not in plain[0] and [r["crf"] for r in read_index(tmp_path / "b")] == [30, 30]
    assert json.loads((tmp_path / "a" / "index.jsonl").read_text().splitlines()[0]) == plain[0]
    clips = []
    for i, extra in enumerate(({"precision": "bf16-autocast", "guidance_rescale": 0.7},
                               {"precision": "bf16-autocast", "guidance_rescale": 0.0})):
        c = Clip(np.zeros((2, 8, 8, 3), np.uint8), fps=8.0)
        c.meta["record"] = {"model": "uvit:x", "sampler": "dpmpp", "seed": i, **extra}
        clips.append(c)
    proto = generation_protocol(clips)
    assert proto["precision"] == "bf16-autocast" and proto["guidance_rescale"] == "mixed"
    assert generation_protocol([Clip(np.zeros((2, 8, 8, 3), np.uint8), fps=8.0, meta={"record": coarse[0]})])["crf"] == 30
    both = [Clip(np.zeros((2, 8, 8, 3), np.uint8), fps=8.0, meta={"record": r}) for r in (plain[0], coarse[0])]
    assert generation_protocol(both)["crf"] == "mixed"  # a key some clips lack (the default) is mixed
