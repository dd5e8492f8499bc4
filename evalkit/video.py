"""Read and write video files with PyAV, with limits against hostile headers and one-line errors.

Reading accepts any container and codec this ffmpeg build decodes (mp4, mov, mkv, webm, avi,
animated gif, ...) and returns uint8 RGB frames [H, W, 3] (converted exact to rounding by each
frame's colour-matrix and range tags: `evalkit.video_rgb`), as players show them: a display
matrix (how phones store portrait video: landscape frames plus "turn a quarter") is applied,
quarter turns and mirrors, so metrics, detectors and the watermark see the upright picture and
a marked re-encode is upright without a matrix. `VideoInfo.width`/`height` are as stored.
Still-image formats (PNG, JPEG, WebP, ...) are refused: ffmpeg would happily call a PNG a
one-frame "video", but for an evaluation suite that is almost always the wrong file. Writing
(`write_video`, `remux`, `psnr`: `evalkit.video_write`, importable from here too) makes H.264
yuv420p MP4 (faststart), atomically: a hidden temporary file in the target's folder, renamed over
the target at the end. Facts read from headers and packets rather than the picture
(`picture_tags`, `display_turn`, `frame_timing`: `evalkit.video_facts`) are importable from here too.

Every failure a user can cause is an `evalkit.errors.VideoError` (a missing path is a
`MissingResourceError`, a directory a `BadInputError`) whose message is one line,
"<path>: <what is wrong>; <what to do>". PyAV's own exceptions never escape.

Truncated files are caught three ways: an MP4 whose index (moov) was cut off does not open; an
index that points past the end of the file is refused on the header (probe_video sees it);
and a full decode that yields fewer frames than an exact sample table lists (mp4/mov/avi) or
ends well before the track's stated duration (mkv/webm) is an error. Any decoder error mid-
stream is "damaged or truncated". Reading only `max_frames` checks only what it decodes.

Logging: PyAV (18 here) drops all ffmpeg log lines by default (its callback is a no-op until
`av.logging.set_level` is called), so nothing here touches the process-wide log setting.
Note that `set_level(ERROR)` would *add* noise: the lines then go to Python's `libav`
logger, which prints to stderr when no handler is configured.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

import av
from av.video.reformatter import VideoReformatter
import numpy as np

from evalkit.clip import Clip
from evalkit.video_rgb import to_rgb
from evalkit.safe_text import printable
from evalkit.errors import (BadInputError, MissingResourceError, VideoError, os_path, path_error_message,
                            special_file, special_file_message)

# Demuxers that open one picture, not a video (ffmpeg's image2 family).
_STILL_FORMATS = {"image2", "image2pipe"}
# Magic bytes of common video containers: (offset, bytes, name).
_SIGNATURES = [(4, b"ftyp", "MP4/MOV (moov atom missing?)"), (8, b"AVI ", "AVI"),
               (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"), (0, b"GIF8", "GIF")]


@dataclass(frozen=True)
class VideoLimits:
    """Guards against hostile headers exhausting memory; checked on the header, then while decoding."""

    max_frames: int = 20_000
    max_pixels: int = 8192 * 4320  # per frame, W*H
    max_decoded_bytes: int = 4 << 30  # T*H*W*3 of the decoded clip
    max_file_bytes: int = 8 << 30

    @classmethod
    def from_env(cls) -> "VideoLimits":
        """Defaults, overridden by EVALKIT_MAX_FRAMES / _PIXELS / _DECODED_BYTES / _FILE_BYTES."""
        kw = {}
        for name in ("max_frames", "max_pixels", "max_decoded_bytes", "max_file_bytes"):
            var = "EVALKIT_" + name.upper()
            raw = os.environ.get(var, "").strip()
            if raw:
                try:
                    kw[name] = int(raw.replace("_", ""))
                    assert kw[name] > 0
                except (ValueError, AssertionError):
                    raise BadInputError(f"{var}={raw!r}: not a positive integer; fix or unset it") from None
        return cls(**kw)

    def without_decode_budget(self) -> "VideoLimits":
        """These limits with no cap on the decoded size: for reading headers only, or frames
        streamed a segment at a time, where the whole clip is never in memory at once."""
        return replace(self, max_decoded_bytes=1 << 62)


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    container: str  # ffmpeg's demuxer name, e.g. "mov,mp4,m4a,3gp,3g2,mj2" or "matroska,webm"
    codec: str
    width: int
    height: int
    fps: float
    frames: int  # from the header; 0 if the container does not say (mkv, webm)
    duration: float  # seconds; 0 if unknown
    pix_fmt: str
    metadata: dict[str, str] = field(default_factory=dict, compare=False)  # container tags


def _fail(path, what: str, todo: str) -> VideoError:
    return VideoError(f"{path}: {what}; {todo}")


def _refuse_stream_segment(p: Path) -> None:
    """A piece of a fragmented (DASH/HLS) stream decodes to nothing alone: say so, and how to join it."""
    from evalkit.bmff import segment_kind

    kind = segment_kind(p)
    if kind:
        what = "the init segment" if kind == "init" else "a media segment"
        raise _fail(p, f"is {what} of a fragmented (DASH/HLS) stream, not a whole video",
                    "join the init segment and its media segments in order (cat init.mp4 seg-*.m4s > "
                    "whole.mp4), or verify the stream with `evalkit verify INIT --fragments SEGMENTS`")


def _animated_webp(p: Path) -> bool:
    """A RIFF WebP whose extended header (VP8X) sets the animation flag, or with an ANIM chunk
    among its first chunks."""
    try:
        with open(p, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    if head[:4] != b"RIFF" or head[8:12] != b"WEBP":
        return False
    return (head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)) or b"ANIM" in head[12:]


def _animated_png(p: Path) -> bool:
    """A PNG with an animation control chunk (acTL, an APNG), which comes before the first image data."""
    try:
        with open(p, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return False
    at, data = head.find(b"acTL"), head.find(b"IDAT")
    return at > 0 and (data < 0 or at < data)


def animated_image(p: Path) -> bool:
    """An animated WebP or PNG: a moving picture under a still image's name, which a folder of
    clips lists (and the reader then decodes, or names as undecodable) rather than passing over."""
    suffix = p.suffix.lower()
    if suffix not in (".webp", ".png") or not p.is_file():  # never open a FIFO to sniff it: it would block
        return False
    return _animated_webp(p) if suffix == ".webp" else _animated_png(p)


def _check_path(path) -> Path:
    p = Path(os_path(path, "video path"))
    try:
        exists = p.exists()
    except OSError as e:  # a name the OS refuses outright (over 255 bytes): one file's error, not the run's
        raise BadInputError((path_error_message(e) or (f"{p}: {e.strerror}; check the path",))[0]) from None
    if not exists:
        if p.is_symlink():
            raise MissingResourceError(f"{p}: is a link to {os.readlink(p)}, which does not exist; fix or remove "
                                       "the link")
        raise MissingResourceError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise BadInputError(f"{p}: is a directory, not a video file; give the path of a video file")
    what = special_file(p)
    if what:  # a FIFO would block the open; a device read as "empty (0 bytes)"
        raise BadInputError(special_file_message(p, what))
    return p


def _open(p: Path, limits: VideoLimits):
    """Open for reading and return (container, its video stream), after the header checks."""
    size = p.stat().st_size
    if size == 0:
        raise _fail(p, "file is empty (0 bytes)", "re-export or re-download it")
    if size > limits.max_file_bytes:
        raise _fail(p, f"file is {size} bytes, over the limit of {limits.max_file_bytes}",
                    "raise EVALKIT_MAX_FILE_BYTES if it is trusted")
    try:
        # "file:" stops ffmpeg reading the name as a protocol (concat:, http:, ...); the
        # whitelist stops playlists inside the file from reaching anything but local files.
        c = av.open("file:" + str(p.resolve()), options={"protocol_whitelist": "file"},
                    metadata_errors="replace")
    except av.error.PermissionError:
        raise _fail(p, "permission denied", "check the file's permissions") from None
    except (av.FFmpegError, OSError) as e:
        with open(p, "rb") as fh:
            head = fh.read(12)
        kind = next((k for at, sig, k in _SIGNATURES if head[at:at + len(sig)] == sig), None)
        if kind:  # a video container by its first bytes, but ffmpeg cannot parse its header
            raise _fail(p, f"{kind} header is damaged or incomplete (truncated, or not finished "
                        "writing)", "re-export or re-download it") from None
        _refuse_stream_segment(p)
        raise _fail(p, f"not a video file ffmpeg can read ({type(e).__name__})",
                    "check that it is a video (mp4, mkv, webm, avi, mov, gif)") from None
    try:
        if c.format.name == "webp_pipe" and _animated_webp(p):
            raise _fail(p, "is an animated WebP, which ffmpeg does not decode",
                        "convert it to MP4 or GIF with another tool (e.g. ImageMagick: magick IN.webp OUT.gif)")
        if c.format.name in _STILL_FORMATS or c.format.name.endswith("_pipe"):
            raise _fail(p, f"is a still image ({c.format.name}), not a video",
                        "convert it to a video or an animated GIF")
        # Skip cover art: an attached picture is a one-frame "video stream" in audio files.
        vs = [s for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
        if not vs:
            kinds = ", ".join(sorted({"cover art" if s.type == "video" else s.type for s in c.streams})) or "none"
            raise _fail(p, f"has no video stream (streams: {kinds})", "give a file with video")
        s = vs[0]
        if s.codec_context is None:  # PyAV 18: no decoder for the stream's codec tag
            raise _fail(p, "video codec is unknown to or not decodable by this ffmpeg build",
                        "re-encode it to H.264 (e.g. ffmpeg -i IN -c:v libx264 OUT.mp4)")
        # Sample tables (mp4/mov/avi) list each packet's byte range: one that runs past the end
        # of the file means the tail was cut off, which we can tell before decoding anything.
        ends = [e.pos + e.size for e in s.index_entries if e.pos >= 0]
        if ends and max(ends) > size:
            raise _fail(p, f"file is truncated (its index needs {max(ends)} bytes, the file has "
                        f"{size})", "re-export or re-download it")
        return c, s
    except BaseException:
        c.close()
        raise


def _info(p: Path, c, s) -> VideoInfo:
    rate = s.average_rate or s.guessed_rate or s.base_rate
    duration = _stream_duration(s) or (c.duration or 0) / av.time_base
    # the format's name (av1), not the decoder's that FFmpeg picked (libdav1d)
    codec = getattr(s.codec_context.codec, "canonical_name", None) or s.codec_context.name
    return VideoInfo(path=p, container=c.format.name, codec=codec,
                     width=int(s.codec_context.width), height=int(s.codec_context.height),
                     fps=float(rate) if rate else 0.0, frames=int(s.frames or 0),
                     duration=max(duration, 0.0), pix_fmt=s.codec_context.pix_fmt or "",
                     metadata=dict(c.metadata))


def _stream_duration(s) -> float:
    """The video stream's own duration in seconds (Matroska keeps it in a DURATION tag), or 0."""
    if s.duration and s.time_base:
        return float(s.duration * s.time_base)
    try:
        h, m, sec = s.metadata.get("DURATION", "").split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except ValueError:
        return 0.0


