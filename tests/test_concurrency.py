"""Two commands at once, or one stopped at a bad moment (session 30's red team): credentials made
as one set, the registry's read-merge-write under a lock, an MLflow store made whole or named as
half-made, and SIGTERM always ending in "interrupted"."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading

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
