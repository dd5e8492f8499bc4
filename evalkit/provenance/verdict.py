"""The verdict: the manifest, the watermark and the detector read together.

`verify_file` (evalkit.provenance.verify) gathers the three signals; `decide` turns them into one
verdict and the reasons that gave it.

Verdicts (the vocabulary; `reasons` are short sentences explaining which signals gave it):

* `ai-generated (signed)`: a valid/trusted manifest says trainedAlgorithmicMedia (or another
  AI source type); `ai-composite (signed)` for compositeWithTrainedAlgorithmicMedia.
* `capture (signed)`: a valid/trusted manifest says digitalCapture (a watermark it binds as its
  soft binding is its signer's own, unless the registry holds that payload as AI-generated).
* `signed (source not stated)`: valid/trusted without a digital source type (itself or through
  the parents it is an edit of). `signed (other source type)`: it states one that is neither AI
  generation nor a camera capture (an IPTC term such as screenCapture or digitalCreation, or a
  value that is not an IPTC term at all; the reasons say which).
* `invalid manifest (malformed)`: the manifest fails C2PA's rules only as written (every failure
  code is `*.malformed`, e.g. a claim v2 without actions): nothing says the media or the
  manifest changed after signing, but its claims are not vouched for.
* `tampered`: a manifest is present but invalid: the media or the manifest changed after
  signing, or the manifest is damaged.
* `invalid credential`: the media and the manifest are as signed, but the signing certificate
  is expired, revoked or otherwise invalid (`signingCredential.*` failures only): with no
  trusted time-stamp the signature cannot be tied to a time the certificate was good. Its
  claims are reported, as unvouched for.
* `conflicting signals`: a valid manifest whose soft-binding payload differs from the
  watermark found, or that claims a camera capture while carrying an evalkit watermark it does
  not bind (or that the registry holds as AI-generated); or no
  manifest and a payload the soft-binding registry (`registry`) holds for another picture (a
  mark copied onto this video, or an edit past recognition); or a capture (signed, or its mark
  registered as one) joined to a stretch that carries another mark not registered as a capture.
* `ai-generated (watermark only, manifest stripped)`: no manifest, but the evalkit watermark
  is present (the manifest was removed, e.g. by re-encoding or remuxing);
  `ai-composite (watermark only, manifest stripped)` when the registry holds the payload with a
  composite claim.
  `capture (watermark only, manifest stripped)` when the soft-binding registry holds the payload
  with a manifest that claims a camera capture (`sign --source-type capture --watermark`);
  `ai-generated (watermark only, unsigned)` when it holds the payload with no manifest at all
  (`generate --watermark` without `--sign`: nothing was stripped).
* `likely ai-generated (detector only)`: no manifest or watermark; the detector is above its
  threshold.
* `watermark trace (payload unreadable)`: no manifest, and the watermark's pattern is present
  but no payload decodes: a marked video damaged past reading, or a mark copied onto another
  video (anyone holding a marked video and its original can copy its mark); not by itself
  evidence that the video was generated. `likely ai-generated (watermark trace and detector)`
  when the detector is also above its threshold.
* `unknown`: no evidence either way. `unreadable`: neither a video nor a manifest was read.
* `incomplete (fragmented stream)`: the init segment of a DASH/HLS stream given without its
  media segments (`fragments=`), whose manifest cannot be checked alone.

Signals that disagree are named in `reasons` (AI claimed but no watermark found; manifest
stripped but watermark present; payload different from the soft binding).
"""

from __future__ import annotations

from evalkit.provenance.manifest_build import (
    AI_SOURCE_TYPES, C2PA_SOURCE_TYPE, C2PA_TERMS, CAPTURE_SOURCE_TYPES, COMPOSITE_AI_TYPES, IPTC,
    canonical_source_type,
)
from evalkit.provenance.manifest_history import MAX_DEPTH, MAX_NODES, NOT_A_FAILURE, failed_ingredients
from evalkit.provenance.manifest_read import HASH_MISMATCH_CODES, UNREADABLE_MANIFEST

