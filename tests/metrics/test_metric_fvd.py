"""FVD / KVD / precision-recall on feature matrices: exactness against scipy and closed forms,
statistical behaviour on Gaussians, and the shared metric tester on the classes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evalkit.metrics.fvd import (
    FrechetVideoDistance,
    KernelVideoDistance,
    VideoPrecisionRecall,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    fvd_with_ci,
    kernel_distance,
    kvd_with_ci,
    precision_recall,
    precision_recall_with_ci,
)
from evalkit.metrics.stats import Estimate

from .helpers import CHECKS, MetricCase, upd


def _gaussian_features(rng, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """[n, d] correlated Gaussian features (a random mixing matrix) with mean `shift`."""
    mix = rng.normal(size=(d, d)) / math.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


# ------------------------------------------------------------------------------------------------
# Frechet distance: fast path against scipy.linalg.sqrtm


@pytest.mark.parametrize("n1,n2", [(1200, 1000), (50, 50), (50, 1000)],
                         ids=["full-rank", "both-rank-deficient", "one-rank-deficient"])
def test_fast_frechet_matches_sqrtm_at_d400(n1, n2):
    rng = np.random.default_rng(n1 + n2)
    f1 = _gaussian_features(rng, n1, 400)
    f2 = _gaussian_features(rng, n2, 400, shift=0.05)
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    ref = frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    fast = frechet_distance(mu1, s1, mu2, s2)
    from_feats = frechet_distance_from_features(f1, f2)
    assert _rel(fast, ref) <= 1e-7, (fast, ref)  # the README says "to 1e-7" (measured 5e-8 at worst)
    assert _rel(from_feats, ref) <= 1e-7, (from_feats, ref)
    # the two exact routes (Cholesky/eigh on covariances; SVD of the cross-Gram) agree far closer
    assert _rel(from_feats, fast) <= 1e-10


def test_frechet_closed_form_for_diagonal_covariances():
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.1, 4, 50), rng.uniform(0.1, 4, 50)
    mu1, mu2 = rng.normal(size=50), rng.normal(size=50)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert _rel(frechet_distance(mu1, np.diag(a), mu2, np.diag(b)), expected) <= 1e-12


def test_frechet_identical_sets_is_zero():
    f = _gaussian_features(np.random.default_rng(2), 300, 64)
    mu, s = feature_statistics(f)
    scale = np.trace(s)
    assert abs(frechet_distance(mu, s, mu, s)) <= 1e-10 * scale
    assert abs(frechet_distance_from_features(f, f)) <= 1e-10 * scale
    small = f[:20]  # N < D: the cross-Gram route
    assert abs(frechet_distance_from_features(small, small)) <= 1e-10 * scale


@pytest.mark.parametrize("n", [300, 30], ids=["N>D", "N<D"])
def test_frechet_grows_as_squared_mean_shift_for_equal_covariances(n):
    rng = np.random.default_rng(3)
    f = _gaussian_features(rng, n, 64)
    trace = np.trace(np.cov(f, rowvar=False))
    for scale in (0.01, 0.3, 3.0):
        delta = scale * rng.normal(size=64)
        got = frechet_distance_from_features(f, f + delta)  # same covariance, mean moved by delta
        assert abs(got - delta @ delta) <= 1e-9 * (delta @ delta + trace)


def test_frechet_rejects_bad_input():
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance_from_features(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        frechet_distance_from_features(np.full((4, 3), np.nan), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="method"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), method="magic")


def test_fvd_with_ci_is_seeded_and_brackets_a_shift():
    rng = np.random.default_rng(4)
    real = _gaussian_features(rng, 80, 16)
    fake = _gaussian_features(rng, 60, 16, shift=0.5)
    est = fvd_with_ci(real, fake, n_boot=60, seed=7)
    assert isinstance(est, Estimate) and est.n == 60
    assert est.value == pytest.approx(frechet_distance_from_features(real, fake), rel=1e-12)
    assert 0 < est.ci_low < est.value < est.ci_high
    assert fvd_with_ci(real, fake, n_boot=60, seed=7) == est


# ------------------------------------------------------------------------------------------------
# Kernel distance


def _mmd2_biased(x, y):
    k = lambda a, b: (a @ b.T / a.shape[1] + 1.0) ** 3  # noqa: E731
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_kernel_distance_is_unbiased():
    """Over many pairs of independent samples of one distribution the estimator averages to 0
    (within 3 standard errors), where the biased V-statistic stays clearly positive."""
    rng = np.random.default_rng(5)
    vals, biased = [], []
    for _ in range(300):
        x, y = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
        vals.append(kernel_distance(x, y)[0])
        biased.append(_mmd2_biased(x, y))
    vals = np.array(vals)
    se = vals.std(ddof=1) / math.sqrt(vals.size)
    assert abs(vals.mean()) < 3 * se
    assert np.mean(biased) > 10 * se


def test_kernel_distance_near_zero_same_and_positive_shifted():
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(400, 32)), rng.normal(size=(400, 32))
    shifted = rng.normal(size=(400, 32)) + 0.5
    same, per = kernel_distance(a, b, subsets=20, subset_size=200)
    far, _ = kernel_distance(a, shifted, subsets=20, subset_size=200)
    assert per.shape == (20,) and same == pytest.approx(per.mean())
    assert far > 0 and abs(same) < 0.05 * far
    # the whole set as one subset: computed once
    full, per_full = kernel_distance(a, b, subset_size=10_000)
    assert per_full.shape == (1,)


# ------------------------------------------------------------------------------------------------
# precision / recall


def test_precision_recall_behaviour():
    rng = np.random.default_rng(7)
    real = rng.normal(size=(500, 8))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)  # every sample is its own twin
    p, r = precision_recall(real, rng.normal(size=(500, 8)))  # same distribution
    assert p > 0.8 and r > 0.8
    p, r = precision_recall(real, rng.normal(size=(500, 8)) + 50.0)  # disjoint
    assert p == 0.0 and r == 0.0
    # mode dropping: real has two far-apart modes, fake only one -> full precision, half recall
    two = real + np.where(np.arange(500)[:, None] % 2 == 0, 20.0, -20.0)
    one = rng.normal(size=(250, 8)) + 20.0
    p, r = precision_recall(two, one)
    assert p > 0.8 and 0.4 <= r <= 0.5
    # chunking does not change the answer
    assert precision_recall(two, one, chunk=37) == (p, r)


def _two_modes_and_one(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Real: two modes, each sample's mode drawn at random; fake: a wider copy of one mode."""
    real = rng.normal(size=(n, 8)) + np.where(rng.random((n, 1)) < 0.5, 3.0, -3.0)
    return real, rng.normal(size=(n, 8)) * 1.2 + 3.0


