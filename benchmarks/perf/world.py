"""World rendering speed: one JSON line.

    python benchmarks/perf/world.py [--n 10000] [--workers 2]

Measures in-memory clips per second at 16 frames 32x32 and 16 frames 128x128 (one process),
the wall time to render N training clips of 16x32x32 with `--workers` processes (target:
10,000 in under 30 s on 2 cores), and MP4 write+read round trips per second at 16x32x32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip


def _render_range(args) -> int:
    start, stop, size = args
    cfg = WorldConfig(frames=16, size=size)
    for i in range(start, stop):
        make_clip("train", i, 0, cfg)
    return stop - start


def clips_per_second(n: int, size: int) -> float:
    t = time.perf_counter()
    _render_range((0, n, size))
    return n / (time.perf_counter() - t)


def render_many(n: int, workers: int) -> float:
    """Seconds to render clips 0..n-1 of the train split at 16x32x32 with `workers` processes."""
    chunks = [(i, min(i + 500, n), 32) for i in range(0, n, 500)]
    t = time.perf_counter()
    if workers <= 1:
        done = sum(map(_render_range, chunks))
    else:
        with ProcessPoolExecutor(workers) as pool:
            done = sum(pool.map(_render_range, chunks))
    assert done == n
    return time.perf_counter() - t


def mp4_round_trips_per_second(n: int) -> float:
    clips = [make_clip("train", i) for i in range(n)]
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        for i, c in enumerate(clips):
            p = write_video(Path(d) / f"{i}.mp4", c)
            read_video(p)
        return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="clips for the bulk render")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    a = ap.parse_args()
    if a.n < 1 or a.workers < 1:
        ap.error("--n and --workers must be at least 1")
    n_bulk = 1000 if a.quick else a.n
    bulk_s = render_many(n_bulk, a.workers)
    n_small, n_large, n_mp4 = (200, 20, 20) if a.quick else (2000, 200, 200)
    print(json.dumps({
        "benchmark": "world", "quick": a.quick,
        "machine": f"{platform.machine()} {os.cpu_count()} cpu",
        "clips_per_s_16x32x32": round(clips_per_second(n_small, 32), 1), "n_16x32x32": n_small,
        "clips_per_s_16x128x128": round(clips_per_second(n_large, 128), 1), "n_16x128x128": n_large,
        "bulk_clips": n_bulk, "bulk_workers": a.workers, "bulk_seconds": round(bulk_s, 2),
        # the target is 10,000 clips in 30 s: fewer clips do not measure it (it read true for --n 0)
        "bulk_target_met": bool(bulk_s < 30.0) if n_bulk >= 10_000 else None,
        "mp4_round_trips_per_s_16x32x32": round(mp4_round_trips_per_second(n_mp4), 1), "n_mp4": n_mp4,
    }))


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
