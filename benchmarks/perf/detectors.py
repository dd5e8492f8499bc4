"""Detector speed at 16x64x64: one JSON line.

    python benchmarks/perf/detectors.py [--clips 256] [--detector default]

- clips per second for each family's scoring (features + model) on protocol batches of world
  clips rendered at 64x64 (decode excluded: that is the video reader's cost), and for the named
  detector end to end from `Clip`s (protocol + every family + calibration);
- training time of every family on the default data sizes is reported by
  `python -m benchmarks.detection.run` (fit_s), since it needs the generated clip folders.
Target (issue 6): spectral at least 100 clips/s on the 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

# Run as a script, this file's folder comes first on sys.path and its name would shadow the
# `detectors` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=256)
    ap.add_argument("--detector", default="default")
    a = ap.parse_args(argv)

    from detectors.families import LinearFamily
    from detectors.features import Protocol, stack_protocol
    from detectors.cnn3d import CNN3DFamily
    from evalkit.world.clips import WorldConfig, make_clip_from_seed

    cfg = WorldConfig(size=64)
    clips = [make_clip_from_seed(s, "test", cfg) for s in range(a.clips)]
    x = stack_protocol(clips)
    y = np.arange(len(x)) % 2  # labels only to fit models of the right shape; speed is what is measured
    out = {"benchmark": "perf/detectors", "clips": len(x), "shape": list(x.shape[1:]),
           "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                       "cpu": platform.processor() or platform.machine()}}
    for name in ("naive", "spectral", "temporal"):
        fam = LinearFamily(name, Protocol()).fit(x[:64], y[:64])
        t = time.perf_counter()
        fam.score(x)
        out[f"{name}_clips_per_s"] = round(len(x) / (time.perf_counter() - t), 1)
    cnn = CNN3DFamily(Protocol())
    t = time.perf_counter()
    cnn.score(x)
    out["cnn3d_clips_per_s"] = round(len(x) / (time.perf_counter() - t), 1)
    try:
        from detectors.registry import load_detector

        det = load_detector(a.detector)
        t = time.perf_counter()
        det.predict(clips)
        out["detector"] = det.name
        out["detector_clips_per_s"] = round(len(x) / (time.perf_counter() - t), 1)
    except Exception as e:  # noqa: BLE001  the family numbers stand without a trained detector
        out["detector_error"] = str(e).splitlines()[0]
    out["spectral_target_100_met"] = out["spectral_clips_per_s"] >= 100
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
