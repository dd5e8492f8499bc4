"""The steps of `evalkit demo` (see evalkit/demo.py for the order and what it prints).

Each step calls the library's building blocks; nothing here computes a number itself. The packages
above the core (`generators`, `detectors`, `benchmarks`, `reports`) are imported inside the
functions, never at module import: the core does not depend on them.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from evalkit.clipset import iter_clips, read_index
from evalkit.errors import MissingResourceError
from evalkit.video import psnr
from evalkit.world import WorldConfig, make_clip_from_seed

DEFAULT_GENERATOR = "uvit:small"
# The best shipped checkpoint of the small preset (session 9: GPU-trained; README, "Training the
# built-in U-ViT"), until `uvit:small` itself meets its quality targets.
FALLBACK_GENERATOR = "uvit:small-gpu"
SUITE = "world-v1"
CONTROL = "control:frozen"


class Progress:
    """Numbered step lines ("[3/8] scoring ...") with each step's time, printed as they happen."""

    def __init__(self, total: int, echo=None):
        self.total, self.k = total, 0
        self.echo = echo or (lambda s: None)
        self.t0 = time.perf_counter()
        self.times: dict[str, float] = {}

    def step(self, title: str):
        self.k += 1
        self.echo(f"[{self.k}/{self.total}] {title} ...")
        return _Timer(self, title)

    def say(self, text: str) -> None:
        for line in text.splitlines():
            self.echo(f"      {line}")

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


class _Timer:
    def __init__(self, progress: Progress, title: str):
        self.p, self.title = progress, title

    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, exc_type, exc, tb):
        dt = time.perf_counter() - self.start
        self.p.times[self.title] = dt
        if exc_type is None:
            self.p.echo(f"      done in {dt:.1f} s (total {self.p.elapsed:.0f} s)")


# ------------------------------------------------------------------------------------ 1. world
def clip_statistics(folder: Path, config: WorldConfig) -> list[dict]:
    """Per clip: decoded-vs-rendered PSNR, brightness, objects, mean object speed (px/s)."""
    rows = []
    for clip in iter_clips(folder):
        rec = clip.meta["record"]
        rendered = make_clip_from_seed(rec["seed"], rec["split"], config).frames
        speeds = [np.hypot(*np.asarray(o["velocity"]).T).mean() for o in rec["scene"]["objects"]]
        rows.append({
            "id": rec["id"], "split": rec["split"], "kind": rec["scene"]["kind"],
            "objects": len(rec["scene"]["objects"]), "psnr_db": min(psnr(clip.frames, rendered), 99.0),
            "brightness": float(clip.frames.mean()), "speed_px_s": float(np.mean(speeds)),
            "decoded_frames": clip.num_frames, "prompt": rec["prompt"],
        })
    return rows


