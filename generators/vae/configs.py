"""Conditional video VAE configurations: one frozen dataclass and named presets.

The config is stored with the weights (`to_dict` / `from_dict`), so a checkpoint describes its
own architecture and a checkpoint of another preset is refused by name, not by a shape error.

Presets: `tiny` for tests (4 frames of 16x16, a step in milliseconds), `small` the CPU model that
ships (16 frames of 32x32 at 8 fps, the world's default clips), trained in about ten CPU-minutes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from evalkit.errors import BadInputError
from generators.presets import config_from_dict, lookup_preset


@dataclass(frozen=True)
class VAEConfig:
    name: str = "custom"
    # video
    frames: int = 16
    image_size: int = 32
    channels: int = 3
    # convolutional trunk: one width per stride-2 stage, from the pixels down. Each stage halves
    # frames, height and width, so frames and image_size must be divisible by 2**len(widths).
    widths: tuple[int, ...] = (16, 48, 64)
    latent_dim: int = 48  # one global latent vector per clip (positions, speeds, texture)
    # text conditioning (the generator's own, never an evaluator's CLIP)
    text_len: int = 32  # BPE tokens incl. SOT/EOT; world captions need at most 28
    text_buckets: int = 2048  # hashed token table (id % buckets): no collision among world words
    text_width: int = 64  # width of the pooled prompt embedding that conditions both halves

    def __post_init__(self):
        def bad(msg: str):
            raise BadInputError(f"vae config {self.name!r}: {msg}")

        if not self.widths or any(w < 1 for w in self.widths):
            bad(f"widths must be a non-empty list of positive channel counts, got {self.widths}")
        down = 2 ** len(self.widths)
        if self.frames % down or self.image_size % down:
            bad(f"frames {self.frames} and image_size {self.image_size} must be divisible by "
                f"2**len(widths) = {down}")
        if self.latent_dim < 1 or self.text_width < 1 or self.text_buckets < 2:
            bad("latent_dim, text_width and text_buckets must be positive")
        if not 2 <= self.text_len <= 77:
            bad(f"text_len must be in [2, 77], got {self.text_len}")

    @property
    def bottom_grid(self) -> tuple[int, int, int]:
        """(T', H', W') of the deepest feature map, which the latent is flattened from."""
        down = 2 ** len(self.widths)
        return self.frames // down, self.image_size // down, self.image_size // down

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["widths"] = list(self.widths)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> VAEConfig:
        return config_from_dict(cls, d, "vae")

PRESETS: dict[str, VAEConfig] = {
    # tests: 4 frames of 16x16; a few thousand parameters
    "tiny": VAEConfig(name="tiny", frames=4, image_size=16, widths=(8, 16), latent_dim=8, text_len=32,
                      text_buckets=2048, text_width=16),
    # CPU default that ships: 16 frames of 32x32; 1.1M parameters, 2.2 MB in float16
    "small": VAEConfig(name="small"),
}


def get_config(name: str, **overrides) -> VAEConfig:
    """A preset by name (`small` or `vae-small`), with fields replaced by `overrides` (validated)."""
    return lookup_preset(PRESETS, name, "vae", overrides, prefix="vae-")

def is_vae_preset(name: str) -> bool:
    """True for the preset names `evalkit generator train --preset` routes to this family (an
    unknown `vae-...` name is routed here too, so that its error lists the VAE presets)."""
    return name.startswith("vae-")


__all__ = ["PRESETS", "VAEConfig", "get_config", "is_vae_preset"]
