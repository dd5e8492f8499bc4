"""The per-clip safety checks of a bench run (`benchmarks.runner`): is each clip signed and its
manifest valid, does its watermark survive re-encoding, what does the default detector say; and
the run's rates over them. Each check is cached by the clip's SHA-256 and its protocol."""

from __future__ import annotations

import os
from pathlib import Path

from benchmarks.run_cache import CODE_VERSION, CheckCache, estimate_entry, sha_of
from benchmarks.suite import Suite


def project_credentials(warnings: list):
    """The project's credentials ($EVALKIT_HOME/credentials); created, as `evalkit keys init`
    would, when there are none, and said so in the run's warnings."""
    from evalkit.provenance.credentials import default_paths, init_keys

    paths = default_paths()
    if not (paths.signer_cert.is_file() and paths.signer_key.is_file()):
        init_keys()
        warnings.append(f"no signing credentials in {paths.dir}: created a development CA and signing key there "
                        f"(as `evalkit keys init`); verifiers trust them with --trust {paths.ca_cert}")
    return paths


def protector(paths):
    """Sign (C2PA) and watermark a freshly generated clip in place, as `generate --sign --watermark`."""
    from evalkit.provenance.credentials import load_watermark_key
    from evalkit.provenance.signers import load_signer
    from evalkit.provenance.protect import protect_file

    signer = load_signer(paths.signer_cert, paths.signer_key)
    wm_key = load_watermark_key(paths.watermark_key)
    return lambda path, rec: protect_file(path, rec, sign=True, watermark=True, signer=signer, wm_key=wm_key)


def load_default_detector(warnings: list):
    """The default detector of the `detectors` package (`load_detector()`: `.name`, `.threshold`,
    `.predict(clips) -> [p_generated]`), or None with a warning when it cannot be loaded."""
    try:
        from detectors import load_detector

        det = load_detector()
        return det if hasattr(det, "predict") else None
    except Exception as e:  # noqa: BLE001  an absent or broken detector must not stop a benchmark
        warnings.append(f"default detector unavailable ({' '.join(str(e).split())[:160] or type(e).__name__}); "
                        "no detector metric, per-clip p_generated/detected left null")
        return None


def _survives(path: Path, rec: dict, wm_key, crf: int) -> bool:
    """Re-encode at `crf` and decode the watermark: the right payload must come back."""
    from evalkit.provenance import watermark as wm
    from evalkit.video import read_video, write_video

    clip = read_video(path)
    tmp = path.with_name(f".{path.stem}.crf{crf}-{os.getpid()}.mp4")
    try:
        write_video(tmp, clip, crf=crf)
        d = wm.detect(read_video(tmp).frames, wm_key)
    finally:
        tmp.unlink(missing_ok=True)
    return bool(d.detected and d.payload is not None and d.payload.hex() == rec.get("watermark_payload"))


def _detector_read(detector, clip) -> dict:
    """{"p": p_generated, "note": why the clip is outside the detector's domain, or None}."""
    note = detector.domain_note(clip) if callable(getattr(detector, "domain_note", None)) else None
    return {"p": float(detector.predict([clip])[0]), "note": note}


def per_clip_checks(suite: Suite, records: list[dict], folder: Path, paths, detector, *, progress: bool) -> dict:
    """{clip id: {"signed_valid", "watermark_survives_crf<N>", "p_generated", "detected", "detector_abstains"}}."""
    from tqdm.auto import tqdm

    from evalkit.clip import Clip  # noqa: F401  (detectors take evalkit Clips)
    from evalkit.clipset import load_clip
    from evalkit.provenance.credentials import load_watermark_key
    from evalkit.provenance.verify import load_trust, verify_file

    cache = CheckCache()
    crf = suite.metrics.get("watermark", {}).get("crf")
    wm_name = f"watermark_survives_crf{crf}"
    anchors = load_trust([paths.ca_cert]) if paths.ca_cert.is_file() else None
    wm_key = load_watermark_key(paths.watermark_key, required=False, embedding=False)
    out = {}
    for rec in tqdm(records, desc="check clips", unit="clip", disable=None if progress else True):
        sha, path, row = rec["sha256"], folder / rec["file"], {}
        if "provenance" in suite.metrics and rec.get("signed"):
            proto = {"check": "c2pa-verify", "trust": sha_of(anchors or ""), "code": CODE_VERSION}
            row["signed_valid"] = cache.get(sha, proto, lambda: verify_file(path, trust=anchors)["provenance"]
                                            ["state"] in ("valid", "trusted"))
        if crf is not None and rec.get("watermark_payload") and wm_key is not None:
            proto = {"check": "watermark-survival", "crf": crf, "key": wm_key.fingerprint, "code": CODE_VERSION}
            row[wm_name] = cache.get(sha, proto, lambda: _survives(path, rec, wm_key, crf))
        if detector is not None:
            proto = {"check": "detector", "name": str(getattr(detector, "name", "?")), "domain": 1,
                     "threshold": float(detector.threshold), "weights": str(getattr(detector, "weights_sha256", ""))}
            got = cache.get(sha, proto, lambda: _detector_read(detector, load_clip(folder, rec)))
            # a clip outside the detector's domain (too small, too short) is not counted as caught
            row["p_generated"], row["detected"] = got["p"], bool(got["p"] >= detector.threshold and not got["note"])
            row["detector_abstains"] = got["note"]
        out[rec["id"]] = row
    return out


def safety_metrics(suite: Suite, checks: dict) -> dict:
    from evalkit.metrics.stats import proportion_ci

    out = {}
    crf = suite.metrics.get("watermark", {}).get("crf")
    for name, key in (("provenance_valid_rate", "signed_valid"), (f"watermark_survival_crf{crf}",
                                                                   f"watermark_survives_crf{crf}"),
                      ("detector_catch_rate", "detected")):
        vals = [c[key] for c in checks.values() if c.get(key) is not None]
        if vals:
            out[name] = estimate_entry(proportion_ci(sum(map(bool, vals)), len(vals)))
    return out
