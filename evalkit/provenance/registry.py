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
marked picture (its temporal mean, luma and max(R, G, B), `THUMB` px square), and since session 34
one of each 8-frame window of it (`registry_segments`), and `verify` compares the suspect with
them: a copied mark sits on another picture, an excerpt on a stretch of the registered one. A
record from before keeps the whole picture only: a suspect that does not match it may be an
excerpt, so it reads "uncertain (an excerpt?)", never "different". Since session 35 the pictures
are also compared at a finer scale (`registry_picture`: a gradient with the mark copied on lacks
what lay on the registered gradient), and the suspect's own 8-frame windows against the
registered ones (`registry_windows`): an excerpt of a fast pan, featureless on average, is placed
by how its windows change, and a still picture is no copy of a video that moves.

Layout: `DIR/KEY_ID/PAYLOAD.json`, one record per (watermark key, payload), written atomically;
`DIR` is `$EVALKIT_SOFT_BINDINGS`, else `$EVALKIT_HOME/soft-bindings`. A record holds no secret:
the payload, the key's public fingerprint, what the manifest says (signer, issuer, source type,
generator, actions, soft binding), the signed file's SHA-256 and name, and the thumbnail.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import time
from pathlib import Path

import numpy as np

from evalkit.atomic import folder_lock
from evalkit.errors import BadInputError
from evalkit.provenance import registry_picture as pic
from evalkit.provenance import registry_segments as seg
from evalkit.provenance import registry_windows as win
from evalkit.provenance import wm_grid as geo
from evalkit.provenance.registry_picture import DIFFERENT, FLOOR, MATCH

ENV = "EVALKIT_SOFT_BINDINGS"
THUMB = seg.THUMB  # thumbnail side: survives re-encoding and resizing; a moved object still shows
# MATCH, DIFFERENT: `registry_picture.difference` of thumbnails (0 the same picture). Re-measured
# in session 34 (runs/s34/wmverdict/measure.py: 18 world clips at 64-256 px and 3 footage clips,
# 96-160 frames): 252 genuine excerpts of 16-64 frames, re-encoded, matched their stretch at
# 0.00-0.28 (against the whole picture 4 read "different", 25 "uncertain"); full copies (JPEG 30,
# brightness, greyscale, hue +40 and +90, speed 1.5) at 0.00-0.07; copies of the mark on grey
# cards and gradients: 97 of 126 "different", 5 "uncertain", 24 "match" (12 at whole length, the
# same sources at 40 frames: world clips whose background is that flat or graded picture, as
# before). Session 35's changes are measured in `registry_picture` and `registry_windows`.
# A matching whole above PART_LOOK is searched for a part that matches at under PART_BETTER times its
# difference (a marked clip joined to other footage). Measured (session 31, runs/s31/reg/measure.py:
# 32 frames of the three real videos and four 128 px world clips): brightness +20%, contrast -20%,
# blur and noise keep a whole clip at 0.00-0.11; trims reach 0.24-0.59, but no part of a trimmed
# clip matched better than the whole did, so neither is taken for a join.
PART_LOOK, PART_BETTER = 0.15, 0.5
EXCERPT_MAX = 0.95  # a difference this near the worst is another picture, excerpt or not
FLAT_CAP = round((MATCH + DIFFERENT) / 2, 3)  # the best a flat stretch's picture alone can vouch for
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
    return seg.luma_thumbnail(mean)


def _record_path(root: Path, key_id: str, payload_hex: str) -> Path:
    if not _HEX.match(payload_hex) or not re.match(r"^[0-9a-f]{6,64}$", key_id):
        raise BadInputError(f"soft-binding registry: bad payload {payload_hex!r} or key id {key_id!r}")
    return root / key_id / f"{payload_hex}.json"


