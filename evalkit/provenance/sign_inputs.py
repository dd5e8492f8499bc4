"""What a file given to `sign` is, and what a re-encode of it keeps: its container by its first
bytes (against what its name says), the container tags carried over, and the streams and
transparency a `--watermark` re-encode leaves behind, each said in a line (session 33)."""

from __future__ import annotations

from pathlib import Path

from evalkit.errors import BadInputError


# What a file is by its first bytes, against what its name says: c2pa picks its parser by the MIME
# type given (from the suffix), and a Matroska file named .mp4 read as MP4 gave its parser's words,
# "Box size extends beyond asset bounds" (session 33).
_FAMILY_BY_SUFFIX = {".mp4": "bmff", ".m4v": "bmff", ".mov": "bmff", ".mkv": "matroska", ".webm": "matroska",
                     ".avi": "avi", ".gif": "gif"}
_FAMILY_WORDS = {"bmff": ("MP4/MOV", ".mp4 (or .mov)"), "matroska": ("Matroska/WebM", ".mkv (or .webm)"),
                 "avi": ("AVI", ".avi"), "gif": ("GIF", ".gif")}


def sniff_container(path) -> str | None:
    """"bmff", "matroska", "avi" or "gif" by the file's first bytes; None for anything else."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return None
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "bmff"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "matroska"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if head[:4] == b"GIF8":
        return "gif"
    return None


def _check_named_as_is(src: Path, *, sidecar: bool) -> None:
    """Refuse, in one line naming the real container and the fix, a file whose name says another."""
    named, real = _FAMILY_BY_SUFFIX.get(src.suffix.lower()), sniff_container(src)
    if named is None or real is None or named == real:
        return
    what, rename = _FAMILY_WORDS[real]
    fix = f"rename it {rename}"
    if not sidecar and real == "matroska":  # c2pa cannot embed in Matroska: the renamed file goes by --sidecar
        fix += " and sign it with --sidecar, or sign it with --watermark (which re-encodes it as MP4)"
    elif sidecar:
        fix += " and sign it again"
    raise BadInputError(f"{src}: is {what}, not {_FAMILY_WORDS[named][0]} (its name says {src.suffix}); {fix}")


# Container tags a re-encode carries over: what the video is and when it was made. Location tags
# are left behind on purpose (a signed copy for publication should not publish where a camera
# stood), and so are the muxer's own (brands, encoder), which the new file states itself.
KEPT_TAGS = ("title", "creation_time", "date", "comment", "description", "artist", "copyright", "album",
             "genre", "language")


def kept_tags(src) -> dict[str, str]:
    import av

    try:
        with av.open(str(src)) as c:
            return {k: str(v) for k, v in c.metadata.items() if k.lower() in KEPT_TAGS and str(v).strip()}
    except (av.FFmpegError, OSError):
        return {}


def reencode_losses(src) -> list[str]:
    """What `sign --watermark`'s re-encode (one H.264 4:2:0 picture, the sound, the tags) leaves
    behind of `src`, in words, one line each: other video tracks, cover art, subtitle, timecode
    and other data tracks, an alpha channel (an interlaced picture keeps its field order). Reads
    the headers only."""
    import av

    from evalkit.safe_text import printable

    name = printable(str(src))
    out = []
    try:
        with av.open(str(src), metadata_errors="replace") as c:
            art = [s for s in c.streams.video if s.disposition & av.stream.Disposition.attached_pic]
            video = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            if len(video) > 1:
                out.append(f"{name}: has {len(video)} video streams; only the first (#0) is watermarked and kept, "
                           f"the other{'s are' if len(video) > 2 else ' is'} left out of the signed copy")
            if art:
                out.append(f"{name}: its cover art (an attached picture) is left out of the signed copy")
            others = _other_tracks(c)
            if others:
                out.append(f"{name}: its {others} left out of the signed copy (a watermarked copy carries "
                           "the picture and the sound)")
            if video:
                s0 = video[0]
                pix = s0.codec_context.pix_fmt if s0.codec_context is not None else None
                alpha = False
                if pix:
                    try:
                        alpha = any(getattr(comp, "is_alpha", False) for comp in av.VideoFormat(pix).components)
                    except ValueError:
                        alpha = False
                if alpha:  # a format that can hold transparency (GIF always decodes as bgra): is any there?
                    alpha = _shows_transparency(c, s0)
                alpha = alpha or str(s0.metadata.get("alpha_mode", s0.metadata.get("ALPHA_MODE", ""))) == "1"
                if alpha:
                    out.append(f"{name}: its alpha channel (transparency) is dropped: the watermarked copy is "
                               "opaque H.264 4:2:0, the transparent parts shown as their stored colour")
    except (av.FFmpegError, OSError, ValueError):
        return out
    return out


def _other_tracks(container) -> str:
    """The subtitle and data tracks (a camera's or an editor's timecode, GPS, chapters' text), in
    words: "timecode track (01:00:00:00) is", "2 subtitle tracks are"; "" when there are none."""
    parts = []
    subs = len(container.streams.subtitles)
    if subs:
        parts.append(f"{subs} subtitle tracks" if subs > 1 else "subtitle track")
    data = list(container.streams.data)
    timecode = [next((str(v) for k, v in d.metadata.items() if k.lower() == "timecode"), None) for d in data]
    timecode = [t for t in timecode if t is not None]
    if timecode:
        from evalkit.safe_text import printable  # the file's own text, printed on a terminal

        parts.append(f"timecode track ({printable(timecode[0])[:40]})")
    rest = len(data) - len(timecode)
    if rest:
        parts.append(f"{rest} data tracks" if rest > 1 else "data track")
    if not parts:
        return ""
    plural = len(parts) > 1 or subs > 1 or rest > 1
    return " and ".join(parts) + (" are" if plural else " is")


def _shows_transparency(container, stream, frames: int = 16) -> bool:
    """Whether any of the first `frames` frames has a pixel less than opaque: every GIF decodes to
    a format with alpha, and an opaque one was warned about (session 33)."""
    import av

    try:
        for i, frame in enumerate(container.decode(stream)):
            if frame.to_ndarray(format="rgba")[..., 3].min() < 255:
                return True
            if i + 1 >= frames:
                break
    except (av.FFmpegError, ValueError):
        return True  # could not look: say what may be lost
    return False
