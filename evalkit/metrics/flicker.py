"""Temporal consistency of a clip: VBench flicker, motion-compensated warping error, HF energy ratio.

All functionals take uint8 frames [T, H, W, 3] (a `Clip`'s layout); the torchmetrics classes take
float videos [B, T, 3, H, W] in [0, 1] and convert with round(x * 255) (`base.videos_to_uint8`),
so a clip scores the same from disk or from a model.

- `temporal_flicker_score`: VBench's "temporal_flickering" dimension. VBench
  (vbench/temporal_flickering.py) computes, per clip, `np.mean(cv2.absdiff(f_t, f_t+1))` over all
  pixels and channels in float32 for each consecutive pair, then `(255 - mean over pairs) / 255`.
  Higher is better, 1.0 for a frozen clip. It only means "no flicker" on static scenes (VBench
  filters to static clips first): any motion lowers it.
  Exactness: absolute differences of uint8 are integers, so we sum them exactly (cv2.sumElems
  returns a float64 sum of integers < 2^53) and divide once in float64. VBench's float32
  `np.mean` rounds (pairwise summation, ~1e-7 relative); we report the exact value of their
  formula, not their float32 rounding of it. VBench decodes with cv2.VideoCapture (BGR): channel
  order does not change the MAE, but a different decoder's YUV->RGB conversion can.
- `warping_error`: the temporal warping error of Lai et al. (ECCV 2018, "Learning blind video
  temporal consistency"): optical flow f_t -> f_t+1 (OpenCV Farneback on grayscale), f_t+1 warped
  back onto f_t with cv2.remap, occlusions masked by the forward-backward check of Ruder et al.
  (GCPR 2016), mean squared error over the valid pixels in [0, 1] units. Works on moving scenes.
- `temporal_hf_ratio`: share of temporal signal energy above a cutoff frequency; white temporal
  noise (random or shuffled frames) puts ~1 - cutoff (0.75) of its energy there, smooth motion little.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from evalkit.metrics.base import PerClipMetric, as_frames

# --------------------------------------------------------------------------------------------
# VBench temporal flickering


# Bytes of absolute differences per cv2.absdiff call: one call for a whole small clip (Python
# overhead dominates there), one frame pair at a time for HD (stays in cache).
_CHUNK_BYTES = 1 << 20


def frame_maes(frames) -> np.ndarray:
    """float64 [T-1]: mean |f_t+1 - f_t| over all pixels and channels, in uint8 units (0..255)."""
    f = as_frames(frames)
    t, h, w, c = f.shape
    flat = f.reshape(t * h, w * c)  # one-channel 2-D view: cv2.sumElems takes at most 4 channels
    step = max(1, _CHUNK_BYTES // f[0].size)  # frame pairs per absdiff call
    sums = np.empty(t - 1, dtype=np.float64)
    for s in range(0, t - 1, step):
        e = min(s + step, t - 1)
        # absdiff of uint8 is the exact |a - b| (no wrap); each frame is read once per call
        diff = cv2.absdiff(flat[s * h:e * h], flat[(s + 1) * h:(e + 1) * h])  # [pairs*H, W*C] uint8
        for i in range(e - s):
            sums[s + i] = cv2.sumElems(diff[i * h:(i + 1) * h])[0]  # exact: integers < 2^53 in float64
    return sums / float(h * w * c)


def temporal_flicker_score(frames) -> float:
    """VBench temporal flickering of uint8 frames [T, H, W, 3]: (255 - mean_t MAE(f_t, f_t+1)) / 255.

    1.0 for a frozen clip, lower is more flicker (or more motion: VBench applies it to static clips).
    """
    return float((255.0 - frame_maes(frames).mean()) / 255.0)


# --------------------------------------------------------------------------------------------
# Motion-compensated warping error

# OpenCV's documented Farneback example settings: 3-level pyramid, 15 px window.
_FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


def _flow(g0: np.ndarray, g1: np.ndarray, method: str) -> np.ndarray:
    """float32 [H, W, 2] (dx, dy) such that g0(y, x) ~ g1(y + dy, x + dx)."""
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(g0, g1, None, **_FARNEBACK)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(g0, g1, None)
    raise ValueError(f"unknown optical flow method {method!r}; use 'farneback' or 'dis'")


def _warp_pair(f0, f1, g0, g1, method: str, grid) -> tuple[float, float, float]:
    """(sum of squared error over valid pixels and channels, sum of abs error, valid pixel count)."""
    if np.array_equal(f0, f1):
        # a repeated frame: no motion, no error. Farneback finds up to 0.06 px of flow between two
        # identical textured frames, and its interpolation then read a frozen noise clip at 4.7e-6
        # (8% of a world clip's error) where the definition says 0 (session 32)
        return 0.0, 0.0, int(g0.size)
    fw = _flow(g0, g1, method)  # [H, W, 2] forward flow t -> t+1
    bw = _flow(g1, g0, method)  # [H, W, 2] backward flow t+1 -> t
    mx, my = grid[0] + fw[..., 0], grid[1] + fw[..., 1]  # where each pixel of f_t lands in f_t+1
    warped = cv2.remap(f1, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # [H, W, 3]
    bw_at = cv2.remap(bw, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # [H, W, 2]
    # Ruder et al.: forward and (warped) backward flow must cancel, up to a motion-relative slack.
    lhs = ((fw + bw_at) ** 2).sum(-1)
    rhs = 0.01 * ((fw ** 2).sum(-1) + (bw_at ** 2).sum(-1)) + 0.5
    h, w = g0.shape
    inside = (mx >= 0) & (mx <= w - 1) & (my >= 0) & (my <= h - 1)  # leaves the frame = occluded
    valid = (lhs < rhs) & inside  # [H, W]
    d = (f0.astype(np.float32) - warped.astype(np.float32))[valid].astype(np.float64) / 255.0  # [n_valid, 3]
    return float((d ** 2).sum()), float(np.abs(d).sum()), int(valid.sum())


# Pairs a clip's warping error reads: every consecutive pair up to this many, evenly spaced pairs
# beyond. Generated clips (16-64 frames) are read whole; a 10 s HD recording (300 pairs, two
# Farneback flows each) took a minute a clip on 2 cores, and 64 pairs estimate its mean error.
MAX_WARP_PAIRS = 64


def warp_pair_starts(num_frames: int, max_pairs: int | None = MAX_WARP_PAIRS) -> np.ndarray:
    """First frames of the consecutive pairs read: all, or `max_pairs` evenly spaced from the first
    pair to the last (deterministic)."""
    n = max(num_frames - 1, 0)
    if max_pairs is None or n <= max_pairs:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, max_pairs)).astype(int))


def warping_error_pairs(frames, method: str = "farneback", max_pairs: int | None = MAX_WARP_PAIRS
                        ) -> dict[str, np.ndarray]:
    """Per pair read (`warp_pair_starts`): {"start", "mse", "mae", "valid_fraction"}, each
    [P] (P = T-1 up to `max_pairs`; None: every pair).

    A pair with no valid pixel gets NaN errors (valid_fraction 0).
    """
    f = as_frames(frames)
    t, h, w, _ = f.shape
    starts = warp_pair_starts(t, max_pairs)
    grid = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))  # (x [H,W], y [H,W])
    used = sorted(set(starts) | set(starts + 1))
    gray = {i: cv2.cvtColor(f[i], cv2.COLOR_RGB2GRAY) for i in used}  # flow on luma, as is usual
    p = len(starts)
    mse, mae, frac = np.empty(p), np.empty(p), np.empty(p)

    def pair(j: int) -> None:
        i = starts[j]
        sq, ab, n = _warp_pair(f[i], f[i + 1], gray[i], gray[i + 1], method, grid)
        mse[j] = sq / (3 * n) if n else math.nan
        mae[j] = ab / (3 * n) if n else math.nan
        frac[j] = n / (h * w)

    # OpenCV's Farneback runs on one core and releases the GIL: pairs of large frames go to a
    # thread each (1.9x on 2 cores for 720p; the same numbers, each pair written to its own slot).
    # Small frames stay serial, where starting threads would cost more than it saves.
    workers = min(_cpus(), p) if h * w >= 320 * 240 else 1
    if workers > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(workers) as ex:
            list(ex.map(pair, range(p)))
    else:
        for j in range(p):
            pair(j)
    return {"start": starts, "mse": mse, "mae": mae, "valid_fraction": frac}


def _cpus() -> int:
    import os

    try:
        return max(1, min(8, len(os.sched_getaffinity(0))))
    except AttributeError:  # not on Linux
        return max(1, min(8, os.cpu_count() or 1))


def warping_error(frames, method: str = "farneback", reduction: str = "mse",
                  max_pairs: int | None = MAX_WARP_PAIRS) -> float:
    """Motion-compensated warping error of uint8 frames [T, H, W, 3]; lower is better, 0 when frozen.

    Per pair: mean over non-occluded pixels and the 3 channels of (f_t - warp(f_t+1))^2 with values
    in [0, 1] (`reduction="mae"`: absolute instead). Lai et al. sum the squares over RGB: theirs is
    3x ours. The clip's value is the mean over pairs that have valid pixels; NaN if none has.
    A clip of more than `max_pairs` + 1 frames is read on `max_pairs` evenly spaced pairs.
    Caveats: the occlusion mask discards part of a pure-noise frame pair (flow is meaningless
    there; ~75% of pixels stay valid on uniform noise); a scene cut is one huge pair (bikes.mp4's
    cut at frame 30 is 0.18 against ~5e-4 for its other pairs) that dominates the mean.
    `warping_error_pairs` gives the per-pair errors and valid fractions to check both.
    """
    if reduction not in ("mse", "mae"):
        raise ValueError(f"reduction must be 'mse' or 'mae', got {reduction!r}")
    per = warping_error_pairs(frames, method, max_pairs)[reduction]
    ok = np.isfinite(per)
    return float(per[ok].mean()) if ok.any() else math.nan


# --------------------------------------------------------------------------------------------
# Temporal high-frequency energy ratio


def hf_min_frames(cutoff: float = 0.25) -> int:
    """The shortest clip whose spectrum has a bin at or below `cutoff` x Nyquist besides DC (the
    lowest, 1/T cycles a frame, must be <= cutoff / 2): 8 frames at the default. Shorter, every
    change is "high frequency" and the ratio is 1 whatever the clip. Cutoff 0 (all of the
    change counts) needs only 2."""
    return max(2, math.ceil(2.0 / cutoff - 1e-9)) if cutoff > 0 else 2


HF_CHUNK_BYTES = 64 << 20  # float64 working block of `temporal_hf_ratio`, whatever the clip's length


def temporal_hf_ratio(frames, cutoff: float = 0.25, chunk_bytes: int = HF_CHUNK_BYTES) -> float:
    """Fraction of temporal energy above `cutoff` x Nyquist, for uint8 frames [T, H, W, 3].

    Each pixel/channel's time series (mean removed) is Fourier transformed along time; the energy
    of the bins with frequency > cutoff * 0.5 cycles/frame (default 0.25: above a quarter of the
    Nyquist band, i.e. periods shorter than 8 frames; motion of natural footage stays mostly below)
    is divided by the total energy, both summed over all pixels (a ratio of sums, i.e. an
    energy-weighted mean of per-pixel ratios: flat pixels with no energy do not produce 0/0).
    White temporal noise gives about 1 - cutoff; smooth motion gives little. A clip with no temporal
    change at all (frozen) has no energy: defined as 0.0, i.e. no high-frequency flicker. A clip
    shorter than `hf_min_frames(cutoff)` has no low band to compare with: NaN (undefined).
    """
    if not 0.0 <= cutoff < 1.0:
        raise ValueError(f"cutoff is a fraction of Nyquist in [0, 1), got {cutoff}")
    f = as_frames(frames)
    t = f.shape[0]
    if t < hf_min_frames(cutoff):
        return math.nan
    k = np.arange(t // 2 + 1)  # rfft bins, frequency k / T cycles per frame
    # One-sided spectrum weights (Parseval): bins other than DC and (even T) Nyquist stand for two.
    wts = np.full(k.size, 2.0)
    wts[0] = 1.0
    if t % 2 == 0:
        wts[-1] = 1.0
    # By Parseval the whole spectrum's energy is T * sum(x^2), so only the few low bins need a
    # transform: high = total - low, the low bins as one matrix product with their cos/sin rows
    # (3x faster than an FFT along time on HD footage; the same value to ~1e-15). DC is 0 once
    # the mean is removed. The scale of x (uint8 levels here) cancels in the ratio.
    low = np.nonzero((k / t <= cutoff * 0.5) & (k > 0))[0]
    # a long clip has many low bins (a quarter of the spectrum): the product costs T^2 per pixel
    # there, an FFT T log T, so long clips take the FFT (a 10-minute clip: 2,250 low bins)
    use_fft = low.size > 32
    if not use_fft:
        angle = 2 * np.pi * np.outer(low, np.arange(t)) / t
        basis = np.concatenate([np.cos(angle), np.sin(angle)])  # [2L, T]
        low_wts = np.concatenate([wts[low], wts[low]])  # [2L]
    low_energy = total = 0.0
    flat = f.reshape(t, -1)  # [T, H * W * 3], a view
    # Memory is bounded by columns, not rows: a block of rows was [T, rows * W * 3] float64, 8.8 GB
    # for a 10-minute 720p clip read at 1/4 (session 31), whatever the budget it was decoded under.
    cols = max(1, chunk_bytes // (8 * t * (3 if use_fft else 2)))
    for c in range(0, flat.shape[1], cols):
        x = flat[:, c:c + cols].astype(np.float64)
        x -= x.mean(axis=0, keepdims=True)
        total += t * float(np.einsum("ij,ij->", x, x))
        if use_fft:
            y = np.fft.rfft(x, axis=0)[low]  # [L, N] complex
            low_energy += float(wts[low] @ (y.real ** 2 + y.imag ** 2).sum(axis=1))
        else:
            y = basis @ x  # [2L, N]: real and imaginary parts of the low bins
            low_energy += float(low_wts @ np.einsum("ij,ij->i", y, y))
    return max(total - low_energy, 0.0) / total if total > 0 else 0.0


# --------------------------------------------------------------------------------------------
# torchmetrics classes: float videos [B, T, 3, H, W] in [0, 1]


class TemporalFlicker(PerClipMetric):
    """Mean VBench temporal-flickering score over clips (higher is better, 1.0 = frozen)."""

    higher_is_better = True
    value_bounds = (0.0, 1.0)

    def score_clip(self, frames: np.ndarray) -> float:
        return temporal_flicker_score(frames)

    def protocol(self) -> dict:
        return {"metric": "temporal_flicker", "definition": "VBench temporal_flickering, "
                "(255 - mean_t MAE(f_t, f_t+1)) / 255 on uint8 frames", **self._base_protocol()}


class WarpingError(PerClipMetric):
    """Mean motion-compensated warping error over clips (lower is better); see `warping_error`."""

    higher_is_better = False
    value_bounds = (0.0, 1.0)

    def __init__(self, method: str = "farneback", reduction: str = "mse", max_pairs: int | None = MAX_WARP_PAIRS,
                 **kwargs) -> None:
        super().__init__(group_config=dict(method=method, reduction=reduction, max_pairs=max_pairs), **kwargs)
        self.method, self.reduction, self.max_pairs = method, reduction, max_pairs

    def score_clip(self, frames: np.ndarray) -> float:
        return warping_error(frames, method=self.method, reduction=self.reduction, max_pairs=self.max_pairs)

    def protocol(self) -> dict:
        flow = dict(_FARNEBACK) if self.method == "farneback" else {"preset": "medium"}
        return {"metric": "warp_error", "flow": self.method, "flow_params": flow, "flow_on": "gray (BT.601)",
                "occlusion": "forward-backward check (Ruder et al. 2016), out-of-frame excluded",
                "reduction": self.reduction, "units": "[0, 1], mean over channels",
                "pairs": f"every consecutive pair up to {self.max_pairs}, else {self.max_pairs} evenly spaced"
                if self.max_pairs else "every consecutive pair", **self._base_protocol()}


class TemporalHFRatio(PerClipMetric):
    """Mean temporal high-frequency energy ratio over clips (lower is better); see `temporal_hf_ratio`."""

    higher_is_better = False
    value_bounds = (0.0, 1.0)

    def __init__(self, cutoff: float = 0.25, **kwargs) -> None:
        super().__init__(group_config=dict(cutoff=cutoff), **kwargs)
        self.cutoff = cutoff

    def score_clip(self, frames: np.ndarray) -> float:
        need = hf_min_frames(self.cutoff)
        if frames.shape[0] < need:
            raise ValueError(f"TemporalHFRatio needs clips of at least hf_min_frames(cutoff={self.cutoff}) = {need} "
                             f"frames, got {frames.shape[0]}: a shorter clip has no low band below the cutoff, so "
                             "its ratio is undefined")
        return temporal_hf_ratio(frames, cutoff=self.cutoff)

    def protocol(self) -> dict:
        return {"metric": "temporal_hf_ratio", "cutoff_fraction_of_nyquist": self.cutoff,
                "aggregation": "ratio of energies summed over pixels; frozen clip = 0",
                "note": "depends on clip length T: compare at equal T", **self._base_protocol()}
