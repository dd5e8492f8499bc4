"""Long HD videos through provenance: `sign --watermark` (streamed in two passes) and `verify`
(whole, and in part over a decode budget), wall seconds and peak memory. One JSON line a setting.

    python -m benchmarks.perf.long_video [--frames 600] [--size 1280x720] [--budget-mb 500]

The input is real footage (Big Buck Bunny, `../shared/data/real-videos/`) played forwards and
backwards to the asked length and size, encoded once with x264 ultrafast. Each command runs as
its own process (the CLI a user runs), so its peak resident memory is its own
(`getrusage(RUSAGE_CHILDREN)` after each one: the largest child so far, so the settings run in
order of rising memory is not assumed; each line reports the peak of a fresh interpreter).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

FOOTAGE = Path(os.environ.get("EVALKIT_REAL_VIDEOS", Path(__file__).resolve().parents[3] / "shared/data/real-videos"))


def make_input(path: Path, frames: int, width: int, height: int) -> Path:
    import av
    import cv2
    import numpy as np

    from evalkit.video import read_video

    src = read_video(FOOTAGE / "bigbuckbunny.mp4").frames
    loop = np.concatenate([src, src[::-1]])
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "crf": "20"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            f = cv2.resize(loop[i % len(loop)], (width, height), interpolation=cv2.INTER_AREA)
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(s.encode(None))
    return path


def timed(args: list[str], env: dict) -> tuple[float, int, str]:
    """(wall seconds, peak resident MB, stdout) of `python -m evalkit.cli ARGS` in a fresh process."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); print(r.stdout, end=''); "
            "sys.stderr.write(r.stderr); sys.exit(r.returncode)")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "evalkit.cli", *args],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise SystemExit(f"evalkit {' '.join(args)} failed ({r.returncode}): {r.stderr.strip()[-300:]}")
    peak_kb, _, out = r.stdout.partition("\n")
    return wall, int(peak_kb) // 1024, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--budget-mb", type=int, default=500, help="decode budget of the partial verify")
    a = ap.parse_args()
    size = a.size.lower().split("x")
    if not (len(size) == 2 and all(x.isdigit() and int(x) > 0 and int(x) % 2 == 0 for x in size)):
        ap.error(f"--size {a.size!r}: give WxH in even pixels, e.g. 1280x720")
    if a.frames < 1 or a.budget_mb < 1:
        ap.error("--frames and --budget-mb must be at least 1")
    width, height = (int(x) for x in a.size.lower().split("x"))
    base = {"benchmark": "long_video", "frames": a.frames, "size": f"{width}x{height}",
            "machine": platform.machine(), "cpus": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        env = {**os.environ, "EVALKIT_HOME": str(d / "home")}
        subprocess.run([sys.executable, "-m", "evalkit.cli", "keys", "init"], env=env, check=True,
                       capture_output=True)
        src = make_input(d / "long.mp4", a.frames, width, height)
        wall, peak, _ = timed(["sign", "--watermark", str(src), str(d / "long.signed.mp4")], env)
        print(json.dumps({**base, "setting": "sign --watermark (streamed)", "seconds": round(wall, 1),
                          "frames_per_s": round(a.frames / wall, 1), "peak_mb": peak}), flush=True)
        for budget in (None, a.budget_mb):
            e = env if budget is None else {**env, "EVALKIT_MAX_DECODED_BYTES": str(budget << 20)}
            for name in ("long.mp4", "long.signed.mp4"):
                wall, peak, out = timed(["verify", "--json", str(d / name)], e)
                r = json.loads(out.splitlines()[0])
                print(json.dumps({**base, "setting": f"verify {'unmarked' if name == 'long.mp4' else 'signed'}"
                                  + ("" if budget is None else f", budget {budget} MB"), "seconds": round(wall, 1),
                                  "peak_mb": peak, "checked_part": r["checked_part"],
                                  "watermark_detected": r["watermark"]["detected"], "verdict": r["verdict"]}),
                      flush=True)


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
