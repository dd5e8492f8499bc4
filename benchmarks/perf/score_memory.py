"""Peak memory of `evalkit score` on a folder of HD videos: one JSON line.

    python -m benchmarks.perf.score_memory [--clips 8] [--frames 66]

Writes `--clips` excerpts of the 1280x720 Big Buck Bunny footage (../shared/data/real-videos) into a
folder of prompt-named files, scores it (flicker, CLIP alignment, FVD against 8 world clips)
in a child process, and reports the child's peak resident memory against the decoded size of
the whole folder. Since session 21 `score` reads the folder one clip at a time, so the peak
should track one clip (its uint8 frames and the float tensor the backbones take), not the folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOOTAGE = ROOT.parent / "shared" / "data" / "real-videos" / "bigbuckbunny.mp4"

CHILD = """
import json, sys, time
from evalkit.metrics.score import score_folders
t = time.perf_counter()
r = score_folders(sys.argv[1], sys.argv[2], ("flicker", "clip", "fvd"), progress=False)
print(json.dumps({"seconds": time.perf_counter() - t, "n": r["metrics"]["flicker"]["n"],
                  "retrieval": "clip_retrieval_top1" in r["metrics"]}))
"""


def main(argv=None) -> None:
    from evalkit.video import read_video, write_video
    from evalkit.world.export import render_folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--frames", type=int, default=66)
    a = ap.parse_args(argv)
    if a.clips < 1 or a.frames < 2:
        ap.error("--clips must be at least 1 and --frames at least 2")
    src = read_video(FOOTAGE)
    names = ["a rabbit in a meadow", "a bird on a branch", "trees in the wind", "a butterfly over grass",
             "clouds over a hill", "a squirrel in the forest", "flowers in the sun", "a river in the morning"]
    with tempfile.TemporaryDirectory() as tmp:
        cand, ref = Path(tmp) / "cand", Path(tmp) / "ref"
        cand.mkdir()
        decoded, shape = 0, None
        for i in range(a.clips):
            start = (i * 11) % max(1, len(src.frames) - a.frames)
            frames = src.frames[start:start + a.frames]
            write_video(cand / f"{names[i % len(names)]} {i}.mp4", frames, fps=src.fps)
            decoded += frames.nbytes
            shape = frames.shape[:3]  # what was cut: the footage may be shorter than --frames
        render_folder(ref, split="test", n=8, seed=1, progress=False)
        del src
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-c", CHILD, str(cand), str(ref)], capture_output=True, text=True,
                           cwd=ROOT, env=env)
        wall = time.perf_counter() - t
        if p.returncode:
            why = (p.stderr.strip().splitlines() or [f"killed by signal {-p.returncode}" if p.returncode < 0
                                                      else f"exit code {p.returncode}"])[-1]
            sys.exit(f"score_memory: the scoring process failed: {why}")
        child = json.loads(p.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # kB on Linux
    one = decoded / a.clips
    print(json.dumps({"benchmark": "score_memory", "machine": f"{platform.machine()} {os.cpu_count()} cpu",
                      "threads": env["OMP_NUM_THREADS"], "clips": a.clips, "clip": "x".join(map(str, shape)),
                      "decoded_folder_bytes": decoded,
                      "decoded_clip_bytes": int(one), "peak_rss_bytes": peak,
                      "peak_over_one_clip": round(peak / one, 2), "peak_over_folder": round(peak / decoded, 2),
                      "score_seconds": round(child["seconds"], 1), "wall_seconds": round(wall, 1),
                      "retrieval_on_mixed_or_same_sizes": child["retrieval"]}))


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
