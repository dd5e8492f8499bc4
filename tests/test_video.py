"""evalkit.video: reading real footage, round trips, atomic writes, and one-line errors for every
kind of bad file (missing, empty, not a video, truncated, no video stream, unknown codec, too big)."""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from evalkit import video, video_write
from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError, VideoError
from evalkit.video import VideoLimits, iter_frames, probe_video, psnr, read_video, write_video

REAL = {  # name: (width, height, fps, frames)
    "bikes.mp4": (640, 272, 25.0, 250),
    "carphone_pristine.mp4": (176, 144, 30000 / 1001, 120),
    "carphone_distorted.mp4": (176, 144, 30000 / 1001, 120),
    "bigbuckbunny.mp4": (1280, 720, 25.0, 132),
}


def synth(t=24, h=72, w=96) -> np.ndarray:
    """Smooth colour gradients with a soft-edged bright disc moving across: uint8 [T, H, W, 3]."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    bg = np.stack([40 + 150 * xx / w, 60 + 120 * yy / h, 170 - 80 * xx / w], -1)
    out = []
    for i in range(t):
        d = np.hypot(xx - (12 + 3 * i), yy - (h / 2 + 10 * np.sin(i / 4)))
        a = np.clip((12 - d) / 3, 0, 1)[..., None]  # anti-aliased edge, as a renderer makes
        out.append(bg * (1 - a) + np.array([235, 220, 200]) * a)
    return np.clip(np.stack(out) + 0.5, 0, 255).astype(np.uint8)


def pyav_write(path, frames, codec, pix_fmt, fps=25, fmt=None, container_options=None):
    """Write with PyAV directly (not through evalkit), for containers write_video does not make."""
    with av.open(str(path), "w", format=fmt, container_options=container_options or {}) as c:
        s = c.add_stream(codec, rate=Fraction(fps))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    return Path(path)


def check_error(excinfo, path, cls=VideoError) -> str:
    """The error is exactly `cls`, one line, names the file and says what to do."""
    assert type(excinfo.value) is cls, type(excinfo.value)
    msg = str(excinfo.value)
    assert "\n" not in msg and Path(path).name in msg and "; " in msg, msg
    return msg


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    return synth()


@pytest.fixture
def mp4(tmp_path, frames) -> Path:
    return write_video(tmp_path / "clip.mp4", frames, fps=25)


# --- real footage ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_probe_real_footage(real_videos_dir, name):
    w, h, fps, n = REAL[name]
    info = probe_video(real_videos_dir / name)
    assert (info.width, info.height, info.frames) == (w, h, n)
    assert info.fps == pytest.approx(fps, rel=1e-9)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p" and "mp4" in info.container
    assert info.duration == pytest.approx(n / fps, rel=1e-3)


def test_read_real_footage_in_full_and_in_part(real_videos_dir):
    before = sorted(os.listdir(real_videos_dir))
    clip = read_video(real_videos_dir / "carphone_pristine.mp4", prompt="a man in a car")
    assert clip.frames.shape == (120, 144, 176, 3) and clip.frames.dtype == np.uint8
    assert clip.fps == pytest.approx(30000 / 1001) and clip.prompt == "a man in a car"
    assert clip.meta["source"].endswith("carphone_pristine.mp4") and clip.meta["codec"] == "h264"
    distorted = read_video(real_videos_dir / "carphone_distorted.mp4")
    assert 15 < psnr(clip.frames, distorted.frames) < 40  # same scene, heavily compressed
    for name, n in (("bikes.mp4", 10), ("bigbuckbunny.mp4", 4)):
        w, h, fps, _ = REAL[name]
        part = read_video(real_videos_dir / name, max_frames=n, meta={"k": 1})
        assert part.frames.shape == (n, h, w, 3) and part.fps == fps and part.meta["k"] == 1
        assert part.frames.std() > 10  # real picture content, not a blank decode
    assert sorted(os.listdir(real_videos_dir)) == before


def test_iter_frames_is_lazy_and_matches_read(real_videos_dir):
    it = iter_frames(real_videos_dir / "bikes.mp4")
    first = [next(it) for _ in range(3)]
    it.close()
    ref = read_video(real_videos_dir / "bikes.mp4", max_frames=3).frames
    assert all(f.shape == (272, 640, 3) for f in first)
    np.testing.assert_array_equal(np.stack(first), ref)


# --- round trips -----------------------------------------------------------------------------


def test_roundtrip_mp4_quality_and_layout(tmp_path, frames):
    out = write_video(tmp_path / "clip.mp4", frames, fps=25, metadata={"evalkit_prompt": "a disc"})
    assert os.listdir(tmp_path) == ["clip.mp4"]  # nothing else left in the folder
    info = probe_video(out)
    assert (info.codec, info.pix_fmt, info.frames, info.fps) == ("h264", "yuv420p", len(frames), 25.0)
    assert info.metadata["evalkit_prompt"] == "a disc"
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))
    clip = read_video(out)
    assert clip.frames.shape == frames.shape and clip.fps == 25.0
    assert psnr(clip.frames, frames) > 35


def test_same_frames_encode_to_the_same_bytes(tmp_path):
    # With x264's default mbtree this build wrote several bitstreams for one 32x32 world clip
    # (6 variants in 60 encodes), so same-seed renders decoded to different pixels.
    from evalkit.world.clips import make_clip_from_seed

    clip = make_clip_from_seed(17, "test")
    digests = {write_video(tmp_path / f"{i}.mp4", clip).read_bytes() for i in range(40)}
    assert len(digests) == 1


@pytest.mark.parametrize("fps", [8, 24, 30000 / 1001, 29.97, 12.5])
def test_fps_is_stored_exactly_and_all_frames_come_back(tmp_path, fps):
    f = synth(t=7, h=32, w=48)  # an odd count: the encoder's held-back frames must be flushed
    out = write_video(tmp_path / "f.mp4", Clip(frames=f, fps=fps), preset="ultrafast")
    info = probe_video(out)
    assert info.fps == pytest.approx(fps, rel=1e-12) and info.frames == 7
    assert read_video(out).num_frames == 7


def test_write_clip_fps_can_be_overridden_and_mkv(tmp_path, frames):
    out = write_video(tmp_path / "c.mp4", Clip(frames=frames[:4], fps=8), fps=16, preset="ultrafast")
    assert probe_video(out).fps == 16
    out = write_video(tmp_path / "c.mkv", frames[:4], fps=np.float32(12), metadata={"title": "t"})
    info = probe_video(out)
    assert (info.container, info.fps, info.metadata["title"]) == ("matroska,webm", 12.0, "t")
    assert read_video(out).num_frames == 4


@pytest.mark.parametrize(
    "name, codec, pix_fmt, tol, fmt",
    [("a.mkv", "libx264", "yuv420p", 5, None), ("a.webm", "libvpx-vp9", "yuv420p", 8, None),
     ("a.gif", "gif", "rgb8", 25, None), ("a.avi", "mpeg4", "yuv420p", 8, None),
     ("a.mov", "mjpeg", "yuvj420p", 8, None),
     # camcorder (AVCHD) and broadcast transport streams, MPEG-2 program streams, phones' 3GP,
     # Windows Media, raw YUV4MPEG test sequences: no sample tables in most of them
     ("a.mts", "libx264", "yuv420p", 5, "mpegts"), ("a.mpg", "mpeg2video", "yuv420p", 8, "mpeg"),
     ("a.3gp", "libx264", "yuv420p", 5, "3gp"), ("a.wmv", "wmv2", "yuv420p", 8, "asf"),
     ("a.y4m", "rawvideo", "yuv420p", 3, "yuv4mpegpipe")],
)
def test_read_other_containers(tmp_path, frames, name, codec, pix_fmt, tol, fmt):
    from evalkit.clipset import read_index

    f = frames[:10]
    path = pyav_write(tmp_path / name, f, codec, pix_fmt, fps=25, fmt=fmt)
    clip = read_video(path)
    assert clip.frames.shape == f.shape and clip.fps == 25.0 and clip.meta["container"]
    assert np.abs(clip.frames.astype(int) - f).mean() < tol
    # a folder of such files is a folder of videos (score, bench folder:, detectors)
    assert [r["file"] for r in read_index(tmp_path)] == [name]
    if name in ("a.mkv", "a.webm"):  # no frame count in the header, and that is not "truncated"
        assert probe_video(path).frames == 0


def test_odd_size_is_an_error_unless_padded(tmp_path, frames):
    odd = frames[:3, :71, :95]
    with pytest.raises(VideoError) as e:
        write_video(tmp_path / "odd.mp4", odd, fps=10)
    assert "even" in check_error(e, "odd.mp4") and "pad=True" in str(e.value)
    assert os.listdir(tmp_path) == []
    out = write_video(tmp_path / "odd.mp4", odd, fps=10, pad=True, preset="ultrafast")
    clip = read_video(out)
    assert clip.frames.shape == (3, 72, 96, 3)
    assert psnr(clip.frames[:, :71, :95], odd) > 35


def test_write_rejects_bad_arguments(tmp_path, frames):
    target = tmp_path / "x.mp4"
    for kwargs in ({"clip_or_frames": frames.astype(np.float32), "fps": 8},
                   {"clip_or_frames": frames[0], "fps": 8},
                   {"clip_or_frames": frames[:0], "fps": 8},
                   {"clip_or_frames": frames},  # a bare array needs fps
                   {"clip_or_frames": frames, "fps": 8, "preset": "bogus"},
                   {"clip_or_frames": frames, "fps": 8, "codec": "no-such-codec"},
                   {"clip_or_frames": frames, "fps": 8, "pix_fmt": "no-such-fmt"},
                   {"path": tmp_path / "x.avi", "clip_or_frames": frames, "fps": 8}):
        kwargs.setdefault("path", target)
        with pytest.raises(VideoError) as e:
            write_video(**kwargs)
        check_error(e, kwargs["path"])
    with pytest.raises(MissingResourceError) as e:
        write_video(tmp_path / "nowhere" / "x.mp4", frames, fps=8)
    check_error(e, "x.mp4", MissingResourceError)
    with pytest.raises(BadInputError) as e:
        write_video(tmp_path, frames, fps=8)
    check_error(e, tmp_path, BadInputError)
    assert os.listdir(tmp_path) == []


# --- atomic writes ---------------------------------------------------------------------------


def test_failed_write_keeps_old_target_and_leaves_no_temp(tmp_path, frames, monkeypatch):
    target = write_video(tmp_path / "keep.mp4", frames[:4], fps=8, preset="ultrafast")
    old = target.read_bytes()
    seen = []

    def broken_replace(src, dst):
        seen.append(Path(src))
        assert Path(src).stat().st_size > 0 and Path(src).parent == tmp_path
        assert Path(src).name.startswith(".keep.partial-")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(video_write.os, "replace", broken_replace)
    with pytest.raises(VideoError) as e:
        write_video(target, frames, fps=25)
    check_error(e, target)
    assert seen and target.read_bytes() == old and os.listdir(tmp_path) == ["keep.mp4"]

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(video_write.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):  # not swallowed, not wrapped; still cleaned up
        write_video(target, frames, fps=25)
    assert target.read_bytes() == old and os.listdir(tmp_path) == ["keep.mp4"]


def test_encoder_failure_keeps_old_target(tmp_path, frames):
    target = write_video(tmp_path / "keep.mp4", frames[:4], fps=8, preset="ultrafast")
    old = target.read_bytes()
    with pytest.raises(VideoError) as e:  # an MP4 cannot hold GIF: fails inside the writer
        write_video(target, frames, fps=25, codec="gif", pix_fmt="rgb8")
    check_error(e, target)
    assert target.read_bytes() == old and os.listdir(tmp_path) == ["keep.mp4"]


# --- bad inputs ------------------------------------------------------------------------------


def _bad(tmp_path, name, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _assert_unreadable(path, cls=VideoError, contains=""):
    """probe_video, iter_frames (at the call, before any next()) and read_video all refuse."""
    for fn in (probe_video, iter_frames, read_video):
        with pytest.raises(cls) as e:
            fn(path)
        msg = check_error(e, path, cls)
        assert contains in msg, msg
    return msg


def test_missing_path_and_directory(tmp_path):
    _assert_unreadable(tmp_path / "nope.mp4", MissingResourceError, "no such file")
    (tmp_path / "d.mp4").mkdir()
    _assert_unreadable(tmp_path / "d.mp4", BadInputError, "directory")


def test_empty_text_and_random_files(tmp_path):
    _assert_unreadable(_bad(tmp_path, "empty.mp4", b""), contains="empty")
    _assert_unreadable(_bad(tmp_path, "notes.mp4", b"hello\nnot a video\n" * 20), contains="not a video")
    rnd = np.random.default_rng(0).integers(0, 256, 8192, dtype=np.uint8).tobytes()
    _assert_unreadable(_bad(tmp_path, "noise.mkv", rnd), contains="not a video")


def test_still_image_is_refused(tmp_path, frames):
    # Policy: ffmpeg decodes a PNG as a one-frame "video"; evalkit refuses still images.
    png = tmp_path / "still.png"
    with av.open(str(png), "w") as c:
        s = c.add_stream("png")
        s.width, s.height, s.pix_fmt = 96, 72, "rgb24"
        c.mux(s.encode(av.VideoFrame.from_ndarray(frames[0], format="rgb24")))
        c.mux(s.encode(None))
    _assert_unreadable(png, contains="still image")


def test_audio_only_file(tmp_path):
    wav = tmp_path / "tone.wav"
    with av.open(str(wav), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        tone = (np.sin(np.arange(4000) / 5) * 8000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate = 8000
        c.mux(s.encode(frame))
        c.mux(s.encode(None))
    _assert_unreadable(wav, contains="no video stream (streams: audio)")


@pytest.mark.parametrize("fraction", [0.5, 0.95])
def test_truncated_mp4_without_moov(tmp_path, frames, fraction):
    # A plain (non-faststart) MP4 keeps its index at the end: cutting the tail loses it.
    whole = pyav_write(tmp_path / "plain.mp4", frames, "libx264", "yuv420p").read_bytes()
    cut = _bad(tmp_path, "cut.mp4", whole[: int(len(whole) * fraction)])
    _assert_unreadable(cut, contains="moov")


@pytest.mark.parametrize("fraction", [0.5, 0.95, 0.999])
def test_truncated_faststart_mp4(tmp_path, mp4, fraction):
    # The index survives at the front and points past the end: caught on the header.
    data = mp4.read_bytes()
    cut = _bad(tmp_path, "cut.mp4", data[: int(len(data) * fraction)])
    _assert_unreadable(cut, contains="truncated")


def test_unwritten_tail_is_damaged(tmp_path, mp4, frames):
    # Same size, but the last part never written (zeros, as a preallocated download leaves it).
    data = bytearray(mp4.read_bytes())
    data[int(len(data) * 0.9):] = bytes(len(data) - int(len(data) * 0.9))
    p = _bad(tmp_path, "holes.mp4", bytes(data))
    assert probe_video(p).frames == len(frames)  # the header looks fine
    with pytest.raises(VideoError) as e:
        read_video(p)
    assert "damaged or truncated" in check_error(e, p)


def test_fewer_frames_than_the_sample_table_lists(tmp_path, mp4, frames):
    # Make the last 4 samples valid but pictureless (an H.264 end-of-sequence NAL): the decoder
    # then returns 4 frames fewer, without any error. Only the frame count can tell.
    data = bytearray(mp4.read_bytes())
    with av.open(str(mp4)) as c:
        tail = [(e.pos, e.size) for e in c.streams.video[0].index_entries][-4:]
    for pos, size in tail:
        data[pos:pos + size] = (size - 4).to_bytes(4, "big") + b"\x0a" + bytes(size - 5)
    p = _bad(tmp_path, "short.mp4", bytes(data))
    with pytest.raises(VideoError) as e:
        read_video(p)
    assert f"decoded {len(frames) - 4} of the {len(frames)} frames" in check_error(e, p)
    assert read_video(p, max_frames=10).num_frames == 10  # asking for the intact start is fine


def test_truncated_webm_is_caught_by_duration(tmp_path, frames):
    data = pyav_write(tmp_path / "a.webm", frames, "libvpx-vp9", "yuv420p").read_bytes()
    cut = _bad(tmp_path, "cut.webm", data[: len(data) // 2])
    with pytest.raises(VideoError) as e:
        read_video(cut)
    assert "truncated" in check_error(e, cut)


def test_unknown_codec(tmp_path, mp4):
    data = mp4.read_bytes()
    at = data.index(b"avc1", data.index(b"stsd"))  # the sample entry's fourcc, not the ftyp brand
    p = _bad(tmp_path, "zzzz.mp4", data[:at] + b"zzzz" + data[at + 4:])
    _assert_unreadable(p, contains="codec")


def test_resolution_change_mid_stream(tmp_path):
    # MJPEG frames carry their own size, so one stream can switch: mux two encoders' packets.
    p = tmp_path / "switch.mkv"
    with av.open(str(p), "w") as c:
        s = c.add_stream("mjpeg", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        other = av.CodecContext.create("mjpeg", "w")
        other.width, other.height, other.pix_fmt, other.time_base = 96, 64, "yuvj420p", Fraction(1, 25)
        for i in range(6):
            enc, size = (s, (48, 64)) if i < 3 else (other, (64, 96))
            frame = av.VideoFrame.from_ndarray(np.full((*size, 3), 40 * i, np.uint8), format="rgb24")
            for pkt in enc.encode(frame):
                pkt.stream, pkt.pts, pkt.dts, pkt.time_base = s, i, i, Fraction(1, 25)
                c.mux(pkt)
    with pytest.raises(VideoError) as e:
        read_video(p)
    assert "frame size changes at frame 3" in check_error(e, p)


def test_stderr_stays_clean(tmp_path, mp4, capfd):
    data = mp4.read_bytes()
    for name, blob in (("a.mp4", data[: len(data) // 2]), ("b.mp4", b"junk" * 100), ("c.mp4", b"")):
        with pytest.raises(VideoError):
            read_video(_bad(tmp_path, name, blob))
    with pytest.raises(VideoError):
        write_video(tmp_path / "d.mp4", synth(2, 16, 16), fps=8, preset="bogus")
    read_video(mp4)
    out, err = capfd.readouterr()
    assert err == "" and out == ""


# --- limits ----------------------------------------------------------------------------------


def test_pixel_limit_is_checked_on_the_header(real_videos_dir):
    small = VideoLimits(max_pixels=640 * 480)
    path = real_videos_dir / "bigbuckbunny.mp4"
    for fn in (probe_video, iter_frames):  # iter_frames raises at the call: nothing decoded yet
        with pytest.raises(VideoError) as e:
            fn(path, limits=small)
        assert "1280x720" in check_error(e, path) and "EVALKIT_MAX_PIXELS" in str(e.value)
    assert probe_video(real_videos_dir / "bikes.mp4", limits=small).width == 640


def test_frame_and_byte_limits(tmp_path, mp4, frames):
    few = VideoLimits(max_frames=10)
    with pytest.raises(VideoError) as e:  # mp4 header gives the count: refused up front
        iter_frames(mp4, limits=few)
    assert "frames" in check_error(e, mp4)
    assert read_video(mp4, max_frames=10, limits=few).num_frames == 10  # asking for fewer is fine
    # MKV has no count in its header: the limit trips while decoding.
    mkv = pyav_write(tmp_path / "a.mkv", frames, "libx264", "yuv420p")
    it = iter_frames(mkv, limits=few)
    with pytest.raises(VideoError) as e:
        list(it)
    assert "more than 10 frames" in check_error(e, mkv)
    tiny = VideoLimits(max_decoded_bytes=5 * 72 * 96 * 3)
    with pytest.raises(VideoError) as e:
        probe_video(mp4, limits=tiny)
    assert "bytes" in check_error(e, mp4)
    with pytest.raises(VideoError) as e:
        read_video(mkv, limits=tiny)
    assert "EVALKIT_MAX_DECODED_BYTES" in check_error(e, mkv)
    with pytest.raises(VideoError) as e:
        probe_video(mp4, limits=VideoLimits(max_file_bytes=100))
    check_error(e, mp4)


def test_limits_from_env(monkeypatch, mp4):
    assert VideoLimits.from_env() == VideoLimits()
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", "5")
    monkeypatch.setenv("EVALKIT_MAX_PIXELS", "1_000_000")
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", "123456789")
    lim = VideoLimits.from_env()
    assert (lim.max_frames, lim.max_pixels, lim.max_decoded_bytes) == (5, 1_000_000, 123456789)
    with pytest.raises(VideoError):  # the default limits come from the environment
        read_video(mp4)
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", "lots")
    with pytest.raises(BadInputError) as e:
        VideoLimits.from_env()
    assert "EVALKIT_MAX_FRAMES" in str(e.value) and "\n" not in str(e.value)


def test_max_frames_must_be_positive(mp4):
    with pytest.raises(BadInputError) as e:
        read_video(mp4, max_frames=0)
    check_error(e, mp4, BadInputError)


# --- psnr ------------------------------------------------------------------------------------


def test_psnr():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[...] = 255
    assert psnr(a, b) == pytest.approx(0.0)
    c = a.copy()
    c[...] = 1
    assert psnr(a, c) == pytest.approx(10 * np.log10(255**2))
    with pytest.raises(ValueError):
        psnr(a, a[:1])


def test_remux_copies_pixels_without_reencoding(tmp_path):
    from evalkit.video import remux

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 32, 48, 3), dtype=np.uint8)
    src = write_video(tmp_path / "a.mp4", frames, fps=8)
    for name in ("b.mkv", "c.mp4"):
        out = remux(src, tmp_path / name)
        assert np.array_equal(read_video(out).frames, read_video(src).frames)
    with pytest.raises(BadInputError):
        remux(src, tmp_path / "d.avi")


# --- sound across a re-encode (evalkit.video_audio) -------------------------------------------


def with_audio(path, frames, codec, fmt=None, fps=25, rate=16_000):
    """A video with a 440 Hz tone (samples counted exactly) in `codec`, written with PyAV."""
    n = int(rate * len(frames) / fps)
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream("libx264", rate=fps)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        a = c.add_stream(codec, rate=rate, layout="mono")
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(v.encode(None))
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, k:k + 1024].copy(), format="flt", layout="mono")
            af.sample_rate, af.pts = rate, k
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return Path(path), tone


def decoded_audio(path) -> tuple[str, np.ndarray]:
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        pcm = np.concatenate([f.to_ndarray().reshape(-1) if f.format.is_planar else f.to_ndarray()[0]
                              for f in c.decode(s)])
        return s.codec_context.name, pcm.astype(np.float32)


def tone_strength(pcm: np.ndarray, rate: int = 16_000) -> float:
    """Share of the signal's energy at 440 Hz (1.0: a pure tone, ~0: silence or noise)."""
    spec = np.abs(np.fft.rfft(pcm)) ** 2
    k = int(round(440 * len(pcm) / rate))
    return float(spec[k - 3:k + 4].sum() / spec.sum())


