"""Distribution distances between feature sets of real and generated videos: FVD, KVD, precision/recall.

Everything here takes feature matrices [N, D] (I3D logits, the offline encoder's embedding, ...) and
works in float64; backbones live elsewhere. The torchmetrics classes optionally take a
`feature_extractor` (videos float [B, T, 3, H, W] in [0, 1] -> features [B, D]) so videos can be fed
directly.

- FVD: Frechet distance between Gaussian fits, `|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`,
  covariances with ddof=1 (np.cov, as StyleGAN-V / the FID code). The trace of the matrix square
  root is computed without `scipy.linalg.sqrtm`: with S1 = L L^T (Cholesky), S1 S2 is similar to the
  symmetric PSD L^T S2 L, so Tr((S1 S2)^(1/2)) = sum sqrt(eigvals(L^T S2 L)): one Cholesky and one
  eigenvalues-only symmetric solve instead of a Schur decomposition of a non-symmetric matrix
  (when both covariances are singular: S1^(1/2) S2 S1^(1/2) from `eigh`). When both sets have
  fewer samples than dimensions, the same trace is the nuclear norm of Xc1 Xc2^T (centred
  features): an [N1, N2] SVD, exact where the covariances are singular.
  FVD is biased upwards at small N (the covariance estimates' noise adds trace); `fvd_with_ci`'s
  interval is of that finite-N estimate, comparable only between runs with the same N.
- KVD: unbiased MMD^2 with the polynomial kernel (x.y / D + 1)^3 (Binkowski et al. 2018, as KID);
  `kernel_distance` averages it over random subsets (KID's convention), while `kvd_with_ci`, `evalkit
  score` and `KernelVideoDistance` take it on the whole sets (one number per pair of sets, since
  session 33).
- Precision / recall: k-NN manifolds (Kynkaanniemi et al. 2019), in `precision_recall.py`.
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np
import scipy.linalg
import torch

from evalkit.metrics.base import EvalkitMetric, as_features, cat_state, rows_by_content, synced
from evalkit.metrics.blas import one_blas_thread
from evalkit.metrics.precision_recall import precision_recall, precision_recall_with_ci  # noqa: F401 (re-exported)
from evalkit.metrics.stats import Estimate, no_spread, not_estimable

_EPS = np.finfo(np.float64).eps

# --------------------------------------------------------------------------------------------
# Frechet distance


def feature_statistics(f) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] (ddof=1) of features [N, D], N >= 2."""
    f = as_features(f)
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {f.shape[0]}")
    return f.mean(axis=0), np.cov(f, rowvar=False).reshape(f.shape[1], f.shape[1])


_SPREAD_LIMIT = 1e12  # eigenvalue spread of L^T S2 L past which the fast path's round-off shows


def _psd_eigvals_clean(w: np.ndarray) -> np.ndarray:
    """Eigenvalues of a PSD matrix with round-off removed: anything below d * eps * max is 0.

    A singular covariance's zero eigenvalues come out as +-1e-16 * max; their square roots
    (1e-8 * sqrt(max) each, hundreds of them) would otherwise add up to a visible error."""
    tol = w.size * _EPS * max(float(w.max(initial=0.0)), 0.0)
    return np.where(w > tol, w, 0.0)


def _eigvalsh(m: np.ndarray) -> np.ndarray:
    """Eigenvalues only of a symmetric matrix (LAPACK syevd: several times faster than eigh with
    vectors at D=2048)."""
    return scipy.linalg.eigh((m + m.T) * 0.5, eigvals_only=True, driver="evd", check_finite=False)


