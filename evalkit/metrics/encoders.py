"""The offline backbones evalkit trains on its own world: definitions, training, checkpoints.

Two models, both small enough to ship in the package and to retrain on a laptop CPU in minutes
(each in its own module; what they share is in `encoder_base`):

- `world-video-encoder` (`world_video_encoder`): a 3D CNN on clips resized to 16 x 32 x 32,
  trained with multi-task heads on the world's ground truth (scene kind, object count, background, colours / shapes / sizes
  present). Its 128-d penultimate layer (`WorldVideoEncoder.features`) is the FVD feature of the
  offline protocol, as I3D's logits are of the standard one.
- `world-clip` (`world_clip`): a tiny open_clip CLIP (a ViT on 32 x 32 frames and a text
  transformer with context 32 and open_clip's default BPE tokenizer, embed dim 128), its config registered with
  `open_clip.add_model_config`, trained with open_clip's `ClipLoss` on (random frame, caption)
  pairs of world clips.

Reproducibility: `train_world_video_encoder(out, seed=S, steps=N)` and `train_world_clip(...)`
are pure functions of (seed, steps, recipe, code) on CPU: they run on one thread, draw every random
number from generators seeded by `seed`, render their data on the fly from `WorldDataset(train,
seed=seed)` (batch b of step s is clips s*B .. s*B+B-1) and write a safetensors file whose bytes
(weights + JSON metadata: config, recipe, seed, steps, data) depend on nothing else, so its SHA-256
is the model's identity. Wall time is returned, never written into the file. Validation numbers come
from the *saved* file reloaded, on the `test` split.

Checkpoints are safetensors (never pickles): `save_checkpoint` / `load_checkpoint`. The CLIP's
token-embedding table (49408 x width, 19 MB at width 96) is stored compactly: only the rows of
token ids that occur in training captions (the world's grammar needs ~40), with their ids; all
other rows are zero (they never receive a gradient, and are zeroed before saving, so the stored
model is exactly the evaluated one). This module never imports `generators/`: the evaluator's
models share no weights or code with the model under test.
"""

from __future__ import annotations

import json
import os
from typing import Callable

# The shared parts and the two models, re-exported: `encoders` stays the one place to look them up.
from evalkit.metrics.encoder_base import (
    OPEN_CLIP_CONFIG_DIR, WEIGHTS_DIR, WORLD_CLIP_MODEL, file_sha256, load_checkpoint, render_batch,
    resolve_output, save_checkpoint, scene_labels, single_thread,
)
from evalkit.metrics.world_clip import (
    WORLD_CLIP_CONFIG, attribute_pairwise_accuracy, clip_pixels, counterfactual_captions, create_world_clip,
    evaluate_world_clip, load_world_clip_model, register_world_clip_config, train_world_clip, world_clip_metadata,
)
from evalkit.metrics.world_video_encoder import (
    WorldVideoEncoder, evaluate_world_video_encoder, load_video_encoder, train_world_video_encoder,
    video_encoder_metadata,
)

__all__ = [
    "OPEN_CLIP_CONFIG_DIR", "WEIGHTS_DIR", "WORLD_CLIP_CONFIG", "WORLD_CLIP_MODEL", "WorldVideoEncoder",
    "attribute_pairwise_accuracy", "clip_pixels", "counterfactual_captions", "create_world_clip",
    "evaluate_world_clip", "evaluate_world_video_encoder", "file_sha256", "load_checkpoint", "load_video_encoder",
    "load_world_clip_model", "register_world_clip_config", "render_batch", "resolve_output", "save_checkpoint",
    "scene_labels", "ship_defaults", "single_thread", "train_world_clip", "train_world_video_encoder",
    "video_encoder_metadata", "world_clip_metadata",
]


# --------------------------------------------------------------------------------------------
# shipped defaults


def ship_defaults(which: tuple[str, ...] = ("world-video-encoder", "world-clip"),
                  trainers: dict[str, Callable] | None = None, **overrides) -> dict:
    """Maintainers only: retrain the shipped defaults with their recorded recipe into the package's
    weights folder and update `weights/registry.json` (sha256, size, steps, seconds, validation)."""
    from evalkit.metrics.backbones import REGISTRY_PATH, SHIPPED_RECIPES

    trainers = trainers or {"world-video-encoder": train_world_video_encoder, "world-clip": train_world_clip}
    registry = json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.exists() else {}
    for name in which:
        kw = {**SHIPPED_RECIPES[name], **overrides.get(name, {})}
        res = trainers[name](WEIGHTS_DIR / f"{name}.safetensors", **kw)
        registry[name] = {
            "file": f"{name}.safetensors", "sha256": res["sha256"], "bytes": res["bytes"],
            "kind": "video-encoder" if name == "world-video-encoder" else "clip",
            "params": res["params"],
            "train": {"function": f"evalkit.metrics.encoders.{trainers[name].__name__}", **kw,
                      "wall_seconds_1_thread": res["seconds"]},
            "validation": res.get("validation"),
        }
        tmp = REGISTRY_PATH.with_suffix(".json.partial")
        tmp.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, REGISTRY_PATH)
    return registry
