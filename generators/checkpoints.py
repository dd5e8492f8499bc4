"""Training checkpoints written the way every generator family needs them."""

from __future__ import annotations

import os
from pathlib import Path

import torch


def torch_save_atomic(payload: dict, path) -> Path:
    """`torch.save` to a hidden temporary name in the same folder, then rename: a run killed
    mid-write never leaves half a checkpoint where the next resume would look."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
