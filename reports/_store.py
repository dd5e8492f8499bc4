"""Reading bench runs back from MLflow: the runs of a suite, one run's metrics with their CIs,
and its artifacts. Everything here reads; nothing writes to the store.

mlflow is imported inside the functions (as in evalkit.tracking) so that `evalkit --help` stays fast.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks import schema

CI_SUFFIXES = ("_ci_low", "_ci_high", "_n")
SUITES_DIR = Path(__file__).resolve().parents[1] / "benchmarks" / "suites"


def known_suites() -> list[str]:
    """Suites with an experiment in the store, and suite YAMLs shipped in benchmarks/suites."""
    from mlflow.tracking import MlflowClient

    from evalkit.tracking import check_reachable

    check_reachable(writing=False)  # reports only read
    names = {p.stem for p in SUITES_DIR.glob("*.yaml")} if SUITES_DIR.is_dir() else set()
    for exp in MlflowClient().search_experiments():
        if exp.name.startswith(schema.EXPERIMENT_PREFIX) and exp.lifecycle_stage != "deleted":
            names.add(exp.name[len(schema.EXPERIMENT_PREFIX):])
    return sorted(names)


def metric_names(metrics: dict[str, float]) -> list[str]:
    """Names logged with `log_metric_ci` (those with a `_n` companion), schema order first."""
    found = {k[: -len("_n")] for k in metrics if k.endswith("_n") and k[: -len("_n")] in metrics}
    order = [*schema.SCORE_METRICS, *schema.PHYSICS_PART_METRICS, *schema.SAFETY_METRICS,
             *schema.COST_METRICS]
    head = [m for m in order if m in found]
    return head + sorted(found - set(head))


def evidence(metrics: dict[str, float], name: str) -> dict[str, float] | None:
    """{"value", "ci_low", "ci_high", "n"} of one metric (NaN where a part is missing), or None
    when the run never logged it."""
    if name not in metrics:
        return None
    get = lambda k: float(metrics.get(k, math.nan))  # noqa: E731
    return {"value": get(name), "ci_low": get(name + "_ci_low"), "ci_high": get(name + "_ci_high"),
            "n": get(name + "_n")}


def get_run(run_id: str):
    """The MLflow Run, or a one-line MissingResourceError naming the id."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from evalkit.errors import MissingResourceError

    from evalkit.tracking import check_reachable

    check_reachable(writing=False)  # reports only read
    try:
        return MlflowClient().get_run(run_id)
    except MlflowException as e:
        from evalkit.tracking import tracking_uri

        why = str(e).splitlines()[0][:200] if str(e).strip() else ""
        said = "" if "not found" in why.lower() else f" ({why})"  # MLflow's own words, when they add any
        raise MissingResourceError(f"MLflow run {run_id!r} not found in {tracking_uri()}{said}; check the id "
                                   "(`mlflow ui` lists the runs), or leave out --run to run the suite") from None


@contextmanager
def _no_progress_bar():
    """MLflow draws a progress bar per artifact download; a report fetches dozens of small ones.
    The switch is an environment variable read at download time, so set it only around the call."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def artifact_bytes(run_id: str, path: str) -> bytes | None:
    """An artifact's bytes, or None when the run has no such artifact (reports skip what is absent)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="evalkit-report-") as tmp, _no_progress_bar():
        try:
            local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp)
        except (MlflowException, OSError):
            return None
        p = Path(local)
        return p.read_bytes() if p.is_file() else None


def artifact_json(run_id: str, path: str) -> Any:
    """A JSON artifact parsed, or None when absent or not JSON."""
    data = artifact_bytes(run_id, path)
    if data is None:
        return None
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def per_clip(run_id: str) -> list[dict]:
    """The run's per-clip rows (schema.ARTIFACT_PER_CLIP); [] when absent or malformed."""
    rows = artifact_json(run_id, schema.ARTIFACT_PER_CLIP)
    return [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []


def features(run_id: str) -> dict | None:
    """The run's FVD features (schema.ARTIFACT_FEATURES: "backbone", "reference" [R][D], "clips"
    [{"id", "prompt", "seed", "features"}]); None when absent (runs before session 36) or malformed."""
    data = artifact_json(run_id, schema.ARTIFACT_FEATURES)
    ok = isinstance(data, dict) and isinstance(data.get("reference"), list) and isinstance(data.get("clips"), list)
    return data if ok else None