class FactoredCovariance:
    """A covariance S1 [D, D] (symmetric PSD) with what `trace_sqrt_product` needs of it computed
    once: its Cholesky factor when safely positive definite (else None), and on first need its
    symmetric square root and whether it has full rank. One set compared with many others (the
    resampled reference of a paired bootstrap, against both models) factorises once."""

    def __init__(self, s: np.ndarray) -> None:
        self.s = s
        self.low = _definite_cholesky(s)
        self._root: np.ndarray | None = None
        self._full_rank: bool | None = None

    @property
    def root(self) -> np.ndarray:
        """S1^(1/2), symmetric PSD, round-off eigenvalues zeroed (the singular-covariance path)."""
        if self._root is None:
            w1, v1 = np.linalg.eigh(self.s)
            self._root = (v1 * np.sqrt(_psd_eigvals_clean(w1))) @ v1.T
        return self._root

    @property
    def full_rank(self) -> bool:
        if self._full_rank is None:
            self._full_rank = bool(np.linalg.matrix_rank(self.s) == self.s.shape[0])
        return self._full_rank


def _definite_cholesky(a: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of `a` when it is safely positive definite (every pivot^2 above 1e-10
    of the largest variance), else None."""
    try:
        low = scipy.linalg.cholesky(a, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return low if (np.diag(low) ** 2).min() > 1e-10 * np.diag(a).max() else None


def trace_sqrt_product(s1, s2: np.ndarray) -> float:
    """Tr((S1 S2)^(1/2)) for symmetric PSD S1, S2 [D, D]; S1 may be given as a
    `FactoredCovariance` (its factorisation then reused).

    Fast path: S1 = L L^T (Cholesky) makes S1 S2 similar to the symmetric PSD L^T S2 L, whose
    eigenvalues alone are needed. Used when one of the two is safely positive definite (S1 tried
    first); otherwise (singular covariances, N <= D) the symmetric square root S1^(1/2) from
    `eigh`, with round-off eigenvalues zeroed."""
    f1 = s1 if isinstance(s1, FactoredCovariance) else FactoredCovariance(s1)
    s1 = f1.s
    w = None
    if f1.low is not None:
        w = _psd_eigvals_clean(_eigvalsh(f1.low.T @ s2 @ f1.low))
    else:  # Tr sqrt(S1 S2) = Tr sqrt(S2 S1)
        low2 = _definite_cholesky(s2)
        if low2 is not None:
            w = _psd_eigvals_clean(_eigvalsh(low2.T @ s1 @ low2))
    if w is None:
        root1 = f1.root
        w = _psd_eigvals_clean(_eigvalsh(root1 @ s2 @ root1))
    pos = w[w > 0]
    if pos.size and pos.max() > _SPREAD_LIMIT * pos.min() and f1.full_rank \
            and np.linalg.matrix_rank(s2) == s2.shape[0]:
        # Full-rank features whose scales differ by 1e3 and more: the product's eigenvalues span
        # the square of that, the smallest come out with absolute error eps * max and their roots
        # add up (6e-6 relative against a 40-digit reference, session 32). Schur's sqrtm there
        # (3e-8), as the reference implementations compute it; rank-deficient covariances (N <= D)
        # keep the eigenvalue path, which is the more accurate one for them.
        return float(np.real(np.trace(scipy.linalg.sqrtm(s1 @ s2))))
    return float(np.sqrt(w).sum())


def frechet_distance(mu1, s1, mu2, s2, method: str = "fast") -> float:
    """|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)), float64.

    method "fast" (default: Cholesky or eigh, see trace_sqrt_product) or "sqrtm" (scipy's
    `sqrtm` of S1 S2, real part of the trace: the reference implementation of StyleGAN-V / FID).
    """
    mu1, mu2 = np.asarray(mu1, np.float64).ravel(), np.asarray(mu2, np.float64).ravel()
    s1, s2 = np.asarray(s1, np.float64), np.asarray(s2, np.float64)
    d = mu1.size
    if mu2.size != d or s1.shape != (d, d) or s2.shape != (d, d):
        raise ValueError(f"shapes do not match: mu1 {mu1.shape}, S1 {s1.shape}, "
                         f"mu2 {mu2.shape}, S2 {s2.shape}")
    s1, s2 = (s1 + s1.T) * 0.5, (s2 + s2.T) * 0.5
    if method == "fast":
        return frechet_distance_factored(mu1, FactoredCovariance(s1), mu2, s2)
    if method != "sqrtm":
        raise ValueError(f"unknown method {method!r}; use 'fast' or 'sqrtm'")
    return _frechet_value(mu1, s1, mu2, s2, float(np.real(np.trace(scipy.linalg.sqrtm(s1 @ s2)))))


def frechet_distance_factored(mu1: np.ndarray, f1: FactoredCovariance, mu2: np.ndarray,
                              s2: np.ndarray) -> float:
    """`frechet_distance` (method "fast") of float64 means [D] and symmetric covariances [D, D],
    S1 given factorised (`FactoredCovariance`): a set compared with many others factorises once."""
    return _frechet_value(mu1, f1.s, mu2, s2, trace_sqrt_product(f1, s2))


def _frechet_value(mu1, s1, mu2, s2, tr_sqrt: float) -> float:
    diff = mu1 - mu2
    # >= 0 exactly; rounding left -2e-13 for identical sets, outside the interval's clipped bounds
    return max(0.0, float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_sqrt))


def frechet_distance_from_features(f1, f2, method: str = "fast") -> float:
    """Frechet distance between Gaussian fits of features f1 [N1, D] and f2 [N2, D].

    With method "fast" and N1, N2 < D the trace term is the nuclear norm of the centred
    [N1, N2] cross-Gram matrix (cheaper and exact for the rank-deficient covariances)."""
    f1, f2 = as_features(f1, "f1"), as_features(f2, "f2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if n1 < 2 or n2 < 2:
        raise ValueError(f"need at least 2 samples in each set, got {n1} and {n2}")
    if method == "fast" and max(n1, n2) < d:
        mu1, mu2 = f1.mean(0), f2.mean(0)
        x1, x2 = f1 - mu1, f2 - mu2  # S_i = x_i^T x_i / (n_i - 1)
        # S1 S2 has the nonzero eigenvalues of (x1 x2^T)(x1 x2^T)^T / c: its sqrt-trace is the
        # sum of the singular values of x1 x2^T / sqrt(c).
        tr_sqrt = np.linalg.svd(x1 @ x2.T, compute_uv=False).sum() / np.sqrt((n1 - 1) * (n2 - 1))
        tr1, tr2 = (x1 * x1).sum() / (n1 - 1), (x2 * x2).sum() / (n2 - 1)
        diff = mu1 - mu2
        return max(0.0, float(diff @ diff + tr1 + tr2 - 2.0 * tr_sqrt))
    mu1, s1 = feature_statistics(f1)
    mu2, s2 = feature_statistics(f2)
    return frechet_distance(mu1, s1, mu2, s2, method=method)


def two_sample_bootstrap(real, fake, statistic: Callable, n_boot: int = 200, seed: int | None = 0,
                         confidence: float = 0.95, lower_bound: float | None = None,
                         resampled: Callable | None = None) -> Estimate:
    """Bootstrap interval of `statistic(real, fake)`, resampling each set independently with
    replacement (the two sets are independent samples); `n` is the generated-set size.

    Resampling with replacement duplicates samples, and distribution distances read duplicates
    as lost diversity: at small N every resample can sit above the estimate (16 clips: FVD 413,
    resamples 456 to 947), and a plain percentile interval would not contain its own value. The
    resamples are therefore recentred on the estimate (their mean shifted onto it) before taking
    percentiles: the spread is the bootstrap's, the resampling artefact is removed. Bounds are
    clipped at `lower_bound` when the statistic cannot go below it (FVD >= 0). Resamples that all
    give one number (two sets of copies) leave no interval to estimate: NaN bounds, with the
    reason in `method` (`stats.not_estimable`). The sets are taken in one order by content
    (`rows_by_content`): in any order the same interval. `resampled(real, fake)`, when given,
    makes the function of the draws (real indices [R], fake indices [F]) -> statistic of the rows
    drawn that the loop calls instead of `statistic(real[ir], fake[jf])`: the same number computed
    without the copies (`kvd_with_ci`)."""
    real, fake = rows_by_content(as_features(real, "real")), rows_by_content(as_features(fake, "fake"))
    if not 0 < confidence < 1 or n_boot < 1:
        raise ValueError(f"need 0 < confidence < 1 and n_boot >= 1, got {confidence}, {n_boot}")
    value = float(statistic(real, fake))
    of_draws = resampled(real, fake) if resampled is not None else (lambda ir, jf: statistic(real[ir], fake[jf]))
    rng = np.random.default_rng(seed)
    reps = np.empty(int(n_boot))
    for b in range(reps.size):
        ir = rng.integers(0, real.shape[0], real.shape[0])
        jf = rng.integers(0, fake.shape[0], fake.shape[0])
        reps[b] = of_draws(ir, jf)
    if no_spread(np.append(reps, value)):
        # every resample the same number (each set one clip repeated, or features that do not
        # vary): "FVD 1382 [1382, 1382]" from 4 copies claimed a certainty no 4 clips can give
        return not_estimable(value, fake.shape[0], "every resample equal: each set one clip repeated?", confidence)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(reps - (reps.mean() - value), [alpha, 1.0 - alpha])
    # recentring can leave a bound an ulp off the value: the interval always holds its own value
    # (263 of 400 intervals of resamples that did not vary did not, session 33)
    lo, hi = min(lo, value), max(hi, value)
    if lower_bound is not None:
        lo, hi = max(lo, lower_bound), max(hi, lower_bound)
    return Estimate(value, float(lo), float(hi), int(fake.shape[0]), "bootstrap-recentred-2sample",
                    confidence)


def fvd_with_ci(real_feats, fake_feats, n_boot: int = 200, seed: int | None = 0,
                confidence: float = 0.95, method: str = "fast") -> Estimate:
    """FVD with a 95% percentile bootstrap interval (both sets resampled), n = generated clips.

    FVD is biased at small N (estimation noise in the covariances adds distance): the interval
    describes the finite-N estimate (recentred, see `two_sample_bootstrap`), and FVDs are
    comparable only at equal N and equal backbone.
    Cost: n_boot Frechet distances (about 30 ms each at 1,000 clips of D=400), on one BLAS thread:
    [D, D] factorisations gain nothing from a second thread, and on a busy machine threads that
    wait on each other made them 5-50 times slower (session 38; at load 0.5, 1,000 x 400-d, 50
    resamples: 3.4 s on two threads, 1.6 s on one)."""
    with one_blas_thread():
        return two_sample_bootstrap(real_feats, fake_feats,
                                    lambda a, b: frechet_distance_from_features(a, b, method),
                                    n_boot, seed, confidence, lower_bound=0.0)


# --------------------------------------------------------------------------------------------
# Kernel distance (KVD)


# Past this many clips in a set, KVD resamples build their kernel matrices anew from the rows drawn:
# the kept whole-set matrices (`kept_kernel_mmd2`) are N^2 floats each (128 MB at 4,000 clips).
KVD_KEPT_KERNELS_MAX = 4000


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> np.ndarray:
    """k(x_i, y_j) = (gamma x_i.y_j + coef0)^degree [m, n] of rows x [m, D] and y [n, D]."""
    return (gamma * (x @ y.T) + coef0) ** degree


def mmd2_from_counts(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray, wx: np.ndarray,
                     wy: np.ndarray) -> float:
    """`_mmd2_unbiased` of the rows of x drawn wx [m] times each and of y drawn wy [n] times,
    from the whole sets' kernel matrices, without copying rows: the sum over positions p != q of
    K[idx_p, idx_q] is every pair of positions (w^T K w) less the diagonal ones (sum w_i K_ii); a
    row drawn twice is two positions, as in the copies."""
    wx, wy = np.asarray(wx, np.float64), np.asarray(wy, np.float64)
    m, n = wx.sum(), wy.sum()
    xx = (wx @ k_xx @ wx - wx @ np.diag(k_xx)) / (m * (m - 1))
    yy = (wy @ k_yy @ wy - wy @ np.diag(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * (wx @ k_xy @ wy) / (m * n))


def kept_kernel_mmd2(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> Callable:
    """The function of draws (x indices, y indices) -> `_mmd2_unbiased(x[i], y[j], ...)`, from
    kernel matrices of the whole sets computed once (`mmd2_from_counts`); copies past
    `KVD_KEPT_KERNELS_MAX` rows."""
    if max(x.shape[0], y.shape[0]) > KVD_KEPT_KERNELS_MAX:
        return lambda i, j: _mmd2_unbiased(x[i], y[j], degree, gamma, coef0)
    k_xx, k_yy, k_xy = (polynomial_kernel(a, b, degree, gamma, coef0) for a, b in ((x, x), (y, y), (x, y)))
    return lambda i, j: mmd2_from_counts(k_xx, k_yy, k_xy, np.bincount(i, minlength=x.shape[0]),
                                         np.bincount(j, minlength=y.shape[0]))


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef0: float) -> float:
    """Unbiased MMD^2 of x [m, D] and y [n, D] with k(a, b) = (gamma a.b + coef0)^degree."""
    m, n = x.shape[0], y.shape[0]
    kxx = polynomial_kernel(x, x, degree, gamma, coef0)  # [m, m]
    kyy = polynomial_kernel(y, y, degree, gamma, coef0)  # [n, n]
    kxy = polynomial_kernel(x, y, degree, gamma, coef0)  # [m, n]
    # Off-diagonal means: dropping k(x_i, x_i) is what makes the estimator unbiased.
    xx = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    yy = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * kxy.mean())


def kernel_distance(f1, f2, degree: int = 3, gamma: float | None = None, coef0: float = 1.0,
                    subsets: int = 100, subset_size: int = 1000, seed: int | None = 0
                    ) -> tuple[float, np.ndarray]:
    """KVD/KID: mean unbiased polynomial-kernel MMD^2 over random subsets, and the per-subset values.

    Each subset draws min(subset_size, N1, N2) samples from each set without replacement (seeded).
    gamma defaults to 1/D. When the subset is the whole of both sets every subset would be the
    same number, so it is computed once (per-subset array of length 1)."""
    f1, f2 = as_features(f1, "f1"), as_features(f2, "f2")
    if f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature dimensions differ: {f1.shape[1]} and {f2.shape[1]}")
    m = min(int(subset_size), f1.shape[0], f2.shape[0])
    if m < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got subset size {m}")
    g = 1.0 / f1.shape[1] if gamma is None else float(gamma)
    if m == f1.shape[0] == f2.shape[0]:
        vals = np.array([_mmd2_unbiased(f1, f2, degree, g, coef0)])
    else:
        rng = np.random.default_rng(seed)
        vals = np.array([
            _mmd2_unbiased(f1[rng.permutation(f1.shape[0])[:m]], f2[rng.permutation(f2.shape[0])[:m]],
                           degree, g, coef0)
            for _ in range(int(subsets))
        ])
    return float(vals.mean()), vals


def kvd_with_ci(real_feats, fake_feats, n_boot: int = 200, seed: int | None = 0, confidence: float = 0.95,
                degree: int = 3, gamma: float | None = None, coef0: float = 1.0) -> Estimate:
    """Unbiased MMD^2 of the *whole* sets with a percentile bootstrap interval (both sets resampled).

    The value is the full-set estimate (same expectation as the subset mean of `kernel_distance`,
    less variance; equal to it when the subsets are the whole sets). Resampling with replacement
    duplicates samples, which the estimator then counts as distinct pairs; the recentred interval
    (see `two_sample_bootstrap`) removes that shift. The kernel matrices of the whole sets are
    computed once and each resample is a few weighted sums of their entries (`kept_kernel_mmd2`;
    since session 38: at 1,000 x 400-d, 200 resamples, seconds rather than tens of seconds)."""
    f1, f2 = as_features(real_feats, "real"), as_features(fake_feats, "fake")
    if min(len(f1), len(f2)) < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 samples per set, got {len(f1)} real and {len(f2)} fake")
    g = 1.0 / f1.shape[1] if gamma is None else float(gamma)
    return two_sample_bootstrap(f1, f2, lambda a, b: _mmd2_unbiased(a, b, degree, g, coef0),
                                n_boot, seed, confidence,
                                resampled=lambda a, b: kept_kernel_mmd2(a, b, degree, g, coef0))


# --------------------------------------------------------------------------------------------
# torchmetrics classes


class _FeatureMetric(EvalkitMetric):
    """Turns update() input into float64 features [B, D]: features as given, or videos
    [B, T, 3, H, W] through `feature_extractor` (run under no_grad)."""

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, feature_extractor: Callable | None = None, num_features: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if feature_extractor is not None and not callable(feature_extractor):
            raise ValueError(f"feature_extractor: a {type(feature_extractor).__name__} is not callable; give a "
                             "function of videos [B, T, 3, H, W] -> features [B, D] (e.g. a video backbone)")
        self.feature_extractor = feature_extractor
        self.num_features = num_features

    def _merge_check(self, other) -> None:
        if other.num_features != self.num_features:
            raise ValueError(f"cannot merge a {type(other).__name__} of num_features={other.num_features} into one "
                             f"of {self.num_features}: their features come from different extractors")

    def forward(self, *args, **kwargs) -> None:
        """Accumulate only (as update): one batch holds one of the two sets, so it has no distance of
        its own. torchmetrics' forward would compute one, fail, and leave the state emptied."""
        self.update(*args, **kwargs)

    def _features(self, x, real=True) -> torch.Tensor:
        if not isinstance(real, (bool, np.bool_)):  # real="false" counted the batch as real
            raise ValueError(f"real must be True or False, got {real!r}")
        x = torch.as_tensor(x)
        if x.ndim == 5:
            if self.feature_extractor is None:
                raise ValueError(f"{type(self).__name__} got videos {tuple(x.shape)} but has no "
                                 "feature_extractor; pass features [B, D] or a feature_extractor")
            with torch.no_grad():
                x = torch.as_tensor(self.feature_extractor(x))
        if x.ndim != 2:
            raise ValueError(f"expected features [B, D] (or videos [B, T, 3, H, W]), got {tuple(x.shape)}")
        if self.num_features is not None and x.shape[1] != self.num_features:
            raise ValueError(f"features have D={x.shape[1]}, the metric was built with num_features="
                             f"{self.num_features}")
        x = x.detach().to(torch.float64)
        if not torch.isfinite(x).all():
            raise ValueError("features hold NaN or infinite values; check the feature extractor")
        return x


