"""The paired bootstrap of two sets' FVD (and KVD) to one reference: it tells apart sets whose
single intervals overlap when their clips are paired, and does not call a difference where the
two sets come from one distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest

from evalkit.metrics import fvd_paired
from evalkit.metrics.fvd import _mmd2_unbiased, frechet_distance_from_features, fvd_with_ci
from evalkit.metrics.fvd_paired import RESAMPLERS, paired_distance_diff

D, K, R = 8, 40, 40


def sets(seed: int, shift: float, paired: bool = True):
    """A reference and two sets of K matched clips: b is a's clips (other noise) moved by `shift`
    along one feature; unpaired, b is drawn afresh from a's distribution."""
    rng = np.random.default_rng(seed)
    real, base = rng.normal(size=(R, D)), rng.normal(size=(K, D))
    a = base + 0.1 * rng.normal(size=(K, D))
    b = (base if paired else rng.normal(size=(K, D))) + 0.1 * rng.normal(size=(K, D))
    b[:, 0] += shift
    return real, a, b


def supported(est, p) -> bool:
    return p < 0.05 and not est.ci_low <= 0 <= est.ci_high


def overlap(real, a, b) -> bool:
    ea, eb = fvd_with_ci(real, a), fvd_with_ci(real, b)
    return ea.ci_low <= eb.ci_high and eb.ci_low <= ea.ci_high


def test_pairing_separates_what_overlapping_intervals_cannot():
    """Measured (50 seeds, session 36): shift 1.5 supported by the paired test 49/50, by disjoint
    single intervals 20/50."""
    found = separated = 0
    for seed in range(10):
        real, a, b = sets(seed, 1.5)
        est, p = paired_distance_diff(real, a, b)
        assert est.value < 0 and est.n == K and est.method == "paired-bootstrap-recentred"
        assert est.ci_low <= est.value <= est.ci_high
        found += supported(est, p)
        separated += not overlap(real, a, b)
    assert found >= 8 and separated <= 6, (found, separated)


@pytest.mark.parametrize("paired", [True, False])
def test_no_difference_is_called_between_sets_of_one_distribution(paired):
    calls = sum(supported(*paired_distance_diff(*sets(seed, 0.0, paired), seed=seed)) for seed in range(12))
    assert calls <= 1


def test_kvd_too_and_the_sign_follows_the_order():
    real, a, b = sets(3, 2.0)
    ab, p_ab = paired_distance_diff(real, a, b, "kvd")
    ba, p_ba = paired_distance_diff(real, b, a, "kvd")
    assert ab.value == pytest.approx(-ba.value) and ab.value < 0 and supported(ab, p_ab) and supported(ba, p_ba)


def test_identical_sets_have_no_interval_and_refuse_unpaired_shapes():
    real, a, _ = sets(0, 0.0)
    est, p = paired_distance_diff(real, a, a.copy())
    assert est.value == 0 and math.isnan(est.ci_low) and est.method.startswith("not-estimable") and p == 1.0
    with pytest.raises(ValueError, match="same shape"):
        paired_distance_diff(real, a, a[:-1])


# --------------------------------------------------------------------------------------------
# Resamples from counts (session 38) against resamples from copies


def _kvd_of_copies(x, y):
    return _mmd2_unbiased(x, y, 3, 1.0 / x.shape[1], 1.0)


def _copies_diff(metric, real, a, b, i, j):
    """d* as written before session 38: the distances of indexed copies of the drawn rows."""
    stat = frechet_distance_from_features if metric == "fvd" else _kvd_of_copies
    return stat(real[j], a[i]) - stat(real[j], b[i])


def _feature_sets(case: str, seed: int = 0):
    """(reference, a, b): full rank; rank 3 in 6-d (singular covariances: the eigh path); a
    rank-deficient reference against full-rank sets (the second set's Cholesky); fewer clips
    than dimensions (the SVD path)."""
    rng = np.random.default_rng(seed)
    d, k, r = (40, 15, 20) if case == "fewer-clips-than-dims" else (6, 30, 35)
    def draw(n, rank=d):
        return rng.normal(size=(n, rank)) @ rng.normal(size=(rank, d)) + rng.normal(size=d)
    low = case == "rank-deficient"
    real = draw(r, 3) if case in ("rank-deficient", "reference-rank-deficient") else draw(r)
    a = draw(k, 3) if low else draw(k)
    b = a + 0.3 * (draw(k, 3) if low else draw(k))
    return real, a, b


CASES = ["full-rank", "rank-deficient", "reference-rank-deficient", "fewer-clips-than-dims"]


@pytest.mark.parametrize("metric", ["fvd", "kvd"])
@pytest.mark.parametrize("case", CASES)
def test_each_resample_from_counts_is_the_copies_number(metric, case):
    real, a, b = _feature_sets(case)
    resampled_diff = RESAMPLERS[metric](real, a, b)
    rng = np.random.default_rng(1)
    for _ in range(25):
        i, j = rng.integers(0, len(a), len(a)), rng.integers(0, len(real), len(real))
        assert len(np.unique(i)) < len(i) and len(np.unique(j)) < len(j)  # clips drawn twice
        want = _copies_diff(metric, real, a, b, i, j)
        # round-off of the distances themselves (d* is their difference, it may be far smaller)
        stat = frechet_distance_from_features if metric == "fvd" else _kvd_of_copies
        scale = max(abs(stat(real[j], a[i])), abs(stat(real[j], b[i])), 1e-12)
        assert resampled_diff(i, j) == pytest.approx(want, rel=1e-8, abs=1e-10 * scale)


@pytest.mark.parametrize("metric", ["fvd", "kvd"])
@pytest.mark.parametrize("case", ["full-rank", "rank-deficient"])
def test_the_estimate_is_the_copies_bootstrap(metric, case):
    """paired_distance_diff against the bootstrap written out on copies, same seed."""
    real, a, b = _feature_sets(case, seed=2)
    est, p = paired_distance_diff(real, a, b, metric, n_boot=60, seed=5)
    stat = frechet_distance_from_features if metric == "fvd" else _kvd_of_copies
    value = stat(real, a) - stat(real, b)
    rng = np.random.default_rng(5)
    reps = np.array([_copies_diff(metric, real, a, b, rng.integers(0, len(a), len(a)),
                                  rng.integers(0, len(real), len(real))) for _ in range(60)])
    centred = reps - (reps.mean() - value)
    lo, hi = np.quantile(centred, [0.025, 0.975])
    assert est.value == value
    assert est.ci_low == pytest.approx(min(lo, value), rel=1e-8)
    assert est.ci_high == pytest.approx(max(hi, value), rel=1e-8)
    assert p == (np.sum(np.abs(centred - value) >= abs(value)) + 1) / 61


def test_kvd_past_the_kept_kernels_size_resamples_copies(monkeypatch):
    real, a, b = _feature_sets("full-rank")
    kept = paired_distance_diff(real, a, b, "kvd", n_boot=30)
    monkeypatch.setattr(fvd_paired, "KVD_KEPT_KERNELS_MAX", 10)  # these 35 clips are "too many"
    copied = paired_distance_diff(real, a, b, "kvd", n_boot=30)
    assert copied[1] == kept[1]
    assert (copied[0].ci_low, copied[0].ci_high) == pytest.approx((kept[0].ci_low, kept[0].ci_high), rel=1e-8)
