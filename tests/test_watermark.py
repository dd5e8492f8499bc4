"""The invisible watermark: round trips, keys, false positives, codec robustness, PSNR, input
errors, determinism, the error-correcting code and the p-value's calibration. Fast (< 1 min)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from evalkit.errors import BadInputError
from evalkit.provenance import watermark as wm
from evalkit.provenance import wm_grid, wm_pvalue, wm_read, wm_scheme
from evalkit.provenance.watermark import (
    DEFAULT_P_THRESHOLD, PRESETS, Detection, WatermarkConfig, detect, embed, make_key,
)
from evalkit.provenance.wm_ecc import DEFAULT_CODE, ConvCode
from evalkit.video import psnr, read_video, write_video
from evalkit.world import WorldConfig, make_clip

PAYLOAD = bytes.fromhex("0123456789abcdef")


def world(i=0, size=64, frames=16, noise=0.0, seed=3):
    return make_clip("test", i, seed, WorldConfig(frames=frames, size=size, noise=noise)).frames


def h264(tmp_path, frames, crf, fps=8.0):
    p = write_video(tmp_path / f"crf{crf}.mp4", frames, fps=fps, crf=crf)
    return read_video(p).frames


def bits(payload):
    return np.unpackbits(np.frombuffer(payload, np.uint8))


@pytest.fixture(scope="module")
def key():
    return make_key(b"evalkit test secret")


@pytest.fixture(scope="module")
def marked64(key):
    f = world(0, 64)
    return f, embed(f, PAYLOAD, key)


# ----------------------------------------------------------------------------------------------
# Round trip, keys, unmarked clips


def test_round_trip_recovers_payload_with_tiny_p(key, marked64):
    f, m = marked64
    assert m.shape == f.shape and m.dtype == np.uint8
    d = detect(m, key)
    assert isinstance(d, Detection)
    assert d.detected and d.payload == PAYLOAD
    assert d.p_value < 1e-30
    assert d.bit_confidence > 0.99
    assert np.array_equal(d.bits > 0, bits(PAYLOAD).astype(bool))
    out = d.to_dict()
    assert set(out) == {"detected", "payload", "p_value", "bit_confidence"}
    assert out["payload"] == PAYLOAD.hex() and out["detected"] is True
    json.dumps(out)


@pytest.mark.parametrize("size,frames", [(128, 8), (96, 1), (200, 4)])
def test_round_trip_other_sizes_and_lengths(key, size, frames):
    f = world(1, size, max(frames, 2))[:frames]
    payload = bytes(range(100, 116))  # 128 bits
    d = detect(embed(f, payload, key), key, payload_bits=128)
    assert d.detected and d.payload == payload


def test_round_trip_non_square_real_footage(key, real_videos_dir):
    f = read_video(real_videos_dir / "bikes.mp4", max_frames=8).frames
    d = detect(embed(f, PAYLOAD, key), key)
    assert d.detected and d.payload == PAYLOAD
    assert d.geometry["grid"] == 16


def test_wrong_key_is_not_detected(marked64):
    _, m = marked64
    for secret in ("other secret", b"evalkit test secreT"):
        d = detect(m, make_key(secret))
        assert not d.detected and d.payload is None
        assert d.p_value > 1e-3


def test_unmarked_clips_are_not_detected_and_p_is_large(key):
    ps = []
    for i in range(12):
        f = world(i, 64 if i % 2 else 96, 8, noise=float(i % 3))
        d = detect(f, make_key(f"key-{i}") if i % 3 else key)
        assert not d.detected and d.payload is None
        ps.append(d.p_value)
    noise = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    ps.append(detect(noise, key).p_value)
    assert min(ps) > 1e-3  # conservative: Bonferroni over the geometry search


def test_other_payload_same_key_reads_its_own_payload(key):
    f = world(2, 64)
    other = b"\xff" * 8
    d = detect(embed(f, other, key), key)
    assert d.payload == other


# ----------------------------------------------------------------------------------------------
# Attacks


def test_survives_h264_crf30_on_world_clip(key, tmp_path):
    f = world(1, 128, 16, noise=2.0, seed=7)
    m = embed(f, PAYLOAD, key)
    d = detect(h264(tmp_path, m, 30), key)
    assert d.detected and d.payload == PAYLOAD and d.p_value < DEFAULT_P_THRESHOLD


@pytest.mark.xfail(strict=True, reason="issue 5, not met: through CRF 18 + 30 a 32x32 clip holds about "
                   "10-20 bits at PSNR 42, not 64+24 (see the watermark module's Limits)")
def test_survives_h264_crf30_on_generator_size_world_clips(key, tmp_path):
    """The built-in generator's own format (16 frames, 32x32): signed at CRF 18, re-encoded at
    CRF 30 as `benchmarks/runner.py` does (`watermark_survival_crf30`). Strict xfail: it turns
    into a failure, to be promoted to a plain test, the day the scheme meets the target."""
    from evalkit.world.clips import make_clip_from_seed

    ok = 0
    for seed in (11, 12, 13, 14):
        f = make_clip_from_seed(seed, "test").frames
        assert f.shape == (16, 32, 32, 3)
        m = h264(tmp_path, embed(f, PAYLOAD, key), 18)
        ok += detect(h264(tmp_path, m, 30), key).payload == PAYLOAD
    assert ok == 4


def test_large_flat_clip_survives_h264_crf50(key, tmp_path):
    """The chroma profile: on a flat 256x256 clip the payload comes back after CRF 50."""
    f = world(3, 256, 16)
    m = embed(f, PAYLOAD, key)
    assert psnr(m, f) >= 42.0
    d = detect(h264(tmp_path, m, 50), key)
    assert d.detected and d.payload == PAYLOAD and d.p_value < 1e-12
    assert d.geometry["profile"] == 1


def test_survives_h264_crf30_on_real_footage(key, tmp_path, real_videos_dir):
    clip = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=24)
    m = embed(clip.frames, PAYLOAD, key)
    assert psnr(m, clip.frames) >= 42.0
    d = detect(h264(tmp_path, m, 30, fps=clip.fps), key)
    assert d.detected and d.payload == PAYLOAD


def test_survives_resize_crop_and_gain(key):
    f = world(1, 128, 8, seed=7)
    m = embed(f, PAYLOAD, key)
    half = np.stack([cv2.resize(x, (64, 64), interpolation=cv2.INTER_AREA) for x in m])
    crop = np.ascontiguousarray(m[:, 13:115, 13:115])  # centre crop 0.8, even size
    bright = np.clip(m.astype(np.float32) * 1.2, 0, 255).round().astype(np.uint8)
    grey = m.astype(np.float32).mean(axis=(1, 2, 3), keepdims=True)
    low = np.clip((m - grey) * 0.8 + grey, 0, 255).round().astype(np.uint8)
    for attacked in (half, crop, bright, low):
        d = detect(attacked, key)
        assert d.detected and d.payload == PAYLOAD, d.geometry


# ----------------------------------------------------------------------------------------------
# Colour channels and profiles



def test_survives_mirroring_and_letterbox_or_pillarbox_bars(key, tmp_path, real_videos_dir):
    f = world(2, 128, 8, seed=11)
    m = embed(f, PAYLOAD, key)
    mirrored = np.ascontiguousarray(m[:, :, ::-1])
    letterbox = np.pad(m, ((0, 0), (16, 16), (0, 0), (0, 0)))                           # black bars
    pillarbox = np.pad(m, ((0, 0), (0, 0), (20, 20), (0, 0)), constant_values=255)[:, :, ::-1]  # white, mirrored
    for name, attacked in (("mirrored", mirrored), ("bars-removed", letterbox),
                           ("bars-removed-mirrored", pillarbox)):
        d = detect(attacked, key)
        assert d.detected and d.payload == PAYLOAD and d.geometry["view"] == name, (name, d.geometry)
    assert detect(m, key).geometry["view"] == "as-is"
    # Bars through H.264 on real footage (the bars' edges ring, their insides stay flat).
    real = read_video(real_videos_dir / "bikes.mp4").frames[:24]
    boxed = np.pad(embed(real, PAYLOAD, key), ((0, 0), (40, 40), (0, 0), (0, 0)))
    d = detect(h264(tmp_path, boxed, 23), key)
    assert d.detected and d.payload == PAYLOAD, d.geometry


def test_survives_turns_and_names_the_turn(key, tmp_path, real_videos_dir):
    from evalkit.provenance import wm_grid as geo

    # every turn's undo map is the inverse of the edit it names (on a non-square frame)
    x = np.arange(3 * 5 * 2).reshape(3, 5, 2)
    edits = {"rotated 90° clockwise": lambda f: np.rot90(f, -1, axes=(-3, -2)),
             "rotated 90° counter-clockwise": lambda f: np.rot90(f, 1, axes=(-3, -2)),
             "rotated 180°": lambda f: np.rot90(f, 2, axes=(-3, -2)),
             "flipped upside down": lambda f: np.flip(f, -3),
             "mirrored left-right, then rotated 90° counter-clockwise": lambda f: np.rot90(np.flip(f, -2), 1, axes=(-3, -2)),
             "mirrored left-right, then rotated 90° clockwise": lambda f: np.rot90(np.flip(f, -2), -1, axes=(-3, -2))}
    assert set(edits) == set(dict(geo.TURNS))
    for name, undo in geo.TURNS:
        assert np.array_equal(undo(edits[name](x)), x), name
    m = embed(world(3, 96, 8, seed=12)[:, :, 16:], PAYLOAD, key)  # 96 x 80: a turn changes the shape
    for name, edit in edits.items():
        d = detect(np.ascontiguousarray(edit(m)), key)
        assert d.detected and d.payload == PAYLOAD and d.geometry["view"] == name, (name, d.geometry)
    # A phone-style quarter turn of real footage, then H.264.
    real = embed(read_video(real_videos_dir / "bikes.mp4").frames[:24], PAYLOAD, key)
    d = detect(h264(tmp_path, np.ascontiguousarray(np.rot90(real, -1, axes=(1, 2))), 23), key)
    assert d.detected and d.payload == PAYLOAD and d.geometry["view"] == "rotated 90° clockwise", d.geometry


def test_a_fade_in_and_out_is_undone_before_the_read(monkeypatch, real_videos_dir):
    """A fade scales each frame, mark included, by its own gain, so the plain mean of moving
    content is no longer the mean the mark was set on. Found by the benchmark's handling attacks
    (`--attacks handling`: these two clips, keys and payloads lost theirs to a fade over a quarter
    of the frames at each end); the detector now also reads the mean with each frame's gain
    undone, and `verify` names the fade."""
    from benchmarks.robustness import attacks
    from benchmarks.robustness import watermark as bench
    from evalkit.provenance.verify_words import edits as _edits

    carphone = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=92).frames[60:92]
    cases = [(bench.world_clips(1, 256, 0)[0][2], "watermark-bench-0-16", "0e7fdb163a4bf9dc"),
             (carphone, "watermark-bench-0-23", "bbe28e863a36aea5")]
    for frames, secret, payload in cases:
        key, payload = make_key(secret), bytes.fromhex(payload)
        faded = attacks._fade(embed(frames, payload, key), 0.25)
        d = detect(faded, key)
        assert d.detected and d.payload == payload and d.geometry["view"] == "fade undone"
        assert any("faded in or out" in e for e in _edits(d.geometry, faded))
        # the same read of frames whose brightness never swings (a trimmed, re-encoded clip the
        # view also reads) names no fade: it was said of clips that were only trimmed
        assert not any("faded" in e for e in _edits(d.geometry, frames))
        with monkeypatch.context() as mp:  # without the view, as before: the payload is lost
            mp.setattr(wm_grid, "defaded_mean", lambda f, **kw: None)
            assert detect(faded, key).payload != payload
    # no swing in brightness, no extra view (and no extra read to pay for in the p-value)
    assert wm_grid.defaded_mean(world(1, 64, 8)) is None
    assert wm_grid.defaded_mean(attacks._flicker(world(1, 64, 8), 0.1)) is None


def test_added_flat_frames_and_odd_bars_keep_the_mark_and_are_named(key, tmp_path, real_videos_dir):
    """Session 32's red team: 48 black frames after a moving 48-frame clip lost its mark, 24 read
    as "contrast lowered", and bars of odd or one-sided widths (measured a line off where the codec
    rings) lost it too."""
    from evalkit.provenance.verify_words import edits as _edits

    real = read_video(real_videos_dir / "bikes.mp4").frames[:48, :, :256]
    m = embed(real, PAYLOAD, key)
    black = np.zeros((48, *m.shape[1:]), np.uint8)
    long_tail = h264(tmp_path, np.concatenate([m, black]), 18)
    d = detect(long_tail, key)
    assert d.detected and d.payload == PAYLOAD and not any("contrast" in e for e in _edits(d.geometry, long_tail))
    views = dict(wm_grid.views(long_tail, wm_grid.mean_frame(long_tail)))
    assert "flat frames left out" in views  # the picture's own frames, read at the mark's strength
    alone = detect(np.ascontiguousarray(long_tail[:48]), key)
    assert np.abs(views["flat frames left out"] - wm_grid.mean_frame(long_tail[:48])).max() < 1e-3
    assert alone.payload == PAYLOAD
    said = _edits({**d.geometry, "view": "flat frames left out"}, long_tail)
    assert any("48 of 96 frames are black or flat" in e for e in said)
    short_tail = h264(tmp_path, np.concatenate([m, black[:24]]), 18)
    d = detect(short_tail, key)
    assert d.payload == PAYLOAD and not any("contrast" in e for e in _edits(d.geometry, short_tail))
    # a whole-clip read diluted by a third is the added frames, not a colour edit
    said = _edits({"view": "as-is", "gain": 0.67}, short_tail)
    assert any("24 of 72 frames are black or flat" in e for e in said) and not any("contrast" in e for e in said)
    assert any("contrast" in e for e in _edits({"view": "as-is", "gain": 0.67}, m))  # no flat frame: as before
    # unmarked footage with black frames added: no mark, whatever view
    assert not detect(h264(tmp_path, np.concatenate([real[:24], black[:24]]), 18), key).detected
    w = embed(world(2, 128, 16, seed=11), PAYLOAD, key)
    for pads in (((5, 5), (0, 0)), ((10, 0), (0, 0))):  # odd bars, a bar on one side only
        boxed = h264(tmp_path, np.pad(w, ((0, 0), *pads, (0, 0))), 18)
        d = detect(boxed, key)
        assert d.detected and d.payload == PAYLOAD and d.geometry["view"].startswith("bars-removed"), (pads, d.geometry)


def _soft_pillarbox(frames, bar, soft, level=16, right=None):
    """Pillarbox bars of `bar` px (`right` px on the right, when given) whose `soft` columns
    nearest the picture blend the bar with the picture's edge column, frame by frame (a blurred
    or ringing edge): `wm_grid.bars` stops short of them, so the picture is measured a few pixels
    padded."""
    right = bar if right is None else right
    out = np.pad(frames, ((0, 0), (0, 0), (bar, right), (0, 0)), constant_values=level).astype(np.float32)
    w = out.shape[2]
    for k in range(1, soft + 1):
        a = 0.6 ** k
        out[:, :, bar - k] = level + a * (out[:, :, bar] - level)
        out[:, :, w - right - 1 + k] = level + a * (out[:, :, w - right - 1] - level)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def test_bars_measured_a_few_lines_off_still_give_the_payload(key, tmp_path, real_videos_dir):
    """Session 37's grid: 18 px bars on the 176x144 carphone footage, then H.264 CRF 23, were
    measured 16 (the two lines next to the picture ring), and neither that view nor the crop
    search found a picture padded by 2 px: the payload was lost though the mark was intact. The
    detector now also searches the cuts a few pixels either side of each measured edge."""
    carphone = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=32).frames
    boxed = h264(tmp_path, np.pad(embed(carphone, PAYLOAD, key), ((0, 0), (18, 18), (0, 0), (0, 0))), 23)
    assert wm_grid.bars(boxed, wm_grid.mean_frame(boxed))[:2] != (18, 18)  # the edge is measured off
    d = detect(boxed, key)
    assert d.detected and d.payload == PAYLOAD and d.p_value < 1e-20, d.geometry
    assert d.geometry["view"] == "bars-removed" and d.geometry["bars"] == (18, 18, 0, 0), d.geometry
    # soft edges of 4 columns on a portrait picture, bars of 20 and 12 px, mirrored: measured
    # 4 px short on both sides, read at the true cut, left and right as the clip shows them
    portrait = np.ascontiguousarray(carphone[:16].transpose(0, 2, 1, 3))
    soft = np.ascontiguousarray(_soft_pillarbox(embed(portrait, PAYLOAD, key), 20, 4, right=12)[:, :, ::-1])
    assert wm_grid.bars(soft, wm_grid.mean_frame(soft))[2:] == (8, 16)
    d = detect(soft, key)
    assert d.detected and d.payload == PAYLOAD and d.geometry["view"] == "bars-removed-mirrored", d.geometry
    assert d.geometry["bars"] == (0, 0, 12, 20), d.geometry
    # a greyscale copy of a clip marked in Cr, so read from its luma companion: its gain is
    # reported over the companion's own, not as a mark at 0.2 of its strength ("contrast lowered")
    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames[:, :192, :192]
    luma = embed(np.ascontiguousarray(bikes), PAYLOAD, key).astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    luma += np.random.default_rng(1).normal(0, 4, luma.shape).astype(np.float32)  # sensor noise: the view
    grey = np.repeat(np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None], 3, axis=3)  # at 16 px reads weakly
    d = detect(_soft_pillarbox(grey, 20, 4), key)
    assert d.detected and d.payload == PAYLOAD and d.geometry.get("bars") == (0, 0, 20, 20), d.geometry
    assert d.geometry["part"] == "luma companion" and abs(d.geometry["gain"] - 1.0) < 0.1, d.geometry
    # the same bars around the unmarked footage: no mark, though every cut near the edges is read
    unmarked = h264(tmp_path, np.pad(carphone, ((0, 0), (18, 18), (0, 0), (0, 0))), 23)
    d = detect(unmarked, key)
    assert not d.detected and d.payload is None and d.p_value > 1e-3, (d.p_value, d.geometry)


def test_bar_search_reads_each_cut_with_the_profile_its_picture_size_was_marked_with(key, tmp_path,
                                                                                    real_videos_dir):
    """The embedder picks the mark's profile by the picture's size (luma under 160 px on the short
    side, Cr above). Session 38: 14 px bars on the 176x144 carphone footage, then H.264 CRF 30,
    were measured (0, 12): the top bar's blocks vary by ~3 levels across a line. The bar search
    tried the true cut (14, 14) but read every cut with the profile of the measured picture, 160
    lines, so Cr, and the payload was lost; each cut is now read with its own size's profile."""
    carphone = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=32).frames
    boxed = h264(tmp_path, np.pad(embed(carphone, PAYLOAD, key), ((0, 0), (14, 14), (0, 0), (0, 0))), 30)
    cut = wm_grid.bars(boxed, wm_grid.mean_frame(boxed))
    assert cut[0] != 14 and min(boxed.shape[1] - cut[0] - cut[1], boxed.shape[2]) >= 160, cut
    d = detect(boxed, key)
    assert d.detected and d.payload == PAYLOAD, (d.p_value, d.geometry)
    assert d.geometry["bars"] == (14, 14, 0, 0) and d.geometry["profile"] == 0, d.geometry


