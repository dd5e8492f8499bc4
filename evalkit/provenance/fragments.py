"""Fragmented streams (DASH, HLS fMP4, CMAF): an init segment and its media segments.

    kind = segment_kind("init.mp4")                    # "init" | "media" | None
    segs = expand_fragments(["out/*.m4s"])            # files, folders or globs, in stream order
    prov, per_segment = read_fragmented_provenance("init.mp4", segs, trust)
    with joined_stream("init.mp4", segs) as path:     # one decodable file for the frame checks
        ...

A streamed video is split into an init segment (ftyp + moov with mvex, no frames) and media
segments (moof + mdat, often with styp/sidx), each served as its own file. C2PA signs such a
stream with one manifest in the init segment whose BMFF hash (v2, with a Merkle tree or per-
fragment hashes) covers the init segment and every media segment separately. The init segment
alone therefore fails validation ("inithash must not be present for non-fragmented media") and
a media segment alone holds no manifest and decodes to nothing: `verify` given either one says
what to give instead of calling the stream tampered or broken.

Each media segment is validated with the init segment on its own (c2pa-python's
`Reader.with_fragment`), so a changed, truncated or foreign segment is named. The stream's
state is the weakest of its segments' (trusted > valid > invalid). Watermark and detector read
the frames of init + segments joined in stream order: a temporary file, removed afterwards.

Signing such streams is not offered: c2pa-python has no API for it (sign the whole MP4 before
packaging it for streaming, or use a C2PA packager)."""

from __future__ import annotations

import glob
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from evalkit.errors import BadInputError, MissingResourceError
from evalkit.bmff import _children, _top_level_boxes, segment_kind  # noqa: F401 (segment_kind re-exported)

MEDIA_SEGMENT_SUFFIXES = (".m4s", ".m4v", ".mp4", ".cmfv", ".cmfa", ".m4a")
_STATE_ORDER = {"invalid": 0, "valid": 1, "trusted": 2}


def _stream_order(p: Path):
    """Natural order: seg-2 before seg-10 (numbers compared as numbers)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)] + [str(p)]


def expand_fragments(specs, init=None) -> list[Path]:
    """The media segments named by `specs`: files, folders (their media segments) or glob
    patterns, in stream order (natural sort within each spec), without duplicates and without
    the init segment itself. Raises a one-line error for a spec that names nothing."""
    out: list[Path] = []
    init_r = Path(init).resolve() if init is not None else None
    for spec in specs:
        p = Path(spec)
        if p.is_dir():
            found = [q for q in p.iterdir() if q.is_file() and q.suffix.lower() in MEDIA_SEGMENT_SUFFIXES
                     and segment_kind(q) == "media"]
            if not found:
                raise MissingResourceError(f"{p}: no media segments (.m4s, moof + mdat) in this folder; "
                                           "give the folder, files or a quoted glob that holds them")
        elif p.is_file():
            if segment_kind(p) != "media" and (init_r is None or p.resolve() != init_r):
                raise BadInputError(f"{p}: is not a media segment of a fragmented stream (moof + mdat); give "
                                    "the stream's .m4s segments only")
            found = [p]
        else:  # a glob: its media segments (a playlist, the init segment or notes beside them are skipped)
            found = [Path(q) for q in glob.glob(str(spec)) if Path(q).is_file() and segment_kind(q) == "media"]
            if not found:
                raise MissingResourceError(f"{spec}: no such file, folder, or media segments matching it; check "
                                           "the path (quote a glob so the shell does not expand it)")
        for q in sorted(found, key=_stream_order):
            if q.resolve() != init_r and q not in out:
                out.append(q)
    if not out:
        raise BadInputError(f"--fragments {' '.join(map(str, specs))}: names no media segment besides "
                            "the init segment; give the stream's .m4s files")
    return out


def read_fragmented_provenance(init, fragments, trust: str | None) -> tuple[dict, list[dict], str | None]:
    """(provenance, per-segment results, error) for a stream: the init segment's manifest,
    validated against every media segment on its own. `trust`: the PEM text of `load_trust`.
    Never raises for the files' content."""
    import c2pa

    from evalkit.provenance.c2pa import _one_line
    from evalkit.provenance.manifest_read import UNREADABLE_MANIFEST, _context, _empty_provenance, _parse_manifest

    prov, per, err = None, [], None
    for frag in fragments:
        try:
            with open(init, "rb") as fi, open(frag, "rb") as ff:
                reader = c2pa.Reader("video/mp4", fi, context=_context(trust))
                fi.seek(0)
                reader.with_fragment("video/mp4", fi, ff)
                with reader:
                    p = _parse_manifest(reader)
        except c2pa.C2paError.ManifestNotFound:
            return _empty_provenance() | {"manifest_source": "embedded"}, [], None
        except (c2pa.C2paError, OSError, ValueError) as e:
            p = _empty_provenance("invalid", [UNREADABLE_MANIFEST])
            err = err or f"{frag}: could not be checked against the manifest of {init}: {_one_line(e)}"
        except Exception as e:  # noqa: BLE001  a hostile manifest must not become a traceback
            p = _empty_provenance("invalid", [UNREADABLE_MANIFEST])
            err = err or f"{init}: C2PA manifest could not be interpreted: {_one_line(e)}"
        per.append({"file": str(frag), "state": p["state"], "failures": p["failures"]})
        if prov is None or (p["signer"] and not prov["signer"]):
            prov = p
    prov = dict(prov)
    prov["state"] = min((s["state"] for s in per), key=lambda s: _STATE_ORDER.get(s, 0))
    prov["failures"] = list(dict.fromkeys(c for s in per for c in s["failures"]))
    prov["manifest_source"] = "embedded"
    return prov, per, err


@contextmanager
def joined_stream(init, fragments):
    """A temporary file holding the init segment and the media segments end to end (what a
    player is fed), for decoding; removed on exit."""
    tmp = Path(tempfile.mkdtemp(prefix="evalkit-stream-"))
    try:
        path = tmp / ("joined" + (Path(init).suffix.lower() or ".mp4"))
        with open(path, "wb") as out:
            for part in [init, *fragments]:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        yield path
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def init_only_message(path) -> str:
    return (f"{path}: is the init segment of a fragmented (DASH/HLS) stream and holds no frames; its "
            f"manifest covers the media segments too: give them, e.g. evalkit verify {path} --fragments "
            f"'{Path(path).parent / '*.m4s'}'")


def media_only_message(path) -> str:
    return (f"{path}: is a media segment of a fragmented (DASH/HLS) stream, with no init segment; verify "
            f"the stream's init segment with --fragments naming this file")


__all__ = ["segment_kind", "expand_fragments", "read_fragmented_provenance", "joined_stream",
           "init_only_message", "media_only_message", "MEDIA_SEGMENT_SUFFIXES"]
