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

# the store's whereabouts and checks live in tracking_store; re-exported for the callers of this layer
from evalkit.tracking_store import (  # noqa: F401
    _quiet_store_setup, check_reachable, check_store_exists, store_error_message, store_path, tracking_uri,
)

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
            s = utf8_text(str(v))
        out[sanitize_name(key)] = s if len(s) <= limit else s[: limit - 3] + "..."
    return out


def utf8_text(s: str) -> str:
    """`s` as text MLflow can store: a file name that is not UTF-8 (lone surrogates) as its bytes'
    escapes, where MLflow raised after the work and the run was left FAILED (session 33)."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _artifacts_beside_store(name: str) -> str | None:
    """For a local SQLite store, a new experiment's artifacts go beside the database
    (`mlruns/` next to it), not in the working folder MLflow defaults to: from a folder the user
    could not write, the run's work was done, its artifacts refused, the results lost, and the
    experiment kept pointing there (session 33). None (MLflow's default) for other stores."""
    path = store_path()
    if path is None:
        return None
    import hashlib

    folder = path.resolve().parent / "mlruns" / hashlib.sha1(name.encode()).hexdigest()[:12]
    return folder.as_uri()


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
        return client.create_experiment(name, artifact_location=_artifacts_beside_store(name))
    except MlflowException:  # another process created it between our two calls
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


@contextmanager
def outer_run_set_aside() -> Iterator[None]:
    """$MLFLOW_RUN_ID (a user's `mlflow run`) out of MLflow's sight for the body, put back after:
    MLflow resumes that run when no run id is given, and its end_run unsets the variable
    (session 32: evalkit logged into the user's run and ended it)."""
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
    `$MLFLOW_RUN_ID` (a user's `mlflow run`) is unset inside the block and put back after it.
    """
    import mlflow
    from mlflow.tracking import MlflowClient

    _quiet_store_setup()
    check_reachable()
    exp_id = _experiment_id(MlflowClient(), experiment)
    all_tags = {**run_tags(seed), **{str(k): utf8_text(str(v)) for k, v in (tags or {}).items()}}
    run_name = utf8_text(run_name) if isinstance(run_name, str) else run_name
    # MLflow resumes $MLFLOW_RUN_ID when no run id is passed: an evalkit command started inside a
    # user's `mlflow run` logged into that run, renamed it and ended it (session 32). evalkit's
    # runs are its own, in its own experiments; the variable is set aside for the whole block and put
    # back when evalkit's run has ended. Not sooner: inside the block any mlflow.start_run(), nested
    # or in a child process, would resume the user's run again, and MLflow's end_run unsets it.
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
    out = {base: float(value), f"{base}_ci_low": float(ci_low), f"{base}_ci_high": float(ci_high),
           f"{base}_n": float(n)}
    # MLflow stores +-inf as +-1.797e308 without a word: a number nobody measured, in every plot and
    # comparison. NaN (no value, no interval) is stored as NaN.
    bad = next((k for k, v in out.items() if math.isinf(v)), None)
    if bad is not None:
        raise ValueError(f"{name}: {bad} is {out[bad]}; MLflow would store it as {math.copysign(1.797e308, out[bad]):.4g}: "
                         "log a finite number, or NaN for none")
    return out


def log_metric_ci(name: str, value, ci_low, ci_high, n: int, step: int | None = None) -> None:
    """Log `name`, `name_ci_low`, `name_ci_high` and `name_n` (name sanitised; NaN is allowed, an
    infinite number is a ValueError)."""
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


def log_json(obj, artifact_file: str, indent: int | None = 2) -> None:
    """`obj` as strict JSON (see `_jsonable`) at `artifact_file`, indented unless `indent` is None
    (arrays of features: one number a line would double the file)."""
    text = json.dumps(_jsonable(obj), indent=indent, allow_nan=False, separators=None if indent else (",", ":"))
    _log_file(lambda p: p.write_text(text + "\n", encoding="utf-8"), artifact_file)


def log_table(df, artifact_file: str) -> None:
    """A DataFrame (or a list of records, made one here) as .csv (no index), .json (records) or
    .parquet, by the file's extension."""
    if isinstance(df, list):  # records: their text made storable first (pandas 3's string arrays
        import pandas as pd  # refuse a lone surrogate when the frame is built)

        df = pd.DataFrame([{k: utf8_text(v) if isinstance(v, str) else v for k, v in r.items()} for r in df])
    ext = Path(artifact_file).suffix.lower()
    writers = {
        # a BOM, as every CSV file evalkit writes: Excel reads one without it in the system's code page
        ".csv": lambda p: df.to_csv(p, index=False, encoding="utf-8-sig"),
        ".json": lambda p: df.to_json(p, orient="records", indent=2),
        ".parquet": lambda p: df.to_parquet(p, index=False),
    }
    if ext not in writers:
        raise ValueError(f"log_table writes .csv, .json or .parquet, got {artifact_file!r}")
    text_cols = [c for c in df.columns if df[c].dtype == object or str(df[c].dtype) in ("str", "string")]
    if text_cols:  # names that are not UTF-8 (pyarrow and the CSV writer refused them)
        df = df.copy()
        for c in text_cols:
            df[c] = df[c].map(lambda v: utf8_text(v) if isinstance(v, str) else v)
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
