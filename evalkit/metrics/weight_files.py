"""What a weights file is, by its bytes: a TorchScript archive or a `torch.save` checkpoint
(both zip files; TorchScript holds `constants.pkl`), and loading TorchScript quietly. Used where
users bring standard backbones' files (I3D, CLIP) in the forms they are released in."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive: a zip holding `constants.pkl` (what torch itself checks)."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.rsplit("/", 1)[-1] == "constants.pkl" for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def is_pickle_checkpoint(path: Path) -> bool:
    """A `torch.save` zip (a pickled state dict), not TorchScript."""
    try:
        with zipfile.ZipFile(path) as z:
            names = [n.rsplit("/", 1)[-1] for n in z.namelist()]
    except (zipfile.BadZipFile, OSError):
        return False
    return "data.pkl" in names and "constants.pkl" not in names


def load_torchscript(file: Path, device="cpu"):
    """`torch.jit.load`, without its deprecation warning (TorchScript is the format these
    releases come in; the warning is torch's plan, not the user's mistake)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*deprecated", category=FutureWarning)
        return torch.jit.load(str(file), map_location=device)
