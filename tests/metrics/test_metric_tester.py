"""The shared tester must catch what it claims to: each deliberately broken metric fails its check."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import Metric

from .helpers import (
    CHECKS,
    MetricCase,
    check_ddp_sync,
    check_deterministic,
    check_float64_states,
    check_matches_reference,
    check_reset,
    upd,
)


class Mean(Metric):
    """A correct streaming mean: float64 sum/count ("sum") and the values ("cat")."""

    full_state_update = False
    state_dtype = torch.float64
    count_reduce = "sum"

    def __init__(self):
        super().__init__()
        self.add_state("total", torch.zeros((), dtype=self.state_dtype), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=self.state_dtype), dist_reduce_fx=self.count_reduce)
        self.add_state("values", [], dist_reduce_fx="cat")

    def update(self, x):
        x = x.to(self.state_dtype)
        self.total += x.sum()
        self.count += x.numel()
        self.values.append(x)

    def compute(self):
        return self.total / self.count


class Float32States(Mean):
    state_dtype = torch.float32


class MeanReducedCount(Mean):
    count_reduce = "mean"  # wrong: a count must be summed across ranks


class ForgetfulReset(Mean):
    def reset(self):  # forgets to clear the running total
        total = self.total
        super().reset()
        self.total = total


class Noisy(Mean):
    def compute(self):
        return super().compute() + 1e-9 * torch.rand((), dtype=torch.float64)


class BiasedTotal(Mean):
    def compute(self):
        return self.total / (self.count + 1)


BATCHES = [upd(torch.arange(n, dtype=torch.float32) / 7 + n) for n in (3, 5, 2, 4)]


def _case(cls):
    return MetricCase(cls, BATCHES, lambda bs: torch.cat([b.args[0] for b in bs]).double().mean(), rtol=1e-12)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_a_correct_metric_passes_every_check(check):
    check(_case(Mean))


@pytest.mark.parametrize("cls,check", [
    (Float32States, check_float64_states),
    (MeanReducedCount, check_ddp_sync),
    (ForgetfulReset, check_reset),
    (Noisy, check_deterministic),
    (BiasedTotal, check_matches_reference),
], ids=lambda x: getattr(x, "__name__", ""))
def test_each_check_catches_its_bug(cls, check):
    with pytest.raises(AssertionError):
        check(_case(cls))
