"""Files an attacker hands an investigator (session 31's red team), each a one-line error or a
bounded result: MP4s of a million empty boxes (c2pa parsed them for minutes, deaf to Ctrl-C), a
hostile index or bundle (internal errors), a `clips` link back to its own folder."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from benchmarks.bundle import _read
from evalkit.clipset import read_index, video_files
from evalkit.errors import BadInputError
from evalkit.bmff import MAX_BOXES, box_count
from evalkit.provenance.c2pa import sign_file
from evalkit.provenance.credentials import init_keys
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import verify_file
from evalkit.video import write_video


def test_an_mp4_of_too_many_boxes_is_refused_before_c2pa(tmp_path):
    src = write_video(tmp_path / "small.mp4", np.full((8, 32, 32, 3), 90, np.uint8), fps=8.0)
    data = src.read_bytes()
    crowded = tmp_path / "crowded.mp4"
    crowded.write_bytes(data[:32] + b"\x00\x00\x00\x08free" * (MAX_BOXES + 10) + data[32:])  # after ftyp
    assert box_count(crowded) == MAX_BOXES + 1 and box_count(src) < 50
    t = time.perf_counter()
    r = verify_file(crowded)
    assert time.perf_counter() - t < 30 and r["error"] and "ISO BMFF boxes" in r["error"]
    # unread, so neither "tampered" nor "a manifest is present" (the recheck found both)
    assert r["verdict"] == "unreadable" and r["provenance"]["state"] == "absent"
    creds = init_keys(tmp_path / "keys")
    trail = tmp_path / "trail.mp4"
    trail.write_bytes(data + b"\x00\x00\x00\x08free" * (MAX_BOXES + 10))  # after moov: passed the 4,096-box check
    with pytest.raises(BadInputError, match="ISO BMFF boxes"):
        sign_file(trail, tmp_path / "out.mp4", load_signer(creds.signer_cert, creds.signer_key))
    assert not list(tmp_path.glob(".*tmp*")) and not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize("line, why", [("[" * 100_000, "nested too deeply"),
                                       ('{"id": ' + "7" * 5000 + "}", "not an index record")])
def test_a_hostile_index_line_is_one_line(tmp_path, line, why):
    (tmp_path / "index.jsonl").write_text(line + "\n")
    with pytest.raises(BadInputError, match=why):
        read_index(tmp_path)


def test_a_bundle_number_that_overflows_is_refused(tmp_path):
    p = tmp_path / "bundle.json"
    p.write_text(json.dumps({"metrics": {"fvd": {"value": 1.0}}}).replace("1.0", "1e999"))
    with pytest.raises(BadInputError, match="out of the range of a float"):
        _read(p, "result bundle")


def test_a_clips_link_to_its_own_folder_is_read_once(tmp_path):
    write_video(tmp_path / "a_red_ball_falls-1.mp4", np.full((8, 32, 32, 3), 90, np.uint8), fps=8.0)
    (tmp_path / "clips").symlink_to(tmp_path)
    assert [f.name for f in video_files(tmp_path)] == ["a_red_ball_falls-1.mp4"]  # it was counted twice


def test_an_avi_whose_riff_size_is_unset_is_named_not_taken_for_a_signed_file(tmp_path):
    """A streamed or unfinished writer leaves the RIFF size 0xFFFFFFFF: `sign` said "already
    carries a C2PA manifest; use --edit", and --edit then failed."""
    import av

    src = tmp_path / "in.avi"
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mpeg4", rate=8)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for _ in range(8):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), 90, np.uint8), format="rgb24")))
        out.mux(stream.encode())
    data = bytearray(src.read_bytes())
    assert data[:4] == b"RIFF"
    data[4:8] = b"\xff\xff\xff\xff"
    src.write_bytes(bytes(data))
    creds = init_keys(tmp_path / "keys")
    with pytest.raises(BadInputError, match="container cannot be parsed"):
        sign_file(src, tmp_path / "out.avi", load_signer(creds.signer_cert, creds.signer_key))


def test_a_fifo_named_like_a_video_is_refused_not_waited_on(tmp_path):
    """A tar archive can carry a FIFO named x.mp4: opening it waited for a writer forever in
    `verify` and `sign` (session 33), and `probe` called it "empty (0 bytes)"."""
    import os
    import subprocess
    import sys

    fifo = tmp_path / "x.mp4"
    os.mkfifo(fifo)
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path / "home")}
    init_keys(tmp_path / "home" / "credentials")  # so that sign gets as far as its input
    for args in (["verify", str(fifo), "--no-detector"], ["sign", str(fifo), str(tmp_path / "o.mp4")],
                 ["probe", str(fifo)]):
        t0 = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "evalkit", *args], capture_output=True, text=True, env=env,
                           timeout=60)
        assert time.monotonic() - t0 < 60 and r.returncode == 2, (args, r.returncode, r.stderr)
        assert "is a FIFO (named pipe), not a video file" in r.stdout + r.stderr
        assert "Traceback" not in r.stderr
    assert not (tmp_path / "o.mp4").exists()


