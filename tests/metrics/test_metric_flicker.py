"""Temporal flicker (VBench), warping error and temporal HF ratio: exactness on real footage,
the frozen / noise / shuffled controls, motion versus flicker, and the shared metric tester."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from evalkit.clip import Clip
from evalkit.metrics.base import PerClipMetric
from evalkit.metrics.flicker import (
    TemporalFlicker,
    TemporalHFRatio,
    WarpingError,
    frame_maes,
    temporal_flicker_score,
    hf_min_frames,
    temporal_hf_ratio,
    warping_error,
    warping_error_pairs,
)
from evalkit.metrics.stats import Estimate
from evalkit.video import read_video

from .helpers import CHECKS, MetricCase, upd


@pytest.fixture(scope="module")
def footage(real_videos_dir):
    """name -> uint8 [T, H, W, 3]: carphone (pristine, distorted: all 120 frames), bikes (60)."""
    return {
        "carphone_pristine": read_video(real_videos_dir / "carphone_pristine.mp4").frames,
        "carphone_distorted": read_video(real_videos_dir / "carphone_distorted.mp4").frames,
        "bikes": read_video(real_videos_dir / "bikes.mp4", max_frames=60).frames,
    }


def vbench_reference(frames: np.ndarray) -> float:
    """VBench's temporal_flickering formula, written out plainly: per consecutive pair the mean
    absolute difference over every pixel and channel, averaged over pairs, (255 - mean) / 255.
    float64 throughout (VBench uses float32; see test_vbench_float32_rounding)."""
    maes = []
    for i in range(len(frames) - 1):
        a = frames[i].astype(np.float64)
        b = frames[i + 1].astype(np.float64)
        maes.append(np.mean(np.abs(a - b)))
    return (255.0 - float(np.mean(maes))) / 255.0


# ------------------------------------------------------------------------------------------------
# VBench flicker: exact on real footage


@pytest.mark.parametrize("name", ["carphone_pristine", "bikes"])
def test_vbench_flicker_equals_reference_on_real_footage(footage, name):
    frames = footage[name]
    got, ref = temporal_flicker_score(frames), vbench_reference(frames)
    assert abs(got - ref) <= 1e-9, (got, ref)
    assert 0.9 < got < 1.0


def test_vbench_float32_rounding_is_below_1e6(footage):
    """VBench's own float32 arithmetic (cv2.absdiff on float32, np.mean in float32) differs from
    the exact value only by rounding."""
    f = footage["carphone_pristine"]
    maes = [np.mean(cv2.absdiff(np.array(f[i], dtype=np.float32), np.array(f[i + 1], dtype=np.float32)))
            for i in range(len(f) - 1)]
    vbench = (255.0 - np.mean(np.array(maes)).item()) / 255.0
    assert abs(vbench - temporal_flicker_score(f)) < 1e-6


def test_frame_maes_are_per_pair_means(footage):
    f = footage["carphone_pristine"][:5]
    expected = [np.abs(f[i].astype(int) - f[i + 1].astype(int)).mean() for i in range(4)]
    np.testing.assert_allclose(frame_maes(f), expected, rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# controls


def _smooth_texture(rng, h: int, w: int) -> np.ndarray:
    """uint8 [h, w, 3]: blurred noise with natural-image-like contrast."""
    x = cv2.GaussianBlur(rng.uniform(0, 255, (h, w, 3)).astype(np.float32), (0, 0), 3)
    return np.clip((x - x.mean()) / x.std() * 40 + 128, 0, 255).astype(np.uint8)


def test_frozen_clip_controls(footage):
    frozen = np.repeat(footage["carphone_pristine"][:1], 12, axis=0)
    assert temporal_flicker_score(frozen) == 1.0
    assert warping_error(frozen) == 0.0  # exactly, as defined (it read 3e-8 here, 4.7e-6 on noise)
    noise = np.repeat(np.random.default_rng(0).integers(0, 256, (1, 48, 48, 3), dtype=np.uint8), 6, axis=0)
    assert warping_error(noise) == 0.0
    assert temporal_hf_ratio(frozen) == 0.0


def test_random_noise_clip_scores_much_worse(footage):
    real = footage["carphone_pristine"][::3]  # 40 frames spanning the clip's motion
    noise = np.random.default_rng(0).integers(0, 256, real.shape, dtype=np.uint8)
    assert temporal_flicker_score(noise) < temporal_flicker_score(real) - 0.25  # MAE ~85 vs ~4
    assert warping_error(noise) > 30 * warping_error(real)
    assert abs(temporal_hf_ratio(noise) - 0.75) < 0.03  # white: 1 - cutoff of its energy
    assert temporal_hf_ratio(real) < 0.4


def test_shuffled_frames_score_worse(footage):
    """Shuffling needs frames that differ: 40 frames spanning the clip (every 3rd). Measured:
    warping error 6.8e-4 -> 4.7e-3, HF ratio 0.18 -> 0.74."""
    real = footage["carphone_pristine"][::3]
    shuffled = real[np.random.default_rng(1).permutation(len(real))]
    assert warping_error(shuffled) > 3 * warping_error(real)
    assert temporal_hf_ratio(shuffled) > 3 * temporal_hf_ratio(real)
    assert temporal_flicker_score(shuffled) < temporal_flicker_score(real)


def test_motion_is_penalised_by_vbench_flicker_but_not_by_warping_error():
    """A smoothly translating scene (2 px/frame) against a static scene with a +-6 level brightness
    flicker: VBench's score ranks the honest motion *worse*; the warping error ranks it far better."""
    rng = np.random.default_rng(2)
    canvas = _smooth_texture(rng, 72, 120)
    moving = np.stack([canvas[4:68, 4 + 2 * t:84 + 2 * t] for t in range(16)])
    static = canvas[4:68, 4:84].astype(int)
    flickering = np.stack([np.clip(static + (6 if t % 2 else -6), 0, 255) for t in range(16)])
    flickering = flickering.astype(np.uint8)
    assert temporal_flicker_score(moving) < temporal_flicker_score(flickering) < 1.0
    assert warping_error(moving) < 1e-4 < warping_error(flickering)
    assert warping_error(moving) * 100 < warping_error(flickering)
    assert temporal_hf_ratio(moving) < 0.3 < 0.99 < temporal_hf_ratio(flickering)


