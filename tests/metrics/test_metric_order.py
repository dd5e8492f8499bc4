"""Intervals that depend on which clips a metric holds, never on the order it got them in, and
the library's numbers equal to `evalkit score`'s (session 34)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit.metrics import score
from evalkit.metrics.diversity import conditional_diversity
from evalkit.metrics.flicker import TemporalFlicker, temporal_flicker_score
from evalkit.metrics.fvd import FrechetVideoDistance, KernelVideoDistance, VideoPrecisionRecall
from evalkit.metrics.stats import mean_ci, paired_bootstrap_diff
from evalkit.world import WorldConfig, make_clip


class _Backbone:
    def protocol(self) -> dict:
        return {"name": "test-features"}


def _sets(seed: int = 0, n: int = 8, d: int = 6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(0.5, 1.2, size=(n, d))


def _fed(cls, real, fake, **kw):
    m = cls(**kw)
    m.update(torch.from_numpy(real[: len(real) // 2]), real=True)
    m.update(torch.from_numpy(fake), real=False)
    m.update(torch.from_numpy(real[len(real) // 2:]), real=True)
    return m


def test_feature_metric_intervals_equal_scores_in_any_order():
    real, fake = _sets()
    prompts = [""] * len(fake)
    cli = score._fvd(fake[::-1].copy(), real, prompts, _Backbone(), {})  # score's own code path
    orders = [np.arange(8), np.arange(8)[::-1], np.random.default_rng(1).permutation(8)]
    for order in orders:
        r, f = real[order], fake[order[::-1]]
        fvd = _fed(FrechetVideoDistance, r, f, num_features=6, keep_features=True).compute_with_ci()
        kvd_metric = _fed(KernelVideoDistance, r, f)
        kvd = kvd_metric.compute_with_ci()
        p, rc = _fed(VideoPrecisionRecall, r, f).compute_with_ci()
        for name, est in (("fvd", fvd), ("kvd", kvd), ("precision", p), ("recall", rc)):
            assert (est.value, est.ci_low, est.ci_high) == (cli[name]["value"], cli[name]["ci_low"],
                                                            cli[name]["ci_high"]), name
        assert kvd_metric.compute().item() == kvd.value  # compute() to the last bit too


def test_a_merge_appends_and_leaves_the_interval_alone():
    clips = torch.from_numpy(np.stack([make_clip("test", i, 0, WorldConfig(frames=6)).frames for i in range(6)]))
    clips = clips.permute(0, 1, 4, 2, 3)  # [B, T, 3, H, W] uint8
    whole = TemporalFlicker()
    whole.update(clips)
    x, y = TemporalFlicker(), TemporalFlicker()
    x.update(clips[:2])
    y.update(clips[2:4])
    x.update(clips[4:])
    x.merge_state(y)
    # per_clip() is in update order: this metric's clips, then the merged ones (they came first)
    expected = whole.per_clip()[[0, 1, 4, 5, 2, 3]]
    np.testing.assert_array_equal(x.per_clip(), expected)
    a, b = x.compute_with_ci(), whole.compute_with_ci()
    assert (a.value, a.ci_low, a.ci_high) == (b.value, b.ci_low, b.ci_high)
    # the CLI's rows (named order) give the same numbers
    rows = [{"flicker": temporal_flicker_score(c.permute(0, 2, 3, 1).numpy()), "warp_error": np.nan,
             "temporal_hf": np.nan} for c in clips]
    cli = score._flicker(rows, {})["flicker"]
    assert (cli["value"], cli["ci_low"], cli["ci_high"]) == (b.value, b.ci_low, b.ci_high)


def test_bootstrap_helpers_ignore_the_order_of_values():
    rng = np.random.default_rng(3)
    v = rng.beta(2, 5, size=11)
    perm = rng.permutation(11)
    assert mean_ci(v, bounds=(0, 1)) == mean_ci(v[perm], bounds=(0, 1))
    w = v + rng.normal(0, 0.05, size=11)
    assert paired_bootstrap_diff(v, w) == paired_bootstrap_diff(v[perm], w[perm])
    f = rng.normal(size=(6, 4))
    prompts = ["a", "a", "b", "b", "c", "c"]
    assert conditional_diversity(f, prompts) == conditional_diversity(f[::-1], prompts[::-1])


@pytest.mark.parametrize("prompts, n", [(["", "", " ", ""], None), (["", "", "a", "a", "b", "b"], 2)])
def test_clips_without_a_prompt_are_no_prompt_group(prompts, n):
    """Numbered files and camera footage have no prompt: as one group "" their spread was reported
    as one prompt's samples (conditional_diversity 43.6, n=1, session 34)."""
    f = np.random.default_rng(0).normal(size=(len(prompts), 5))
    est = conditional_diversity(f, prompts)
    assert (est is None) if n is None else (est.n == n)
    if n:  # the same value as with the prompt-less clips gone
        assert est == conditional_diversity(f[2:], prompts[2:])
