"""Training checkpoints written the way every generator family needs them."""

from __future__ import annotations

import json
import os
import pickle
import warnings
from pathlib import Path

import torch
from evalkit.atomic import short_name


def weights_target(path) -> Path:
    """Where a weights file given as `path` is written: a link's target (the link stays a link;
    renamed over, it became a file and its target kept the old weights), never a device, FIFO or
    socket (renamed over as root, /dev/null became a 3 MB file)."""
    from evalkit.errors import BadInputError

    path = Path(path)
    if path.exists() and not path.is_file():
        what = "a folder" if path.is_dir() else "not a regular file (a device, FIFO or socket)"
        raise BadInputError(f"{path}: is {what}; give a file name for the weights")
    return path.resolve() if path.is_symlink() else path


def _remove_stale_partials(path: Path) -> None:
    """Temporary files of writers killed mid-write (kill -9), whose process is gone: a `base`
    checkpoint's is GBs, and nothing else would ever remove it."""
    for tmp in path.parent.glob(f".{path.name}.partial-*"):
        pid = tmp.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and not Path(f"/proc/{pid}").exists():
            tmp.unlink(missing_ok=True)


def torch_save_atomic(payload: dict, path) -> Path:
    """`torch.save` to a hidden temporary name in the same folder, then rename: a run killed
    mid-write never leaves half a checkpoint where the next resume would look."""
    path = weights_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(path)
    tmp = path.with_name(f".{short_name(path.name)}.partial-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_failure(e: BaseException, limit: int = 200) -> str:
    """Why a user's checkpoint did not load, for a one-line error. torch's refusal of a non-torch
    file ends in advice to load it with weights_only=False (that would run the file's pickled
    code), so that case is named for what it is instead."""
    if isinstance(e, (pickle.UnpicklingError, EOFError, IndexError, KeyError, UnicodeDecodeError)) \
            or "Weights only load failed" in str(e):
        # (a text file read as a pickle fails inside the unpickler: "pop from empty list", "101")
        return "not a PyTorch checkpoint, or a damaged one"
    text = " ".join(str(e).split())[:limit]
    return text if text and not text.isdigit() else f"{type(e).__name__}: not a PyTorch checkpoint, or a damaged one"


def torch_load_checked(path, fmt: str, what: str, device: torch.device = torch.device("cpu")) -> dict:
    """A checkpoint written by `torch_save_atomic` with `"format": fmt`, loaded with
    weights_only=True (no pickled code runs). A missing file is MissingResourceError; anything
    unreadable or of another format is a one-line BadInputError naming the file."""
    from evalkit.errors import BadInputError, MissingResourceError

    path = Path(path)
    if not path.is_file():
        raise MissingResourceError(f"{path}: no such {what} checkpoint; check the path")
    try:
        with warnings.catch_warnings():  # torch's note on a raw pickle's protocol: the error below says it
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as e:  # any failure to read a user-given file is bad input, not a bug
        raise BadInputError(f"{path}: unreadable or corrupt checkpoint ({load_failure(e)}); "
                            "train again or pick another") from None
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise BadInputError(f"{path}: not an evalkit {what} training checkpoint; train again or pick another")
    return payload


def canonical_header(path) -> None:
    """Rewrite a safetensors header with its keys sorted: safetensors writes the metadata map in
    hash order, which differs between processes, so without this the same weights and metadata
    would give files with different SHA-256s. Same length (compact JSON, space padded), so the
    tensor offsets do not move."""
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
        if len(text) > n:  # cannot happen for safetensors' own compact header; keep the file as is
            return
        f.seek(8)
        f.write(text + b" " * (n - len(text)))


def save_safetensors_atomic(tensors: dict, metadata: dict, out) -> Path:
    """Write tensors as safetensors with `metadata`, the header canonicalised (the same inputs give
    the same bytes), to a hidden temporary name beside `out`, then rename."""
    from safetensors.torch import save_file

    out = weights_target(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(out)
    tmp = out.with_name(f".{short_name(out.name)}.partial-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        canonical_header(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# Prompts whose sample grid every family's trainer logs at the end of training.
PROBE_PROMPTS = [
    "a medium red ball falls and bounces on the floor, on a dark background",
    "a large blue square slides and slows down, on a light background",
    "a small yellow ball and a medium cyan square collide, on a dark background",
    "a medium purple ball rests still, on a gradient background",
]


def log_probe_samples(sample, step: int, weights) -> None:
    """Log to the active MLflow run a grid of `sample(prompts, seeds)` -> videos [B, T, C, H, W]
    in [0, 1] (seeds 0 and 1 per probe prompt) and the exported weights' SHA-256."""
    import mlflow

    from evalkit.clip import Clip
    from evalkit.grid import frame_grid
    from evalkit.hashing import sha256_file

    prompts = [p for p in PROBE_PROMPTS for _ in range(2)]
    videos = sample(prompts, [0, 1] * len(PROBE_PROMPTS))
    grid = frame_grid([Clip.from_tensor(v) for v in videos.cpu()], labels=prompts)
    mlflow.log_image(grid, f"samples/step-{step:07d}.png")
    mlflow.log_param("weights_sha256", sha256_file(weights))