def register(payload_hex: str, key_id: str, mean: np.ndarray, *, provenance: dict | None = None,
             signed_file=None, sha256: str | None = None, root=None, segments: dict | None = None) -> Path:
    """Record a marked video: its payload under the key `key_id`, the thumbnails of its temporal
    mean frame `mean` [H, W, 3] and of each window of it (`segments`: `registry_segments`'
    `SegmentRecorder.result()` or `segment_thumbnails(frames)`; None keeps the whole clip's
    only, as records before session 34 did), and what its manifest says. Returns the record's path."""
    root = registry_dir(root)
    path = _record_path(root, key_id, payload_hex)
    prov = provenance or {}
    record = {"payload": payload_hex, "key_id": key_id, "registered": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "signed_file": Path(signed_file).name if signed_file is not None else None, "sha256": sha256,
              "manifest": {k: prov.get(k) for k in ("state", "signer", "issuer", "digital_source_type", "generator",
                                                    "actions", "claim_generator", "soft_binding", "signed_at")
                           if prov.get(k) is not None},
              "thumbnail": np.round(thumbnail(mean), 2).tolist(),
              "value_thumbnail": np.round(seg.value_thumbnail(mean), 2).tolist()}
    if segments is not None:
        record["segments"] = seg.to_json(segments)
    # a random part too, as `atomic.write_atomic` names its partials: two signings in one process
    # (threads) shared the partial's name, and one's clean-up below, outside the lock, deleted the
    # other's partial before its rename (a flaky test_concurrency failure, session 36)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.partial")
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
        value = np.asarray(rec.get("value_thumbnail") or np.nan, np.float32)  # since session 34
        value = value if value.shape == (THUMB, THUMB) and np.all(np.isfinite(value)) else None
        return {**text, "payload": payload_hex, "key_id": key_id, "thumbnail": thumb, "path": str(path),
                "value_thumbnail": value, "segments": seg.from_json(rec.get("segments")),
                "manifest": {k: v for k, v in manifest.items() if isinstance(k, str) and isinstance(v, (str, list, dict))},
                "also": also}
    except (OSError, ValueError, KeyError, TypeError, BadInputError):
        return None


def compare(registered: np.ndarray, mean: np.ndarray, box=None, value: np.ndarray | None = None) -> dict:
    """Is the suspect's temporal mean frame `mean` [H, W, 3] the registered picture (luma
    thumbnail `registered`, and `value`, its max(R, G, B) thumbnail, where the record has one)?
    `box`: the part of the marked frame the suspect shows (the watermark read's geometry), if a
    crop. Returns {"content": "match" | "different" | "uncertain", "difference": 0 (the same) and
    up, "why": text}. Brightness and contrast changes do not count, nor do the eight turns and
    mirrorings (the detector reads them too), nor, given `value`, a change of hue or saturation
    (the lesser of the luma and value differences counts); both thumbnails are blurred a little
    first, so a crop's resampling and a codec's loss of fine texture count for little."""
    d, luma, by_fine = pic.picture_difference(registered, value, mean, box)
    if d is None:
        return {"content": "different", "difference": None, "why": luma}
    content = pic.content(d)
    what = {"match": "the picture matches the one registered", "different": "the picture differs from the one registered",
            "uncertain": "the picture partly matches the one registered (an edit, or another picture)"}[content]
    return {"content": content, "difference": d,
            "why": f"{what} ({_amount(d, luma)}){_recoloured(luma)}{_lacking(by_fine and content != 'match')}"}


def _amount(d: float, luma: float | None) -> str:
    luma_text = "" if luma is None else f", {luma:.2f} in luma" if math.isfinite(luma) else ", luma's level moved"
    return f"difference {d:.2f}{luma_text}; 0 is the same"


def _recoloured(luma: float | None) -> str:
    return ": its colours were changed (hue or saturation), its brightness pattern was not" if luma is not None else ""


def _lacking(by_fine: bool) -> str:
    return (": its overall shading is the registered picture's, but what lies on it there (objects, detail) "
            "is missing here" if by_fine else "")


