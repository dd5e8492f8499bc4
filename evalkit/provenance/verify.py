"""Verify a video's provenance: C2PA manifest, invisible watermark, detector; and a verdict.

    result = verify_file("suspect.mp4", trust=["ca.pem"], wm_key=load_watermark_key(embedding=False))
    result["provenance"]["state"]    # absent | invalid | valid | trusted
    result["verdict"], result["reasons"]

`verify_file` returns the object of `evalkit verify --json` (DESIGN.md) and never raises for the
file: a missing, empty, truncated or hostile file gives `readable: false` and a one-line
`error`, or provenance state `invalid` with failure codes. It raises (`EvalkitError`, one line)
only for a bad `trust` file, before looking at any video.

Provenance states (c2pa-python `Reader` with a `Context` whose settings never fetch anything:
no remote manifests, no OCSP):

* `absent`: no C2PA manifest (`ManifestNotFound`, or a format c2pa does not read).
* `invalid`: a manifest that fails validation: `failures` lists the C2PA codes, e.g.
  `assertion.bmffHash.mismatch` when the media bytes of an MP4 changed after signing
  (`assertion.dataHash.mismatch` for formats hashed by byte range), `signingCredential.invalid`,
  `claimSignature.mismatch`; a C2PA box that c2pa cannot parse at all gives
  `evalkit.manifest.unreadable` (an evalkit code) with the reason in `error`.
* `valid`: intact and correctly signed, but the signer does not chain to a trust anchor you
  gave; `failures` then holds `signingCredential.untrusted`.
* `trusted`: valid, and the chain anchors in one of the `trust` PEM files. No anchor is built
  in: without `trust` nothing is trusted.

The verdicts, and which signals give each: `evalkit.provenance.verdict`. `watermark` adds
`checked` (a key was given and the video decoded) and `key_id`; `checked_part` is None, or for a
video over the decode budget (`VideoLimits`) the part the watermark and detector read: its first
`frames_read` frames, each reduced `shrink` times (`evalkit.video.read_for_checks`); `provenance` adds
`claim_generator`, `generation`, `soft_binding` and `training_mining` when present.

Where the manifest lives (`provenance.manifest_source`): `embedded` in the file; `sidecar`, a
`.c2pa` manifest store beside the file (same stem) or given as `manifest=` (`--manifest`), read
when the file embeds none; `remote`, fetched from the URL the file names (XMP
`dcterms:provenance`), only with `fetch_remote=True` (`--fetch-remote`). A file that names a
remote manifest which was not read stays `absent`, with `provenance.remote_url` and a reason
that says how to read it.

History (`evalkit.provenance.manifest_history`): a video edited and signed again by a C2PA tool
carries its earlier manifests as ingredients. `provenance.ingredients` lists them (title,
relationship, their own signer, source type, generator, actions and the failures c2pa recorded
when each was added; nested), and `provenance.ai_origin` names the nearest one that declares an
AI source type. An edit whose own manifest states no source type is then `ai-generated
(signed)` (an edit of a parent that says AI) or `ai-composite (signed)` (a component that says
AI), with a reason naming the ingredient and its signer; a capture claim over AI history is
`conflicting signals`. Where the active manifest has no evalkit soft binding, the nearest parent's
is the one the watermark read is matched against (`soft_binding.from_ingredient`).

The detector (`detector=`; `evalkit verify` passes the default one from `detectors`) is
optional; without one the `detector` object keeps its keys with null values and a reason says so. A detector is a
callable `f(clip) -> P(generated)` (an `evalkit.clip.Clip`), or an object with a
`p_generated(clip)` method; its `name` and `threshold` (default 0.5) attributes are reported.

Exit codes for `evalkit verify` (`verify_exit_code`): 0 every file verified without a failed
check; 1 some file is `tampered` or has `conflicting signals`; 2 some file is unreadable.
"""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import (EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_MISSING, EXIT_OK, BadInputError, MissingResourceError,
                            os_path, path_is, special_file, special_file_message)
