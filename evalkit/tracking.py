"""A small MLflow layer: one run per evaluation, tagged with the code and machine behind it,
every number logged with its interval and N.

mlflow is imported inside the functions (it costs about a second), so importing this module,
and `evalkit --help`, stay fast.

Naming rule for metrics and params (`sanitize_name`): MLflow accepts ASCII letters, digits and
`_ - . / space` (and `:` on POSIX only, so we drop it for portable stores); a name must not be a
path that normalises to something else. We replace every other character with `_`, drop empty,
`.` and `..` path segments, and cut to 250 characters (MLflow's key limit; a metric with its
`_ci_high` suffix stays within it). An empty result becomes `_`.

Nothing here logs environment variables: tags are the fixed list in `run_tags`.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from evalkit.metrics.stats import Estimate

_MAX_KEY = 250  # mlflow.utils.validation.MAX_ENTITY_KEY_LENGTH
_MAX_PARAM_VALUE = 6000  # MAX_PARAM_VAL_LENGTH in MLflow >= 2.x; read from mlflow when present
_CI_SUFFIXES = ("_ci_low", "_ci_high", "_n")
_BAD_CHARS = re.compile(r"[^A-Za-z0-9_\-./ ]")


def sanitize_name(name: str, max_len: int = _MAX_KEY) -> str:
    """A metric/param key MLflow accepts, per the rule in the module docstring."""
    s = _BAD_CHARS.sub("_", str(name))
    s = "/".join(seg for seg in s.split("/") if seg not in ("", ".", ".."))
    return s[:max_len].rstrip("/") or "_"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else MLflow's own default (a SQLite `mlflow.db` in the cwd
    for MLflow 3.x)."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    import mlflow

    return mlflow.get_tracking_uri()


def store_error_message(exc: BaseException) -> str | None:
    """One line for an MLflow store that cannot serve this command, recognised by text so the CLI
    need not import mlflow: a database another MLflow version wrote (its schema older or newer
    than this one's), or a store opened read-only by a command that logs. None for anything else."""
    text = " ".join(str(exc).split())
    name = type(exc).__name__
    if name == "MlflowException" and "database schema" in text.lower():
        import mlflow

        older = _schema_is_older()
        return (f"the MLflow store {tracking_uri()} was written by {'an older' if older else 'another'} MLflow "
                f"(its database schema differs from MLflow {mlflow.__version__}'s); "
                + ("back it up and run `mlflow db upgrade URI`, or point MLFLOW_TRACKING_URI at another store"
                   if older else "use the MLflow version that wrote it, or point MLFLOW_TRACKING_URI at another store"))
    if name == "OperationalError" and re.search(r"table \S+ already exists|duplicate column name", text):
        # (stores made before session 30: MLflow built the tables in place, and a command stopped
        # then, or two at once, left this)
        return (f"the MLflow store {tracking_uri()} was left half-made (a command stopped, or two ran, while "
                f"it was being created or upgraded); if it holds no runs you need, delete {store_path() or 'it'}, "
                "else point MLFLOW_TRACKING_URI at another store")
    if "database or disk is full" in text:
        return (f"the disk under the MLflow store {tracking_uri()} is full; free space there, or point "
                "MLFLOW_TRACKING_URI at a store on another disk")
    if "readonly database" in text or "read-only database" in text:
        return (f"the MLflow store {tracking_uri()} is read-only, and this command logs to it; point "
                "MLFLOW_TRACKING_URI at a writable store")
    return None


def _schema_is_older() -> bool:
    """Whether the SQLite store's schema revision is one this MLflow knows (an older store it can
    upgrade), rather than one it does not (a newer MLflow's). MLflow's own message says
    "out-of-date" either way."""
    import sqlite3

    import mlflow

    path = store_path()
    versions = Path(mlflow.__file__).parent / "store" / "db_migrations" / "versions"
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            (rev,) = db.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            db.close()
    except (sqlite3.Error, TypeError, ValueError):
        return True
    return any(f.name.startswith(f"{rev}_") for f in versions.glob("*.py"))


def check_store_exists() -> None:
    """For commands that only read the store (leaderboard, report): a local SQLite store that is
    not there is a path mistyped, not a store to create (MLflow would make an empty one, and its
    folders, and then find no runs)."""
    from evalkit.errors import MissingResourceError

    path = store_path()
    uri = tracking_uri()
    said = f"MLFLOW_TRACKING_URI={uri}" if os.environ.get("MLFLOW_TRACKING_URI") else f"the default store {uri}"
    if path is not None and (not path.exists() or path.stat().st_size == 0 or not _has_tables(path)):
        # absent, an empty file, or a database with no table yet: no store, and a reader makes none
        raise MissingResourceError(f"{path}: no MLflow store there ({said}); check the path, or run "
                                   "`evalkit bench run` first")
    folder = _file_store_path(uri)
    if folder is not None and not folder.is_dir():  # a mistyped file store was made empty (with the opt-in)
        raise MissingResourceError(f"{folder}: no MLflow file store there ({said}); check the path")
    _check_sqlite_file(uri)  # another program's database is named, never turned into a store


def _has_tables(path: Path) -> bool:
    """Whether the SQLite file holds any table (True where it cannot be read: the checks after this
    name what is wrong with it)."""
    import sqlite3

    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT count(*) FROM sqlite_master WHERE type='table'").fetchone()[0] > 0
        finally:
            db.close()
    except sqlite3.Error:
        return True


def store_path() -> Path | None:
    """The local file the tracking store lives in (a `sqlite:///` URI's database), or None for a
    server, a folder store or an in-memory database: what an output path must never be. Asked
    before any work, so MLflow is not imported just for this: unset and not yet imported, the
    URI is MLflow 3's default, `mlflow.db` in the working folder."""
    import sys

    uri = (tracking_uri() if os.environ.get("MLFLOW_TRACKING_URI") or "mlflow" in sys.modules
           else f"sqlite:///{Path.cwd() / 'mlflow.db'}")
    if not uri.startswith("sqlite:///"):
        return None
    name = uri[len("sqlite:///"):].split("?", 1)[0]
    return Path(name) if name and name != ":memory:" else None


_REACHED: set[str] = set()  # tracking servers this process has already reached


def check_reachable(timeout: float = 5.0, writing: bool = True) -> None:
    """Fail fast, in one line, when the tracking store is an MLflow server that does not answer.
    MLflow itself retries an unreachable server with back-off for about four minutes and then
    raises, and by then the evaluation that wanted logging has been computed and is lost; so the
    commands that log call this before their work, and `start_run` calls it too. Local stores
    (SQLite) are not checked here. A file store (`./mlruns`, MLflow 2's default) is refused by
    MLflow 3 unless MLFLOW_ALLOW_FILE_STORE opts in; say so in one line, before the work."""
    uri = tracking_uri()
    from evalkit.errors import BadInputError

    if uri.split("?", 1)[0] in ("sqlite://", "sqlite:///:memory:"):
        raise BadInputError(f"MLFLOW_TRACKING_URI {uri} is an in-memory store: every run is lost when the command "
                            "ends; point it at a file (sqlite:///mlflow.db) or a server")
    _check_file_store(uri)
    _check_sqlite_file(uri)
    _create_sqlite_store(uri)
    path = store_path()
    if writing and path is not None and path.exists() \
            and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)):
        # said before the work: after it, MLflow printed two tracebacks and the work was lost (a
        # detector was even left saved by a command that failed, session 32)
        raise BadInputError(f"the MLflow store {uri} is read-only (its file or folder cannot be written), and this "
                            "command logs to it; point MLFLOW_TRACKING_URI at a writable store")
    if not uri.startswith(("http://", "https://")) or uri in _REACHED:
        return
    from evalkit.tracking_server import check_server

    check_server(uri, timeout)
    _REACHED.add(uri)