def resolve(payload_hex: str, key_id: str, frames: np.ndarray, geometry: dict | None = None, root=None) -> dict:
    """`verify`'s look-up of a payload it read from `frames` [T, H, W, 3] (uint8): the registry
    record and how the picture compares, read in the same view and crop as the mark
    (`geometry` of the watermark read). Keys: found, registry (its folder), exists (the folder
    does), and when found: record, registered, signed_file, sha256, manifest, content,
    difference, why; `excerpt` [first, end) of the registered frames, where the suspect matches
    a stretch of the registered video best; `whole_only` where the record (from before session
    34) keeps no picture of its stretches, so that an excerpt could not be told apart."""
    where = registry_dir(root, create=False)
    out: dict = {"found": False, "registry": str(where), "exists": where.is_dir()}
    rec = lookup(payload_hex, key_id, root)
    if rec is None:
        return out
    view, box = picture_as_read(frames, geometry)
    out.update(found=True, record=rec["path"], registered=rec.get("registered"), signed_file=rec.get("signed_file"),
               sha256=rec.get("sha256"), manifest=rec.get("manifest") or {}, also=rec.get("also") or [],
               **compare(rec["thumbnail"], view, box, rec.get("value_thumbnail")))
    segments = rec.get("segments")
    held: list = []

    def laid() -> win.Frames:  # the suspect's frames shrunk and summed, made once where needed
        held[:] = held or [win.Frames(frames, (geometry or {}).get("view"),
                                      cut=geo.cut_read(geometry, frames.shape[1:3]),
                                      fill=geo.fill_read(geometry, frames.shape[1:3]))]
        return held[0]

    if segments is None:
        if out["content"] != "match" and _could_be_excerpt(out, view):
            out.update(_whole_only(out))
    elif len(frames) < segments["total"] and (out["content"] != "match" or out["difference"] > PART_LOOK):
        # an excerpt's picture is a stretch of the registered one, not all of it (frames 80-160 of a
        # moving 160-frame clip read 0.81-0.93 against the whole, "different", session 34)
        out.update(_matching_run(rec, view, box, len(frames), out, laid))
        if out["content"] == "match" and "excerpt" not in out and _averaged_out(rec):
            # the whole of a pan or of busy footage averages to a featureless picture, which any
            # flat picture "matches" (a grey card with the mark copied on did); its stretches do
            # not, and an excerpt's windows change as theirs do
            out.update(_windows_in_step(rec, laid(), box, flat=True) or {
                "content": "uncertain", "why": out["why"] + ", but that picture is averaged out (moving footage) "
                "and no stretch of the registered video matches this one: uncertain"})
    shorter = segments is not None and len(frames) < segments["total"]  # then no part of it holds all of the clip
    if not shorter and (out["content"] != "match" or (out["difference"] or 0.0) > PART_LOOK):
        # the whole video's mean is not (quite) the registered picture: a part of it may be. A join
        # of two equal halves of similar footage averages to a "match" of about 0.26, so a part is
        # looked for then too, and named when it matches clearly better than the whole.
        part = _matching_part(rec, frames, geometry)
        if part is not None and (out["content"] != "match" or part["difference"] <= PART_BETTER * out["difference"]):
            out.update(part)
            out.pop("excerpt", None)
    if segments is not None and out["content"] == "match" and "frames" not in out:
        out.update(_held_still(rec, laid(), out, box))
    return out


def _held_still(rec: dict, laid: win.Frames, out: dict, box) -> dict:
    """A match made uncertain where the registered video moves (its windows change) and the
    suspect's picture holds still: the mark copied onto a still of the registered video's own
    background (its temporal median matched at 0.00-0.02, session 35), or a freeze frame."""
    segments = rec["segments"]
    still = win.still_copy(segments, laid, out.get("excerpt") or (0, segments["total"]), box)
    if still is None:
        return {}
    return {"content": "uncertain", "why": out["why"] + f", but the registered video moves there (its "
            f"{segments['frames']}-frame windows change by {still[0]:.1f} levels) while this one holds still "
            f"({still[1]:.1f}): the mark copied onto a still picture, or a freeze frame: uncertain"}


def _matching_run(rec: dict, view: np.ndarray, box, n_frames: int, whole: dict, laid=None) -> dict:
    """The suspect compared with each run of the registered video's windows it could be an excerpt
    of (`registry_segments.runs`): the best, where it is better than the whole was. `laid`: a
    call that returns the suspect's frames as read (`registry_windows.Frames`), to see, where the
    best run is flat, whether its own windows change in step with the registered ones."""
    sus = pic.suspect(view)
    best = None
    near = whole["content"] == "match"
    # a suspect that matches as a whole is the whole unless a stretch of its own length matches
    # better: a stretch of another length fits noise (a whole hue-shifted clip of 48 frames matched
    # frames 16-47 a little better), so it counts only where it beats the whole by more than a
    # loose match's margin (an excerpt at twice the speed whose whole matched at 0.43)
    runs = [(r, False) for r in seg.runs(rec["segments"], n_frames, near=near)]
    runs += [(r, True) for r in seg.runs(rec["segments"], n_frames, own=False)] if near else []
    for (a, b, luma, value), other_speed in runs:
        d, note, _ = pic.picture_difference(luma, value, view, box, sus)
        if other_speed and d is not None and d > whole["difference"] - PART_LOOK:
            continue
        flat = d is not None and float(pic.blurred(luma).std()) < FLOOR
        if flat:
            # a flat stretch (an end card, a black leader, a fast pan's) is matched by any flat
            # picture with a copied mark (session 34's recheck): alone, it can make an excerpt
            # uncertain, never confirm it
            d = max(d, FLAT_CAP)
        if d is not None and (best is None or d < best[0]):
            best = (d, note, a, b)
    if best is not None and best[0] > PART_LOOK and laid is not None:
        # a flat or loosely matching stretch: the suspect's own windows, in step with the
        # registered ones, may place it more surely (a fast pan's excerpt: flat; its 40 frames from
        # frame 3 matched frames 16-39 at 0.33)
        step = _windows_in_step(rec, laid(), box, flat=best[0] == FLAT_CAP)
        if step is not None and step["difference"] < best[0]:
            return step
    # taken where it is a better kind of answer, or clearly closer (a match of 0.47 for the whole
    # that a stretch matches at 0.10: the stretch is named)
    better = best is not None and (whole["difference"] is None or best[0] < whole["difference"] and (
        pic.content(best[0]) != whole["content"] or best[0] <= PART_BETTER * whole["difference"]))
    if not better:
        if whole["content"] == "different":  # no stretch of it is this picture either
            return {"why": whole["why"] + "; no stretch of it matches either"}
        return {}
    d, note, a, b = best
    content, total = pic.content(d), rec["segments"]["total"]
    span = f"frames {a}-{b - 1} of the {total} registered"
    why = {"match": f"the picture matches {span} ({_amount(d, note)}): an excerpt of the registered video"
                    + (", its colours changed" if note is not None else ""),
           "uncertain": f"the picture partly matches {span} ({_amount(d, note)}): an excerpt of it, edited, or "
                        "another picture",
           "different": f"the picture differs from the one registered and from each stretch of it (closest: {span}, "
                        f"difference {d:.2f}; 0 is the same)"}[content]
    return {"content": content, "difference": round(d, 3), "excerpt": [a, b], "why": why}