# ------------------------------------------------------------------------------- 2. generate
def demo_credentials(out: Path, seed: int = 0):
    """Throw-away demo credentials under `out` (never the user's): a CA, a signer, a watermark key.
    A rerun keeps the ones an earlier run made, so a `ca.pem` the user took from it still verifies
    the new outputs; damaged or incomplete ones are made again. The watermark key is derived from
    `seed`: the mark changes the pixels, so a random key gave every fresh demo other scores and
    detector readings for the same --seed (a demo key is no secret)."""
    import hashlib

    from evalkit.errors import EvalkitError
    from evalkit.provenance.credentials import default_paths, init_keys, load_watermark_key
    from evalkit.provenance.signers import load_signer

    keys = default_paths(out / "credentials")
    signer = None
    try:
        if keys.ca_cert.is_file():
            signer = load_signer(keys.signer_cert, keys.signer_key)
    except (EvalkitError, OSError, ValueError):
        signer = None
    if signer is None:
        keys = init_keys(dir=out / "credentials", org="evalkit demo", force=True)
        signer = load_signer(keys.signer_cert, keys.signer_key)
    secret = hashlib.sha256(f"evalkit demo watermark key, seed {seed}".encode()).hexdigest() + "\n"
    fd = os.open(keys.watermark_key, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
    return keys, signer, load_watermark_key(keys.watermark_key)


def default_generator(spec: str, options: dict | None = None):
    """(generator, note): `spec`, or, when it is the default `uvit:small` and no trained weights
    for it exist yet, the best shipped checkpoint with a note saying so."""
    from generators.base import get_generator

    try:
        return get_generator(spec, **(options or {})), None
    except MissingResourceError:
        if spec != DEFAULT_GENERATOR:
            raise
        return (get_generator(FALLBACK_GENERATOR, **(options or {})),
                f"{spec}: no trained weights shipped or under $EVALKIT_HOME/models yet; using the shipped "
                f"checkpoint {FALLBACK_GENERATOR}, the best so far (not yet at its quality targets)")


def generate_signed(gen, reference: Path, out: Path, *, n: int, seed: int, signer, wm_key,
                    progress: bool) -> tuple[Path, list[dict]]:
    """`n` clips of `gen` for the first `n` prompts of the reference world folder, each signed
    (C2PA) and watermarked in place as it is written (`protect_file`). The prompts are kept in
    out/prompts.txt."""
    from evalkit.provenance.protect import protect_file
    from generators.base import generate_folder, load_prompts

    prompts_file = out / "prompts.txt"
    prompts_file.write_text("".join(r["prompt"] + "\n" for r in read_index(reference)[:n]), encoding="utf-8")
    folder = out / "generated"
    shutil.rmtree(folder, ignore_errors=True)  # inside the demo's own folder
    records = generate_folder(
        gen, load_prompts(str(prompts_file)), folder, seed=seed, progress=progress,
        postprocess=lambda path, rec: protect_file(path, rec, sign=True, watermark=True, signer=signer,
                                                   wm_key=wm_key))
    return folder, records


# ------------------------------------------------------------------------------- 4. detector
def load_default_detector():
    """(detector or None, why not)."""
    try:
        from detectors import load_detector

        return load_detector(), None
    except MissingResourceError as e:
        return None, str(e)
    except Exception as e:  # noqa: BLE001  a broken detector must not stop the demo; it is reported
        return None, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"


def run_detector(det, generated: Path, real: Path, n_real: int) -> dict:
    """p(generated) and decision for every generated clip and the first `n_real` real clips."""
    rows = []
    for label, folder, limit in (("generated", generated, None), ("real", real, n_real)):
        clips = list(iter_clips(folder))[:limit]
        for clip, p in zip(clips, det.predict(clips)):
            note = det.domain_note(clip) if callable(getattr(det, "domain_note", None)) else None
            rows.append({"id": clip.meta["record"]["id"], "truth": label, "p_generated": float(p),
                         "decision": det.decide(float(p), note) if note else det.decide(float(p))})
    gen = [r for r in rows if r["truth"] == "generated"]
    real_rows = [r for r in rows if r["truth"] == "real"]
    # a detector also answers `uncertain` (p between the real and the generated thresholds)
    return {"name": det.name, "threshold": float(det.threshold), "rows": rows,
            "caught": sum(r["decision"] == "generated" for r in gen), "n_generated": len(gen),
            "uncertain_generated": sum(r["decision"] == "uncertain" for r in gen),
            "false_alarms": sum(r["decision"] == "generated" for r in real_rows), "n_real": len(real_rows),
            "uncertain_real": sum(r["decision"] == "uncertain" for r in real_rows)}


def detection_line(d: dict) -> str:
    """One line: what the detector called the generated and the real clips."""
    return (f"{d['name']} (threshold {d['threshold']:.3f}): generated clips called generated {d['caught']}/"
            f"{d['n_generated']}, uncertain {d['uncertain_generated']}/{d['n_generated']}; real world clips "
            f"called generated {d['false_alarms']}/{d['n_real']}, uncertain {d['uncertain_real']}/{d['n_real']}")


def format_detection(d: dict) -> str:
    lines = [f"detector {detection_line(d)}"]
    lines += [f"  {r['truth']:<9} {r['id']:<22} p_generated {r['p_generated']:.3f} -> {r['decision']}"
              for r in d["rows"]]
    return "\n".join(lines)


# --------------------------------------------------------------------------------- 5. verify
def flip_mdat_byte(src: Path, dst: Path) -> Path:
    """A copy of `src` with one byte of the media payload (the `mdat` box) inverted: the pixels
    change, the manifest does not, so its hash of the media no longer matches."""
    data = bytearray(Path(src).read_bytes())
    pos = 0
    while pos + 8 <= len(data):  # the top-level ISO BMFF boxes: [size:4][type:4] ...
        size, kind, hdr = int.from_bytes(data[pos:pos + 4], "big"), bytes(data[pos + 4:pos + 8]), 8
        if size == 1:
            size, hdr = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = len(data) - pos
        if kind == b"mdat" and size > hdr:
            data[pos + hdr + min(64, (size - hdr) // 2)] ^= 0xFF
            dst.write_bytes(bytes(data))
            return dst
        if size < hdr:
            break
        pos += size
    raise ValueError(f"{src}: no media payload (mdat box) found")


def verify_three(signed_src: Path, folder: Path, *, trust, wm_key, detector=None) -> dict[str, dict]:
    """Verify a signed clip, a tampered copy (one mdat byte flipped) and a stripped copy (remuxed
    without re-encoding: the C2PA manifest is gone, the watermark in the pixels stays); the
    results go to FOLDER/verify.json and the investigator's page FOLDER/verify.html."""
    from evalkit.provenance.verify import verify_file
    from evalkit.video import remux

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = {"signed": folder / "signed.mp4", "tampered": folder / "tampered.mp4",
             "stripped": folder / "stripped.mp4"}
    shutil.copyfile(signed_src, files["signed"])
    flip_mdat_byte(files["signed"], files["tampered"])
    remux(files["signed"], files["stripped"])
    results = {k: verify_file(p, trust=trust, wm_key=wm_key, detector=detector) for k, p in files.items()}
    (folder / "verify.json").write_text(json.dumps(results, indent=1, default=str), encoding="utf-8")
    from reports.verification import write_verification_report

    write_verification_report(folder / "verify.html", list(results.values()))
    return results


def verdict_line(kind: str, r: dict) -> str:
    prov, wm = r["provenance"], r["watermark"]
    bits = [f"manifest {prov['state']}" + (f" ({', '.join(prov['failures'])})" if prov["failures"] else "")]
    if wm.get("checked"):
        how = ", the payload the manifest names" if wm.get("method") == "known payload" else ""
        bits.append(f"watermark {'detected' if wm['detected'] else 'not found'} (p={wm['p_value']:.1e}{how})")
    reg = wm.get("registry") or {}
    if reg.get("found"):
        bits.append(f"registry: signed as {reg.get('signed_file')}, picture {reg['content']}")
    det = r.get("detector") or {}
    if det.get("p_generated") is not None:
        bits.append(f"detector p={det['p_generated']:.2f}")
    return f"{kind:<9} {Path(r['file']).name:<13} -> {r['verdict']}: {', '.join(bits)}"


# ---------------------------------------------------------------------------------- 6. bench
def bench(models: list[str], out: Path, *, max_prompts: int | None, generator_options: dict | None,
          progress: bool, say) -> list:
    """`run_suite` of world-v1 over each model (each its own MLflow run; cached and resumable
    under $EVALKIT_HOME, a complete run with the same key is returned as is)."""
    from benchmarks.runner import run_suite
    from benchmarks.suite import load_suite

    suite = load_suite(SUITE)
    total = len(suite.select(max_prompts)) * suite.samples_per_prompt
    results = []
    for spec in models:
        t = time.perf_counter()
        opts = generator_options if spec.startswith("uvit:") else None
        res = run_suite(suite, spec, out_dir=out, max_prompts=max_prompts, generator_options=opts,
                        progress=progress, on_clip=_clip_counter(spec, total, t, say))
        fvd = res.metrics.get("fvd", {})
        fvd_text = f", fvd {fvd['value']:.4g}" if fvd.get("value") is not None else ""
        say(f"{spec:<20} {res.status:<9} run {res.run_id}  {time.perf_counter() - t:.0f} s{fvd_text}")
        results.append(res)
    return results


def _clip_counter(spec: str, total: int, t0: float, say, every_s: float = 15.0):
    """Where no progress bar shows (output not a terminal): a line of newly generated clips at
    most every `every_s` seconds while a model generates slowly."""
    if sys.stderr.isatty():
        return None
    state = {"done": 0, "said": t0}

    def on_clip(_record):
        state["done"] += 1
        now = time.perf_counter()
        if now - state["said"] >= every_s and state["done"] < total:
            state["said"] = now
            say(f"{spec}: {state['done']}/{total} clips generated ({now - t0:.0f} s)")
    return on_clip


def bench_warnings(results) -> list[str]:
    seen: list[str] = []
    for res in results:
        for w in res.warnings:
            if w not in seen and not w.startswith("FVD from N="):
                seen.append(w)
    return seen


# --------------------------------------------------------------------------------- 7. report
def leaderboard_and_report(out: Path) -> tuple:
    """(leaderboard frame, its table text, the HTML report's path)."""
    from reports import write_text_atomic
    from reports.html import suite_report
    from reports.leaderboard import format_leaderboard, leaderboard

    df = leaderboard(SUITE)
    text = format_leaderboard(df, "table")
    path = write_text_atomic(out / "report.html", suite_report(df))
    return df, text, path
