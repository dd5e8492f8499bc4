"""The backbone objects that `backbones.get_backbone` returns, and the input handling they share.

`as_videos`, `temporal_crop`, `resize_center_crop` and `i3d_preprocess` turn videos [B, T, 3, H, W]
into each network's input; `VideoBackbone`s (I3D, the world video encoder) give FVD features and
`ClipBackbone` gives L2-normalised CLIP embeddings. Finding weights and loading them (files, the
registry, hash checks) is the job of `backbones`, which imports this module and re-exports its
names; nothing here imports a loader, so the two never form an import cycle. The I3D protocol
followed here is described in `backbones`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from evalkit.errors import BadInputError
from evalkit.metrics.base import check_video_values
from evalkit.metrics.world_clip import clip_pixels

I3D_FRAMES = 16
I3D_SIZE = 224
I3D_DIM = 400
I3D_CALL = {"rescale": False, "resize": False, "return_features": True}


# --------------------------------------------------------------------------------------------
# input handling shared by every backbone


CHUNK_PIXELS = 16_000_000  # frame pixels a CLIP chunk converts to float at once (192 MB as float32 RGB)


def as_videos(videos) -> torch.Tensor:
    """float32 [B, T, 3, H, W] in [0, 1] from float (clamped; far outside [0, 1] refused, as any
    integer dtype but uint8: `base.check_video_values`) or uint8 (/ 255) input."""
    if not isinstance(videos, torch.Tensor):
        videos = torch.as_tensor(videos)
    if videos.ndim != 5 or videos.shape[2] != 3:
        raise ValueError(f"expected videos [B, T, 3, H, W], got shape {tuple(videos.shape)}")
    if videos.shape[0] == 0 or videos.shape[1] == 0:
        raise ValueError(f"empty videos {tuple(videos.shape)}")
    if videos.dtype == torch.uint8:
        return videos.float().div(255.0)
    return check_video_values(videos).clamp(0.0, 1.0)


def temporal_crop(videos: torch.Tensor, frames: int) -> tuple[torch.Tensor, str]:
    """[B, T, ...] -> [B, frames, ...]: the first `frames` frames; a shorter clip is stretched by
    repeating frames (index floor(i * T / frames)). Returns the videos and the policy applied."""
    t = videos.shape[1]
    if t >= frames:
        return videos[:, :frames], "first" if t == frames else f"first {frames} of {t}"
    idx = torch.div(torch.arange(frames) * t, frames, rounding_mode="floor")
    return videos[:, idx], f"stretched {t} -> {frames} by frame repetition (non-standard)"


def resize_center_crop(x: torch.Tensor, size: int, mode: str = "bilinear",
                       antialias: bool = False) -> torch.Tensor:
    """[N, C, H, W] -> [N, C, size, size]: shorter side to `size` (ceil of the other, as the
    StyleGAN-V port), centre crop. No-op when already size x size."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    scale = size / min(h, w)
    nh, nw = (size, math.ceil(w * scale)) if h <= w else (math.ceil(h * scale), size)
    x = F.interpolate(x, size=(nh, nw), mode=mode, align_corners=False, antialias=antialias)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


def i3d_preprocess(videos, frames: int = I3D_FRAMES, size: int = I3D_SIZE) -> torch.Tensor:
    """Videos [B, T, 3, H, W] in [0, 1] -> I3D input float [B, 3, frames, size, size] in [-1, 1].

    First `frames` frames (see `temporal_crop`), bilinear resize of the shorter side to `size`
    (align_corners=False, no antialias) and centre crop, `(x - 0.5) * 2`: StyleGAN-V's protocol as
    ported to PyTorch by common_metrics_on_video_quality (fvd/styleganv/fvd.py)."""
    x, _ = temporal_crop(as_videos(videos), frames)
    b, t = x.shape[:2]
    x = resize_center_crop(x.flatten(0, 1), size, "bilinear", antialias=False)
    x = (x - 0.5) * 2.0
    return x.view(b, t, 3, size, size).permute(0, 2, 1, 3, 4).contiguous()


# --------------------------------------------------------------------------------------------
# backbone objects


