"""Videos saved without a suffix (a camera's `clip0001`, a download saved as `video`) in a folder:
listed as `score FILE` already took one alone, when they are a video container; whatever else has
no suffix (text, an empty file, a FIFO) is passed over without hanging, and a file with another
suffix or a hidden one is never opened (session 38)."""

from __future__ import annotations

import json
import os
import shutil
import threading

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.clipset import clip_set, expand_folders, index_numbered, load_clip, read_index, video_files
from evalkit.video import write_video


def _clip(path, shade: int = 90):
    frames = np.full((8, 32, 32, 3), shade, np.uint8)
    frames[:, :, :, 0] = np.arange(8, dtype=np.uint8)[:, None, None] * 20  # it changes: flicker has frames to compare
    return write_video(path, frames, fps=8.0)


def _listed_without_hanging(folder):
    """video_files(folder) run in a thread: a listing that opened the FIFO would wait for a writer
    for good, so the test fails instead of hanging (and the FIFO is then written to free it)."""
    got = {}
    t = threading.Thread(target=lambda: got.update(files=video_files(folder)), daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        for fifo in folder.iterdir():
            if fifo.is_fifo():
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail(f"listing {folder} blocked (a FIFO was opened)")
    return [f.name for f in got["files"]]


@pytest.fixture
def folder(tmp_path):
    d = tmp_path / "dump"
    d.mkdir()
    _clip(d / "a.mp4")
    shutil.copy(d / "a.mp4", d / "b")  # the same video, saved without a suffix
    (d / "notes").write_text("the camera's log, no suffix\n" * 100)
    (d / "empty").write_bytes(b"")
    os.mkfifo(d / "pipe")
    shutil.copy(d / "a.mp4", d / ".hidden")  # a video, but hidden: never looked at
    shutil.copy(d / "a.mp4", d / "copy.json")  # another suffix: judged by its name, not opened
    (d / "gone").symlink_to(tmp_path / "nowhere")
    (d / "subfolder").mkdir()
    return d


def test_a_suffixless_video_is_listed_and_everything_else_without_a_suffix_is_not(folder, tmp_path):
    assert _listed_without_hanging(folder) == ["a.mp4", "b"]
    assert [f.name for f in expand_folders([folder])] == ["a.mp4", "b"]
    recs = read_index(folder)  # no index: the folder's videos, each prompted by its name
    assert [(r["id"], r["file"], r["prompt"]) for r in recs] == [("a", "a.mp4", "a"), ("b", "b", "b")]
    assert load_clip(folder, recs[1]).frames.shape == (8, 32, 32, 3)
    # a FIFO outside the folder, linked into it: still never opened
    os.mkfifo(tmp_path / "outside_pipe")
    (folder / "linked_pipe").symlink_to(tmp_path / "outside_pipe")
    assert _listed_without_hanging(folder) == ["a.mp4", "b"]


def test_a_damaged_or_unusual_suffixless_video_is_listed_and_named_a_still_photo_is_not(tmp_path):
    """Session 38's review: listing by FFmpeg's probe dropped a suffix-less recording cut off
    before its index without a word (a `.mp4` so cut is listed, and reading it says what is
    wrong), and the first version's byte check refused a transport stream after 400 bytes of
    junk, which FFmpeg opens, and took a text starting "The free" (an MP4 box name) and a voice
    memo for videos. A folder now lists what starts as a video and, where it opens, holds one."""
    import av

    from evalkit.clipset import clip_set
    from evalkit.errors import EvalkitError
    from evalkit.video import read_video

    d = tmp_path / "card"
    d.mkdir()
    whole = _clip(d / "whole.mp4").read_bytes()
    (d / "clip0002").write_bytes(whole[:len(whole) // 2])  # the index (moov) is at the end: cut off
    ts = tmp_path / "x.ts"
    with av.open(str(ts), "w", format="mpegts") as out:
        s = out.add_stream("mpeg2video", rate=8)
        s.width = s.height = 32
        for i in range(8):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            for p in s.encode(f):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    (d / "clip0003").write_bytes(b"\xa5" * 400 + ts.read_bytes())  # a capture's leading junk
    (d / "photo").write_bytes(b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + bytes(500))
    (d / "NOTES").write_text("The free clips are in the other folder.\n" * 20)  # "free" at bytes 4-8
    with av.open(str(d / "voicememo"), "w", format="mp4") as out:  # sound only, no picture
        s = out.add_stream("aac", rate=16000)
        for i in range(10):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 16000, i * 1024
            for p in s.encode(frame):
                out.mux(p)
        for p in s.encode():
            out.mux(p)
    assert _listed_without_hanging(d) == ["clip0002", "clip0003", "whole.mp4"]
    with pytest.raises(EvalkitError, match="clip0002"):
        read_video(d / "clip0002")
    assert read_video(d / "clip0003").frames.shape[0] >= 7
    # named alone, a suffix-less file is FFmpeg's to judge, with no byte check in front of it
    assert clip_set(d / "clip0003")[1][0]["file"] == "clip0003"


def test_a_suffixless_video_is_named_as_suffixed_ones_are(tmp_path):
    d = tmp_path / "named"
    d.mkdir()
    _clip(d / "x.mp4")
    for name in ("a_red_ball_falls-2", "a_red_ball_falls-10", "a_red_ball_falls"):
        shutil.copy(d / "x.mp4", d / name)
    (d / "x.mp4").unlink()
    recs = read_index(d)  # a prompt's samples in the order of their numbers, as with suffixes
    assert [r["file"] for r in recs] == ["a_red_ball_falls", "a_red_ball_falls-2", "a_red_ball_falls-10"]
    assert {r["prompt"] for r in recs} == {"a red ball falls"}
    cam = tmp_path / "camera"
    cam.mkdir()
    for i in (1, 2):
        _clip(cam / f"clip000{i}.mp4", 40 * i)
        (cam / f"clip000{i}.mp4").rename(cam / f"clip000{i}")
    assert [(r["id"], r["prompt"]) for r in read_index(cam)] == [("clip0001", ""), ("clip0002", "")]  # numbers say nothing
    # `evalkit index` matches numbered suffix-less videos to a prompt list as it does 0001.mp4
    recs = index_numbered(cam, [{"prompt": "a red ball falls"}, {"prompt": "a blue cube slides"}])
    assert [(r["file"], r["prompt"]) for r in recs] == [("clip0001", "a red ball falls"), ("clip0002", "a blue cube slides")]


def test_an_index_may_name_a_suffixless_file_and_one_it_leaves_out_is_named(tmp_path):
    d = tmp_path / "indexed"
    (d / "clips").mkdir(parents=True)
    _clip(d / "clips" / "one.mp4")
    (d / "clips" / "one.mp4").rename(d / "clips" / "one")
    shutil.copy(d / "clips" / "one", d / "clips" / "unlisted")
    (d / "index.jsonl").write_text(json.dumps({"id": "c1", "file": "clips/one", "prompt": "a red ball falls"}) + "\n")
    assert [r["file"] for r in read_index(d)] == ["clips/one"]  # the index names the files, as before
    assert clip_set(d / "clips" / "one")[1][0]["id"] == "c1"  # one clip of the folder keeps its record
    out = tmp_path / "s.json"
    assert main(["score", str(d), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["flicker"]["n"] == 1 and [r["id"] for r in res["per_clip"]] == ["c1"]
    assert any(w.startswith(f"1 videos of {d} are not in its index.jsonl") for w in res["warnings"])


def test_score_dir_scores_a_suffixless_video_beside_a_suffixed_one(folder, capsys):
    capsys.readouterr()
    assert main(["score", str(folder), "--metrics", "flicker", "--json", "-", "--no-mlflow"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert sorted(r["id"] for r in res["per_clip"]) == ["a", "b"] and res["metrics"]["flicker"]["n"] == 2
    # and, being one of the folder's videos, it is never taken for an output path
    before = (folder / "b").read_bytes()
    assert main(["score", str(folder), "--metrics", "flicker", "--json", str(folder / "b"), "--no-mlflow"]) == 2
    assert "is a file of the input folder" in capsys.readouterr().err
    assert (folder / "b").read_bytes() == before


def test_an_output_path_in_a_symlink_loop_is_judged_not_a_traceback(folder, tmp_path):
    """Session 38's review: `check_not_input` let Path.resolve's RuntimeError for a link loop out
    (an internal error where the write itself would name the problem)."""
    from evalkit.atomic import check_not_input

    (tmp_path / "loop1").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop1")
    assert check_not_input(tmp_path / "loop1", [folder]) == tmp_path / "loop1"
    # and as a file to write, refused before any work (it failed as an internal error after it)
    from evalkit.atomic import check_output_file
    from evalkit.errors import BadInputError

    with pytest.raises(BadInputError, match="loop of symbolic links"):
        check_output_file(tmp_path / "loop1")