def _check_sqlite_file(uri: str) -> None:
    """A `sqlite:///PATH` store whose file exists but is not an SQLite database (a typo'd path onto
    another file, a truncated copy) is one line here, not SQLAlchemy's error from inside MLflow."""
    from evalkit.errors import BadInputError

    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return  # absent (MLflow creates it) or unreadable (MLflow says so)
    damaged = ""
    if head == b"SQLite format 3\x00":  # the right header: is the rest a database too?
        import sqlite3

        db = None
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            damaged = f" (damaged: {e})"
            tables = None
        finally:
            if db is not None:
                db.close()
        if tables is not None:
            # MLflow's own: its migration table beside its run tables (a lab tracker's `experiments`
            # and `runs` tables passed, and were migrated, session 32)
            if not tables or {"alembic_version", "experiments", "runs"} <= tables:
                return  # an MLflow store, or a database with nothing in it yet
            # another program's database: MLflow would add its ~200 tables to it (session 32)
            shown = ", ".join(sorted(tables)[:4]) + (", ..." if len(tables) > 4 else "")
            raise BadInputError(f"{path} (MLFLOW_TRACKING_URI={uri}) is an SQLite database but not an MLflow store "
                                f"(its tables: {shown}); point MLFLOW_TRACKING_URI at an MLflow store, or a new "
                                "file for one")
    if head:
        raise BadInputError(f"{path} (the MLflow store, MLFLOW_TRACKING_URI={uri}) is not an SQLite database"
                            f"{damaged}; point MLFLOW_TRACKING_URI at an MLflow store, or unset it for ./mlflow.db")


