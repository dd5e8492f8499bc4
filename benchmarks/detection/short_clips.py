"""How a detector reads clips shorter than its protocol: false alarms by the frames a clip has.

    python -m benchmarks.detection.short_clips [--detector NAME] [--world 40] [--real DIR] [--fake DIR]

A clip shorter than the protocol (16 frames) is padded by repeating its last frame; the
threshold was fitted on whole clips. Each real clip (world test clips, and 16-frame segments of
the videos in --real, default ../shared/data/real-videos) is cut to its first k frames for k in
1, 2, 3, 4, 8, 16 and read by the detector *without* its domain check, counting p >= threshold.
With --fake DIR (a clip folder of generated clips) the catches are counted the same way. Prints
one JSON line: {"k": [...], "real_flagged": [...], "n_real", "fake_caught": [...], "n_fake",
"threshold", "detector"}. This measurement is why `Detector.domain_note` abstains on padded
clips (session 27: 33/56 real clips flagged at k = 1, 5/56 at 2-4, 4/56 at 8, 1/56 at 16).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from benchmarks.script_args import check_input_folders

KS = (1, 2, 3, 4, 8, 16)
REAL_DIR = Path(os.environ.get("EVALKIT_REAL_VIDEOS") or Path(__file__).resolve().parents[3] / "shared" / "data"
                / "real-videos")


def real_clips(n_world: int, real_dir: Path | None, frames: int) -> list[np.ndarray]:
    from evalkit.video import probe_video, read_video
    from evalkit.world.clips import make_clip

    clips = [make_clip("test", i).frames for i in range(n_world)]
    if real_dir is not None and real_dir.is_dir():
        for f in sorted(real_dir.glob("*.mp4")):
            v = read_video(f, max_frames=min(probe_video(f).frames or 64, 128)).frames
            clips += [v[s:s + frames] for s in range(0, len(v) - frames + 1, 2 * frames)]
    return clips


def flagged_by_length(det, clips: list[np.ndarray]) -> list[int]:
    """For each k in KS: how many clips, cut to k frames, read p >= threshold."""
    from evalkit.clip import Clip

    out = []
    for k in KS:
        p = det.predict([Clip(frames=np.ascontiguousarray(c[:k]), fps=24.0) for c in clips])
        out.append(int(sum(x >= det.threshold for x in p)))
    return out


def main(argv=None) -> int:
    from detectors.registry import load_detector
    from evalkit.clipset import load_clip, read_index

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--detector", default=None)
    ap.add_argument("--world", type=int, default=40, help="world test clips on the real side")
    ap.add_argument("--real", type=Path, default=REAL_DIR, help="folder of real videos (16-frame segments)")
    ap.add_argument("--fake", type=Path, default=None, help="clip folder of generated clips")
    a = ap.parse_args(argv)
    check_input_folders(ap, real=a.real, fake=a.fake)
    det = load_detector(a.detector)
    real = real_clips(a.world, a.real, det.protocol.frames)
    row = {"bench": "detector_short_clips", "detector": det.name, "threshold": float(det.threshold),
           "k": list(KS), "n_real": len(real), "real_flagged": flagged_by_length(det, real)}
    if a.fake is not None:
        fake = [load_clip(a.fake, r).frames for r in read_index(a.fake)]
        row.update(n_fake=len(fake), fake_caught=flagged_by_length(det, fake))
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
