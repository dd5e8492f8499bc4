"""Run a training recipe on a lent GPU in one device call, with no MLflow store there.

    python benchmarks/gpu/recipe.py small --out-dir DIR [--device cuda] [--smoke]

The same as `evalkit generator recipe NAME --out-dir DIR --device cuda` (generators/uvit/recipes.py),
except that each training stage's metrics, which MLflow would get, go to DIR/NN-STAGE.metrics.jsonl
(load one here with `python benchmarks/gpu/log_to_mlflow.py DIR --weights NN-STAGE.safetensors`) and the end prints one JSON line: every stage's steps,
clips, minutes and SHA-256, the final export, and the wall time. `benchmarks/gpu/recipe.sh` wraps
it for the device tool (environment record, time limit, what comes back).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="a recipe of generators/uvit/recipes.py (e.g. small)")
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--device", default="cuda", help="cuda; cpu for a smoke run here")
    ap.add_argument("--smoke", action="store_true", help="every stage for 2 steps (recipes.SMOKE_STEPS)")
    a = ap.parse_args()

    from evalkit.errors import BadInputError
    from generators.uvit.recipes import run_recipe

    t0 = time.perf_counter()
    try:
        record = run_recipe(a.name, a.out_dir, device=a.device, smoke=a.smoke, progress=False, log_mlflow=False,
                            metrics_jsonl=True,
                            echo=lambda line: print(line, file=sys.stderr, flush=True))
    except BadInputError as e:
        print(f"recipe.py: {e}", file=sys.stderr)
        return 2
    stages = {k: {f: v.get(f) for f in ("steps", "clips", "train_minutes", "wall_minutes", "sha256",
                                         "held_out_retrieval_top1") if f in v}
              for k, v in record["stages"].items()}
    print(json.dumps({"benchmark": "generator-recipe", "recipe": a.name, "smoke": a.smoke, "device": a.device,
                      "stages": stages, "final": record.get("final"),
                      "wall_minutes": round((time.perf_counter() - t0) / 60, 2)}), flush=True)
    return 0


if __name__ == "__main__":  # the data workers are spawned processes that import this file
    sys.exit(main())