@pytest.mark.parametrize("codec,src_name,dst_name,want", [
    ("aac", "a.mp4", "b.mp4", "aac"),  # copied: the packets unchanged
    ("libopus", "a.mkv", "b.mp4", "opus"),  # MP4 holds Opus: copied
    ("pcm_s16le", "a.mkv", "b.mp4", "aac"),  # MP4 cannot hold raw PCM: encoded again as AAC
    ("pcm_s16le", "a.mkv", "b.mkv", "pcm_s16le"),
])
def test_new_picture_keeps_the_sound(tmp_path, frames, codec, src_name, dst_name, want):
    src, tone = with_audio(tmp_path / src_name, frames, codec, rate=48_000 if codec == "libopus" else 16_000)
    out = write_video(tmp_path / dst_name, frames[:, ::-1], fps=25, audio_from=src)
    assert len(read_video(out).frames) == len(frames)
    name, pcm = decoded_audio(out)
    _, original = decoded_audio(src)
    assert name == want
    assert abs(len(pcm) - len(original)) <= 2048 and len(pcm) >= 0.95 * len(tone)
    assert tone_strength(pcm, 48_000 if codec == "libopus" else 16_000) > 0.9
    if want == codec:  # copied: bit-exact sound
        with av.open(str(src)) as a, av.open(str(out)) as b:
            pa = [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size]
            pb = [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
        assert pa == pb


def _clicked(path, frames, fmt=None, picture_from: float = 0.0, sound_from: float = 0.0, gaps=()):
    """Frames (a bright bar on frame 10, the rest dark) and a click in the sound at the same
    moment, on a clock where the picture starts at `picture_from` s and the sound at `sound_from` s;
    `gaps`: frame numbers shown 3 frame-times long (a variable frame rate)."""
    tb, rate = Fraction(1, 1000), 16_000
    at, times = picture_from, []
    for i in range(len(frames)):
        times.append(at)
        at += 0.12 if i in gaps else 0.04
    click = times[10]
    with av.open(str(path), "w", format=fmt) as c:
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        v.codec_context.time_base = tb
        a = c.add_stream("pcm_s16le" if fmt != "mpegts" else "mp2", rate=rate, layout="mono")
        for i, f in enumerate(frames):
            g = np.full_like(f, 20)
            g[:, :8] = 235 if i == 10 else 20
            vf = av.VideoFrame.from_ndarray(g, format="rgb24")
            vf.pts, vf.time_base = round(times[i] / tb), tb
            c.mux(v.encode(vf))
        c.mux(v.encode(None))
        n = int(rate * (at - sound_from)) // 1152 * 1152
        pcm = np.zeros(n, np.int16)
        k = int((click - sound_from) * rate)
        pcm[k:k + 80] = 25_000
        for j in range(0, n, 1152):
            af = av.AudioFrame.from_ndarray(pcm[None, j:j + 1152].copy(), format="s16", layout="mono")
            af.sample_rate, af.pts, af.time_base = rate, j + round(sound_from * rate), Fraction(1, rate)
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    return Path(path), times


def _bar_and_click(path) -> tuple[float, float]:
    """When the bright frame shows and when the click sounds, on the file's clock."""
    with av.open(str(path)) as c:
        shown = [(f.time, f.to_ndarray(format="rgb24")[:, :8].mean()) for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        for f in c.decode(audio=0):
            x = f.to_ndarray().reshape(-1).astype(float)
            hit = np.flatnonzero(np.abs(x) > 0.3 * (1.0 if x.dtype.kind == "f" and np.abs(x).max() <= 1.5 else 32767))
            if len(hit):
                click = f.time + hit[0] / f.sample_rate
                break
    return max(shown, key=lambda ts: ts[1])[0], click


@pytest.mark.parametrize("fmt,suffix,picture_from,sound_from", [
    ("mpegts", ".ts", 1.4, 1.4),  # a broadcast clock: both tracks start at 1.4 s
    ("matroska", ".mkv", 0.5, 0.0),  # the picture starts half a second after the sound
])
def test_a_new_picture_plays_in_step_with_the_sound(tmp_path, frames, fmt, suffix, picture_from, sound_from):
    # Written from 0 whatever the source's clock said, the new picture ran ahead of the copied
    # sound by the picture's start: 1.4 s on a broadcast TS, 0.5 s on the late picture.
    src, _ = _clicked(tmp_path / f"a{suffix}", frames, fmt, picture_from, sound_from)
    shown, heard = _bar_and_click(src)
    assert abs(shown - heard) < 0.03
    times: list = []
    decoded = np.stack(list(iter_frames(src, times=times)))
    assert len(times) == len(frames) and times[0] == pytest.approx(picture_from, abs=0.01)
    out = write_video(tmp_path / "b.mp4", decoded, fps=25, audio_from=src, times=times)
    shown, heard = _bar_and_click(out)
    assert abs(shown - heard) < 0.03


def test_a_variable_frame_rate_is_kept(tmp_path, frames):
    src, times = _clicked(tmp_path / "vfr.mkv", frames, "matroska", gaps=(3, 7, 12))
    got: list = []
    decoded = np.stack(list(iter_frames(src, times=got)))
    out = write_video(tmp_path / "b.mp4", decoded, fps=25, times=got)
    with av.open(str(out)) as c:
        written = [f.time for f in c.decode(video=0)]
    assert written == pytest.approx([t - times[0] for t in times], abs=1e-3)
    # without the times, frames are 1/fps apart (what every caller that has none gets)
    plain = write_video(tmp_path / "c.mp4", decoded, fps=25)
    with av.open(str(plain)) as c:
        assert [f.time for f in c.decode(video=0)] == pytest.approx([i / 25 for i in range(len(frames))])


def test_probe_says_when_frames_show(tmp_path, frames, mp4, capsys):
    """A variable frame rate and a clock that does not start at 0 are in the packets, not in the
    header's one frame rate: `probe` reads them without decoding."""
    import json

    from evalkit.cli import main

    vfr, _ = _clicked(tmp_path / "phone.mkv", frames, "matroska", gaps=(3, 7))
    ts, _ = _clicked(tmp_path / "news.ts", frames, "mpegts", 1.4, 1.4)
    timing = {p.name: video.frame_timing(p) for p in (vfr, ts, mp4)}
    assert timing["phone.mkv"]["variable_frame_rate"] and timing["phone.mkv"]["interval_max"] == pytest.approx(0.12)
    assert timing["news.ts"]["start_time"] == pytest.approx(1.4, abs=0.01) and not timing["news.ts"]["variable_frame_rate"]
    assert timing["clip.mp4"] == {"start_time": 0.0, "interval_min": pytest.approx(0.04),
                                  "interval_max": pytest.approx(0.04), "variable_frame_rate": False,
                                  "packets": len(frames), "fps_from_timestamps": pytest.approx(25),
                                  "packets_cut": 0}
    assert main(["probe", str(vfr), str(ts), str(mp4)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "variable frame rate (frames 40-120 ms apart)" in out[0] and "first frame at 1.400 s" in out[1]
    assert "variable" not in out[2] and "first frame" not in out[2]
    assert main(["probe", "--json", str(vfr)]) == 0
    assert json.loads(capsys.readouterr().out)["variable_frame_rate"] is True


def test_probe_counts_the_frames_shown(tmp_path, frames, capsys, monkeypatch):
    """Frames an edit list cuts (what `ffmpeg -ss ... -c copy` writes) are stored but never shown:
    probe said 24 frames starting at -0.125 s where every reader decodes 21 from 0. A Matroska
    header holds no count: the JSON said 0 frames, and the frame limit was judged on that 0."""
    import json

    from evalkit.cli import main

    trimmed = tmp_path / "trimmed.mp4"
    with av.open(str(trimmed), "w") as c:
        s = c.add_stream("libx264", rate=24, options={"bf": "0"})
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 24)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = i - 3, Fraction(1, 24)  # the first 3 before 0: the muxer cuts them
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    with av.open(str(trimmed)) as c:
        shown = sum(1 for _ in c.decode(video=0))
    assert shown == len(frames) - 3
    assert main(["probe", "--json", str(trimmed)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["frames"], row["frames_from"], row["packets_cut"], row["start_time"]) == (shown, "header less cut", 3, 0.0)
    from detectors.predict import detect_files  # detect reports the same count as probe

    assert detect_files([trimmed])[0]["protocol"]["video_frames"] == shown
    keyed = tmp_path / "cut_on_a_keyframe.mp4"  # a cut on a keyframe: FFmpeg drops the samples before it
    with av.open(str(keyed), "w") as c:  # from its index, flagged as nothing
        s = c.add_stream("libx264", rate=24, options={"bf": "0", "forced-idr": "1"})
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.codec_context.time_base = Fraction(1, 24)
        for i, f in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            vf.pts, vf.time_base = i - 3, Fraction(1, 24)
            if i == 3:
                vf.pict_type = av.video.frame.PictureType.I
            c.mux(s.encode(vf))
        c.mux(s.encode(None))
    with av.open(str(keyed)) as c:
        shown = sum(1 for _ in c.decode(video=0))
    assert main(["probe", "--json", str(keyed)]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == shown
    mkv = tmp_path / "long.mkv"
    with av.open(str(mkv), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
        c.mux(s.encode(None))
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", str(len(frames) - 1))
    assert main(["probe", "--json", str(mkv)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert (row["frames"], row["frames_from"], row["over_frame_limit"]) == (len(frames), "packets", True)


def _mkv_with_header_rate(path, frames, header_fps: int, interval_ms: int) -> Path:
    """An MKV whose frames are `interval_ms` apart while its stream claims `header_fps` (what a
    remux that kept the timestamps but wrote another rate leaves)."""
    with av.open(str(path), "w") as oc:
        s = oc.add_stream("libx264", rate=header_fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(a), format="rgb24").reformat(format="yuv420p")
            f.pts, f.time_base = i * interval_ms, Fraction(1, 1000)
            for pkt in s.encode(f):
                oc.mux(pkt)
        for pkt in s.encode():
            oc.mux(pkt)
    return path


def test_frames_are_timed_by_their_timestamps_not_a_header_that_disagrees(tmp_path, frames, capsys):
    """Frames 125 ms apart under a header that says 25 fps: motion per second (physics) was judged
    at 25 fps, and probe said "about 2x the frames" from the duration."""
    import json

    from evalkit.cli import main

    src = _mkv_with_header_rate(tmp_path / "remuxed.mkv", frames, 25, 125)
    assert probe_video(src).fps == pytest.approx(25)  # the header
    clip = read_video(src)
    assert clip.fps == pytest.approx(8) and clip.meta["header_fps"] == pytest.approx(25)
    assert clip.meta["fps_source"] == "timestamps"
    assert read_video(write_video(tmp_path / "plain.mp4", frames, fps=25)).meta.get("fps_source") is None
    assert main(["probe", str(src)]) == 0
    line = capsys.readouterr().out
    assert "8.000 fps (the header says 25.000" in line and f"{len(frames)} frames (counted" in line
    assert main(["probe", "--json", str(src)]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["packets"] == len(frames) and row["fps_from_timestamps"] == pytest.approx(8)


def test_probe_shows_non_square_pixels_and_long_videos(tmp_path, frames, capsys, monkeypatch):
    from evalkit.cli import main

    wide = write_video(tmp_path / "anamorphic.mp4", frames, fps=25, sample_aspect=Fraction(2, 1))
    h, w = frames.shape[1:3]
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", str(len(frames) - 1))  # the header is still described
    assert main(["probe", str(wide)]) == 0
    line = capsys.readouterr().out
    assert f"{w}x{h} (pixels 2:1: shown {2 * w}x{h})" in line and "over the frame limit" in line


def test_a_broken_link_is_named_not_skipped(tmp_path, mp4):
    from evalkit.clipset import clip_set, video_files

    (tmp_path / "gone.mp4").symlink_to(tmp_path / "deleted.mp4")
    assert [f.name for f in video_files(tmp_path)] == ["clip.mp4", "gone.mp4"]
    with pytest.raises(MissingResourceError, match="gone.mp4: is a link to .*deleted.mp4, which does not exist"):
        read_video(tmp_path / "gone.mp4")
    with pytest.raises(MissingResourceError, match="is a link to"):
        clip_set(tmp_path / "gone.mp4")


def test_a_silent_source_adds_no_track(tmp_path, frames, mp4):
    out = write_video(tmp_path / "b.mp4", frames, fps=25, audio_from=mp4)
    with av.open(str(out)) as c:
        assert not c.streams.audio


def test_written_video_says_which_colour_matrix_it_used(tmp_path):
    # Untagged, a browser decodes HD video with BT.709 and shows a saturated red 15 levels off;
    # tagged BT.601 (what swscale converts RGB with), every player gets the colours back.
    from av.video.reformatter import Colorspace

    rgb = np.zeros((3, 32, 64, 3), np.uint8)
    rgb[:, :, :32], rgb[:, :, 32:] = (220, 40, 40), (40, 180, 60)
    p = write_video(tmp_path / "c.mp4", rgb, fps=8, crf=0)
    with av.open(str(p)) as c:
        f = next(c.decode(video=0))
        assert (f.colorspace, f.color_range) == (6, 1)  # SMPTE 170M (BT.601), limited range
        by_tag = f.to_ndarray(format="rgb24", src_colorspace=Colorspace.SMPTE170M).astype(int)
        as_709 = f.to_ndarray(format="rgb24", src_colorspace=Colorspace.ITU709).astype(int)
    assert np.abs(by_tag - rgb[0]).max() <= 2 < np.abs(as_709 - rgb[0]).max()
    assert np.abs(read_video(p).frames.astype(int) - rgb).max() <= 2


def _with_display_matrix(path, frames, degrees, hflip=False, vflip=False):
    """Frames stored as given plus a display matrix (what a phone writes for portrait video)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt, s.options = "yuv444p", {"crf": "0"}
        s.set_display_rotation(degrees, hflip=hflip, vflip=vflip)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


@pytest.mark.parametrize("degrees,hflip,vflip", [(0, False, False), (90, False, False), (-90, False, False),
                                                  (180, False, False), (0, True, False), (0, False, True),
                                                  (90, True, False), (-90, True, False)])
def test_frames_come_out_as_players_show_them(tmp_path, degrees, hflip, vflip):
    blocks = np.random.default_rng(1).integers(0, 256, (3, 12, 20, 3), dtype=np.uint8)
    stored = np.repeat(np.repeat(blocks, 8, 1), 8, 2)  # [3, 96, 160, 3], blocky so the codec keeps it
    path = _with_display_matrix(tmp_path / "phone.mp4", stored, degrees, hflip, vflip)
    want = np.rot90(stored, k=degrees // 90, axes=(1, 2))  # counter-clockwise, then the mirrors
    want = want[:, :, ::-1] if hflip else want
    want = want[:, ::-1] if vflip else want
    got = read_video(path).frames
    assert got.shape == want.shape and got.flags["C_CONTIGUOUS"]
    assert np.abs(got.astype(int) - want).mean() < 2
    assert np.array_equal(np.stack(list(iter_frames(path))), got)
    small = read_video(path, shrink=2).frames  # the reduced read turns the same way
    assert small.shape[1:3] == (want.shape[1] // 2, want.shape[2] // 2)
    assert (video.display_turn(path) is None) == (degrees == 0 and not hflip and not vflip)


def test_portrait_phone_video_reads_upright(tmp_path):
    stored = np.zeros((2, 96, 160, 3), np.uint8)
    stored[:, :20, :40] = 255  # top-left as the sensor stored it
    # -90: players turn it a quarter clockwise (ffprobe: "rotation of -90.00 degrees")
    path = _with_display_matrix(tmp_path / "iphone.mp4", stored, -90)
    assert video.display_turn(path) == "a quarter turn clockwise"
    assert probe_video(path).width == 160  # the header's size is as stored
    got = read_video(path).frames[0]
    assert got.shape == (160, 96, 3)
    white = np.argwhere(got[..., 0] > 200)
    assert white[:, 0].max() < 40 and white[:, 1].min() >= 96 - 20  # now top-right


def _tagged(path, frames, **cc_attrs):
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt = cc_attrs.pop("pix_fmt", "yuv420p")
        for k, v in cc_attrs.items():
            setattr(s.codec_context, k, v)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


def test_picture_tags_carry_hdr_colour_and_pixel_aspect(tmp_path):
    frames = np.full((2, 48, 64, 3), 120, np.uint8)
    plain = write_video(tmp_path / "plain.mp4", frames, fps=10)
    assert video.picture_tags(plain) == {"primaries": 1, "transfer": 1, "sample_aspect": None}
    hlg = _tagged(tmp_path / "hlg.mp4", frames, pix_fmt="yuv420p10le", color_primaries=9, color_trc=18,
                  colorspace=9, color_range=1)  # an HDR phone clip: BT.2020, HLG
    anamorphic = _tagged(tmp_path / "pal.mp4", frames, sample_aspect_ratio=Fraction(64, 45))
    untagged = _tagged(tmp_path / "untagged.mp4", frames)
    assert video.picture_tags(hlg) == {"primaries": 9, "transfer": 18, "sample_aspect": None}
    assert video.picture_tags(anamorphic)["sample_aspect"] == Fraction(64, 45)
    assert video.picture_tags(untagged) == {"primaries": None, "transfer": None, "sample_aspect": None}
    for src in (hlg, anamorphic, untagged):
        out = write_video(tmp_path / f"re-{src.name}", read_video(src), **video.picture_tags(src))
        with av.open(str(out)) as c:
            s = c.streams.video[0]
            tags = video.picture_tags(src)
            assert s.codec_context.color_primaries == (tags["primaries"] or 1)
            assert s.codec_context.color_trc == (tags["transfer"] or 1)
            assert (s.sample_aspect_ratio or Fraction(1)) == (tags["sample_aspect"] or 1)


def test_animated_webp_and_apng(tmp_path, frames):
    """An animated PNG is a video to every command (score missed it by its suffix); an animated
    WebP, which this ffmpeg cannot decode, is called what it is, not "a still image"."""
    Image = pytest.importorskip("PIL.Image")
    from evalkit.clipset import video_files

    pics = [Image.fromarray(a) for a in frames[:8]]
    pics[0].save(tmp_path / "anim.webp", save_all=True, append_images=pics[1:], duration=40, loop=0)
    pics[0].save(tmp_path / "anim.png", save_all=True, append_images=pics[1:], duration=40, loop=0)
    (tmp_path / "anim.png").rename(tmp_path / "anim.apng")
    with pytest.raises(VideoError, match="is an animated WebP, which ffmpeg does not decode"):
        read_video(tmp_path / "anim.webp")
    assert read_video(tmp_path / "anim.apng").num_frames == 8
    # the WebP is listed, so a folder's reading names it (it was passed over without a word)
    assert [f.name for f in video_files(tmp_path)] == ["anim.apng", "anim.webp"]


def test_a_new_picture_keeps_the_sounds_language_and_sign_keeps_the_title_not_the_place(tmp_path, frames):
    """Signing with --watermark re-encodes the picture: the audio tracks' languages became "und"
    (a player's language menu lost), and title and creation time were dropped; a camera's
    location is left behind on purpose."""
    from evalkit.provenance.c2pa import kept_tags

    src = tmp_path / "src.mov"
    with av.open(str(src), "w") as c:
        c.metadata.update({"title": "the clip", "creation_time": "2024-05-01T10:00:00.000000Z",
                           "location": "+48.8577+002.2950/"})
        v = c.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        tracks = [c.add_stream("aac", rate=16_000, layout="mono") for _ in range(2)]
        for a, lang in zip(tracks, ("eng", "fra")):
            a.metadata["language"] = lang
        for f in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(v.encode(None))
        for a in tracks:
            for j in range(0, 16_000, 1024):
                af = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.int16), format="s16", layout="mono")
                af.sample_rate, af.pts = 16_000, j
                c.mux(a.encode(af))
            c.mux(a.encode(None))
    tags = kept_tags(src)
    assert tags["title"] == "the clip" and "creation_time" in tags and "location" not in tags
    out = write_video(tmp_path / "out.mp4", frames, fps=25, audio_from=src, metadata=tags)
    with av.open(str(out)) as c:
        assert [s.metadata.get("language") for s in c.streams.audio] == ["eng", "fra"]
        assert c.metadata.get("title") == "the clip" and "location" not in c.metadata


def test_bytes_paths_are_read_and_written_and_other_objects_are_one_line(tmp_path):
    """os.fsencode'd paths (what os.listdir(b".") gives) raised pathlib's bare TypeError (session 34)."""
    frames = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    out = write_video(os.fsencode(tmp_path / "b.mp4"), frames, fps=8)
    assert out == tmp_path / "b.mp4"
    clip = read_video(os.fsencode(out))
    assert clip.num_frames == 4 and clip.meta["source"] == str(out)
    assert probe_video(os.fsencode(out)).frames == 4
    with open(out, "rb") as f:
        with pytest.raises(BadInputError, match=r"^read_video: expected a file path .*got BufferedReader"):
            read_video(f)
    with pytest.raises(BadInputError, match=r"^write_video: expected a file path .*got NoneType"):
        write_video(None, frames, fps=8)
