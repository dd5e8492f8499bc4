"""What the evidence says in words, for `verify`'s reasons: the edits a watermark read shows
(`edits`), a second mark in the rest of a joined video (`other_mark`), and why an intact
signature is untrusted although anchors were given (`issuer_not_anchored`). Kept apart from
`evalkit.provenance.verify`, which gathers the signals, and `verdict`, which weighs them."""

from __future__ import annotations

GAIN_EDIT = 0.1  # |gain - 1| above which a read reports a contrast, brightness or saturation edit
# A trace (the pattern found, no payload decoded) reports edits only under this p-value: a plain
# 8-frame cut traced at p 1e-7 read "rotated 0.5°" and "contrast lowered" (session 34), while
# off-centre crops traced at 1e-29 to 1e-37 named their crops right
TRACE_EDITS_P = 1e-12


def other_mark(frames, part, key, payload: str) -> dict | None:
    """A second mark in `frames`, or None: the longest stretch outside `part` (the frames the
    registered picture matched; (0, 0) where none did) first, then the halves and thirds of the
    video, each a test of its own at the detector's threshold. The rest alone missed a join whose
    matched part was a quarter of the first clip: the rest then mixed both clips (session 31)."""
    from evalkit.provenance import watermark as wmmod

    t = len(frames)
    a, b = part
    rest = max(((0, a), (b, t)), key=lambda r: r[1] - r[0])
    tried = []
    for x, y in [rest, *[(t * i // k, t * (i + 1) // k) for k in (2, 3) for i in range(k)]]:
        if y - x < 16 or (x, y) in tried:  # too short to carry a whole mark, or read already
            continue
        tried.append((x, y))
        d = wmmod.detect(frames[x:y], key)
        if d.detected and d.payload and d.payload.hex() != payload:
            return {"payload": d.payload.hex(), "p_value": d.p_value, "frames": [x, y]}
    return None


def faded(frames) -> bool:
    """Whether the frames' brightness ramps as a fade's does, at an end of the clip: from the first
    (or last) frame, under 70% of the clip's typical level, it rises over at least 3 frames, each
    step no darker than the last (codec noise aside) and none a jump, to 90% of that level. The read
    that undoes each frame's brightness also finds marks in trimmed, re-encoded or re-graded clips
    that were never faded, and a dark shot after a cut (bikes.mp4: 135 then 64) swings as much as
    a fade: that swing is no fade (session 34)."""
    if frames is None or len(frames) < 4:
        return False
    levels = frames.reshape(len(frames), -1).mean(axis=1) + 1.0
    return _ramp(levels) or _ramp(levels[::-1])


def _ramp(levels) -> bool:
    import numpy as np

    typical = float(np.median(levels))
    if levels[0] >= 0.7 * typical:
        return False
    top = np.flatnonzero(levels >= 0.9 * typical)
    if not top.size or top[0] < 2:  # never reaches the clip's level, or a jump (a cut)
        return False
    steps = np.diff(levels[:top[0] + 1])
    swing = levels[top[0]] - levels[0]
    return bool(steps.min() >= -0.02 * typical and steps.max() <= 0.5 * swing)


def read_fields(detection) -> dict:
    """`verify`'s JSON of a watermark read. DESIGN.md's `payload` is hex or null: null unless the
    read is a detection; a read whose bits decode (the check code verifies) at a p-value above the
    threshold keeps them under `payload_below_threshold` (it printed "not found, payload ..." and
    gave JSON detected false with the payload set, session 34)."""
    out = detection.to_dict()
    if not detection.detected and out["payload"] is not None:
        out["payload_below_threshold"], out["payload"] = out["payload"], None
    return out


def read_edits(detection, frames) -> list[str]:
    """The edits to report for a watermark read (`watermark.Detection`): none without a detection;
    for a trace only with strong evidence, and never from the strength the mark reads at (a
    pattern whose payload does not decode is weakened by damage, or by a second mark beside it:
    two marked halves side by side read "contrast lowered", session 34)."""
    if not detection.detected:
        return []
    if detection.payload is not None:
        return edits(detection.geometry, frames)
    if detection.p_value >= TRACE_EDITS_P:
        return []
    return edits({**detection.geometry, "gain": 1.0}, frames)


def edits(geometry: dict, frames=None) -> list[str]:
    """What the geometry of a watermark read says was done to the picture since it was marked:
    evidence for an investigator. Only what the read can show: a re-encode leaves nothing, and
    which frames were read says nothing (a long moving clip is read segment by segment anyway)."""
    from evalkit.provenance.wm_grid import TURNS  # (numpy and cv2: loaded only for a watermark)

    out = []
    view = geometry.get("view", "as-is")
    if view.startswith("bars-removed"):
        out.append("bars were added around the picture (letterbox or pillarbox)")
    if view.startswith("inset"):
        out.append("the picture was laid inside another video's frame (picture-in-picture or split screen)")
    if view.startswith("blur-fill"):
        out.append("the picture was scaled into a frame of another shape over a blurred copy of itself "
                   "(a short-video reformat)")
    if view.endswith("mirrored"):
        out.append("mirrored left-right")
    if view in dict(TURNS):
        out.append(view)
    if view == "fade undone" and faded(frames):
        out.append("faded in or out (the mark was read with each frame's brightness undone)")
    flat = None
    # frames of one colour are counted only where they explain the read (every frame is looked at)
    weak = geometry.get("gain", 1.0) < 1 - GAIN_EDIT
    if frames is not None and len(frames) and (view == "flat frames left out" or weak):
        from evalkit.provenance.wm_grid import flat_frames

        flat = flat_frames(frames)
    if view == "flat frames left out" and flat is not None:
        out.append(f"frames of one colour were added before, after or between the marked ones ({int(flat.sum())} "
                   f"of {len(flat)} frames are black or flat; the mark was read without them)")
    # the angle was read on the view: after a mirror, the picture turned the other way
    deg = -geometry.get("rotation", 0.0) if view.endswith("mirrored") else geometry.get("rotation", 0.0)
    if deg:
        out.append(f"rotated {abs(deg):.1f}° {'counter-clockwise' if deg > 0 else 'clockwise'}")
    y0, y1, x0, x1 = geometry.get("box", (0.0, 1.0, 0.0, 1.0))
    if max(abs(y0), abs(1 - y1), abs(x0), abs(1 - x1)) > 0.005:
        pct = lambda x: f"{x:.0%}" if round(x * 100) != 0 else "0%"  # noqa: E731  (never "-0%")
        out.append(f"cropped{' off centre' if geometry.get('crop') == 'off-centre' else ''}: the video shows "
                   f"{pct(y0)}-{pct(y1)} of the marked frame's height and {pct(x0)}-{pct(x1)} of its width")
    gain = geometry.get("gain", 1.0)
    # A plain re-encode reads at 0.97-1.00 of the mark's strength (CRF 18-30, world clips and
    # footage, session 20), and the a-priori read refines its gain only within +-3%: so only a read
    # well outside that band is evidence of an edit (contrast x0.8 read at 0.84, x1.2 at 1.19). A
    # picture shrunk to half its size reads weaker too (0.77, session 28: the finest detail of the
    # mark is averaged away), so a weak read names both.
    share = float(flat.mean()) if flat is not None and view != "flat frames left out" else 0.0
    if gain < 1 - GAIN_EDIT and share > 0 and abs(gain - (1 - share)) < GAIN_EDIT:
        # flat frames dilute the mean by just their share: added frames, not a colour edit (24 black
        # frames after 48 read "contrast lowered" at 0.69, session 32)
        out.append(f"frames of one colour were added before, after or between the marked ones ({int(flat.sum())} "
                   f"of {len(flat)} frames are black or flat: the mark reads at {gain:.2f} of its strength)")
    elif gain < 1 - GAIN_EDIT:
        out.append(f"contrast, brightness or saturation lowered, or the picture shrunk (the mark reads at "
                   f"{gain:.2f} of its strength)")
    elif gain > 1 + GAIN_EDIT:
        out.append(f"contrast, brightness or saturation raised (the mark reads at {gain:.2f} of its strength)")
    return out


def below_threshold_note(wm: dict, key_id: str, registry=None) -> str | None:
    """A reason for a read whose bits decode to a payload (its check code verifies) at a p-value
    above the detection threshold, where the soft-binding registry holds that payload; else None.
    A hint, worded apart from a detection and not counted by the verdict: the threshold bounds
    false detections over every read the detector makes, and this read did not pass it."""
    from evalkit.provenance.registry import lookup

    payload = wm.get("payload_below_threshold")
    rec = lookup(payload, key_id, registry) if payload else None
    if rec is None:
        return None
    return (f"The best watermark read (p-value {wm['p_value']:.1e}, above the detection threshold) decodes to payload "
            f"{payload}, which the soft-binding registry holds for {rec.get('signed_file') or 'a video'} (registered "
            f"{rec.get('registered')}): a hint that this may be a damaged copy of that video, not a detection; the "
            "verdict does not count it.")


def issuer_not_anchored(prov: dict, anchors: str | None) -> str | None:
    """Why a signature that checks out is untrusted although anchors were given: the signing
    certificate's issuer is none of them (another CA, or an intermediate under one of them that
    the signer left out of the chain it signed with; c2pa says only "untrusted")."""
    if not anchors or prov.get("state") != "valid" or not prov.get("issuer"):
        return None
    from cryptography import x509

    from evalkit.provenance.credentials import _describe

    names = [_describe(c.subject) for c in x509.load_pem_x509_certificates(anchors.encode("ascii"))]
    if prov["issuer"] in names:
        return None
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return (f"The signing certificate was issued by {prov['issuer']}, which is none of your trust anchors "
            f"({shown}): another CA, or an intermediate CA under one of them that is missing from the chain "
            "the file was signed with, out of its order (signing certificate, then each issuer in turn) or "
            "not valid; `evalkit sign` puts a chain in order and refuses the others.")


__all__ = ["GAIN_EDIT", "TRACE_EDITS_P", "below_threshold_note", "edits", "read_edits", "read_fields", "faded", "other_mark", "issuer_not_anchored"]
