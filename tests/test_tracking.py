"""The MLflow layer against a temporary SQLite store (the `mlflow_store` fixture)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from evalkit import tracking, tracking_store
from evalkit.metrics.stats import Estimate, proportion_ci


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def _download(run_id: str, artifact: str, dst: Path) -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=str(dst)))


def test_run_has_tags_params_and_metric_quartet(mlflow_store):
    params = {"model": "uvit:small", "sampler": {"name": "ddim", "steps": 25}, "seeds": [0, 1],
              "long": "x" * 7000}
    with tracking.start_run("exp-a", "r1", params=params, tags={"suite": "world-v1"}, seed=123) as run:
        tracking.log_metric_ci("fvd", 123.4, 110.0, 140.0, 256)
        tracking.log_estimate("physics/pass rate", proportion_ci(30, 40))
        tracking.log_estimates({"clip:score": Estimate(0.3, 0.25, 0.35, 64),
                                "flicker": Estimate(0.9, math.nan, math.nan, 1)})
    r = _client().get_run(run.info.run_id)
    assert r.info.status == "FINISHED" and r.info.run_name == "r1"

    t = r.data.tags
    for k in ("evalkit.version", "evalkit.git_commit", "evalkit.git_dirty", "evalkit.machine",
              "evalkit.platform", "evalkit.python", "evalkit.torch", "evalkit.cpu_count", "evalkit.gpu"):
        assert t[k], k
    assert t["evalkit.seed"] == "123" and t["suite"] == "world-v1"
    assert t["evalkit.git_dirty"] in ("true", "false", "unknown")
    assert int(t["evalkit.cpu_count"]) >= 1

    p = r.data.params
    assert p["model"] == "uvit:small" and p["sampler.name"] == "ddim" and p["sampler.steps"] == "25"
    assert json.loads(p["seeds"]) == [0, 1]
    assert len(p["long"]) == 6000 and p["long"].endswith("...")

    m = r.data.metrics
    assert (m["fvd"], m["fvd_ci_low"], m["fvd_ci_high"], m["fvd_n"]) == (123.4, 110.0, 140.0, 256.0)
    assert m["physics/pass rate"] == 0.75 and m["physics/pass rate_n"] == 40
    assert m["clip_score_ci_high"] == 0.35  # ':' is not portable: sanitised to '_'
    assert m["flicker"] == 0.9 and math.isnan(m["flicker_ci_low"])  # NaN bounds survive the store
    assert t["ci.physics/pass rate"] == "wilson@0.95" and "ci.fvd" not in t  # bare numbers carry no method
    assert t["ci.clip_score"] == "bootstrap-percentile@0.95"


def test_sanitize_name():
    s = tracking.sanitize_name
    assert s("fvd/i3d@16f") == "fvd/i3d_16f"
    assert s("a:b é") == "a_b _"
    assert s("/../x//./y/") == "x/y"
    assert s("") == "_" and s("..") == "_"
    assert len(s("x" * 1000)) == 250


def test_image_json_and_table_artifacts(mlflow_store, tmp_path):
    img = np.zeros((20, 30, 3), np.uint8)
    img[5:10, 5:25] = (255, 0, 0)
    df = pd.DataFrame({"id": ["a", "b"], "flicker": [0.91, 0.97]})
    png_on_disk = tmp_path / "in.png"
    from PIL import Image

    Image.fromarray(img).save(png_on_disk)
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "notes.txt").write_text("hello")

    with tracking.start_run("exp-art") as run:
        tracking.log_image(img, "plots/grid.png")
        tracking.log_image(png_on_disk, "copy.png")
        obj = {"x": np.float32(1.5), "nan": float("nan"), "est": Estimate(1, 0, 2, 3), "p": Path("a")}
        tracking.log_json(obj, "summary.json")
        tracking.log_table(df, "tables/per_clip.csv")
        tracking.log_table(df, "tables/per_clip.json")
        tracking.log_table(df, "tables/per_clip.parquet")
        tracking.log_artifact(extra, "extra")
        tracking.log_artifact(extra / "notes.txt")
        with pytest.raises(ValueError):
            tracking.log_table(df, "t.xlsx")
        with pytest.raises(ValueError):
            tracking.log_image(img, "../escape.png")
    rid = run.info.run_id
    names = {a.path for d in (None, "tables") for a in _client().list_artifacts(rid, d)}
    assert {"plots", "copy.png", "summary.json", "tables/per_clip.csv", "notes.txt", "extra"} <= names

    dl = tmp_path / "dl"
    back = np.asarray(Image.open(_download(rid, "plots/grid.png", dl)))
    assert np.array_equal(back, img)
    assert np.array_equal(np.asarray(Image.open(_download(rid, "copy.png", dl))), img)
    summary = json.loads(_download(rid, "summary.json", dl).read_text())
    assert summary == {"x": 1.5, "nan": None, "est": Estimate(1, 0, 2, 3).to_dict(), "p": "a"}
    pd.testing.assert_frame_equal(pd.read_csv(_download(rid, "tables/per_clip.csv", dl)), df)
    pd.testing.assert_frame_equal(pd.read_json(_download(rid, "tables/per_clip.json", dl)), df)
    pd.testing.assert_frame_equal(pd.read_parquet(_download(rid, "tables/per_clip.parquet", dl)), df)
    assert _download(rid, "extra/notes.txt", dl).read_text() == "hello"


def test_failing_block_ends_failed_and_reraises(mlflow_store):
    import mlflow

    with pytest.raises(ZeroDivisionError):
        with tracking.start_run("exp-fail", "boom") as run:
            tracking.log_metric_ci("x", 1, 0, 2, 3)
            1 / 0
    assert mlflow.active_run() is None
    assert _client().get_run(run.info.run_id).info.status == "FAILED"


def test_logging_outside_a_run_is_refused(mlflow_store):
    with pytest.raises(RuntimeError, match="no active MLflow run"):
        tracking.log_metric_ci("x", 1, 0, 2, 3)
    assert tracking.runs_frame("Default").empty  # and no stray run was started


def test_runs_frame_and_nesting(mlflow_store):
    assert tracking.runs_frame("nope").empty
    for model, fvd in (("a", 100.0), ("b", 200.0)):
        with tracking.start_run("exp-rf", model, params={"model": model}):
            tracking.log_metric_ci("fvd", fvd, fvd - 10, fvd + 10, 64)
    df = tracking.runs_frame("exp-rf")
    assert len(df) == 2 and set(df["params.model"]) == {"a", "b"}
    assert set(df["metrics.fvd_ci_low"]) == {90.0, 190.0}
    only = tracking.runs_frame("exp-rf", "metrics.fvd < 150")
    assert list(only["tags.mlflow.runName"]) == ["a"]

    with tracking.start_run("exp-nest", "parent") as parent:
        with tracking.start_run("exp-nest", "child") as child:
            pass
    assert _client().get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id


def test_tracking_uri_honours_env(mlflow_store, monkeypatch, tmp_path):
    assert tracking.tracking_uri() == mlflow_store
    other = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", other)
    assert tracking.tracking_uri() == other


def test_import_is_light():
    # `evalkit --help` must not pay for mlflow, pandas or torch through this module.
    code = ("import sys, evalkit.tracking, evalkit.grid, evalkit.home;"
            "print(sorted(m for m in ('mlflow', 'pandas', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert out.stdout.strip() == "[]"


def test_home_is_private_and_git_info_is_typed(tmp_path, monkeypatch):
    # evalkit.home feeds the run tags; tested here as it has no test file of its own.
    from evalkit import home

    target = tmp_path / "a" / "evalkit-home"
    monkeypatch.setenv("EVALKIT_HOME", str(target))
    assert home.evalkit_home() == target and target.is_dir()
    assert target.stat().st_mode & 0o777 == 0o700
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "file"))
    from evalkit.errors import BadInputError

    with pytest.raises(BadInputError, match="not a folder"):
        home.evalkit_home()
    commit, dirty = home.git_commit(), home.git_dirty()
    assert commit is None or len(commit) == 40
    assert dirty in (None, True, False) and (commit is None) == (dirty is None)
    info = home.machine_info()
    assert {"hostname", "platform", "python", "torch", "cpu_count", "gpu"} <= set(info)


def test_an_unreachable_tracking_server_fails_fast_in_one_line(monkeypatch, tmp_path, capsys):
    """MLflow retries a server that does not answer for about four minutes and then raises an
    internal error, after the evaluation it was to log has been computed: the commands check
    first, and say what to do."""
    import time

    from http_stub import closed_port, serve

    from evalkit.cli import main
    from evalkit.errors import EXIT_MISSING, MissingResourceError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setattr(tracking_store, "_REACHED", set())
    with pytest.raises(MissingResourceError, match="not reachable"):
        tracking.check_reachable(timeout=2)
    t0 = time.perf_counter()
    code = main(["score", str(tmp_path), "--metrics", "flicker"])
    err = capsys.readouterr().err
    assert code == EXIT_MISSING and "MLFLOW_TRACKING_URI" in err and err.count("\n") == 1
    assert time.perf_counter() - t0 < 30
    # without logging no server is needed: the command goes on to find the folder empty
    assert main(["score", str(tmp_path), "--metrics", "flicker", "--no-mlflow"]) == 2
    assert "no index.jsonl and no videos" in capsys.readouterr().err

    with serve(lambda body: ("application/json", b'{"experiments": []}')) as url:  # answers as MLflow does
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        tracking.check_reachable(timeout=2)  # answers: no error
        assert url in tracking_store._REACHED
    with serve(lambda body: ("text/plain", b"OK")) as url:  # /health 200, but no MLflow API behind it
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with pytest.raises(MissingResourceError, match="not as an MLflow tracking server"):
            tracking.check_reachable(timeout=2)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    tracking.check_reachable()  # local databases are not checked here


def test_a_file_store_is_named_before_the_work(monkeypatch, tmp_path, capsys, real_videos_dir):
    """MLFLOW_TRACKING_URI=./mlruns (MLflow 2's default store, which many users still have): MLflow
    3 refuses it with an exception, which came out as an internal error after the scoring was
    done. Now it is one line before any work, naming the way out; opted in, it is used."""
    from evalkit.cli import main
    from evalkit.errors import EXIT_MISSING

    store = tmp_path / "mlruns"
    clip = real_videos_dir / "carphone_pristine.mp4"
    for uri in (str(store), f"file://{store}"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        assert main(["score", str(clip), "--metrics", "flicker"]) == EXIT_MISSING
        err = capsys.readouterr().err
        assert "is a file store" in err and "MLFLOW_ALLOW_FILE_STORE=true" in err and err.count("\n") == 1
        assert not store.exists()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    assert main(["score", str(clip), "--metrics", "flicker"]) == 0
    assert (store / "0").exists() or any(store.iterdir())
    assert tracking.runs_frame("evalkit-score").shape[0] == 1


def test_a_store_that_is_not_a_database_is_named_before_the_work(monkeypatch, tmp_path, capsys, real_videos_dir):
    """MLFLOW_TRACKING_URI=sqlite:///FILE where FILE is something else (a typo onto another
    file, a truncated copy): SQLAlchemy's DatabaseError came out of MLflow as an internal error."""
    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT

    bogus = tmp_path / "notes.db"
    bogus.write_text("not a database\n")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{bogus}")
    clip = real_videos_dir / "carphone_pristine.mp4"
    assert main(["score", str(clip), "--metrics", "flicker"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "is not an SQLite database" in err and str(bogus) in err and err.count("\n") == 1
    assert bogus.read_text() == "not a database\n"  # untouched
    # the right header over a damaged body (a copy cut short after its first bytes)
    cut = tmp_path / "cut.db"
    cut.write_bytes(b"SQLite format 3\x00" + b"\x00" * 84)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{cut}")
    assert main(["leaderboard", "--suite", "world-v1"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "is not an SQLite database (damaged" in err and err.count("\n") == 1
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert main(["score", str(clip), "--metrics", "flicker"]) == 0  # absent: MLflow creates it


def test_a_store_of_another_mlflow_version_or_a_mistyped_one_is_one_line(monkeypatch, tmp_path, capsys):
    """Another MLflow's database was an internal error cut off mid-word, its advice wrong for a
    newer schema; a mistyped store path for a read-only command made an empty store and folders."""
    import os
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    import mlflow

    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT, EXIT_MISSING

    db = tmp_path / "store.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    mlflow.set_tracking_uri(f"sqlite:///{db}")
    mlflow.search_experiments()  # creates the store at this MLflow's schema
    known = sorted(Path(mlflow.__file__).parent.glob("store/db_migrations/versions/*_*.py"))[0].name.split("_")[0]
    for rev, says in ((known, "written by an older MLflow"), ("ffffffffffff", "use the MLflow version that wrote it")):
        con = sqlite3.connect(db)
        con.execute("UPDATE alembic_version SET version_num = ?", (rev,))
        con.commit()
        con.close()
        # a process of its own: MLflow checks a store's schema once a process
        r = subprocess.run([sys.executable, "-m", "evalkit.cli", "leaderboard", "--suite", "world-v1"],
                           capture_output=True, text=True, env={**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}"})
        err = r.stderr.strip().splitlines()[-1]
        assert r.returncode == EXIT_BAD_INPUT and says in err and str(db) in err, r.stderr
    typo = tmp_path / "nodir" / "typo.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{typo}")
    assert main(["leaderboard", "--suite", "world-v1"]) == EXIT_MISSING
    assert "no MLflow store there" in capsys.readouterr().err and not typo.parent.exists()


def test_stores_that_are_not_mlflows_are_named_and_left_alone(monkeypatch, tmp_path, capsys):
    """Session 32's red team: another program's SQLite file got MLflow's ~200 tables from a
    `leaderboard`; a web server that is not MLflow gave an internal error (a proxy's 502s, four
    minutes of retries); an in-memory store lost the runs it reported."""
    import sqlite3

    from http_stub import serve

    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT, EXIT_MISSING

    tracker = tmp_path / "tracker.db"  # a lab tracker's own tables of MLflow's names: not MLflow's
    with sqlite3.connect(tracker) as db:
        db.execute("CREATE TABLE experiments (id INTEGER, title TEXT)")
        db.execute("CREATE TABLE runs (id INTEGER, x REAL)")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tracker}")
    kept = tracker.read_bytes()
    assert main(["leaderboard", "--suite", "world-v1"]) == EXIT_BAD_INPUT and tracker.read_bytes() == kept
    capsys.readouterr()
    bare = tmp_path / "bare.db"  # a database with no table: no store to a reader, and left so
    with sqlite3.connect(bare) as db:
        db.execute("PRAGMA user_version=7")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{bare}")
    kept = bare.read_bytes()
    assert main(["leaderboard", "--suite", "world-v1"]) == EXIT_MISSING and bare.read_bytes() == kept
    capsys.readouterr()
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as db:
        db.execute("CREATE TABLE users (id INTEGER)")
    before = app.read_bytes()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{app}")
    for argv in (["leaderboard", "--suite", "world-v1"], ["bench", "run", "--suite", "world-v1", "--model", "world",
                                                        "--max-prompts", "1", "--out", str(tmp_path / "b")]):
        assert main(argv) == EXIT_BAD_INPUT
        err = capsys.readouterr().err
        assert "is an SQLite database but not an MLflow store (its tables: users)" in err and err.count("\n") == 1
        assert app.read_bytes() == before
    empty = tmp_path / "empty.db"
    empty.touch()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{empty}")
    assert main(["leaderboard", "--suite", "world-v1"]) == EXIT_MISSING and empty.stat().st_size == 0
    capsys.readouterr()
    monkeypatch.setattr(tracking_store, "_REACHED", set())
    for status in (404, 502):
        with serve(lambda body: ("text/html", b"<html>nope</html>"), status=status) as url:
            monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
            with pytest.raises(Exception, match=f"not as an MLflow tracking server .*HTTP {status}"):
                tracking.check_reachable(timeout=2)
    # a login-protected MLflow: /health open, its API 401 without credentials (basic-auth app)
    with serve(lambda body: ("application/json", b'{"experiments": []}'),
               status=lambda path: 200 if path.startswith("/health") else 401) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with pytest.raises(Exception, match="asks for a login; set MLFLOW_TRACKING_USERNAME"):
            tracking.check_reachable(timeout=2)
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "me")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "wrong")
        with pytest.raises(Exception, match="refused the login"):
            tracking.check_reachable(timeout=2)
    # a proxy that guards every path, /health too: a login matter, not "not MLflow"
    with serve(lambda body: ("text/plain", b"no"), status=401) as url:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
        with pytest.raises(Exception, match="refused the login"):
            tracking.check_reachable(timeout=2)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME")
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    for uri in ("sqlite:///:memory:", "sqlite://"):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        with pytest.raises(Exception, match="in-memory store"):
            tracking.check_reachable()


def test_an_evalkit_run_never_lands_in_the_users_active_run(mlflow_store, monkeypatch):
    """With MLFLOW_RUN_ID set (inside `mlflow run`), evalkit logged into the user's run, renamed it
    and ended it, and its own result never reached the leaderboard."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    mine = client.create_run(client.create_experiment("my-training"), run_name="my training run")
    monkeypatch.setenv("MLFLOW_RUN_ID", mine.info.run_id)
    with tracking.start_run("evalkit-x", run_name="evalkit's", params={"a": 1}) as run:
        tracking.log_metric_ci("m", 1.0, 0.5, 1.5, 3)
    assert run.info.run_id != mine.info.run_id and os.environ["MLFLOW_RUN_ID"] == mine.info.run_id
    theirs = client.get_run(mine.info.run_id)
    assert theirs.info.run_name == "my training run" and theirs.info.status == "RUNNING" and not theirs.data.params
    assert client.get_run(run.info.run_id).info.experiment_id == client.get_experiment_by_name("evalkit-x").experiment_id
    assert mlflow.active_run() is None


def test_a_store_that_cannot_be_made_is_said_before_the_work(tmp_path, monkeypatch):
    """sqlite:///FOLDER/new.db where FOLDER cannot be written (or is not there): MLflow retried for
    two minutes after the work and the command ended as an internal error (session 33)."""
    from evalkit.errors import BadInputError, MissingResourceError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-such-folder' / 'new.db'}")
    with pytest.raises(MissingResourceError, match=r"cannot be created: its folder .*no-such-folder does not exist"):
        tracking.check_reachable()
    (tmp_path / "plain.mp4").write_bytes(b"x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'plain.mp4' / 'new.db'}")
    with pytest.raises(BadInputError, match=r"plain.mp4 is a file, not a folder"):
        tracking.check_reachable()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'no-such-folder' / 'new.db'}")
    tracking.check_reachable(writing=False)  # a reader is told by check_store_exists instead
    with pytest.raises(Exception, match="no MLflow store there"):
        tracking.check_store_exists()


def test_an_infinite_metric_is_refused_and_nan_kept(mlflow_store):
    """MLflow stored inf as 1.797e308 without a word (session 34); NaN means "none" and is kept."""
    with tracking.start_run("exp-inf") as run:
        with pytest.raises(ValueError, match=r"fvd: fvd_ci_high is inf; .*finite number, or NaN"):
            tracking.log_metric_ci("fvd", 10.0, 5.0, math.inf, 8)
        with pytest.raises(ValueError, match="kvd: kvd is -inf"):
            tracking.log_estimates({"ok": Estimate(1.0, 0.5, 1.5, 3), "kvd": Estimate(-math.inf, 0.0, 1.0, 3)})
        tracking.log_metric_ci("flicker", 0.9, math.nan, math.nan, 1)
    m = _client().get_run(run.info.run_id).data.metrics
    assert "fvd" not in m and "ok" not in m and "kvd" not in m  # nothing of a refused call was logged
    assert m["flicker"] == 0.9 and math.isnan(m["flicker_ci_low"])


def test_mlflow_run_id_stays_set_aside_for_the_whole_block(mlflow_store, monkeypatch):
    """Inside the block, a nested mlflow.start_run() must not resume the user's run: MLflow takes
    $MLFLOW_RUN_ID whenever no run id is given. It is back once evalkit's run has ended."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    mine = client.create_run(client.create_experiment("my-job"), run_name="mine")
    monkeypatch.setenv("MLFLOW_RUN_ID", mine.info.run_id)
    with tracking.start_run("evalkit-y") as run:
        assert "MLFLOW_RUN_ID" not in os.environ
        with mlflow.start_run(nested=True) as child:
            pass
    assert child.info.run_id != mine.info.run_id
    assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == run.info.run_id
    assert os.environ["MLFLOW_RUN_ID"] == mine.info.run_id
    assert client.get_run(mine.info.run_id).info.status == "RUNNING"
