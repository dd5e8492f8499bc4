"""Output files: whole or not at all, through links, and never renamed over a device (session 30:
as root, `score --json /dev/null` replaced the device node with a regular file)."""

from __future__ import annotations

import os
import stat

import pytest

from evalkit.atomic import write_atomic
from evalkit.errors import BadInputError


def test_a_regular_file_is_replaced_whole_and_a_link_stays_a_link(tmp_path):
    target = tmp_path / "scores.json"
    target.write_text("old")
    link = tmp_path / "latest.json"
    link.symlink_to(target.name)
    assert write_atomic(link, '{"new": 1}') == link
    assert link.is_symlink() and target.read_text() == '{"new": 1}'
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_fifo_is_written_into_not_renamed_over(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    r = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, "through the pipe")
        assert os.read(r, 100) == b"through the pipe"
    finally:
        os.close(r)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_device_that_refuses_is_a_one_line_error(tmp_path):
    from pathlib import Path

    from evalkit.atomic import _is_stream

    assert _is_stream(Path("/dev/full"))  # else the write below would rename over the device
    with pytest.raises(BadInputError, match="No space left on device"):
        write_atomic("/dev/full", "x" * 100)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_link_to_our_own_stdout_writes_to_it(tmp_path, capfd):
    link = tmp_path / "out"
    link.symlink_to("/proc/self/fd/1")
    write_atomic(link, "to stdout\n")
    assert "to stdout" in capfd.readouterr().out and link.is_symlink()


def test_errors_name_the_users_path_not_a_staging_name():
    """A full or read-only disk was reported on `.signed.bd4b97df.tmp.mp4`, a name the user never saw."""
    from evalkit.errors import user_path

    assert user_path("/m/ro/.signed.bd4b97df.tmp.mp4") == "/m/ro/signed.mp4"
    assert user_path("/m/.scores.json.123.a1b2c3.partial") == "/m/scores.json"
    assert user_path("/m/ul/.w.partial-30000/clips/x.mp4") == "/m/ul/w/clips/x.mp4"
    assert user_path("/m/full/..wm.3153cee8.tmp.partial-24754-259c1a9b.mp4") == "/m/full/wm.mp4"
    assert user_path("/m/.hidden.mp4") == "/m/.hidden.mp4" and user_path("plain.mp4") == "plain.mp4"


def test_another_users_link_or_file_in_a_shared_folder_is_never_written_through(tmp_path):
    """In a /tmp-like folder (world-writable, sticky) another user planted `out.json` -> a file of
    ours: `score --json`, `verify --html`, `report --out` overwrote it (session 33, found running as
    an ordinary user). The kernel's protected_symlinks rule, applied by evalkit itself."""
    import os

    from evalkit.atomic import check_writable, write_atomic
    from evalkit.errors import BadInputError

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    victim = tmp_path / "mine.txt"
    victim.write_text("my data")
    link = shared / "out.json"
    link.symlink_to(victim)
    other = os.geteuid() + 1 if os.geteuid() != 65534 else 65533
    try:
        os.lchown(link, other, -1)
    except PermissionError:
        pytest.skip("needs to give a file to another user (root) to stand in for one")
    for call in (check_writable, lambda p: write_atomic(p, "{}")):
        with pytest.raises(BadInputError, match=r"out.json: is a link of another user .* in the shared folder"):
            call(link)
    assert victim.read_text() == "my data"
    mine = tmp_path / "my-link.json"  # a link of the user's own that leads to the planted one
    mine.symlink_to(link)
    with pytest.raises(BadInputError, match=r"shared/out.json: is a link of another user"):
        write_atomic(mine, "{}")
    planted_dir = shared / "d"  # a planted folder link on the way
    planted_dir.symlink_to(tmp_path)
    os.lchown(planted_dir, other, -1)
    with pytest.raises(BadInputError, match=r"shared/d: is a link of another user"):
        write_atomic(planted_dir / "mine.txt", "{}")
    assert victim.read_text() == "my data"
    os.unlink(mine)
    os.unlink(link)
    mine = shared / "mine.json"  # this user's own file there is rewritten, keeping its mode
    mine.write_text("old")
    os.chmod(mine, 0o600)
    write_atomic(mine, "new")
    assert mine.read_text() == "new" and (os.stat(mine).st_mode & 0o777) == 0o600


