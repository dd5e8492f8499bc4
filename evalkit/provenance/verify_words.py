"""What the evidence says in words, for `verify`'s reasons: the edits a watermark read shows
(`edits`), a second mark in the rest of a joined video (`other_mark`), and why an intact
signature is untrusted although anchors were given (`issuer_not_anchored`). Kept apart from
`evalkit.provenance.verify`, which gathers the signals, and `verdict`, which weighs them."""

from __future__ import annotations

GAIN_EDIT = 0.1  # |gain - 1| above which a read reports a contrast, brightness or saturation edit


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
    """Whether the frames' brightness swings as a fade's does (the darkest frame under 70% of the
    brightest): the read that undoes each frame's brightness also finds marks in trimmed or
    re-encoded clips that were never faded, and then says nothing about a fade."""
    if frames is None or len(frames) < 2:
        return False
    levels = frames.reshape(len(frames), -1).mean(axis=1) + 1.0
    return float(levels.min() / levels.max()) < 0.7


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


__all__ = ["GAIN_EDIT", "edits", "faded", "other_mark", "issuer_not_anchored"]
