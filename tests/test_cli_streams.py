"""The command line where users' shells put it (session 31's red team): a reader that stops
early (`| head`), a full or closed stdout, a Latin-1 terminal, names that try to print lines of
their own, and output names near the OS's limit."""

from __future__ import annotations

import os
import subprocess
import sys

from evalkit.atomic import write_atomic
from evalkit.cli import main

EVALKIT = [sys.executable, "-m", "evalkit"]


def run(args, **kw):
    return subprocess.run(EVALKIT + args, capture_output=kw.pop("capture", True), text=True, timeout=120, **kw)


def test_a_reader_that_stops_early_a_full_or_closed_stdout():
    r, w = os.pipe()
    os.close(r)  # `| head -1` once head has exited: every write is EPIPE
    p = subprocess.run(EVALKIT + ["generator", "recipe"], stdout=w, stderr=subprocess.PIPE, text=True, timeout=120)
    os.close(w)
    assert p.returncode == 141, p.stderr  # it was 1, which means "a check failed" (verify: tampered)
    with open("/dev/full", "w") as full:
        p = subprocess.run(EVALKIT + ["generator", "recipe"], stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=120)
    assert p.returncode == 2 and "cannot write the output" in p.stderr and "internal error" not in p.stderr
    p = subprocess.run(" ".join(EVALKIT + ["generator", "recipe"]) + " >&-", shell=True, stderr=subprocess.PIPE,
                       text=True, timeout=120)
    assert p.returncode == 2 and "standard output is closed" in p.stderr  # it was exit 0, the results lost


def test_a_latin1_terminal_gets_escapes_and_the_right_exit_code(tmp_path):
    env = dict(os.environ, PYTHONIOENCODING="latin-1")
    p = subprocess.run(EVALKIT + ["detect", str(tmp_path / "nothere 漢字.mp4")], env=env, capture_output=True,
                       encoding="latin-1", timeout=120)
    assert p.returncode == 3 and "\\u6f22\\u5b57" in p.stdout + p.stderr and "internal error" not in p.stderr


def test_names_print_as_escapes_and_long_names_are_written(tmp_path, capsys):
    out = tmp_path / "a\nOK fake"
    assert main(["world", "render", "--n", "1", "--frames", "4", "--size", "16", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "a\\nOK fake" in printed and "\nOK fake" not in printed
    long = tmp_path / ("L" * 246 + ".json")  # 251 bytes: the OS takes it; its temporary name did not fit
    assert write_atomic(long, "{}") == long and long.read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_detect_calls_a_link_to_nothing_missing(tmp_path, capsys):
    link = tmp_path / "dangling.mp4"
    link.symlink_to(tmp_path / "gone.mp4")
    assert main(["detect", str(link)]) == 3  # as every other command (it said 2)


def test_verify_without_a_key_or_detector_does_not_call_a_long_video_unreadable(tmp_path, monkeypatch, capsys):
    """With nothing to decode, verify still checked the decode budget on the header and called a
    10-minute 720p video "unreadable", exit 2 (session 31)."""
    import numpy as np

    from evalkit.video import write_video

    clip = write_video(tmp_path / "long.mp4", np.full((40, 32, 32, 3), 99, np.uint8), fps=8.0)
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "empty-home"))  # no watermark key there
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(10 * 32 * 32 * 3))
    assert main(["verify", str(clip), "--no-detector"]) == 0
    assert "unreadable" not in capsys.readouterr().out


def test_prompts_dash_reads_standard_input(monkeypatch):
    import io

    from generators.base import load_prompts

    monkeypatch.setattr(sys, "stdin", io.StringIO("a red ball falls\n# a comment\na blue square slides\n"))
    assert [p.text for p in load_prompts("-")] == ["a red ball falls", "a blue square slides"]
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"prompt": "a red ball falls", "id": "x1"}\n'))
    (p,) = load_prompts("-")
    assert (p.text, p.id) == ("a red ball falls", "x1")