class FrechetVideoDistance(_FeatureMetric):
    """Streaming FVD: per set, float64 sum [D], sum of outer products [D, D] and count (DDP "sum"),
    so memory is O(D^2) whatever N. compute() -> float64 scalar tensor.

    The covariance comes from (sum x x^T - n mu mu^T) / (n - 1): float64 keeps ~16 - 2 log10(|mu|/sd)
    digits, ample for network features. A confidence interval needs the clips themselves (the
    bootstrap resamples them): `keep_features=True` also keeps both sets' features (O(N D) memory,
    DDP "cat") and enables `compute_with_ci`; without it, that method says so."""

    def __init__(self, num_features: int = 400, feature_extractor: Callable | None = None,
                 method: str = "fast", keep_features: bool = False, **kwargs) -> None:
        super().__init__(feature_extractor, num_features, **kwargs)
        self.method = method
        self.keep_features = bool(keep_features)
        d = int(num_features)
        for side in ("real", "fake"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
            if self.keep_features:
                self.add_state(f"{side}_features", [], dist_reduce_fx="cat")

    def update(self, x, real: bool) -> None:
        """x: features [B, D] or videos [B, T, 3, H, W] in [0, 1]; real: which set they belong to."""
        f = self._features(x, real)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + f.shape[0])
        if self.keep_features:
            getattr(self, f"{side}_features").append(f)

    def _merge_check(self, other) -> None:
        super()._merge_check(other)
        if self.keep_features and not other.keep_features:
            raise ValueError("cannot merge a FrechetVideoDistance with keep_features=False into one with "
                             "keep_features=True: it holds no features for compute_with_ci")

    @synced
    def compute_with_ci(self, n_boot: int = 200, seed: int | None = 0, confidence: float = 0.95) -> Estimate:
        """FVD with its two-sample bootstrap 95% interval (`fvd_with_ci`), n = generated clips; the
        value is `fvd_with_ci`'s, computed from the kept features. Needs `keep_features=True`."""
        if not self.keep_features:
            raise RuntimeError("FrechetVideoDistance keeps only sums (no clips to resample) unless built with "
                               "keep_features=True; build it so for compute_with_ci, or call fvd_with_ci "
                               "on the features")
        real, fake = cat_state(self.real_features), cat_state(self.fake_features)
        for side, f in (("real", real), ("fake", fake)):
            if f.shape[0] < 2:
                raise RuntimeError(f"FrechetVideoDistance needs at least 2 {side} samples, has {f.shape[0]}")
        return fvd_with_ci(real.numpy(), fake.numpy(), n_boot=n_boot, seed=seed, confidence=confidence,
                           method=self.method)

    def _stats(self, side: str) -> tuple[np.ndarray, np.ndarray]:
        n = float(getattr(self, f"{side}_n"))
        if n < 2:
            raise RuntimeError(f"FrechetVideoDistance needs at least 2 {side} samples, has {int(n)}")
        s = getattr(self, f"{side}_sum").cpu().numpy()
        mu = s / n
        cov = (getattr(self, f"{side}_outer").cpu().numpy() - np.outer(s, mu)) / (n - 1)
        return mu, cov

    def compute(self) -> torch.Tensor:
        (mu1, s1), (mu2, s2) = self._stats("real"), self._stats("fake")
        return torch.tensor(frechet_distance(mu1, s1, mu2, s2, self.method), dtype=torch.float64)

    @synced
    def protocol(self) -> dict:
        """What the number depends on (the caller adds the backbone and its weights' SHA-256)."""
        return {"metric": "fvd", "num_features": self.num_features, "method": self.method,
                "covariance": "ddof=1", "n_real": int(self.real_n), "n_fake": int(self.fake_n),
                "ci": "two-sample bootstrap, recentred" if self.keep_features else "none (keep_features=False)"}