def test_precision_recall_ci_values_and_edges(monkeypatch):
    rng = np.random.default_rng(3)
    real, fake = _two_modes_and_one(rng, 50)
    p, r = precision_recall_with_ci(real, fake)
    assert (p.value, r.value) == precision_recall(real, fake)  # the estimate is the full-set one
    assert p.ci_low <= p.value <= p.ci_high and r.ci_low <= r.value <= r.ci_high
    assert 0.0 <= p.ci_low < p.ci_high <= 1.0 and 0.0 <= r.ci_low < r.ci_high <= 1.0
    assert (p.n, r.n) == (50, 50) and p.method == "bootstrap-recentred-2sample+wilson"
    assert precision_recall_with_ci(real, fake, seed=1)[0].ci_low != p.ci_low  # the seed is used
    # identical sets: full marks, but a resampled manifold misses some twins, so the interval opens
    same = precision_recall_with_ci(real, real.copy())
    assert all(e.value == e.ci_high == 1.0 and 0.8 < e.ci_low < 1.0 for e in same)
    apart = precision_recall_with_ci(real, fake + 100.0)
    # no resample moves a share of 0 of 50: the interval is Wilson's, not the point [0, 0] (session 31)
    from evalkit.metrics.stats import proportion_ci

    wilson = proportion_ci(0, 50)
    assert [(e.value, e.ci_low, e.ci_high) for e in apart] == [(0.0, 0.0, pytest.approx(wilson.ci_high))] * 2
    # n is each rate's own denominator: generated samples for precision, real ones for recall
    p, r = precision_recall_with_ci(real[:30], fake)
    assert (p.n, r.n) == (50, 30)
    with pytest.raises(ValueError, match="k=3"):
        precision_recall_with_ci(real[:3], fake)
    # above the bootstrap's size limit: Wilson intervals over the queries, the same estimates
    import evalkit.metrics.precision_recall as pr

    monkeypatch.setattr(pr, "MAX_BOOTSTRAP_N", 40)
    p, r = precision_recall_with_ci(real, fake)
    assert (p.value, r.value) == precision_recall(real, fake) and p.method == "wilson-manifold-fixed"
    assert p.ci_low < p.value < p.ci_high and r.ci_low < r.value < r.ci_high