def _check_header(info: VideoInfo, limits: VideoLimits, max_frames: int | None, shrink: int = 1) -> None:
    p, w, h = info.path, info.width, info.height
    if w <= 0 or h <= 0:
        raise _fail(p, f"header gives no frame size ({w}x{h})", "re-encode the file")
    if w * h > limits.max_pixels:
        raise _fail(p, f"frames are {w}x{h}, over the limit of {limits.max_pixels} pixels",
                    "downscale it or raise EVALKIT_MAX_PIXELS if it is trusted")
    n = min(info.frames, max_frames) if max_frames else info.frames
    if n > limits.max_frames:
        raise _fail(p, f"header says {n} frames, over the limit of {limits.max_frames}",
                    "cut it shorter, or raise EVALKIT_MAX_FRAMES if the file is trusted")
    w, h = w // shrink, h // shrink  # what is kept of each frame
    if n * w * h * 3 > limits.max_decoded_bytes:
        raise _fail(p, f"{n} frames of {w}x{h} need {n * w * h * 3} bytes decoded, over the limit "
                    f"of {limits.max_decoded_bytes}", "cut or downscale it, or raise EVALKIT_MAX_DECODED_BYTES "
                    "if the machine has the memory")


def probe_video(path, limits: VideoLimits | None = None, check: bool = True) -> VideoInfo:
    """What the header says about a video, without decoding it; checks `limits` on the header
    unless `check` is False (a caller that reads only part of the video, reduced if need be,
    and wants the whole video's frame count: `detect`)."""
    p = _check_path(path)
    limits = limits or VideoLimits.from_env()
    c, s = _open(p, limits)
    with c:
        info = _info(p, c, s)
    if check:
        _check_header(info, limits, None)
    return info