def test_the_registry_lays_the_picture_out_at_the_cut_the_mark_was_read_at():
    """A bar search reads the mark a few pixels from the measured bars: the registry compares the
    picture at that cut (it cut at the measured one); a cut no read could give is not believed."""
    from evalkit.provenance import wm_grid as geo
    from evalkit.provenance.registry import picture_as_read
    from evalkit.provenance.registry_windows import _layout

    content = np.random.default_rng(3).integers(0, 256, (4, 40, 60, 3), dtype=np.uint8)
    boxed = np.pad(content, ((0, 0), (10, 10), (0, 0), (0, 0)), constant_values=16)
    mean = geo.mean_frame(boxed)
    assert geo.bars(boxed, mean) == (10, 10, 0, 0)
    read = {"view": "bars-removed", "bars": (12, 8, 0, 0)}
    assert np.array_equal(picture_as_read(boxed, read)[0], mean[12:52])
    assert np.array_equal(_layout(boxed, "bars-removed", geo.cut_read(read, boxed.shape[1:3]))(boxed[0]), boxed[0, 12:52])
    for bad in ((40, 40, 0, 0), ("a", 1, 2, 3), (1, 2), (-2, 0, 0, 0), None):
        assert geo.cut_read({"bars": bad}, boxed.shape[1:3]) is None
        got = picture_as_read(boxed, {"view": "bars-removed", "bars": bad})[0]
        assert np.array_equal(got, mean[10:50])  # the measured bars, as before


