"""Record a lent-GPU session's training run in MLflow, back on a machine with a store.

    python benchmarks/gpu/log_to_mlflow.py DIR [--weights NAME.safetensors]

DIR holds what `benchmarks/gpu/session.sh` or `recipe.sh` brought back: the weights (default
small-gpu.safetensors; a recipe's stage export such as 01-whole-clips.safetensors; its metadata has
the train config), their metrics (NAME.metrics.jsonl beside them, else DIR/metrics.jsonl: what
`train()` would have logged, with their steps), bench.jsonl and env.txt (logged as artifacts). One run in experiment `evalkit-generator-train`,
as `evalkit generator train` makes; prints its id.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--weights", default="small-gpu.safetensors", help="the export in DIR to record")
    a = ap.parse_args()

    import mlflow
    from mlflow.tracking import MlflowClient
    from safetensors import safe_open

    from evalkit import tracking
    from evalkit.hashing import sha256_file

    weights = a.dir / a.weights
    if not weights.is_file():
        raise SystemExit(f"log_to_mlflow: {weights}: no such weights file; give the session's $OUT folder")
    with safe_open(str(weights), "pt") as f:
        meta = f.metadata()
    tracking._quiet_store_setup()
    exp = tracking._experiment_id(MlflowClient(), "evalkit-generator-train")
    # both optional: a run under 100 steps logs no metrics.jsonl; env.txt names the device if there
    metrics, env = weights.with_suffix(".metrics.jsonl"), a.dir / "env.txt"
    if not metrics.is_file():
        metrics = a.dir / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()] if metrics.is_file() else []
    env_lines = env.read_text().splitlines() if env.is_file() else []
    device = env_lines[2].split(",")[0] if len(env_lines) > 2 else "unknown"
    with tracking.outer_run_set_aside(), mlflow.start_run(
            experiment_id=exp, run_name=f"uvit-{weights.stem}",
            tags={**tracking.run_tags(json.loads(meta["train_config"])["seed"]), "device": device}) as run:
        mlflow.log_params(tracking.flatten_params({"train": json.loads(meta["train_config"]),
                                                   "model": json.loads(meta["model_config"])}))
        mlflow.log_params({"weights_sha256": sha256_file(weights), "step": meta["step"],
                           "clips_seen": meta["clips_seen"]})
        for r in rows:
            mlflow.log_metrics({k: float(v) for k, v in r.items() if k != "step"}, step=int(r["step"]))
        for name in ("bench.jsonl", "env.txt"):
            if (a.dir / name).is_file():
                mlflow.log_artifact(str(a.dir / name))
    print(run.info.run_id)


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
