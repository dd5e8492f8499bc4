"""Shared plumbing for evalkit's torchmetrics classes.

- `videos_to_uint8`: the one float -> uint8 conversion every per-clip metric uses, so that a clip
  scores the same whether it comes from disk (uint8) or from a model (float in [0, 1]).
- `as_frames`: validation of uint8 [T, H, W, 3] frames with one-line errors.
- `as_features`: validation of a feature matrix [N, D] into float64 numpy.
- `PerClipMetric`: a Metric that scores each clip with a functional and keeps float64 sum/count
  states (DDP "sum") plus the per-clip values (DDP "cat") so that a bootstrap CI is possible.
"""

from __future__ import annotations

import functools
import hashlib
import math
import warnings
from contextlib import contextmanager
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat
from torchmetrics.utilities.distributed import gather_all_tensors

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
    metric._merge_settings = {k: repr(v) for k, v in config.items()}  # for merge_state's message
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


def rows_by_content(x: np.ndarray) -> np.ndarray:
    """The rows of x [N, D] in one order by their values (first column first, then the next...).
    A bootstrap draws rows by position: on rows in this order a set's interval depends on which
    clips it holds, not on the order they were listed, fed, merged or sharded in (reversing an
    index moved score's FVD interval from [327, 946] to [315, 1075], session 33; the metric
    classes' from [435, 1693] to [471, 1765], session 34)."""
    return x[np.lexsort(x.T[::-1])] if x.ndim == 2 and x.shape[0] > 1 else x


def cat_state(state) -> torch.Tensor:
    """A "cat" list state as one tensor (after a DDP sync it may already be one)."""
    if isinstance(state, torch.Tensor):
        return state
    if not state:
        return torch.zeros(0, dtype=torch.float64)
    return torch.cat([s.reshape(-1, *s.shape[1:]) if s.ndim else s.reshape(1) for s in state])


# ------------------------------------------------------------------------------------------------
# What every evalkit Metric shares: float64 states whatever a parent module casts, every public
# result synced under DDP, a zero-sample rank that takes part in the gather, clear merge errors.


@contextmanager
def global_states(metric: Metric):
    """Run the body on the states of all ranks, as torchmetrics runs `compute()`: under DDP (when
    torch.distributed is available and initialised) the states are gathered first and the rank's
    own restored afterwards (also when the body raises). Nested use, or use inside `compute()`
    or the user's own `sync_context()`, does not sync twice. Every rank must call it (a collective)."""
    if metric._is_synced:
        yield
        return
    metric.sync(dist_sync_fn=metric.dist_sync_fn, should_sync=metric._to_sync)
    try:
        yield
    finally:
        if metric._is_synced:
            metric.unsync(should_unsync=metric._should_unsync)


