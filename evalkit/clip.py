"""`Clip`: one video in memory, as uint8 RGB frames plus what is known about it.

On disk and in a `Clip`, frames are `uint8 [T, H, W, 3]`. Inside the library a batch of
videos is `float32 [B, T, C, H, W]` in `[0, 1]`; `to_tensor` / `from_tensor` convert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


def index_fps(fps) -> int | float:
    """A frame rate as index.jsonl holds it: an int where it is whole (DESIGN.md's format: 8, 25),
    else the float (a camera's 29.97). Until session 36 every rate was written as a float (8.0),
    which a reader that holds the format's int type refused."""
    f = float(fps)
    return int(f) if f.is_integer() else f


@dataclass
class Clip:
    frames: np.ndarray  # uint8 [T, H, W, 3], RGB
    fps: float = 8.0
    prompt: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        f = self.frames
        if not isinstance(f, np.ndarray) or f.dtype != np.uint8 or f.ndim != 4 or f.shape[-1] != 3:
            shape = getattr(f, "shape", None)
            dtype = getattr(f, "dtype", type(f).__name__)
            raise ValueError(f"Clip frames must be uint8 [T, H, W, 3], got {dtype} {shape}")
        if f.shape[0] < 1:
            raise ValueError("Clip needs at least one frame")
        if isinstance(self.fps, bool) or not isinstance(self.fps, (int, float, np.floating, np.integer)) \
                or not math.isfinite(float(self.fps)) or not self.fps > 0:
            raise ValueError(f"Clip fps must be a positive finite number, got {self.fps!r}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    def to_tensor(self) -> torch.Tensor:
        """float32 [T, C, H, W] in [0, 1]."""
        x = torch.from_numpy(np.ascontiguousarray(self.frames))  # [T, H, W, 3] uint8
        return x.permute(0, 3, 1, 2).float().div_(255.0)

    @classmethod
    def from_tensor(cls, video: torch.Tensor, fps: float = 8.0, prompt: str = "", meta=None) -> "Clip":
        """From a video [T, 3, H, W]: float in [0, 1], clipped (a sampler's ringing, added noise),
        or uint8 0-255. Values that show another convention are refused, with NaN and integer
        dtypes other than uint8: below -0.5 (a [-1, 1] output lost its lower half) or above 1.5
        (0-255 floats came out white; session 32). A numpy array is taken as a tensor."""
        if isinstance(video, np.ndarray):
            video = torch.from_numpy(video)
        if not isinstance(video, torch.Tensor) or video.ndim != 4 or video.shape[1] != 3:
            raise ValueError(f"expected a video tensor [T, 3, H, W], got {tuple(getattr(video, 'shape', ()))}")
        if video.dtype == torch.uint8:
            x = video.detach()
        else:
            if video.dtype == torch.bool or not video.is_floating_point():
                raise ValueError(f"a video of dtype {str(video.dtype).replace('torch.', '')}: give float in [0, 1] "
                                 "or uint8 0-255")
            x = video.detach().float()
            if x.numel() and not torch.isfinite(x).all():
                raise ValueError("the video holds NaN or infinite values; fix the generator output first")
            if x.numel() and (float(x.min()) < -0.5 or float(x.max()) > 1.5):
                raise ValueError(f"the video ranges over [{float(x.min()):.3g}, {float(x.max()):.3g}]; expected [0, 1]: "
                                 "map a [-1, 1] output with (x + 1) / 2, divide 0-255 floats by 255 (or give uint8)")
            x = x.clamp(0, 1).mul(255).round().to(torch.uint8)
        frames = x.permute(0, 2, 3, 1).contiguous().cpu().numpy()  # [T, H, W, 3]
        return cls(frames=frames, fps=fps, prompt=prompt, meta=dict(meta or {}))

    def with_frames(self, frames: np.ndarray) -> "Clip":
        return replace(self, frames=frames, meta=dict(self.meta))


def stack_clips(clips: list[Clip]) -> torch.Tensor:
    """Batch clips of one shape into float32 [B, T, C, H, W] in [0, 1]."""
    if not clips:
        raise ValueError("no clips to stack")
    shapes = {c.frames.shape for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"clips differ in shape {sorted(shapes)}; resize or crop them first")
    return torch.stack([c.to_tensor() for c in clips])
