"""`one_blas_thread` (session 38): the BLAS limit is taken in the main thread only, nested calls
keep the outermost, and it is restored after an error; from worker threads (where the limit is
process-wide with some BLAS builds and per thread with others) nothing is changed."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from evalkit.metrics.blas import one_blas_thread
from evalkit.metrics.fvd import fvd_with_ci


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


@pytest.fixture
def two_blas_threads():
    if not _blas_threads():
        pytest.skip("no BLAS library threadpoolctl can see")
    with threadpool_limits(2, user_api="blas"):  # a known starting point, whatever the machine
        yield _blas_threads()


def test_the_main_thread_is_limited_nested_and_restored_after_an_error(two_blas_threads):
    with pytest.raises(ValueError):
        with one_blas_thread():
            with one_blas_thread():
                assert all(n == 1 for n in _blas_threads())
            assert all(n == 1 for n in _blas_threads())  # the inner one left the outer's limit
            raise ValueError("inside")
    assert _blas_threads() == two_blas_threads
    rng = np.random.default_rng(0)
    fvd_with_ci(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), n_boot=5)
    assert _blas_threads() == two_blas_threads


def test_worker_threads_leave_the_limits_alone(two_blas_threads):
    rng = np.random.default_rng(1)
    sets = [(rng.normal(size=(40, 6)), rng.normal(size=(40, 6))) for _ in range(4)]
    got, errors = [], []

    def work(a, b):
        try:
            got.append(fvd_with_ci(a, b, n_boot=20).value)
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=work, args=s) for s in sets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(got) == 4
    assert _blas_threads() == two_blas_threads
    assert sorted(got) == sorted(fvd_with_ci(a, b, n_boot=20).value for a, b in sets)
