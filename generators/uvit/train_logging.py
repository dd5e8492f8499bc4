"""The MLflow side of training the built-in U-ViT: learning curves (also to a JSON-lines file, for
machines without an MLflow store), the run with its parameters, and sample grids from the EMA
weights. Apart from the loop (train.py), which calls these only on rank 0.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from .configs import UViTConfig, num_params

if TYPE_CHECKING:
    from .train import TrainConfig, TrainState


def _log_metrics(state, tc, losses, clips_per_s, run, metrics_jsonl) -> None:
    from .train import lr_at  # (train.py imports this module)

    row = {"loss": float(np.mean(losses)), "lr": lr_at(tc, state.step - 1), "clips_per_s": clips_per_s,
           "train_minutes": state.seconds / 60, "cpu_minutes": state.cpu_seconds / 60}
    if run is not None:
        import mlflow

        mlflow.log_metrics(row, step=state.step)
    if metrics_jsonl is not None:
        with open(metrics_jsonl, "a") as f:
            f.write(json.dumps({"step": state.step, **row}) + "\n")


def _start_mlflow(tc: TrainConfig, cfg: UViTConfig, state: TrainState):
    import mlflow

    from evalkit import tracking

    tracking._quiet_store_setup()
    from mlflow.tracking import MlflowClient

    exp = tracking._experiment_id(MlflowClient(), "evalkit-generator-train")
    with tracking.outer_run_set_aside():  # its own run, never a user's $MLFLOW_RUN_ID
        run = mlflow.start_run(experiment_id=exp, run_name=f"uvit-{cfg.name}", tags=tracking.run_tags(tc.seed),
                               nested=mlflow.active_run() is not None)  # inside a notebook's own run
    mlflow.log_params(tracking.flatten_params({"train": asdict(tc), "model": cfg.to_dict(),
                                              "params": num_params(state.net), "resumed_at": state.step}))
    return run


PROBE_PROMPTS = [
    "a medium red ball falls and bounces on the floor, on a dark background",
    "a large blue square slides and slows down, on a light background",
    "a small yellow ball and a medium cyan square collide, on a dark background",
    "a medium purple ball rests still, on a gradient background",
]


def _log_samples(state: TrainState, run) -> None:
    """A sample grid from the EMA weights (DDIM, 25 steps, guidance 3) at this step."""
    import mlflow

    from evalkit.clip import Clip
    from evalkit.grid import frame_grid

    videos = state.ema.sample(PROBE_PROMPTS, sampler="ddim", steps=25, guidance=3.0, seed=0)
    clips = [Clip.from_tensor(v) for v in videos.cpu()]
    grid = frame_grid(clips, labels=PROBE_PROMPTS)
    mlflow.log_image(grid, f"samples/step-{state.step:07d}.png")