CAPTURE_STRIPPED = "capture (watermark only, manifest stripped)"
COMPOSITE_STRIPPED = "ai-composite (watermark only, manifest stripped)"  # since session 33
UNSIGNED_MARK = "ai-generated (watermark only, unsigned)"  # since session 30
VERDICTS = ("ai-generated (signed)", "ai-composite (signed)", "capture (signed)",
            "signed (source not stated)", "tampered", "conflicting signals",
            "ai-generated (watermark only, manifest stripped)", "likely ai-generated (detector only)",
            "watermark trace (payload unreadable)", "likely ai-generated (watermark trace and detector)",
            "unknown", "unreadable", "incomplete (fragmented stream)", "invalid credential",
            CAPTURE_STRIPPED, "signed (other source type)", "invalid manifest (malformed)", UNSIGNED_MARK,
            COMPOSITE_STRIPPED)
FAILED_VERDICTS = ("tampered", "conflicting signals", "invalid credential", "invalid manifest (malformed)")
WATERMARK_TRACE = "watermark trace (payload unreadable)"
TRACE_AND_DETECTOR = "likely ai-generated (watermark trace and detector)"
INCOMPLETE = "incomplete (fragmented stream)"  # an init segment given without its media segments


def _binding_of(sb: dict) -> str:
    return (f"soft binding of its ingredient '{sb['from_ingredient']}'" if sb.get("from_ingredient")
            else "manifest's soft binding")


def source_type_name(dst: str) -> str:
    """An IPTC digital source type by its term; anything else quoted whole and called what it is
    (a look-alike URL ending in an IPTC term must not read as that term)."""
    if dst.startswith(IPTC):
        return dst[len(IPTC):]
    if dst.startswith(C2PA_SOURCE_TYPE) and dst[len(C2PA_SOURCE_TYPE):] in C2PA_TERMS:
        return f"{dst[len(C2PA_SOURCE_TYPE):]} (a C2PA source type)"
    return f"'{dst}' (not an IPTC digital source type)"


def _ai_edits_list(edits: list[dict]) -> str:
    """"c2pa.edited (trainedAlgorithmicMedia, by Eraser)", the first four of `ai_edits`."""
    parts = [f"{e['action']} ({source_type_name(e['digital_source_type'])}"
             + (f", by {e['agent']})" if e.get("agent") else ")") for e in edits[:4]]
    return ", ".join(parts) + (f" and {len(edits) - 4} more" if len(edits) > 4 else "")


def _ai_edits_text(edits: list[dict]) -> str:
    return f"It was edited with AI: {_ai_edits_list(edits)}."


def _made_by(prov: dict) -> str:
    if prov.get("generator"):
        return f", made by {prov['generator']}"
    if prov.get("claim_generator"):
        return f" (no generator named; the claim was written by {prov['claim_generator']})"
    return ""


def _origin_text(prov: dict, origin: dict) -> str:
    edits = [a for a in prov["actions"] if a != "None"]
    kind = source_type_name(origin["digital_source_type"])
    if origin.get("declared_by") == "ingredient":  # no manifest of its own: the holding manifest says it
        whose = f"which this manifest's ingredient record declares {kind} (it has no manifest of its own)"
    elif origin.get("ai_edits"):  # made otherwise (a capture), then retouched with AI: a composite
        whose = (f"whose own manifest (signed by {origin['signer'] or 'an unnamed signer'}) records an edit with "
                 f"AI: {_ai_edits_list(origin['ai_edits'])}")
    else:
        whose = (f"whose own manifest (signed by {origin['signer'] or 'an unnamed signer'}) declares {kind}"
                 + (f", made by {origin['generator']}" if origin["generator"] else ""))
    if origin["via"] == "parent":
        how = f"It is an edit ({', '.join(edits) or 'no actions listed'})"
        chain = "" if origin["depth"] == 1 else f" {origin['depth']} edits back"
        return f"{how} of '{origin['title']}'{chain}, {whose}."
    return f"It holds a component ('{origin['title']}') {whose}."


