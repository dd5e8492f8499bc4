"""ISO BMFF (MP4/MOV) at the box level, headers only: what signing checks before it hands a file to
c2pa (a complete file with ftyp, moov and mdat; its duration; how many boxes), whether a file
already carries a C2PA manifest (C2PA's uuid box), and whether it is a piece of a fragmented
stream. Never raises for a file's content. In the core (not `provenance`), since reading a video
needs it too (`video.py` names a stream segment for what it is)."""

from __future__ import annotations

import os
from pathlib import Path

C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the uuid box that holds a manifest


def _top_level_boxes(path, max_boxes: int = 4096):
    """[(type, offset, size, c2pa_uuid)] of a file's top-level ISO BMFF boxes, reading headers
    only; stops at the first box that is not well formed (`complete` False) and never raises
    for the content. Returns (boxes, complete, file_size)."""
    boxes, complete = [], False
    with open(path, "rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        pos = 0
        for _ in range(max_boxes):
            if pos == total:
                complete = True
                break
            if pos + 8 > total:
                break
            fh.seek(pos)
            head = fh.read(8)
            size, kind = int.from_bytes(head[:4], "big"), head[4:8]
            hdr = 8
            if size == 1:
                size, hdr = int.from_bytes(fh.read(8), "big"), 16
            elif size == 0:
                size = total - pos
            if size < hdr or pos + size > total or not all(32 <= b < 127 for b in kind):
                break
            is_c2pa = kind == b"uuid" and fh.read(16) == C2PA_UUID
            boxes.append((kind.decode("ascii"), pos, size, is_c2pa))
            pos += size
        else:  # max_boxes well-formed boxes (a long fragmented MP4): no sign of damage so far
            complete = True
    return boxes, complete, total


# c2pa's parser slows down faster than the square of the box count (40,000 empty boxes: 21 s;
# a million, an 8 MB file: no end in sight, and no Ctrl-C inside it). Real files have hundreds; a
# long fragmented MP4 tens of thousands (two boxes a fragment). Counted headers-only first.
MAX_BOXES = 50_000
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf", b"udta", b"mvex", b"moof",
               b"traf", b"mfra", b"sinf", b"schi"}


def box_count(path, limit: int = MAX_BOXES) -> int:
    """The ISO BMFF boxes of a file, top level and inside the structural containers (moov, trak,
    moof, ...), counted from headers only and up to `limit` + 1 (then it stops)."""
    count = 0
    with open(path, "rb") as fh:
        total = os.fstat(fh.fileno()).st_size
        todo = [(0, total)]  # (start, end) of box sequences still to walk
        while todo and count <= limit:
            pos, end = todo.pop()
            while pos + 8 <= end and count <= limit:
                fh.seek(pos)
                head = fh.read(16)
                size, kind, hdr = int.from_bytes(head[:4], "big"), head[4:8], 8
                if size == 1 and len(head) == 16:
                    size, hdr = int.from_bytes(head[8:16], "big"), 16
                elif size == 0:
                    size = end - pos
                if size < hdr or pos + size > end:
                    break  # not well formed: c2pa says so, fast
                count += 1
                if kind in _CONTAINERS:
                    todo.append((pos + hdr, pos + size))
                pos += size
    return count


def too_many_boxes(path) -> str | None:
    """A one-line refusal where the file holds more boxes than c2pa can be trusted to parse in
    reasonable time, else None (also for a file that is not ISO BMFF or cannot be read)."""
    try:
        n = box_count(path)
    except OSError:
        return None
    if n <= MAX_BOXES:
        return None
    return (f"{path}: holds over {MAX_BOXES:,} ISO BMFF boxes (real videos hold hundreds, a long fragmented one "
            "tens of thousands); refused rather than parsed for minutes: re-mux it (ffmpeg -c copy)")


def segment_kind(path) -> str | None:
    """"init" for an init segment of a fragmented stream (ftyp/moov with mvex, no media data),
    "media" for a media segment (moof + mdat with no moov), None for anything else (a whole
    MP4, fragmented in one file or not, or not ISO BMFF). Reads box headers only; never raises
    for the content."""
    try:
        boxes, _, _ = _top_level_boxes(path)
    except OSError:
        return None
    kinds = [b[0] for b in boxes]
    if "moov" in kinds and "mdat" not in kinds and "moof" not in kinds:
        moov = next(b for b in boxes if b[0] == "moov")
        try:
            return "init" if any(kind == b"mvex" for kind, _ in _children(path, moov)) else None
        except OSError:
            return None
    if "moov" not in kinds and "moof" in kinds and kinds[0] in ("styp", "sidx", "moof", "prft", "emsg"):
        return "media"
    return None


def has_c2pa_box(path) -> bool:
    """True if a top-level box of the file is C2PA's manifest uuid box (headers only read;
    False for anything that is not ISO BMFF or cannot be read)."""
    try:
        return any(b[3] for b in _top_level_boxes(path)[0])
    except OSError:
        return False


def _children(path, box: tuple):
    """(type, body) of the boxes directly inside `box` (from `_top_level_boxes`), from its first
    MiB (headers such as mvhd and mvex come early); stops at the first malformed one."""
    _, pos, size, _ = box
    with open(path, "rb") as fh:
        fh.seek(pos + 8)
        body = fh.read(min(size - 8, 1 << 20))
    i = 0
    while i + 8 <= len(body):
        n, kind = int.from_bytes(body[i:i + 4], "big"), body[i + 4:i + 8]
        yield kind, body[i:i + n] if n >= 8 else body[i:]
        if n < 8:
            return
        i += n


def _mp4_duration_ms(path, moov: tuple) -> int | None:
    """The movie duration from `mvhd` (ms), or None."""
    for kind, b in _children(path, moov):
        if kind == b"mvhd" and len(b) >= 40:
            if b[8] == 1:
                scale, dur = int.from_bytes(b[28:32], "big"), int.from_bytes(b[32:40], "big")
            else:
                scale, dur = int.from_bytes(b[20:24], "big"), int.from_bytes(b[24:28], "big")
            return int(round(1000 * dur / scale)) if scale and dur not in (0, 2**32 - 1, 2**64 - 1) else None
    return None


def _check_mp4(path: Path) -> int | None:
    """A cheap structural check before signing (ffmpeg's probe costs ~20 ms a file): a complete
    ISO BMFF file with ftyp, moov and mdat. Returns the duration in ms (None if unknown)."""
    from evalkit.errors import VideoError

    try:
        boxes, complete, total = _top_level_boxes(path)
    except OSError as e:
        raise VideoError(f"{path}: cannot read the file ({e.strerror}); check its permissions") from None
    if total == 0:
        raise VideoError(f"{path}: file is empty (0 bytes); re-export or re-download it")
    kinds = [b[0] for b in boxes]
    if not kinds or kinds[0] != "ftyp":
        raise VideoError(f"{path}: not an MP4/MOV file (no ftyp box at the start); re-encode it to "
                         "H.264 MP4 or sign with --watermark (which re-encodes)")
    if not complete or "moov" not in kinds or "mdat" not in kinds:
        raise VideoError(f"{path}: MP4 is truncated or damaged (boxes: {', '.join(kinds[:12])}); "
                         "re-export or re-download it")
    return _mp4_duration_ms(path, next(b for b in boxes if b[0] == "moov"))