def test_heavy_compression_looks_more_stable(footage):
    """carphone_distorted is the same sequence at a very low bitrate: compression removes sensor
    noise and fine temporal detail, so every temporal metric calls it *more* stable than the
    pristine capture (first 40 frames: flicker 0.9942 vs 0.9824, HF ratio 0.15 vs 0.25, warping
    error 1.4e-4 vs 4.1e-4). Temporal metrics do not measure spatial quality."""
    pristine = footage["carphone_pristine"][:40]
    distorted = footage["carphone_distorted"][:40]
    assert temporal_flicker_score(distorted) > temporal_flicker_score(pristine)
    assert temporal_hf_ratio(distorted) < temporal_hf_ratio(pristine)
    assert warping_error(distorted) < warping_error(pristine)


# ------------------------------------------------------------------------------------------------
# HF ratio and warping error: exact small cases


@pytest.mark.parametrize("k,expect_high", [(2, False), (4, False), (5, True), (16, True)])
def test_hf_ratio_of_a_pure_temporal_sinusoid(k, expect_high):
    """Brightness oscillating at k/32 cycles per frame sits in one bin: all its energy is above the
    cutoff (0.25 x Nyquist = 0.125 = 4/32 cycles per frame) or none is, up to uint8 rounding."""
    t = np.arange(32)
    level = np.round(128 + 60 * np.cos(2 * np.pi * k * t / 32)).astype(np.uint8)
    frames = np.broadcast_to(level[:, None, None, None], (32, 6, 5, 3)).copy()
    ratio = temporal_hf_ratio(frames)
    assert ratio > 0.99 if expect_high else ratio < 0.01


