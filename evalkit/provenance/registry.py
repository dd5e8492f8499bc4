"""A local soft-binding registry: from a watermark's payload back to the manifest it was signed
with, and to the picture it was signed on.

C2PA's answer to a stripped manifest is soft-binding resolution: the watermark's payload is a
key into a repository of manifests, run by whoever marks. This is that repository for one
machine or one team's shared folder. `sign --watermark` (and `generate --sign --watermark`)
record each payload here; `verify` looks up the payload it reads when the video carries no
manifest of its own.

It also answers what a watermark alone cannot: is this the video that was marked? On flat
content (a still, a title card, a gradient, a plain background) the mark is an additive pattern
that can be lifted from one marked flat video and stamped on another, payload and all
(`benchmarks/robustness/watermark_forgery.py`). Each record therefore keeps a thumbnail of the
marked picture (its temporal mean, luma, `THUMB` px square), and `verify` compares the suspect
with it: a copied mark sits on another picture.

Layout: `DIR/KEY_ID/PAYLOAD.json`, one record per (watermark key, payload), written atomically;
`DIR` is `$EVALKIT_SOFT_BINDINGS`, else `$EVALKIT_HOME/soft-bindings`. A record holds no secret:
the payload, the key's public fingerprint, what the manifest says (signer, issuer, source type,
generator, actions, soft binding), the signed file's SHA-256 and name, and the thumbnail.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import cv2
import numpy as np

from evalkit.atomic import folder_lock
from evalkit.errors import BadInputError
from evalkit.provenance import wm_grid as geo

ENV = "EVALKIT_SOFT_BINDINGS"
THUMB = 16  # thumbnail side: survives re-encoding and resizing; a moved object still shows
MATCH, DIFFERENT = 0.53, 0.8  # `_difference` of thumbnails: at most MATCH the same picture
# A matching whole above PART_LOOK is searched for a part that matches at under PART_BETTER times its
# difference (a marked clip joined to other footage). Measured (session 31, runs/s31/reg/measure.py:
# 32 frames of the three real videos and four 128 px world clips): brightness +20%, contrast -20%,
# blur and noise keep a whole clip at 0.00-0.11; trims reach 0.24-0.59, but no part of a trimmed
# clip matched better than the whole did, so neither is taken for a join.
PART_LOOK, PART_BETTER = 0.15, 0.5
FLOOR = 3.0  # levels: structure below this is noise, so two flat pictures agree
BLUR = 0.8  # thumbnail pixels
# (mean + 8) of the suspect over the registered one's: brightness, contrast and gamma edits of
# +-40% stay inside (gamma 0.7 on a dark clip: 1.8x)
BRIGHTNESS = (0.5, 2.0)
_HEX = re.compile(r"^[0-9a-f]{16,64}$")


def registry_dir(path=None, create: bool = True) -> Path:
    """The registry folder: `path`, else `$EVALKIT_SOFT_BINDINGS`, else `$EVALKIT_HOME/soft-bindings`
    (the home made when `create`: a look-up never needs it to exist)."""
    if path is not None:
        return Path(path)
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    from evalkit.home import evalkit_home

    return evalkit_home(create=create) / "soft-bindings"


def thumbnail(mean: np.ndarray) -> np.ndarray:
    """float32 [THUMB, THUMB]: the luma of a temporal-mean frame [H, W, 3], area-averaged."""
    y = np.ascontiguousarray(mean, np.float32) @ geo._LUMA.astype(np.float32)  # BT.601, as the mark's luma
    return cv2.resize(y, (THUMB, THUMB), interpolation=cv2.INTER_AREA).astype(np.float32)


def _record_path(root: Path, key_id: str, payload_hex: str) -> Path:
    if not _HEX.match(payload_hex) or not re.match(r"^[0-9a-f]{6,64}$", key_id):
        raise BadInputError(f"soft-binding registry: bad payload {payload_hex!r} or key id {key_id!r}")
    return root / key_id / f"{payload_hex}.json"


def register(payload_hex: str, key_id: str, mean: np.ndarray, *, provenance: dict | None = None,
             signed_file=None, sha256: str | None = None, root=None) -> Path:
    """Record a marked video: its payload under the key `key_id`, the thumbnail of its temporal
    mean frame `mean` [H, W, 3], and what its manifest says. Returns the record's path."""
    root = registry_dir(root)
    path = _record_path(root, key_id, payload_hex)
    prov = provenance or {}
    record = {"payload": payload_hex, "key_id": key_id, "registered": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "signed_file": Path(signed_file).name if signed_file is not None else None, "sha256": sha256,
              "manifest": {k: prov.get(k) for k in ("state", "signer", "issuer", "digital_source_type", "generator",
                                                    "actions", "claim_generator", "soft_binding", "signed_at")
                           if prov.get(k) is not None},
              "thumbnail": np.round(thumbnail(mean), 2).tolist()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # read, merge and write under the key's lock: two signings of one clip at once (AI and
        # capture) each read the old record and the last write won, so the AI signing could vanish
        with folder_lock(path.parent):
            record = _keep_earlier(lookup(payload_hex, key_id, root), record)
            tmp.write_text(json.dumps(record, indent=1))
            os.replace(tmp, path)
    except OSError as e:
        raise BadInputError(f"{root}: cannot write the soft-binding registry ({e.strerror}); set {ENV} "
                            "to a writable folder, or sign with --no-register") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)  # a full disk left a 0-byte partial record behind
        except OSError:  # its folder could not be made: nothing was written
            pass
    return path