def _create_sqlite_store(uri: str) -> None:
    """A new `sqlite:///PATH` store made whole, once: its tables built in a file beside it that
    is renamed into place, under a lock. MLflow builds them in place, so a command killed then
    left a half-made store that every later command failed on ("table logged_models already
    exists", an internal error), and two commands at once raced to build the same tables."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):].split("?", 1)[0])
    def made(p: Path) -> bool:  # an empty file (touched, or another tool's placeholder) is no store yet
        return p.exists() and p.stat().st_size > 0

    if not path.name or path.name == ":memory:" or made(path) or not path.parent.is_dir():
        return  # there already (MLflow migrates it if needed), or nowhere to put it (MLflow says so)
    import contextlib
    import secrets

    from evalkit.atomic import file_lock, short_name

    _quiet_store_setup()
    tmp = path.with_name(f".{short_name(path.name)}.{os.getpid()}.{secrets.token_hex(3)}.partial")
    try:
        with file_lock(path.with_name(f".{path.name}.lock")):
            if made(path):  # another command made it while this one waited
                return
            from mlflow.tracking._tracking_service.utils import _get_sqlalchemy_store

            store = _get_sqlalchemy_store(f"sqlite:///{tmp}", None)
            with contextlib.suppress(Exception):
                store.engine.dispose()
            os.replace(tmp, path)
    except OSError:
        return  # a read-only folder: MLflow's own attempt reports it
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _file_store_path(uri: str) -> Path | None:
    """The folder of a file store URI (`./mlruns`, `file:///abs`), else None."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path (one letter: a Windows drive)
        return Path(uri).expanduser()
    return None


def _check_file_store(uri: str) -> None:
    from urllib.parse import urlparse

    from evalkit.errors import MissingResourceError

    scheme = urlparse(uri).scheme
    if (scheme and scheme != "file" and len(scheme) > 1) or \
            os.environ.get("MLFLOW_ALLOW_FILE_STORE", "").strip().lower() in ("1", "true", "yes"):
        return  # a database or server URI (one letter is a Windows drive), or the user opted in
    raise MissingResourceError(f"MLFLOW_TRACKING_URI {uri} is a file store, which MLflow 3 no longer writes by "
                               "default: move it to a database (mlflow migrate-filestore, then "
                               "MLFLOW_TRACKING_URI=sqlite:///mlflow.db), or set MLFLOW_ALLOW_FILE_STORE=true "
                               "to keep using it")


def run_tags(seed: int | None = None) -> dict[str, str]:
    """The tags every evalkit run carries: code version, git state, seed and machine."""
    from evalkit import __version__
    from evalkit.home import git_commit, git_dirty, machine_info

    m = machine_info()
    dirty = git_dirty()
    return {
        "evalkit.version": __version__,
        "evalkit.git_commit": git_commit() or "unknown",
        "evalkit.git_dirty": "unknown" if dirty is None else str(dirty).lower(),
        "evalkit.seed": "none" if seed is None else str(seed),
        "evalkit.machine": str(m["hostname"]),
        "evalkit.platform": str(m["platform"]),
        "evalkit.python": str(m["python"]),
        "evalkit.torch": str(m["torch"]),
        "evalkit.cpu_count": str(m["cpu_count"]),
        "evalkit.gpu": str(m["gpu"]) if not m.get("gpu_count", 0) > 1 else f"{m['gpu']} x{m['gpu_count']}",
    }


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """{"a": {"b": 1}} -> {"a.b": "1"}. Lists/tuples become JSON; values are cut to MLflow's
    param length limit (ending in "...") rather than letting MLflow warn and cut silently."""
    try:
        from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH as limit
    except ImportError:  # pragma: no cover
        limit = _MAX_PARAM_VALUE
    out: dict[str, str] = {}
    for k, v in params.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key))
            continue
        if isinstance(v, (list, tuple)):
            s = json.dumps(v, default=str)
        else:
            s = str(v)
        out[sanitize_name(key)] = s if len(s) <= limit else s[: limit - 3] + "..."
    return out


