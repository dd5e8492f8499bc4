"""Detection metrics' intervals where small test sets mislead (session 32's coverage check): the
binned ECE runs high, and under 100 real clips the 1% false-positive point cannot be placed."""

from __future__ import annotations

import numpy as np

from detectors.evaluate import detection_metrics


def _calibrated(rng, n):
    p = rng.random(2 * n)
    return (rng.random(2 * n) < p).astype(int), p  # labels drawn from p: ECE 0 in the population


def test_ece_interval_reaches_a_calibrated_detectors_zero():
    rng = np.random.default_rng(0)
    held = 0
    for r in range(30):
        y, p = _calibrated(rng, 50)
        e = detection_metrics(y, p, 0.5, n_boot=200, seed=r)["ece"]
        assert e.value > 0.03  # the binned estimate of a calibrated detector, well above 0
        held += e.ci_low <= 0.0
    assert held >= 27  # it never did before (the interval sat above 0 in 100 of 100 simulations)


def test_tpr_at_one_percent_fpr_says_when_it_cannot_be_placed():
    rng = np.random.default_rng(1)
    y = np.r_[np.ones(40, int), np.zeros(40, int)]
    p = np.r_[rng.normal(1.5, 1, 40), rng.normal(0, 1, 40)]
    p = 1 / (1 + np.exp(-p))
    small = detection_metrics(y, p, 0.5, n_boot=200)["tpr_at_1pct_fpr"]
    assert small.ci_low == 0.0 and "unresolved(only 40 real clips)" in small.method
    y2 = np.r_[np.ones(40, int), np.zeros(200, int)]
    p2 = 1 / (1 + np.exp(-np.r_[rng.normal(1.5, 1, 40), rng.normal(0, 1, 200)]))
    big = detection_metrics(y2, p2, 0.5, n_boot=200)["tpr_at_1pct_fpr"]
    assert "unresolved" not in big.method
