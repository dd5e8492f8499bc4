"""`vae:small` and `vae:PATH` as a `Generator`: load weights, sample from the prior, record the
protocol (the shared parts: `generators.family.OnePassGenerator`)."""

from __future__ import annotations

from pathlib import Path

import torch

from generators.family import OnePassGenerator

from .configs import PRESETS, VAEConfig
from .model import ConditionalVideoVAE

SHIPPED = Path(__file__).parent / "weights"


class VAEGenerator(OnePassGenerator):
    """Generator protocol over a trained conditional video VAE (see model.py): z ~ N(0, I), one
    decoder pass."""

    family, label, sampler = "vae", "VAE", "vae-prior"
    shipped, presets, config_cls, network_cls = SHIPPED, PRESETS, VAEConfig, ConditionalVideoVAE
    train_command = "evalkit generator train --preset {preset}"

    @classmethod
    def network_from_checkpoint(cls, path: Path) -> ConditionalVideoVAE:
        from .train import load_checkpoint

        return load_checkpoint(path)[0].net

    def sample(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        return self.net.sample(prompts, seeds)


resolve_weights, load_network = VAEGenerator.resolve_weights, VAEGenerator.load_network