def test_bars_are_found_only_where_flat_lines_never_change():
    from evalkit.provenance import wm_grid as geo

    rng = np.random.default_rng(0)
    content = rng.integers(0, 256, (6, 40, 60, 3), dtype=np.uint8)
    boxed = np.pad(content, ((0, 0), (6, 10), (4, 0), (0, 0)), constant_values=16)
    assert geo.bars(boxed, geo.mean_frame(boxed)) == (6, 10, 4, 0)
    # The line next to the picture rings after a codec: even widths and centred pairs absorb it.
    rung = np.pad(content, ((0, 0), (8, 8), (0, 0), (0, 0)), constant_values=16)
    rung[:, -8] = rng.integers(0, 256, (6, 60, 3))
    assert geo.bars(rung, geo.mean_frame(rung)) == (8, 8, 0, 0)
    assert geo.bars(content, geo.mean_frame(content)) == (0, 0, 0, 0)
    # A flat but changing border (a fade on a uniform background) is picture, not a bar.
    fade = boxed.copy()
    fade[:, :5] = (np.arange(6) * 30)[:, None, None, None]
    assert geo.bars(fade, geo.mean_frame(fade))[0] == 0
    # Bars that would leave under half the frame are not believed (a flat clip is not all bars).
    flat = np.full((4, 32, 32, 3), 90, np.uint8)
    assert geo.bars(flat, geo.mean_frame(flat)) == (0, 0, 0, 0)

