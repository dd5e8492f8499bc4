"""Two commands at once, or one stopped at a bad moment (session 30's red team): credentials made
as one set, the registry's read-merge-write under a lock, an MLflow store made whole or named as
half-made, and SIGTERM always ending in "interrupted"."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import threading
import time

from evalkit.provenance.credentials import default_paths, init_keys
from evalkit.provenance.signers import load_signer


def test_two_keys_init_at_once_leave_one_matching_set(tmp_path):
    for i in range(4):  # unlocked, a quarter of such races mixed one run's certificate with the other's key
        d = tmp_path / f"c{i}"
        errors = []

        def make():
            try:
                init_keys(dir=d, force=True)
            except Exception as e:  # noqa: BLE001 (recorded, asserted below)
                errors.append(e)

        threads = [threading.Thread(target=make) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        paths = default_paths(d)
        assert load_signer(paths.signer_cert, paths.signer_key) is not None


def test_an_ai_signing_survives_a_capture_signing_of_the_same_clip_at_once(tmp_path):
    import numpy as np

    from evalkit.provenance import registry

    mean = np.full((32, 32, 3), 100.0)
    ai = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    cap = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"
    for i in range(6):
        payload = f"{i:016x}"
        threads = [threading.Thread(target=registry.register, args=(payload, "abcdef12", mean),
                                    kwargs={"provenance": {"digital_source_type": t}, "root": tmp_path})
                   for t in (ai, cap)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        rec = registry.lookup(payload, "abcdef12", tmp_path)
        kinds = [rec["manifest"].get("digital_source_type"), *(a["digital_source_type"] for a in rec.get("also", []))]
        assert rec["manifest"]["digital_source_type"] == ai and sorted(kinds) == sorted([ai, cap]), rec


def test_a_half_made_store_is_named_not_an_internal_error():
    from evalkit.tracking import store_error_message

    err = sqlite3.OperationalError("table logged_models already exists")
    assert "half-made" in store_error_message(err)
    assert store_error_message(sqlite3.OperationalError("no such table: runs")) is None


def test_a_new_sqlite_store_is_made_whole(tmp_path, monkeypatch):
    from evalkit import tracking

    db = tmp_path / "m.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    tracking.check_reachable()
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alembic_version", "experiments", "runs"} <= tables
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_sigterm_during_a_command_is_exit_130(tmp_path):
    script = ("import os, signal, threading, evalkit.cli as c\n"
              "threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()\n"
              "import sys; sys.argv = ['evalkit', 'world', 'render', sys.argv[1], '--n', '400', '--size', '64']\n"
              "c.entry()\n")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "w")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 130 and r.stderr.strip().endswith("evalkit: interrupted"), r.stderr[-500:]
    assert not (tmp_path / "w").exists()


def _evalkit_script(body: str, *args, **kw) -> subprocess.CompletedProcess:
    """`body` run in a fresh Python as the `evalkit` command (its handlers set on importing evalkit)."""
    prelude = "import os, signal, sys, time\nsys.argv[0] = 'evalkit'\nimport evalkit.cli as c\n"
    return subprocess.run([sys.executable, "-c", prelude + body, *map(str, args)], capture_output=True, text=True,
                          timeout=120, **kw)


def test_a_signal_inside_an_import_waits_for_the_import_then_is_exit_130(tmp_path):
    """SIGTERM or Ctrl-C while torch's C++ start-up ran Python code aborted the process (exit 134,
    a core dump, 2 `score`s in 25 killed in their first seconds, session 34): the KeyboardInterrupt
    is now raised when the import is done."""
    body = ("sys.path.insert(0, sys.argv[1])\n"
            "@c.cli.command('start-up')\n"
            "def start_up():\n"
            "    import native_start_up  # the interrupt lands a moment after it (anywhere: in a print too)\n"
            "    time.sleep(30)\n"
            "sys.argv[1:] = ['start-up']\nc.entry()\n")
    for sig in ("SIGTERM", "SIGINT"):
        (tmp_path / sig).mkdir()
        (tmp_path / sig / "native_start_up.py").write_text(
            f"import os, signal, time\nos.kill(os.getpid(), signal.{sig})  # arrives while this module is imported\n"
            "time.sleep(0.2)  # blocked in C, as a library's start-up is\n"
            "open(os.path.join(os.path.dirname(__file__), 'whole'), 'w').close()  # the import's last line ran\n")
        t0 = time.monotonic()
        r = _evalkit_script(body, tmp_path / sig, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert r.returncode == 130 and (tmp_path / sig / "whole").exists(), (sig, r.stdout, r.stderr[-500:])
        assert r.stderr.strip() == "evalkit: interrupted" and time.monotonic() - t0 < 20  # (click writes a newline)


def test_a_signal_before_the_command_starts_or_after_it_ends_is_exit_130_without_a_traceback(tmp_path):
    """Before evalkit set its handlers a `kill` was exit 143 and Ctrl-C a bare KeyboardInterrupt
    traceback; one after the work a traceback too. Both are "interrupted", exit 130, now."""
    early = "os.kill(os.getpid(), getattr(signal, sys.argv[1])); time.sleep(0.2)\nsys.argv[1:] = ['--version']\n"
    late = ("real = c.main\n"
            "c.main = lambda: (real(['--version']), os.kill(os.getpid(), getattr(signal, sys.argv[1])),"
            " time.sleep(0.2))[0]\n")
    for sig in ("SIGTERM", "SIGINT"):
        r = _evalkit_script(early + "c.entry()\n", sig, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert (r.returncode, r.stdout, r.stderr) == (130, "", "evalkit: interrupted\n"), (sig, r.stderr[-500:])
        r = _evalkit_script(late + "c.entry()\n", sig, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        assert r.returncode == 130 and "evalkit, version" in r.stdout and r.stderr == "evalkit: interrupted\n", r.stderr[-500:]
    # a background job (`evalkit ... &`) starts with SIGINT ignored: it still is
    r = _evalkit_script(early + "c.entry()\n", "SIGINT", preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert r.returncode == 0 and "evalkit, version" in r.stdout and r.stderr == "", r.stderr[-500:]


def test_only_the_evalkit_command_takes_the_signals_over_on_import(monkeypatch):
    """A program that imports evalkit (a notebook, pytest) keeps Python's own Ctrl-C."""
    from evalkit.interrupts import started_as_command

    for argv, orig_argv, command in ((["/venv/bin/evalkit", "score"], [], True),
                                     (["-m"], ["python", "-X", "utf8", "-m", "evalkit", "score"], True),
                                     (["-m"], ["python", "-m", "evalkit.tracking_server"], False),
                                     (["/venv/bin/pytest"], [], False), (["-c"], ["python", "-c", "..."], False)):
        monkeypatch.setattr(sys, "argv", argv)
        monkeypatch.setattr(sys, "orig_argv", orig_argv)
        assert started_as_command() is command, argv