def _expected_frames(s) -> int:
    """Frames the header promises, or 0 where its count is not exact. Only a sample-by-sample
    index read from the header (mp4/mov/avi) counts; edit-list discards and zero-byte "dropped
    frame" entries are left out, so healthy files with those do not look truncated."""
    entries = list(s.index_entries)
    if not s.frames or len(entries) < s.frames:
        return 0
    return sum(1 for e in entries if e.size > 0 and not e.is_discard)


def _start(path, max_frames, limits, need_fps=False, shrink: int = 1, times: list | None = None
           ) -> tuple[VideoInfo, Iterator[np.ndarray]]:
    """Open and check the header now (so a bad file fails at the call, not at the first
    `next()`); return the header's info and a generator that decodes and closes the file."""
    p = _check_path(path)
    limits = limits or VideoLimits.from_env()
    if max_frames is not None and max_frames < 1:
        raise BadInputError(f"{p}: max_frames must be at least 1, got {max_frames}; pass a positive count")
    c, s = _open(p, limits)
    try:
        info = _info(p, c, s)
        _check_header(info, limits, max_frames, shrink)
        if need_fps and not info.fps > 0:
            raise _fail(p, "header gives no frame rate", "re-encode it at a fixed frame rate")
        if info.width * info.height >= 320 * 240:
            # Frame + slice threads halve decode time on HD footage, but starting the thread
            # pool costs ~50 ms, which dominates small clips (a 16x32x32 clip decodes in ~2 ms).
            s.thread_type = "AUTO"
    except BaseException:
        c.close()
        raise
    return info, _frames(p, c, s, limits, max_frames, shrink, times)


