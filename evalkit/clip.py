"""`Clip`: one video in memory, as uint8 RGB frames plus what is known about it.

On disk and in a `Clip`, frames are `uint8 [T, H, W, 3]`. Inside the library a batch of
videos is `float32 [B, T, C, H, W]` in `[0, 1]`; `to_tensor` / `from_tensor` convert.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch


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
        if not self.fps > 0:
            raise ValueError(f"Clip fps must be positive, got {self.fps}")

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
        """From float [T, C, H, W] in [0, 1] (values outside are clipped, then rounded)."""
        if video.ndim != 4 or video.shape[1] != 3:
            raise ValueError(f"expected a video tensor [T, 3, H, W], got {tuple(video.shape)}")
        x = video.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8)
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
