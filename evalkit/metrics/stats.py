"""Confidence intervals for every number evalkit reports.

An `Estimate` is a value with its 95% interval, its sample size and how the interval was made;
`evalkit.tracking.log_estimate` writes it to MLflow as four metrics.

Conventions, on purpose:
- Bootstrap intervals are *percentile* intervals (no BCa): simple, statistic-agnostic and
  re-derivable from the per-clip values in a result bundle. A bounded mean adds the bootstrap-t
  (`mean_ci`), which alone of the candidates measured held skewed scores at 4-8 clips.
- A single sample has no spread to resample: `n == 1` gives the value with NaN bounds (MLflow
  stores NaN) instead of a zero-width interval that would look like certainty. So do N values
  that are all equal, where nothing bounds the range (`not_estimable`: four copies of one clip
  read "FVD 1382 [1382, 1382]"); a bounded mean gets the worst case its range allows instead.
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
        # n = 1 or `not_estimable`: said, not printed as "[nan, nan]"
        if all(b is None or math.isnan(b) for b in (self.ci_low, self.ci_high)):
            return f"{self.value:.4g} (no CI) (n={self.n})"
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


def not_estimable(value: float, n: int, why: str, confidence: float = 0.95) -> Estimate:
    """The value with NaN bounds (null in JSON) and a method that says why there is no interval:
    N equal values (four copies of one clip) give every resample the same number, and a zero-width
    interval from them would claim a certainty no four samples can give."""
    return Estimate(value, math.nan, math.nan, int(n), f"not-estimable({why})", confidence)


def bootstrap_ci(values, statistic: Callable = np.mean, *, n_boot: int = 2000, confidence: float = 0.95,
                 seed: int | None = 0) -> Estimate:
    """Percentile bootstrap interval of `statistic(values)`; values that are all equal have no
    spread to resample (`not_estimable`).

    `statistic` should accept `axis=-1` (numpy reductions do) so all resamples are computed in one
    call; any other callable of a 1-D array works, one resample at a time.

    The values are taken in sorted order, so the interval depends on which values there are, not
    on the order they came in (a metric's clips merged or fed in another order moved flicker's
    interval from [0.9425, 0.9627] to [0.9417, 0.9627], session 34).
    """
    _check(confidence, n_boot)
    arr = np.sort(_as_1d(values))
    value = float(statistic(arr))
    if arr.size == 1:
        return Estimate(value, math.nan, math.nan, 1, "bootstrap-percentile", confidence)
    if no_spread(arr):
        return not_estimable(value, arr.size, f"all {arr.size} values equal", confidence)
    (reps,) = _resampled([arr], statistic, int(n_boot), seed)
    lo, hi = _percentiles(reps, confidence)
    return Estimate(value, lo, hi, int(arr.size), "bootstrap-percentile", confidence)


def mean_ci(values, *, bounds: tuple[float, float] | None = None, **kw) -> Estimate:
    """Interval of the mean: the percentile bootstrap, widened where needed to Student's t interval
    (method "bootstrap-percentile+t"); other keywords as `bootstrap_ci`.

    The bootstrap alone is too narrow at small N: two clips gave exactly [min, max] and covered the
    true mean 51% of the time, five 84% (session 30, 1,000 simulated sets a size); t covers 95% for
    normal data at any N, and the bootstrap keeps a skewed metric's asymmetry where it is wider.
    `bounds` (low, high): the range the values can take, where known (a score in [0, 1]). Where the
    range is finite, the interval is also widened to the bootstrap-t's (`_bootstrap_t`), itself
    kept within the worst case below (method "...+bootstrap-t" where that widened it): t alone held
    the mean of beta(0.3, 3) scores 80% of the time at 4 clips, 84% at 8 (session 34,
    benchmarks/validity/interval_coverage.py). Values that do not vary at all get Wilson's interval
    for the mean's place in that range (the largest variance a bounded variable of that mean can
    have), not a point: two physics scores of 1 read "1 [1, 1]", certainty from two clips; with no
    finite range they get no interval (`not_estimable`). The interval is clipped to the bounds."""
    est = bootstrap_ci(values, np.mean, **kw)
    if est.n < 2:
        return est
    arr = np.sort(_as_1d(values))  # in any order the same interval (`bootstrap_ci`)
    n, mean, conf = arr.size, est.value, est.confidence
    a, b = (-math.inf, math.inf) if bounds is None else (float(bounds[0]), float(bounds[1]))
    finite = math.isfinite(b - a) and b > a
    if no_spread(arr):
        if not finite:
            return est  # not estimable: nothing bounds how far an unseen value could lie
        # no spread seen: the worst case a bounded mean allows
        w_lo, w_hi = _wilson((mean - a) / (b - a), n, conf)
        lo, hi, method = a + (b - a) * w_lo, a + (b - a) * w_hi, "wilson-bounded"
    else:
        half = _t_quantile(conf, n - 1) * float(arr.std(ddof=1)) / math.sqrt(n)
        lo, hi, method = min(est.ci_low, mean - half), max(est.ci_high, mean + half), "bootstrap-percentile+t"
        if finite:
            w_lo, w_hi = _wilson((mean - a) / (b - a), n, conf)
            bt_lo, bt_hi = _bootstrap_t(arr, conf, kw.get("n_boot", 2000), kw.get("seed", 0))
            # the bootstrap-t's excursions capped at the worst-case variance's interval (one failure
            # among 16 near-zero scores sent its upper bound to 1.26, past the range; Wilson's is 0.31)
            bt_lo, bt_hi = max(bt_lo, a + (b - a) * w_lo), min(bt_hi, a + (b - a) * w_hi)
            if bt_lo < lo or bt_hi > hi:
                lo, hi, method = min(lo, bt_lo), max(hi, bt_hi), method + "+bootstrap-t"
    lo, hi = max(lo, a), min(hi, b)
    lo, hi = (a if mean == a else lo), (b if mean == b else hi)  # no float round-off at a bound
    return Estimate(mean, lo, hi, n, method, conf)


def _bootstrap_t(arr: np.ndarray, confidence: float, n_boot: int, seed) -> tuple[float, float]:
    """The studentized (bootstrap-t) interval of the mean: the quantiles of the resamples'
    (mean* - mean) / se* put around the mean with the sample's se. Where values are skewed it
    leans the way of the long tail, as the t interval cannot. Resamples of one value repeated have
    no se and are left out."""
    n, mean = arr.size, float(arr.mean())
    d = arr - mean  # centred first: the variance from E[d^2] - E[d]^2 keeps its digits
    m1, m2 = _resampled([d, d * d], np.mean, int(n_boot), seed)
    var = np.maximum(m2 - m1 * m1, 0.0) * n / (n - 1)
    ok = var > 1e-12 * float(arr.var(ddof=1))
    if not ok.any():
        return mean, mean
    t = m1[ok] / np.sqrt(var[ok] / n)
    alpha = (1.0 - confidence) / 2.0
    t_lo, t_hi = np.quantile(t, [alpha, 1.0 - alpha])
    se = float(arr.std(ddof=1)) / math.sqrt(n)
    return mean - float(t_hi) * se, mean - float(t_lo) * se


def no_spread(values) -> bool:
    """All values equal, as far as floating point can tell (the mean of 24 times 0.8 is
    0.8000000000000002, so their standard deviation is 1e-16, not 0: "0.8 [0.8, 0.8]")."""
    arr = np.asarray(values, dtype=np.float64)
    return float(np.ptp(arr)) <= 1e-12 * max(1.0, float(np.abs(arr).max()))


def _t_quantile(confidence: float, df: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + confidence / 2.0, df))


def _wilson(p: float, n: float, confidence: float) -> tuple[float, float]:
    """Wilson score bounds for an observed share `p` of `n` (p need not be k / n; n may be an
    effective size), with Brown, Cai and DasGupta's (2001) fix at the edges: for 1 to 3 successes
    (2 up to n = 50) the lower bound is also the exact Poisson bound of that count, and the same for
    failures and the upper bound, whichever is wider. Wilson's own interval held a rate just above
    a count of one or two 83-86% of the time at any n up to 200 (exact binomial sums); with the fix
    no rate is held less than 91.6% of the time at n = 8-500, and the mean stays 0.95."""
    z = NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / denom
    lo, hi = max(0.0, centre - half), min(1.0, centre + half)
    edge = 2 if n <= 50 else 3
    hits, misses = p * n, (1.0 - p) * n
    if 0.5 <= hits <= edge + 1e-9:
        lo = min(lo, _poisson_lower(hits, n, confidence))
    if 0.5 <= misses <= edge + 1e-9:
        hi = max(hi, 1.0 - _poisson_lower(misses, n, confidence))
    return lo, hi


def _poisson_lower(count: float, n: float, confidence: float) -> float:
    """The exact two-sided Poisson lower bound of a count, as a rate: chi2_{2c}((1 - conf) / 2) / 2n."""
    from scipy.special import gammaincinv

    return float(gammaincinv(count, (1.0 - confidence) / 2.0)) / n


def proportion_ci(successes: int, n: int, confidence: float = 0.95) -> Estimate:
    """Wilson score interval for `successes` out of `n` (method "wilson").

    Chosen over the normal (Wald) interval because pass rates near 0 or 1 are common here (physics
    laws, detector hits) and Wald collapses to zero width there. `value` is the observed rate
    successes/n; the interval is not centred on it. Defined for n == 1 (no NaN: it is analytic).
    At 1-3 successes or failures the bound on that side is the exact Poisson one where it is wider
    (`_wilson`: Wilson alone under-covers rates just beyond such counts).
    """
    _check(confidence, 1)
    if isinstance(successes, bool) or isinstance(n, bool) or int(successes) != successes or int(n) != n:
        raise ValueError(f"successes and n must be integers, got {successes!r} and {n!r}")
    k, n = int(successes), int(n)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"successes must be between 0 and n={n}, got {k}")
    p = k / n
    lo, hi = _wilson(p, n, confidence)
    # k == 0 and k == n give exactly 0 and 1 in exact arithmetic; do not report float round-off.
    lo = 0.0 if k == 0 else lo
    hi = 1.0 if k == n else hi
    return Estimate(p, lo, hi, n, "wilson", confidence)


def clustered_proportion_ci(hits, groups, confidence: float = 0.95) -> Estimate:
    """Wilson interval for the share of `hits` (bools) when they come in correlated `groups` (the
    windows of one video: a detector that flags one window of a video tends to flag its others).

    Counting every item as independent makes the interval as narrow as if each came from a video
    of its own. Here the Wilson interval uses an effective sample size n / deff, deff the design
    effect under perfect within-group correlation: Kish's n^2 / sum m_i^2, the number of groups
    when they are the same size, fewer when one group dominates. No false alarm in 480 windows of
    12 videos bounds the rate near 12 draws' worth, not 480. Conservative where windows of a video
    disagree often; `n` stays the item count; method "wilson-clustered"."""
    _check(confidence, 1)
    raw = np.asarray(hits)
    if raw.dtype.kind == "f" and not np.isfinite(raw).all():  # NaN would count as a hit
        raise ValueError("hits hold NaN or infinite values; give True/False for each item")
    h = raw.astype(bool).ravel()
    g = np.asarray(groups, dtype=object).ravel()
    if h.size == 0 or h.size != g.size:
        raise ValueError(f"hits and groups must be non-empty and of one length, got {h.size} and {g.size}")
    _, idx = np.unique(g.astype(str), return_inverse=True)
    m = np.bincount(idx).astype(np.float64)  # items per group
    n = float(h.size)
    p = float(h.mean())
    # Perfect correlation within groups (Kish's size), whatever the estimated design effect: with a
    # dozen recordings of unequal lengths the estimate itself is too noisy to lean on (session 32's
    # coverage check: 0.80-0.88 with 10 x 16 + 2 x 80 windows, 0.45-0.72 with one recording of 200
    # beside 11 of 5), and windows of one recording are near copies for a detector.
    n_eff = n * n / float((m * m).sum())
    lo, hi = _wilson(p, n_eff, confidence)
    lo = 0.0 if p == 0.0 else lo
    hi = 1.0 if p == 1.0 else hi
    return Estimate(p, lo, hi, int(n), "wilson-clustered", confidence)


def paired_bootstrap_diff(a, b, statistic: Callable = np.mean, *, n_boot: int = 2000, seed: int | None = 0,
                          confidence: float = 0.95, bounds: tuple[float, float] | None = None
                          ) -> tuple[Estimate, float]:
    """Interval of `statistic(a) - statistic(b)` for paired samples (a[i] and b[i] measured on the
    same prompt/clip/seed), resampling the pairs jointly, and a two-sided p-value.

    The p-value is a paired randomisation test: under "no difference" each pair's two values are
    exchangeable, so the observed |difference| is ranked among those with the pairs' members
    swapped (all 2^n swaps up to n = 12, else `n_boot` random ones, counting the observed one).
    It is exact at any n: two pairs can never go below p = 0.5 (each swap pattern ties with its
    mirror). (The percentile-inversion p used before read p = 0.001 for two pairs whose
    differences were 0.01 and 0.50, and half of all 2-pair comparisons without a true difference
    came out "supported".)
    For the mean the interval is the bootstrap's widened to the paired t interval where that is
    wider (see `mean_ci`); for other statistics it is the bootstrap's. For n == 1 the bounds and
    p are NaN. `bounds` (low, high): the range of a and b's values, where known (pass rates in
    [0, 1]): differences that do not vary at all (8 passes against 8 fails, or 6 ties) then get
    `mean_ci`'s worst-case interval in [low - high, high - low] instead of a point ("1 [1, 1]"
    from 8 pairs; session 32's coverage check found 60% of 2-pair binary comparisons so); with no
    range given, resamples that do not vary give no interval (`not_estimable`).
    """
    _check(confidence, n_boot)
    if bounds is not None and not float(bounds[0]) < float(bounds[1]):
        raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
    a, b = _as_1d(a, "a"), _as_1d(b, "b")
    if a.size != b.size:
        raise ValueError(f"paired samples differ in length: a has {a.size}, b has {b.size}")
    order = np.lexsort((b, a))  # the pairs in one order by value: the same interval in any order given
    a, b = a[order], b[order]
    value = float(statistic(a)) - float(statistic(b))
    method = "paired-bootstrap-percentile"
    if a.size == 1:
        return Estimate(value, math.nan, math.nan, 1, method, confidence), math.nan
    ra, rb = _resampled([a, b], statistic, int(n_boot), seed)
    lo, hi = _percentiles(ra - rb, confidence)
    if statistic is np.mean:
        d = a - b
        half = _t_quantile(confidence, d.size - 1) * float(d.std(ddof=1)) / math.sqrt(d.size)
        lo, hi, method = min(lo, value - half), max(hi, value + half), "paired-bootstrap-percentile+t"
        if bounds is not None and no_spread(d):
            span = float(bounds[1]) - float(bounds[0])
            w = mean_ci(d, bounds=(-span, span), n_boot=n_boot, seed=seed, confidence=confidence)
            lo, hi, method = w.ci_low, w.ci_high, "paired-" + w.method
    p = _swap_test(a, b, statistic, n_boot, seed)
    if no_spread(ra - rb) and not (statistic is np.mean and bounds is not None):  # (bounded: Wilson's above)
        return not_estimable(value, a.size, f"all {a.size} paired differences equal", confidence), p
    return Estimate(value, lo, hi, int(a.size), method, confidence), p


def _swap_test(a: np.ndarray, b: np.ndarray, statistic: Callable, n_boot: int, seed) -> float:
    """Two-sided p of the paired randomisation test (see `paired_bootstrap_diff`)."""
    n = a.size
    if n <= 12:  # every swap pattern: exact
        swaps = ((np.arange(1 << n)[:, None] >> np.arange(n)) & 1).astype(bool)  # [2^n, n]
    else:
        swaps = np.random.default_rng(seed).random((int(n_boot), n)) < 0.5
    sa, sb = np.where(swaps, b, a), np.where(swaps, a, b)
    diffs = np.abs(_apply(statistic, sa) - _apply(statistic, sb))
    observed = abs(float(statistic(a)) - float(statistic(b)))
    tol = 1e-12 * max(1.0, observed)
    at_least = int((diffs >= observed - tol).sum())
    if n <= 12:
        return at_least / swaps.shape[0]
    return (at_least + 1) / (swaps.shape[0] + 1)