def test_colour_channels_are_orthogonal_and_priced_in_rgb_mse():
    names = list(wm_grid.CHANNELS)
    pv = np.stack([wm_grid.CHANNELS[n][0] for n in names])
    dv = np.stack([wm_grid.CHANNELS[n][1] for n in names])
    assert np.allclose(pv @ dv.T, np.eye(len(names)), atol=1e-4)  # a mark in one is invisible to the others
    assert np.array_equal(wm_grid.CHANNELS["y"][1], np.ones(3))
    for n in names:
        assert wm_grid.CHANNELS[n][2] == pytest.approx(float(np.mean(wm_grid.CHANNELS[n][1] ** 2)))


def delta_channels(marked, frames):
    d = marked.astype(np.float64).mean(0) - frames.astype(np.float64).mean(0)
    return {n: d @ wm_grid.CHANNELS[n][0] for n in wm_grid.CHANNELS}


def test_small_clips_are_marked_in_luma_on_scheme_1s_plan(key):
    """Below 160 px the mark is a luma change on scheme 1's plan (pinned: the first dithers and
    code-bit positions scheme 1 drew for this key). Along the least-squares direction (the
    default since session 19) the RGB change is the smallest with that luma, so the same PSNR
    buys a lattice step 1/sqrt(0.746) larger than scheme 1's flat (1, 1, 1) change; the
    colour differences move only in the fixed proportion that direction implies."""
    ls = wm_grid.LUMA_DIRECTIONS["least-squares"]
    assert ls @ wm_grid.CHANNELS["y"][0] == pytest.approx(1.0)
    assert wm_grid.direction("y")[1] == pytest.approx(0.746, abs=1e-3)
    assert wm_grid.direction("y", "flat")[1] == 1.0 and wm_grid.direction("cr")[1] == wm_grid.CHANNELS["cr"][2]
    flat = WatermarkConfig(luma="flat")
    for f in (world(0, 64, 4), world(1, 128, 4)):
        assert wm.choose_profile(wm_grid.mean_frame(f), wm.get_config()) == 0
        d_flat = delta_channels(embed(f, PAYLOAD, key, flat), f)
        assert np.abs(d_flat["y"]).mean() > 1.0
        assert np.abs(d_flat["cr"]).max() < 0.6 and np.abs(d_flat["cb"]).max() < 0.6  # RGB rounding only
        m = embed(f, PAYLOAD, key)
        assert psnr(m, f) >= 42.0
        d = delta_channels(m, f)
        # the least-squares mark carries more luma at the same PSNR ...
        assert np.abs(d["y"]).mean() > 1.1 * np.abs(d_flat["y"]).mean()
        # ... and its Cr change is luma's times pv_cr . dv (RGB rounding aside)
        k = float(wm_grid.CHANNELS["cr"][0] @ ls)
        assert np.abs(d["cr"] - k * d["y"]).max() < 0.6
    plan = wm_scheme.make_plan(key, 16, flat, 88, DEFAULT_CODE, 0)
    assert np.allclose(plan.dither[:4], [0.965616, 0.242589, 0.239629, 0.749134], atol=1e-6)
    assert plan.codebit[:8].tolist() == [158, 201, 193, 177, 123, 147, 209, 126]
    assert plan.step[0] == pytest.approx(6.92416, abs=1e-4)
    assert np.all(plan.codebit[240:] == -1)  # level 3 and the Cr channel carry nothing
    new = wm_scheme.make_plan(key, 16, wm.get_config(), 88, DEFAULT_CODE, 0)
    assert np.array_equal(new.dither, plan.dither) and np.array_equal(new.codebit, plan.codebit)
    assert new.step[0] == pytest.approx(6.92416 / math.sqrt(wm_grid.direction("y")[1]), abs=1e-4)


@pytest.mark.parametrize("size", [64, 128])
def test_marks_made_flat_before_session_19_are_read_a_priori(key, size, tmp_path):
    """A clip marked along the old flat direction sits at gain sqrt(0.746) of the new plan's
    steps; the detector fits that gain a priori, so after an H.264 re-encode the old mark is
    found at the second decode (right after gain 1 of its profile), the new one at the first."""
    f = world(2, size, 12, noise=1.0)
    for cfg, gain, n in ((WatermarkConfig(luma="flat"), math.sqrt(wm_grid.direction("y")[1]), 2), (None, 1.0, 1)):
        p = tmp_path / f"m{size}.mp4"
        write_video(p, embed(f, PAYLOAD, key, cfg), fps=8.0, crf=23)
        r = detect(read_video(p).frames, key)
        assert r.detected and r.payload == PAYLOAD
        assert r.geometry["attempts"] == n and r.geometry["gain"] == pytest.approx(gain, abs=0.035)
    # the prior is only where a luma mark could be: the Cr profile reads at gain 1 alone
    assert wm_scheme.prior_gains(wm.get_config(), 1) == (1.0,)
    assert wm_scheme.prior_gains(wm.get_config(), 0)[1] == pytest.approx(0.8636, abs=1e-4)
    with pytest.raises(ValueError, match="luma"):
        WatermarkConfig(luma="diagonal")


