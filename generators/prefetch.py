"""Training inputs made ahead of the step, in worker processes.

On a GPU a `small` U-ViT step of 64 clips takes about as long as rendering one of its world clips
does on one core, so a loop that renders its own batch leaves the GPU idle most of the time. A step's
inputs are a pure function of (seed, step) (`generators.training.sample_seed`), so workers can make
them in any order and the trained weights do not depend on how many there are.
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_fn: Callable[[int], Any] | None = None  # a worker's fn, installed once (not pickled with every task)


def _install(fn: Callable[[int], Any]) -> None:
    import torch

    global _fn
    _fn = fn
    torch.set_num_threads(1)  # one core per worker; the workers together are the parallelism


def _call(step: int) -> Any:
    return _fn(step)


class Prefetcher:
    """`get(step)` returns `fn(step)` for step = start, start + 1, ... (each asked for once, in
    order; stop is exclusive). With `workers` > 0, up to `depth` steps (default 2 per worker) are
    made ahead in spawned processes; with 0, each is made inline when asked for."""

    def __init__(self, fn: Callable[[int], Any], start: int, stop: int, workers: int = 0, depth: int | None = None):
        self.fn, self.next, self.stop = fn, start, stop
        self.pool, self.pending = None, deque()
        if workers > 0:
            # spawn, not fork: the parent may hold a CUDA context, which a forked child must not inherit
            self.pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                            initializer=_install, initargs=(fn,))
            self.ahead = start
            for _ in range(depth or 2 * workers):
                self._submit()

    def _submit(self) -> None:
        if self.ahead < self.stop:
            self.pending.append(self.pool.submit(_call, self.ahead))
            self.ahead += 1

    def get(self, step: int) -> Any:
        if step != self.next:
            raise ValueError(f"Prefetcher: asked for step {step}, but the next one is {self.next}")
        self.next += 1
        if self.pool is None:
            return self.fn(step)
        out = self.pending.popleft().result()
        self._submit()
        return out

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = None

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
