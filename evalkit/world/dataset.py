"""An in-memory world dataset for training: clips rendered on the fly, no MP4 round trip."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from evalkit.world.clips import WorldConfig, make_clip


class WorldDataset(Dataset):
    """Item i: {"video": float32 [T, C, H, W] in [0, 1], "caption": str, "index": i}.

    Deterministic: item i is always the same clip for the same (split, seed, config), in any
    worker process and any order.
    """

    def __init__(self, split: str = "train", n: int = 10_000, seed: int = 0,
                 config: WorldConfig = WorldConfig()):
        if n < 1:
            raise ValueError(f"n must be positive, got {n}")
        self.split, self.n, self.seed, self.config = split, n, seed, config

    def __len__(self) -> int:
        return self.n

    def clip(self, i: int):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return make_clip(self.split, i, self.seed, self.config)

    def __getitem__(self, i: int) -> dict:
        c = self.clip(i)
        return {"video": c.to_tensor(), "caption": c.prompt, "index": i}

    @staticmethod
    def collate(items: list[dict]) -> dict:
        return {
            "video": torch.stack([it["video"] for it in items]),  # [B, T, C, H, W]
            "caption": [it["caption"] for it in items],
            "index": torch.tensor([it["index"] for it in items]),
        }
