"""Where a bench run's generation shards run: in this process (`local`) or on a Ray cluster (`ray`).

A shard is one prompt's samples, always generated as one batch (batched float maths can differ
in the last bits with the batch's size, so a shard is the unit that makes a run reproducible). An
executor only turns shards into clips; the runner keeps everything that must happen once and in
one place: the clip store, signing and watermarking (the credentials never leave the driver),
scoring, and the MLflow run. So a run's clips, and therefore its numbers, do not depend on the
executor, and a run killed under one executor resumes under either.

Ray: `RayExecutor` connects to `address` (`RAY_ADDRESS`, or "auto" for a running cluster) or
starts a local instance, and starts `workers` actors (default: one per CPU the cluster has), each
building the generator once and keeping it loaded. Shards are handed to whichever actor is free
and come back as they finish. Every node needs evalkit installed (`pip install 'evalkit[ray]'`)
and the model's weights at the same path. Actors get `cpus_per_worker` CPUs (torch threads set to
match) and, when the cluster has GPUs, one GPU each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from evalkit.errors import BadInputError, UnavailableError


@dataclass(frozen=True)
class Shard:
    """One prompt's samples still to generate: `key` identifies it to the caller."""

    key: object
    texts: list[str]
    seeds: list[int]


class GpuMeter:
    """GPU-seconds (the synchronised wall time of a generate call on a CUDA model) and joules
    (NVML's energy counter) of one call; inactive on CPU or without pynvml."""

    def __init__(self, gen):
        self.torch = self.nvml = self.handle = None
        try:
            import torch

            net = getattr(gen, "net", None)
            if net is not None and torch.cuda.is_available() and next(net.parameters()).device.type == "cuda":
                self.torch = torch
                import pynvml

                pynvml.nvmlInit()
                self.nvml, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(torch.cuda.current_device())
        except Exception:  # noqa: BLE001  no CUDA / NVML: those cost metrics are simply absent
            pass

    def start(self):
        if self.torch is None:
            return None
        self.torch.cuda.synchronize()
        e = self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) if self.nvml else None
        return time.perf_counter(), e

    def stop(self, t0) -> dict:
        if t0 is None:
            return {}
        self.torch.cuda.synchronize()
        out = {"gpu_s": time.perf_counter() - t0[0]}
        if self.nvml and t0[1] is not None:
            out["energy_j"] = (self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle) - t0[1]) / 1000.0
        return out


def generate_shard(gen, shard: Shard, meter: GpuMeter | None = None) -> tuple[list, dict]:
    """(clips, per-clip cost {"gen_wall_s", "gen_cpu_s", ["gen_gpu_s", "gen_energy_j"]}) of one shard,
    timed where it runs, so that cost columns mean the same under every executor."""
    meter = meter or GpuMeter(gen)
    g0 = meter.start()
    t0, c0 = time.perf_counter(), time.process_time()
    clips = gen.generate(shard.texts, shard.seeds)
    n = len(shard.texts)
    cost = {"gen_wall_s": (time.perf_counter() - t0) / n, "gen_cpu_s": (time.process_time() - c0) / n}
    cost.update({f"gen_{k}": v / n for k, v in meter.stop(g0).items()})
    return clips, cost


class LocalExecutor:
    """Shards one after another in this process, with the generator the runner already built."""

    name = "local"

    def run(self, make_generator: Callable[[], object], shards: Iterable[Shard], gen=None
            ) -> Iterator[tuple[Shard, list, dict]]:
        gen = gen if gen is not None else make_generator()
        meter = GpuMeter(gen)
        for shard in shards:
            clips, cost = generate_shard(gen, shard, meter)
            yield shard, clips, cost

    def close(self) -> None:
        pass


class _Worker:
    """A Ray actor's body: builds the generator on its first shard (so that a bad spec or missing
    weights come back as the task's own error, not as a dead actor), then keeps it."""

    def __init__(self, make_generator: Callable[[], object], threads: int):
        import torch

        torch.set_num_threads(max(1, threads))
        self.make_generator, self.gen, self.meter = make_generator, None, None

    def generate(self, shard: Shard):
        if self.gen is None:
            self.gen = self.make_generator()
            self.meter = GpuMeter(self.gen)
        return generate_shard(self.gen, shard, self.meter)


class RayExecutor:
    """Shards over a pool of Ray actors; results come back in the order they finish."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None, cpus_per_worker: int = 1):
        try:
            import ray
        except ImportError:
            raise UnavailableError("--executor ray: ray is not installed; pip install 'evalkit[ray]' "
                                   "or use --executor local") from None
        if workers is not None and workers < 1:
            raise BadInputError(f"--workers {workers}: must be at least 1")
        if cpus_per_worker < 1:
            raise BadInputError(f"--cpus-per-worker {cpus_per_worker}: must be at least 1")
        self.ray = ray
        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS")
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(include_dashboard=False, log_to_driver=False,
                             num_cpus=max(workers or 0, os.cpu_count() or 1) * cpus_per_worker)
            except ConnectionError as e:
                raise BadInputError(f"--ray-address {address}: cannot connect to a Ray cluster ({e}); "
                                    "start one (ray start --head) or leave the address out") from None
            self._started = True
        resources = ray.cluster_resources()
        self.cpus_per_worker = cpus_per_worker
        self.workers = workers or max(1, int(resources.get("CPU", 1)) // cpus_per_worker)
        self.gpus_per_worker = 1 if resources.get("GPU", 0) >= self.workers else 0

    def run(self, make_generator: Callable[[], object], shards: Iterable[Shard], gen=None
            ) -> Iterator[tuple[Shard, list, dict]]:
        ray = self.ray
        shards = list(shards)
        if not shards:
            return
        actor = ray.remote(num_cpus=self.cpus_per_worker, num_gpus=self.gpus_per_worker)(_Worker)
        pool = [actor.remote(make_generator, self.cpus_per_worker) for _ in range(min(self.workers, len(shards)))]
        pending: dict = {}
        queue = list(reversed(shards))

        def submit(a):
            shard = queue.pop()
            pending[a.generate.remote(shard)] = (a, shard)

        try:
            for a in pool:  # one shard in flight per actor; the next goes to whichever finishes first
                submit(a)
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                a, shard = pending.pop(ref)
                try:
                    clips, cost = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # re-raise the worker's own error (a user
                    cause = getattr(e, "cause", None)      # error stays one line, not a remote traceback)
                    if isinstance(cause, Exception):
                        raise cause from None
                    raise
                if queue:
                    submit(a)
                yield shard, clips, cost
        finally:
            for a in pool:
                ray.kill(a)

    def close(self) -> None:
        if self._started:
            self.ray.shutdown()


def get_executor(name: str, **options):
    """`local` | `ray` (options: address, workers, cpus_per_worker)."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(**options)
    raise BadInputError(f"--executor {name}: unknown; choose local or ray")
