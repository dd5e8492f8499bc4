"""Shared fixtures: the real footage in ../shared and a temporary MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REAL_VIDEOS = Path(os.environ.get("EVALKIT_REAL_VIDEOS", REPO.parent / "shared" / "data" / "real-videos"))


@pytest.fixture(scope="session")
def real_videos_dir() -> Path:
    if not (REAL_VIDEOS / "bikes.mp4").exists():
        pytest.skip(f"real footage not found at {REAL_VIDEOS} (set EVALKIT_REAL_VIDEOS)")
    return REAL_VIDEOS


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A fresh SQLite MLflow store in tmp_path; the test runs inside tmp_path so that
    artifacts land there too. Returns the tracking URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri
    if mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep every test's caches and credentials out of the user's ~/.cache/evalkit."""
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path_factory.mktemp("evalkit-home")))


@pytest.fixture(scope="session", autouse=True)
def _session_soft_bindings(tmp_path_factory):
    """Signing with a watermark records the payload in the soft-binding registry, also from
    module-scoped fixtures set up before `_isolated_home`: keep those records in a temporary
    folder, never in the user's ~/.cache/evalkit."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EVALKIT_SOFT_BINDINGS", str(tmp_path_factory.mktemp("soft-bindings")))
        yield