def _brief(rec: dict) -> dict:
    m = rec.get("manifest") or {}
    return {"signed_file": rec.get("signed_file"), "registered": rec.get("registered"),
            "digital_source_type": m.get("digital_source_type"), "signer": m.get("signer")}


def _keep_earlier(old: dict | None, new: dict) -> dict:
    """The record to write when a payload is registered again (the payload comes from the picture,
    so the same clip signed twice gets the same one): every earlier signing stays listed in
    "also", and a record that says AI-generated is never replaced by one that does not, so a
    clip signed as generated cannot be re-signed into a capture in the registry's eyes."""
    if old is None:
        return new
    from evalkit.provenance.manifest_build import AI_SOURCE_TYPES, canonical_source_type

    also = [*old.get("also", []), _brief(old)]
    ai = {canonical_source_type(r.get("digital_source_type")) in AI_SOURCE_TYPES for r in (_brief(old), _brief(new))}
    if ai == {True, False} and canonical_source_type(_brief(new)["digital_source_type"]) not in AI_SOURCE_TYPES:
        keep = {k: old[k] for k in ("registered", "signed_file", "sha256", "manifest") if k in old}
        return {**new, **keep, "also": [*old.get("also", []), _brief(new)][-16:]}
    return {**new, "also": also[-16:]}


def lookup(payload_hex: str, key_id: str, root=None) -> dict | None:
    """The record of `payload_hex` under key `key_id`, or None (no registry, no record, or a
    record that does not read: it is reported as absent rather than trusted)."""
    try:
        path = _record_path(registry_dir(root, create=False), key_id, payload_hex)
        rec = json.loads(path.read_text())
        thumb = np.asarray(rec["thumbnail"], np.float32)
        if thumb.shape != (THUMB, THUMB) or not np.all(np.isfinite(thumb)) or rec.get("payload") != payload_hex:
            return None
        # anyone who can write the folder writes these: keep only JSON of the expected kinds
        manifest = rec.get("manifest") if isinstance(rec.get("manifest"), dict) else {}
        text = {k: str(rec[k])[:300] if rec.get(k) is not None else None for k in ("registered", "signed_file", "sha256")}
        also = [{k: str(a[k])[:300] for k in ("signed_file", "registered", "digital_source_type", "signer")
                 if a.get(k) is not None} for a in rec.get("also") or [] if isinstance(a, dict)][:16]
        return {**text, "payload": payload_hex, "key_id": key_id, "thumbnail": thumb, "path": str(path),
                "manifest": {k: v for k, v in manifest.items() if isinstance(k, str) and isinstance(v, (str, list, dict))},
                "also": also}
    except (OSError, ValueError, KeyError, TypeError, BadInputError):
        return None


def _views(t: np.ndarray) -> list[np.ndarray]:
    """The eight ways to lay a square thumbnail on its axes (the detector's views and turns)."""
    out = []
    for k in range(4):
        r = np.rot90(t, k)
        out += [r, r[:, ::-1]]
    return out


def _crop(t: np.ndarray, box) -> np.ndarray:
    """The part `box` = (y0, y1, x0, x1) of the unit square of thumbnail t, resampled to THUMB."""
    y0, y1, x0, x1 = (min(max(float(v), 0.0), 1.0) for v in box)
    if y1 - y0 < 0.2 or x1 - x0 < 0.2 or (y0, y1, x0, x1) == (0.0, 1.0, 0.0, 1.0):
        return t
    big = cv2.resize(t, (THUMB * 8, THUMB * 8), interpolation=cv2.INTER_LINEAR)
    part = big[int(round(y0 * THUMB * 8)):int(round(y1 * THUMB * 8)), int(round(x0 * THUMB * 8)):int(round(x1 * THUMB * 8))]
    return cv2.resize(part, (THUMB, THUMB), interpolation=cv2.INTER_AREA)


def _difference(ref: np.ndarray, sus: np.ndarray) -> float:
    """How far `sus` is from `ref` once a contrast (0.5-2x) and brightness change are allowed:
    the RMS of what the best such change leaves, over the larger picture's structure (at least
    `FLOOR` levels, so that two flat pictures agree). For two structured pictures with
    correlation r it is sqrt(1 - r^2): 0.53 at r 0.85, 0.8 at r 0.6."""
    a_ref, a_sus = ref - ref.mean(), sus - sus.mean()
    var = float((a_ref * a_ref).mean())
    gain = float(np.clip((a_ref * a_sus).mean() / var, 0.5, 2.0)) if var > 1e-9 else 1.0
    resid = float(np.sqrt(((a_sus - gain * a_ref) ** 2).mean()))
    return resid / max(float(a_ref.std()) * gain, float(a_sus.std()), FLOOR)


