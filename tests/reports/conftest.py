"""Bench-shaped MLflow runs with known values, logged the way benchmarks/schema.py says the bench
runner logs them, so that ranks, marks and audits can be checked against what we put in.

`bench_store` (logged once per session: a run costs about a second on SQLite) holds suite
"t-suite" with, at the current suite hash "h2":

  uvit:good     fvd 100 [90, 110]   physics_score per clip ~0.85      ranked 1
  uvit:twin     fvd 104 [94, 114]   physics_score = good's + tiny noise: not distinguishable
  uvit:bad      fvd 300 [280, 320]  physics_score ~0.30: far from both
  world         the ceiling;  control:frozen  a control
plus an older-hash run ("uvit:oldie", hash "h1") and a newer *incomplete* run of uvit:good with
awful numbers, both of which the leaderboard must ignore.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks import schema

SUITE = "t-suite"
LAWS = ("permanence", "no_teleport", "constant_downward_acceleration")


def per_clip_rows(physics: np.ndarray, p_generated: float, *, signed=True, wm=True, detected=True):
    """40 clips: 20 prompts x 2 seeds, the first half in-distribution, the second ood."""
    rows = []
    for i, v in enumerate(physics):
        rows.append({"id": f"c{i}", "prompt": f"a ball {i // 2} falls", "part": "id" if i < 20 else "ood",
                     "seed": i % 2, "sha256": f"{i:064x}", "clip_alignment": 25.0 + (i % 5),
                     "flicker": 0.97, "warp_error": 0.01, "physics_score": float(v),
                     "physics_pass": bool(v > 0.5), "physics_laws": {law: bool(v > 0.5) for law in LAWS},
                     "signed_valid": signed, "watermark_survives_crf30": wm,
                     "p_generated": float(np.clip(p_generated + 0.1 * math.sin(i), 0, 1)),
                     "detected": detected})
    return rows


def log_bench_run(model: str, *, role: str = "model", suite_hash: str = "h2", complete: bool = True,
                  fvd=(100.0, 90.0, 110.0), physics: np.ndarray | None = None, p_generated: float = 0.8,
                  extra: dict | None = None, grid: bool = True, max_prompts: int | None = None,
                  features: dict | None = None, extra_params: dict | None = None) -> str:
    """One run as the bench runner writes it; returns its run id."""
    import mlflow

    from evalkit import tracking
    from evalkit.metrics.stats import mean_ci, proportion_ci

    physics = np.full(40, 0.8) if physics is None else physics
    tags = {schema.TAG_KIND: schema.KIND_BENCH, schema.TAG_SUITE: SUITE, schema.TAG_SUITE_HASH: suite_hash,
            schema.TAG_MODEL: model, schema.TAG_ROLE: role, schema.TAG_RUN_KEY: f"{suite_hash}-{model}"}
    with tracking.start_run(schema.experiment_name(SUITE), run_name=model, tags=tags,
                            params={"model": model, "n_clips": 40, "sampler": "ddim", "steps": 20,
                                    "max_prompts": max_prompts, **(extra_params or {})}) as run:
        rows = per_clip_rows(physics, p_generated)
        tracking.log_metric_ci("fvd", *fvd, 40)
        tracking.log_estimate("physics_score", mean_ci(physics))
        tracking.log_estimate("physics_pass_rate", proportion_ci(int((physics > 0.5).sum()), physics.size))
        tracking.log_estimate("physics_score_id", mean_ci(physics[:20]))
        tracking.log_estimate("physics_score_ood", mean_ci(physics[20:]))
        gap = float(physics[:20].mean() - physics[20:].mean())
        tracking.log_metric_ci("physics_ood_gap", gap, gap - 0.05, gap + 0.05, 40)
        tracking.log_estimate("clip_alignment", mean_ci([r["clip_alignment"] for r in rows]))
        tracking.log_estimate("flicker", mean_ci([0.97, 0.96, 0.98] * 13 + [0.97]))
        for k, law in enumerate(LAWS):
            for part, sl in (("id", slice(0, 20)), ("ood", slice(20, 40))):
                ok = int((physics[sl] > 0.5 - 0.1 * k * (part == "ood")).sum())
                tracking.log_estimate(f"physics_law.{law}.{part}", proportion_ci(ok, 20))
        tracking.log_estimate("provenance_valid_rate", proportion_ci(40, 40))
        tracking.log_estimate("watermark_survival_crf30", proportion_ci(38, 40))
        tracking.log_estimate("detector_catch_rate", proportion_ci(36, 40))
        tracking.log_metric_ci("cost.clips_per_s", 4.0, math.nan, math.nan, 40)
        tracking.log_metric_ci("cost.cpu_s_per_clip", 0.25, math.nan, math.nan, 40)
        for name, vals in (extra or {}).items():
            tracking.log_metric_ci(name, *vals)
        tracking.log_json(rows, schema.ARTIFACT_PER_CLIP)
        if features is not None:  # {"backbone", "reference", "clips": [{"id", "prompt", "seed", "features"}]}
            tracking.log_json(features, schema.ARTIFACT_FEATURES, indent=None)
        if grid:
            img = np.zeros((48, 96, 3), np.uint8)
            img[:, :48] = (200, 40, 40)
            tracking.log_image(img, schema.ARTIFACT_GRID)
        if complete:
            mlflow.set_tag(schema.TAG_COMPLETE, "true")
        return run.info.run_id


def populate() -> dict[str, str]:
    """Log the runs of the module docstring into the current tracking store; {model: run_id}."""
    rng = np.random.default_rng(0)
    good = np.clip(0.85 + 0.1 * np.sin(np.arange(40)), 0, 1)
    ids = {"uvit:oldie": log_bench_run("uvit:oldie", suite_hash="h1", fvd=(50.0, 45.0, 55.0))}
    ids["uvit:good"] = log_bench_run("uvit:good", physics=good)
    ids["uvit:twin"] = log_bench_run("uvit:twin", physics=np.clip(good + rng.normal(0, 0.002, 40), 0, 1),
                                     fvd=(104.0, 94.0, 114.0))
    ids["uvit:bad"] = log_bench_run("uvit:bad", physics=np.clip(0.3 + 0.1 * np.cos(np.arange(40)), 0, 1),
                                    fvd=(300.0, 280.0, 320.0))
    ids["world"] = log_bench_run("world", role="ceiling", physics=np.full(40, 0.97), fvd=(5.0, 3.0, 8.0),
                                 p_generated=0.15)
    ids["control:frozen"] = log_bench_run("control:frozen", role="control", physics=np.full(40, 0.2),
                                          fvd=(900.0, 850.0, 950.0), grid=False)
    ids["incomplete"] = log_bench_run("uvit:good", complete=False, fvd=(999.0, 990.0, 1010.0))
    return ids


def logged_store(tmp_path_factory, name: str, populate):
    """A SQLite MLflow store in a new temporary folder, filled by `populate()` with it current; the
    environment is restored right after. Returns (uri, folder, populate's result)."""
    import mlflow

    tmp = tmp_path_factory.mktemp(name)
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("EVALKIT_HOME", str(tmp / "home"))
        mp.chdir(tmp)
        mlflow.set_tracking_uri(uri)
        try:
            ids = populate()
        finally:
            mlflow.set_tracking_uri(None)
    return uri, tmp, ids


@pytest.fixture(scope="session")
def _bench_store_once(tmp_path_factory):
    """Logged once per session (about a second per run on SQLite); the environment is restored
    right after, so tests that do not ask for `bench_store` never see this store."""
    return logged_store(tmp_path_factory, "bench-store", populate)


@pytest.fixture
def bench_store(_bench_store_once, monkeypatch):
    """The store of the module docstring as the current tracking store; yields {model: run_id}."""
    import mlflow

    uri, tmp, ids = _bench_store_once
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp)
    mlflow.set_tracking_uri(uri)
    yield ids
    if mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
