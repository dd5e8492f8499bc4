"""A training step's inputs: its share of the global batch of clips and prompts, each sample's
timestep, noise and condition-dropout flag, frame windows, prompt tokens (`StepInputs`); and the
object-weighted loss's pixel weights, which the step computes from its clips.

Apart from the loop (train.py) because a step's inputs are a pure function of (seed, step)
(`generators.training.sample_seed`), so worker processes can make them ahead of the step
(`generators.prefetch.Prefetcher`) and how many workers there are changes no result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from evalkit.errors import BadInputError
from generators.training import ClipSource
from generators.training import sample_seed as _sample_seed

from .configs import UViTConfig
from .diffusion import to_model_space
from .text import tokenize

if TYPE_CHECKING:
    from .train import TrainConfig


def batch_for_step(source: ClipSource, tc: TrainConfig, step: int, rank: int = 0, world: int = 1):
    """This rank's share of the global batch of `step`: (videos [b, T, C, H, W], prompts,
    global sample indices)."""
    if tc.batch_size % world:
        raise BadInputError(f"batch size {tc.batch_size} does not split over {world} processes")
    b = tc.batch_size // world
    idx = [step * tc.batch_size + rank * b + j for j in range(b)]
    items = [source.get(i) for i in idx]
    return torch.stack([v for v, _ in items]), [p for _, p in items], idx


def per_sample_randomness(tc: TrainConfig, idx: list[int], num_timesteps: int, shape, drop_p: float):
    """Timesteps, noise (with offset noise) and condition-dropout flags, one draw per global sample."""
    ts, noises, drops = [], [], []
    for i in idx:
        g = torch.Generator().manual_seed(_sample_seed(tc.seed, i, 1))
        ts.append(int(torch.randint(0, num_timesteps, (1,), generator=g)))
        n = torch.randn(shape, generator=g)  # [T, C, H, W]
        if tc.offset_noise:
            n = n + tc.offset_noise * torch.randn((1, shape[1], 1, 1), generator=g)
        noises.append(n)
        drops.append(bool(torch.rand((), generator=g) < drop_p))
    return torch.tensor(ts), torch.stack(noises), torch.tensor(drops)


def frame_windows(tc: TrainConfig, cfg: UViTConfig, step: int, video: torch.Tensor, idx: list[int]):
    """(video, frame offsets [b] or None): on a window step (drawn from (seed, step), so every
    rank agrees), one random window of tc.window_frames frames per clip, drawn from (seed, index)."""
    if tc.window_prob <= 0:
        return video, None
    g = torch.Generator().manual_seed(_sample_seed(tc.seed, step, 3))
    if not bool(torch.rand((), generator=g) < tc.window_prob):
        return video, None
    n, tp = tc.window_frames, cfg.temporal_patch
    if n % tp or not 0 < n < cfg.frames:
        raise BadInputError(f"window_frames {n} must be a multiple of {tp} below {cfg.frames}")
    starts = [int(torch.randint(0, (cfg.frames - n) // tp + 1, (1,),
                                generator=torch.Generator().manual_seed(_sample_seed(tc.seed, i, 2)))) * tp
              for i in idx]
    return torch.stack([v[s:s + n] for v, s in zip(video, starts)]), torch.tensor(starts)


@dataclass
class StepInputs:
    """One training step's inputs on one rank, on the CPU: a pure function of (seed, step, rank),
    so a worker process can make them ahead of the step (`generators.prefetch.Prefetcher`)."""

    x0: torch.Tensor  # [b, T or window, C, H, W] clips in model space
    tokens: torch.Tensor  # [b, L] prompt token ids
    t: torch.Tensor  # [b] timesteps
    noise: torch.Tensor  # like x0
    drop: torch.Tensor  # [b] bool: prompt replaced by the null condition
    offset: torch.Tensor | None  # [b] first frame of each window; None for whole clips


def step_inputs(tc: TrainConfig, cfg: UViTConfig, source: ClipSource, num_timesteps: int, step: int,
                rank: int = 0, world: int = 1) -> StepInputs:
    video, prompts, idx = batch_for_step(source, tc, step, rank, world)
    video, offset = frame_windows(tc, cfg, step, video, idx)  # [b, T or window, C, H, W]
    t, noise, drop = per_sample_randomness(tc, idx, num_timesteps, video.shape[1:], cfg.cond_drop_prob)
    return StepInputs(to_model_space(video), tokenize(prompts, cfg.text_len), t, noise, drop, offset)


OBJECT_SPREAD = 0.5  # RGB max - min in model space ([-1, 1]); 0.25 in [0, 1], as binding.SATURATED


def object_weights(x0: torch.Tensor, weight: float) -> torch.Tensor:
    """[b, T, 1, H, W] loss weights for clips x0 [b, T, C, H, W] in model space: `weight` on
    saturated pixels and their 8 neighbours (an object's anti-aliased rim), 1 elsewhere."""
    b, t, _, h, w = x0.shape
    spread = x0.amax(2) - x0.amin(2)  # [b, T, H, W]
    mask = (spread > OBJECT_SPREAD).float().reshape(b * t, 1, h, w)
    mask = torch.nn.functional.max_pool2d(mask, 3, stride=1, padding=1).reshape(b, t, 1, h, w)
    return 1.0 + (weight - 1.0) * mask