def compare(registered: np.ndarray, mean: np.ndarray, box=None) -> dict:
    """Is the suspect's temporal mean frame `mean` [H, W, 3] the registered picture? `box`: the
    part of the marked frame the suspect shows (the watermark read's geometry), if a crop.
    Returns {"content": "match" | "different" | "uncertain", "difference": 0 (the same) and up,
    "why": text}. Brightness and contrast changes do not count, nor do the eight turns and
    mirrorings (the detector reads them too); both thumbnails are blurred a little first, so a
    crop's resampling and a codec's loss of fine texture count for little."""
    ref = _crop(registered, box) if box is not None else registered
    ref = cv2.GaussianBlur(ref, (0, 0), BLUR)
    sus = cv2.GaussianBlur(thumbnail(mean), (0, 0), BLUR)
    ratio = (float(sus.mean()) + 8.0) / (float(ref.mean()) + 8.0)
    if not BRIGHTNESS[0] <= ratio <= BRIGHTNESS[1]:  # beyond any grading: a dark clip is not a grey card
        return {"content": "different", "difference": None,
                "why": f"the picture's brightness differs from the one registered (mean {sus.mean():.0f} "
                       f"against {ref.mean():.0f})"}
    d = min(_difference(ref, np.ascontiguousarray(v)) for v in _views(sus))
    content = "match" if d <= MATCH else "different" if d >= DIFFERENT else "uncertain"
    what = {"match": "the picture matches the one registered", "different": "the picture differs from the one registered",
            "uncertain": "the picture partly matches the one registered (an edit, or another picture)"}[content]
    return {"content": content, "difference": round(d, 3), "why": f"{what} (difference {d:.2f}; 0 is the same)"}




def resolve(payload_hex: str, key_id: str, frames: np.ndarray, geometry: dict | None = None, root=None) -> dict:
    """`verify`'s look-up of a payload it read from `frames` [T, H, W, 3] (uint8): the registry
    record and how the picture compares, read in the same view and crop as the mark
    (`geometry` of the watermark read). Keys: found, registry (its folder), exists (the folder
    does), and when found: record, registered, signed_file, sha256, manifest, content,
    difference, why."""
    where = registry_dir(root, create=False)
    out: dict = {"found": False, "registry": str(where), "exists": where.is_dir()}
    rec = lookup(payload_hex, key_id, root)
    if rec is None:
        return out
    view, box = picture_as_read(frames, geometry)
    out.update(found=True, record=rec["path"], registered=rec.get("registered"), signed_file=rec.get("signed_file"),
               sha256=rec.get("sha256"), manifest=rec.get("manifest") or {}, also=rec.get("also") or [],
               **compare(rec["thumbnail"], view, box))
    if out["content"] != "match" or (out["difference"] or 0.0) > PART_LOOK:
        # the whole video's mean is not (quite) the registered picture: a part of it may be. A join
        # of two equal halves of similar footage averages to a "match" of about 0.26, so a part is
        # looked for then too, and named when it matches clearly better than the whole.
        part = _matching_part(rec["thumbnail"], frames, geometry)
        if part is not None and (out["content"] != "match" or part["difference"] <= PART_BETTER * out["difference"]):
            out.update(part)
    return out


def _matching_part(registered: np.ndarray, frames: np.ndarray, geometry: dict | None) -> dict | None:
    """A stretch of the video whose picture matches the registered one, where the whole does not:
    a marked clip cut into a longer video (between other footage, or joined to another clip)
    still carries its mark, but the whole video's mean is not its picture. Halves, thirds and
    quarters, each at half-length steps; the best that matches, or None."""
    t = len(frames)
    best = None
    for parts in (2, 3, 4):
        n = t // parts
        if n < 8:  # too short to be the marked clip's picture
            break
        for a in range(0, t - n + 1, max(n // 2, 1)):
            view, box = picture_as_read(frames[a:a + n], geometry)
            c = compare(registered, view, box)
            if c["content"] == "match" and (best is None or c["difference"] < best[1]["difference"]):
                best = ((a, a + n), c)
    if best is None:
        return None
    (a, b), c = best
    return {**c, "frames": [a, b],
            "why": f"frames {a}-{b - 1} of the {t} match the picture registered (difference {c['difference']:.2f}; "
                   "0 is the same), the rest does not: the marked video was cut into a longer one"}


def picture_as_read(frames: np.ndarray, geometry: dict | None) -> tuple[np.ndarray, tuple | None]:
    """(mean frame [H, W, 3] in the view the mark was read in, the crop box or None) from a
    watermark read's `geometry`: what `compare` takes."""
    geometry = geometry or {}
    mean = geo.mean_frame(frames)
    view = dict(geo.views(frames, mean)).get(geometry.get("view"), mean)
    return view, geometry.get("box") if geometry.get("crop") not in (None, 1.0) else None


__all__ = ["ENV", "THUMB", "registry_dir", "thumbnail", "register", "lookup", "compare", "resolve", "picture_as_read"]
