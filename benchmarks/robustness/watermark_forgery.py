"""Can the watermark be forged? Copy and collusion attacks on `evalkit.provenance.watermark`.

    python benchmarks/robustness/watermark_forgery.py [--sizes 64,128,256] [--sources 3]
                                                      [--collusion 24] [--mlflow] [--out FILE.md]

A forgery is an unmarked video that reads as marked, with a payload the forger chose (framing a
real video as the output of a marked model, or passing it off under another clip's
credentials). Each attack takes the mark of world clips marked with one key and a payload
("source" clips, 16 frames, one key for all), and adds it to targets that were never marked:
a grey still, a smooth gradient (what a title card, a slide or a screen recording is), and the
first 16 frames of the real footage in `../shared/data/real-videos/`, all at the source's size.

  exact      the mark itself, marked - original: what anyone holds who has both the original and
             the marked copy of one video (a service that marks uploads hands that to whoever
             uploads), besides the key holder, who can simply embed
  estimate   without the original: the marked clip's temporal mean minus its median filter
             (k = 9 and 21 px); exact wherever the source is flat, since the mark is static
  collusion  without either: the mean of N marked clips' residuals (marked - Gaussian blur
             sigma 1), the key's common part if there were one, added at 1, 2, 4 and 8 times
             (Kutter et al. 2000, averaging attacks)

Counts are of forged targets that `detect` calls marked (p < 1e-6) and of those whose payload
is the source's. One JSON line per (attack, size) on stdout, and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from evalkit.provenance import watermark as wm  # noqa: E402
from evalkit.video import read_video  # noqa: E402
from evalkit.world import WorldConfig, make_clip  # noqa: E402
from benchmarks.script_args import check_outputs  # noqa: E402

REAL = Path(os.environ.get("EVALKIT_REAL_VIDEOS") or Path(__file__).resolve().parents[3] / "shared" / "data"
            / "real-videos")  # the footage the tests use (EVALKIT_REAL_VIDEOS), as watermark.py reads it
FRAMES = 16


def _fit(frames: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])


def targets(size: int) -> dict[str, np.ndarray]:
    """Unmarked videos [T, S, S, 3] uint8 a forger would stamp."""
    xx = np.mgrid[0:size, 0:size][1]
    out = {"grey still": np.full((FRAMES, size, size, 3), 128, np.uint8),
           "gradient": np.repeat(np.stack([40 + 150 * xx / size] * 3, -1)[None], FRAMES, 0).astype(np.uint8)}
    for f in sorted(REAL.glob("*.mp4")):
        out[f.stem] = _fit(read_video(f, max_frames=FRAMES).frames, size)
    return out


def _stamp(target: np.ndarray, pattern: np.ndarray) -> np.ndarray:
    return np.clip(target.astype(np.float32) + pattern, 0, 255).round().astype(np.uint8)


def _read(forged: np.ndarray, key: bytes, payload: bytes) -> tuple[bool, bool, float]:
    d = wm.detect(forged, key)
    return bool(d.detected), bool(d.detected and d.payload == payload), float(d.p_value)


def copy_attacks(size: int, n_sources: int, key: bytes, tgts: dict) -> dict[str, dict]:
    rows: dict[str, dict] = {}

    def add(attack: str, target: str, res):
        r = rows.setdefault(attack, {"n": 0, "detected": 0, "payload": 0, "p_min": 1.0, "by_target": {}})
        r["n"] += 1
        r["detected"] += res[0]
        r["payload"] += res[1]
        r["p_min"] = min(r["p_min"], res[2])
        t = r["by_target"].setdefault(target, [0, 0])
        t[0] += res[1]
        t[1] += 1

    for i in range(n_sources):
        src = make_clip("test", i, 5, WorldConfig(size=size, frames=FRAMES)).frames
        payload = bytes([i, size % 251]) + b"forge!"
        marked = wm.embed(src, payload, key)
        exact = marked.astype(np.float32) - src.astype(np.float32)
        mean = marked.mean(axis=0)
        estimates = {f"estimate, median {k}": (mean - cv2.medianBlur(np.clip(mean, 0, 255).astype(np.uint8), k))[None]
                     for k in (9, 21)}
        for name, t in tgts.items():
            add("exact", name, _read(_stamp(t, exact), key, payload))
            for attack, est in estimates.items():
                add(attack, name, _read(_stamp(t, est), key, payload))
    return rows


def collusion(size: int, n: int, key: bytes, tgts: dict) -> dict[str, dict]:
    acc = np.zeros((size, size, 3))
    for i in range(n):
        m = wm.embed(make_clip("train", i, 11, WorldConfig(size=size, frames=FRAMES)).frames, bytes([i % 256]) * 8, key)
        blur = np.stack([cv2.GaussianBlur(f, (0, 0), 1.0) for f in m])
        acc += (m.astype(np.float64) - blur).mean(axis=0)
    est = (acc / n).astype(np.float32)
    est -= est.mean(axis=(0, 1), keepdims=True)
    rows = {}
    for scale in (1, 2, 4, 8):
        res = [_read(_stamp(t, scale * est[None]), key, b"") for t in tgts.values()]
        rows[f"collusion of {n}, x{scale}"] = {"n": len(res), "detected": sum(r[0] for r in res), "payload": 0,
                                               "p_min": min(r[2] for r in res), "by_target": {}}
    return rows


def markdown(results: list[dict]) -> str:
    lines = ["| attack | size | forged targets read as marked | with the source's payload | smallest p | "
             "payloads by target |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        by = ", ".join(f"{k} {v[0]}/{v[1]}" for k, v in r["by_target"].items()) or ""
        lines.append(f"| {r['attack']} | {r['size']} | {r['detected']}/{r['n']} | {r['payload']}/{r['n']} | "
                     f"{r['p_min']:.2g} | {by} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--sources", type=int, default=3, help="marked world clips whose mark is copied")
    ap.add_argument("--collusion", type=int, default=24, help="marked clips averaged (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--mlflow", action="store_true", help="log one MLflow run (experiment watermark-robustness)")
    a = ap.parse_args(argv)
    check_outputs(ap, out=a.out)
    key = np.random.default_rng(a.seed).bytes(32)
    t0, results = time.perf_counter(), []
    for size in (int(s) for s in a.sizes.split(",")):
        tgts = targets(size)
        rows = copy_attacks(size, a.sources, key, tgts)
        if a.collusion:
            rows.update(collusion(size, a.collusion, key, tgts))
        for attack, r in rows.items():
            results.append({"attack": attack, "size": size, **r})
            print(json.dumps(results[-1]), flush=True)
    md = markdown(results)
    print(md)
    if a.out:
        a.out.write_text(md + "\n")
    if a.mlflow:
        import mlflow

        from evalkit.tracking import sanitize_name, start_run

        with start_run("watermark-robustness", run_name="forgery", params=vars(a) | {"out": str(a.out)},
                       seed=a.seed):
            for r in results:
                mlflow.log_metrics({sanitize_name(f"forgery/{r['attack']}/{r['size']}/{k}"): float(r[k]) / r["n"]
                                    for k in ("detected", "payload")})
            with tempfile.TemporaryDirectory() as d:
                p = Path(d) / "watermark_forgery.md"
                p.write_text(md + "\n")
                mlflow.log_artifact(str(p))
    print(json.dumps({"seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