def test_large_clips_are_marked_in_cr_and_found_after_a_resize(key):
    f = world(3, 256, 4)
    assert wm.choose_profile(wm_grid.mean_frame(f), wm.get_config()) == 1
    m = embed(f, PAYLOAD, key)
    assert psnr(m, f) >= 42.0
    d = delta_channels(m, f)
    assert np.abs(d["cr"]).mean() > 1.0
    # beside it only the weak luma companion (a fifth of the luma profile's step, since session 36)
    assert np.abs(d["y"]).mean() < 0.25 * np.abs(d["cr"]).mean()
    old = delta_channels(embed(f, PAYLOAD, key, WatermarkConfig(grey_companion=0.0)), f)
    assert np.abs(old["y"]).max() < 0.6 and np.abs(old["cb"]).max() < 0.6  # Cr alone: RGB rounding only
    small = np.stack([cv2.resize(x, (80, 80), interpolation=cv2.INTER_AREA) for x in m])
    # at 80 px the detector would pick the luma profile, but it tries every profile, and the luma
    # profile's a-priori reads include the Cr mark's luma companion
    assert wm.choose_profile(wm_grid.mean_frame(small), wm.get_config()) == 0
    r = detect(small, key)
    assert r.detected and r.payload == PAYLOAD
    assert r.geometry["profile"] == 1 or r.geometry.get("part") == "luma companion"
    r = detect(small, key, WatermarkConfig(grey_companion=0.0))  # a reader without it: from Cr
    assert r.detected and r.payload == PAYLOAD and r.geometry["profile"] == 1