def test_precision_recall_ci_covers_and_narrows():
    """Over independent experiments the 95% intervals hold the estimator's mean at that N (its
    finite-N expectation, from many draws) most of the time, and they narrow as N grows."""
    rng = np.random.default_rng(11)
    n = 40
    truth = np.mean([precision_recall(*_two_modes_and_one(rng, n)) for _ in range(200)], axis=0)
    hits, widths = np.zeros(2), []
    for _ in range(40):
        p, r = precision_recall_with_ci(*_two_modes_and_one(rng, n), n_boot=150)
        hits += [p.ci_low <= truth[0] <= p.ci_high, r.ci_low <= truth[1] <= r.ci_high]
        widths.append((p.ci_high - p.ci_low, r.ci_high - r.ci_low))
    assert (hits / 40 >= 0.85).all(), hits / 40
    big = [precision_recall_with_ci(*_two_modes_and_one(rng, 4 * n), n_boot=150) for _ in range(5)]
    big_widths = np.mean([(p.ci_high - p.ci_low, r.ci_high - r.ci_low) for p, r in big], axis=0)
    assert (big_widths < 0.75 * np.mean(widths, axis=0)).all()


# ------------------------------------------------------------------------------------------------
# classes: the shared tester


def _feature_batches(seed: int, d: int = 8, sizes=(5, 7, 6, 4, 9, 6)):
    """Alternating real / fake feature batches (float32 tensors, as a backbone would give)."""
    rng = np.random.default_rng(seed)
    out = []
    for i, n in enumerate(sizes):
        real = i % 2 == 0
        x = _gaussian_features(rng, n, d, shift=0.0 if real else 0.3) + 2.0
        out.append(upd(torch.from_numpy(x).float(), real=real))
    return out


def _sets(batches):
    real = np.concatenate([b.args[0].double().numpy() for b in batches if b.kwargs["real"]])
    fake = np.concatenate([b.args[0].double().numpy() for b in batches if not b.kwargs["real"]])
    return real, fake


