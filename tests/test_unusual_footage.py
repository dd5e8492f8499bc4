"""Valid but unusual video files (session 33's footage red team), each made here with PyAV and
signed with real c2pa: an audio-only MP4, Matroska named .mp4, the `folder:` generator's
re-encode keeping timing, pixel aspect, colour and field tags, what `sign --watermark` leaves
behind (a second video track, cover art, alpha) said in a warning, and error messages whose
suggested fix works for that input. Tiny clips; < 30 s."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import av
import c2pa
import numpy as np
import pytest

from evalkit.errors import BadInputError, VideoError
from evalkit.provenance.c2pa import _sign_context, build_manifest, reencode_losses, sign_file
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import verify_exit_code, verify_file
from evalkit.video import picture_tags, write_video

EVALKIT = [sys.executable, "-m", "evalkit"]


def frames(n=8, w=64, h=48, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(n)]


def add_video(c, fr, codec="libx264", rate=24, pix="yuv420p", opts=None):
    s = c.add_stream(codec, rate=rate, options=opts or {})
    s.width, s.height, s.pix_fmt = fr[0].shape[1], fr[0].shape[0], pix
    return s


def encode(c, s, fr, fmt="rgb24"):
    for a in fr:
        c.mux(s.encode(av.VideoFrame.from_ndarray(a, format=fmt)))
    c.mux(s.encode(None))


def audio_only(path):
    with av.open(str(path), "w", format="mp4") as c:
        a = c.add_stream("aac", rate=48000)
        a.layout = "stereo"
        t = np.arange(48000 // 4) / 48000
        data = (np.sin(2 * np.pi * 440 * t) * 0.3).astype(np.float32)
        for i in range(0, len(data) - 1024, 1024):
            f = av.AudioFrame.from_ndarray(np.stack([data[i:i + 1024]] * 2), format="fltp", layout="stereo")
            f.sample_rate, f.pts = 48000, i
            c.mux(a.encode(f))
        c.mux(a.encode(None))
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    root = tmp_path_factory.mktemp("footage-keys")
    creds = init_keys(root / "credentials")
    creds.watermark_key.write_text("7e57" * 16 + "\n")
    return dict(creds=creds, signer=load_signer(creds.signer_cert, creds.signer_key),
                wm_key=load_watermark_key(creds.watermark_key), home=root)


def cli(args, home, **kw):
    env = {"EVALKIT_HOME": str(home), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", **kw}
    return subprocess.run(EVALKIT + args, capture_output=True, text=True, timeout=120, env=env)


# --- A: a file with no video stream -------------------------------------------------------------

def test_audio_only_mp4_is_refused_by_every_sign_path(tmp_path, keys):
    src = audio_only(tmp_path / "sound.mp4")
    for kw in ({}, {"sidecar": True}, {"watermark": True, "wm_key": keys["wm_key"]}):
        with pytest.raises(VideoError, match="has no video stream"):
            sign_file(src, tmp_path / "out.mp4", keys["signer"], **kw)
    assert not (tmp_path / "out.mp4").exists()
    # the same bytes as .m4a: not "sign with --sidecar or --watermark", which then fail the same way
    m4a = tmp_path / "sound.m4a"
    m4a.write_bytes(src.read_bytes())
    with pytest.raises(VideoError, match="has no video stream"):
        sign_file(m4a, tmp_path / "out.m4a", keys["signer"])
    # with --watermark too: the input's own problem, not "name the output .mp4" (which then failed)
    with pytest.raises(VideoError, match="has no video stream"):
        sign_file(m4a, tmp_path / "out.m4a", keys["signer"], watermark=True, wm_key=keys["wm_key"])
    p = cli(["sign", str(src), str(tmp_path / "o.mp4")], keys["home"])
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.count("\n") == 1 and "has no video stream (streams: audio)" in p.stderr


def test_verify_of_a_signed_audio_only_file_exits_2(tmp_path, keys):
    """Signed before the fix (c2pa itself takes it): the manifest's verdict is printed with the
    error line, and the exit code is an unreadable video's, 2 (it was 0)."""
    src = audio_only(tmp_path / "sound.mp4")
    signed = tmp_path / "sound.signed.mp4"
    manifest = build_manifest(title=signed.name, source_type="trained", generator=None, params=None)
    with open(src, "rb") as fin, open(signed, "w+b") as fout:
        b = c2pa.Builder(manifest, context=_sign_context())
        b.sign(keys["signer"].c2pa_signer(None), "video/mp4", fin, fout)
        b.close()
    r = verify_file(signed, trust=[keys["creds"].ca_cert])
    assert not r["readable"] and "has no video stream" in r["error"]
    assert verify_exit_code([r]) == 2
    p = cli(["verify", "--no-detector", str(signed)], keys["home"])
    assert p.returncode == 2 and "error:" in p.stdout