def _credential_only(failures: list[str]) -> bool:
    """Only the signing certificate failed (expired, revoked, invalid): nothing says the media or
    the manifest changed."""
    bad = [c for c in failures if c not in NOT_A_FAILURE]
    return bool(bad) and all(c.startswith("signingCredential.") for c in bad)


def _credential_reason(prov: dict) -> str:
    """Why the signing credential failed, in words that fit the failure: a time-stamp helps only
    a certificate that is out of its validity period now."""
    bad = [c for c in prov["failures"] if c not in NOT_A_FAILURE]
    why = prov.get("failure_explanations") or {}
    said = ", ".join(f"{c}: {why[c]}" if why.get(c) else c for c in bad)
    signer = prov["signer"] or "the signer"
    timely = any("expired" in c or "validity" in c.lower() or "expired" in str(why.get(c, "")).lower()
                 or "not yet valid" in str(why.get(c, "")).lower() for c in bad)
    if timely:
        return (f"The media matches its manifest, but the signing credential is not valid ({said}): with no "
                "trusted time-stamp the signature cannot be shown to come from a time the certificate was "
                f"good, so {signer} does not vouch for it.")
    usage = any("eku" in str(why.get(c, "")).lower() or "usage" in str(why.get(c, "")).lower() for c in bad)
    return (f"The media matches its manifest, but the signing certificate is not one C2PA accepts ({said})"
            + ("; its extended key usage is not one the C2PA certificate profile allows" if usage else "")
            + f", so {signer} does not vouch for it.")


