"""Confidence intervals for every number evalkit reports.

An `Estimate` is a value with its 95% interval, its sample size and how the interval was made;
`evalkit.tracking.log_estimate` writes it to MLflow as four metrics.

Conventions, on purpose:
- Bootstrap intervals are *percentile* intervals (no BCa): simple, statistic-agnostic and
  re-derivable from the per-clip values in a result bundle.
- A single sample has no spread to resample: `n == 1` gives the value with NaN bounds (MLflow
  stores NaN) instead of a zero-width interval that would look like certainty.
- Empty input and non-finite values (NaN, inf) raise ValueError: a silent nan-mean would hide
  failed clips and change N.
- Resampling is seeded (`numpy.random.default_rng(seed)`): same input and seed, same interval.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Callable

import numpy as np

# Resample in chunks of at most this many elements (32 MB of float64): vectorised but bounded
# in memory when N is large.
_CHUNK_ELEMS = 1 << 22


@dataclass(frozen=True)
class Estimate:
    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str = "bootstrap-percentile"
    confidence: float = 0.95

    def to_dict(self) -> dict:
        """{"value", "ci_low", "ci_high", "n", "method", "confidence"} with plain Python types."""
        d = asdict(self)
        for k in ("value", "ci_low", "ci_high", "confidence"):
            d[k] = float(d[k])
        d["n"] = int(d["n"])
        return d

    def __str__(self) -> str:
        return f"{self.value:.4g} [{self.ci_low:.4g}, {self.ci_high:.4g}] (n={self.n})"


def _as_1d(values, name: str = "values") -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of numbers, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty: no estimate without samples")
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(
            f"{name} holds {n_nan} NaN and {int(bad.sum()) - n_nan} infinite of {arr.size} values; "
            "drop or fix the failed samples first"
        )
    return arr


def _check(confidence: float, n_boot: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if int(n_boot) < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """statistic over the last axis of [rows, n]: one vectorised call when the statistic takes
    `axis=` (numpy reductions do), else a Python loop over rows."""
    try:
        out = np.asarray(statistic(samples, axis=-1), dtype=np.float64)
        if out.shape == samples.shape[:1]:
            return out
    except TypeError:  # no `axis` keyword
        pass
    return np.array([statistic(row) for row in samples], dtype=np.float64)


def _resampled(arrays: list[np.ndarray], statistic: Callable, n_boot: int, seed) -> list[np.ndarray]:
    """`n_boot` bootstrap replicates of `statistic` for each array, all arrays resampled with the
    *same* indices (which makes the paired bootstrap paired)."""
    rng = np.random.default_rng(seed)
    n = arrays[0].size
    rows = max(1, _CHUNK_ELEMS // n)
    out: list[list[np.ndarray]] = [[] for _ in arrays]
    done = 0
    while done < n_boot:
        k = min(rows, n_boot - done)
        idx = rng.integers(0, n, size=(k, n))
        for acc, arr in zip(out, arrays):
            acc.append(_apply(statistic, arr[idx]))
        done += k
    return [np.concatenate(acc) for acc in out]


def _percentiles(reps: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(values, statistic: Callable = np.mean, *, n_boot: int = 2000, confidence: float = 0.95,
                 seed: int | None = 0) -> Estimate:
    """Percentile bootstrap interval of `statistic(values)`.

    `statistic` should accept `axis=-1` (numpy reductions do) so all resamples are computed in one
    call; any other callable of a 1-D array works, one resample at a time.
    """
    _check(confidence, n_boot)
    arr = _as_1d(values)
    value = float(statistic(arr))
    if arr.size == 1:
        return Estimate(value, math.nan, math.nan, 1, "bootstrap-percentile", confidence)
    (reps,) = _resampled([arr], statistic, int(n_boot), seed)
    lo, hi = _percentiles(reps, confidence)
    return Estimate(value, lo, hi, int(arr.size), "bootstrap-percentile", confidence)


def mean_ci(values, **kw) -> Estimate:
    """Bootstrap interval of the mean; keywords as `bootstrap_ci`."""
    return bootstrap_ci(values, np.mean, **kw)


def proportion_ci(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for `successes` out of `n` (method "wilson").

    Chosen over the normal (Wald) interval because pass rates near 0 or 1 are common here (physics
    laws, detector hits) and Wald collapses to zero width there. `value` is the observed rate
    successes/n; the interval is not centred on it. Defined for n == 1 (no NaN: it is analytic).
    """
    _check(confidence, 1)
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n must be integers, got {successes!r} and {n!r}")
    k, n = int(successes), int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {k}")
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    p = k / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # k == 0 and k == n give exactly 0 and 1 in exact arithmetic; do not report float round-off.
    lo = 0.0 if k == 0 else max(0.0, centre - half)
    hi = 1.0 if k == n else min(1.0, centre + half)
    return Estimate(p, lo, hi, n, "wilson", confidence)


def paired_bootstrap_diff(a, b, statistic: Callable = np.mean, *, n_boot: int = 2000, seed: int | None = 0,
                          confidence: float = 0.95) -> tuple[Estimate, float]:
    """Interval of `statistic(a) - statistic(b)` for paired samples (a[i] and b[i] measured on the
    same prompt/clip/seed), resampling the pairs jointly, and a two-sided p-value.

    The p-value is the percentile-interval inversion, with the usual +1 so that it is never 0:

        p = min(1, 2 * (min(#{d* <= 0}, #{d* >= 0}) + 1) / (n_boot + 1))

    where d* are the resampled differences: twice the fraction of resamples whose sign flips
    against the observed difference (ties at 0 count as flips). p < 1 - confidence roughly when the
    percentile interval excludes 0. Smallest reportable p is 2 / (n_boot + 1). For n == 1 the
    bounds and p are NaN.
    """
    _check(confidence, n_boot)
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if a.size != b.size:
        raise ValueError(f"paired samples differ in length: a has {a.size}, b has {b.size}")
    value = float(statistic(a)) - float(statistic(b))
    method = "paired-bootstrap-percentile"
    if a.size == 1:
        return Estimate(value, math.nan, math.nan, 1, method, confidence), math.nan
    ra, rb = _resampled([a, b], statistic, int(n_boot), seed)
    d = ra - rb
    lo, hi = _percentiles(d, confidence)
    flips = min(int((d <= 0).sum()), int((d >= 0).sum()))
    p = min(1.0, 2.0 * (flips + 1) / (d.size + 1))
    return Estimate(value, lo, hi, int(a.size), method, confidence), p
