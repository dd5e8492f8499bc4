"""Pure noise upscaled 2-4x into small frames read "real" at p 0.00: the noise check looked at the
next pixel and at 1/32 of the frame, inside the upscale's reach there (session 32's red team;
fixed in session 34, detectors/upscaled_noise.py)."""

import cv2
import numpy as np
import pytest

from detectors.ensemble import picture_note

INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def _upscaled_noise(w, h, out_w, out_h, how, seed=0):
    src = np.random.default_rng(seed).integers(0, 256, (16, h, w, 3), dtype=np.uint8)
    return np.stack([cv2.resize(f, (out_w, out_h), interpolation=INTERP[how]) for f in src])


@pytest.mark.parametrize("w,h,out_w,out_h", [(16, 16, 48, 48), (40, 40, 120, 120), (64, 36, 192, 108),
                                             (12, 12, 32, 32), (24, 24, 96, 96), (20, 30, 50, 74),
                                             (60, 34, 200, 112)])
@pytest.mark.parametrize("how", sorted(INTERP))
def test_noise_upscaled_into_small_frames_is_noise(w, h, out_w, out_h, how):
    frames = _upscaled_noise(w, h, out_w, out_h, how)
    assert "noise" in (picture_note(frames) or ""), (w, h, out_w, out_h, how)


def test_letterboxed_upscaled_noise_is_noise():
    frames = np.pad(_upscaled_noise(16, 16, 48, 48, "bilinear"), ((0, 0), (0, 0), (24, 24), (0, 0)))
    assert "noise" in (picture_note(frames) or "")


def test_an_upscaled_noise_file_abstains(tmp_path):
    """End to end: the file read "real" at p 0.00 before."""
    from detectors.predict import detect_files
    from evalkit.video import write_video

    path = write_video(tmp_path / "noise.mp4", _upscaled_noise(64, 36, 192, 108, "bilinear"), fps=8)
    (row,) = detect_files([path])
    assert row["decision"] == "uncertain" and "noise" in row["protocol"]["out_of_domain"]


def test_one_small_object_on_plain_ground_is_no_noise():
    """A world clip's shape: one small object moving fast over a plain ground correlates like
    upscaled noise beyond 8 px and between frames; its detail sits in one place."""
    from detectors.upscaled_noise import FAR_LAGS, STRUCTURE_MAX

    frames = np.full((16, 64, 64, 3), 23, np.uint8)
    for t in range(16):
        x = 4 + 3 * t
        frames[t, 30:36, x:x + 6] = (200, 120, 60)
    y = frames.astype(np.float32).mean(-1)
    a = y - y.mean(axis=(1, 2), keepdims=True)
    far = max(abs(float((a[:, :, d:] * a[:, :, :-d]).sum() / np.sqrt((a[:, :, d:] ** 2).sum() * (a[:, :, :-d] ** 2).sum())))
              for d in FAR_LAGS)
    assert far < STRUCTURE_MAX  # the correlations alone would call it noise
    assert picture_note(frames) is None


def test_small_footage_is_no_noise(real_videos_dir):
    """Thumbnails of the footage, the same blown up 3x, and crops of it at 32-96 px."""
    from evalkit.video import read_video

    noisy = []
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        film = read_video(real_videos_dir / name, max_frames=16).frames
        h, w = film.shape[1:3]
        for side in (32, 48):
            k = side / min(h, w)
            thumb = np.stack([cv2.resize(f, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA) for f in film])
            up = np.stack([cv2.resize(f, (thumb.shape[2] * 3, thumb.shape[1] * 3), interpolation=cv2.INTER_LINEAR)
                           for f in thumb])
            noisy += [(name, "thumb", side) for c in (thumb, up) if picture_note(c)]
        for size in (32, 64, 96):
            noisy += [(name, size, y, x) for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)
                      if "noise" in (picture_note(film[:, y:y + size, x:x + size]) or "")]
    assert not noisy, f"read as noise: {noisy}"


def test_a_small_ball_under_white_noise_is_a_picture():
    """A 32 px world clip with white noise added (a noisy generator's output: one small ball on a
    plain ground) correlates like noise at 9-16 px and its 16 px blocks spread evenly, but one 8x8
    block holds the ball: it is a picture for the detector to judge (it abstained as "noise")."""
    from evalkit.world import make_clip_from_seed

    clean = make_clip_from_seed(1003, "train").frames.astype(np.float32)
    noisy = clean + np.random.default_rng(3).normal(0, 0.05 * 255, clean.shape)
    assert picture_note(np.clip(noisy, 0, 255).round().astype(np.uint8)) is None