CASES = {
    "fvd": MetricCase(lambda: FrechetVideoDistance(num_features=8), _feature_batches(10),
                      lambda bs: frechet_distance_from_features(*_sets(bs)), rtol=1e-9, atol=1e-10),
    # keeping the features for compute_with_ci must not change the contract (merge, DDP, reset)
    "fvd_kept": MetricCase(lambda: FrechetVideoDistance(num_features=8, keep_features=True), _feature_batches(10),
                           lambda bs: frechet_distance_from_features(*_sets(bs)), rtol=1e-9, atol=1e-10),
    # the whole sets' unbiased MMD^2 (kvd_with_ci's value, since session 33), also for sets of
    # unequal size (20 real, 17 fake), where random subsets drawn by position made it order-dependent
    "kvd": MetricCase(KernelVideoDistance, _feature_batches(11),
                      lambda bs: kvd_with_ci(*_sets(bs), n_boot=1).value, rtol=1e-9, atol=1e-12),
    "precision_recall": MetricCase(lambda: VideoPrecisionRecall(k=3), _feature_batches(12),
                                   lambda bs: precision_recall(*_sets(bs), k=3), rtol=0, atol=0),
}


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
@pytest.mark.parametrize("name", list(CASES))
def test_feature_metric_classes(name, check):
    check(CASES[name])


def _toy_extractor(videos: torch.Tensor) -> torch.Tensor:
    """videos [B, T, 3, H, W] -> [B, 6]: per-channel mean and temporal-difference energy."""
    mean = videos.mean(dim=(1, 3, 4))
    motion = videos.diff(dim=1).abs().mean(dim=(1, 3, 4))
    return torch.cat([mean, motion], dim=1)


def test_classes_take_videos_through_a_feature_extractor():
    g = torch.Generator().manual_seed(0)
    real = [torch.rand(4, 5, 3, 8, 8, generator=g) for _ in range(3)]
    fake = [torch.rand(4, 5, 3, 8, 8, generator=g) ** 2 for _ in range(3)]
    fr = torch.cat([_toy_extractor(v) for v in real]).double().numpy()
    ff = torch.cat([_toy_extractor(v) for v in fake]).double().numpy()
    fvd = FrechetVideoDistance(num_features=6, feature_extractor=_toy_extractor)
    kvd = KernelVideoDistance(feature_extractor=_toy_extractor)
    for r, f in zip(real, fake):
        for m in (fvd, kvd):
            m.update(r, real=True)
            m.update(f, real=False)
    assert fvd.compute().item() == pytest.approx(frechet_distance_from_features(fr, ff), rel=1e-9)
    assert kvd.compute().item() == pytest.approx(kernel_distance(fr, ff, subset_size=100)[0], rel=1e-12)
    est = kvd.compute_with_ci(n_boot=20)  # full sets of 12: the same number as compute()
    assert est.n == 12 and est.ci_low <= est.ci_high
    assert est.value == pytest.approx(kvd.compute().item(), rel=1e-12)
    assert fvd.protocol() == {"metric": "fvd", "num_features": 6, "method": "fast", "covariance": "ddof=1",
                              "n_real": 12, "n_fake": 12, "ci": "none (keep_features=False)"}
    assert kvd.protocol()["n_fake"] == 12


def test_feature_metric_errors_are_clear():
    m = FrechetVideoDistance(num_features=4)
    with pytest.raises(ValueError, match="num_features=4"):
        m.update(torch.zeros(3, 5), real=True)
    with pytest.raises(ValueError, match="no feature_extractor"):
        m.update(torch.zeros(2, 4, 3, 8, 8), real=True)
    with pytest.raises(ValueError, match="NaN"):
        m.update(torch.full((3, 4), float("nan")), real=True)
    m.update(torch.randn(5, 4), real=True)
    with pytest.raises(RuntimeError, match="at least 2 fake"):
        m.compute()
    k = KernelVideoDistance()
    k.update(torch.randn(3, 4), real=True)
    with pytest.raises(RuntimeError, match="0 fake"):
        k.compute()


def test_small_n_fvd_interval_contains_its_value():
    """Resampling with replacement inflates FVD at small N; the recentred interval still brackets
    the estimate and stays non-negative."""
    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(24, 32)), rng.normal(0.3, 1.0, size=(16, 32))
    est = fvd_with_ci(real, fake, n_boot=100, seed=0)
    assert 0.0 <= est.ci_low <= est.value <= est.ci_high