def _windows_in_step(rec: dict, laid: win.Frames, box, flat: bool) -> dict | None:
    """An excerpt placed by its own windows: they change as those of a stretch of the registered
    video do, at most `registry_windows.STEP_MATCH` apart, which a copy on still content never
    does. `flat`: the suspect's picture and its stretch's are featureless (a fast pan), which is
    said. None where they do not, or say nothing (the stretch does not change)."""
    step = win.in_step(rec["segments"], laid, box)
    if step is None or step["difference"] > win.STEP_MATCH:
        return None
    (a, b), total, w = step["frames"], rec["segments"]["total"], rec["segments"]["frames"]
    speed = {2.0: ", played at twice the speed", 0.5: ", played at half the speed"}.get(step["speed"], "")
    span = f"frames {a}-{b - 1} of the {total} registered"
    said = (f"the picture is featureless (moving footage), as {span} are, but window by window ({w} frames) it "
            f"changes as they do{speed}" if flat else
            f"window by window ({w} frames) the picture changes as {span} do{speed}")
    return {"content": "match", "difference": step["difference"], "excerpt": [a, b],
            "why": f"{said} (difference {step['difference']:.2f}; 0 is the same): an excerpt of the registered video"}


def _averaged_out(rec: dict) -> bool:
    """Whether the registered whole picture holds under half the structure of its stretches."""
    segments = rec["segments"]
    whole = float(pic.blurred(rec["thumbnail"]).std())
    parts = [float(pic.blurred(t).std()) for t in segments["luma"]]
    return whole < 0.5 * float(np.median(parts))


def _could_be_excerpt(whole: dict, view: np.ndarray) -> bool:
    """Whether a mismatch against a record without stretches could be an excerpt of moving footage:
    not where the brightness is beyond grading, the difference near its worst, or the suspect
    flat, which is a copied mark's case, not an excerpt's (session 34's recheck: a grey card read
    "uncertain (an excerpt?)" at difference 1.00, exit 0, against every older record)."""
    d = whole.get("difference")
    return d is not None and d < EXCERPT_MAX and float(pic.suspect(view)[0][0].std()) >= FLOOR


def _whole_only(whole: dict) -> dict:
    """A record from before session 34 keeps the whole clip's picture only, which an excerpt of
    moving footage need not match: a mismatch is then no evidence of a copied mark."""
    return {"content": "uncertain", "whole_only": True,
            "why": whole["why"] + "; the record keeps only the whole registered video's picture (it was registered "
                                  "before session 34), so this may be an excerpt of it: uncertain (an excerpt?)"}


def _matching_part(rec: dict, frames: np.ndarray, geometry: dict | None) -> dict | None:
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
            c = compare(rec["thumbnail"], view, box, rec.get("value_thumbnail"))
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
    fill = geo.fill_read(geometry, mean.shape)
    if str(geometry.get("view", "")).startswith("blur-fill") and fill is not None:
        # the picture over a blurred fill (`wm_fill`): compared as read, the fill left out (the
        # whole frame read "different" for a re-upload in the short-video format, session 38)
        y0, y1, x0, x1 = fill
        view = mean[y0:y1, x0:x1]
        view = np.ascontiguousarray(view[:, ::-1] if geometry["view"].endswith("mirrored") else view)
    else:  # at the cut the mark was read at (a bar search refines the measured bars by a few pixels)
        view = dict(geo.views(frames, mean, geo.cut_read(geometry, mean.shape))).get(geometry.get("view"), mean)
    return view, geometry.get("box") if geometry.get("crop") not in (None, 1.0) else None


__all__ = ["ENV", "THUMB", "registry_dir", "thumbnail", "register", "lookup", "compare", "resolve", "picture_as_read"]