def test_warnings_print_file_names_with_control_characters_escaped(tmp_path, capsys):
    """`score`'s "not in its index" warning printed a file name's ESC and CR raw (session 33): a
    name like 'bad\\x1b[2J.mp4' could clear the terminal or overwrite the line before it."""
    from evalkit.cli import main
    from evalkit.world import WorldConfig, make_clip

    folder = tmp_path / "clips"
    folder.mkdir()
    clip = make_clip("test", 0, 1, WorldConfig(frames=8, size=32))
    write_video(folder / "a.mp4", clip)
    write_video(folder / "bad\x1b[31mRED\rX.mp4", clip)
    (folder / "index.jsonl").write_text(json.dumps({"id": "a", "file": "a.mp4", "prompt": "a red ball"}) + "\n")
    assert main(["score", str(folder), "--metrics", "flicker", "--no-mlflow"]) == 0
    err = capsys.readouterr().err
    assert "not in its index.jsonl" in err and "\x1b" not in err and "\r" not in err
    assert "bad\\x1b[31mRED\\rX.mp4" in err


def test_a_fifo_in_a_folder_is_named_not_left_out(tmp_path):
    """A FIFO named like a video inside a folder was skipped without a word (one video fewer);
    listed, its read names it (session 33's recheck)."""
    import os

    folder = tmp_path / "clips"
    folder.mkdir()
    write_video(folder / "a.mp4", np.zeros((4, 16, 16, 3), np.uint8), fps=8)
    os.mkfifo(folder / "b.mp4")
    assert [p.name for p in video_files(folder)] == ["a.mp4", "b.mp4"]
    from evalkit.clipset import clip_set

    os.mkfifo(tmp_path / "x.mp4")  # given as the set itself: it read "no such folder", exit 3
    with pytest.raises(BadInputError, match="is a FIFO"):
        clip_set(tmp_path / "x.mp4")


def test_names_and_prompts_that_are_not_utf8(tmp_path, monkeypatch):
    """A file name that is not UTF-8 (a zip from another system) crashed `score` in MLflow and
    `verify --html` (exit 70, work lost), and prompts piped in another encoding or holding NULs (a
    UTF-16 file) made clips for garbage prompts (session 33)."""
    import os

    from evalkit.cli import main
    from generators.base import load_prompts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    folder = tmp_path / "clips"
    folder.mkdir()
    bad = os.fsdecode(bytes(folder) + b"/\xffbad.mp4")
    write_video(bad, np.zeros((4, 16, 16, 3), np.uint8), fps=8)
    assert main(["score", str(folder), "--metrics", "flicker,clip", "--json", str(tmp_path / "s.json")]) == 0
    assert main(["verify", bad, "--no-detector", "--html", str(tmp_path / "v.html")]) == 0
    assert "\\udcffbad.mp4" in (tmp_path / "v.html").read_text(encoding="utf-8")  # escaped, as printed
    for text, where in (("caf\udce9 ball", "--prompts"), ("a\x00b", "--prompts")):
        with pytest.raises(BadInputError, match="which is not text"):
            load_prompts(text)
    utf16 = tmp_path / "p.txt"
    utf16.write_bytes("a red ball falls\n".encode("utf-16-le"))  # no BOM: reads as UTF-8 with NULs
    with pytest.raises(BadInputError, match=r"p.txt:1: the prompt holds '\\x00'"):
        load_prompts(str(utf16))
    semi = tmp_path / "excel.csv"  # Excel in a semicolon-list locale: ';' between fields
    semi.write_text("\ufeffprompt;category\r\na red ball falls, on a dark background;fall\r\n", encoding="utf-8")
    assert [p.text for p in load_prompts(str(semi))] == ["a red ball falls, on a dark background"]
    one = tmp_path / "one.csv"  # an unquoted comma in a one-column table: refused, not cut short
    one.write_text("prompt\na red ball falls, on a dark background\n")
    with pytest.raises(BadInputError, match=r"one.csv:2: more fields than the header's 1"):
        load_prompts(str(one))