def test_identical_sets_never_give_a_negative_distance():
    """Rounding left FVD(a, a) at -2e-13 for 11 of 40 seeds, outside its own interval [0, ...]."""
    from evalkit.metrics.fvd import fvd_with_ci

    for seed in range(40):
        a = np.random.default_rng(seed).normal(size=(10, 400))
        e = fvd_with_ci(a, a.copy(), n_boot=20)
        assert 0.0 <= e.value <= e.ci_high and e.ci_low <= e.value


def test_badly_scaled_features_keep_the_trace_sqrt_accurate():
    """Per-dimension scales 1e-3..1e3: the product's eigenvalues span 1e24 and the fast path lost
    6e-6 relative (a 40-digit reference, session 32); it now hands such cases to sqrtm."""
    rng = np.random.default_rng(1)
    sc = np.logspace(-3, 3, 24)
    f1, f2 = rng.normal(size=(150, 24)) * sc, rng.normal(size=(150, 24)) * sc * 1.05 + 0.01 * sc
    fast, ref = frechet_distance_from_features(f1, f2), frechet_distance_from_features(f1, f2, method="sqrtm")
    assert abs(fast - ref) / ref < 1e-6


def test_sets_of_copies_give_no_interval_and_others_hold_their_value():
    """Two sets of one clip repeated: every resample is the same number. Recentring put both bounds
    1 ulp off the value (263 of 400 did not hold it, session 33), and once held it read
    "1382 [1382, 1382]", certainty from 4 copies (session 34): no interval, and the reason."""
    from evalkit.metrics.fvd import fvd_with_ci, kvd_with_ci

    rng = np.random.default_rng(7)
    for _ in range(20):
        a = np.tile(rng.normal(size=(1, 8)) * 10, (4, 1))
        b = np.tile(rng.normal(size=(1, 8)) * 10, (4, 1))
        for est in (fvd_with_ci(a, b, n_boot=20), kvd_with_ci(a, b, n_boot=20)):
            assert est.value > 0 and est.n == 4 and math.isnan(est.ci_low) and math.isnan(est.ci_high)
            assert est.method.startswith("not-estimable(every resample equal")
        b[0] += 1.0  # one clip differs: resamples vary, an interval again, holding its value
        for est in (fvd_with_ci(a, b, n_boot=20), kvd_with_ci(a, b, n_boot=20)):
            assert est.ci_low <= est.value <= est.ci_high and est.ci_low < est.ci_high


def test_kvd_resamples_from_kept_kernels_equal_the_copies(monkeypatch):
    """Since session 38 a KVD bootstrap resample is a few weighted sums of the whole sets' kernel
    matrices (draw counts), not kernel matrices of copied rows: the same resamples, hence the
    same interval, to round-off; drawn-twice rows count as two positions, as in the copies."""
    from evalkit.metrics import fvd

    rng = np.random.default_rng(4)
    real, fake = rng.normal(size=(40, 12)), rng.normal(size=(30, 12)) + 0.3
    i, j = rng.integers(0, 40, 40), rng.integers(0, 30, 30)
    assert np.bincount(i).max() > 1 and np.bincount(j).max() > 1  # duplicates drawn
    kept = fvd.kept_kernel_mmd2(real, fake, 3, 1 / 12, 1.0)
    copies = fvd._mmd2_unbiased(real[i], fake[j], 3, 1 / 12, 1.0)
    assert kept(i, j) == pytest.approx(copies, rel=1e-10, abs=1e-13)
    fast = kvd_with_ci(real, fake, n_boot=50, seed=3)
    monkeypatch.setattr(fvd, "KVD_KEPT_KERNELS_MAX", 10)  # these sets are "too many": copies
    slow = kvd_with_ci(real, fake, n_boot=50, seed=3)
    assert fast.value == slow.value and fast.n == slow.n
    assert (fast.ci_low, fast.ci_high) == pytest.approx((slow.ci_low, slow.ci_high), rel=1e-9, abs=1e-13)
