"""Write video files with PyAV: H.264 yuv420p MP4 (faststart) by default, atomically (a hidden
temporary file in the target's folder, renamed over the target at the end: on any failure a file
already at the target is untouched), keeping a source's sound, clock, colour tags and pixel
aspect when asked; a stream-copy `remux`; and `psnr`. Reading, and the one-line errors both share,
are in `evalkit.video`.
"""

from __future__ import annotations

import errno
import os
import secrets
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from evalkit.atomic import short_name
from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError, os_path
from evalkit.video import _check_path, _fail
from evalkit.video_audio import AudioCarry

# Muxer by the target's suffix.
_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow",
                 "slower", "veryslow", "placebo")


MIN_FPS, MAX_FPS = 0.01, 1000.0  # the rates written (and `--fps` takes)


def write_video(path, clip_or_frames, *, fps: float | None = None, crf: int = 18,
                preset: str = "medium", codec: str = "libx264", pix_fmt: str = "yuv420p",
                metadata: dict[str, str] | None = None, pad: bool = False, audio_from=None,
                primaries: int | None = None, transfer: int | None = None,
                sample_aspect: Fraction | None = None, times=None, interlaced: str | None = None) -> Path:
    """Encode a `Clip`, uint8 [T, H, W, 3] RGB frames, or an iterable of uint8 [H, W, 3] frames
    (encoded as they come: a long video in bounded memory); returns the path written.

    The file appears at `path` only once complete (temporary name + rename); on failure any
    file already at `path` is untouched. fps is stored as an exact rational (30000/1001 for
    29.97...). yuv420p needs even sizes: odd ones are an error unless `pad=True`, which
    repeats the last row/column. `audio_from`: a video whose audio streams go into the new file
    (copied, or as AAC where the container cannot hold their codec: `evalkit.video_audio`).
    `primaries`, `transfer`, `sample_aspect`: what the frames' RGB means and how wide a pixel is
    (default sRGB/BT.709, square); `picture_tags(src)` gives a source's, for a faithful re-encode.
    `times`: the source frames' presentation times in seconds (`iter_frames(times=...)`): a
    variable frame rate, and a start that is not at 0 (an MPEG-TS clock, a late picture beside
    early sound), are kept, so the new picture plays when the old one did and stays in step with
    `audio_from`'s sound; without them frames are 1/fps apart from 0. `interlaced`: "tff" or "bff"
    (`picture_tags` gives a source's field order): the frames are coded as interlaced fields, top or
    bottom first, as the source was (x264 only); None writes progressive frames.

    A `Clip` read from a file by a caller that wants it written back as it was (the `folder:`
    generator) may carry `meta["picture"]`: `picture_tags(src)` plus the frames' `times`; its
    entries are used where the arguments above are not given (times only while the clip still has
    one frame a time)."""
    p = Path(os_path(path, "write_video"))
    if isinstance(clip_or_frames, Clip):
        frames, fps = clip_or_frames.frames, fps or clip_or_frames.fps
        kept = clip_or_frames.meta.get("picture") or {}
        primaries = primaries if primaries is not None else kept.get("primaries")
        transfer = transfer if transfer is not None else kept.get("transfer")
        sample_aspect = sample_aspect if sample_aspect is not None else kept.get("sample_aspect")
        interlaced = interlaced if interlaced is not None else kept.get("interlaced")
        if times is None and kept.get("times") is not None and len(kept["times"]) == len(frames):
            times = kept["times"]
    elif isinstance(clip_or_frames, np.ndarray) or not hasattr(clip_or_frames, "__iter__"):
        frames = np.asarray(clip_or_frames)
    else:  # a stream: checked on its first frame, which is put back in front
        stream = iter(clip_or_frames)
        first = next(stream, None)
        first = np.zeros((0, 0, 0, 0), np.uint8) if first is None else np.asarray(first)[None]
        frames = _Stream(first, stream)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise _fail(p, f"frames must be uint8 [T, H, W, 3] with T >= 1, got {frames.dtype} "
                    f"{tuple(frames.shape)}", "convert them first (Clip.from_tensor does)")
    if fps is None or not fps > 0:
        raise _fail(p, f"a positive fps is required, got {fps}", "pass fps= (or write a Clip)")
    if not (MIN_FPS <= float(fps) <= MAX_FPS):
        # past 1,000 frames a second the encoder's clock merges frames (8 written at 5,000 read
        # back as 5; at 1e5 none decode), below 0.01 its rational overflows (session 32)
        raise _fail(p, f"cannot write at {fps:g} frames a second", f"give fps between {MIN_FPS:g} and {MAX_FPS:g}")
    if p.is_dir():
        raise BadInputError(f"{p}: is a directory; give a file name ending in .mp4")
    if not p.parent.is_dir():
        raise MissingResourceError(f"{p}: folder {p.parent} does not exist; create it first")
    if p.suffix.lower() not in _MUXERS:
        raise _fail(p, f"cannot write {p.suffix or 'a file without a suffix'}",
                    f"name the output {', '.join(_MUXERS)} (H.264 MP4 is the default)")
    if codec == "libx264" and preset not in _X264_PRESETS:  # x264 would print to stderr itself
        raise _fail(p, f"unknown x264 preset {preset!r}", f"use one of {', '.join(_X264_PRESETS)}")
    h, w = frames.shape[1:3]
    try:  # chroma-subsampled formats (yuv420p, nv12, yuv422p) need even sizes: read off the planes
        planes = av.VideoFormat(pix_fmt, 4, 4).components
    except ValueError:
        raise _fail(p, f"unknown pix_fmt {pix_fmt!r}", "use yuv420p (the default)") from None
    even_w, even_h = any(c.width < 4 for c in planes), any(c.height < 4 for c in planes)
    if (even_w and w % 2) or (even_h and h % 2):
        if not pad:
            raise _fail(p, f"frames are {w}x{h} but {pix_fmt} needs an even width and height",
                        "crop or resize to an even size, or pass pad=True")
        widths = ((0, (h % 2) * even_h), (0, (w % 2) * even_w), (0, 0))
        frames = (np.pad(f, widths, mode="edge") for f in frames)
        h, w = h + widths[0][1], w + widths[1][1]
    rate = (fps if isinstance(fps, Fraction) else Fraction(float(fps))).limit_denominator(100_000)
    fmt = _MUXERS[p.suffix.lower()]
    # Hidden, unique, same folder (so os.replace is an atomic rename on one filesystem).
    tmp = p.with_name(f".{short_name(p.stem)}.partial-{os.getpid()}-{secrets.token_hex(4)}{p.suffix}")
    opts = {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}
    if codec == "libx264":
        # x264's bitstream depends on its thread count, which defaults to the machine's CPU
        # count: fix it so that machines with different core counts write the same bytes. One
        # thread for small clips (thread start-up dominates), four for larger frames.
        # mbtree off: with it, this x264 build wrote different bitstreams for identical frames
        # (6 variants in 60 encodes of one 32x32 clip, also seen at 48 and 96 px; none with it
        # off), so same-seed runs decoded to different pixels. It costs a few % of bitrate.
        opts["x264-params"] = "mbtree=0"
        if interlaced in ("tff", "bff"):  # the source's field order, which players deinterlace by
            opts["x264-params"] += f":{interlaced}=1"
        opts["threads"] = "1" if h * w < 320 * 240 else "4"
    # faststart puts the index first (playable while downloading); use_metadata_tags keeps
    # arbitrary keys (the plain MP4 muxer silently drops all but a few standard ones).
    mux = {"movflags": "+faststart+use_metadata_tags"} if fmt in ("mp4", "mov") else {}
    try:
        with av.open("file:" + str(tmp.resolve()), "w", format=fmt, container_options=mux) as c:
            c.metadata.update({str(k): str(v) for k, v in (metadata or {}).items()})
            s = c.add_stream(codec, rate=rate, options=opts)
            s.width, s.height, s.pix_fmt = w, h, pix_fmt
            s.codec_context.time_base = 1 / rate
            # swscale converts RGB with the BT.601 matrix (limited range): say so in the stream.
            # Untagged, players guess, and browsers take HD video for BT.709 and shift its colours
            # (a saturated red 220,40,40 shown as 235,56,36). Primaries and transfer: sRGB's (BT.709).
            cc = s.codec_context
            if pix_fmt.startswith(("yuv", "nv")):
                cc.colorspace, cc.color_range = 6, 1
                cc.color_primaries, cc.color_trc = primaries or 1, transfer or 1
            if sample_aspect is not None and sample_aspect != 1:
                cc.sample_aspect_ratio = Fraction(sample_aspect).limit_denominator(65535)
            audio = AudioCarry(audio_from, c, fmt) if audio_from is not None else None
            clock = _Clock(times, rate, audio.start if audio is not None and audio.pending else None)
            if clock.exact is False:
                cc.time_base = clock.time_base
            if audio is not None:
                audio.shift(clock.origin)
            for i, f in enumerate(frames):
                if f.shape != (h, w, 3) or f.dtype != np.uint8:  # (only a stream can change)
                    raise ValueError(f"frame {i} is {f.dtype} {f.shape}, the first was uint8 {(h, w, 3)}")
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
                vf.pts = clock.pts(i)
                c.mux(s.encode(vf))
                if audio is not None:  # interleaved by time, as players read ahead
                    audio.mux_until(clock.seconds(i) + float(1 / rate))
            c.mux(s.encode(None))  # flush: the encoder holds back its last frames until told
            if audio is not None:
                audio.finish()
        os.replace(tmp, p)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, (av.FFmpegError, OSError, ValueError)):
            from evalkit.errors import user_path

            if getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS):
                raise _fail(user_path(str(p)), f"could not write video ({e.strerror})",
                            "free some disk space or write somewhere else") from None
            raise _fail(user_path(str(p)), f"could not write video ({type(e).__name__}: {e})",
                        "check the codec, pix_fmt, free disk space and permissions") from None
        raise
    return p


