"""Pictures the noise guard's older lines called noise (session 36; detectors/noise_picture.py):
the luma of one frame correlated like noise, but the picture was in its colour (a yellow object on
a light ground, equal luma, under sensor noise), in time (a camera over a texture of a few pixels
a stone), or the frames were one colour under faint grain (a generator's unformed sample). Noise
drawn anew each frame, or one noise picture in colours drawn per channel, stays noise."""

import numpy as np
import pytest
from test_persistent_noise import T, _filmed, _gravel, _noise_picture

from detectors.ensemble import picture_note


@pytest.mark.parametrize("size,noise,seed", [(32, 4.0, 1), (32, 12.0, 0), (64, 8.0, 2), (128, 12.0, 0)])
def test_a_yellow_square_on_a_light_ground_under_sensor_noise_is_a_picture(size, noise, seed):
    """Yellow's luma (198) is the light ground's: the luma is the sensor's grain alone."""
    from evalkit.world import WorldConfig, make_clip_for_prompt

    clip = make_clip_for_prompt("a small yellow square slides and slows down, on a light background", seed,
                                WorldConfig(size=size, noise=noise))
    assert picture_note(clip.frames) is None


@pytest.mark.parametrize("stone,size,v", [(1.5, 64, 2.0), (2.0, 48, 0.5), (2.0, 128, 5.0), (3.0, 96, 5.0)])
def test_a_camera_over_gravel_of_a_few_pixels_is_a_picture(stone, size, v):
    """One frame correlates like noise (0.03-0.3 at the next pixel); the next is the same moved."""
    frames = _filmed(_gravel(260, 260, stone=stone), size, size, v, 0.4 * v, grain=1.5)
    assert picture_note(frames) is None


def test_one_colour_under_faint_grain_is_a_picture():
    """uvit:small-stage1's unformed samples: a light ground under colour grain of about 4 levels,
    drawn anew each frame. The grain is what the detector judges."""
    rng = np.random.default_rng(7)
    frames = np.clip(np.rint(200 + rng.normal(0, 4, (T, 32, 32, 3))), 0, 255).astype(np.uint8)
    assert picture_note(frames) is None


@pytest.mark.parametrize("side", [32, 64, 128])
def test_noise_drawn_anew_each_frame_is_still_noise(side):
    """control:noise, its colour and grey kinds: structure in none of luma, colour or time."""
    rng = np.random.default_rng(side)
    colour = rng.integers(0, 256, (T, side, side, 3), dtype=np.uint8)
    grey = np.repeat(rng.integers(0, 256, (T, side, side, 1), dtype=np.uint8), 3, axis=3)
    for frames in (colour, grey):
        assert "noise" in (picture_note(frames) or "")


@pytest.mark.parametrize("v", [0.0, 3.0, 6.0])
def test_one_colour_noise_picture_moving_is_still_noise(v):
    """It persists like the gravel, but its colours are drawn per channel (chroma 1.8 times the
    luma's energy; a camera's colours follow its luma)."""
    frames = _filmed(_noise_picture(200, 200, 1, "nearest"), 64, 64, v, -0.5 * v, grain=2 if v == 0 else 0)
    assert "noise" in (picture_note(frames) or "")


def test_persistence_tells_a_moved_picture_from_fresh_noise():
    from detectors.noise_picture import PERSIST_MIN, persistence

    bed = _filmed(_gravel(200, 200, stone=2.0), 64, 64, 5.0, 2.0).astype(np.float32).mean(-1)
    fresh = np.random.default_rng(3).normal(0, 50, (T, 64, 64)).astype(np.float32)
    assert persistence(bed) > 0.75 > PERSIST_MIN > 0.35 > persistence(fresh)


@pytest.mark.parametrize("v", [0.0, 3.0, 6.0])
def test_one_grey_noise_picture_moving_is_still_noise(v):
    """Grey, it persists like a grey gravel bed and has no colour to tell them apart: it stays
    noise. Given a verdict, the families called it "real" (p_generated 0.000 at 64 px)."""
    colour = _filmed(_noise_picture(200, 200, 1, "nearest"), 64, 64, v, -0.5 * v, grain=2 if v == 0 else 0)
    grey = np.repeat(np.rint(colour.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]))[..., None], 3, axis=3)
    assert "noise" in (picture_note(grey.astype(np.uint8)) or "")