def test_config_rejects_bad_channels_and_profiles():
    with pytest.raises(ValueError):
        WatermarkConfig(channels=("y", "q"))
    with pytest.raises(ValueError):
        WatermarkConfig(profiles=(((1.0, 1.0), (0.0, 0.0)),))  # a row per level (3)
    with pytest.raises(ValueError):
        WatermarkConfig(profiles=(((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),))  # nothing carries bits


# ----------------------------------------------------------------------------------------------
# Quality, determinism, inputs


@pytest.mark.parametrize("i,size,noise", [(0, 64, 0.0), (3, 128, 2.0), (4, 96, 0.0)])
def test_psnr_at_least_42_db(key, i, size, noise):
    f = world(i, size, 8, noise=noise)
    assert psnr(embed(f, PAYLOAD, key), f) >= 42.0


def test_presets_and_psnr_guard(key):
    f = world(5, 64, 4)
    assert psnr(embed(f, PAYLOAD, key, "light"), f) >= 46.0
    strong = embed(f, PAYLOAD, key, "strong")
    assert 40.0 <= psnr(strong, f) < 42.0
    assert detect(strong, key, "strong").payload == PAYLOAD
    d = detect(strong, key)  # presets differ only in step size: the gain search bridges them
    assert d.payload == PAYLOAD
    assert set(PRESETS) >= {"default", "strong", "light"}
    with pytest.raises(ValueError):
        embed(f, PAYLOAD, key, "no-such-preset")


def test_embed_is_deterministic(key, marked64):
    f, m = marked64
    assert np.array_equal(embed(f, PAYLOAD, key), m)
    assert np.array_equal(embed(f, PAYLOAD, make_key(b"evalkit test secret")), m)
    assert not np.array_equal(embed(f, b"\x00" * 8, key), m)
    assert not np.array_equal(embed(f, PAYLOAD, make_key("x")), m)
    assert np.array_equal(f, world(0, 64))  # input untouched


@pytest.mark.parametrize("payload", ["0123456789abcdef", 12345678, None, b"", b"1234567",
                                     b"x" * 33, [1, 2, 3, 4, 5, 6, 7, 8]])
def test_bad_payload_is_value_error(key, payload):
    f = world(0, 64, 2)
    with pytest.raises(ValueError):
        embed(f, payload, key)


def test_bad_frames_key_and_bits_are_value_errors(key):
    f = world(0, 64, 2)
    bad = [f.astype(np.float32), f[0], f[..., :2], f[:, :16, :16], f[:0], f.tolist()]
    for x in bad:
        with pytest.raises(ValueError):
            embed(x, PAYLOAD, key)
        with pytest.raises(ValueError):
            detect(x, key)
    for n in (0, 63, 60, 512, True, 64.0):
        with pytest.raises(ValueError):
            detect(f, key, payload_bits=n)
    for secret in ("", b"", None, 5):
        with pytest.raises(ValueError):
            make_key(secret)
    with pytest.raises(BadInputError):  # one-line CLI error too
        embed(f, b"short", key)
    with pytest.raises(ValueError):
        WatermarkConfig(psnr=10)


def test_key_hides_its_secret():
    k = make_key("hunter2-secret")
    assert k == make_key(b"hunter2-secret")
    assert "hunter2" not in repr(k) and k.seed.hex() not in repr(k)
    assert make_key("a").fingerprint != make_key("b").fingerprint


# ----------------------------------------------------------------------------------------------
# The error-correcting code


def test_ecc_corrects_injected_bit_errors_and_erasures():
    rng = np.random.default_rng(1)
    code = DEFAULT_CODE
    n = code.n_code_bits(88)
    assert n == 288
    for trial in range(20):
        info = rng.integers(0, 2, 88)
        c = code.encode(info)
        assert c.shape == (n,) and set(np.unique(c)) <= {0, 1}
        llr = 1.0 - 2.0 * c  # hard decisions, positive = 0
        flip = rng.choice(n, size=24, replace=False)  # 8% of the code bits wrong
        llr[flip] *= -1
        hard, soft = code.decode(llr, 88)
        assert np.array_equal(hard, info), trial
        assert np.all(np.sign(soft) == 1 - 2 * info)
        # a punctured prefix (what survives a centre crop): 140 of 288 bits, a few of them wrong
        pre = (1.0 - 2.0 * c[:140]) * 4
        pre[rng.choice(140, size=3, replace=False)] *= -1
        assert np.array_equal(code.decode(pre, 88)[0], info), trial


def test_ecc_small_code_and_errors():
    small = ConvCode(3, (0o7, 0o5))
    info = np.array([1, 0, 1, 1, 0, 0, 1])
    c = small.encode(info)
    assert c.size == small.n_code_bits(7) == 18
    llr = 1.0 - 2.0 * c
    llr[[2, 11]] *= -1
    assert np.array_equal(small.decode(llr, 7)[0], info)
    with pytest.raises(ValueError):
        ConvCode(1, (1, 1))
    with pytest.raises(ValueError):
        small.encode([0, 2])
    with pytest.raises(ValueError):
        small.decode(np.zeros(19), 7)


# ----------------------------------------------------------------------------------------------
# p-value calibration


def test_presence_bound_is_calibrated_on_random_phases():
    """Under the null the key's dithers make every phase uniform: the lattice-fit bound must
    give P(p <= a) <= a (it is a Chernoff bound, so conservative) yet stay informative."""
    rng = np.random.default_rng(2)
    n = 240
    ps = []
    for _ in range(400):
        fit = float(np.cos(4 * np.pi * rng.random(n)).sum())
        ps.append(math.exp(wm_pvalue.chernoff_log(wm_pvalue.log_i0, np.ones(n), fit)))
    ps = np.array(ps)
    for a in (0.01, 0.05, 0.2, 0.5):
        assert np.mean(ps <= a) <= a + 3 * math.sqrt(a * (1 - a) / ps.size)
    assert np.mean(ps <= 0.5) > 0.1  # not vacuous
    # and it is tight enough to see a real mark
    e = 0.05 * rng.normal(size=n)
    assert wm_pvalue.chernoff_log(wm_pvalue.log_i0, np.ones(n), float(np.cos(4 * np.pi * e).sum())) < math.log(1e-30)


def test_codeword_correlation_bound_is_calibrated_on_random_soft_bits():
    rng = np.random.default_rng(3)
    code = np.where(rng.random(300) < 0.5, 1.0, -1.0)
    ps = []
    for _ in range(400):
        soft = rng.normal(size=300) * rng.exponential(size=300)  # heavy-tailed, symmetric
        ps.append(math.exp(wm_pvalue.chernoff_log(wm_pvalue.log_cosh, np.abs(soft), float(code @ soft))))
    ps = np.array(ps)
    for a in (0.01, 0.05, 0.2):
        assert np.mean(ps <= a) <= a + 3 * math.sqrt(a * (1 - a) / ps.size)
    assert np.mean(ps <= 0.2) > 0.05


def test_decoding_random_soft_bits_never_gives_evidence(key):
    """Random soft values through the real decoder, MAC check and union bound: no payload
    verifies, and the correlation bound over every information word the decoder could have
    picked (2^(64 + mac_bits) of them; `detect` uses 2^64 only for MAC-verified payloads)
    never gets near the detection threshold."""
    rng = np.random.default_rng(4)
    cfg = WatermarkConfig()
    plan = wm_scheme.make_plan(key, 16, cfg, 64 + cfg.mac_bits, DEFAULT_CODE)
    worst = 0.0
    for _ in range(300):
        llr = rng.normal(size=plan.codebit.size) * rng.uniform(0.2, 3.0)
        r = wm_read.decode_llrs(llr, plan, key, cfg, 64)
        assert not r["ok"]
        worst = min(worst, r["log_corr"] + cfg.mac_bits * math.log(2))
    assert worst > math.log(1e-3)


def test_benchmark_attacks_keep_the_clip_readable(tmp_path):
    """The robustness benchmark's attack helpers: shapes, even sizes, a real remux."""
    from benchmarks.robustness import attacks as bench
    from benchmarks.robustness import watermark as grid

    f = world(0, 64, 4)
    assert bench.resize(f, 0.75).shape == (4, 48, 48, 3)
    assert bench.center_crop(world(0, 96, 2), 0.8).shape == (2, 76, 76, 3)
    assert bench.brightness(f, 1.2).max() <= 255 and bench.contrast(f, 0.8).dtype == np.uint8
    boxed = bench.letterbox(f)
    assert boxed.shape == (4, 80, 64, 3) and not boxed[:, :8].any() and np.array_equal(boxed[:, 8:72], f)
    grey = bench.greyscale(f)
    assert grey.shape == f.shape and np.array_equal(grey[..., 0], grey[..., 2])
    out = bench.remux(f, 8.0, tmp_path)
    assert out.shape == f.shape and psnr(out, f) > 30
    assert not list(tmp_path.iterdir())
    assert set(bench.ATTACKS) >= {"h264_crf23", "h264_crf50", "crop_0.8", "remux_mkv",
                                  "resize_0.75+h264_crf30", "h264_crf18+crf30"}
    # the editors' attacks: shapes kept (the square crop excepted), and each one changes the clip
    g = world(0, 96, 5)[:, :, :80]  # 80 x 96, not square
    for name, fn in bench.EDIT_ATTACKS.items():
        out = fn(g, 8.0, tmp_path)
        want = {"square_crop+h264_crf23": (5, 80, 80, 3), "speed_1.25": (4, 96, 80, 3),
                "screen_recording": (5, 86, 72, 3)}.get(name, g.shape)
        assert out.shape == want and out.dtype == np.uint8, name
        assert name == "square_crop+h264_crf23" or not np.array_equal(out, g), name
    assert np.array_equal(bench.EDIT_ATTACKS["reverse"](g, 8.0, tmp_path)[0], g[-1])
    assert np.array_equal(bench._shift(g, 3, 0)[:, :, 3:], g[:, :, :-3])
    write_video(tmp_path / "a.mp4", f, fps=8.0)
    (group, name, frames, fps), = grid.folder_clips(tmp_path)  # --clips: every .mp4 of a folder
    assert (group, name, frames.shape, fps) == ("folder", "a", f.shape, 8.0)


# ----------------------------------------------------------------------------------------------
# Time: long clips are marked in segments, so excerpts keep the mark (wm_time)


def test_segments_tile_the_clip_and_windows_span_one_segment_period():
    from evalkit.provenance import wm_time

    assert wm_time.segments(63, 32) == [(0, 63)]  # under two segments: one piece, as before
    assert wm_time.segments(100, 0) == [(0, 100)]
    for t in (64, 65, 95, 96, 250):
        segs = wm_time.segments(t, 32)
        assert segs[0][0] == 0 and segs[-1][1] == t
        assert all(b == c for (_, b), (c, _) in zip(segs, segs[1:]))  # contiguous
        assert all(b - a == 32 for a, b in segs[:-1]) and 0 < segs[-1][1] - segs[-1][0] <= 32
    assert wm_time.windows(24, 32) == [] and wm_time.windows(100, 0) == []
    w = wm_time.windows(32, 32)
    assert (0, 32) not in w and sorted({b - a for a, b in w}) == [16]  # the whole clip is read anyway
    w = wm_time.windows(200, 32)
    assert sorted(a for a, b in w if b - a == 32) == list(range(32))


@pytest.fixture(scope="module")
def carphone120(real_videos_dir):
    return read_video(real_videos_dir / "carphone_pristine.mp4").frames  # 120 frames, talking head


def test_excerpts_of_moving_footage_keep_the_mark(key, carphone120):
    f = carphone120
    m = embed(f, PAYLOAD, key)
    assert psnr(m, f) >= 42.0
    # an excerpt holding one whole 32-frame segment, starting mid-segment; the same with every
    # other frame dropped (a halved frame rate); the clip's head
    for excerpt in (m[37:110], m[37:110:2], m[:60]):
        d = detect(excerpt, key)
        assert d.detected and d.payload == PAYLOAD, d.geometry
    # the reason for segments: marked in one piece, the same excerpt had lost its mark
    one_piece = WatermarkConfig(segment_frames=0)
    d = detect(embed(f, PAYLOAD, key, one_piece)[37:110], key, one_piece)
    assert d.payload is None


def test_window_reads_keep_the_false_detection_bound(key, carphone120):
    # unmarked long footage is scanned window by window and still not detected, and a clip
    # marked with another key is not read as this key's
    ps = [detect(carphone120, make_key(f"window-key-{i}")).p_value for i in range(3)]
    other = embed(carphone120[:96], PAYLOAD, make_key("another key"))
    ps += [detect(other[5:80], key).p_value]
    assert min(ps) > 1e-3


def test_segments_decoded_together_need_the_right_alignment(key, carphone120):
    # the combined read of `detect`: the LLRs of every segment in step, summed, at the clip's own
    # geometry; on moving footage it decodes only where the windows line up with the segments
    m = embed(carphone120[:96], PAYLOAD, key)
    cfg = wm.get_config()
    h, w = m.shape[1:3]
    plan = wm_scheme.make_plan(key, cfg.grid_for(h, w), cfg, 64 + cfg.mac_bits, DEFAULT_CODE, 0)
    box = (0.0, 1.0, 0.0, 1.0)
    d = wm_read.decode_segments(wm_read.segment_tables(m, "as-is", 0, 32, cfg), plan, box, 1.0, cfg, key, 64)
    assert d.payload == PAYLOAD and d.geometry["segments"] == 3 and d.p_value < 1e-9
    off = wm_read.decode_segments(wm_read.segment_tables(m, "as-is", 12, 32, cfg), plan, box, 1.0, cfg, key, 64)
    assert off.payload is None and off.p_value == 1.0


# ----------------------------------------------------------------------------------------------
# Crops off centre (`wm_crops`)


def test_crop_sizes_step_finely_enough_to_hit_any_crop_in_range():
    from evalkit.provenance import wm_crops

    cfg = wm.get_config()
    h, w = 104, 128
    got = wm_crops.sizes(h, w, cfg, 0.5, 0.3)
    assert all(hc >= h - 1e-9 and wc >= w - 1e-9 for hc, wc in got)
    # every crop fraction in range, of both sides, of the width or of the height alone, lies within
    # the scan's tolerance (a third of a chip across half the 16-chip grid) of a size tried
    for f in np.linspace(0.52, 0.98, 47):
        for want in ((h / f, w / f), (h, w / f), (h / f, w)):
            near = min(max(abs(hc / want[0] - 1), abs(wc / want[1] - 1)) for hc, wc in got)
            assert near <= 0.3 / 16 + 1e-9, (f, want)
    assert wm_crops.scan_levels(cfg, 1, 32) == (1, 2) and wm_crops.scan_levels(cfg, 0, 16) == (0, 1)


def test_crops_off_centre_keep_the_mark(key, tmp_path, real_videos_dir):
    f = world(2, 128, 8, seed=5)
    m = embed(f, PAYLOAD, key)
    corner = np.ascontiguousarray(m[:, 24:, 24:])        # the bottom-right 0.81 of the frame
    side = np.ascontiguousarray(m[:, :, 10:90])          # 0.62 of the width, full height
    for attacked in (corner, h264(tmp_path, side, 23)):
        d = detect(attacked, key)
        assert d.detected and d.payload == PAYLOAD and d.geometry["crop"] == "off-centre", d.geometry
    # the search is what finds them: without it, the same clips lose the mark
    off = wm.WatermarkConfig(crop_search=0)
    assert detect(corner, key, config=off).payload is None
    # large footage takes the chroma profile: a corner crop of the 640x272 bikes, re-encoded
    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames
    mb = embed(bikes, PAYLOAD, key)
    d = detect(h264(tmp_path, np.ascontiguousarray(mb[:, :244, 64:]), 23, fps=25.0), key)
    assert d.payload == PAYLOAD and d.geometry["profile"] == 1, d.geometry
    y0, y1, x0, x1 = d.geometry["box"]
    assert abs(y1 - 244 / 272) < 0.01 and abs(x0 - 0.1) < 0.01


def shift(frames, dx, dy):
    """The picture moved by (dx, dy) pixels within its frame, the uncovered edge smeared (a
    stabiliser's or re-framing editor's shift)."""
    h, w = frames.shape[1:3]
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REPLICATE) for f in frames])


