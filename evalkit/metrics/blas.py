"""One BLAS thread for small dense linear algebra ([D, D] factorisations of a few hundred rows).

Such work gains nothing from a second thread, and on a busy machine BLAS threads that wait on
each other made it 5-50 times slower (session 38, 2 cores at load 4: a 400-d Cholesky 1.7 ms on
one thread, 270 ms on two). The limit is taken in the main thread only: threadpoolctl's limit is
process-wide with some BLAS builds and per thread with others (OpenBLAS built on OpenMP), so
from worker threads overlapping calls could lift it under each other or leave the process on
one thread for good (session 38's review); work called from a worker thread runs as before,
unlimited. Nested calls in the main thread keep the outermost limit."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from threadpoolctl import threadpool_limits  # installed with scikit-learn

_depth = 0  # nested `one_blas_thread` calls open in the main thread


@contextmanager
def one_blas_thread() -> Iterator[None]:
    global _depth
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    limiter, entered = None, False
    try:  # the limit taken inside: an interrupt between taking it and the yield still restores it
        if _depth == 0:
            limiter = threadpool_limits(1, user_api="blas")
        _depth, entered = _depth + 1, True
        yield
    finally:
        if entered:
            _depth -= 1
        if limiter is not None:
            limiter.restore_original_limits()


__all__ = ["one_blas_thread"]