class _SetsMetric(_FeatureMetric):
    """Keeps both feature sets (DDP "cat" list states of float64 [B, D])."""

    def __init__(self, feature_extractor=None, num_features=None, **kwargs) -> None:
        super().__init__(feature_extractor, num_features, **kwargs)
        self.add_state("real_features", [], dist_reduce_fx="cat")
        self.add_state("fake_features", [], dist_reduce_fx="cat")

    def update(self, x, real: bool) -> None:
        """x: features [B, D] or videos [B, T, 3, H, W] in [0, 1]; real: which set they belong to."""
        (self.real_features if real else self.fake_features).append(self._features(x, real))

    @synced
    def features(self) -> tuple[np.ndarray, np.ndarray]:
        """(real [N1, D], fake [N2, D]) float64, in update order (under DDP: all ranks', in rank order)."""
        real, fake = cat_state(self.real_features), cat_state(self.fake_features)
        if real.shape[0] == 0 or fake.shape[0] == 0:
            raise RuntimeError(f"{type(self).__name__} has {real.shape[0]} real and {fake.shape[0]} fake "
                               "samples; update() it with both sets before compute()")
        return real.numpy(), fake.numpy()


class KernelVideoDistance(_SetsMetric):
    """KVD: the unbiased polynomial-kernel MMD^2 of the whole real and fake sets; compute() -> float64
    scalar tensor, the same number as `compute_with_ci().value` and `evalkit score`'s `kvd`
    (`kvd_with_ci`), whatever the order, batching, DDP sharding or merging of the clips.

    Before session 33 compute() averaged random subsets drawn by position in the concatenated sets,
    so the same two sets gave other numbers in another order or split. `subsets`, `subset_size` and
    `seed` are accepted for old code and ignored (a FutureWarning); `kernel_distance` keeps KID's
    subset estimator. Memory: three kernel matrices of the set sizes (N1^2 + N2^2 + N1 N2 floats)."""

    def __init__(self, degree: int = 3, gamma: float | None = None, coef0: float = 1.0, subsets: int | None = None,
                 subset_size: int | None = None, seed: int | None = None, feature_extractor=None, num_features=None,
                 **kwargs):
        super().__init__(feature_extractor, num_features, **kwargs)
        ignored = [k for k, v in (("subsets", subsets), ("subset_size", subset_size), ("seed", seed)) if v is not None]
        if ignored:
            warnings.warn(f"KernelVideoDistance: {', '.join(ignored)} ignored: compute() is the unbiased MMD^2 of the "
                          "whole sets (compute_with_ci's and evalkit score's value) since session 33; "
                          "kernel_distance() keeps the subset estimator", FutureWarning, stacklevel=2)
        self.kernel_kw = dict(degree=degree, gamma=gamma, coef0=coef0)

    def _value(self, real: np.ndarray, fake: np.ndarray) -> float:
        if min(len(real), len(fake)) < 2:
            raise RuntimeError(f"KernelVideoDistance: the unbiased MMD needs at least 2 samples per set, has "
                               f"{len(real)} real and {len(fake)} fake")
        g = 1.0 / real.shape[1] if self.kernel_kw["gamma"] is None else float(self.kernel_kw["gamma"])
        return _mmd2_unbiased(real, fake, self.kernel_kw["degree"], g, self.kernel_kw["coef0"])

    def compute(self) -> torch.Tensor:
        real, fake = self.features()  # in compute_with_ci's order to the last bit (`rows_by_content`)
        return torch.tensor(self._value(rows_by_content(real), rows_by_content(fake)), dtype=torch.float64)

    @synced
    def compute_with_ci(self, n_boot: int = 200, seed: int | None = 0) -> Estimate:
        """compute()'s value with a two-sample bootstrap CI (`kvd_with_ci`); n = fake samples."""
        real, fake = self.features()
        self._value(real, fake)  # the same error as compute() for a set of one
        return kvd_with_ci(real, fake, n_boot=n_boot, seed=seed, **self.kernel_kw)

    @synced
    def protocol(self) -> dict:
        real, fake = self.features()
        return {"metric": "kvd", "kernel": "polynomial (gamma x.y + coef0)^degree, gamma=1/D if None",
                "estimator": "unbiased MMD^2 of the whole sets", **self.kernel_kw,
                "n_real": len(real), "n_fake": len(fake)}


class VideoPrecisionRecall(_SetsMetric):
    """k-NN manifold precision and recall; compute() -> (precision, recall) float64 scalar tensors."""

    higher_is_better = True

    def __init__(self, k: int = 3, feature_extractor=None, num_features=None, **kwargs) -> None:
        super().__init__(feature_extractor, num_features, **kwargs)
        self.k = k

    def compute(self) -> tuple[torch.Tensor, torch.Tensor]:
        p, r = precision_recall(*self.features(), k=self.k)
        return torch.tensor(p, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)

    @synced
    def compute_with_ci(self, n_boot: int = 200, seed: int | None = 0) -> tuple[Estimate, Estimate]:
        """(precision, recall) with bootstrap CIs (`precision_recall_with_ci`)."""
        return precision_recall_with_ci(*self.features(), k=self.k, n_boot=n_boot, seed=seed)

    @synced
    def protocol(self) -> dict:
        real, fake = self.features()
        return {"metric": "precision_recall", "k": self.k, "distance": "euclidean",
                "n_real": len(real), "n_fake": len(fake)}
