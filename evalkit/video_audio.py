"""Sound kept across a re-encode of the picture.

Watermarking re-encodes a video's picture; a user who signs a clip with sound expects the sound
to come out too. `AudioCarry` copies every audio stream of the source into the new file, packets
unchanged, interleaved with the new video by time. A codec the output container cannot hold
(Vorbis from a WebM into an MP4, for one) is decoded and encoded again as AAC, so no track is
ever dropped silently.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av

# What FFmpeg's MP4 and MOV muxers take as they are (no "experimental" flag needed).
_MP4_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_PCM_IN_MOV = ("pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_s24be", "pcm_s32le", "pcm_f32le", "pcm_u8")


def copyable(codec: str, fmt: str) -> bool:
    """Whether an audio stream of `codec` goes into container `fmt` without re-encoding."""
    if fmt == "matroska":
        return True
    return codec in _MP4_AUDIO or (fmt == "mov" and codec in _PCM_IN_MOV)


class AudioCarry:
    """Audio packets of `src`, made ready for output container `out` (format `fmt`) before its
    header is written; `mux_until(t)` writes those that start before t seconds, `finish()` the rest.
    Compressed audio is small (about 1 MB a minute at 128 kbit/s), so it is read up front.
    `start`: where the first audio packet plays (seconds on the source's clock); `shift(origin)`
    moves every packet so that `origin` becomes 0, as the new video's clock does."""

    def __init__(self, src: str | Path, out, fmt: str):
        self.out, self.pending = out, []
        with av.open(str(src)) as cin:
            for s in cin.streams.audio:
                name = s.codec_context.name
                n = len(out.streams.audio)
                if copyable(name, fmt):
                    o = out.add_stream_from_template(s)
                    self.pending += [(p, o) for p in cin.demux(s) if p.dts is not None]
                    cin.seek(0)
                else:
                    self.pending += self._transcode(cin, s, out)
                    cin.seek(0)
                for k in ("language", "title"):  # a player's audio menu: eng/fra, not "und" twice
                    if s.metadata.get(k) and len(out.streams.audio) > n:
                        out.streams.audio[-1].metadata[k] = s.metadata[k]
        self.pending.sort(key=lambda po: _seconds(po[0]))
        self.at = 0
        self.start = _seconds(self.pending[0][0]) if self.pending else 0.0

    def shift(self, origin: float) -> None:
        """Play every packet `origin` seconds earlier (the source's clock started there)."""
        for pkt, _ in self.pending:
            d = round(origin / pkt.time_base) if pkt.time_base else 0
            if d:
                pkt.pts = None if pkt.pts is None else pkt.pts - d
                pkt.dts = None if pkt.dts is None else pkt.dts - d

    @staticmethod
    def _transcode(cin, s, out) -> list:
        rate = s.codec_context.sample_rate or 48_000
        # the default layout for the channel count: a source's may be unordered ("1 channels"),
        # which the AAC encoder refuses
        o = out.add_stream("aac", rate=rate, layout=_LAYOUTS.get(s.codec_context.layout.nb_channels, "stereo"))
        packets, at = [], None
        for frame in cin.decode(s):
            # numbered in samples from where the source's sound starts on its clock, so that it
            # stays in step with the picture (`shift` then moves it with the video's origin)
            if at is None:
                at = round(frame.time * rate) if frame.time is not None else 0
            frame.pts, frame.time_base, at = at, Fraction(1, rate), at + frame.samples
            packets += [(p, o) for p in o.encode(frame)]
        packets += [(p, o) for p in o.encode(None)]
        return packets

    def mux_until(self, seconds: float) -> None:
        while self.at < len(self.pending) and _seconds(self.pending[self.at][0]) < seconds:
            self._mux(self.at)

    def finish(self) -> None:
        while self.at < len(self.pending):
            self._mux(self.at)

    def _mux(self, i: int) -> None:
        pkt, stream = self.pending[i]
        pkt.stream = stream
        self.out.mux(pkt)
        self.pending[i] = None  # free as we go
        self.at += 1


def _seconds(pkt) -> float:
    t = pkt.pts if pkt.pts is not None else pkt.dts
    return float(t * pkt.time_base) if t is not None and pkt.time_base else 0.0