from evalkit.provenance.c2pa import _one_line
from evalkit.provenance.manifest_build import CAPTURE_SOURCE_TYPES
from evalkit.provenance.manifest_read import (HASH_MISMATCH_CODES, UNREADABLE_MANIFEST, _context,  # noqa: F401
                                              _empty_provenance, load_trust, read_provenance)
from evalkit.provenance.verdict import (FAILED_VERDICTS, INCOMPLETE, VERDICTS,  # noqa: F401
                                        decide, source_type_name)
from evalkit.bmff import too_many_boxes
from evalkit.provenance.verify_words import (below_threshold_note, issuer_not_anchored, other_mark, read_edits,
                                             read_fields)
from evalkit.safe_text import printable


# Below this short side the mark's 88 information bits barely fit (README: 32x32 clips lose the
# payload after CRF 30), so a blind miss there says little.
RELIABLE_WATERMARK_PX = 64


# ---------------------------------------------------------------------------------------------
# Watermark and detector


def _no_watermark(key_id=None) -> dict:
    return {"detected": False, "payload": None, "p_value": 1.0, "bit_confidence": 0.0,
            "matches_manifest": None, "checked": False, "key_id": key_id, "edits": [], "method": None,
            "registry": None}


def _no_detector() -> dict:
    return {"p_generated": None, "name": None, "threshold": None}


def _detector_name(detector) -> str:
    return str(getattr(detector, "name", None) or getattr(detector, "__name__", None)
               or type(detector).__name__)


def _run_detector(detector, clip) -> tuple[dict, str | None]:
    threshold = float(getattr(detector, "threshold", 0.5))
    fn = getattr(detector, "p_generated", None)
    fn = fn if callable(fn) else detector
    try:
        p = float(fn(clip))
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"returned {p}, not a probability")
    except Exception as e:  # noqa: BLE001  a detector failure is reported, not raised
        return ({"p_generated": None, "name": _detector_name(detector), "threshold": threshold},
                f"the detector failed ({_one_line(e, 120)})")
    out = {"p_generated": p, "name": _detector_name(detector), "threshold": threshold}
    if callable(getattr(detector, "domain_note", None)):  # evalkit detectors know what they cannot judge
        out["out_of_domain"] = detector.domain_note(clip)
    if callable(getattr(detector, "decide", None)):  # evalkit detectors also abstain: real/uncertain/generated
        out["decision"] = (detector.decide(p, out["out_of_domain"]) if "out_of_domain" in out
                           else detector.decide(p))
    if getattr(detector, "real_below", None) is not None:  # the other cut-off, said beside the threshold
        out["real_below"] = float(detector.real_below)
    return out, None


# ---------------------------------------------------------------------------------------------
# The entry point


def verify_file(path, trust=None, wm_key=None, detector=None, *, limits=None, manifest=None,
                fetch_remote: bool = False, fragments=None, registry=None, wm_key_problem=None) -> dict:
    """The `evalkit verify --json` object for one file (see the module docstring).

    `trust`: trust-anchor PEM paths (or the text `load_trust` returned); `wm_key`: a
    `WatermarkKey` or secret (None: the watermark is not checked; the CLI passes
    `load_watermark_key(required=False)`); `detector`: see the module docstring; `limits`: the
    `VideoLimits` for decoding; `manifest`: a `.c2pa` manifest store for this file (a sidecar,
    or a downloaded copy of its remote manifest); `fetch_remote`: fetch a remote manifest the
    file names (the only network access verify ever makes); `fragments`: the media segments of
    a fragmented stream whose init segment is `path` (files, folders or globs;
    `evalkit.provenance.fragments`); `registry`: the soft-binding registry's folder (default
    `registry.registry_dir()`), where a payload read from a video without a manifest is looked up;
    `wm_key_problem`: why the default watermark key could not be used (`wm_keys.watermark_key_for_reading`),
    said as the reason the watermark was not checked."""
    from contextlib import ExitStack

    path = os_path(path, "verify_file")
    with ExitStack() as stack:
        return _verify_file(path, trust, wm_key, detector, limits, manifest, fetch_remote, fragments, stack,
                            registry, wm_key_problem)


