"""Where the MLflow store is and whether it can serve a command, asked before the command's work:
the tracking URI, a local SQLite store made whole (never half-made by a stopped command), another
program's database or a mistyped path named rather than turned into a store, a read-only or
full store and an unreachable server said in one line.

mlflow is imported inside the functions, as in `evalkit.tracking`, which re-exports these.
"""

from __future__ import annotations

import os
import re
from pathlib import Path


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
    _check_unreadable(uri)
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
    _check_unreadable(uri)
    _check_sqlite_file(uri)
    _create_sqlite_store(uri)
    path = store_path()
    if writing and path is not None and not path.exists():
        # the store could not be made here: MLflow retried for two minutes after the work and the
        # command ended as an internal error, its results lost (session 33)
        from evalkit.errors import MissingResourceError

        where = path.parent
        fix = "; point MLFLOW_TRACKING_URI at a writable place, or run from a writable folder"
        if where.is_dir():
            raise BadInputError(f"the MLflow store {uri} cannot be created: its folder {where} cannot be written{fix}")
        if where.exists():
            raise BadInputError(f"the MLflow store {uri} cannot be created: {where} is a file, not a folder{fix}")
        raise MissingResourceError(f"the MLflow store {uri} cannot be created: its folder {where} does not exist{fix}")
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


def _check_unreadable(uri: str) -> None:
    """A store file this user may not read is said at once: MLflow retried it for 104 s and the
    command ended as an internal error (session 33, as an ordinary user; `score` called it read-only)."""
    from evalkit.errors import BadInputError

    path = store_path()
    if path is not None and path.exists() and not os.access(path, os.R_OK):
        raise BadInputError(f"the MLflow store {uri} cannot be read (permission denied); check its permissions, or "
                            "point MLFLOW_TRACKING_URI at another store")


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
