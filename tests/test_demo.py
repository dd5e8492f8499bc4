"""`evalkit demo` renders the reference set, logs one complete MLflow run and says where."""

from __future__ import annotations


import numpy as np
from mlflow.tracking import MlflowClient

from evalkit.cli import main
from evalkit.clipset import read_index
from evalkit.demo import EXPERIMENT, run_demo
from evalkit.errors import EXIT_BAD_INPUT


def test_demo_logs_a_complete_run(mlflow_store, tmp_path):
    result = run_demo(tmp_path / "demo", n=6, seed=1, progress=False)
    assert len(read_index(tmp_path / "demo/world-test")) == 6
    assert len(read_index(tmp_path / "demo/world-ood")) == 3
    client = MlflowClient(mlflow_store)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == EXPERIMENT
    assert run.data.params["world.frames"] == "16" and run.data.params["n_test"] == "6"
    for tag in ("evalkit.version", "evalkit.git_commit", "evalkit.seed", "evalkit.machine"):
        assert tag in run.data.tags
    m = run.data.metrics
    for name in ("mp4_psnr_db", "brightness", "objects_per_clip", "share_fall"):
        assert {name, f"{name}_ci_low", f"{name}_ci_high", f"{name}_n"} <= set(m)
        assert m[f"{name}_ci_low"] <= m[name] <= m[f"{name}_ci_high"] or np.isnan(m[f"{name}_ci_low"])
    assert m["mp4_psnr_db_n"] == 9 and m["mp4_psnr_db"] > 28  # H.264 at CRF 18 stays faithful
    assert abs(sum(m[f"share_{k}"] for k in ("fall", "throw", "slide", "collide", "static")) - 1) < 1e-9
    artifacts = {a.path for a in client.list_artifacts(result.run_id)}
    assert {"samples.png", "clips.csv", "world-test", "world-ood", "scores", "provenance"} <= artifacts
    # The world scored against itself: what a perfect generator would get.
    assert m["ood_vs_test.physics_score"] > 0.9 and m["ood_vs_test.clip_alignment"] > 80
    assert result.verification["verdict"] == "ai-generated (signed)"
    assert result.verification["provenance"]["state"] == "trusted" and result.verification["watermark"]["detected"]
    text = result.summary()
    assert result.run_id in text and "mlflow ui" in text and mlflow_store in text


def test_demo_cli_reruns_in_place_and_refuses_foreign_folders(mlflow_store, tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "2"]) == 0
    assert main(["demo", "--out", str(tmp_path / "d"), "--n", "3"]) == 0  # replaces its own output
    assert len(read_index(tmp_path / "d/world-test")) == 3
    out = capsys.readouterr().out
    assert "samples.png" in out and "mlflow ui" in out
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("x")
    assert main(["demo", "--out", str(foreign)]) == EXIT_BAD_INPUT
    assert [p.name for p in foreign.iterdir()] == ["thesis.tex"]
    runs = MlflowClient(mlflow_store).search_runs(
        [MlflowClient(mlflow_store).get_experiment_by_name(EXPERIMENT).experiment_id])
    assert len(runs) == 2