def _is_manifest_store(path: Path) -> bool:
    """A C2PA manifest store (`.c2pa`) is one JUMBF superbox: a 4-byte size, then `jumb`."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return len(head) == 8 and head[4:] == b"jumb"


def _verify_file(path, trust, wm_key, detector, limits, manifest, fetch_remote, fragments, stack,
                 registry=None, wm_key_problem=None) -> dict:
    from evalkit.errors import EvalkitError as _E
    from evalkit.provenance import fragments as fr
    from evalkit.provenance import watermark as wmmod
    from evalkit.video import VideoLimits, probe_video, read_for_checks

    anchors = trust if isinstance(trust, str) and "-----BEGIN" in trust else load_trust(trust)
    if manifest is not None and not Path(manifest).is_file():
        raise (BadInputError(f"{manifest}: is not a file; give the .c2pa manifest store of {path}")
               if Path(manifest).exists() else
               MissingResourceError(f"{manifest}: no such manifest file; give the .c2pa manifest store of {path}"))
    if manifest is not None and not _is_manifest_store(Path(manifest)):
        # The user's own input, not evidence about the video: a wrong file is not "tampered".
        raise BadInputError(f"{manifest}: not a C2PA manifest store (it does not start with a JUMBF box); "
                            f"give the .c2pa manifest store of {path}")
    key = wmmod.make_key(wm_key) if wm_key is not None else None
    p = Path(path)
    out = {"file": str(path), "readable": False, "error": None, "provenance": _empty_provenance(),
           "watermark": _no_watermark(key.fingerprint if key else None), "detector": _no_detector(),
           "verdict": "unreadable", "reasons": [], "checked_part": None}
    notes: list[str] = []
    is_file = path_is(p, "file")  # a name the OS refuses: read below, where it becomes this file's error
    kind = fr.segment_kind(p) if is_file else None  # a piece of a DASH/HLS stream, or None
    if fragments is not None:  # a fragmented stream: checked as a whole, or refused before any work
        if manifest is not None:
            raise BadInputError(f"--manifest {manifest}: not with --fragments; a stream's manifest is in its "
                                "init segment")
        if not is_file:
            raise (BadInputError(f"{p}: is not a file; give the stream's init segment") if p.exists() else
                   MissingResourceError(f"{p}: no such file; check the path of the stream's init segment"))
        if kind != "init":
            raise BadInputError(f"{p}: is not the init segment of a fragmented stream (ftyp + moov with mvex, "
                                "no frames); give --fragments only with a stream's init segment")
        fragments = fr.expand_fragments(fragments, init=p)

    # 1. the file itself (a stream: its segments joined, as a player is fed them)
    try:
        if not p.exists():
            out["missing"] = True  # a path that is not there: exit 3, as every command
            raise _E(f"{p}: no such file; check the path")
        if p.is_dir():
            raise _E(f"{p}: is a directory, not a video file")
        what = special_file(p)
        if what:  # a FIFO blocked verify for good (session 33)
            raise _E(special_file_message(p, what))
        if fragments is None and kind == "init":
            raise _E(fr.init_only_message(p))
        if kind == "media":
            raise _E(fr.media_only_message(p))
        media = stack.enter_context(fr.joined_stream(p, fragments)) if fragments else p
        crowded = too_many_boxes(media)
        if crowded:  # a hostile structure: unreadable, not "tampered" (it may carry no manifest at all)
            raise _E(crowded)
        need_frames = key is not None or detector is not None
        clip, part = read_for_checks(media, limits=limits) if need_frames else (None, None)
        if part:
            out["checked_part"] = part
            most = (limits or VideoLimits.from_env()).max_frames
            over = ("longer than the frame limit (EVALKIT_MAX_FRAMES)" if (part["frames"] or 0) > most
                    else "larger than the decode budget")
            readers = " and the ".join(x for x, used in (("watermark", key is not None),
                                                          ("detector", detector is not None)) if used)
            notes.append(f"The video is {over}, so the {readers} read its "
                         f"first {part['frames_read']} frames"
                         + (f" of {part['frames']}" if part["frames"] else "")
                         + (f", reduced {part['shrink']}x" if part["shrink"] > 1 else "") + ".")
        if clip is None:  # nothing to decode: is it a video at all? (its length is no reason to refuse it)
            head = probe_video(media, limits=limits, check=False)
            if head.width <= 0 or head.height <= 0:
                raise _E(f"{p}: header gives no frame size ({head.width}x{head.height}); re-encode the file")
        out["readable"] = True
    except _E as e:
        out["error"], clip = str(e), None
    except Exception as e:  # noqa: BLE001  never a traceback for a hostile file
        out["error"], clip = f"{p}: cannot be read ({_one_line(e)})", None

    # 2. the manifest (also for files that do not decode: a signed picture, a damaged video)
    if fragments:
        prov, out["fragments"], err = fr.read_fragmented_provenance(p, fragments, anchors)
        out["provenance"] = prov
        if err and out["error"] is None:
            out["error"] = err
    elif is_file:
        prov, err = read_provenance(p, anchors, manifest=manifest, fetch_remote=fetch_remote)
        out["provenance"] = prov
        if err and out["error"] is None:
            out["error"] = err
    note = issuer_not_anchored(out["provenance"], anchors)
    if note:
        notes.append(note)

    # 3. the watermark
    if key is None and wm_key_problem:
        notes.append(f"The watermark was not checked: the default watermark key file could not be used "
                     f"({wm_key_problem}); fix it, or give the key used to sign with --watermark-key.")
    elif key is None:
        notes.append("No watermark key given, so the watermark was not checked (give the key used to sign "
                     "with --watermark-key, or run `evalkit keys init`).")
    elif clip is not None:
        geometry: dict = {}
        try:
            d = wmmod.detect(clip.frames, key)
            geometry = d.geometry
            out["watermark"] = {**read_fields(d), "matches_manifest": None, "checked": True,
                                "key_id": key.fingerprint, "method": "blind",
                                "edits": read_edits(d, clip.frames), "registry": None}
            note = below_threshold_note(out["watermark"], key.fingerprint, registry)
            if note:
                notes.append(note)
        except Exception as e:  # noqa: BLE001
            notes.append(f"The watermark check failed ({_one_line(e, 120)}).")
        sb = out["provenance"].get("soft_binding")
        wm = out["watermark"]
        expected = wm["checked"] and sb and sb.get("payload") and \
            (not sb.get("key_id") or sb["key_id"] == key.fingerprint)
        if expected and not wm["detected"]:
            # the manifest names the payload: test that one hypothesis (no union over payloads)
            try:
                from evalkit.provenance.wm_confirm import confirm_payload

                c = confirm_payload(clip.frames, key, bytes.fromhex(sb["payload"]))
                if c.detected:
                    wm = out["watermark"] = {**c.to_dict(), "matches_manifest": True, "checked": True,
                                             "key_id": key.fingerprint, "method": "known payload", "edits": [],
                                             "blind_p_value": wm["p_value"]}
            except Exception as e:  # noqa: BLE001  a hostile soft binding must not become a traceback
                notes.append(f"The manifest's watermark payload could not be tested ({_one_line(e, 120)}).")
        if expected and wm["detected"] and wm["payload"]:
            wm["matches_manifest"] = wm["payload"] == sb["payload"]
        capture = out["provenance"]["digital_source_type"] in CAPTURE_SOURCE_TYPES
        if wm["detected"] and wm["payload"] and (wm["matches_manifest"] is not True or capture) \
                and out["provenance"]["state"] in ("absent", "valid", "trusted"):
            # no manifest that binds this payload (none, or one signed without or against it): the
            # soft-binding registry may hold the manifest it was signed with, and the picture it was
            # marked on (a copied mark sits on another picture). A capture claim that binds the
            # mark is looked up too: an AI clip's mark re-signed as a capture is registered as AI.
            from evalkit.provenance.registry import resolve

            try:
                wm["registry"] = resolve(wm["payload"], key.fingerprint, clip.frames, geometry, registry)
            except Exception as e:  # noqa: BLE001  a damaged registry must not become a traceback
                notes.append(f"The soft-binding registry could not be read ({_one_line(e, 120)}).")
            reg = wm.get("registry") or {}
            part = reg.get("frames")
            if part or (reg.get("found") and reg.get("content") != "match" and clip.num_frames >= 32):
                # the marked clip is a part of this video, or no part matches the registered picture
                # (half of one marked clip joined to half of another: each half is only part of its
                # registered picture; a capture's half laundered an AI half, session 31): is another
                # mark in the rest?
                other = other_mark(clip.frames, part or (0, 0), key, wm["payload"])
            else:
                other = None
            if other:
                from evalkit.provenance.registry import lookup

                rec = lookup(other["payload"], key.fingerprint, registry)
                other["registered_source_type"] = ((rec or {}).get("manifest") or {}).get("digital_source_type")
                other["registered"] = rec is not None
                wm["other_marks"] = [other]
                notes.append(f"Frames {other['frames'][0]}-{other['frames'][1] - 1} carry another evalkit mark "
                             f"(payload {other['payload']}, p-value {other['p_value']:.1e}): two marked videos "
                             "were joined; verify that stretch alone for its registration.")
        h, w = clip.frames.shape[1:3]
        if wm["checked"] and not wm["detected"] and min(h, w) < RELIABLE_WATERMARK_PX:
            notes.append(f"At {w}x{h} the frames are below the size the watermark is reliable at "
                         f"({RELIABLE_WATERMARK_PX} px), so a mark may be missed: weak evidence of no mark.")
    else:
        notes.append("The watermark was not checked: the video could not be decoded.")

    # 4. the detector
    if detector is not None and clip is not None:
        out["detector"], derr = _run_detector(detector, clip)
        if derr:
            notes.append(derr)
    elif detector is not None:
        out["detector"] = {"p_generated": None, "name": _detector_name(detector),
                           "threshold": float(getattr(detector, "threshold", 0.5))}
        notes.append("The detector was not run: the video could not be decoded.")
    del clip

    out["verdict"], out["reasons"] = decide(out["readable"], out["provenance"], out["watermark"],
                                            out["detector"], notes)
    if out.get("missing"):
        out["reasons"] = ["There is no such file (check the path)."]
    elif fragments:
        out["reasons"].insert(0, _stream_text(out["fragments"], len(fragments)))
    elif kind == "init":  # its manifest hashes segments that were not given: neither intact nor tampered
        out["verdict"] = INCOMPLETE
        signer = out["provenance"]["signer"]
        out["reasons"] = [("It carries a C2PA manifest" + (f" signed by {signer}" if signer else "")
                           + ", which covers the media segments too, so it cannot be checked alone."
                           if out["provenance"]["state"] != "absent" else "It carries no C2PA manifest."),
                          "Give the stream's media segments with --fragments (files, a folder or a quoted glob)."]
    return out


def _stream_text(per: list[dict], n_segments: int) -> str:
    text = f"Read as a fragmented stream: the init segment and {n_segments} media segment" + \
        ("s" if n_segments != 1 else "")
    if not per:  # no manifest to check them against: the frames were still read
        return text + " (no manifest to check them against)."
    bad = [Path(s["file"]).name for s in per if s["state"] == "invalid"]
    if not bad:
        return text + ", each checked against the manifest."
    return text + f"; {len(bad)} failed against the manifest: {', '.join(bad[:8])}" + (" ..." if len(bad) > 8 else "") + "."


def verify_exit_code(results: list[dict]) -> int:
    """0 all verified without a failed check; 1 a file is tampered or has conflicting signals;
    2 a file is unreadable (takes precedence), also where its manifest still gave a verdict (an
    audio-only MP4 signed as a video: its verdict and an error line printed, exit 0 before session
    33); 3 a file is not there (before all)."""
    if any(r.get("missing") for r in results):
        return EXIT_MISSING
    if any(r.get("verdict") in ("unreadable", INCOMPLETE)
           or (r.get("readable") is False and r.get("verdict") not in FAILED_VERDICTS) for r in results):
        return EXIT_BAD_INPUT
    if any(r.get("verdict") in FAILED_VERDICTS for r in results):
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _history_lines(history: list[dict], indent: str = "    ") -> list[str]:
    out = [] if indent != "    " or not history else ["  history:"]
    for n in history:
        kind = source_type_name(n["digital_source_type"]) if n.get("digital_source_type") else "no source type"
        out.append(f"{indent}{n['relationship']} '{n['title']}': {kind}"
                   + (", edited with AI" if n.get("ai_edits") else "")
                   + (f", signed by {n['signer']}" if n.get("signer") else ", no manifest" if not n.get("manifest") else "")
                   + (f", failed: {', '.join(n['failures'])}" if n.get("failures") else ""))
        out += _history_lines(n.get("ingredients") or [], indent + "  ")
    return out


def format_result(r: dict) -> str:
    """One human-readable block for `evalkit verify` without --json."""
    prov, wm = r["provenance"], r["watermark"]
    lines = [f"{r['file']}: {r['verdict']}"]
    if r["error"]:
        lines.append(f"  error: {r['error']}")
    lines.append(f"  provenance: {prov['state']}" + (f" ({', '.join(prov['failures'])})" if prov["failures"] else "")
                 + (f", signer {prov['signer']}" if prov["signer"] else ""))
    ident = prov.get("identity")
    if ident:
        lines.append(f"  identity: CAWG, {ident['state']}" + (f" ({', '.join(ident['failures'])})" if ident["failures"] else ""))
    if wm["checked"]:
        if wm["detected"] or not wm.get("payload_below_threshold"):
            lines.append(f"  watermark: {'detected' if wm['detected'] else 'not found'}"
                         + (f", payload {wm['payload']}" if wm["payload"] else "")
                         + f", p-value {wm['p_value']:.1e}")
        else:  # bits that decode, from a read too weak to count: not a payload found
            from evalkit.provenance.wm_scheme import DEFAULT_P_THRESHOLD

            lines.append(f"  watermark: not found (best read p {wm['p_value']:.1e}, above the {DEFAULT_P_THRESHOLD:.0e} "
                         f"threshold; its bits decode to {wm['payload_below_threshold']})")
        reg = wm.get("registry")
        if reg and reg["found"]:
            lines.append(f"  registry: {reg['record']}: content {reg['content']}"
                         + (f" (difference {reg['difference']:.2f})" if reg.get("difference") is not None else ""))
        lines += [f"    edit: {e}" for e in wm.get("edits", [])]
    lines += _history_lines(prov.get("ingredients") or [])
    lines += [f"  - {x}" for x in r["reasons"]]
    # The manifest's strings are the signer's to choose: none may start a line of its own.
    return "\n".join(printable(x) for x in lines)


__all__ = ["verify_file", "read_provenance", "load_trust", "verify_exit_code", "format_result",
           "VERDICTS", "HASH_MISMATCH_CODES", "UNREADABLE_MANIFEST"]
