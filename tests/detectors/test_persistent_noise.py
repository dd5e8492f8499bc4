"""Noise the guard of session 34 judged as a picture (its recorded limits; fixed in session 35):
one noise picture held, panned or changing a little each frame (it correlates from frame to frame
like footage: detectors/noise_colour.py), and noise played inside a screen recording's
interface upscaled 13x or more (detectors/noise_region.py, detectors/upscaled_noise.py)."""

import cv2
import numpy as np
import pytest

from detectors.ensemble import picture_note

T = 16
INTERP = {"nearest": cv2.INTER_NEAREST, "bilinear": cv2.INTER_LINEAR, "bicubic": cv2.INTER_CUBIC}


def _noise_picture(h, w, s, how, seed=0, channels=3):
    """One noise picture of (h/s, w/s) samples blown up s times, [h, w, 3] uint8."""
    src = np.random.default_rng(seed).integers(0, 256, (round(h / s), round(w / s), channels), dtype=np.uint8)
    big = cv2.resize(src, (w, h), interpolation=INTERP[how]).reshape(h, w, -1)
    return np.repeat(big, 3 // channels, axis=2)


def _filmed(picture, h, w, vx=0.0, vy=0.0, grain=0.0, seed=1):
    """A camera over `picture`, moving (vx, vy) px a frame (sub-pixel: bilinear), with fresh sensor
    grain of std `grain` each frame."""
    rng = np.random.default_rng(seed)
    frames = [cv2.warpAffine(picture.astype(np.float32), np.float32([[1, 0, vx * t], [0, 1, vy * t]]), (w, h),
                             flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REFLECT)
              for t in range(T)]
    return np.clip(np.rint(np.stack(frames) + rng.normal(0, grain, (T, h, w, 3))), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("h,w,s,how", [(48, 48, 3, "bilinear"), (64, 114, 4, "nearest"),
                                        (96, 96, 2.5, "bicubic")])
@pytest.mark.parametrize("motion", ["held, grain", "panned 0.5 px", "panned 3 px", "changing a little"])
def test_one_noise_picture_held_or_moving_is_noise(h, w, s, how, motion):
    picture = _noise_picture(h + 64, w + 64, s, how)
    if motion == "held, grain":
        frames = _filmed(picture, h, w, grain=2)
    elif motion.startswith("panned"):
        v = float(motion.split()[1])
        frames = _filmed(picture, h, w, v, -0.6 * v)
    else:  # a tenth of a fresh noise picture blended in each frame
        frames = _filmed(picture, h, w).astype(np.float32)
        for t in range(1, T):
            fresh = _noise_picture(h + 64, w + 64, s, how, seed=10 + t)[:h, :w]
            frames[t] = 0.9 * frames[t - 1] + 0.1 * fresh
        frames = np.rint(frames).astype(np.uint8)
    note = picture_note(frames) or ""
    assert "noise" in note, (motion, note)


def test_held_noise_says_which_noise():
    """The abstention says why: the frames correlate like a picture's, its colours do not."""
    note = picture_note(_filmed(_noise_picture(112, 112, 3, "bilinear"), 64, 64, grain=2))
    assert "one noise picture" in note and "colour channels vary independently" in note


def test_colour_grain_drawn_anew_is_not_a_noise_picture():
    """Only colour that persists counts: a grey picture under colour grain drawn anew each frame
    (a generator's small clip under white noise; 52 of 960 such clips and edits were called noise
    while all the colour counted) is no noise picture; the same grain held is."""
    from detectors.noise_colour import colour_noise

    rng = np.random.default_rng(6)
    faint = 128 + 0.2 * (_noise_picture(48, 48, 6, "bilinear", channels=1).astype(np.float32) - 128)
    ground = np.repeat(faint[None], T, 0)
    grain = rng.normal(0, 25, (T, 48, 48, 3))
    assert colour_noise(np.clip(ground + grain, 0, 255)) is None
    held = colour_noise(np.clip(ground + grain[:1], 0, 255))
    assert held is not None and held["chroma"] > 0.7


def test_the_world_on_its_textured_ground_is_a_picture():
    """The world's textured ground is grey noise blown up 6x, held for the whole clip: a picture
    of it with coloured objects, with and without sensor noise, has its colour in the objects."""
    from evalkit.world import WorldConfig
    from evalkit.world.clips import make_clip_from_seed

    called = []
    for size in (32, 48, 64, 96):
        for noise in (0.0, 12.0):
            for seed in (4, 10, 13, 28):
                clip = make_clip_from_seed(seed, "train", WorldConfig(size=size, noise=noise))
                assert "textured" in clip.prompt
                if "noise" in (picture_note(clip.frames) or ""):
                    called.append((size, noise, seed))
    assert not called, f"world renders called noise: {called}"


def _gravel(h, w, stone=4.0, seed=2):
    """A grey stone texture (a gravel bed, stones of about `stone` px, lit from the top left,
    dark gaps between them), tinted like a photograph: as fine as noise, its colour its luma's."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    n = int(h * w / stone ** 2)
    centres = rng.uniform(0, (h, w), (n, 2))
    level = rng.uniform(70, 200, n)
    yx = np.stack(np.mgrid[0:h, 0:w], -1).reshape(-1, 2).astype(np.float64)
    dist, idx = cKDTree(centres).query(yx, k=2)
    own = centres[idx[:, 0]]
    grey = level[idx[:, 0]] + 25 * (own - yx).sum(axis=1) / stone  # lit from the top left
    grey = np.where(dist[:, 1] - dist[:, 0] < 0.7, 35.0, grey).reshape(h, w)  # the gaps between stones
    return np.clip(np.stack([grey * 1.05 + 6, grey, grey * 0.88], axis=-1), 0, 255).astype(np.uint8)


def test_a_camera_over_a_fine_grey_texture_is_a_picture():
    """Held or panned, a gravel bed as fine as noise correlates like one noise picture in luma
    (its luma with a noise picture's colours would be called noise); its colours follow its luma
    (a photograph's), so it is a picture."""
    from detectors.upscaled_noise import upscaled_noise_note

    bed = _gravel(200, 200, stone=8)
    colours = _noise_picture(64, 64, 3, "bilinear")
    for vx in (0.0, 0.5, 3.0):
        frames = _filmed(bed, 64, 64, vx, 0.4 * vx, grain=1.5)
        assert picture_note(frames) is None, vx
        y = frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        assert "one noise picture" in (upscaled_noise_note(y, np.repeat(colours[None], T, 0)) or ""), vx


# --- a screen recording: a window with its interface around the played clip -----------------
def _window_around(video, screen_hw, s, how, seed=3):
    """Frames [T, *screen_hw, 3]: a desktop with one window (title bar and its buttons, a menu of
    text, a toolbar, a side panel of text lines, a status bar) playing `video` blown up s times,
    and a pointer moving over the side panel."""
    rng = np.random.default_rng(seed)
    sh, sw = screen_hw
    vh, vw = round(video.shape[1] * s), round(video.shape[2] * s)
    desk = np.empty((sh, sw, 3), np.uint8)
    desk[:] = (58, 96, 140)
    oy, ox, side = 40, 30, 150
    win_h, win_w = vh + 120, vw + side + 8
    desk[oy:oy + win_h, ox:ox + win_w] = (236, 236, 236)
    desk[oy:oy + 28, ox:ox + win_w] = (205, 205, 210)
    for k, c in enumerate([(237, 95, 87), (245, 190, 60), (98, 200, 84)]):
        cv2.circle(desk, (ox + 14 + 20 * k, oy + 14), 6, c, -1, cv2.LINE_AA)

    def text(y, x0, x1, size):  # words: dark bars of a text line's height
        x = x0
        while x < x1 - 8:
            n = int(rng.integers(3, 9)) * size // 2
            desk[y:y + size, x:min(x + n, x1)] = (40, 40, 40)
            x += n + size // 2

    text(oy + 9, ox + 80, ox + win_w // 2, 10)
    text(oy + 34, ox + 8, ox + win_w - 8, 10)
    for x in range(ox + 8, ox + win_w - 34, 40):
        cv2.rectangle(desk, (x, oy + 56), (x + 26, oy + 80), (40, 40, 40), 1, cv2.LINE_AA)
    top, left = oy + 92, ox + side + 4
    for y in range(top + 8, top + vh - 12, 22):
        text(y, ox + 8, ox + side - 8, 9)
    text(oy + win_h - 18, ox + 8, ox + win_w // 2, 9)
    frames = np.repeat(desk[None], len(video), axis=0)
    for t, f in enumerate(video):
        frames[t, top:top + vh, left:left + vw] = cv2.resize(f, (vw, vh), interpolation=INTERP[how])
        tip = (ox + 20 + 5 * t, top + vh // 2 - 3 * t)
        arrow = np.array([tip, (tip[0], tip[1] + 18), (tip[0] + 12, tip[1] + 14)], np.int32)
        cv2.fillPoly(frames[t], [arrow], (255, 255, 255))
    return frames


@pytest.mark.parametrize("side,s,how,screen", [(32, 13, "bilinear", (720, 1280)),
                                               (32, 16, "nearest", (720, 1280)),
                                               (24, 16, "bicubic", (720, 1280)),
                                               (32, 3, "bilinear", (480, 854))])
def test_noise_played_in_a_window_is_noise(side, s, how, screen):
    """`control:noise` played in a window and screen-recorded read as a picture (the window's
    text and edges correlate at every distance); the part that plays is judged now."""
    noise = np.random.default_rng(4).integers(0, 256, (T, side, side, 3), dtype=np.uint8)
    frames = _window_around(noise, screen, s, how)
    before = frames[:, 40:100].copy()
    assert "noise" in (picture_note(frames) or "")
    assert (frames[:, 40:100] == before).all()  # judging crops a view; the frames stay as they were


def test_footage_played_in_a_window_is_a_picture(real_videos_dir):
    from evalkit.video import read_video

    film = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=T).frames
    assert picture_note(_window_around(film, (480, 854), 2, "bilinear")) is None


def test_noise_blown_up_13x_to_fill_the_frame_is_noise():
    """Beyond 1/32 of the frame's reach too: halved until the noise is blown up about 3x."""
    noise = np.random.default_rng(5).integers(0, 256, (T, 32, 32, 3), dtype=np.uint8)
    for how in ("bilinear", "bicubic"):
        frames = np.stack([cv2.resize(f, (416, 416), interpolation=INTERP[how]) for f in noise])
        assert "noise" in (picture_note(frames) or ""), how