@pytest.mark.parametrize("t", [2, 3, 16, 17, 40])
def test_hf_ratio_equals_the_spectrum_read_directly(t):
    """The low-bin shortcut (Parseval) against the definition: an FFT along time of every pixel
    and channel, the weighted energy above the cutoff over the total."""
    rng = np.random.default_rng(t)
    frames = np.cumsum(rng.integers(-9, 10, (t, 9, 7, 3)), axis=0).clip(-100, 100).astype(np.int16)
    frames = (frames + 128).astype(np.uint8)
    for cutoff in (0.0, 0.1, 0.25, 0.6):
        x = frames.astype(np.float64)
        x -= x.mean(axis=0)
        p = np.abs(np.fft.rfft(x, axis=0)) ** 2
        k = np.arange(p.shape[0])
        w = np.where((k == 0) | ((t % 2 == 0) & (k == t // 2)), 1.0, 2.0)
        per_bin = (p.reshape(len(k), -1).sum(1)) * w
        want = per_bin[k / t > cutoff * 0.5].sum() / per_bin.sum()
        if t < hf_min_frames(cutoff):  # no bin but DC at or below the cutoff: every change is "high"
            assert want == pytest.approx(1.0) and np.isnan(temporal_hf_ratio(frames, cutoff=cutoff))
        else:
            assert temporal_hf_ratio(frames, cutoff=cutoff) == pytest.approx(want, rel=1e-14, abs=1e-15)  # "to 1e-15" (docs)


def test_hf_ratio_is_undefined_below_eight_frames():
    """A smooth ramp of 6 frames read 1.0 (all flicker), the same ramp of 16 frames 0.2."""
    ramp = lambda t: np.broadcast_to(np.linspace(40, 200, t).astype(np.uint8)[:, None, None, None],  # noqa: E731
                                     (t, 4, 4, 3)).copy()
    assert hf_min_frames() == 8
    assert np.isnan(temporal_hf_ratio(ramp(6))) and np.isnan(temporal_hf_ratio(ramp(7)))
    assert temporal_hf_ratio(ramp(8)) < 0.5 and temporal_hf_ratio(ramp(16)) < 0.3


def test_hf_ratio_chunking_and_cutoff():
    frames = np.random.default_rng(3).integers(0, 256, (10, 37, 11, 3), dtype=np.uint8)
    assert temporal_hf_ratio(frames, chunk_bytes=800) == pytest.approx(temporal_hf_ratio(frames), rel=1e-12)
    # a long clip takes the FFT, in blocks bounded whatever its length: the same value as a plain
    # FFT of the whole (the block of rows was [T, 64 * W * 3] float64: 8.8 GB at 18,000 frames)
    long = np.random.default_rng(4).integers(0, 256, (300, 6, 5, 3), dtype=np.uint8)
    x = long.reshape(300, -1).astype(np.float64)
    x -= x.mean(axis=0)
    e = np.abs(np.fft.rfft(x, axis=0)) ** 2
    w = np.full(e.shape[0], 2.0)
    w[0] = w[-1] = 1.0
    k = np.arange(e.shape[0])
    ref = float((w[k / 300 > 0.125] @ e[k / 300 > 0.125]).sum() / (w @ e).sum())
    assert temporal_hf_ratio(long, chunk_bytes=8 * 300 * 3 * 7) == pytest.approx(ref, rel=1e-9)
    assert temporal_hf_ratio(frames, cutoff=0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="cutoff"):
        temporal_hf_ratio(frames, cutoff=1.0)


def test_warping_error_pairs_and_reductions():
    rng = np.random.default_rng(4)
    canvas = _smooth_texture(rng, 40, 60)
    clip = np.stack([canvas[4:36, 4 + t:52 + t] for t in range(5)])
    pairs = warping_error_pairs(clip)
    assert set(pairs) == {"start", "mse", "mae", "valid_fraction"} and pairs["mse"].shape == (4,)
    assert pairs["start"].tolist() == [0, 1, 2, 3]
    assert (pairs["valid_fraction"] > 0.8).all()
    assert warping_error(clip) == pytest.approx(pairs["mse"].mean())
    assert warping_error(clip, reduction="mae") == pytest.approx(pairs["mae"].mean())
    assert warping_error(clip, method="dis") < 1e-3
    with pytest.raises(ValueError, match="reduction"):
        warping_error(clip, reduction="huber")
    with pytest.raises(ValueError, match="at least 2 frames"):
        warping_error(clip[:1])


def test_a_long_clip_reads_evenly_spaced_pairs_and_each_pair_as_in_the_whole_read():
    from evalkit.metrics.flicker import warp_pair_starts

    assert warp_pair_starts(65, 64).tolist() == list(range(64)) and warp_pair_starts(1, 64).tolist() == []
    starts = warp_pair_starts(300, 64)
    assert len(starts) == 64 and starts[0] == 0 and starts[-1] == 298 and (np.diff(starts) >= 4).all()
    assert warp_pair_starts(300, None).tolist() == list(range(299))
    rng = np.random.default_rng(5)
    canvas = _smooth_texture(rng, 40, 200)
    clip = np.stack([canvas[4:36, t:32 + t] for t in range(0, 150, 1)])  # 150 frames, a pan
    clip[90] = 255 - clip[90]  # one bad frame: two pairs around it
    every = warping_error_pairs(clip, max_pairs=None)
    some = warping_error_pairs(clip, max_pairs=16)
    assert len(every["mse"]) == 149 and len(some["mse"]) == 16
    np.testing.assert_array_equal(some["mse"], every["mse"][some["start"]])  # the same pairs, the same numbers
    assert warping_error(clip, max_pairs=None) == pytest.approx(np.nanmean(every["mse"]))
    assert warping_error(clip) == pytest.approx(np.nanmean(every["mse"][warp_pair_starts(150)]))


# ------------------------------------------------------------------------------------------------
# classes


def _video_batches(seed: int, sizes=(2, 1, 3)) -> list:
    """float32 [B, 8, 3, 20, 24] batches in [0, 1] (smooth moving texture plus noise); 8 frames, the
    fewest the HF ratio is defined on."""
    rng = np.random.default_rng(seed)
    out = []
    for b in sizes:
        clips = []
        for _ in range(b):
            canvas = _smooth_texture(rng, 30, 40).astype(np.float32) / 255
            clip = np.stack([canvas[5:25, 2 + t:26 + t] for t in range(8)])  # [T, H, W, 3]
            clip = np.clip(clip + rng.normal(0, rng.uniform(0, 0.05), clip.shape), 0, 1)
            clips.append(torch.from_numpy(clip).permute(0, 3, 1, 2).float())
        out.append(upd(torch.stack(clips)))
    return out


def _per_clip_reference(fn):
    """Mean over clips of the functional on uint8 frames made by `Clip.from_tensor`."""
    def ref(batches):
        vals = [fn(Clip.from_tensor(v).frames) for b in batches for v in b.args[0]]
        return float(np.mean(vals))
    return ref


BATCHES = _video_batches(5)
CASES = {
    "flicker": MetricCase(TemporalFlicker, BATCHES, _per_clip_reference(temporal_flicker_score)),
    "warping": MetricCase(WarpingError, BATCHES, _per_clip_reference(warping_error)),
    "hf_ratio": MetricCase(TemporalHFRatio, BATCHES, _per_clip_reference(temporal_hf_ratio)),
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", list(CASES))
def test_per_clip_metric_classes(name, check):
    check(CASES[name])


def test_class_on_real_footage_matches_functional_and_gives_a_ci(footage):
    frames = footage["carphone_pristine"][:30]
    clips = [frames[i:i + 10] for i in (0, 10, 20)]
    video = torch.stack([Clip(c).to_tensor() for c in clips])  # [3, 10, 3, H, W] float in [0, 1]
    m = TemporalFlicker()
    m.update(video[:2])
    m.update(video[2:])
    expected = [temporal_flicker_score(c) for c in clips]  # uint8 -> float -> uint8 is lossless
    assert m.compute().item() == pytest.approx(np.mean(expected), abs=1e-12)
    np.testing.assert_allclose(m.per_clip(), expected, atol=1e-12)
    est = m.compute_with_ci(n_boot=200)
    assert isinstance(est, Estimate) and est.n == 3
    assert est.value == pytest.approx(np.mean(expected)) and est.ci_low <= est.value <= est.ci_high
    assert m.protocol()["metric"] == "temporal_flicker" and m.protocol()["n"] == 3


def test_classes_refuse_bad_input_and_nan_scores():
    with pytest.raises(ValueError, match=r"\[B, T, 3, H, W\]"):
        TemporalFlicker().update(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        TemporalFlicker().update(torch.full((1, 3, 3, 4, 4), float("nan")))
    with pytest.raises(RuntimeError, match="before any update"), pytest.warns(UserWarning, match="before"):
        TemporalFlicker().compute()  # torchmetrics warns too

    class Broken(PerClipMetric):
        def score_clip(self, frames):
            return math.nan

    with pytest.raises(ValueError, match="clip 0 of the batch scored nan"):
        Broken().update(torch.zeros(1, 3, 3, 4, 4))


def test_warping_error_pairs_of_large_frames_run_in_threads_with_the_same_numbers(footage, monkeypatch):
    from evalkit.metrics import flicker

    frames = footage["bikes"][:6]  # 640 x 272: over the threading floor
    threaded = flicker.warping_error_pairs(frames)
    monkeypatch.setattr(flicker, "_cpus", lambda: 1)
    serial = flicker.warping_error_pairs(frames)
    for k in ("mse", "mae", "valid_fraction"):
        assert np.array_equal(threaded[k], serial[k], equal_nan=True), k
    assert np.all(np.isfinite(serial["mse"])) and serial["mse"].shape == (5,)
