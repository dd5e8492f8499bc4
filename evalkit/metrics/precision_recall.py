"""k-NN manifold precision and recall (Kynkaanniemi et al. 2019), with bootstrap intervals.

A sample is inside the other set's manifold if it lies within the k-th nearest-neighbour radius
of some sample of that set. Precision is the share of generated samples inside the real manifold
(are the samples realistic?), recall the share of real samples inside the generated manifold (is
the real variety covered?). Everything is exact and float64; distances come in row blocks.
"""

from __future__ import annotations

import numpy as np
import torch

from evalkit.metrics.base import as_features, rows_by_content
from evalkit.metrics.stats import Estimate, _wilson


def _kth_nn_radii(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """[N] distance of each row of x [N, D] to its k-th nearest other row (self excluded)."""
    out = []
    for i in range(0, x.shape[0], chunk):
        d = torch.cdist(x[i:i + chunk], x)  # [c, N]
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])  # index 0 is the row itself
    return torch.cat(out)


def _inside(query: torch.Tensor, ref: torch.Tensor, radii: torch.Tensor, chunk: int) -> torch.Tensor:
    """[Nq] bool: query row within radii[j] of some ref row j."""
    out = []
    for i in range(0, query.shape[0], chunk):
        out.append((torch.cdist(query[i:i + chunk], ref) <= radii[None, :]).any(dim=1))
    return torch.cat(out)


def _feature_sets(real, fake, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sets as float64 tensors, rows in one order by content: the bootstrap draws by
    position, and the same sets give the same intervals in any order (`rows_by_content`)."""
    r = torch.from_numpy(rows_by_content(as_features(real, "real")))
    f = torch.from_numpy(rows_by_content(as_features(fake, "fake")))
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature dimensions differ: {r.shape[1]} and {f.shape[1]}")
    if min(r.shape[0], f.shape[0]) <= k:
        raise ValueError(f"k={k} needs more than k samples per set, got {r.shape[0]} and {f.shape[0]}")
    return r, f


def precision_recall(real, fake, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall, exact k-NN in float64 (memory O(chunk * N))."""
    r, f = _feature_sets(real, fake, k)
    precision = _inside(f, r, _kth_nn_radii(r, k, chunk), chunk).double().mean()
    recall = _inside(r, f, _kth_nn_radii(f, k, chunk), chunk).double().mean()
    return float(precision), float(recall)


def _coverage(d_self: torch.Tensor, d_query: torch.Tensor, ref: np.ndarray, query: np.ndarray,
              k: int) -> float:
    """Share of the query draws (with multiplicity) inside the manifold of the distinct ref draws.

    d_self [N, N] holds the ref set's distances, d_query [M, N] the query-to-ref ones. The manifold
    is built on distinct points: a duplicated sample would be its own nearest neighbour at
    distance 0 and shrink the radii to nothing."""
    uniq = np.unique(ref)
    kk = min(k, uniq.size - 1)  # a resample with <= k distinct points keeps what it has
    if kk < 1:
        return 0.0
    sub = d_self[np.ix_(uniq, uniq)]  # [U, U]
    radii = sub.topk(kk + 1, dim=1, largest=False).values[:, kk]  # [U]
    return float((d_query[np.ix_(query, uniq)] <= radii[None, :]).any(dim=1).double().mean())


MAX_BOOTSTRAP_N = 4096  # above: the full distance matrices (3 x N^2 float64) would take gigabytes


def _wilson_fallback(r: torch.Tensor, f: torch.Tensor, k: int, confidence: float) -> tuple[Estimate, Estimate]:
    """Large sets: the manifolds held fixed, each rate's Wilson interval over its queries."""
    from evalkit.metrics.stats import proportion_ci

    chunk = 1024
    inside_f = int(_inside(f, r, _kth_nn_radii(r, k, chunk), chunk).sum())
    inside_r = int(_inside(r, f, _kth_nn_radii(f, k, chunk), chunk).sum())
    out = []
    for hits, n in ((inside_f, f.shape[0]), (inside_r, r.shape[0])):
        e = proportion_ci(hits, n, confidence)
        out.append(Estimate(e.value, e.ci_low, e.ci_high, e.n, "wilson-manifold-fixed", confidence))
    return out[0], out[1]


def precision_recall_with_ci(real, fake, k: int = 3, n_boot: int = 200, seed: int | None = 0,
                             confidence: float = 0.95) -> tuple[Estimate, Estimate]:
    """Precision and recall of the full sets, each with a two-sample bootstrap interval.

    Each resample draws both sets with replacement, builds each manifold on its distinct points
    and counts the other set's draws with their multiplicity, so the interval holds both the
    sampling of the queries and that of the manifold. Building on ~63% distinct points widens the
    radii, so the resamples are recentred on the estimate before taking percentiles (as
    `fvd.two_sample_bootstrap` does) and the bounds clipped to [0, 1]. n: precision the generated
    samples, recall the real ones. Cost: three distance matrices, then O(n_boot N^2); above
    MAX_BOOTSTRAP_N samples a set, Wilson intervals with the manifolds held fixed (narrower: they
    leave out the manifolds' own sampling, and say so in `method`)."""
    r, f = _feature_sets(real, fake, k)
    if not 0 < confidence < 1 or n_boot < 1:
        raise ValueError(f"need 0 < confidence < 1 and n_boot >= 1, got {confidence}, {n_boot}")
    if max(r.shape[0], f.shape[0]) > MAX_BOOTSTRAP_N:
        return _wilson_fallback(r, f, k, confidence)
    d_rr, d_ff, d_fr = torch.cdist(r, r), torch.cdist(f, f), torch.cdist(f, r)  # [Nr,Nr] [Nf,Nf] [Nf,Nr]
    every_r, every_f = np.arange(r.shape[0]), np.arange(f.shape[0])
    value_p = _coverage(d_rr, d_fr, every_r, every_f, k)
    value_r = _coverage(d_ff, d_fr.T, every_f, every_r, k)
    rng = np.random.default_rng(seed)
    reps = np.empty((int(n_boot), 2))
    for b in range(reps.shape[0]):
        ir = rng.integers(0, r.shape[0], r.shape[0])
        jf = rng.integers(0, f.shape[0], f.shape[0])
        reps[b] = _coverage(d_rr, d_fr, ir, jf, k), _coverage(d_ff, d_fr.T, jf, ir, k)
    alpha = (1.0 - confidence) / 2.0
    out = []
    for col, value, n in ((0, value_p, f.shape[0]), (1, value_r, r.shape[0])):
        lo, hi = np.quantile(reps[:, col] - (reps[:, col].mean() - value), [alpha, 1.0 - alpha])
        # widened to Wilson's interval of the share: where no resample moves it (six clips all
        # inside the manifold) the bootstrap alone gave "1 [1, 1]", certainty from six clips
        w_lo, w_hi = _wilson(value, int(n), confidence)
        out.append(Estimate(value, float(np.clip(min(lo, w_lo), 0.0, 1.0)), float(np.clip(max(hi, w_hi), 0.0, 1.0)),
                            int(n), "bootstrap-recentred-2sample+wilson", confidence))
    return out[0], out[1]
