"""`gan:small` and `gan:PATH` as a `Generator`: load the EMA generator, sample, record the
protocol (the shared parts: `generators.family.OnePassGenerator`). A `.pt` training checkpoint
gives its EMA generator, with standing BatchNorm statistics recomputed as the export does."""

from __future__ import annotations

from pathlib import Path

import torch

from generators.family import OnePassGenerator

from .configs import PRESETS, GANConfig
from .model import VideoGenerator, sample_clips

SHIPPED = Path(__file__).parent / "weights"


class GANGenerator(OnePassGenerator):
    """Generator protocol over a trained conditional video GAN's EMA generator (see model.py):
    z ~ N(0, I), one pass."""

    family, label, sampler = "gan", "GAN", "gan-ema"
    shipped, presets, config_cls, network_cls = SHIPPED, PRESETS, GANConfig, VideoGenerator
    train_command = "evalkit generator train --preset {preset}"

    @classmethod
    def network_from_checkpoint(cls, path: Path) -> VideoGenerator:
        from .train import load_checkpoint, settle_ema

        state, tc = load_checkpoint(path)
        settle_ema(state.net, tc)  # as the export does
        return state.net.g_ema

    def sample(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        return sample_clips(self.net, prompts, seeds)


resolve_weights, load_network = GANGenerator.resolve_weights, GANGenerator.load_network
