"""Conditional video GAN configurations: one frozen dataclass and named presets.

The config is stored with the weights (`to_dict` / `from_dict`), so a checkpoint describes its
own architecture and a checkpoint of another preset is refused by name, not by a shape error.

Presets: `tiny` for tests (4 frames of 16x16, a step in milliseconds), `small` the CPU model that
ships (16 frames of 32x32 at 8 fps, the world's default clips), trained in about a quarter of an
hour on one CPU thread.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evalkit.errors import BadInputError
from generators.presets import config_from_dict, lookup_preset


@dataclass(frozen=True)
class GANConfig:
    name: str = "custom"
    # video
    frames: int = 16
    image_size: int = 32
    channels: int = 3
    # generator: widths of the up-sampling stages from the bottom grid up; each transposed
    # convolution doubles T, H and W, so frames and image_size must be divisible by 2**len(g_widths)
    g_widths: tuple[int, ...] = (96, 48, 24)
    z_dim: int = 64  # the noise vector of one clip (positions, speeds, texture)
    # discriminator: widths of the stride-2 spectral-normalised 3-D convolutions, from the pixels down
    d_widths: tuple[int, ...] = (24, 48, 96)
    # text conditioning (each network has its own prompt encoder; never an evaluator's CLIP)
    text_len: int = 32  # BPE tokens incl. SOT/EOT; world captions need at most 28
    text_buckets: int = 2048  # hashed token table (id % buckets): no collision among world words
    text_width: int = 64  # width of the pooled prompt embedding

    def __post_init__(self):
        def bad(msg: str):
            raise BadInputError(f"gan config {self.name!r}: {msg}")

        for field in ("g_widths", "d_widths"):
            widths = getattr(self, field)
            if not widths or any(w < 1 for w in widths):
                bad(f"{field} must be a non-empty list of positive channel counts, got {widths}")
        down = 2 ** len(self.g_widths)
        if self.frames % down or self.image_size % down:
            bad(f"frames {self.frames} and image_size {self.image_size} must be divisible by "
                f"2**len(g_widths) = {down}")
        if 2 ** len(self.d_widths) > min(self.frames, self.image_size):
            bad(f"{len(self.d_widths)} discriminator stages halve {self.frames} frames below one")
        if self.z_dim < 1 or self.text_width < 1 or self.text_buckets < 2:
            bad("z_dim, text_width and text_buckets must be positive")
        if not 2 <= self.text_len <= 77:
            bad(f"text_len must be in [2, 77], got {self.text_len}")

    @property
    def bottom_grid(self) -> tuple[int, int, int]:
        """(T', H', W') of the generator's first feature map, which the noise is projected to."""
        down = 2 ** len(self.g_widths)
        return self.frames // down, self.image_size // down, self.image_size // down

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["g_widths"], d["d_widths"] = list(self.g_widths), list(self.d_widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> GANConfig:
        return config_from_dict(cls, d, "gan")

PRESETS: dict[str, GANConfig] = {
    # tests: 4 frames of 16x16; a few thousand parameters
    "tiny": GANConfig(name="tiny", frames=4, image_size=16, g_widths=(16, 8), z_dim=8, d_widths=(8, 16),
                      text_width=16),
    # CPU default that ships: 16 frames of 32x32
    "small": GANConfig(name="small"),
}


def get_config(name: str, **overrides) -> GANConfig:
    """A preset by name (`small` or `gan-small`), with fields replaced by `overrides` (validated)."""
    return lookup_preset(PRESETS, name, "gan", overrides, prefix="gan-")

def is_gan_preset(name: str) -> bool:
    """True for the preset names `evalkit generator train --preset` routes to this family."""
    return name.startswith("gan-")


__all__ = ["PRESETS", "GANConfig", "get_config", "is_gan_preset"]