class _Clock:
    """When each written frame plays. Frames 1/rate apart from 0 (`exact`: pts i in units of
    1/rate) unless the source's `times` say otherwise: then pts on a 90 kHz clock (MPEG's),
    measured from `origin`, the earlier of the first frame and the first sound (a negative sound
    start is encoder priming, which the copied packets carry themselves)."""

    time_base = Fraction(1, 90_000)

    def __init__(self, times, rate: Fraction, audio_start: float | None):
        self.rate, self.origin, self.exact, self.times = rate, 0.0, True, None
        if not times or any(t is None for t in times):
            return
        t = np.asarray(times, dtype=float)
        origin = min(t[0], max(audio_start, 0.0)) if audio_start is not None else t[0]
        ticks = np.round((t - origin) / float(self.time_base)).astype(np.int64)
        if len(t) > 1 and not (np.diff(ticks) > 0).all():
            return  # repeated or backward times: no clock to keep
        self.origin = float(origin)
        on_grid = np.abs((t - origin) * float(rate) - np.arange(len(t))) < 0.25
        if not on_grid.all():  # a variable rate or a late start: keep the source's times
            self.exact, self.times = False, ticks

    def pts(self, i: int) -> int:
        if self.exact:
            return i
        if i < len(self.times):
            return int(self.times[i])
        # a frame past the given times (not expected): 1/rate after the last
        return int(self.times[-1] + round((i - len(self.times) + 1) / (self.rate * self.time_base)))

    def seconds(self, i: int) -> float:
        return float(i / self.rate) if self.exact else float(self.pts(i) * self.time_base)


