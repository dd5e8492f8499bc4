"""Conditional diversity: zero for a model that ignores its seed, larger for more spread."""

import numpy as np
import pytest

from evalkit.metrics.diversity import conditional_diversity, per_prompt_diversity


def test_diversity_zero_for_identical_samples_and_grows_with_spread():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(5, 8))
    prompts = [f"p{i}" for i in range(5) for _ in range(4)]
    same = np.repeat(centres, 4, axis=0)
    assert conditional_diversity(same, prompts).value == pytest.approx(0.0, abs=1e-12)
    small = same + 0.1 * rng.normal(size=same.shape)
    large = same + 1.0 * rng.normal(size=same.shape)
    a, b = conditional_diversity(small, prompts), conditional_diversity(large, prompts)
    assert a.n == b.n == 5 and b.ci_low > a.ci_high


def test_pairwise_distance_is_exact_and_single_samples_are_skipped():
    f = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0]])
    assert per_prompt_diversity(f, ["a", "a", "b"]) == {"a": pytest.approx(5.0)}
    assert conditional_diversity(f[:2], ["a", "b"]) is None
    with pytest.raises(ValueError):
        per_prompt_diversity(f, ["a"])