def decide(readable: bool, prov: dict, wm: dict, det: dict, notes: list[str]) -> tuple[str, list[str]]:
    """(verdict, reasons) from what verify_file read: `prov` the manifest, `wm` the watermark,
    `det` the detector, `notes` reasons gathered on the way (the first says why the watermark was
    not checked, when it was not)."""
    state, dst = prov["state"], prov["digital_source_type"]
    sb = prov.get("soft_binding")
    # An edit states no source type of its own: the nearest parent that does says what it is.
    stated = prov.get("stated_origin") if not dst else None
    ai_claim = dst in AI_SOURCE_TYPES
    # an AI source type stated by an edit (generative fill), not by the creation: a part is AI-made
    ai_by_edit = ai_claim and prov.get("source_action", "c2pa.created") != "c2pa.created"
    ai_edits = prov.get("ai_edits") or []
    # a capture retouched with AI (a generative eraser) is a composite, not a capture
    capture_claim = (dst or (stated or {}).get("digital_source_type")) in CAPTURE_SOURCE_TYPES and not ai_edits
    reasons: list[str] = []
    p, thr = det.get("p_generated"), det.get("threshold")
    det_says_ai = p is not None and thr is not None and p >= thr and not det.get("out_of_domain")
    # The manifest leaves the origin open: none, a broken one, or one that states no source type
    # (itself or through its history).
    origin_open = (state in ("absent", "invalid")
                   or (not ai_claim and not capture_claim and not ai_edits and not prov.get("ai_origin")))

    wm_text = (f"the evalkit watermark is present (payload {wm['payload']}, p-value {wm['p_value']:.1e})"
               if wm["detected"] and wm["payload"] else
               f"an evalkit watermark is present but its payload did not decode (p-value {wm['p_value']:.1e})"
               if wm["detected"] else None)

    if not readable and state == "absent":
        verdict = "unreadable"
        reasons.append("the file could not be read as a video, and no C2PA manifest was read from it")  # (unread: none known)
    elif state == "invalid" and _credential_only(prov["failures"]):
        verdict = "invalid credential"
        reasons.append(_credential_reason(prov))
        if dst:
            reasons.append(f"Unvouched for, the manifest declares the digital source type {source_type_name(dst)}"
                           + _made_by(prov) + ".")
        if wm_text:
            reasons.append(wm_text[0].upper() + wm_text[1:])
    elif state == "invalid" and [c for c in prov["failures"] if c not in NOT_A_FAILURE] \
            and all(c.endswith(".malformed") for c in prov["failures"] if c not in NOT_A_FAILURE):
        # (an untrusted signer, the usual case for another tool's file, is not a sign of tampering)
        verdict = "invalid manifest (malformed)"
        shown = ", ".join(c for c in prov["failures"] if c not in NOT_A_FAILURE)
        reasons.append(f"The C2PA manifest breaks the standard's rules as it was written ({shown}), "
                       f"so {prov['signer'] or 'its signer'} does not vouch for its claims; no check says the media "
                       "or the manifest changed after signing.")
        if wm_text:
            reasons.append(wm_text[0].upper() + wm_text[1:])
    elif state == "invalid":
        verdict = "tampered"
        codes = ", ".join(prov["failures"]) or "no code"
        if any(c in HASH_MISMATCH_CODES for c in prov["failures"]):
            reasons.append(f"the media changed after it was signed ({codes})")
        elif UNREADABLE_MANIFEST in prov["failures"]:
            reasons.append("a C2PA manifest is present but cannot be read (damaged, or not the one manifest "
                           "store a file may carry)")
        else:
            reasons.append(f"the C2PA manifest does not validate ({codes})")
        if wm_text:
            reasons.append(wm_text[0].upper() + wm_text[1:])
    elif state in ("valid", "trusted"):
        signer = prov["signer"] or "an unnamed signer"
        if prov.get("manifest_source") == "sidecar":
            reasons.append(f"The manifest was read from the sidecar {prov['sidecar']}.")
        elif prov.get("manifest_source") == "remote":
            reasons.append(f"The manifest was fetched from {prov['remote_url']}.")
        if state == "trusted":
            reasons.append(f"Signed by {signer}, whose certificate chains to a trust anchor you gave.")
        else:
            reasons.append(f"The manifest is intact, but its signer ({signer}) is not in your trust "
                           "anchors (give --trust with the issuer's CA to trust it).")
        if prov.get("time_stamp"):
            reasons.append(f"A time-stamp authority dated the signature {prov['time_stamp']}.")
        ident = prov.get("identity")
        if ident and ident["state"] != "valid":  # a second signature, over who made it: judged apart
            reasons.append(f"It also carries a CAWG identity assertion whose credential is {ident['state']} "
                           f"({', '.join(ident['failures'])}): the identity it names is not vouched for; the "
                           "manifest's own signature is judged apart from it.")
        origin = prov.get("ai_origin")
        # an edit of AI media (through parents only) is AI media; AI parts in other media a composite
        edit_of_ai = bool(origin) and origin["via"] == "parent" \
            and origin["digital_source_type"] not in COMPOSITE_AI_TYPES
        if dst in COMPOSITE_AI_TYPES:
            verdict = "ai-composite (signed)"
        elif ai_claim and not ai_by_edit:
            verdict = "ai-generated (signed)"
        elif ai_claim or ai_edits:  # an AI edit: of AI media, still AI media; of anything else, a composite
            verdict = "ai-generated (signed)" if edit_of_ai else "ai-composite (signed)"
        elif capture_claim:
            verdict = "capture (signed)"
        elif origin:  # an edit of AI media states no source type itself: its history does
            verdict = "ai-generated (signed)" if edit_of_ai else "ai-composite (signed)"
        elif dst or stated:
            verdict = "signed (other source type)"
        else:
            verdict = "signed (source not stated)"
        if dst:
            reasons.append(f"The manifest declares the digital source type {source_type_name(dst)}"
                           + _made_by(prov) + ".")
        if ai_edits:  # (also where an edit alone states the AI type: it says why a composite)
            reasons.append(_ai_edits_text(ai_edits))
        if not dst and stated and not origin:
            reasons.append(_origin_text(prov, stated))
        if verdict == "signed (other source type)":
            reasons.append("That source type is neither AI generation nor a camera capture.")
        if prov.get("history_truncated"):
            reasons.append(f"Its history goes on past what verify reads ({MAX_DEPTH} edits deep, {MAX_NODES} "
                           "ingredients in all): an origin further back is not shown.")
        if origin and not (ai_claim and not ai_by_edit):
            reasons.append(_origin_text(prov, origin))
            if capture_claim and origin["via"] == "parent":
                verdict = "conflicting signals"
                reasons.append("The manifest claims a camera capture, but its history holds AI-generated media.")
        for bad in failed_ingredients(prov.get("ingredients") or []):
            reasons.append(f"The ingredient '{bad['title']}' did not validate when it was added "
                           f"({', '.join(bad['failures'])}).")
        if wm["matches_manifest"] is False:
            verdict = "conflicting signals"
            reasons.append(f"The watermark payload {wm['payload']} differs from the {_binding_of(sb)} "
                           f"{sb['payload']}.")
        elif wm["matches_manifest"] is True:
            reasons.append(f"The watermark payload matches the {_binding_of(sb)}.")
            if wm.get("method") == "known payload":
                reasons.append(f"Found by testing the payload the soft binding names (p-value {wm['p_value']:.1e}); "
                               f"the blind read alone did not reach the threshold (p-value {wm['blind_p_value']:.1e}).")
        reg = wm.get("registry")
        if capture_claim and wm["detected"]:
            if wm["matches_manifest"] is True and _registered_type(reg) not in AI_SOURCE_TYPES:
                # `sign --source-type capture --watermark`: the signer's own soft binding
                reasons.append("The signer marked the capture itself: the watermark's payload is this "
                               "manifest's soft binding, so the mark does not contradict the capture claim.")
            else:
                verdict = "conflicting signals"
                reasons.append("The manifest claims a camera capture, but the video carries an evalkit watermark"
                               + (" registered for AI-generated media." if _registered_type(reg) in AI_SOURCE_TYPES
                                  else " that it does not bind."))
        if (wm["detected"] and wm.get("payload") and wm["matches_manifest"] is not True
                and verdict in ("signed (source not stated)", "signed (other source type)")
                and _registered_type(reg) not in CAPTURE_SOURCE_TYPES):
            # evalkit marks what it generates: a manifest that neither binds the mark nor says AI
            # replaced the one it was signed with (re-signing laundered the origin, session 33)
            verdict = "conflicting signals"
            unsigned = bool(reg and reg.get("found") and not reg.get("manifest"))
            reasons.append("The video carries an evalkit watermark that this manifest does not bind, and the "
                           "manifest does not say the video is AI-made: evalkit marks what it generates, so "
                           + ("this manifest was added to a video marked without one (generate --watermark)."
                              if unsigned else "the manifest may have replaced the one the mark was signed with."))
        if reg and reg["found"]:  # the payload's registration (looked up where the manifest does not bind
            # it, or claims a capture): where it came from
            reasons += _registry_text(reg)
            if reg["content"] == "different":
                verdict = "conflicting signals"
        if wm["checked"] and not wm["detected"]:
            if sb and sb.get("key_id") and wm.get("key_id") and sb["key_id"] != wm["key_id"]:
                reasons.append(f"The manifest's watermark was made with key {sb['key_id']}, not the "
                               f"key given ({wm['key_id']}); it could not be checked.")
            elif sb:
                reasons.append(f"The {_binding_of(sb)} declares a watermark, but none was found.")
            elif ai_claim and not ai_by_edit:
                reasons.append("The manifest says AI-generated, but no watermark was found.")
            elif verdict == "ai-generated (signed)":  # an edit of AI media: its history says so
                reasons.append("Its history says AI-generated, but no watermark was found.")
        if capture_claim and det_says_ai:
            reasons.append(f"The detector disagrees with the capture claim (p_generated {p:.3f} >= {thr:.3f}).")
    else:  # absent
        if prov.get("remote_fetch_error"):  # asked for, and it failed: not "pass --fetch-remote"
            reasons.append(f"The file names a remote C2PA manifest at {prov['remote_url']}, which could not be "
                           f"fetched ({prov['remote_fetch_error']}); give a copy with --manifest FILE.")
        elif prov.get("remote_url"):
            reasons.append(f"The file names a remote C2PA manifest at {prov['remote_url']}, which was not read "
                           "(verify works offline: pass --fetch-remote to fetch it, or --manifest FILE with a copy).")
        else:
            reasons.append("No C2PA manifest.")
        if wm["detected"] and not wm["payload"]:
            # A pattern without a payload: a marked video damaged past reading, or a mark copied
            # onto another video by someone holding a marked video and its original (measured:
            # benchmarks/robustness/watermark_forgery.py). Not enough to call it generated.
            verdict = TRACE_AND_DETECTOR if det_says_ai else WATERMARK_TRACE
            reasons.append(wm_text[0].upper() + wm_text[1:] + ": either a marked video damaged past "
                           "reading (heavy re-encoding), or a mark's pattern copied from another video, "
                           "which anyone holding a marked video and its original can do; on its own "
                           "it does not show that this video was generated.")
            if det_says_ai:
                reasons.append(f"The detector says generated (p_generated {p:.3f} >= {thr:.3f}).")
        elif wm["detected"]:
            reg = wm.get("registry")
            if _registered_type(reg) in CAPTURE_SOURCE_TYPES:  # its signer marked a capture
                verdict = CAPTURE_STRIPPED
                reasons.append(wm_text[0].upper() + wm_text[1:] + ": the manifest was removed or the "
                               "video re-encoded after signing; the manifest it was registered with claims a "
                               "camera capture, so the mark is its signer's soft binding, not a sign of "
                               "generation.")
            elif reg and reg.get("found") and not reg.get("manifest") and not reg.get("also"):
                # registered by `generate --watermark` without --sign: there never was a manifest
                verdict = UNSIGNED_MARK
                reasons.append(wm_text[0].upper() + wm_text[1:] + ": the soft-binding registry's record of "
                               "this payload holds no manifest, so the video was marked without being signed "
                               "(generate --watermark), not stripped of a manifest.")
            else:
                # a composite its signer marked stays a composite (it read "ai-generated", session 33)
                verdict = (COMPOSITE_STRIPPED if _registered_type(reg) in COMPOSITE_AI_TYPES
                           else "ai-generated (watermark only, manifest stripped)")
                reasons.append(wm_text[0].upper() + wm_text[1:] + ": the manifest was removed or the "
                               "video re-encoded after signing.")
            if wm.get("edits"):
                reasons.append("The watermark read shows the video was edited after marking: "
                               + "; ".join(wm["edits"]) + ".")
            if reg and reg["found"]:
                reasons += _registry_text(reg)
                if reg["content"] == "different":
                    verdict = "conflicting signals"
            elif reg and reg["exists"]:
                reasons.append(f"The payload is not in the soft-binding registry at {reg['registry']}.")
        elif det_says_ai:
            verdict = "likely ai-generated (detector only)"
            reasons.append(f"No watermark found; the detector says generated (p_generated {p:.3f} >= {thr:.3f}).")
        else:
            verdict = "unknown"
            if wm["checked"]:
                reasons.append("No evalkit watermark found.")
    generated = [o for o in wm.get("other_marks") or [] if _mark_of_generation(o)]
    if generated and verdict in (CAPTURE_STRIPPED, "capture (signed)"):
        # a registered capture joined to footage that carries a mark of generation: not a capture
        verdict = "conflicting signals"
        o = generated[0]
        reasons.append(f"Frames {o['frames'][0]}-{o['frames'][1] - 1} carry another evalkit mark, "
                       + ("registered as AI-generated" if o.get("registered") else "not registered as a capture")
                       + ": the capture was joined to generated footage, so the whole video is not a capture.")
    if not wm["checked"]:
        reasons.append(notes.pop(0) if notes else "The watermark was not checked.")
    if p is None and not det.get("name"):
        reasons.append("No detector was run (none available, or --no-detector).")
    elif p is not None and det.get("out_of_domain"):
        reasons.append(f"The detector abstains: {det['out_of_domain']} (p_generated {p:.3f} not used).")
    elif p is not None and not wm["detected"] and origin_open:
        # Nothing above settles where the video came from, so the detector's read is the one
        # signal left; said here unless an earlier branch already quoted it.
        if not det_says_ai:
            low = det.get("real_below")
            if det.get("decision") == "uncertain" or (low is not None and p >= low):
                # between its two cut-offs the detector decides nothing: "not generated" was said of
                # a generated clip at p 0.95 (session 32)
                band = f"; generated at >= {thr:.3f}" + (f", real under {low:.3f}" if low is not None else "")
                reasons.append(f"The detector is uncertain (p_generated {p:.3f}{band}).")
            else:
                reasons.append(f"The detector says not generated (p_generated {p:.3f} < {thr:.3f}"
                               + (f", under its real cut-off {low:.3f}" if low is not None else "") + ").")
        elif state != "absent":
            reasons.append(f"The detector says generated (p_generated {p:.3f} >= {thr:.3f}).")
    reasons += notes
    return verdict, [r if r.endswith(".") else r + "." for r in (s[0].upper() + s[1:] for s in reasons)]


