"""The signed result bundle of a bench run, and `evalkit bench verify`.

`bundle.json` says what was measured and how: the suite (name, hash and its full canonical
content, so the run can be re-derived from the bundle alone), the model spec, weights hash and
generation settings, every clip's id, prompt, part, seed and SHA-256, the reference set's
digest, every metric with its CI and N, the evalkit version and git commit, and the environment.

`bundle.sig` signs the bundle's canonical JSON bytes (sorted keys, no whitespace: see
`benchmarks.suite.canonical_json`) with the project's ES256 key, and carries the certificate
chain (leaf first). Verification checks the signature against the leaf, the chain's links, and,
given trust anchors, that the chain ends at one of them; then each clip's SHA-256, and on request
recomputes the quality metrics from the clips and compares them exactly (they are deterministic).
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from pathlib import Path

from benchmarks.suite import canonical_json
from evalkit import video_rgb
from evalkit.errors import (
    EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_MISSING, EXIT_OK, BadInputError, EvalkitError, MissingResourceError,
)

FORMAT = "evalkit-bench-bundle-v1"
SIG_FORMAT = "evalkit-bench-signature-v1"
BUNDLE_FILE, SIG_FILE = "bundle.json", "bundle.sig"


def _environment() -> dict:
    from evalkit.home import machine_info

    m = machine_info()
    env = {"python": m["python"], "torch": m["torch"], "platform": m["platform"], "cpu_count": m["cpu_count"],
           "gpu": m["gpu"]}
    for mod in ("numpy", "av", "mlflow", "c2pa"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001  absent or without a version: recorded as such
            env[mod] = None
    return env


def build_bundle(suite, model: str, role: str, run_key: str, protocol: dict, max_prompts, records: list[dict],
                 reference: Path, metrics: dict, backbones: dict, run_id: str) -> dict:
    from benchmarks.run_cache import clean
    from benchmarks.runner import folder_digest
    from evalkit import __version__
    from evalkit.home import git_commit, git_dirty

    clips = [{k: r.get(k) for k in ("id", "file", "prompt", "prompt_id", "part", "sample", "seed", "sha256")}
             for r in records]
    return clean({
        "format": FORMAT,
        "suite": {"name": suite.name, "version": suite.version, "hash": suite.hash, "canonical": suite.canonical},
        "max_prompts": max_prompts, "model": model, "role": role, "run_key": run_key,
        "weights_sha256": protocol.get("weights_sha256"), "generation": protocol, "backbones": backbones,
        "seeds": {"base": suite.seed, "rule": "generators.base.sample_seed(base, prompt index, sample)"},
        "clips": clips, "reference": {"spec": suite.reference, "digest": folder_digest(reference)},
        "metrics": metrics,
        # how its intervals were drawn: set-level ones over clips in content order (session 33), and
        # by session 34's rules (`INTERVALS`)
        "scoring": {"set_order": "content", "intervals": INTERVALS, "rgb": video_rgb.CONVERSION,
                    "clip_frames": _clip_frames_now()},
        "evalkit": {"version": __version__, "git_commit": git_commit(), "git_dirty": git_dirty()},
        "environment": _environment(), "mlflow_run_id": run_id,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    from evalkit.provenance.credentials import CredentialsError, check_key_permissions

    check_key_permissions(path)
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as e:
        raise CredentialsError(f"{path}: cannot load the signing key ({type(e).__name__}); "
                               "give an unencrypted PEM key or run `evalkit keys init`") from None


def sign_bytes(data: bytes, paths) -> dict:
    """The signature document for `data`, made with the signer key of `paths` (a KeyPaths)."""
    import hashlib

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = _load_key(paths.signer_key)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise BadInputError(f"{paths.signer_key}: not an EC key; bundles are signed ES256 (P-256)")
    sig = key.sign(data, ec.ECDSA(hashes.SHA256()))
    del key
    return {"format": SIG_FORMAT, "alg": "ES256", "bundle_sha256": hashlib.sha256(data).hexdigest(),
            "signature": base64.b64encode(sig).decode("ascii"),
            "certificate_chain": paths.signer_cert.read_text(encoding="ascii")}


def write_signed_bundle(bundle: dict, folder: Path, paths) -> tuple[Path, Path]:
    """bundle.json (indented, for people) and bundle.sig in `folder`, each written atomically."""
    from evalkit.atomic import write_atomic

    sig = sign_bytes(canonical_json(bundle), paths)
    b = write_atomic(folder / BUNDLE_FILE, (json.dumps(bundle, indent=1, sort_keys=True) + "\n").encode())
    s = write_atomic(folder / SIG_FILE, (json.dumps(sig, indent=1) + "\n").encode())
    return b, s


# ---------------------------------------------------------------------------------------------
# verification


def _check_signature(data: bytes, sig: dict, trust_pem: str | None) -> tuple[list[str], dict]:
    """(problems, signer info) for the signature document `sig` over `data`."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    problems: list[str] = []
    try:
        chain = x509.load_pem_x509_certificates(sig["certificate_chain"].encode("ascii"))
        signature = base64.b64decode(sig["signature"], validate=True)
    except (KeyError, ValueError, TypeError, AttributeError):
        return ["the signature file has no readable certificate chain or signature"], {}
    leaf = chain[0]
    info = {"signer": leaf.subject.rfc4514_string(), "issuer": leaf.issuer.rfc4514_string(), "trusted": None}
    try:
        leaf.public_key().verify(signature, data, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, TypeError, AttributeError):
        problems.append("signature does not match the bundle's content (bundle or signature altered)")
    except (UnsupportedAlgorithm, ValueError) as e:  # a curve this machine's cryptography cannot use
        problems.append(f"the signing certificate's key cannot be used ({' '.join(str(e).split())[:80]})")
    now = _dt.datetime.now(_dt.timezone.utc)
    for cert in chain:
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            problems.append(f"certificate {cert.subject.rfc4514_string()} is outside its validity period")
    for child, parent in zip(chain, chain[1:]):
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
            problems.append(f"certificate chain broken: {child.subject.rfc4514_string()} is not issued by "
                            f"{parent.subject.rfc4514_string()}")
    info["intact"] = not problems  # the signature and chain check out, whoever the signer is
    if trust_pem:
        anchors = x509.load_pem_x509_certificates(trust_pem.encode("ascii"))
        top = chain[-1]

        def issued(a) -> bool:
            try:
                top.verify_directly_issued_by(a)
                return True
            except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
                return False

        info["trusted"] = any(top == a or issued(a) for a in anchors)
        if not info["trusted"]:
            problems.append("the signing certificate does not chain to the trust anchor (signed by someone else, "
                            "or give --trust with its signer's CA)")
    return problems, info


