"""A paired bootstrap of two models' distances (FVD, KVD) to one reference set.

Two models of one suite make a clip for every (prompt, seed): their clips are matched pairs, and
both are measured against the same reference. Comparing their FVDs by the overlap of two
independent intervals ignores both facts: the reference's own sampling noise moves both FVDs the
same way, and so does the choice of prompts. The paired bootstrap draws, in each resample, one set
of pair indices (used for both models) and one set of reference indices (used for both), and
takes the difference of the two distances:

    d* = D(ref[j*], A[i*]) - D(ref[j*], B[i*])

The interval is the percentile interval of d*, recentred on the observed difference as the
single-set intervals are (`fvd.two_sample_bootstrap`: duplicated clips read as lost diversity,
which shifts every resample); the two-sided p-value is the share of recentred resamples at least
as far from the observed difference as the observed difference is from 0 (a bootstrap test of
no difference; the observed difference counted as one resample). Measured on Gaussian features
(session 36, 8-d, 40 pairs, 40 reference clips, 50 seeds; `tests/metrics/test_fvd_paired.py`): a
shift of 1.5 along one feature is supported 49 of 50 times paired, 20 of 50 by disjoint single
intervals; sets of one distribution were called different 0 of 100 times (a review's null
simulations: p < 0.05 in 0.7-2.5% at 8-32-d, so the test is conservative).

Each resample is computed from how often it draws each clip (counts), not from copies of the
drawn rows (since session 38): for FVD the resampled reference's mean, covariance and Cholesky
factor are computed once and serve both models, and covariances take only the distinct clips
drawn, weighted by their counts; for KVD the five kernel matrices of the whole sets are computed
once and a resample is a few weighted sums of their entries. The same numbers as resampling
copies (`frechet_distance_from_features`, `fvd._mmd2_unbiased`) to float round-off
(`tests/metrics/test_fvd_paired.py`).
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from evalkit.metrics.base import as_features
from evalkit.metrics.blas import one_blas_thread
from evalkit.metrics.fvd import (
    KVD_KEPT_KERNELS_MAX,
    FactoredCovariance,
    _mmd2_unbiased,
    frechet_distance_factored,
    frechet_distance_from_features,
    mmd2_from_counts,
    polynomial_kernel,
)
from evalkit.metrics.stats import Estimate, no_spread, not_estimable

KVD_DEGREE, KVD_COEF0 = 3, 1.0  # the suite's KVD kernel: (x.y / D + 1)^3 (`score._fvd`)
# Past KVD_KEPT_KERNELS_MAX clips in a set the KVD resamples go back to kernel matrices per
# resample: the five kept whole-set matrices are 5 N^2 floats (640 MB at 4,000 clips).


def _kvd(x: np.ndarray, y: np.ndarray) -> float:
    return _mmd2_unbiased(x, y, KVD_DEGREE, 1.0 / x.shape[1], KVD_COEF0)


# the test's version: a kept result (`reports.paired_cache`) is reused only by the same code
PAIRED_CODE = "fvd-paired-2"

STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "fvd": frechet_distance_from_features, "kvd": _kvd}

# A resampled difference: (pair indices i [K], reference indices j [R]) -> d*
Resampler = Callable[[np.ndarray, np.ndarray], float]


def _weighted_statistics(f: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (ddof=1, symmetric) of the rows of `f` each taken
    `counts[i]` times: `feature_statistics(f[idx])` without the copies, and over the distinct
    rows only (a resample of N draws ~63% of them)."""
    n = counts.sum()
    drawn = np.flatnonzero(counts)
    w, x = counts[drawn].astype(np.float64), f[drawn]
    mu = (w @ x) / n
    x = (x - mu) * np.sqrt(w)[:, None]
    s = (x.T @ x) / (n - 1)  # x.T @ x: numpy's symmetric rank-k product, half a general one's work
    return mu, (s + s.T) * 0.5