class Backbone:
    """Common fields: `name`, `sha256` (of the weights file), `kind` ("video" or "clip"), and
    `trained_on`: "world" for the encoders trained here on the world's renders and captions,
    whose features mean nothing for other footage or prompts (score warns); None otherwise."""

    kind = "video"
    trained_on: str | None = None

    def __init__(self, name: str, sha256: str, source: str):
        self.name, self.sha256, self.source = name, sha256, source

    def protocol(self) -> dict:
        return {"backbone": self.name, "weights_sha256": self.sha256}

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(name={self.name!r}, sha256={self.sha256[:12]}..., "
                f"source={self.source!r})")


class VideoBackbone(Backbone):
    """`features(videos [B, T, 3, H, W] in [0, 1]) -> float64 [B, dim]`; calling it does the same.
    `frames`: how many of the first frames it reads (None: all), so that a caller holding a long
    clip can hand over just those."""

    dim: int = 0
    frames: int | None = None

    def features(self, videos, batch_size: int = 32) -> torch.Tensor:
        x = as_videos(videos)
        out = []
        with torch.no_grad():
            for i in range(0, x.shape[0], batch_size):
                out.append(self._features(x[i:i + batch_size]).to(torch.float64))
        f = torch.cat(out)
        if not torch.isfinite(f).all():
            raise ValueError(f"backbone {self.name} produced non-finite features")
        return f

    __call__ = features

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class I3DBackbone(VideoBackbone):
    """StyleGAN-V's TorchScript I3D: 400-d logits of 16 frames at 224 x 224 (see `i3d_preprocess`)."""

    dim = I3D_DIM
    frames = I3D_FRAMES

    def __init__(self, model, sha256: str, source: str, device="cpu", name: str = "i3d"):
        super().__init__(name, sha256, source)
        self.model, self.device = model, torch.device(device)
        self.last_frames_policy = None

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        self.last_frames_policy = temporal_crop(x[:1], I3D_FRAMES)[1]
        inp = i3d_preprocess(x).to(self.device)
        f = self.model(inp, **I3D_CALL)
        if f.ndim != 2 or f.shape[0] != x.shape[0]:
            raise BadInputError(f"{self.source} is not StyleGAN-V's I3D: it returned {tuple(f.shape)} "
                                f"for {x.shape[0]} clips (expected [{x.shape[0]}, {I3D_DIM}])")
        return f.float().cpu()

    def features(self, videos, batch_size: int = 8) -> torch.Tensor:
        return super().features(videos, batch_size)

    __call__ = features

    def protocol(self) -> dict:
        return {**super().protocol(), "feature": "I3D Kinetics-400 logits (400-d), StyleGAN-V TorchScript",
                "frames": I3D_FRAMES, "frames_policy": "first 16; shorter clips stretched by repetition",
                "resize": "shorter side to 224, bilinear (align_corners=False, no antialias), centre crop",
                "range": "[-1, 1]", "layout": "[B, C, T, H, W]", "call": dict(I3D_CALL)}


class WorldVideoBackbone(VideoBackbone):
    """The shipped (or retrained) world video encoder: 128-d features of 16 x 32 x 32 clips."""

    def __init__(self, model, meta: dict, name: str, sha256: str, source: str):
        super().__init__(name, sha256, source)
        self.model, self.meta = model, meta
        self.frames, self.size = meta["config"]["frames"], meta["config"]["size"]
        self.dim = meta["config"]["feature_dim"]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = temporal_crop(x, self.frames)
        b, t = x.shape[:2]
        x = resize_center_crop(x.flatten(0, 1), self.size, "bilinear", antialias=True).clamp(0, 1)
        x = x.view(b, t, 3, self.size, self.size).permute(0, 2, 1, 3, 4) * 2.0 - 1.0
        return self.model.features(x)

    def protocol(self) -> dict:
        return {**super().protocol(), "feature": f"world-video-encoder embedding ({self.dim}-d, pre-ReLU)",
                "frames": self.frames,
                "frames_policy": f"first {self.frames}; shorter clips stretched by repetition",
                "resize": f"shorter side to {self.size}, bilinear antialias, centre crop", "range": "[-1, 1]",
                "train": {"seed": self.meta.get("seed"), "steps": self.meta.get("steps")}}