def test_clips_go_into_the_users_own_empty_folder_which_keeps_its_mode(tmp_path):
    """An empty OUT folder was swapped for a new one: a team's setgid folder (2770) lost its mode
    and group, and a read-only one was written anyway (session 33, as an ordinary user)."""
    import os

    import numpy as np

    from evalkit.clipset import ClipFolderWriter, read_index
    from evalkit.video import Clip

    team = tmp_path / "team"
    team.mkdir()
    os.chmod(team, 0o2770)
    ino = os.stat(team).st_ino
    with ClipFolderWriter(team) as w:
        w.add(Clip(np.zeros((4, 16, 16, 3), np.uint8), fps=8.0), {"id": "a", "prompt": "x"})
    st = os.stat(team)
    assert st.st_ino == ino and stat.S_IMODE(st.st_mode) == 0o2770
    assert [r["id"] for r in read_index(team)] == ["a"] and (team / "clips" / "a.mp4").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".team.partial")]


def test_the_code_version_is_read_without_git_where_git_refuses_the_checkout():
    """git refuses a checkout another user owns ("dubious ownership"): an ordinary user of a shared
    install got `git_commit: unknown` on every run (session 33). HEAD is read from the files."""
    import subprocess

    from evalkit.home import _head_from_files, _source_root

    if not (_source_root() / ".git").is_dir():
        pytest.skip("not a git checkout")
    want = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_source_root(), capture_output=True, text=True).stdout.strip()
    assert _head_from_files() == want and len(want) == 40


def test_a_folder_that_fills_while_clips_are_made_keeps_no_staging_behind(tmp_path):
    """The refusal was right, but the staged clips were left beside it (session 33's recheck)."""
    import numpy as np

    from evalkit.clipset import ClipFolderWriter
    from evalkit.video import Clip

    out = tmp_path / "race"
    out.mkdir()
    with pytest.raises(BadInputError, match="already exists and is not empty"):
        with ClipFolderWriter(out) as w:
            w.add(Clip(np.zeros((4, 16, 16, 3), np.uint8), fps=8.0), {"id": "a", "prompt": "x"})
            (out / "late.txt").write_text("someone else's")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race"] and (out / "late.txt").exists()


def test_a_fill_in_place_stopped_midway_leaves_the_folder_empty(tmp_path, monkeypatch):
    """A Ctrl-C between moving the clips and the index into the user's empty folder left six clips
    without their index, which `score` read as a complete set, and a staging folder no rerun
    removed (session 33's interruption red team)."""
    import os

    import numpy as np

    import evalkit.clipset as clipset
    from evalkit.clipset import ClipFolderWriter
    from evalkit.video import Clip

    out = tmp_path / "out"
    out.mkdir()
    real_replace, calls = os.replace, []

    def interrupted(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the index is in place, the clips not yet: the user presses Ctrl-C
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(clipset.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with ClipFolderWriter(out) as w:
            w.add(Clip(np.zeros((4, 16, 16, 3), np.uint8), fps=8.0), {"id": "a", "prompt": "x"})
    monkeypatch.setattr(clipset.os, "replace", real_replace)
    assert list(out.iterdir()) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    # a killed fill's hidden parts (its process gone) do not make the folder "not empty" for a rerun
    (out / ".clips.filling-4194000").mkdir()
    with ClipFolderWriter(out) as w:
        w.add(Clip(np.zeros((4, 16, 16, 3), np.uint8), fps=8.0), {"id": "a", "prompt": "x"})
    assert sorted(p.name for p in out.iterdir()) == ["clips", "index.jsonl"]