def _not_a_file(path: Path) -> str | None:
    """What stands at `path` when it is there but is no regular file ("a FIFO (named pipe)", "a
    folder"), else None. Such a clip read as "missing" (session 34), and hashing a FIFO would wait
    for a writer for ever: it is named, never opened."""
    from evalkit.errors import path_is, special_file

    return "a folder" if path_is(path, "dir") else special_file(path)


def _read(path: Path, what: str) -> dict:
    odd = _not_a_file(path)
    if odd is not None:
        raise BadInputError(f"{path}: is not a regular file: {odd}; give the bundle.json of a bench run (its "
                            f"{SIG_FILE} beside it)")
    if not path.is_file():
        raise MissingResourceError(f"{path}: no such {what}; give the bundle.json of a bench run (its "
                                   f"{SIG_FILE} beside it)")
    todo = "use the files `evalkit bench run` wrote (bundle.json and bundle.sig of the run's folder)"
    try:
        obj = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=_unique_keys,
                         parse_constant=_no_constant, parse_float=_finite_float)
    except _Hostile as e:
        raise BadInputError(f"{path}: not a valid {what}: {e}; {todo}") from None
    except RecursionError:
        raise BadInputError(f"{path}: not a valid {what}: nested too deep; {todo}") from None
    except (UnicodeDecodeError, ValueError):
        raise BadInputError(f"{path}: not a JSON {what} (damaged or cut short); {todo}") from None
    if not isinstance(obj, dict):
        raise BadInputError(f"{path}: not a JSON {what}; {todo}")
    return obj


