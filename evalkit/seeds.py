"""The seed of each sample of a run: shared by the generators (which sample with it) and by the
metrics and benchmarks that re-derive it, so that neither layer imports the other (DESIGN.md:
metrics never import generators)."""

from __future__ import annotations

import numpy as np


def sample_seed(seed: int, prompt_index: int, k: int) -> int:
    """The seed of sample k of prompt i in a run with base `seed` (independent streams)."""
    return int(np.random.SeedSequence([seed, prompt_index, k]).generate_state(1)[0] >> 1)


__all__ = ["sample_seed"]