def synced(method: Callable) -> Callable:
    """Decorate a public result method so that it sees the states of all DDP ranks (`global_states`)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with global_states(self):
            return method(self, *args, **kwargs)

    return wrapper


class EvalkitMetric(Metric):
    """Base of evalkit's torchmetrics classes.

    - States stay float64 whatever dtype cast reaches them: a parent module's `.to(torch.bfloat16)`
      (Lightning's "bf16-true"), `.half()` or `set_dtype` moves them between devices but keeps their
      dtype (a bf16 count stopped at 256: 256 + 1 rounds to 256).
    - A DDP rank that saw no samples takes part in the gather of "cat" states with an empty tensor of
      the other ranks' dtype and trailing shape (torchmetrics stands in a 1-D float32 one, and gloo
      failed on the size mismatch).
    - `merge_state` of a metric of another class or other settings is one line naming them.
    - `_no_data(method)`: the error for a result asked of a metric without data.
    """

    _merge_settings: dict = {}

    # -- dtype ------------------------------------------------------------------------------------
    def _apply(self, fn: Callable, exclude_state: Sequence[str] = "") -> torch.nn.Module:
        states = tuple(self._defaults)
        this = super()._apply(fn, exclude_state=tuple(exclude_state) + states)

        def move(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            if out.dtype != t.dtype:  # a dtype cast: take the device (or meta) only
                out = t.to(device=out.device)
            return out

        for key in states:
            if key in exclude_state:
                continue
            default = this._defaults[key]
            this._defaults[key] = move(default) if isinstance(default, torch.Tensor) else [move(v) for v in default]
            value = getattr(this, key)
            setattr(this, key, move(value) if isinstance(value, torch.Tensor) else [move(v) for v in value])
        # the states stayed float64, so a result computed before the cast is computed again from them
        # (torchmetrics casts its cache: compute() came back bf16-rounded, session 33), and the
        # metric says the dtype it holds
        this._computed = None
        this._dtype = torch.float64
        return this

    # -- DDP ----------------------------------------------------------------------------------------
    def _sync_dist(self, dist_sync_fn: Callable = gather_all_tensors, process_group: Any = None) -> None:
        cat = [k for k, fx in self._reductions.items() if fx is dim_zero_cat]
        if cat:
            # Each rank describes its "cat" states (rows present, ndim, trailing shape); a rank with
            # none stands in an empty float64 tensor shaped as the others' (one small extra gather).
            info = torch.full((len(cat), 8), -1, dtype=torch.int64, device=self.device)
            empty = []
            for i, key in enumerate(cat):
                value = getattr(self, key)
                t = cat_state(value) if (isinstance(value, torch.Tensor) or value) else None
                if t is None or t.numel() == 0 and t.ndim < 2:
                    empty.append(i)
                    continue
                if t.ndim > 7:
                    raise ValueError(f"{type(self).__name__}.{key}: a state of {t.ndim} dimensions")
                info[i, 0] = t.ndim
                info[i, 1:t.ndim] = torch.tensor(t.shape[1:], dtype=torch.int64)
            if empty:
                gathered = torch.stack(list(dist_sync_fn(info, group=process_group or self.process_group)))
            else:
                dist_sync_fn(info, group=process_group or self.process_group)
            for i in empty:
                known = [r for r in gathered[:, i] if int(r[0]) >= 1]
                trailing = tuple(int(x) for x in known[0][1:int(known[0][0])]) if known else ()
                setattr(self, cat[i], [torch.zeros((0, *trailing), dtype=torch.float64, device=self.device)])
        super()._sync_dist(dist_sync_fn, process_group=process_group)

    # -- merge --------------------------------------------------------------------------------------
    def _merge_check(self, other: "EvalkitMetric") -> None:
        """Raise where `other`'s states cannot be merged into this metric's (subclasses add checks)."""
        mine, theirs = self._merge_settings, getattr(other, "_merge_settings", {})
        diff = [k for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k)]
        if diff:
            what = ", ".join(f"{k}={theirs.get(k, '?')} vs {mine.get(k, '?')}" for k in diff)
            raise ValueError(f"cannot merge a {type(other).__name__} into a {type(self).__name__} of other "
                             f"settings ({what}): their states measure different things")

    def merge_state(self, incoming_state) -> None:
        if isinstance(incoming_state, Metric):
            if type(incoming_state) is not type(self):
                raise ValueError(f"cannot merge a {type(incoming_state).__name__} into a {type(self).__name__}: "
                                 "merge metrics of one class and settings")
            self._merge_check(incoming_state)
        elif isinstance(incoming_state, dict):
            missing = [k for k in self._defaults if k not in incoming_state]
            if missing:
                raise ValueError(f"cannot merge into a {type(self).__name__}: the incoming state lacks "
                                 f"{', '.join(missing)} (a state of another class or other settings?)")
        super().merge_state(incoming_state)

    def _reduce_states(self, incoming_state: dict) -> None:
        """torchmetrics' merge, with the incoming "cat" states appended after this metric's own (it
        put them first, so `per_clip()` and `features()` were not in update order after a merge)."""
        cat = [k for k, fx in self._reductions.items() if fx is dim_zero_cat and k in incoming_state]
        own = {k: getattr(self, k) for k in cat}
        super()._reduce_states(incoming_state)
        for k in cat:
            mine, theirs = own[k], incoming_state[k]
            if isinstance(mine, list) and isinstance(theirs, list):
                setattr(self, k, mine + theirs)
            else:  # a state already concatenated (after a DDP sync)
                parts = [cat_state(v) for v in (mine, theirs) if isinstance(v, torch.Tensor) or v]
                setattr(self, k, torch.cat(parts) if parts else [])

    # -- messages -----------------------------------------------------------------------------------
    _refused_updates = 0  # update() calls that raised (their batch added nothing)

    def _wrap_update(self, update: Callable) -> Callable:
        """torchmetrics counts an update() before running it, so one that raised (a 0-255 float
        video) counted as done, and compute() then blamed "empty batches". Only updates that
        returned count here; the refused ones are counted apart, for `_no_data`'s message."""
        counted = super()._wrap_update(update)

        @functools.wraps(update)
        def wrapped(*args: Any, **kwargs: Any) -> None:
            try:
                counted(*args, **kwargs)
            except BaseException:
                self._update_count -= 1
                self._refused_updates += 1
                raise

        return wrapped

    def reset(self) -> None:
        super().reset()
        self._refused_updates = 0

    def _no_data(self, method: str, what: str = "clips") -> RuntimeError:
        name = f"{type(self).__name__}.{method}()"
        refused = f"{self._refused_updates} update() call{'s' if self._refused_updates > 1 else ''} raised an error"
        if self._update_count > 0:
            tail = f" ({refused} and added nothing)" if self._refused_updates else ""
            return RuntimeError(f"{name}: no {what} yet; update() was called only with empty batches{tail}")
        if self._refused_updates:
            return RuntimeError(f"{name}: no {what} yet; {refused} and added nothing: fix the input it named "
                                "and update() again")
        return RuntimeError(f"{name} called before any update()")


def warn_one_sample(metric: Metric, n: int, method: str = "compute_with_ci") -> None:
    if n == 1:
        warnings.warn(f"{type(metric).__name__}.{method}(): one clip has no interval (a spread needs at "
                      "least 2); ci_low and ci_high are NaN", UserWarning, stacklevel=3)


class PerClipMetric(EvalkitMetric):
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
            raise self._no_data("compute")
        return self.total / self.count

    @synced
    def _base_protocol(self) -> dict:
        return {"input": "uint8 frames; float videos converted by round(clamp(x, 0, 1) * 255)",
                "n": int(self.count)}

    @synced
    def per_clip(self) -> np.ndarray:
        """float64 [N] per-clip scores, in update order (under DDP: all ranks', in rank order)."""
        return cat_state(self.values).numpy().astype(np.float64)

    @synced
    def compute_with_ci(self, n_boot: int = 2000, seed: int | None = 0, confidence: float = 0.95) -> Estimate:
        """Mean with the interval `evalkit score` gives it (`stats.mean_ci` within `value_bounds`:
        bootstrap widened to Student's t; Wilson's where no clip differs); n is the clip count (under
        DDP, all ranks' clips). One clip has no interval: NaN bounds, with a warning."""
        if self.count == 0:
            raise self._no_data("compute_with_ci")
        warn_one_sample(self, int(self.count))
        return mean_ci(self.per_clip(), bounds=self.value_bounds, n_boot=n_boot, seed=seed, confidence=confidence)
