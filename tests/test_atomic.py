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
