"""Provenance speed: sign and verify milliseconds per clip for a ~1 MB MP4, and their overhead over
calling c2pa-python directly. One JSON line.

    python -m benchmarks.perf.provenance [--input MP4] [--repeats 15]

- sign: `evalkit.provenance.c2pa.sign_video` (path checks, an MP4 structure check, the
  existing-manifest check, the manifest built from the generation parameters, temporary file and
  rename) against `c2pa.Builder(manifest).sign(signer, mime, src, dst)` with the same manifest,
  the same `c2pa.Signer` and the same settings, writing to an open file.
- verify: `evalkit.provenance.verify.read_provenance` (a `c2pa.Reader` with the verify settings and
  trust anchors, then the manifest parsed into the verify contract) against `c2pa.Reader(path,
  context).json()`. The whole `verify_file` (decode, watermark detection, the default detector)
  with the watermark key and the default detector is reported beside it for scale, not as
  overhead: c2pa-python does none of that.

Runs alternate (evalkit, direct, evalkit, ...) so that drifting load hits both; the figures are
medians. Credentials are made in a temporary folder (`keys init`); the default input is a world
clip at 256x256 encoded at CRF 10 to about 1 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a file, this folder would come first on sys.path and its detectors.py would shadow the
# `detectors` package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]


def make_input(folder: Path, target_bytes: int = 1_000_000) -> Path:
    import numpy as np

    from evalkit.video import write_video
    from evalkit.world import WorldConfig, make_clip

    frames = make_clip("test", 0, seed=0, config=WorldConfig(frames=48, size=256)).frames
    rng = np.random.default_rng(0)  # grain, so that the encoder spends bits like on camera footage
    out = folder / "input.mp4"
    for sigma in (4, 8, 12, 16, 24):
        noisy = np.clip(frames + rng.normal(0, sigma, frames.shape), 0, 255).astype(np.uint8)
        write_video(out, noisy, fps=24.0, crf=10)
        if out.stat().st_size >= target_bytes:
            break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, help="an unsigned MP4 (default: a ~1 MB world clip)")
    ap.add_argument("--repeats", type=int, default=15)
    a = ap.parse_args()
    if a.repeats < 1:
        ap.error("--repeats must be at least 1")
    if a.input is not None and not a.input.is_file():
        ap.error(f"--input {a.input}: no such file; give an unsigned MP4")

    import c2pa

    from evalkit.provenance import c2pa as ev
    from evalkit.provenance.credentials import init_keys
    from evalkit.provenance.manifest_build import build_manifest
    from evalkit.provenance.signers import load_signer
    from evalkit.provenance.verify import _context, load_trust, read_provenance, verify_file

    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        src = a.input or make_input(d)
        keys = init_keys(d / "keys")
        signer = load_signer(keys.signer_cert, keys.signer_key)
        c2pa_signer = signer.c2pa_signer()
        params = {"prompt": "a medium red ball falls", "seed": 0, "sampler": "dpmpp-2m", "steps": 20,
                  "guidance": 3.0, "weights_sha256": "0" * 64}
        generator = {"name": "evalkit uvit:small", "version": "1"}

        def sign_evalkit(i: int) -> Path:
            return ev.sign_video(src, d / f"e{i}.mp4", signer=signer, generator=generator, params=params)

        def sign_direct(i: int) -> Path:
            manifest = build_manifest(title=f"d{i}.mp4", generator=generator, params=params,
                                      duration_ms=ev._check_mp4(src))
            out = d / f"d{i}.mp4"
            with open(src, "rb") as fin, open(out, "w+b") as fout:
                builder = c2pa.Builder(manifest, context=ev._sign_context())
                try:
                    builder.sign(c2pa_signer, "video/mp4", fin, fout)
                finally:
                    builder.close()
            return out

        trust = load_trust([keys.ca_cert])

        def verify_evalkit(path: Path) -> None:
            prov, err = read_provenance(path, trust)
            assert err is None and prov["state"] == "trusted", (prov, err)

        def verify_direct(path: Path) -> None:
            with c2pa.Reader(str(path), context=_context(trust)) as r:
                json.loads(r.json())

        def timed(fn, *args) -> float:
            t = time.perf_counter()
            fn(*args)
            return 1000 * (time.perf_counter() - t)

        sign_evalkit(-1), sign_direct(-1)  # warm-up: imports, contexts, the signer
        se, sd, ve, vd = [], [], [], []
        for i in range(a.repeats):
            se.append(timed(sign_evalkit, i))
            sd.append(timed(sign_direct, i))
        for i in range(a.repeats):
            ve.append(timed(verify_evalkit, d / f"e{i}.mp4"))
            vd.append(timed(verify_direct, d / f"e{i}.mp4"))
        from detectors.registry import load_detector
        from evalkit.provenance.credentials import load_watermark_key

        wm_key, detector = load_watermark_key(keys.watermark_key), load_detector()
        full = [timed(lambda p: verify_file(p, trust, wm_key, detector), d / f"e{i}.mp4")
                for i in range(min(3, a.repeats))]
        m = statistics.median
        row = {
            "benchmark": "provenance", "input_bytes": src.stat().st_size, "repeats": a.repeats,
            "sign_ms": round(m(se), 2), "sign_c2pa_direct_ms": round(m(sd), 2),
            "sign_overhead": round(m(se) / m(sd) - 1, 4),
            "verify_manifest_ms": round(m(ve), 2), "verify_c2pa_direct_ms": round(m(vd), 2),
            "verify_overhead": round(m(ve) / m(vd) - 1, 4),
            "verify_file_full_ms": round(m(full), 1),
            "target_overhead": 0.10, "c2pa_python": getattr(c2pa, "__version__", None) or _version("c2pa-python"),
            "machine": f"{platform.machine()} {os.cpu_count()} cpu", "load_avg_1m": round(os.getloadavg()[0], 2),
            "threads": os.environ.get("OMP_NUM_THREADS"),
        }
    print(json.dumps(row))


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
