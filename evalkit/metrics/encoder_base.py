"""What the offline backbones (`encoders`) share: constants, determinism helpers, world labels
and safetensors checkpoints."""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from evalkit.hashing import sha256_file
from evalkit.world import BACKGROUNDS, COLORS, KINDS, SHAPES, SIZES, WorldConfig
from evalkit.world.clips import make_clip


WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
OPEN_CLIP_CONFIG_DIR = WEIGHTS_DIR / "open_clip"
WORLD_CLIP_MODEL = "evalkit-world-clip"  # the open_clip config name (file stem in OPEN_CLIP_CONFIG_DIR)
FORMAT_VERSION = 1

COLOR_NAMES = tuple(COLORS)
SIZE_NAMES = tuple(SIZES)
MAX_OBJECTS = 3

# --------------------------------------------------------------------------------------------
# determinism helpers


@contextlib.contextmanager
def single_thread():
    """Run the block on one intra-op thread (restored afterwards): CPU results are then bitwise
    reproducible, and a background job keeps the other cores."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_recipe(steps: int, batch_size: int, hard_negatives: float = 0.0) -> None:
    from evalkit.errors import BadInputError

    if int(steps) < 1 or int(batch_size) < 2 or not 0.0 <= float(hard_negatives) <= 1.0:
        raise BadInputError(f"need steps >= 1, batch_size >= 2 and 0 <= hard_negatives <= 1, got {steps}, "
                            f"{batch_size}, {hard_negatives}")


def _lr_at(step: int, steps: int, lr: float, warmup: int) -> float:
    """Linear warmup then cosine decay to 0: a function of (step, steps) only."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _progress(total: int, desc: str, enabled: bool | None):
    """A tqdm bar on a terminal (disable=None: off when stderr is not a tty)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=(None if enabled is None else not enabled), leave=False)


# --------------------------------------------------------------------------------------------
# world labels


def scene_labels(scene) -> dict[str, np.ndarray]:
    """Ground-truth targets of one world scene for the encoder's heads."""
    colors = np.zeros(len(COLOR_NAMES), np.float32)
    shapes = np.zeros(len(SHAPES), np.float32)
    sizes = np.zeros(len(SIZE_NAMES), np.float32)
    for o in scene.objects:
        colors[COLOR_NAMES.index(o.color)] = 1
        shapes[SHAPES.index(o.shape)] = 1
        sizes[SIZE_NAMES.index(o.size_name)] = 1
    return {
        "kind": np.int64(KINDS.index(scene.kind)),
        "count": np.int64(len(scene.objects) - 1),
        "background": np.int64(BACKGROUNDS.index(scene.background)),
        "colors": colors, "shapes": shapes, "sizes": sizes,
    }


# name -> (number of outputs, "single" (softmax) | "multi" (sigmoid, multi-label))
HEADS: dict[str, tuple[int, str]] = {
    "kind": (len(KINDS), "single"),
    "count": (MAX_OBJECTS, "single"),
    "background": (len(BACKGROUNDS), "single"),
    "colors": (len(COLOR_NAMES), "multi"),
    "shapes": (len(SHAPES), "multi"),
    "sizes": (len(SIZE_NAMES), "multi"),
}


def render_batch(split: str, start: int, count: int, seed: int, config: WorldConfig = WorldConfig()):
    """Clips start .. start+count-1 of `split` (base `seed`): (uint8 [B, T, H, W, 3], captions,
    labels dict of stacked arrays)."""
    clips = [make_clip(split, i, seed, config) for i in range(start, start + count)]
    frames = np.stack([c.frames for c in clips])
    labels = [scene_labels(c.meta["scene"]) for c in clips]
    stacked = {k: np.stack([lab[k] for lab in labels]) for k in labels[0]}
    return frames, [c.prompt for c in clips], stacked


# --------------------------------------------------------------------------------------------
# checkpoints


def _world_config_dict(c: WorldConfig) -> dict:
    return {"frames": c.frames, "size": c.size, "fps": c.fps, "noise": c.noise}


file_sha256 = sha256_file  # the name the backbones use


def save_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """safetensors with the JSON metadata under the "evalkit" key; written to a temporary name in
    the same folder and renamed, so a crash never leaves half a checkpoint."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp),
                  metadata={"evalkit": json.dumps(meta, sort_keys=True)})
        os.chmod(tmp, 0o644)  # weights, not secrets: readable like the rest of the package
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get("evalkit", "{}"))
        for k in f.keys():
            tensors[k] = f.get_tensor(k)
    return tensors, meta


def resolve_output(out: str | os.PathLike | None, default_name: str) -> Path:
    """A `.safetensors` path as given, else `$EVALKIT_HOME/backbones/<name>.safetensors`."""
    from evalkit.errors import BadInputError
    from evalkit.home import evalkit_home

    if out is None:
        out = default_name
    s = str(out)
    if s.endswith(".safetensors") or os.sep in s or "/" in s:
        if not s.endswith(".safetensors"):
            raise BadInputError(f"backbone output {s} must end in .safetensors (or be a plain name)")
        return Path(s).expanduser()
    from evalkit.metrics.backbones import SHIPPED, check_name

    check_name(s)
    if s in SHIPPED:
        raise BadInputError(f"{s!r} is a shipped default backbone; give the retrained model another name")
    return evalkit_home() / "backbones" / f"{s}.safetensors"