def test_a_picture_moved_within_its_frame_keeps_the_mark(key, tmp_path):
    for size, (dx, dy) in ((64, (3, 2)), (128, (4, -3))):
        m = embed(world(3, size, 8, seed=size), PAYLOAD, key)
        moved = h264(tmp_path, np.ascontiguousarray(shift(m, dx, dy)), 23)
        d = detect(moved, key)
        assert d.payload == PAYLOAD and d.geometry["crop"] == "off-centre", d.geometry
        y0, _, x0, _ = d.geometry["box"]  # the frame starts dx, dy pixels before the original
        assert abs(x0 * size + dx) < 0.75 and abs(y0 * size + dy) < 0.75, d.geometry["box"]
        if size == 64:  # the shift hypothesis is what finds it (a nearby crop size may fit at 128)
            assert detect(moved, key, config=wm.WatermarkConfig(shift_search=0)).payload is None
    # unmarked and moved: nothing
    assert detect(shift(world(4, 128, 8), 4, -3), key).p_value > 1e-3
    with pytest.raises(ValueError, match="shift_search"):
        wm.WatermarkConfig(shift_search=0.5)


def test_crop_search_keeps_the_false_detection_bound(key):
    # unmarked clips go through the whole crop search; a clip marked with another key and then
    # cropped is not read as this key's
    ps = [detect(world(i, 128, 8, noise=float(i % 2)), make_key(f"crop-key-{i}")).p_value for i in range(4)]
    other = embed(world(1, 128, 8), PAYLOAD, make_key("another key"))
    ps.append(detect(np.ascontiguousarray(other[:, 20:, 16:]), key).p_value)
    assert min(ps) > 1e-3
    with pytest.raises(ValueError, match="crop_search"):
        wm.WatermarkConfig(crop_search=0.1)


def rotate(frames, deg):
    h, w = frames.shape[1:3]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)  # positive: counter-clockwise
    return np.stack([cv2.warpAffine(f, m, (w, h), borderMode=cv2.BORDER_REFLECT) for f in frames])


def test_rotations_about_the_centre_keep_the_mark(key, tmp_path, real_videos_dir):
    m = embed(world(2, 64, 8, seed=6), PAYLOAD, key)
    for deg in (5.0, -8.4):
        d = detect(rotate(m, deg), key)
        assert d.detected and d.payload == PAYLOAD and abs(d.geometry["rotation"] - deg) <= 0.25, (deg, d.geometry)
    # the search is what finds them: without it, the same clip loses the mark
    assert detect(rotate(m, 5.0), key, config=wm.WatermarkConfig(rotation_search=0)).payload is None
    # mirrored, then rotated: read on the mirrored view
    d = detect(rotate(np.ascontiguousarray(m[:, :, ::-1]), 6.0), key)
    assert d.payload == PAYLOAD and d.geometry["view"] == "mirrored", d.geometry
    # footage in the chroma profile, rotated clockwise, then re-encoded
    bikes = embed(read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames, PAYLOAD, key)
    d = detect(h264(tmp_path, rotate(bikes, -3.0), 23, fps=25.0), key)
    assert d.payload == PAYLOAD and d.geometry["profile"] == 1 and d.geometry["rotation"] < 0, d.geometry