class _Stream:
    """Frames coming one by one, looking like an array for write_video's checks: its first frame
    (as [1, H, W, 3]) stands for the shape and type."""

    def __init__(self, first: np.ndarray, rest):
        self.first, self.rest = first, rest
        self.dtype, self.ndim, self.shape = first.dtype, first.ndim, first.shape

    def __len__(self) -> int:
        return len(self.first)

    def __iter__(self):
        yield from self.first
        yield from self.rest


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 arrays of one shape, in dB; inf when equal."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs arrays of one shape, got {a.shape} and {b.shape}")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def remux(src, dst, format: str | None = None) -> Path:
    """Copy the video stream of `src` into a new container at `dst` without re-encoding (what
    `ffmpeg -c copy` does): pixels unchanged, container metadata and C2PA boxes dropped. The
    container follows `dst`'s suffix (mp4, mov, mkv) unless `format` names one."""
    src, dst = _check_path(src), Path(os_path(dst, "remux output"))
    fmt = format or _MUXERS.get(dst.suffix.lower())
    if fmt is None:
        raise BadInputError(f"{dst}: cannot remux into {dst.suffix!r}; use .mp4, .mov or .mkv")
    try:
        with av.open(str(src)) as cin, av.open(str(dst), "w", format=fmt) as cout:
            sin = cin.streams.video[0]
            sout = cout.add_stream_from_template(sin)
            for pkt in cin.demux(sin):
                if pkt.dts is None:  # the demuxer's flush packet
                    continue
                pkt.stream = sout
                cout.mux(pkt)
    except (av.FFmpegError, IndexError) as e:
        dst.unlink(missing_ok=True)
        raise _fail(src, f"cannot remux ({type(e).__name__})", "check that it is a readable video")
    return dst
