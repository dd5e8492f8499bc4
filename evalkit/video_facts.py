"""Facts about a video read from its headers and packets (and at most the first frame's display
matrix), not from its decoded picture: the colour tags and pixel aspect a faithful re-encode must
repeat (`picture_tags`), how players turn the stored frames (`display_turn`), and when the frames
show (`frame_timing`). They open the file with `evalkit.video`'s checks but are no part of the frame
reader, so they live apart from it; `evalkit.video` serves them too, imported on first use.
"""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np

from evalkit.video import VideoLimits, _check_path, _display_transform, _open

# ffmpeg's AVColorPrimaries / AVColorTransferCharacteristic: 0 reserved, 1 BT.709, 2 unspecified
_COLOUR_UNSET = (0, 2)
# ffmpeg's AVFieldOrder: 0 unknown, 1 progressive, 2 TT, 3 BB, 4 TB, 5 BT (coded, then shown first)
_FIELD_ORDER = {2: "tff", 3: "bff", 4: "bff", 5: "tff"}


def picture_tags(path) -> dict:
    """What a re-encode of `path`'s frames (as `read_video` returns them) must say for players to
    show the same picture: `primaries` and `transfer` (ffmpeg's codes: an HDR phone clip's BT.2020
    and HLG, which shown as BT.709 look washed out; None where unset) and `sample_aspect` (a
    Fraction for non-square pixels, e.g. anamorphic 720x576 shown 16:9; None for square ones,
    inverted where the display matrix turns the picture a quarter), and for an interlaced video
    `interlaced` ("tff" or "bff": the header's field order, top or bottom field first). For
    `write_video(**tags)`."""
    p = _check_path(path)
    c, s = _open(p, VideoLimits.from_env())
    with c:
        cc = s.codec_context
        tags = {"primaries": None if cc.color_primaries in _COLOUR_UNSET else int(cc.color_primaries),
                "transfer": None if cc.color_trc in _COLOUR_UNSET else int(cc.color_trc),
                "sample_aspect": None}
        fields = _FIELD_ORDER.get(int(getattr(cc, "field_order", 0) or 0))
        if fields:  # only where interlaced: a progressive video's tags are the three above
            tags["interlaced"] = fields
        sar = s.sample_aspect_ratio or cc.sample_aspect_ratio
        if sar and sar > 0 and sar != 1:
            tags["sample_aspect"] = Fraction(sar)
            turn = _first_transform(c, s)
            if turn and turn[0]:
                tags["sample_aspect"] = 1 / tags["sample_aspect"]
    return tags


def video_stream_count(path) -> int:
    """How many video streams `path` holds, cover art (an attached picture) not counted; every
    reader uses the first (#0), so a second camera angle or track is otherwise never seen."""
    p = _check_path(path)
    c, _ = _open(p, VideoLimits.from_env())
    with c:
        return sum(1 for s in c.streams.video if not s.disposition & av.stream.Disposition.attached_pic)


def _first_transform(c, s):
    try:
        first = next(c.decode(s), None)
    except (av.FFmpegError, OSError):
        return None
    return _display_transform(first) if first is not None else None


def display_turn(path) -> str | None:
    """How players turn the stored frames (the first frame's display matrix), in words, e.g.
    "a quarter turn clockwise"; None when shown as stored. Decodes one frame."""
    p = _check_path(path)
    c, s = _open(p, VideoLimits.from_env())
    with c:
        turn = _first_transform(c, s)
    if not turn:
        return None
    words = {(True, False, True): "a quarter turn clockwise", (True, True, False): "a quarter turn counter-clockwise",
             (False, True, True): "a half turn", (False, False, True): "mirrored left-right",
             (False, True, False): "mirrored upside down", (True, False, False): "transposed",
             (True, True, True): "transposed across the other diagonal"}
    return words.get(turn, "turned")


def frame_timing(path, max_packets: int = 100_000) -> dict:
    """When the frames show, from the packets' timestamps (no decoding): {"start_time" (s, on the
    file's clock), "interval_min", "interval_max" (s), "variable_frame_rate", "packets" (the
    video packets with a timestamp, one a frame; None past `max_packets`), "fps_from_timestamps"
    (one over the median interval), "packets_cut" (frames an edit list cuts: stored, never shown,
    left out of the rest)}. A header's frame
    rate is one number; a phone's or a screen recorder's frames come at uneven intervals, and an
    MPEG-TS clock seldom starts at 0, which matter to whoever lines a video up with others."""
    p = _check_path(path)
    c, s = _open(p, VideoLimits.from_env())
    times, cut = [], 0
    with c:
        for pkt in c.demux(s):
            if pkt.is_discard:  # before an edit list's start (`ffmpeg -ss ... -c copy`): never shown
                cut += 1
                continue
            t = pkt.pts if pkt.pts is not None else pkt.dts
            if t is not None and pkt.size and pkt.time_base:
                times.append(float(t * pkt.time_base))
            if len(times) >= max_packets:
                break
    if not times:
        return {"start_time": None, "interval_min": None, "interval_max": None, "variable_frame_rate": None,
                "packets": 0, "fps_from_timestamps": None, "packets_cut": cut}
    t = np.unique(np.asarray(times))  # presentation order (B-frames come out of order)
    d = np.diff(t)
    counted = len(times) if len(times) < max_packets else None  # all of them, or not counted
    if not len(d):
        return {"start_time": float(t[0]), "interval_min": None, "interval_max": None, "variable_frame_rate": False,
                "packets": counted, "fps_from_timestamps": None, "packets_cut": cut}
    med = float(np.median(d))
    # a header rounds its clock (1/1000 s in Matroska): 1.5 ms and 10% of a frame count as steady
    vfr = bool(d.max() - d.min() > max(0.0015, 0.1 * med))
    return {"start_time": float(t[0]), "interval_min": float(d.min()), "interval_max": float(d.max()),
            "variable_frame_rate": vfr, "packets": counted,
            "fps_from_timestamps": 1.0 / med if med > 0 and len(d) >= 2 else None, "packets_cut": cut}


def frames_shown(info: dict) -> tuple[int, str | None]:
    """The frames a player shows, and where the number comes from: the header's count less those
    an edit list cuts, else the packets counted (Matroska, WebM, MPEG-TS and fragmented MP4 headers
    hold no count), else duration x rate. `info`: a probe's header facts ("frames", "duration",
    "fps") with `frame_timing`'s. `probe`'s over-limit flags are computed from it (from the
    header's 0 a 320-frame MKV read as under any frame limit), and `detect` reports it."""
    cut, counted = info.get("packets_cut") or 0, info.get("packets")
    if info["frames"]:
        if counted and counted < info["frames"] - cut:  # a cut on a keyframe: FFmpeg leaves the
            return counted, "packets"  # samples before it out of its index, without a discard flag
        return max(info["frames"] - cut, 0), "header less cut" if cut else "header"
    if info.get("packets"):
        return int(info["packets"]), "packets"
    if info.get("duration") and info.get("fps"):
        return round(info["duration"] * info["fps"]), "duration"
    return 0, None