def iter_frames(path, *, max_frames: int | None = None, limits: VideoLimits | None = None,
                times: list | None = None) -> Iterator[np.ndarray]:
    """Decode frames one by one as uint8 [H, W, 3] RGB; `max_frames` stops early (not an error).
    `times`: a list that gets each frame's presentation time in seconds on the file's clock
    (None where the file gives none), for `write_video(times=...)` to keep the timing."""
    return _start(path, max_frames, limits, times=times)[1]


def _side_data_bytes(frame, kind: str) -> bytes:
    """The bytes of a frame's side data of type `kind` (e.g. "DISPLAYMATRIX"), b"" where absent.
    PyAV 18.1.1 made the container a mapping keyed by type (iterating gives the types); 18.1.0
    iterated over the side data themselves. Both are read: a phone's portrait video came out
    sideways under 18.1.1 (session 36's CI: the release came out during the session)."""
    sd = frame.side_data
    for key in list(sd):
        item = key if hasattr(key, "type") else sd[key]
        if kind in str(getattr(item, "type", key)).upper():
            return bytes(item)
    return b""


def _display_transform(frame) -> tuple[bool, bool, bool] | None:
    """(transpose, flip rows, flip columns) that turn a decoded frame into the picture players show,
    from its display matrix (phones record portrait video as landscape plus a matrix that turns
    it); None where there is no matrix or it is the identity. Angles other than quarter turns
    (rare; ffmpeg itself would resample) are left as stored.

    ffmpeg's matrix [a b u; c d v; x y w] maps a stored pixel (x, y) to (a x + c y, b x + d y):
    a quarter turn has a = d = 0 and swaps the axes; negative entries reverse one."""
    import struct

    try:
        raw = _side_data_bytes(frame, "DISPLAYMATRIX")
    except Exception:  # noqa: BLE001  side data is optional; a damaged one means "as stored"
        return None
    if len(raw) != 36:
        return None
    a, b, _, c, d, _, _, _, _ = struct.unpack("<9i", raw)
    if a == d == 0 and b and c:
        t = (True, b < 0, c < 0)  # after the transpose, rows come from x (sign b), columns from y (c)
    elif b == c == 0 and a and d:
        t = (False, d < 0, a < 0)
    else:
        return None
    return t if any(t) else None