def test_rotation_search_keeps_the_false_detection_bound(key):
    # rotated unmarked clips, and a rotated clip marked with another key, are not read as marked
    ps = [detect(rotate(world(i, 96, 8, noise=float(i % 2)), 4.0 * i - 6), make_key(f"rot-key-{i}")).p_value
          for i in range(4)]
    other = embed(world(1, 96, 8), PAYLOAD, make_key("another key"))
    ps.append(detect(rotate(other, 6.0), key).p_value)
    assert min(ps) > 1e-3
    with pytest.raises(ValueError, match="rotation_search"):
        wm.WatermarkConfig(rotation_search=45)


@pytest.mark.parametrize("frames,size", [(16, 64), (80, 96), (130, 128)])  # one piece; 2 and 4 segments
def test_a_streamed_mark_equals_the_mark_made_in_memory(frames, size):
    import hashlib

    from evalkit.provenance.wm_stream import embed_stream, scan_frames

    f = make_clip("test", 1, 0, WorldConfig(frames=frames, size=size, noise=2.0)).frames
    key = wm.make_key("stream")
    stats = scan_frames(iter(f))
    assert stats.frames == frames and stats.sha256 == hashlib.sha256(f.tobytes()).digest()
    assert np.array_equal(stats.mean, wm_grid.mean_frame(f))
    streamed = np.stack(list(embed_stream(iter(f), stats, b"\x11" * 8, key)))
    assert np.array_equal(streamed, wm.embed(f, b"\x11" * 8, key))
    with pytest.raises(wm.WatermarkInputError, match="changed between passes"):
        list(embed_stream(iter(f[:-1]), stats, b"\x11" * 8, key))
    with pytest.raises(wm.WatermarkInputError, match="payload"):
        embed_stream(iter(f), stats, b"\x11" * 3, key)  # raised at once, before a frame is read


def test_sign_streams_a_video_over_the_decode_limit(tmp_path, monkeypatch):
    # the decode limit guards memory; signing holds one segment, so a long video is not refused
    from evalkit.provenance.c2pa import default_payload, sign_file
    from evalkit.provenance.credentials import init_keys
    from evalkit.provenance.signers import load_signer

    creds = init_keys(tmp_path / "creds")
    clip = make_clip("test", 3, 0, WorldConfig(frames=72, size=128, noise=2.0))
    src = write_video(tmp_path / "long.mp4", clip)
    decoded = read_video(src).frames
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(decoded.nbytes // 3))
    key = wm.make_key("7e57" * 16)
    res = sign_file(src, tmp_path / "long.signed.mp4", load_signer(creds.signer_cert, creds.signer_key),
                    watermark=True, wm_key=key, generator={"name": "test"})
    assert res.payload == default_payload(key, decoded).hex()
    monkeypatch.delenv("EVALKIT_MAX_DECODED_BYTES")
    marked = read_video(res.path).frames
    assert marked.shape == decoded.shape and psnr(marked, decoded) > 36  # the mark at 42 dB, then CRF 18
    d = wm.detect(marked, key)
    assert d.detected and d.payload.hex() == res.payload


def test_forgery_benchmark_measures_a_copied_mark():
    """The forgery benchmark's copy attack really carries a mark over: the exact mark of a
    flat-background clip stamped on a grey still reads as marked, with the source's payload
    (the weakness its README section reports), so its zeros elsewhere are measurements."""
    from benchmarks.robustness import watermark_forgery as forge

    tg = forge.targets(64)
    assert {"grey still", "gradient"} <= set(tg) and all(t.shape == (16, 64, 64, 3) for t in tg.values())
    rows = forge.copy_attacks(64, 2, bytes(range(32)), {"grey still": tg["grey still"]})
    assert rows["exact"]["n"] == 2 and rows["exact"]["payload"] >= 1
    assert "estimate, median 21" in rows and "| exact | 64 |" in forge.markdown(
        [{"attack": k, "size": 64, **v} for k, v in rows.items()])


# ---------------------------------------------------------------------------------------------
# The detector's fast paths agree with the direct computations they replace


def test_fast_measurements_agree_with_direct_ones():
    rng = np.random.default_rng(0)
    img = rng.uniform(0, 255, (37, 53))
    integ = wm_grid.Integral(img)
    # whole-row interpolation (the crop scan's tile corners) equals the four-corner formula
    r, c = rng.uniform(-2, 40, 30), rng.uniform(-2, 56, 25)
    np.testing.assert_allclose(integ.table(r, c), integ._at(r[:, None], c[None, :]), rtol=1e-12, atol=1e-6)
    # chip means as a separable linear map equal the summed-area measurement, frame by frame
    # and averaged (so a window's chips are its frames' chips averaged)
    for g in (4, 16, 32):
        direct = integ.chips(g)[0]
        linear = wm_grid.chip_weights(37, g) @ img @ wm_grid.chip_weights(53, g).T
        np.testing.assert_allclose(linear, direct, rtol=1e-9, atol=1e-9)
    # lattice fits of many boxes at once equal one box at a time over its valid coefficients
    n, gains = 300, np.exp(np.linspace(-0.3, 0.3, 9))
    vs, st, di = rng.normal(0, 40, (5, n)), rng.uniform(1, 3, n), rng.uniform(0, 1, n)
    valids = rng.random((5, n)) > 0.3
    fits = wm_read.box_fits(vs, valids, st, di, gains)
    for b in range(5):
        e = (vs[b, valids[b]] / st[valids[b]])[None, :] / gains[:, None] - di[valids[b]]
        np.testing.assert_allclose(fits[b], np.cos(4 * np.pi * e).sum(axis=1), atol=2e-3 * valids[b].sum() ** 0.5)


def test_ecc_decode_is_a_max_log_map_decoder():
    """The vectorised BCJR agrees with brute force over every codeword of a small code: the hard
    decisions are the maximum-likelihood codeword, each output LLR the max-log difference."""
    code = ConvCode(constraint=3, generators=(0o7, 0o5))
    n_info = 6
    words = [(np.array(u), code.encode(np.array(u))) for u in np.ndindex(*(2,) * n_info)]
    rng = np.random.default_rng(1)
    for _ in range(20):
        llr = rng.normal(0, 2, code.n_code_bits(n_info))
        score = np.array([0.5 * np.sum(llr * (1 - 2 * cw)) for _, cw in words])
        hard, out = code.decode(llr, n_info)
        assert np.array_equal(hard, words[int(np.argmax(score))][0])
        for i in range(n_info):
            best0 = max(s for (u, _), s in zip(words, score) if u[i] == 0)
            best1 = max(s for (u, _), s in zip(words, score) if u[i] == 1)
            assert out[i] == pytest.approx(best0 - best1, abs=1e-9)
