"""Conditional diversity: how different are a model's K samples of one prompt?

For each prompt with at least two samples, the mean pairwise Euclidean distance between their
backbone features; the metric is the mean over prompts, with a bootstrap CI over prompts (the
samples of one prompt are not independent draws of the metric). A leaderboard can show with it
how far precise prompts narrow what a model produces; a model that ignores its seed scores 0.
"""

from __future__ import annotations

import math

from collections import defaultdict

import numpy as np

from evalkit.metrics.base import as_features
from evalkit.metrics.stats import Estimate, mean_ci


def per_prompt_diversity(features, prompts) -> dict[str, float]:
    """{prompt: mean pairwise L2 distance of its samples' features} for prompts with K >= 2.

    Clips with an empty prompt ("", or spaces: numbered files, camera footage) are left out: they
    are no samples of one prompt, and as one group "" their spread read as a prompt's (session 34:
    prompt-less clips gave conditional_diversity 43.6 from "1 prompt"); `evalkit score` warns."""
    f = as_features(features)
    if len(prompts) != f.shape[0]:
        raise ValueError(f"got {f.shape[0]} feature rows and {len(prompts)} prompts")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise ValueError(f"prompt {i} is {type(p).__name__}, not text; give one string per clip")
        if p.strip():
            groups[p].append(i)
    out = {}
    for p, idx in groups.items():
        if len(idx) >= 2:
            x = f[idx]  # [K, D]
            d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))  # [K, K]
            k = len(idx)
            out[p] = float(d.sum() / (k * (k - 1)))
    return out


def conditional_diversity(features, prompts, n_boot: int = 2000, seed: int = 0) -> Estimate | None:
    """Mean over prompts of `per_prompt_diversity`, CI by resampling prompts; None when no prompt
    has two samples (clips without a prompt are left out). `n` is the number of prompts."""
    per = per_prompt_diversity(features, prompts)
    if not per:
        return None
    # a mean of distances: never below 0 (three prompts read "1.1 [-2.99, 5.19]", session 32)
    return mean_ci(list(per.values()), bounds=(0.0, math.inf), n_boot=n_boot, seed=seed)