def _frames(p, c, s, limits, max_frames, shrink: int = 1, times: list | None = None) -> Iterator[np.ndarray]:
    n, shape, end, turn = 0, None, None, None
    # One reformatter for the stream keeps its swscale context: ~10x faster than
    # frame.to_ndarray(format=...) on small frames.
    rgb = VideoReformatter()
    try:
        try:
            for frame in c.decode(s):
                if shape is None:
                    shape, turn = (frame.height, frame.width), _display_transform(frame)
                    if frame.height * frame.width > limits.max_pixels:
                        raise _fail(p, f"frames are {frame.width}x{frame.height}, over the limit of "
                                    f"{limits.max_pixels} pixels", "raise EVALKIT_MAX_PIXELS if trusted")
                elif (frame.height, frame.width) != shape:
                    raise _fail(p, f"frame size changes at frame {n} from {shape[1]}x{shape[0]} to "
                                f"{frame.width}x{frame.height}", "re-encode it at one size")
                n += 1
                kept = (shape[0] // shrink, shape[1] // shrink)
                if n > limits.max_frames:
                    raise _fail(p, f"has more than {limits.max_frames} frames",
                                "cut it shorter, or raise EVALKIT_MAX_FRAMES if the file is trusted")
                if n * kept[0] * kept[1] * 3 > limits.max_decoded_bytes:
                    raise _fail(p, f"decoded frames exceed {limits.max_decoded_bytes} bytes",
                                "cut or downscale it, or raise EVALKIT_MAX_DECODED_BYTES if the machine has "
                                "the memory")
                if frame.time is not None:
                    end = frame.time + float((frame.duration or 0) * (frame.time_base or 0))
                # exact to rounding, by the frame's matrix and range tags (`video_rgb`); shrunk:
                # area average, each kept pixel the mean of a shrink x shrink block
                a = to_rgb(frame, rgb, None if shrink == 1 else kept)
                if turn:  # as players show it: upright, not as the camera stored it
                    a = a.transpose(1, 0, 2) if turn[0] else a
                    a = np.ascontiguousarray(a[::-1 if turn[1] else 1, ::-1 if turn[2] else 1])
                if times is not None:
                    times.append(frame.time)
                yield a
                if n == max_frames:
                    return  # early stop by request: the rest of the file is not checked
        except (av.FFmpegError, OSError) as e:
            raise _fail(p, f"damaged or truncated: decoding stopped after {n} frames "
                        f"({type(e).__name__})", "re-export or re-download it") from None
        if n == 0:
            _refuse_stream_segment(p)
            raise _fail(p, "no frame could be decoded", "re-export or re-download it")
        # Truncated tails decode cleanly to fewer frames. Exact counts come from sample tables;
        # without one (mkv, webm) compare where the last frame ends with the stream's own
        # duration, allowing 2 frames and 5% so that approximate headers never trip it. The end
        # is absolute (not minus the first timestamp), so a late-starting track cannot trip it.
        expected, want = _expected_frames(s), _stream_duration(s)
        if n < expected:
            raise _fail(p, f"truncated: decoded {n} of the {expected} frames its header lists",
                        "re-export or re-download it")
        fps = float(s.average_rate or s.guessed_rate or 0)
        if not expected and want and end is not None and fps:
            if end < want - max(2 / fps, 0.05 * want):
                raise _fail(p, f"truncated: frames end at {end:.2f} s of the {want:.2f} s "
                            "its header gives", "re-export or re-download it")
    finally:
        c.close()


def read_video(path, *, max_frames: int | None = None, limits: VideoLimits | None = None,
               prompt: str = "", meta: dict | None = None, shrink: int = 1, times: list | None = None) -> Clip:
    """Decode a video into a `Clip` (uint8 [T, H, W, 3] RGB, fps from the header); `shrink` k
    keeps each frame reduced k times in each direction (area average; the limits apply to that).
    `times`: a list that receives each frame's presentation time in seconds, as `iter_frames`'s."""
    path = os_path(path, "read_video")
    if isinstance(shrink, bool) or not isinstance(shrink, int) or shrink < 1:
        raise BadInputError(f"{path}: shrink must be a whole number >= 1, got {shrink!r}")
    times = [] if times is None else times
    info, it = _start(path, max_frames, limits, need_fps=True, shrink=shrink, times=times)
    frames = _gather(it, min(info.frames, max_frames or info.frames), label=Path(path).name)
    m = dict(meta or {})
    m.update(source=str(path), codec=info.codec, container=info.container)
    fps = fps_of_times(times)
    if fps is not None and abs(fps - info.fps) > 0.1 * info.fps:
        # The frames say otherwise than the header (a remux that kept the timestamps but wrote
        # another rate, a VFR phone clip): motion per second is judged on when frames show.
        m.update(header_fps=info.fps, fps_source="timestamps")
    else:
        fps = info.fps
    return Clip(frames=frames, fps=fps, prompt=prompt, meta=m)


def fps_of_times(times) -> float | None:
    """Frames per second from decoded frames' presentation times: one over the median interval,
    or None where fewer than 3 frames have distinct times (then the header's rate stands)."""
    t = np.unique(np.asarray([x for x in times if x is not None], dtype=np.float64))
    if len(t) < 3:
        return None
    d = float(np.median(np.diff(t)))
    return 1.0 / d if d > 0 else None


PROGRESS_BYTES = 256 << 20  # a decode this large takes seconds: a progress bar on a terminal


def _gather(it: Iterator[np.ndarray], n_hint: int, label: str = "") -> np.ndarray:
    """Stack decoded frames into one array, filled in place when the header gives the count (a
    list then `np.stack` would hold the clip twice at its peak). A long decode shows a progress
    bar on a terminal (`verify` of a 4K clip ran for minutes without a word)."""
    first = next(it)
    if n_hint * first.nbytes > PROGRESS_BYTES:
        from tqdm.auto import tqdm

        it = tqdm(it, total=n_hint - 1, initial=0, desc=f"decode {printable(label)}", unit="frame",
                  disable=None, leave=False)
    if n_hint < 2:
        return np.stack([first, *it])
    out = np.empty((n_hint, *first.shape), np.uint8)
    out[0], k, extra = first, 1, []
    for f in it:
        if k < n_hint:
            out[k] = f
            k += 1
        else:  # more frames than the header said
            extra.append(f)
    return np.concatenate([out[:k], np.stack(extra)]) if extra else out[:k]


# A video over the decode budget is checked (watermark, detector) on the first frames that fit,
# reduced by a whole factor that keeps the short side at least this long: the watermark's chips are
# fractions of the frame, and it reads after a resize to 0.5 as well as before (README).
CHECK_MIN_SIDE = 360
CHECK_MAX_FRAMES = 2048  # 82 s at 25 fps: a mark sits in every 32-frame segment


def shrink_to_fit(path, limits: VideoLimits | None = None, min_side: int = 64, max_frames: int | None = None) -> int:
    """The smallest whole factor k by which every frame of the video, each reduced k times (area
    average), fits the decode budget: 1 when it fits as it is. A 10-second 4K phone clip needs
    2 (7.5 GB decoded in full at 30 fps, against 4 GiB). Raises the header's one-line error when even a
    reduction to `min_side` pixels on the short side would not fit (a very long video)."""
    limits = limits or VideoLimits.from_env()
    p = _check_path(path)
    c, s = _open(p, limits)
    with c:
        info = _info(p, c, s)
    n = info.frames or (round(info.duration * info.fps) if info.duration and info.fps else 0)
    if max_frames is not None:  # only the first max_frames will be read
        n = min(n, max_frames)
    k = 1
    while n * (info.width // k) * (info.height // k) * 3 > limits.max_decoded_bytes \
            and min(info.width, info.height) // (k + 1) >= min_side:
        k += 1
    _check_header(info, limits, max_frames, k)  # still over: the header's own error says what to do
    return k


def read_for_checks(path, *, limits: VideoLimits | None = None) -> tuple[Clip, dict | None]:
    """(clip, None) when the whole video fits `limits` as it is; otherwise (its first frames that
    fit, each reduced k times, {"frames_read", "frames", "shrink"}): a long HD video an investigator
    brings is still checked, in bounded memory, instead of refused."""
    limits = limits or VideoLimits.from_env()
    p = _check_path(path)
    c, s = _open(p, limits)
    with c:
        info = _info(p, c, s)
    n = info.frames or (round(info.duration * info.fps) if info.duration and info.fps else limits.max_frames)
    if n <= limits.max_frames and n * info.width * info.height * 3 <= limits.max_decoded_bytes:
        return read_video(p, limits=limits), None
    k = max(1, min(info.width, info.height) // CHECK_MIN_SIDE)
    fit = limits.max_decoded_bytes // max(1, 3 * (info.width // k) * (info.height // k))
    take = int(max(1, min(fit, CHECK_MAX_FRAMES, limits.max_frames)))
    clip = read_video(p, limits=limits, max_frames=take, shrink=k)
    return clip, {"frames_read": clip.num_frames, "frames": info.frames or None, "shrink": k}


# The writing half lives in `evalkit.video_write`, and the header and packet facts in
# `evalkit.video_facts`; both import this module's checks, so their names are served from here as
# well, imported on first use, and `from evalkit.video import write_video` keeps working without an
# import cycle.
_WRITING = ("write_video", "remux", "psnr", "_MUXERS")
_FACTS = ("picture_tags", "display_turn", "frame_timing", "_COLOUR_UNSET", "_first_transform")


def __getattr__(name: str):
    if name in _WRITING:
        from evalkit import video_write

        return getattr(video_write, name)
    if name in _FACTS:
        from evalkit import video_facts

        return getattr(video_facts, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
