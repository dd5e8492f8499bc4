"""One reusable tester for evalkit's torchmetrics classes, in the spirit of torchmetrics' MetricTester.

A `MetricCase` names how to build a fresh metric, the update() calls to feed it and a reference
(the functional form on all the data). `CHECKS` are the properties every metric must have; a test
module parametrises over them:

    @pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
    def test_my_metric(check):
        check(MY_CASE)

The DDP check does not start processes: it replays torchmetrics' own `Metric._sync_dist` with a
gather function that hands each rank's tensors over in the order torchmetrics asks for them, so the
real reduction code ("sum", "cat", the empty-rank corner case) runs.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torchmetrics import Metric


@dataclass(frozen=True)
class Update:
    """The arguments of one `metric.update(*args, **kwargs)` call."""

    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def upd(*args, **kwargs) -> Update:
    return Update(args, kwargs)


@dataclass
class MetricCase:
    make: Callable[[], Metric]  # a fresh metric instance
    batches: Sequence[Update]  # at least 2; fed in order
    reference: Callable[[Sequence[Update]], Any]  # the functional's value on all data of these batches
    rtol: float = 1e-9
    atol: float = 1e-12
    ranks: int = 3  # simulated DDP world size; the last rank gets no data when batches allow
    name: str = ""

    def __str__(self) -> str:
        return self.name or type(self.make()).__name__


# ------------------------------------------------------------------------------------------------
# utilities


def feed(metric: Metric, batches: Sequence[Update]) -> Metric:
    for b in batches:
        metric.update(*b.args, **b.kwargs)
    return metric


def _as_np(x) -> Any:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    if isinstance(x, dict):
        return {k: _as_np(v) for k, v in x.items()}
    if isinstance(x, (tuple, list)):
        return [_as_np(v) for v in x]
    return np.asarray(x, dtype=np.float64)


def assert_close(actual, expected, rtol: float, atol: float, what: str = "value") -> None:
    a, e = _as_np(actual), _as_np(expected)
    if isinstance(e, dict):
        assert isinstance(a, dict) and a.keys() == e.keys(), f"{what}: keys {a} vs {e}"
        for k in e:
            assert_close(a[k], e[k], rtol, atol, f"{what}[{k!r}]")
    elif isinstance(e, list):
        assert isinstance(a, list) and len(a) == len(e), f"{what}: {a} vs {e}"
        for i, (x, y) in enumerate(zip(a, e)):
            assert_close(x, y, rtol, atol, f"{what}[{i}]")
    else:
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=what)


def assert_identical(actual, expected, what: str = "value") -> None:
    """Bit-for-bit equality of results (NaN equal to NaN)."""
    a, e = _as_np(actual), _as_np(expected)
    if isinstance(e, dict):
        assert a.keys() == e.keys(), what
        for k in e:
            assert_identical(a[k], e[k], f"{what}[{k!r}]")
    elif isinstance(e, list):
        assert len(a) == len(e), what
        for i, (x, y) in enumerate(zip(a, e)):
            assert_identical(x, y, f"{what}[{i}]")
    else:
        np.testing.assert_array_equal(a, e, err_msg=what)


def snapshot(metric: Metric) -> dict[str, Any]:
    """Deep copy of the metric's states (tensors, or lists of tensors)."""
    out = {}
    for name, value in metric.metric_state.items():
        out[name] = [v.detach().clone() for v in value] if isinstance(value, list) else value.detach().clone()
    return out


def assert_same_state(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), f"{what}: state names {sorted(a)} vs {sorted(b)}"
    for k in a:
        x, y = a[k], b[k]
        assert type(x) is type(y), f"{what}: state {k} is {type(x).__name__} vs {type(y).__name__}"
        pairs = list(zip(x, y)) if isinstance(x, list) else [(x, y)]
        if isinstance(x, list):
            assert len(x) == len(y), f"{what}: list state {k} length {len(x)} vs {len(y)}"
        for u, v in pairs:
            assert u.dtype == v.dtype and u.shape == v.shape, \
                f"{what}: state {k} {u.dtype}{tuple(u.shape)} vs {v.dtype}{tuple(v.shape)}"
            assert torch.equal(u, v), f"{what}: state {k} differs"


def _split(batches: Sequence[Update], ranks: int) -> list[list[Update]]:
    """Round-robin over ranks-1 ranks; the last rank gets nothing (DDP's empty-rank corner case)
    when there are ranks-1 or more batches, else everyone gets a share."""
    busy = ranks - 1 if len(batches) >= ranks - 1 and ranks > 1 else ranks
    parts: list[list[Update]] = [[] for _ in range(ranks)]
    for i, b in enumerate(batches):
        parts[i % busy].append(b)
    return parts


