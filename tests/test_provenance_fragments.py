"""Fragmented streams (DASH/HLS): `verify INIT --fragments SEGMENTS`. A stream signed by the C2PA
reference implementation (tests/data/c2pa-rs, since c2pa-python cannot sign one) and streams this
test cuts itself with ffmpeg's DASH muxer, watermarked. Real c2pa, real PyAV. < 15 s."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_MISSING, EXIT_OK, BadInputError, VideoError
from evalkit.provenance.fragments import expand_fragments, segment_kind
from evalkit.provenance.verify import INCOMPLETE, verify_file
from evalkit.provenance.watermark import embed, make_key
from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip

SIGNED = Path(__file__).parent / "data" / "c2pa-rs"
SECRET = b"fragments test key"


def _dash(frames: np.ndarray, out_dir: Path, fps: int = 16, seg_s: float = 1.0) -> tuple[Path, list[Path]]:
    """Cut frames into a DASH stream (init.mp4 + seg-N.m4s) with ffmpeg's muxer, as a packager would."""
    out_dir.mkdir(parents=True, exist_ok=True)
    c = av.open(str(out_dir / "stream.mpd"), "w", format="dash",
                options={"seg_duration": str(seg_s), "use_template": "1", "use_timeline": "0",
                         "init_seg_name": "init.mp4", "media_seg_name": "seg-$Number$.m4s"})
    s = c.add_stream("libx264", rate=fps)
    s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
    s.options = {"crf": "18", "g": str(fps)}
    for f in frames:
        for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
            c.mux(pkt)
    for pkt in s.encode():
        c.mux(pkt)
    c.close()
    return out_dir / "init.mp4", sorted(out_dir.glob("seg-*.m4s"), key=lambda p: int(p.stem[4:]))


