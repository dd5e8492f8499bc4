"""The forms in which users hold CLIP weights, and how each becomes an open_clip model.

A CLIP model is its weights *and* its activation: OpenAI trained its CLIP models with QuickGELU
(x * sigmoid(1.702 x)), LAION's open_clip runs with exact GELU, and open_clip's `ViT-B-32` config
means GELU. Loading OpenAI's weights into a GELU model runs without complaint and gives other
embeddings, so a CLIP score would quietly differ from everyone else's "ViT-B/32". The weights
alone do not say which activation they were trained with; where they come from does:

- OpenAI's own release (`ViT-B-32.pt`, what the `clip` package keeps in `~/.cache/clip`) is a
  TorchScript archive: QuickGELU. torch.load refuses TorchScript with `weights_only=True`, which
  is what open_clip asks for, so these files were refused before; here the archive's state dict is
  read with `torch.jit.load` (as I3D's TorchScript is).
- A Hugging Face snapshot of open_clip weights (`timm/vit_base_patch32_clip_224.openai`,
  `laion/CLIP-ViT-B-32-laion2B-s34B-b79K`) keeps `open_clip_config.json` beside the weights; its
  `model_cfg.quick_gelu` says. The folder or the weights file in it may be given.
- A bare state dict says nothing: the model name decides (`ViT-B-32`: GELU,
  `ViT-B-32-quickgelu`: QuickGELU), and the protocol records which ran.
- A named tag that open_clip downloads (only when allowed) carries `quick_gelu` in its config.

Hugging Face *transformers* CLIP checkpoints (`openai/clip-vit-base-patch32`, the format
torchmetrics' CLIPScore loads) use other parameter names; they are refused with a pointer to the
open_clip form of the same weights.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from evalkit.errors import BadInputError, MissingResourceError
from evalkit.metrics.weight_files import is_torchscript, load_torchscript

# SHA-256 of OpenAI's released archives (the hash is part of their download URL, and the `clip`
# package checks it): a file with one of these is that release.
OPENAI_RELEASES = {
    "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af": "OpenAI CLIP ViT-B/32 release (ViT-B-32.pt)",
}
# Files a Hugging Face snapshot of open_clip weights holds, preferred first.
SNAPSHOT_WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
OPEN_CLIP_CONFIG = "open_clip_config.json"
# Keys saved beside the parameters in OpenAI's archives (not parameters of the model).
_OPENAI_EXTRA_KEYS = ("input_resolution", "context_length", "vocab_size")


@dataclass(frozen=True)
class ClipWeights:
    """Where the parameters are (`file`) and how they must run (`quick_gelu`); `form` says in
    words what the file was taken for, for the protocol."""

    file: Path
    form: str
    quick_gelu: bool | None  # None: the model name's own config decides
    torchscript: bool = False


def _config_quick_gelu(config: Path) -> bool:
    try:
        cfg = json.loads(config.read_text())
        return bool(cfg["model_cfg"].get("quick_gelu", False))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise BadInputError(f"{config}: not a readable open_clip config (expected JSON with a "
                            "'model_cfg' object); fix or remove it") from None


def _refuse_transformers(folder: Path, given: Path) -> None:
    cfg = folder / "config.json"
    if cfg.is_file() and not (folder / OPEN_CLIP_CONFIG).is_file():
        try:
            kind = json.loads(cfg.read_text()).get("model_type")
        except (OSError, ValueError, AttributeError):
            kind = None
        if kind == "clip":
            raise BadInputError(f"{given}: a Hugging Face transformers CLIP checkpoint; evalkit loads "
                                "open_clip weights: give OpenAI's ViT-B-32.pt or the open_clip snapshot "
                                "of the same weights (timm/vit_base_patch32_clip_224.openai)")


def resolve(given: Path) -> ClipWeights:
    """What the user's path holds (a file or a snapshot folder). Raises a one-line error for a
    folder without weights or a transformers checkpoint."""
    if given.is_dir():
        _refuse_transformers(given, given)
        found = [given / n for n in SNAPSHOT_WEIGHTS if (given / n).is_file()]
        if not found:
            raise MissingResourceError(f"{given}: no open_clip weights in this folder (looked for "
                                       f"{', '.join(SNAPSHOT_WEIGHTS)}); give the weights file")
        file = found[0]
    else:
        file = given
        _refuse_transformers(file.parent, given)
    if is_torchscript(file):
        return ClipWeights(file, "TorchScript archive (OpenAI's release format; QuickGELU)", True, True)
    if file.is_file() and not _weights_container(file):
        # a text file read as a pickle fails with whatever its bytes spell ("KeyError: 101")
        raise BadInputError(f"{given} is not a PyTorch weights file (neither a torch archive, a pickle nor "
                            "safetensors); give open_clip weights (OpenAI's release file, an open_clip state "
                            "dict or a Hugging Face snapshot folder)")
    config = file.parent / OPEN_CLIP_CONFIG
    if config.is_file():
        return ClipWeights(file, f"open_clip weights with {OPEN_CLIP_CONFIG}", _config_quick_gelu(config))
    return ClipWeights(file, "open_clip state dict (activation from the model name)", None)


def _weights_container(file: Path) -> bool:
    """Whether the file starts as torch.save's zip archive, a legacy pickle (protocol 2+) or a
    safetensors file (an 8-byte header length, then its JSON header) does."""
    try:
        with open(file, "rb") as f:
            head = f.read(9)
    except OSError:
        return True  # unreadable: the loader names it
    return head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" or (len(head) == 9 and head[8:9] == b"{")


def torchscript_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """The parameters of a TorchScript CLIP archive, as float32 (OpenAI's are float16)."""
    try:
        sd = load_torchscript(file).state_dict()
    except Exception as e:  # noqa: BLE001  truncated or not TorchScript after all
        raise BadInputError(f"{file}: a damaged TorchScript archive ({type(e).__name__}); "
                            "download it again") from None
    return {k: v.float() for k, v in sd.items() if k not in _OPENAI_EXTRA_KEYS}


def activation(model) -> str:
    """The activation the model's transformer blocks run ("QuickGELU" or "GELU")."""
    for m in model.modules():
        name = type(m).__name__
        if name in ("QuickGELU", "GELU"):
            return name
    return "unknown"