def simulate_ddp_sync(rank_metrics: Sequence[Metric]) -> Metric:
    """A copy of rank 0's metric after torchmetrics' `_sync_dist` across `rank_metrics`.

    Each rank's tensors are first recorded (on a clone, with a gather that returns only itself) in
    the order `_sync_dist` visits them; then rank 0's clone is synced with a gather that returns
    every rank's tensor at the same position, as `torch.distributed.all_gather` would."""
    sequences = []
    for m in rank_metrics:
        seen: list[torch.Tensor] = []

        def record(t, group=None, _seen=seen):
            _seen.append(t.detach().clone())
            return [t]

        m.clone()._sync_dist(dist_sync_fn=record)
        sequences.append(seen)
    assert len({len(s) for s in sequences}) == 1, "ranks disagree on the number of gathered tensors"
    position = iter(range(len(sequences[0])))

    def gather(t, group=None):
        k = next(position)
        return [s[k] for s in sequences]

    synced = rank_metrics[0].clone()
    synced._sync_dist(dist_sync_fn=gather)
    synced._is_synced = False  # it was never "unsynced": compute() must use these states as they are
    return synced


# ------------------------------------------------------------------------------------------------
# the checks


def check_matches_reference(case: MetricCase) -> None:
    """(a) the class fed batch by batch equals the functional on all the data."""
    assert len(case.batches) >= 2, "give several batches: one batch proves nothing about accumulation"
    got = feed(case.make(), case.batches).compute()
    assert_close(got, case.reference(case.batches), case.rtol, case.atol, f"{case}: compute vs reference")


def check_reset(case: MetricCase) -> None:
    """(b) reset() restores the initial states exactly, and a reset metric computes as a fresh one."""
    m = case.make()
    initial = snapshot(m)
    first = feed(m, case.batches).compute()
    m.reset()
    assert_same_state(snapshot(m), initial, f"{case} after reset")
    assert_identical(feed(m, case.batches).compute(), first, f"{case}: recompute after reset")


def _assert_float64(m: Metric, when: str) -> None:
    for name, value in m.metric_state.items():
        for v in value if isinstance(value, list) else [value]:
            assert v.dtype == torch.float64, \
                f"{type(m).__name__}.{name} is {v.dtype} {when}; states must be float64"


def check_float64_states(case: MetricCase) -> None:
    """(c) every state (tensor or list element) is float64, before and after updates."""
    m = case.make()
    _assert_float64(m, "at init")
    feed(m, case.batches)
    _assert_float64(m, "after update")
    assert any(isinstance(v, list) and v or isinstance(v, torch.Tensor) for v in m.metric_state.values())


def check_merge_state(case: MetricCase) -> None:
    """(d1) merging another instance's states (Metric.merge_state) equals one instance over all data."""
    a, b = case.make(), case.make()
    feed(a, case.batches[0::2])
    feed(b, case.batches[1::2])
    a.merge_state(b)
    assert_close(a.compute(), case.reference(case.batches), case.rtol, case.atol, f"{case}: merge_state")


def check_ddp_sync(case: MetricCase) -> None:
    """(d2) torchmetrics' distributed sync over `case.ranks` simulated ranks (one possibly empty)
    equals one instance over all data."""
    parts = _split(case.batches, case.ranks)
    ranks = [feed(case.make(), p) for p in parts]
    synced = simulate_ddp_sync(ranks)
    _assert_float64(synced, "after DDP sync")
    ordered = [b for p in parts for b in p]
    assert_close(synced.compute(), case.reference(ordered), case.rtol, case.atol, f"{case}: DDP sync")


def check_deterministic(case: MetricCase) -> None:
    """(e) two fresh instances fed the same batches give bit-identical results; compute() twice too."""
    m = feed(case.make(), case.batches)
    first = m.compute()
    assert_identical(m.compute(), first, f"{case}: compute twice")
    assert_identical(feed(case.make(), case.batches).compute(), first, f"{case}: second instance")


def check_pickle_and_clone(case: MetricCase) -> None:
    """(f) pickle round trip and clone() keep the states and the result; a clone is independent."""
    m = feed(case.make(), case.batches[:-1])
    before = snapshot(m)
    restored = pickle.loads(pickle.dumps(m))
    twin = m.clone()
    assert_same_state(snapshot(restored), before, f"{case} after pickle")
    feed(twin, case.batches[-1:])
    assert_same_state(snapshot(m), before, f"{case}: updating a clone changed the original")
    expected = case.reference(case.batches)
    for other, how in ((restored, "pickled"), (twin, "cloned")):
        if how == "pickled":
            feed(other, case.batches[-1:])
        assert_close(other.compute(), expected, case.rtol, case.atol, f"{case}: {how} metric")


CHECKS: list[Callable[[MetricCase], None]] = [
    check_matches_reference,
    check_reset,
    check_float64_states,
    check_merge_state,
    check_ddp_sync,
    check_deterministic,
    check_pickle_and_clone,
]
