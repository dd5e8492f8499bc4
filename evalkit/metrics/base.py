"""Shared plumbing for evalkit's torchmetrics classes.

- `videos_to_uint8`: the one float -> uint8 conversion every per-clip metric uses, so that a clip
  scores the same whether it comes from disk (uint8) or from a model (float in [0, 1]).
- `as_frames`: validation of uint8 [T, H, W, 3] frames with one-line errors.
- `as_features`: validation of a feature matrix [N, D] into float64 numpy.
- `PerClipMetric`: a Metric that scores each clip with a functional and keeps float64 sum/count
  states (DDP "sum") plus the per-clip values (DDP "cat") so that a bootstrap CI is possible.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric

from evalkit.metrics.stats import Estimate, mean_ci


# A float video may overshoot [0, 1] a little (a decoder's or sampler's ringing; it is clamped),
# but not by this much: values beyond it mean another convention, which clamping would turn into
# confident nonsense (0-255 floats read as a white frozen clip, a [-1, 1] model output lost half its range).
RANGE_SLACK = 0.1


def check_video_values(x: torch.Tensor) -> torch.Tensor:
    """The float videos `x` as float32, refused with one line where their dtype or range is not
    the [0, 1] convention (uint8 is handled by the callers: it is 0-255 by definition)."""
    if x.dtype == torch.bool or not (x.is_floating_point() or x.dtype == torch.uint8):
        raise ValueError(f"videos of dtype {str(x.dtype).replace('torch.', '')}: give uint8 (0-255) or float in "
                         "[0, 1]; cast 0-255 integers with .to(torch.uint8)")
    x = x.detach().float()
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError("videos hold NaN or infinite values; fix the generator output first")
    if x.numel():
        lo, hi = float(x.min()), float(x.max())
        if lo < -RANGE_SLACK or hi > 1 + RANGE_SLACK:
            raise ValueError(f"float videos range over [{lo:.3g}, {hi:.3g}]; expected [0, 1]: map a [-1, 1] model "
                             "output with (x + 1) / 2, divide 0-255 floats by 255 (or give uint8)")
    return x


def videos_to_uint8(videos) -> np.ndarray:
    """float [B, T, C, H, W] in [0, 1] (C == 3) -> uint8 [B, T, H, W, C] by round(clamp(x) * 255).

    A uint8 tensor/array already in [B, T, C, H, W] is only permuted. Rounding (not truncation)
    matches `Clip.from_tensor`, so float -> uint8 -> float -> uint8 is a fixed point. Float values
    more than RANGE_SLACK outside [0, 1], and integer dtypes other than uint8, are refused
    (`check_video_values`).
    """
    if isinstance(videos, np.ndarray):
        videos = torch.from_numpy(videos)
    if not isinstance(videos, torch.Tensor) or videos.ndim != 5 or videos.shape[2] != 3:
        shape = tuple(getattr(videos, "shape", ()))
        raise ValueError(f"expected videos [B, T, 3, H, W], got shape {shape}")
    x = videos.detach()
    if x.dtype != torch.uint8:
        x = check_video_values(x).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.permute(0, 1, 3, 4, 2).contiguous().cpu().numpy()  # [B, T, H, W, C]


def keep_out_of_compute_groups(metric: Metric, **config) -> None:
    """Give `metric` a state whose name is its class and configuration, so that a MetricCollection
    never puts it in one compute group with a metric that only looks alike. torchmetrics groups
    metrics whose states have the same names and equal values after the first update, then updates
    one of them for all: WarpingError and TemporalHFRatio (both 0 on a frozen first batch), or two
    CLIPAlignment clamps, then reported each other's values. The state is empty and costs nothing."""
    key = repr((type(metric).__qualname__, sorted((k, repr(v)) for k, v in config.items())))
    digest = hashlib.sha1(key.encode()).hexdigest()[:12]
    metric.add_state(f"group_key_{digest}", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")


def as_frames(frames, min_frames: int = 2) -> np.ndarray:
    """Check uint8 frames [T, H, W, 3]; a `Clip` is accepted too. Returns a C-contiguous array."""
    frames = getattr(frames, "frames", frames)  # evalkit.clip.Clip
    if isinstance(frames, torch.Tensor):
        frames = frames.detach().cpu().numpy()
    ok = isinstance(frames, np.ndarray) and frames.dtype == np.uint8 and frames.ndim == 4
    if not ok or frames.shape[-1] != 3:
        raise ValueError(f"expected uint8 frames [T, H, W, 3], got {getattr(frames, 'dtype', type(frames))} "
                         f"{tuple(getattr(frames, 'shape', ()))}; use videos_to_uint8 for float tensors")
    if frames.shape[0] < min_frames:
        raise ValueError(f"need at least {min_frames} frames, got {frames.shape[0]}")
    return np.ascontiguousarray(frames)


def as_features(x, name: str = "features") -> np.ndarray:
    """A finite 2-D feature matrix [N, D] as float64 numpy (torch tensors are detached)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be [N, D], got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{name} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} hold NaN or infinite values; check the feature extractor")
    return arr


def cat_state(state) -> torch.Tensor:
    """A "cat" list state as one tensor (after a DDP sync it may already be one)."""
    if isinstance(state, torch.Tensor):
        return state
    if not state:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([s.reshape(-1, *s.shape[1:]) if s.ndim else s.reshape(1) for s in state])


class PerClipMetric(Metric):
    """Mean over clips of a per-clip score; subclasses implement `score_clip(frames uint8 [T,H,W,3])`.

    States (all float64): `total` and `count` (DDP "sum": the mean is exact under any sharding) and
    `values` (DDP "cat": the per-clip scores, for `compute_with_ci`). A non-finite per-clip score is
    an error at `update`, naming the clip's index in the batch: NaN never enters the mean silently.
    """

    is_differentiable = False
    full_state_update = False  # update never reads the accumulated state: merge_state is allowed
    value_bounds: tuple[float, float] | None = None  # the range a per-clip score can take (for its CI)

    def __init__(self, group_config: dict | None = None, **kwargs: Any) -> None:
        """group_config: the subclass's settings that change its scores (`keep_out_of_compute_groups`)."""
        super().__init__(**kwargs)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("values", default=[], dist_reduce_fx="cat")
        keep_out_of_compute_groups(self, **(group_config or {}))

    def score_clip(self, frames: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, videos) -> None:
        """videos: float [B, T, 3, H, W] in [0, 1] (or uint8 of that layout)."""
        clips = videos_to_uint8(videos)  # [B, T, H, W, 3]
        scores = []
        for i, clip in enumerate(clips):
            s = float(self.score_clip(clip))
            if not math.isfinite(s):
                raise ValueError(f"{type(self).__name__}: clip {i} of the batch scored {s}; "
                                 "it is degenerate for this metric (see the functional's docstring)")
            scores.append(s)
        v = torch.tensor(scores, dtype=torch.float64)
        self.total += v.sum()
        self.count += v.numel()
        self.values.append(v)

    def compute(self) -> torch.Tensor:
        if self.count == 0:
            raise RuntimeError(f"{type(self).__name__}.compute() called before any update()")
        return self.total / self.count

    def _base_protocol(self) -> dict:
        return {"input": "uint8 frames; float videos converted by round(clamp(x, 0, 1) * 255)",
                "n": int(self.count)}

    def per_clip(self) -> np.ndarray:
        """float64 [N] per-clip scores, in update order (after DDP sync: rank order)."""
        return cat_state(self.values).numpy().astype(np.float64)

    def compute_with_ci(self, n_boot: int = 2000, seed: int | None = 0, confidence: float = 0.95) -> Estimate:
        """Mean with the interval `evalkit score` gives it (`stats.mean_ci` within `value_bounds`:
        bootstrap widened to Student's t; Wilson's where no clip differs); n is the clip count."""
        if self.count == 0:
            raise RuntimeError(f"{type(self).__name__}.compute_with_ci() called before any update()")
        return mean_ci(self.per_clip(), bounds=self.value_bounds, n_boot=n_boot, seed=seed, confidence=confidence)
