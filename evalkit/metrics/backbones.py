"""Backbones: the networks that turn videos and prompts into features for FVD and CLIP alignment.

Offline first: nothing here downloads unless the user opts in, and nothing loads at import.

Standard backbones (the user brings the weights)
- `i3d`: the TorchScript I3D (Kinetics-400) that StyleGAN-V and most papers use for FVD,
  `i3d_torchscript.pt`, loaded with `load_i3d(path)` (path, else `$EVALKIT_I3D`). What StyleGAN-V
  does (src/metrics/frechet_video_distance.py and metric_utils.py): clips of 16 consecutive frames,
  uint8 [B, C, T, H, W], `detector(x, rescale=True, resize=True, return_features=True)`: the
  TorchScript itself rescales to [-1, 1] and resizes to 224 x 224; the output is the 400-d logits
  before the softmax. The widely used PyTorch port of that protocol (common_metrics_on_video_quality,
  fvd/styleganv/fvd.py) does both steps outside the network, which is what we do
  (`i3d_preprocess`): float [0, 1] frames, shorter side to 224 with bilinear interpolation
  (`F.interpolate(..., mode="bilinear", align_corners=False)`, no antialias) and a centre crop to
  224 x 224 (for square frames: a plain bilinear resize to 224 x 224), then `(x - 0.5) * 2`, layout
  [B, 3, 16, 224, 224], called as `model(x, rescale=False, resize=False, return_features=True)`.
  Frames: the first 16 (StyleGAN-V loads 16 consecutive frames from the start of generated clips);
  clips shorter than 16 frames are stretched by repeating frames (index floor(i * T / 16)), which
  StyleGAN-V would discard: the protocol records it (`frames_policy`).
- open_clip `ViT-B-32` (or any open_clip model name) with the user's weights:
  `load_clip("ViT-B-32", pretrained=PATH)` (or `$EVALKIT_CLIP`): OpenAI's TorchScript release, an
  open_clip state dict or a Hugging Face snapshot folder, each run with the activation it was
  trained with (`clip_weights`: OpenAI's QuickGELU is not ViT-B-32's GELU). A named pretrained tag
  ("openai", "laion2b_s34b_b79k", ...) is downloaded by open_clip only with `allow_download=True`
  or `EVALKIT_ALLOW_DOWNLOAD=1`.

Offline defaults (shipped in `evalkit/metrics/weights/`, trained on the world by
`evalkit.metrics.encoders`): `world-video-encoder` (FVD features, 128-d) and `world-clip` (a tiny
open_clip model, embed dim 128). Their SHA-256 is recorded in `weights/registry.json` and checked
at load. Models retrained by the user live in `$EVALKIT_HOME/backbones/NAME.safetensors` and are
picked by NAME; a retrained model can never take a shipped name.

`get_backbone(name)` returns an object with `.name`, `.sha256` and `.protocol()` (name, weights hash,
preprocessing), and either `.features(videos) -> float64 [B, D]` (video backbones; also callable,
so it can be FVD's `feature_extractor`) or `.encode_video_frames(videos) -> float64 [B, T, D]` and
`.encode_text(prompts) -> float64 [N, D]`, both L2-normalised (CLIP backbones). Videos are
`[B, T, 3, H, W]` float in [0, 1] (uint8 accepted); each backbone converts at its own boundary.

This module finds and loads backbones (weights files, the registry of shipped defaults, retrained
models by name); the backbone classes and the input preprocessing they share are in
`backbone_classes`, re-exported here.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import threading
import zipfile
from functools import lru_cache
from pathlib import Path

import torch

from evalkit.errors import BadInputError, MissingResourceError
from evalkit.metrics import clip_weights, weight_files
from evalkit.metrics.backbone_classes import (  # noqa: F401 (re-exported)
    I3D_CALL,
    I3D_DIM,
    I3D_FRAMES,
    I3D_SIZE,
    Backbone,
    ClipBackbone,
    I3DBackbone,
    VideoBackbone,
    WorldVideoBackbone,
    as_videos,
    i3d_preprocess,
    resize_center_crop,
    temporal_crop,
)
from evalkit.metrics.encoder_base import WEIGHTS_DIR, WORLD_CLIP_MODEL, file_sha256, load_checkpoint
from evalkit.metrics.world_clip import load_world_clip_model
from evalkit.metrics.world_video_encoder import load_video_encoder

REGISTRY_PATH = WEIGHTS_DIR / "registry.json"
SHIPPED = ("world-video-encoder", "world-clip")
# The recipe `encoders.ship_defaults` reproduces the shipped files with (seed and steps define them).
SHIPPED_RECIPES = {
    "world-video-encoder": {"seed": 0, "steps": 800, "batch_size": 48, "lr": 3e-3},
    "world-clip": {"seed": 0, "steps": 1500, "batch_size": 128, "lr": 2e-3, "hard_negatives": 1.0},
}
DEFAULT_VIDEO_BACKBONE = "world-video-encoder"
DEFAULT_CLIP_BACKBONE = "world-clip"

I3D_ENV = "EVALKIT_I3D"
CLIP_ENV = "EVALKIT_CLIP"
DOWNLOAD_ENV = "EVALKIT_ALLOW_DOWNLOAD"
I3D_URL = "https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt"

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise BadInputError(f"backbone name {name!r} must be letters, digits, '.', '_' or '-' (at most 100)")
    return name


# --------------------------------------------------------------------------------------------
# loaders


@lru_cache(maxsize=64)
def _sha_cached(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def weights_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a weights file (cached per path, size and modification time)."""
    st = os.stat(path)
    return _sha_cached(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def load_i3d(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> I3DBackbone:
    """StyleGAN-V's TorchScript I3D from `path`, else `$EVALKIT_I3D`; never downloads."""
    given = path if path is not None else os.environ.get(I3D_ENV) or None
    if given is None:
        raise MissingResourceError(
            f"the I3D backbone needs StyleGAN-V's i3d_torchscript.pt ({I3D_URL}); download it and pass "
            f"--i3d PATH or set {I3D_ENV}=PATH, or use the offline backbone {DEFAULT_VIDEO_BACKBONE}")
    p = Path(given).expanduser()
    if not p.is_file():
        raise MissingResourceError(
            f"I3D weights not found at {p}; download i3d_torchscript.pt from {I3D_URL} and pass --i3d PATH "
            f"or set {I3D_ENV}=PATH")
    try:
        model = weight_files.load_torchscript(p, device).eval()
    except Exception as e:  # not TorchScript, truncated, ...
        what = ("a torch.save checkpoint (a state dict such as VideoGPT's i3d_pretrained_400.pt)"
                if weight_files.is_pickle_checkpoint(p) else type(e).__name__)
        raise BadInputError(f"{p} is not a TorchScript I3D ({what}); expected StyleGAN-V's "
                            f"i3d_torchscript.pt from {I3D_URL}") from None
    takes = [a.name for a in model.forward.schema.arguments][1:]
    if not set(I3D_CALL) <= set(takes):  # another TorchScript model (a CLIP release, ...)
        raise BadInputError(f"{p} is a TorchScript model but not StyleGAN-V's I3D (its forward takes "
                            f"{', '.join(takes)}); expected i3d_torchscript.pt from {I3D_URL}")
    return I3DBackbone(model, weights_sha256(p), str(p), device)


def load_clip(name: str = "ViT-B-32", pretrained: str | os.PathLike | None = None,
              allow_download: bool | None = None, device: str | torch.device = "cpu") -> ClipBackbone:
    """open_clip `name` with the user's weights: `pretrained` is a path (else `$EVALKIT_CLIP`):
    OpenAI's TorchScript release, an open_clip state dict, or a Hugging Face snapshot folder of
    open_clip weights; each runs with the activation it was trained with (`clip_weights`). A
    pretrained *tag* (e.g. "openai") makes open_clip download, allowed only with
    `allow_download=True` or `EVALKIT_ALLOW_DOWNLOAD=1`; the SHA-256 is then that of the
    downloaded file."""
    import open_clip

    from evalkit.metrics.world_clip import register_world_clip_config

    register_world_clip_config()  # so that the world-clip architecture is a known name too
    allow = _env_flag(DOWNLOAD_ENV) if allow_download is None else bool(allow_download)
    if name not in open_clip.list_models():
        raise BadInputError(f"unknown open_clip model {name!r}; see open_clip.list_models()")
    given = pretrained if pretrained is not None else os.environ.get(CLIP_ENV) or None
    hint = (f"pass --clip-weights PATH or set {CLIP_ENV}=PATH (open_clip weights for {name}), allow a "
            f"download of a named tag with {DOWNLOAD_ENV}=1, or use the offline backbone "
            f"{DEFAULT_CLIP_BACKBONE}")
    if given is None:
        raise MissingResourceError(f"no weights for the CLIP backbone {name}; {hint}")
    tags = open_clip.list_pretrained_tags_by_model(name)
    p = Path(str(given)).expanduser()
    tag_cfg: dict = {}
    if p.exists():
        weights = clip_weights.resolve(p)
        source = str(p)
    elif str(given) in tags:
        if not allow:
            raise MissingResourceError(f"pretrained tag {given!r} of {name} would be downloaded; {hint}")
        from open_clip.pretrained import download_pretrained, get_pretrained_cfg

        tag_cfg = dict(get_pretrained_cfg(name, str(given)))
        checkpoint = download_pretrained(tag_cfg)
        if not checkpoint:
            raise MissingResourceError(f"open_clip could not fetch {name}/{given}; {hint}")
        # the tag's config says how its weights were trained (OpenAI's: QuickGELU)
        weights = clip_weights.ClipWeights(Path(checkpoint), f"open_clip pretrained tag {given}",
                                           bool(tag_cfg.get("quick_gelu", False)))
        source = f"{name}/{given}"
    else:
        raise MissingResourceError(f"CLIP weights not found at {p}; {hint}")
    model = _open_clip_model(name, weights, source, device)
    info = {"weights_form": weights.form, "activation": clip_weights.activation(model)}
    known = clip_weights.OPENAI_RELEASES.get(weights_sha256(weights.file))
    if known:
        info["weights_known_as"] = known
    tokenizer = open_clip.get_tokenizer(name)
    return ClipBackbone(model, tokenizer, name, weights_sha256(weights.file), source, device,
                        mean=tag_cfg.get("mean"), std=tag_cfg.get("std"), weights_info=info)


def _open_clip_model(name: str, weights: clip_weights.ClipWeights, source: str, device):
    """open_clip `name` holding `weights`, run with the activation they were trained with."""
    import open_clip

    from evalkit.metrics.world_clip import _quiet_open_clip

    force = {"force_quick_gelu": True} if weights.quick_gelu else {}
    try:
        with _quiet_open_clip():
            if weights.torchscript:
                state = clip_weights.torchscript_state_dict(weights.file)
                model = open_clip.create_model(name, pretrained=None, device=device, **force)
                _load_all_parameters(model, state)
            else:
                model = open_clip.create_model(name, pretrained=str(weights.file.resolve()), device=device,
                                               **force)
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile) as e:  # not a torch file at all
        raise BadInputError(f"{source} is not a PyTorch weights file, or is damaged ({type(e).__name__}); "
                            f"give open_clip weights for {name} (OpenAI's release file, an open_clip state "
                            "dict or a Hugging Face snapshot folder)") from None
    except (RuntimeError, KeyError, ValueError, OSError) as e:
        raise BadInputError(f"{source} does not hold open_clip weights for {name} "
                            f"({type(e).__name__}: {str(e)[:120]}); if it is another architecture, "
                            "name it with --clip-backbone") from None
    return model.eval()


def _load_all_parameters(model, state: dict) -> None:
    """Load `state` into `model`, requiring every parameter and nothing unknown. Buffers such as
    the text attention mask are rebuilt, not trained: absent or saved, they are not loaded."""
    buffers = dict(model.named_buffers())
    state = {k: v for k, v in state.items() if k not in buffers or k in model.state_dict()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters())
    lost = [k for k in missing if k in params]
    if lost or unexpected:
        raise KeyError(f"parameters missing: {lost[:3]}, unknown: {list(unexpected)[:3]}")


def _registry() -> dict:
    return json.loads(REGISTRY_PATH.read_text()) if REGISTRY_PATH.exists() else {}


def _load_world(path: Path, name: str, expected_sha: str | None = None):
    sha = weights_sha256(path)
    if expected_sha is not None and sha != expected_sha:
        raise BadInputError(f"shipped backbone {name} at {path} has SHA-256 {sha[:16]}..., the registry says "
                            f"{expected_sha[:16]}...; reinstall evalkit or rerun encoders.ship_defaults()")
    try:
        _, meta = load_checkpoint(path)
    except Exception as e:
        raise BadInputError(f"{path} is not an evalkit backbone checkpoint ({type(e).__name__})") from None
    kind = meta.get("kind")
    if kind == "video-encoder":
        model, meta = load_video_encoder(path)
        bb = WorldVideoBackbone(model, meta, name, sha, str(path))
        bb.trained_on = "world"
        return bb
    if kind == "clip":
        import open_clip

        model, meta = load_world_clip_model(path)
        tok = open_clip.get_tokenizer(WORLD_CLIP_MODEL)
        pre = meta.get("preprocess", {})
        bb = ClipBackbone(model, tok, name, sha, str(path), mean=pre.get("mean"), std=pre.get("std"),
                          meta=meta)
        bb.trained_on = "world"
        return bb
    raise BadInputError(f"{path} is not an evalkit backbone checkpoint (kind {kind!r})")


@lru_cache(maxsize=16)
def _load_world_cached_unlocked(path: str, name: str, expected_sha: str | None, mtime_ns: int):
    return _load_world(Path(path), name, expected_sha)


_load_lock = threading.Lock()


def _load_world_cached(path: str, name: str, expected_sha: str | None, mtime_ns: int):
    """The cached world backbone; one thread loads it, the others wait for that copy (lru_cache
    alone let two threads' first calls load it twice, each building its own model)."""
    with _load_lock:
        return _load_world_cached_unlocked(path, name, expected_sha, mtime_ns)


def home_backbones_dir() -> Path:
    """Where retrained backbones are looked up (not created here: `save_backbone` makes it)."""
    from evalkit.home import evalkit_home

    return evalkit_home(create=False) / "backbones"


def get_backbone(name: str = DEFAULT_VIDEO_BACKBONE, *, path: str | os.PathLike | None = None,
                 allow_download: bool | None = None, device: str | torch.device = "cpu"):
    """A backbone by name:

    - "world-video-encoder", "world-clip": the shipped defaults (hash-checked against the registry);
    - "i3d": `load_i3d(path)` (path or `$EVALKIT_I3D`);
    - an open_clip model name such as "ViT-B-32" (or "open_clip:NAME"): `load_clip(NAME, path)`;
    - a path to a `.safetensors` checkpoint written by `evalkit.metrics.encoders`;
    - any other NAME: `$EVALKIT_HOME/backbones/NAME.safetensors` (retrained models).
    World backbones are cached per file (same object for the same file)."""
    if name in SHIPPED:
        entry = _registry().get(name)
        p = WEIGHTS_DIR / (entry["file"] if entry else f"{name}.safetensors")
        if not p.is_file():
            raise MissingResourceError(
                f"the shipped backbone {name} is missing from {WEIGHTS_DIR}; reinstall evalkit or rebuild "
                "it with evalkit.metrics.encoders.ship_defaults()")
        return _load_world_cached(str(p), name, entry["sha256"] if entry else None, p.stat().st_mtime_ns)
    if name == "i3d":
        return load_i3d(path, device)
    if name.startswith("open_clip:"):
        return load_clip(name.split(":", 1)[1], path, allow_download, device)
    if name.endswith(".safetensors") or "/" in name or os.sep in name:
        p = Path(name).expanduser()
        if not p.is_file():
            raise MissingResourceError(f"backbone checkpoint {p} not found; train one with "
                                       "`evalkit backbones train` or name a shipped backbone")
        return _load_world_cached(str(p.resolve()), p.stem, None, p.stat().st_mtime_ns)
    import open_clip

    if name in open_clip.list_models() and name != WORLD_CLIP_MODEL:
        return load_clip(name, path, allow_download, device)
    check_name(name)
    p = home_backbones_dir() / f"{name}.safetensors"
    if not p.is_file():
        retrained = [b["name"] for b in list_backbones() if b["where"] == "home"]
        known = ", ".join([*SHIPPED, "i3d", "ViT-B-32", *retrained])
        raise MissingResourceError(f"no backbone named {name!r} (looked in {p.parent}); known: {known}; "
                                   "retrained models come from `evalkit backbones train`")
    return _load_world_cached(str(p), name, None, p.stat().st_mtime_ns)


def list_backbones() -> list[dict]:
    """Shipped and retrained world backbones: [{"name", "where", "path", "sha256" (shipped: as
    registered), "kind"}]. Standard backbones (i3d, open_clip) are not listed: they live where the
    user keeps them."""
    out = []
    reg = _registry()
    for name in SHIPPED:
        e = reg.get(name, {})
        path = WEIGHTS_DIR / e.get("file", f"{name}.safetensors")
        out.append({"name": name, "where": "package", "path": str(path), "sha256": e.get("sha256"),
                    "kind": e.get("kind")})
    d = home_backbones_dir()
    if d.is_dir():
        for p in sorted(d.glob("*.safetensors")):
            try:
                _, meta = load_checkpoint(p)
                kind = str(meta.get("kind") or "unknown")
            except Exception:  # noqa: BLE001  listed, and named as what it is: not a usable backbone
                kind = "unreadable"
            out.append({"name": p.stem, "where": "home", "path": str(p), "sha256": file_sha256(p), "kind": kind})
    return out