def _fvd_resampler(real: np.ndarray, a: np.ndarray, b: np.ndarray) -> Resampler:
    if max(real.shape[0], a.shape[0]) < real.shape[1]:
        # fewer clips than dimensions: `frechet_distance_from_features` takes its SVD path, which
        # shares nothing between the two distances; copies as before
        return lambda i, j: (frechet_distance_from_features(real[j], a[i])
                             - frechet_distance_from_features(real[j], b[i]))
    r, k = real.shape[0], a.shape[0]

    def diff(i: np.ndarray, j: np.ndarray) -> float:
        mu_r, s_r = _weighted_statistics(real, np.bincount(j, minlength=r))
        ref = FactoredCovariance(s_r)  # once for both models
        w = np.bincount(i, minlength=k)
        return (frechet_distance_factored(mu_r, ref, *_weighted_statistics(a, w))
                - frechet_distance_factored(mu_r, ref, *_weighted_statistics(b, w)))
    return diff


def _kvd_resampler(real: np.ndarray, a: np.ndarray, b: np.ndarray) -> Resampler:
    if max(real.shape[0], a.shape[0]) > KVD_KEPT_KERNELS_MAX:
        return lambda i, j: _kvd(real[j], a[i]) - _kvd(real[j], b[i])
    gamma = 1.0 / real.shape[1]
    k_rr, k_ra, k_rb, k_aa, k_bb = (polynomial_kernel(x, y, KVD_DEGREE, gamma, KVD_COEF0)
                                    for x, y in ((real, real), (real, a), (real, b), (a, a), (b, b)))
    r, k = real.shape[0], a.shape[0]

    def diff(i: np.ndarray, j: np.ndarray) -> float:
        wr, w = np.bincount(j, minlength=r), np.bincount(i, minlength=k)
        # the reference's own term is in both distances and cancels in d*, as it did in the copies
        # up to round-off; it is kept so each distance is the full MMD^2
        return mmd2_from_counts(k_rr, k_aa, k_ra, wr, w) - mmd2_from_counts(k_rr, k_bb, k_rb, wr, w)
    return diff


RESAMPLERS: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], Resampler]] = {
    "fvd": _fvd_resampler, "kvd": _kvd_resampler}


def paired_distance_diff(real, a, b, metric: str = "fvd", n_boot: int = 500, seed: int = 0,
                         confidence: float = 0.95,
                         progress: Callable[[Iterable[int]], Iterable[int]] | None = None
                         ) -> tuple[Estimate, float]:
    """(estimate of D(real, a) - D(real, b) with its interval, two-sided p of no difference).
    `a[i]` and `b[i]` are the features [K, D] of matched clips (same prompt and seed), `real` the
    reference's [R, D]; `n` of the estimate is K. `progress` wraps the loop over resamples (a
    tqdm bar)."""
    stat = STATISTICS[metric]
    real, a, b = as_features(real, "reference"), as_features(a, "a"), as_features(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"paired sets must have the same shape, got {a.shape} and {b.shape}")
    if a.shape[0] < 2 or real.shape[0] < 2:
        raise ValueError(f"need at least 2 pairs and 2 reference clips, got {a.shape[0]} and {real.shape[0]}")
    rng = np.random.default_rng(seed)
    k, r = a.shape[0], real.shape[0]
    reps = np.empty(int(n_boot))
    resampled_diff = RESAMPLERS[metric](real, a, b)  # KVD's kernel matrices: big products, threads help
    # then one BLAS thread: the resamples are [D, D] products and factorisations, too small to
    # split across threads, and threads that wait on each other on a busy machine made them 5-50
    # times slower (2 cores at load 4: a 400-d Cholesky 1.7 ms on one thread, 270 ms on two)
    with one_blas_thread():
        value = float(stat(real, a) - stat(real, b))
        for n in (progress or iter)(range(reps.size)):
            i, j = rng.integers(0, k, k), rng.integers(0, r, r)
            reps[n] = resampled_diff(i, j)
    if no_spread(np.append(reps, value)):
        return not_estimable(value, k, "every resample equal: the two sets are the same clips?", confidence), 1.0
    centred = reps - (reps.mean() - value)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(centred, [alpha, 1.0 - alpha])
    lo, hi = min(float(lo), value), max(float(hi), value)
    # under no difference the resamples would scatter about 0 as they scatter about the value
    # (counting the observed difference as one of the resamples: never 0 from a finite bootstrap)
    p = (float(np.sum(np.abs(centred - value) >= abs(value))) + 1.0) / (reps.size + 1)
    return Estimate(value, lo, hi, k, "paired-bootstrap-recentred", confidence), p
