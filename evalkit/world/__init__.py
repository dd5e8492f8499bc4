"""The procedural physics world: the embedded reference data that needs no download."""

from evalkit.world.clips import WorldConfig, clip_seed, make_clip, make_clip_for_prompt, make_clip_from_seed
from evalkit.world.dataset import WorldDataset
from evalkit.world.spec import BACKGROUNDS, COLORS, KINDS, SHAPES, SIZES, SPLITS

__all__ = [
    "BACKGROUNDS", "COLORS", "KINDS", "SHAPES", "SIZES", "SPLITS",
    "WorldConfig", "WorldDataset", "clip_seed", "make_clip", "make_clip_for_prompt", "make_clip_from_seed",
]