def _mark_of_generation(other: dict) -> bool:
    """Whether a second mark found in a joined video speaks for generation: evalkit marks what it
    generates, so any mark but one registered with a capture claim does."""
    t = other.get("registered_source_type")
    return not (isinstance(t, str) and canonical_source_type(t) in CAPTURE_SOURCE_TYPES)


def _registered_type(reg: dict | None) -> str | None:
    """The digital source type the soft-binding registry recorded with a payload read (the
    record is untrusted input: anything but a string is no type)."""
    if not reg or not reg.get("found"):
        return None
    t = (reg.get("manifest") or {}).get("digital_source_type")
    return canonical_source_type(t) if isinstance(t, str) else None


def _registry_text(reg: dict) -> list[str]:
    """Reasons from a soft-binding registry record of the payload read (`registry.resolve`)."""
    m = reg.get("manifest") or {}
    who = f"signed by {m['signer']}" if isinstance(m.get("signer"), str) else "marked without a manifest"
    t = m.get("digital_source_type")
    kind = source_type_name(canonical_source_type(t)) if isinstance(t, str) and t.strip() else ""
    gen = m.get("generator")
    made = f" ({kind}" + (f", {gen}" if isinstance(gen, str) else "") + ")" if kind else ""
    out = [f"The soft-binding registry holds this payload: {reg.get('signed_file') or 'a video'}, {who}{made}, "
           f"registered {reg.get('registered')}"]
    for a in reg.get("also") or []:  # the same picture signed again: every signing is named
        t = a.get("digital_source_type")
        kind = source_type_name(canonical_source_type(t)) if t else "no source type"
        out.append(f"The same payload was also registered for {a.get('signed_file') or 'a video'} ({kind}, "
                   f"{a.get('registered')})")
    if reg["content"] == "match":
        out.append(reg["why"][0].upper() + reg["why"][1:])
    elif reg.get("whole_only"):  # (its why says an excerpt may be the cause)
        out.append(reg["why"][0].upper() + reg["why"][1:])
    elif reg["content"] == "uncertain":
        out.append(reg["why"][0].upper() + reg["why"][1:] + ": captions, logos, letterbox bars or a crop do this too")
    else:
        out.append("But " + reg["why"] + ": the mark was copied onto this video from the registered one, or "
                   "this video was edited past recognition")
    return out