@pytest.fixture(scope="module")
def marked_stream(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash")
    frames = make_clip("test", 3, 7, WorldConfig(frames=48, size=128)).frames
    return _dash(embed(frames, b"STREAMED", make_key(SECRET)), root / "marked")


def _flip_in_mdat(src: Path, dst: Path) -> Path:
    b = bytearray(src.read_bytes())
    i = b.find(b"mdat")
    b[i + 400] ^= 0x01
    dst.write_bytes(bytes(b))
    return dst


def test_segment_kinds_tell_streams_from_whole_files(tmp_path, marked_stream):
    init, segs = marked_stream
    assert segment_kind(init) == "init"
    assert {segment_kind(s) for s in segs} == {"media"}
    assert segment_kind(SIGNED / "dashinit.mp4") == "init" and segment_kind(SIGNED / "dash1.m4s") == "media"
    frames = make_clip("test", 0, 1, WorldConfig(frames=8, size=64)).frames
    assert segment_kind(write_video(tmp_path / "whole.mp4", frames, fps=8)) is None
    frag = tmp_path / "frag.mp4"  # fragmented in one file: c2pa signs and reads it as a whole
    with av.open(str(frag), "w", options={"movflags": "frag_keyframe+empty_moov"}) as c:
        s = c.add_stream("libx264", rate=8)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    assert segment_kind(frag) is None
    (tmp_path / "x.txt").write_text("not a video")
    assert segment_kind(tmp_path / "x.txt") is None


def test_fragments_expand_in_stream_order(tmp_path, marked_stream):
    init, segs = marked_stream
    names = ["seg-10.m4s", "seg-9.m4s", "seg-2.m4s"]
    for n, s in zip(names, segs * 3):
        shutil.copy(s, tmp_path / n)
    shutil.copy(init, tmp_path / "init.mp4")
    want = [tmp_path / "seg-2.m4s", tmp_path / "seg-9.m4s", tmp_path / "seg-10.m4s"]
    assert expand_fragments([tmp_path], init=tmp_path / "init.mp4") == want  # a folder: its media segments
    assert expand_fragments([str(tmp_path / "seg-*.m4s")]) == want  # a glob, natural order
    assert expand_fragments([tmp_path / "seg-9.m4s", str(tmp_path / "seg-*.m4s")])[0] == want[1]  # given order first
    with pytest.raises(BadInputError):
        expand_fragments([tmp_path / "init.mp4"], init=tmp_path / "init.mp4")
    # a glob over the whole stream folder skips the playlist and the init segment; a named
    # file that is no media segment is refused, not checked as one (and called tampered)
    (tmp_path / "stream.mpd").write_text("<MPD/>")
    assert expand_fragments([str(tmp_path / "*")], init=tmp_path / "init.mp4") == want
    with pytest.raises(BadInputError, match="not a media segment"):
        expand_fragments([tmp_path / "stream.mpd"])


def test_stream_signed_by_another_tool_validates_with_its_segments():
    r = verify_file(SIGNED / "dashinit.mp4", fragments=[SIGNED / "dash1.m4s"])
    assert r["readable"] and r["error"] is None
    assert r["provenance"]["state"] == "valid"
    assert r["provenance"]["failures"] == ["signingCredential.untrusted"]
    assert r["provenance"]["signer"].startswith("Alice")
    assert r["fragments"] == [{"file": str(SIGNED / "dash1.m4s"), "state": "valid",
                               "failures": ["signingCredential.untrusted"]}]
    assert r["verdict"] == "signed (source not stated)"
    assert "1 media segment, each checked against the manifest" in r["reasons"][0]


def test_changed_or_foreign_segment_is_named(tmp_path, marked_stream):
    bad = _flip_in_mdat(SIGNED / "dash1.m4s", tmp_path / "dash1.m4s")
    foreign = marked_stream[1][0]  # a segment of another stream
    r = verify_file(SIGNED / "dashinit.mp4", fragments=[bad, foreign])
    assert r["verdict"] == "tampered"
    assert r["provenance"]["state"] == "invalid"
    assert [s["state"] for s in r["fragments"]] == ["invalid", "invalid"]
    assert all("assertion.bmffHash.mismatch" in s["failures"] for s in r["fragments"])
    assert "2 failed against the manifest: dash1.m4s, seg-1.m4s" in r["reasons"][0]
    good_and_bad = verify_file(SIGNED / "dashinit.mp4", fragments=[SIGNED / "dash1.m4s", bad])
    assert [s["state"] for s in good_and_bad["fragments"]] == ["valid", "invalid"]
    assert good_and_bad["verdict"] == "tampered"  # the stream is as weak as its weakest segment


def test_init_segment_alone_is_incomplete_not_tampered():
    r = verify_file(SIGNED / "dashinit.mp4")
    assert r["verdict"] == INCOMPLETE
    assert "--fragments" in r["error"] and "init segment" in r["error"]
    assert r["provenance"]["signer"].startswith("Alice")  # what can be read is still reported
    assert "cannot be checked alone" in r["reasons"][0]
    m = verify_file(SIGNED / "dash1.m4s")
    assert m["verdict"] == "unreadable" and "media segment" in m["error"] and "--fragments" in m["error"]


def test_watermark_is_read_through_the_segments(marked_stream):
    init, segs = marked_stream
    assert len(segs) >= 2
    alone = verify_file(init, wm_key=SECRET)
    assert alone["verdict"] == INCOMPLETE and alone["reasons"][0] == "It carries no C2PA manifest."
    r = verify_file(init, wm_key=SECRET, fragments=[init.parent])
    assert r["readable"] and r["provenance"]["state"] == "absent"
    assert r["watermark"]["detected"] and bytes.fromhex(r["watermark"]["payload"]) == b"STREAMED"
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"
    assert r["reasons"][0] == (f"Read as a fragmented stream: the init segment and {len(segs)} media segments "
                               "(no manifest to check them against).")
    # the frames are the stream's, joined in order: one segment alone is a shorter read, still marked
    one = verify_file(init, wm_key=SECRET, fragments=[segs[0]])
    assert one["watermark"]["detected"]


def test_cli_fragments(capsys, marked_stream, tmp_path):
    init, segs = marked_stream
    code = main(["verify", str(SIGNED / "dashinit.mp4"), "--fragments", str(SIGNED / "dash1.m4s"),
                 "--json", "--no-detector"])
    assert code == EXIT_OK
    assert json.loads(capsys.readouterr().out)["provenance"]["state"] == "valid"
    bad = _flip_in_mdat(SIGNED / "dash1.m4s", tmp_path / "dash1.m4s")
    assert main(["verify", str(SIGNED / "dashinit.mp4"), "--fragments", str(bad), "--no-detector"]) == EXIT_CHECK_FAILED
    assert "tampered" in capsys.readouterr().out
    assert main(["verify", str(SIGNED / "dashinit.mp4"), "--no-detector"]) == EXIT_BAD_INPUT
    assert INCOMPLETE in capsys.readouterr().out
    # mistakes: one line each, named
    for argv, want in ([["verify", str(init), str(segs[0]), "--fragments", str(segs[0])], EXIT_BAD_INPUT],
                       [["verify", str(SIGNED / "dash1.m4s"), "--fragments", str(SIGNED / "dash1.m4s")], EXIT_BAD_INPUT],
                       [["verify", str(init), "--fragments", str(tmp_path / "nothing-*.m4s")], EXIT_MISSING],
                       [["verify", str(init), "--fragments", str(segs[0]), "--manifest", str(init)], EXIT_BAD_INPUT]):
        assert main(argv + ["--no-detector"]) == want
        err = capsys.readouterr().err.strip()
        assert err.startswith("evalkit: error:") and "\n" not in err and "Traceback" not in err


def test_other_commands_name_a_stream_segment(marked_stream, tmp_path):
    init, segs = marked_stream
    for part, what in ((init, "init segment"), (segs[1], "media segment")):
        with pytest.raises(VideoError, match=what + " of a fragmented"):
            read_video(part)
    whole = tmp_path / "whole.mp4"  # what the message tells a user to do works
    whole.write_bytes(b"".join(p.read_bytes() for p in [init, *segs]))
    assert len(read_video(whole).frames) == 48