class ClipBackbone(Backbone):
    """An open_clip model: `encode_text(prompts) -> [N, D]`, `encode_images(frames [N, 3, H, W] in
    [0, 1]) -> [N, D]`, `encode_video_frames(videos [B, T, 3, H, W]) -> [B, T, D]`; all float64 and
    L2-normalised (computed in float32). Images: shorter side to the model's size (bicubic,
    antialias), centre crop, the model's mean/std (`encoders.clip_pixels`; open_clip's own
    transform does the same on PIL images, equal up to interpolation rounding)."""

    kind = "clip"

    def __init__(self, model, tokenizer, name: str, sha256: str, source: str, device="cpu",
                 mean=None, std=None, meta: dict | None = None, weights_info: dict | None = None):
        super().__init__(name, sha256, source)
        self.model, self.tokenizer, self.device = model.eval(), tokenizer, torch.device(device)
        size = model.visual.image_size
        self.image_size = int(size[0] if isinstance(size, (tuple, list)) else size)
        cfg = _preprocess_cfg(model)
        self.mean = tuple(mean or cfg.get("mean") or (0.48145466, 0.4578275, 0.40821073))
        self.std = tuple(std or cfg.get("std") or (0.26862954, 0.26130258, 0.27577711))
        proj = getattr(model, "text_projection", None)
        self.embed_dim = int(proj.shape[1]) if proj is not None else None
        self.meta = meta or {}
        # user weights: their form, the activation that runs, a known release (clip_weights)
        self.weights_info = dict(weights_info or {})
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def encode_text(self, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
        if isinstance(prompts, str):
            prompts = [prompts]
        prompts = list(prompts)
        if not prompts:
            raise ValueError("no prompts to encode")
        miss = [p for p in dict.fromkeys(prompts) if p not in self._text_cache]
        for i in range(0, len(miss), batch_size):
            chunk = miss[i:i + batch_size]
            emb = self.model.encode_text(self.tokenizer(chunk).to(self.device))
            emb = F.normalize(emb.float(), dim=-1).cpu().to(torch.float64)
            for p, e in zip(chunk, emb):
                self._text_cache[p] = e
        return torch.stack([self._text_cache[p] for p in prompts])

    @torch.no_grad()
    def encode_images(self, frames: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames [N, 3, H, W], got {tuple(frames.shape)}")
        # converted to float a chunk at a time: 32 frames of 1080p as float32 are 800 MB (CLIPScore
        # reads every frame up to 32 since session 36: 1.7 GB more at peak, the review measured)
        step = max(1, min(batch_size, CHUNK_PIXELS // max(1, frames.shape[2] * frames.shape[3])))
        out = []
        for i in range(0, frames.shape[0], step):
            x = frames[i:i + step]
            x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float().clamp(0, 1)
            px = clip_pixels(x, self.image_size, self.mean, self.std).to(self.device)
            out.append(F.normalize(self.model.encode_image(px).float(), dim=-1).cpu().to(torch.float64))
        return torch.cat(out)

    def encode_video_frames(self, videos) -> torch.Tensor:
        if isinstance(videos, torch.Tensor) and videos.dtype == torch.uint8 and videos.ndim == 5:
            as_videos(videos[:1, :1])  # its shape checked; the frames stay uint8 until their chunk
            x = videos
        else:
            x = as_videos(videos)
        b, t = x.shape[:2]
        return self.encode_images(x.flatten(0, 1)).view(b, t, -1)

    def protocol(self) -> dict:
        return {**super().protocol(), "embed_dim": self.embed_dim, "image_size": self.image_size,
                "image_preprocess": f"shorter side to {self.image_size} (bicubic, antialias), centre crop, "
                                    f"mean {list(self.mean)}, std {list(self.std)}",
                "tokenizer": "open_clip default BPE (SimpleTokenizer)",
                "context_length": int(getattr(self.model, "context_length", 0)) or None,
                **self.weights_info}


def _preprocess_cfg(model) -> dict:
    try:
        import open_clip

        return dict(open_clip.get_model_preprocess_cfg(model))
    except Exception:  # older open_clip
        return {}