# --- B: a container named as another ------------------------------------------------------------

def test_matroska_named_mp4_is_named_and_the_fix_works(tmp_path, keys):
    src = tmp_path / "lies.mp4"
    with av.open(str(src), "w", format="matroska") as c:
        encode(c, add_video(c, frames()), frames())
    with pytest.raises(BadInputError, match=r"is Matroska/WebM, not MP4/MOV \(its name says \.mp4\); rename it \.mkv"):
        sign_file(src, tmp_path / "s.mp4", keys["signer"], sidecar=True)
    with pytest.raises(BadInputError, match="rename it .mkv .*--sidecar"):
        sign_file(src, tmp_path / "s.mp4", keys["signer"])
    fixed = tmp_path / "lies.mkv"
    fixed.write_bytes(src.read_bytes())
    res = sign_file(fixed, tmp_path / "signed.mkv", keys["signer"], sidecar=True)
    r = verify_file(tmp_path / "signed.mkv", trust=[keys["creds"].ca_cert])
    assert res.sidecar.exists() and r["provenance"]["state"] in ("valid", "trusted")


# --- C: folder: keeps what sign --watermark keeps ------------------------------------------------

def _stream_facts(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        times = [round(float(f.time), 3) for f in c.decode(s)]
        return dict(times=times, sar=cc.sample_aspect_ratio, primaries=int(cc.color_primaries),
                    trc=int(cc.color_trc), field_order=int(cc.field_order))


def test_folder_generator_keeps_timing_aspect_colour_and_fields(tmp_path):
    from generators.base import Prompt, generate_folder
    from generators.folder import FolderGenerator

    fold = tmp_path / "fold"
    fold.mkdir()
    times = [0.0, 0.04, 0.08, 0.3, 0.34, 0.6, 0.64, 0.68]  # a phone's variable frame rate
    src = write_video(fold / "a red ball falls.mp4", np.stack(frames()), fps=24, times=times,
                      primaries=9, transfer=18, sample_aspect=Fraction(4, 3), interlaced="tff")  # BT.2020, HLG
    before = _stream_facts(src)
    assert before["sar"] == Fraction(4, 3) and before["field_order"] == 2 and before["primaries"] == 9
    generate_folder(FolderGenerator(fold), [Prompt("a red ball falls")], tmp_path / "out", progress=False)
    after = _stream_facts(next((tmp_path / "out" / "clips").glob("*.mp4")))
    assert after == before
    assert picture_tags(src) == {"primaries": 9, "transfer": 18, "sample_aspect": Fraction(4, 3), "interlaced": "tff"}


# --- D: what --watermark leaves behind is said --------------------------------------------------

def test_watermark_warns_of_second_track_cover_art_and_keeps_interlacing(tmp_path, keys):
    src = tmp_path / "busy.mp4"
    fr = frames()
    with av.open(str(src), "w") as c:
        cover = c.add_stream("mjpeg", rate=1)
        cover.width, cover.height, cover.pix_fmt = 64, 48, "yuvj420p"
        cover.disposition = av.stream.Disposition.attached_pic
        v0 = add_video(c, fr, opts={"x264-params": "tff=1"})
        v1 = add_video(c, frames(seed=1))
        c.mux(cover.encode(av.VideoFrame.from_ndarray(fr[0], format="rgb24")))
        c.mux(cover.encode(None))
        encode(c, v0, fr)
        encode(c, v1, frames(seed=1))
    losses = reencode_losses(src)
    assert len(losses) == 2 and "2 video streams" in losses[0] and "cover art" in losses[1]
    out = tmp_path / "busy.signed.mp4"
    p = cli(["sign", "--watermark", "--no-register", str(src), str(out)], keys["home"])
    assert p.returncode == 0, p.stderr
    warn = [ln for ln in p.stderr.splitlines() if ln.startswith("evalkit: warning: ")]
    assert len(warn) == 2 and "only the first (#0)" in warn[0] and "cover art" in warn[1]
    assert _stream_facts(out)["field_order"] == 2  # interlaced, top field first, as the source
    with av.open(str(out)) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_a_cameras_timecode_track_is_named_as_left_out(tmp_path):
    """A MOV from a camera or an editor carries a timecode (tmcd) track; the watermarked copy holds
    the picture and the sound only, and that went unsaid (a red team, session 37)."""
    src = tmp_path / "camera.mov"
    with av.open(str(src), "w", format="mov") as c:
        s = add_video(c, frames())
        s.metadata["timecode"] = "01:00:00:00"  # FFmpeg's mov muxer writes a tmcd track for it
        encode(c, s, frames())
    with av.open(str(src)) as c:
        assert [s.type for s in c.streams] == ["video", "data"]
    (line,) = reencode_losses(src)
    assert "timecode track (01:00:00:00) is left out" in line
    assert reencode_losses(write_video(tmp_path / "plain.mov", np.stack(frames(4)), fps=24)) == []


def test_alpha_is_named_as_dropped(tmp_path):
    src = tmp_path / "alpha.mov"
    rgba = [np.dstack([f, np.full(f.shape[:2], 128, np.uint8)]) for f in frames(4)]
    with av.open(str(src), "w") as c:
        encode(c, add_video(c, rgba, codec="png", pix="rgba"), rgba, fmt="rgba")
    assert any("alpha channel" in w for w in reencode_losses(src))
    plain = write_video(tmp_path / "plain.mp4", np.stack(frames(4)), fps=24)
    assert reencode_losses(plain) == []
    # every GIF decodes with alpha: an opaque one loses nothing (each was warned about, session 33),
    # and neither does an opaque picture in a format that could hold transparency
    from PIL import Image

    gif = tmp_path / "opaque.gif"  # as Pillow writes GIF89a: no transparency index
    first, *rest = [Image.fromarray(f) for f in frames(4)]
    first.save(gif, save_all=True, append_images=rest, duration=100, loop=0)
    opaque = tmp_path / "opaque.mov"
    full = [np.dstack([f, np.full(f.shape[:2], 255, np.uint8)]) for f in frames(4)]
    with av.open(str(opaque), "w") as c:
        encode(c, add_video(c, full, codec="png", pix="rgba"), full, fmt="rgba")
    assert reencode_losses(gif) == [] and reencode_losses(opaque) == []


# --- G: a suggested fix works for that input ----------------------------------------------------

def test_suggested_fixes_work(tmp_path, keys):
    webm = tmp_path / "in.webm"
    with av.open(str(webm), "w") as c:
        encode(c, add_video(c, frames(), codec="libvpx-vp9"), frames())
    with pytest.raises(BadInputError, match=r"\.mkv with --sidecar") as e:
        sign_file(webm, tmp_path / "x.webm", keys["signer"], watermark=True, wm_key=keys["wm_key"])
    assert "keep the container with --sidecar" not in str(e.value)
    res = sign_file(webm, tmp_path / "x.mkv", keys["signer"], watermark=True, wm_key=keys["wm_key"], sidecar=True,
                    register=False)
    assert res.sidecar.exists()

    tiny = tmp_path / "tiny.mkv"
    small = [f[:6, :4].copy() for f in frames(4)]
    with av.open(str(tiny), "w") as c:
        encode(c, add_video(c, small, codec="ffv1", pix="yuv444p"), small)
    with pytest.raises(BadInputError, match="sign it without --watermark, with --sidecar"):
        sign_file(tiny, tmp_path / "t.mp4", keys["signer"], watermark=True, wm_key=keys["wm_key"])
    assert sign_file(tiny, tmp_path / "t.mkv", keys["signer"], sidecar=True).sidecar.exists()


def test_verify_json_of_audio_only_is_one_object(tmp_path, keys):
    src = audio_only(tmp_path / "a.mp4")
    p = cli(["verify", "--json", "--no-detector", str(src)], keys["home"])
    assert p.returncode == 2 and json.loads(p.stdout)["verdict"] == "unreadable"


# --- E: probe says which of two video streams it reads ------------------------------------------

def test_probe_names_a_second_video_stream(tmp_path, keys):
    src = tmp_path / "two.mkv"
    with av.open(str(src), "w") as c:
        v0, v1 = add_video(c, frames()), add_video(c, frames(seed=1))
        encode(c, v0, frames())
        encode(c, v1, frames(seed=1))
    p = cli(["probe", str(src)], keys["home"])
    assert p.returncode == 0 and p.stdout.rstrip().endswith("; 2 video streams; using #0")
    p = cli(["probe", "--json", str(src)], keys["home"])
    assert json.loads(p.stdout)["video_streams"] == 2


def test_a_failed_check_is_exit_1_even_where_the_video_could_not_be_read():
    """A tampered file whose video cannot be decoded exited 2 after session 33's audio-only fix,
    and a CI gate that rejects on 1 let it through (session 33's README check)."""
    from evalkit.provenance.verify import verify_exit_code

    assert verify_exit_code([{"verdict": "tampered", "readable": False}]) == 1
    assert verify_exit_code([{"verdict": "ai-generated (signed)", "readable": False}]) == 2
    assert verify_exit_code([{"verdict": "ai-generated (signed)", "readable": True}]) == 0