def _experiment_id(client, name: str) -> str:
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is not None:
        if exp.lifecycle_stage == "deleted":  # restoring silently would resurrect its old runs
            from evalkit.errors import BadInputError

            raise BadInputError(
                f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) "
                "or use another name"
            )
        return exp.experiment_id
    try:
        return client.create_experiment(name)
    except MlflowException:  # another process created it between our two calls
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def _quiet_store_setup() -> None:
    """MLflow announces creating and migrating its SQLite tables at INFO on every new store;
    that is noise on a user's terminal. Warnings and errors still show."""
    import logging
    import sys

    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.WARNING)
    # its database errors are raised as exceptions, which evalkit says in one line; logged too,
    # they put 90 lines and two tracebacks above it (a read-only store, session 32)
    db_log = logging.getLogger("mlflow.store.db.utils")
    if db_log.level <= logging.ERROR:
        db_log.setLevel(logging.CRITICAL)
    if not sys.stderr.isatty():  # progress bars on a terminal only: a log file got "Downloading artifacts: 0%|"
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@contextmanager
def outer_run_set_aside() -> Iterator[None]:
    """$MLFLOW_RUN_ID (a user's `mlflow run`) out of MLflow's sight while evalkit starts or ends a
    run of its own, put back after: MLflow resumes that run when no run id is given, and its
    end_run unsets the variable (session 32: evalkit logged into the user's run and ended it)."""
    outer = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        yield
    finally:
        if outer is not None:
            os.environ["MLFLOW_RUN_ID"] = outer


@contextmanager
def start_run(experiment: str, run_name: str | None = None, *, params: dict | None = None,
              tags: dict | None = None, seed: int | None = None, run_id: str | None = None) -> Iterator[Any]:
    """Open an MLflow run in `experiment` (created if missing), tagged with `run_tags(seed)` and
    `tags`, with `params` flattened. Yields the ActiveRun. Nested under an already active run.
    With `run_id`, resume that existing run instead of creating one (a benchmark run started
    again after a crash; its params must be logged with the same values as before).

    The run ends FINISHED, or FAILED if the block raises (KILLED on Ctrl-C); the exception goes on.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    _quiet_store_setup()
    check_reachable()
    exp_id = _experiment_id(MlflowClient(), experiment)
    all_tags = {**run_tags(seed), **{str(k): str(v) for k, v in (tags or {}).items()}}
    # MLflow resumes $MLFLOW_RUN_ID when no run id is passed: an evalkit command started inside a
    # user's `mlflow run` logged into that run, renamed it and ended it (session 32). evalkit's
    # runs are its own, in its own experiments; the variable is set aside while one starts.
    # (MLflow's end_run also unsets the variable: it is put back when evalkit's run ends.)
    with outer_run_set_aside():
        run = mlflow.start_run(run_id=run_id, experiment_id=exp_id, run_name=None if run_id else run_name,
                               tags=all_tags, nested=mlflow.active_run() is not None)
        try:
            if params:
                mlflow.log_params(flatten_params(params))
            yield run
        except KeyboardInterrupt:
            mlflow.end_run(status="KILLED")
            raise
        except BaseException:
            mlflow.end_run(status="FAILED")
            raise
        else:
            mlflow.end_run(status="FINISHED")



def _mlflow_in_run():
    """mlflow, after checking a run is active: the fluent API would silently start a stray run."""
    import mlflow

    if mlflow.active_run() is None:
        raise RuntimeError("no active MLflow run: log inside `with evalkit.tracking.start_run(...)`")
    return mlflow


def _ci_metrics(name: str, value, ci_low, ci_high, n) -> dict[str, float]:
    base = sanitize_name(name, _MAX_KEY - max(map(len, _CI_SUFFIXES)))
    return {base: float(value), f"{base}_ci_low": float(ci_low), f"{base}_ci_high": float(ci_high),
            f"{base}_n": float(n)}


def log_metric_ci(name: str, value, ci_low, ci_high, n: int, step: int | None = None) -> None:
    """Log `name`, `name_ci_low`, `name_ci_high` and `name_n` (name sanitised; NaN is allowed)."""
    _mlflow_in_run().log_metrics(_ci_metrics(name, value, ci_low, ci_high, n), step=step)


def log_estimate(name: str, est: "Estimate", step: int | None = None) -> None:
    """The four metrics of `log_metric_ci`, plus a tag `ci.<name>` = "<method>@<confidence>"
    saying how the interval was made."""
    log_estimates({name: est}, step=step)


def log_estimates(d: Mapping[str, "Estimate"], step: int | None = None) -> None:
    """Several estimates in one batch (one round trip, not four per metric)."""
    mlflow = _mlflow_in_run()
    metrics: dict[str, float] = {}
    tags: dict[str, str] = {}
    for name, est in d.items():
        m = _ci_metrics(name, est.value, est.ci_low, est.ci_high, est.n)
        metrics.update(m)
        tags[f"ci.{next(iter(m))}"] = f"{est.method}@{est.confidence:g}"
    if metrics:
        mlflow.log_metrics(metrics, step=step)
        mlflow.set_tags(tags)


def _artifact_dir(artifact_file: str) -> tuple[str | None, str]:
    """Split 'plots/grid.png' into ('plots', 'grid.png'); refuse paths that escape the run."""
    p = Path(artifact_file)
    if p.is_absolute() or ".." in p.parts or not p.name:
        raise ValueError(f"artifact_file must be a relative path inside the run, got {artifact_file!r}")
    parent = p.parent.as_posix()
    return (None if parent == "." else parent), p.name


def _log_file(write, artifact_file: str) -> None:
    """Write with `write(path)` into a temp folder under the artifact's file name, then upload it."""
    mlflow = _mlflow_in_run()
    artifact_path, fname = _artifact_dir(artifact_file)
    with tempfile.TemporaryDirectory(prefix="evalkit-artifact-") as tmp:
        local = Path(tmp) / fname
        write(local)
        mlflow.log_artifact(str(local), artifact_path=artifact_path)