def test_a_signal_that_lands_in_a_finaliser_or_an_import_is_raised_again_outside_it(monkeypatch, tmp_path):
    """Python ignores an exception raised inside __del__ (tqdm's), so a `kill` landing there was
    lost and the command ran on; one raised inside an import (torch's C++ start-up) aborted the
    process, exit 134. The handler now holds it and tries again a moment later."""
    import signal

    import pytest

    from evalkit import interrupts

    monkeypatch.setattr(interrupts, "RECEIVED", [])
    monkeypatch.setattr(interrupts, "_state", {"raising": True, "pending": False, "retrying": False})  # in a command
    timers = []
    monkeypatch.setattr(signal, "setitimer", lambda which, seconds, interval=0.0: timers.append((which, seconds,
                                                                                              interval)))

    def __del__():
        return sys._getframe()

    assert interrupts.on_signal(signal.SIGTERM, __del__()) is None  # not raised where it would be lost
    # retried every 50 ms until it can be raised (session 38: one retry could land just before a
    # sleep's system call and be handled only when the sleep ended)
    assert timers == [(signal.ITIMER_REAL, 0.05, 0.05)] and interrupts.RECEIVED == [signal.SIGTERM]
    assert interrupts.on_signal(signal.SIGALRM, __del__()) is None and len(timers) == 1  # still held, still timed
    with pytest.raises(KeyboardInterrupt):  # the retry (SIGALRM), in ordinary code
        interrupts.on_signal(signal.SIGALRM, sys._getframe())
    assert timers[-1] == (signal.ITIMER_REAL, 0, 0.0)  # raised: the retries stop
    assert interrupts.on_signal(signal.SIGALRM, sys._getframe()) is None  # raised once: a later alarm is not ours
    (tmp_path / "being_imported.py").write_text(
        "import signal, sys\nfrom evalkit import interrupts\n"
        "HELD = interrupts.on_signal(signal.SIGINT, sys._getframe()) is None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import being_imported

    assert being_imported.HELD and len(timers) == 3 and interrupts.RECEIVED == [signal.SIGTERM, signal.SIGINT]


def test_an_ascii_locale_prints_names_as_escapes_not_question_marks(tmp_path):
    """LANG=C with PYTHONUTF8=0: click wrapped the ASCII stream in its own and wrote `?` for every
    byte of a name that was not ASCII, in errors and in results (session 34)."""
    env = {**os.environ, "LANG": "C", "LC_ALL": "C", "PYTHONUTF8": "0"}
    env.pop("PYTHONIOENCODING", None)
    # named as bytes: under the C locale Python holds the non-ASCII ones as lone surrogates
    p = subprocess.run([*EVALKIT, "generator", "export", os.fsencode(str(tmp_path / "vidéo 漢.pt")), "out"], env=env,
                       capture_output=True, timeout=120)
    shown = (b"vid\\xc3\\xa9o \\xe6\\xbc\\xa2.pt", b"vid\\xe9o \\u6f22.pt")  # its bytes, or click's decoding
    assert p.returncode in (2, 3) and any(n in p.stderr for n in shown) and b"?" not in p.stderr, p.stderr
    code = ("import sys, click, evalkit.cli as c\n"  # evalkit's own lines, on both streams, through entry()
            "@c.cli.command('say')\n@click.argument('name')\n"
            "def say(name):\n    [click.echo(f'{name}: caf\\u00e9 \\u6f22', err=e) for e in (0, 1)]\n"
            "sys.argv[0] = 'evalkit'\nc.entry()")
    p = subprocess.run([sys.executable, "-c", code, "say", os.fsencode("vidéo")], env=env, capture_output=True,
                       timeout=120)
    assert p.returncode == 0 and p.stdout == p.stderr == b"vid\\xc3\\xa9o: caf\\xe9 \\u6f22\n", p.stdout + p.stderr


def test_verify_names_the_frame_limit_when_that_is_what_cut_the_read(tmp_path, monkeypatch):
    import numpy as np

    from evalkit.provenance.verify import verify_file
    from evalkit.video import write_video

    clip = write_video(tmp_path / "long.mp4", np.full((40, 32, 32, 3), 99, np.uint8), fps=8.0)
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", "30")
    r = verify_file(clip, wm_key="7e57" * 16)
    assert r["checked_part"]["frames_read"] <= 30
    assert any("longer than the frame limit" in x for x in r["reasons"]), r["reasons"]


def test_sign_names_an_output_name_that_is_not_utf8(tmp_path):
    """c2pa's JSON failed on it ("lone leading surrogate"), and the error named the input file."""
    import numpy as np
    import pytest

    from evalkit.errors import BadInputError
    from evalkit.provenance.c2pa import sign_file
    from evalkit.provenance.credentials import init_keys
    from evalkit.provenance.signers import load_signer
    from evalkit.video import write_video

    creds = init_keys(tmp_path / "keys")
    src = write_video(tmp_path / "in.mp4", np.full((8, 32, 32, 3), 90, np.uint8), fps=8.0)
    out = tmp_path / os.fsdecode(b"out\xe9.mp4")
    with pytest.raises(BadInputError, match="not valid UTF-8") as e:
        sign_file(src, out, load_signer(creds.signer_cert, creds.signer_key))
    assert "in.mp4" not in str(e.value) and not out.exists()


def _stderr_on_a_terminal(args, env) -> str:
    """Run the CLI with stderr on a pseudo-terminal (where progress bars belong); its text."""
    import fcntl
    import pty
    import select
    import struct
    import termios

    master, slave = pty.openpty()
    # a new pseudo-terminal is 0 columns wide, where tqdm draws bars of nothing: give it 100
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    p = subprocess.Popen(EVALKIT + args, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            p.kill()
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=120)
    os.close(master)
    assert p.returncode == 0, b"".join(chunks)
    return b"".join(chunks).decode("utf-8", "replace")


def test_long_work_shows_progress_on_a_terminal_and_none_in_a_log(tmp_path):
    """`sign --watermark` reads and marks a video in two passes (minutes on a long one): a bar for
    each on a terminal; piped to a log, not a byte of bar."""
    env = dict(os.environ, EVALKIT_HOME=str(tmp_path / "home"))
    assert run(["keys", "init"], env=env).returncode == 0
    assert run(["world", "render", str(tmp_path / "w"), "--n", "1", "--size", "64"], env=env).returncode == 0
    src = str(tmp_path / "w/clips/test-s0-00000.mp4")
    text = _stderr_on_a_terminal(["sign", src, str(tmp_path / "tty.mp4"), "--watermark"], env)
    assert "read test-s0-00000.mp4" in text and "mark test-s0-00000.mp4" in text and "frame/s" in text
    logged = run(["sign", src, str(tmp_path / "log.mp4"), "--watermark"], env=env)
    assert logged.returncode == 0 and "frame/s" not in logged.stderr and "\r" not in logged.stderr
