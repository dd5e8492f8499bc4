"""Train `uvit:small` on a GPU for a fixed number of minutes, then export its EMA weights.

    python benchmarks/gpu/train_small.py --init-from WEIGHTS.safetensors --out-dir DIR [--minutes 4.5]

The same loop as `evalkit generator train --device cuda` (generators/uvit/train.py), for a lent
GPU machine that has no MLflow store: the metrics MLflow would get go to DIR/metrics.jsonl, the
checkpoint to DIR/small-gpu.pt, its EMA weights to DIR/small-gpu.safetensors, and a summary
(steps, clips, minutes, clips/s, the export's SHA-256) is printed as one JSON line. The recipe is
session 8's run D continued on whole clips (README, "U-ViT on a GPU"); its CLI equivalent:

    evalkit generator train --preset small --device cuda --init-from WEIGHTS --mix-ffn \\
        --head-channels 16 --freeze-text --snr-shift 4 --min-snr-gamma 0 --batch-size 64 \\
        --lr 4e-4 --warmup-steps 100 --max-steps 20000 --max-minutes 4.5 --seed 11
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--init-from", required=True)
    ap.add_argument("--out-dir", required=True, type=Path)
    ap.add_argument("--minutes", type=float, default=4.5)
    ap.add_argument("--max-steps", type=int, default=20_000, help="where the cosine learning rate ends")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--workers", type=int, help="data workers (default: the loop's own choice)")
    ap.add_argument("--device", default="cuda", help="cuda; cpu for a smoke run")
    a = ap.parse_args()

    from evalkit.hashing import sha256_file
    from generators.uvit.generate import export_weights
    from generators.uvit.train import TrainConfig, train

    a.out_dir.mkdir(parents=True, exist_ok=True)
    tc = TrainConfig(preset="small", overrides={"snr_shift": 4.0, "mix_ffn": True, "head_channels": 16},
                     batch_size=a.batch, max_steps=a.max_steps, max_minutes=a.minutes, lr=a.lr,
                     warmup_steps=100, min_snr_gamma=None, seed=a.seed, init_from=a.init_from,
                     freeze_text=True, device=a.device, data_workers=a.workers, checkpoint_every_minutes=2.0, log_every_steps=100,
                     sample_every_steps=10**9)
    t = time.perf_counter()
    state = train(tc, a.out_dir / "small-gpu.pt", progress=False, log_mlflow=False,
                  metrics_jsonl=a.out_dir / "metrics.jsonl")
    wall = time.perf_counter() - t
    export = export_weights(a.out_dir / "small-gpu.pt", a.out_dir / "small-gpu.safetensors")
    print(json.dumps({"benchmark": "generator-gpu-train", "preset": "small", "step": state.step,
                      "clips_seen": state.clips_seen, "train_minutes": round(state.seconds / 60, 2),
                      "wall_minutes_with_startup": round(wall / 60, 2),
                      "clips_per_s": round(state.clips_seen / max(state.seconds, 1e-9), 1),
                      "export": str(export), "sha256": sha256_file(export)}), flush=True)


if __name__ == "__main__":  # the data workers are spawned processes that import this file
    main()