class _Hostile(ValueError):
    """JSON that parses but that no evalkit writer makes: a key given twice (a reader that keeps
    the first value and the signature's canonical form, which keeps the last, would disagree on
    what was signed), or NaN/Infinity (not JSON, and not canonical)."""


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise _Hostile(f"the key {dup!r} is given twice")
    return dict(pairs)


def _no_constant(name):
    raise _Hostile(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    x = float(text)
    if x in (float("inf"), float("-inf")):  # 1e999: JSON, but no number a writer made (and not canonical)
        raise _Hostile(f"{text[:40]} is out of the range of a float")
    return x


def _check_structure(bundle: dict, path: Path) -> None:
    """A bundle is read before its signature is checked, so it may be anything: every field that
    verification reads must have its type, or the file is refused with the field named (a one-line
    error, never a traceback on a hostile file)."""
    def need(ok: bool, field: str, kind: str):
        if not ok:
            raise BadInputError(f"{path}: not a valid result bundle ({field} must be {kind}); use the "
                                "bundle.json that `evalkit bench run` wrote")

    suite = bundle.get("suite")
    need(isinstance(suite, dict), "suite", "an object")
    need(isinstance(suite.get("name"), str) and isinstance(suite.get("hash"), str), "suite.name and suite.hash",
         "strings")
    need(isinstance(suite.get("canonical"), dict), "suite.canonical", "an object")
    need(isinstance(bundle.get("model"), str), "model", "a string")
    need(isinstance(bundle.get("metrics", {}), dict), "metrics", "an object")
    need(isinstance(bundle.get("reference", {}), dict), "reference", "an object")
    mp = bundle.get("max_prompts")
    need(mp is None or (isinstance(mp, int) and not isinstance(mp, bool) and mp >= 1), "max_prompts",
         "null or a positive whole number")
    clips = bundle.get("clips")
    need(isinstance(clips, list), "clips", "a list")
    for i, c in enumerate(clips):
        need(isinstance(c, dict) and all(isinstance(c.get(k), str) for k in ("id", "file", "sha256")),
             f"clips[{i}]", "an object with string id, file and sha256")


def _inside(folder: Path, name: str) -> Path | None:
    """`folder / name` when it stays inside `folder` (a relative path, no `..` out of it), else None:
    a bundle names its clips, and a hostile one must not make verification read other files."""
    p = Path(name)
    if p.is_absolute() or not name:
        return None
    full = (folder / p).resolve()
    return full if full.is_relative_to(folder.resolve()) else None


# A recomputation on another machine sums in another order: BLAS threads moved FVD by 1e-8 of
# its value between 1 and 2 threads (session 33), which read as tampering. Set-level numbers are
# compared to this relative tolerance; a tampered score moves far more (and the signature holds
# the bundle's numbers anyway).
RECOMPUTE_REL_TOL = 1e-6
# KVD is a difference of large kernel sums: near 0 (a good model) its last digits moved by 5e-6
# and its bounds by 4e-5 between thread counts, whatever its size (session 33's recheck)
RECOMPUTE_ABS_TOL = 1e-4
SET_LEVEL = ("fvd", "kvd", "precision", "recall", "conditional_diversity")


# The interval rules a bundle's bounds were drawn by (session 34): no interval where every resample
# is equal (null bounds, `stats.not_estimable`), bounded means widened to the bootstrap-t. A bundle
# without it has the older intervals: zero-width for such sets, narrower for some means.
INTERVALS = "not-estimable+bootstrap-t"
# CLIPScore's frames a clip at most (every frame of a shorter clip; `clip_alignment.DEFAULT_NUM_FRAMES`,
# in the bundle's scoring since session 36): bundles before it name none and used 8
CLIP_FRAMES_BEFORE_36 = 8


def _clip_frames_now() -> int:
    from evalkit.metrics.clip_alignment import DEFAULT_NUM_FRAMES

    return DEFAULT_NUM_FRAMES


def _no_number(v) -> bool:
    """null, or NaN (a bundle written by a non-strict JSON writer): an interval that is not estimable."""
    return v is None or (isinstance(v, float) and math.isnan(v))


def _same(a, b, rel: float = 0.0) -> bool:
    if _no_number(a) or _no_number(b):
        return _no_number(a) and _no_number(b)
    try:
        x, y = float(a), float(b)
    except (TypeError, ValueError):  # a hostile bundle's "number"
        return False
    if x == y:
        return True
    return rel > 0 and math.isfinite(x) and math.isfinite(y) and \
        abs(x - y) <= rel * max(abs(x), abs(y)) + RECOMPUTE_ABS_TOL


def _index_differences(bundle: dict, folder: Path) -> list[str]:
    """Where the run folder's index.jsonl says something else of a clip than the bundle: score and
    folder: read the index, so a forged prompt or seed there must not pass under the bundle's
    signature (it did: only the clips' bytes were checked)."""
    from evalkit.clipset import INDEX, read_index

    odd = _not_a_file(folder / INDEX)
    if odd is not None:
        return [f"{folder}/{INDEX} is not a regular file: {odd}"]
    if not (folder / INDEX).is_file():
        return [f"{folder}/{INDEX} is missing"]
    try:
        recs = read_index(folder)
    except EvalkitError as e:
        return [str(e)]
    out = []
    by_id = {str(r["id"]): (n, r) for n, r in enumerate(recs, 1)}
    generation = bundle.get("generation") if isinstance(bundle.get("generation"), dict) else {}
    try:
        from benchmarks.suite import suite_from_canonical

        probes = {p.id: p.probe for p in suite_from_canonical(bundle["suite"]["canonical"]).prompts}
    except (EvalkitError, KeyError, TypeError, ValueError):
        probes = {}
    for c in bundle["clips"]:
        n, r = by_id.get(str(c["id"]), (None, None))
        if r is None:
            out.append(f"{INDEX} has no line for clip {c['id']}")
            continue
        fields = [k for k in ("file", "prompt", "seed", "sample", "prompt_id", "part")
                  if k in c and c[k] is not None and r.get(k) != c[k]]
        # what score reads beside: the physics probe (the suite's) and the generation settings
        want_probe = probes.get(c.get("prompt_id"), r.get("probe"))
        if r.get("probe") != want_probe:
            fields.append("probe")
        fields += [k for k, v in generation.items() if k in r and r[k] != v]
        if fields:
            out.append(f"{INDEX} line {n} ({c['id']}): {'/'.join(fields)} differ{'s' if len(fields) == 1 else ''} "
                       "from the bundle")
    listed = {str(c["id"]) for c in bundle["clips"]}
    out += [f"{INDEX} line {n} names clip {i}, which the bundle does not hold" for i, (n, _r) in by_id.items()
            if i not in listed]
    return out


def _project_ca() -> Path | None:
    """This machine's project CA (`evalkit keys init`'s ca.pem under EVALKIT_HOME), which signs
    the bundles `bench run` writes here: the default trust anchor, or None."""
    from evalkit.provenance.credentials import default_paths

    ca = default_paths().ca_cert
    return ca if ca.is_file() else None


def verify_bundle(bundle_path, *, clips=None, trust=None, recompute: bool = False, progress: bool = False) -> dict:
    """Check a result bundle. Returns {"ok", "exit_code", "problems": [...], "signature": {...},
    "clips": {...}|None, "recompute": {...}|None}; raises for a missing or unreadable bundle."""
    from evalkit.hashing import sha256_file

    bundle_path = Path(bundle_path)
    if bundle_path.is_dir():
        bundle_path = bundle_path / BUNDLE_FILE
    bundle = _read(bundle_path, "result bundle")
    sig = _read(bundle_path.with_name(SIG_FILE), "bundle signature")
    if bundle.get("format") != FORMAT:
        raise BadInputError(f"{bundle_path}: not an evalkit bench bundle (format {bundle.get('format')!r})")
    _check_structure(bundle, bundle_path)
    from evalkit.provenance.verify import load_trust

    anchor = Path(trust) if trust is not None else _project_ca()
    trust_pem = load_trust([anchor]) if anchor is not None else None
    problems, signer = _check_signature(canonical_json(bundle), sig, trust_pem)
    signer["anchor"] = str(anchor) if anchor is not None else None
    if anchor is None:  # intact says nothing of who signed: anyone can sign a bundle with their own key
        problems.append("no trust anchor: the signature shows the bundle is intact, not who signed it; give "
                        "--trust with the signer's CA (the project's: credentials/ca.pem of its EVALKIT_HOME)")
    report = {"bundle": str(bundle_path), "suite": bundle["suite"]["name"], "model": bundle["model"],
              "signature": {**signer, "valid": bool(signer.get("intact"))}, "clips": None, "recompute": None}

    from benchmarks.suite import suite_hash

    if suite_hash(bundle["suite"]["canonical"]) != bundle["suite"]["hash"]:
        problems.append("the embedded suite does not match the bundle's suite hash")
    if clips is not None:
        folder = Path(clips)
        if folder.exists() and not folder.is_dir():
            raise BadInputError(f"{folder}: is not a folder (--clips); give the run's folder")
        if not folder.is_dir():
            raise MissingResourceError(f"{folder}: no such folder of clips (--clips); give the run's folder")
        bad, missing, outside, odd = [], [], [], []
        for c in bundle["clips"]:
            p = _inside(folder, c["file"])
            if p is None:
                outside.append(c["id"])
            elif (what := _not_a_file(p)) is not None:  # never opened: a FIFO would block the check
                odd.append({"id": c["id"], "file": c["file"], "is": what})
            elif not p.is_file():
                missing.append(c["id"])
            elif sha256_file(p) != c["sha256"]:
                bad.append(c["id"])
        from evalkit.clipset import video_files

        listed = {p for c in bundle["clips"] if (p := _inside(folder, c["file"])) is not None}
        extra = [f.relative_to(folder).as_posix() for f in video_files(folder) if f.resolve() not in listed]
        report["clips"] = {"checked": len(bundle["clips"]), "mismatched": bad, "missing": missing,
                           "outside": outside, "not_regular": odd, "extra": extra}
        if extra:  # the bundle vouches for its clips only: a video added to the folder is not the run's
            problems.append(f"{len(extra)} video(s) in {folder} are not in the bundle: {', '.join(extra[:5])}")
        if outside:
            problems.append(f"{len(outside)} clip(s) name a file outside the run's folder (not read): "
                            f"{', '.join(outside[:5])}")
        if bad:
            problems.append(f"{len(bad)} clip(s) differ from their SHA-256 in the bundle: {', '.join(bad[:5])}")
        if missing:
            problems.append(f"{len(missing)} clip(s) missing from {folder}: {', '.join(missing[:5])}")
        if odd:
            problems.append(f"{len(odd)} clip(s) not a regular file (not read): "
                            + ", ".join(f"{o['id']} ({o['file']}) is {o['is']}" for o in odd[:5]))
        index_diffs = _index_differences(bundle, folder)
        report["clips"]["index"] = index_diffs
        if index_diffs:
            problems.append(f"the folder's index does not match the bundle: {'; '.join(index_diffs[:3])}"
                            + (f" (and {len(index_diffs) - 3} more)" if len(index_diffs) > 3 else ""))
        if recompute and not bad and not missing and not outside and not odd and not index_diffs:
            report["recompute"] = _recompute(bundle, folder, problems, progress)
    elif recompute:
        raise BadInputError("--recompute needs --clips DIR (the run's folder of clips)")
    code = EXIT_OK if not problems else EXIT_CHECK_FAILED
    return {**report, "ok": not problems, "problems": problems, "exit_code": code}


def _recompute(bundle: dict, folder: Path, problems: list, progress: bool) -> dict:
    """Score the clips again and compare every quality metric of the bundle: N exactly, the values
    and bounds to RECOMPUTE_REL_TOL (summation order differs between machines and thread counts)."""
    from benchmarks.runner import folder_digest, reference_folder, score_run
    from benchmarks.suite import suite_from_canonical
    from evalkit.clipset import read_index

    suite = suite_from_canonical(bundle["suite"]["canonical"])
    recs = read_index(folder)
    want = [(c["id"], c.get("prompt"), c.get("seed")) for c in bundle["clips"]]
    if [(r["id"], r["prompt"], r.get("seed")) for r in recs] != want:
        problems.append(f"{folder}/index.jsonl does not list the bundle's clips in its order")
        return {"checked": 0, "mismatched": []}
    reference = reference_folder(suite, suite.select(bundle.get("max_prompts")), progress)
    if folder_digest(reference) != bundle.get("reference", {}).get("digest"):
        problems.append("the re-rendered reference set differs from the run's (another video encoder build?); "
                        "FVD/KVD cannot be compared exactly")
    scoring = bundle.get("scoring") if isinstance(bundle.get("scoring"), dict) else {}
    # the clips decoded to RGB as the bundle's scores were: bundles before session 34 name no
    # conversion and were scored through swscale's fast path (up to ~1% off the exact colours)
    rgb = scoring.get("rgb", "swscale-default")
    if rgb not in video_rgb.CONVERSIONS:
        problems.append(f"the bundle's scores were computed with an RGB conversion this version lacks ({rgb!r})")
        return {"checked": 0, "mismatched": []}
    clip_frames = scoring.get("clip_frames", CLIP_FRAMES_BEFORE_36)
    if not isinstance(clip_frames, int) or isinstance(clip_frames, bool) or not 1 <= clip_frames <= 10_000:
        problems.append(f"the bundle's scoring names an unusable CLIPScore frame count ({clip_frames!r})")
        return {"checked": 0, "mismatched": []}
    with video_rgb.conversion(rgb):
        scored = score_run(suite, folder, reference, {c["id"]: c.get("part") for c in bundle["clips"]},
                           progress=progress, use_cache=False,  # a recomputation, not a cache read
                           clip_num_frames=clip_frames)  # as the bundle's clip_alignment was scored
    mismatched = []
    # bundles made before session 33 drew set-level intervals in listing order, and before session
    # 34 every interval by older rules: only their values and N can be recomputed (the bundle's
    # signature vouches for its bounds), and a note says so (they read as tampered)
    content_order = scoring.get("set_order") == "content"
    current_intervals = scoring.get("intervals") == INTERVALS
    for name, m in scored["metrics"].items():
        b = bundle.get("metrics", {}).get(name)
        bounds = ("value", "ci_low", "ci_high") if current_intervals else ("value",)
        if not isinstance(b, dict) or not _same(m["n"], b.get("n")) or \
                not all(_same(m[k], b.get(k), RECOMPUTE_REL_TOL) for k in bounds):
            mismatched.append({"metric": name, "bundle": b, "recomputed": m})

    if mismatched:
        problems.append(f"{len(mismatched)} metric(s) differ when recomputed: "
                        f"{', '.join(x['metric'] for x in mismatched[:5])}")
    out = {"checked": len(scored["metrics"]), "mismatched": mismatched}
    notes = []
    if clip_frames != _clip_frames_now():
        notes.append(f"this bundle's CLIPScore averaged {clip_frames} evenly spaced frames a clip (now every frame "
                     f"up to {_clip_frames_now()}); it was recomputed so")
    if rgb != video_rgb.CONVERSION:
        notes.append(f"this bundle's clips were decoded to RGB by {rgb} (before session 34's exact colours); "
                     "they were recomputed so")
    if not current_intervals:
        notes.append("this bundle predates " + ("session 34's intervals (every one resampled in content order, "
                     "none where every resample is equal, bounded means widened by the bootstrap-t)"
                     if content_order else "the set-level intervals in content order (session 33) and session "
                     "34's intervals") + ": its values and N were compared, not its bounds")
    if notes:
        out["note"] = "; ".join(notes)
    return out


EXIT_CODES = {"ok": EXIT_OK, "check_failed": EXIT_CHECK_FAILED, "bad_input": EXIT_BAD_INPUT, "missing": EXIT_MISSING}
