"""Detector speed at 16x64x64: one JSON line.

    python benchmarks/perf/detectors.py [--clips 256] [--detector default]
        [--train-real DIR ... --train-fake DIR ...]

- clips per second for each family's scoring (features + model) on protocol batches of world
  clips rendered at 64x64 (decode excluded: that is the video reader's cost), and for the named
  detector end to end from `Clip`s (protocol + every family + calibration);
- with --train-real/--train-fake (the default data: the folders `python -m
  benchmarks.detection.data` writes, plus ../shared/data/real-videos), the wall time of
  `evalkit detectors train` on them (no MLflow, into a temporary EVALKIT_HOME): preparing the
  clips, each family's fit, and the whole, cross-fitting and evaluation included.
Targets (issue 6): spectral at least 100 clips/s; training under 10 minutes, on the 2-core CPU.
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
    ap.add_argument("--train-real", action="append", default=[], help="Real clips for the training timing.")
    ap.add_argument("--train-fake", action="append", default=[], help="Generated clips for the training timing.")
    a = ap.parse_args(argv)
    if bool(a.train_real) != bool(a.train_fake):
        print("evalkit: error: the training timing needs both --train-real and --train-fake", file=sys.stderr)
        return 2

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
    if a.train_real:
        out["train"] = time_training(a.train_real, a.train_fake)
        out["train_target_600s_met"] = out["train"]["total_s"] < 600
    out["load_average"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(out))
    return 0


def time_training(real: list[str], fake: list[str]) -> dict:
    """Wall seconds of a default `detectors train` on these folders, saved to a temporary home,
    and the process's peak memory."""
    import resource
    import tempfile

    from detectors.train import TrainConfig, train_detector

    before = os.environ.get("EVALKIT_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["EVALKIT_HOME"] = home
        try:
            t = time.perf_counter()
            r = train_detector(real, fake, name="timing", cfg=TrainConfig(), progress=False, log_mlflow=False)
            total = time.perf_counter() - t
        finally:
            if before is None:
                os.environ.pop("EVALKIT_HOME", None)
            else:
                os.environ["EVALKIT_HOME"] = before
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    return {"clips": r["clips"], "prepare_s": round(r["prep_s"], 1),
            "fit_s": {k: round(v, 1) for k, v in r["fit_s"].items()}, "total_s": round(total, 1),
            "peak_rss_mb": round(peak_mb)}


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
