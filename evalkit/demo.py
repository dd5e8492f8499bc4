"""`evalkit demo`: the main job on the embedded default.

Renders a reference set from the world (in-distribution test split and the ood split) as MP4s,
decodes them back and measures a few dataset statistics; scores the ood set against the test
set with every metric (the world's own numbers: what a perfect generator would get); signs and
watermarks a clip with throw-away demo credentials and verifies it; and logs one MLflow run
(params, metrics with CIs, a sample grid, the indexes, per-clip tables, the verification).
Later capabilities (the shipped generator, detectors) join this pipeline as they land.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from evalkit.clipset import iter_clips
from evalkit.errors import BadInputError
from evalkit.grid import frame_grid, save_png
from evalkit.metrics.score import score_folders
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
    verification: dict = field(default_factory=dict)

    def summary(self) -> str:
        lines = ["evalkit demo: reference clips, statistics and run logged to MLflow", ""]
        lines += [f"  {name:<40} {est}" for name, est in self.estimates.items()
                  if not name.startswith("ood_vs_test.physics_law.")]
        v = self.verification
        lines += [
            "",
            f"  signed + watermarked: {v.get('file')}: {v.get('verdict')} (manifest "
            f"{v.get('provenance', {}).get('state')}, watermark p={v.get('watermark', {}).get('p_value', 1):.1e})",
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


def _provenance_round_trip(out: Path, folder: Path) -> dict:
    """Sign and watermark one reference clip with demo-only credentials (under `out`, never the
    user's), then verify it against the demo CA."""
    from evalkit.clipset import read_index
    from evalkit.provenance.c2pa import sign_file
    from evalkit.provenance.credentials import init_keys, load_signer, load_watermark_key
    from evalkit.provenance.verify import load_trust, verify_file

    keys = init_keys(dir=out / "credentials", org="evalkit demo", force=True)
    rec = read_index(folder)[0]
    signed = out / "signed" / f"{rec['id']}.mp4"
    signed.parent.mkdir(exist_ok=True)
    signed.unlink(missing_ok=True)
    wm_key = load_watermark_key(keys.watermark_key)
    sign_file(folder / rec["file"], signed, load_signer(keys.signer_cert, keys.signer_key), source_type="trained",
              watermark=True, wm_key=wm_key, generator={"name": "evalkit world", "version": "demo"})
    return verify_file(signed, trust=load_trust([keys.ca_cert]), wm_key=wm_key)


def run_demo(out, *, n: int = 32, seed: int = 0, config: WorldConfig = WorldConfig(),
             progress: bool = True) -> DemoResult:
    import pandas as pd

    from evalkit import tracking

    out = Path(out)
    if n < 2:
        raise BadInputError(f"--n {n}: the demo needs at least 2 reference clips (FVD needs 2 a set)")
    _prepare_out(out)
    folders = {"test": out / "world-test", "ood": out / "world-ood"}
    counts = {"test": n, "ood": max(2, n // 2)}
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
    scores = score_folders(folders["ood"], folders["test"], progress=progress)
    for name, m in scores["metrics"].items():
        if m["ci_low"] is not None:
            estimates[f"ood_vs_test.{name}"] = Estimate(m["value"], m["ci_low"], m["ci_high"], m["n"])
    verification = _provenance_round_trip(out, folders["test"])

    with tracking.start_run(EXPERIMENT, run_name="world-reference", params=params, seed=seed) as run:
        tracking.log_estimates(estimates)
        tracking.log_json(scores, "scores/ood_vs_test.json")
        tracking.log_json(verification, "provenance/verify.json")
        tracking.log_image(grid, "samples.png")
        tracking.log_table(table, "clips.csv")
        for split, folder in folders.items():
            tracking.log_artifact(folder / "index.jsonl", f"world-{split}")
        run_id = run.info.run_id
    return DemoResult(out=out, run_id=run_id, tracking_uri=tracking.tracking_uri(),
                      estimates=estimates, grid_path=grid_path, verification=verification)


def remove_demo_output(out) -> None:
    """Delete a demo folder (only one the demo made)."""
    out = Path(out)
    if (out / _MARKER).exists():
        shutil.rmtree(out)