def log_image(image, artifact_file: str) -> None:
    """A uint8 [H, W, 3] array or an image file, stored as PNG at `artifact_file` (.png)."""
    if not str(artifact_file).lower().endswith(".png"):
        raise ValueError(f"log_image writes PNG; artifact_file must end in .png, got {artifact_file!r}")
    from PIL import Image

    from evalkit.grid import save_png

    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            image = np.asarray(im.convert("RGB"))
    _log_file(lambda p: save_png(image, p), artifact_file)


def _jsonable(obj):
    """JSON-safe copy: numpy scalars/arrays, Paths and Estimates converted; NaN/inf become null
    (strict JSON, readable by any parser, not just Python's)."""
    if hasattr(obj, "to_dict") and not isinstance(obj, type):  # Estimate (duck-typed: no import chain)
        obj = obj.to_dict()
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    return str(obj)  # Paths, enums, dates


def log_json(obj, artifact_file: str) -> None:
    """`obj` as indented strict JSON (see `_jsonable`) at `artifact_file`."""
    text = json.dumps(_jsonable(obj), indent=2, allow_nan=False)
    _log_file(lambda p: p.write_text(text + "\n", encoding="utf-8"), artifact_file)


def log_table(df: "pd.DataFrame", artifact_file: str) -> None:
    """A DataFrame as .csv (no index), .json (records) or .parquet, by the file's extension."""
    ext = Path(artifact_file).suffix.lower()
    writers = {
        ".csv": lambda p: df.to_csv(p, index=False),
        ".json": lambda p: df.to_json(p, orient="records", indent=2),
        ".parquet": lambda p: df.to_parquet(p, index=False),
    }
    if ext not in writers:
        raise ValueError(f"log_table writes .csv, .json or .parquet, got {artifact_file!r}")
    _log_file(writers[ext], artifact_file)


def log_artifact(path, artifact_path: str | None = None) -> None:
    """A file or a whole folder, under `artifact_path` in the run."""
    from evalkit.errors import MissingResourceError

    mlflow = _mlflow_in_run()
    p = Path(path)
    if not p.exists():
        raise MissingResourceError(f"cannot log artifact {p}: no such file or folder")
    if p.is_dir():
        mlflow.log_artifacts(str(p), artifact_path=artifact_path)
    else:
        mlflow.log_artifact(str(p), artifact_path=artifact_path)


def runs_frame(experiment: str, filter_string: str = "") -> "pd.DataFrame":
    """mlflow.search_runs over `experiment` as a DataFrame (newest first); empty if the
    experiment does not exist."""
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    check_reachable(writing=False)  # reading a published, read-only store is fine
    exp = MlflowClient().get_experiment_by_name(experiment)
    if exp is None:
        return pd.DataFrame()
    return mlflow.search_runs(experiment_ids=[exp.experiment_id], filter_string=filter_string,
                              output_format="pandas")
