"""`evalkit demo`: the main job on the embedded default.

Renders a reference set from the world (in-distribution test split and the ood split) as MP4s,
decodes them back, measures a few dataset statistics with 95% CIs, and logs one MLflow run
(params, metrics with CIs, a sample grid, the indexes and a per-clip table). Later capabilities
(generation, scoring, provenance, detection) join this pipeline as they land.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.clipset import iter_clips
from evalkit.errors import BadInputError
from evalkit.grid import frame_grid, save_png
from evalkit.metrics.stats import Estimate, mean_ci, proportion_ci
from evalkit.video import psnr
from evalkit.world import KINDS, WorldConfig, make_clip_from_seed
from evalkit.world.export import render_folder

EXPERIMENT = "evalkit-demo"
_MARKER = ".evalkit-demo"  # marks a folder the demo owns and may replace


@dataclass
class DemoResult:
    out: Path
    run_id: str
    tracking_uri: str
    estimates: dict[str, Estimate] = field(default_factory=dict)
    grid_path: Path | None = None

    def summary(self) -> str:
        lines = [f"evalkit demo: reference clips, statistics and run logged to MLflow", ""]
        lines += [f"  {name:<28} {est}" for name, est in self.estimates.items()]
        lines += [
            "",
            f"  clips and index:  {self.out}/world-test, {self.out}/world-ood",
            f"  sample grid:      {self.grid_path}",
            f"  MLflow run:       {self.run_id} in experiment '{EXPERIMENT}'",
            f"  tracking store:   {self.tracking_uri}",
            f"  open it with:     mlflow ui --backend-store-uri {self.tracking_uri}",
        ]
        return "\n".join(lines)


def _prepare_out(out: Path) -> None:
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise BadInputError(f"{out}: exists and was not made by `evalkit demo`; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    (out / _MARKER).write_text("made by evalkit demo; replaced on each run\n")


def clip_statistics(folder: Path, config: WorldConfig) -> list[dict]:
    """Per clip: decoded-vs-rendered PSNR, brightness, objects, mean object speed (px/s)."""
    rows = []
    for clip in iter_clips(folder):
        rec = clip.meta["record"]
        rendered = make_clip_from_seed(rec["seed"], rec["split"], config).frames
        speeds = [np.hypot(*np.asarray(o["velocity"]).T).mean() for o in rec["scene"]["objects"]]
        rows.append({
            "id": rec["id"], "split": rec["split"], "kind": rec["scene"]["kind"],
            "objects": len(rec["scene"]["objects"]), "psnr_db": min(psnr(clip.frames, rendered), 99.0),
            "brightness": float(clip.frames.mean()), "speed_px_s": float(np.mean(speeds)),
            "decoded_frames": clip.num_frames, "prompt": rec["prompt"],
        })
    return rows


def run_demo(out, *, n: int = 32, seed: int = 0, config: WorldConfig = WorldConfig(),
             progress: bool = True) -> DemoResult:
    import pandas as pd

    from evalkit import tracking

    out = Path(out)
    _prepare_out(out)
    folders = {"test": out / "world-test", "ood": out / "world-ood"}
    counts = {"test": n, "ood": max(1, n // 2)}
    for split, folder in folders.items():
        render_folder(folder, split=split, n=counts[split], seed=seed, config=config,
                      progress=progress, replace=True)

    rows = [r for split, folder in folders.items() for r in clip_statistics(folder, config)]
    table = pd.DataFrame(rows)
    test = table[table.split == "test"]
    estimates = {
        "mp4_psnr_db": mean_ci(table.psnr_db),
        "brightness": mean_ci(table.brightness),
        "objects_per_clip": mean_ci(table.objects),
        "speed_px_s_test": mean_ci(test.speed_px_s),
        "speed_px_s_ood": mean_ci(table[table.split == "ood"].speed_px_s),
    }
    for kind in KINDS:
        estimates[f"share_{kind}"] = proportion_ci(int((test.kind == kind).sum()), len(test))

    shown = [c for c in iter_clips(folders["test"])][:6] + [c for c in iter_clips(folders["ood"])][:2]
    grid = frame_grid(shown, labels=[f"{c.meta['record']['split']}: {c.prompt}" for c in shown])
    grid_path = save_png(grid, out / "samples.png")

    params = {"world": {"frames": config.frames, "size": config.size, "fps": config.fps,
                        "noise": config.noise}, "n_test": counts["test"], "n_ood": counts["ood"],
              "seed": seed, "codec": "h264 yuv420p crf 18"}
    with tracking.start_run(EXPERIMENT, run_name="world-reference", params=params, seed=seed) as run:
        tracking.log_estimates(estimates)
        tracking.log_image(grid, "samples.png")
        tracking.log_table(table, "clips.csv")
        for split, folder in folders.items():
            tracking.log_artifact(folder / "index.jsonl", f"world-{split}")
        run_id = run.info.run_id
    return DemoResult(out=out, run_id=run_id, tracking_uri=tracking.tracking_uri(),
                      estimates=estimates, grid_path=grid_path)


def remove_demo_output(out) -> None:
    """Delete a demo folder (only one the demo made)."""
    out = Path(out)
    if (out / _MARKER).exists():
        shutil.rmtree(out)
