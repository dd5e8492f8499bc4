"""The built-in U-ViT text-to-video diffusion generator.

configs.py        UViTConfig, presets (tiny/small/base), parameter and FLOP estimates
model.py          UViT: time, text and space-time patch tokens in one sequence, long skips
text.py           the generator's own text encoder over open_clip's BPE tokenizer
network.py        TextToVideoUViT: text encoder + U-ViT, condition dropout, `sample`
diffusion.py      GaussianDiffusion: schedules, q(x_t | x_0), q(x_t | x_{t-1}), loss
samplers.py       DDPM, DDIM, DPM-Solver++(2M), classifier-free guidance
train_inputs.py   a training step's inputs (clips, noise, tokens), a function of (seed, step) alone
train_logging.py  training's MLflow side: learning curves, run parameters, sample grids

This package must never import evalkit.metrics or any evaluator backbone.
"""

from .configs import PRESETS, UViTConfig, estimate_flops_per_sample, estimate_mfu, get_config, num_params
from .diffusion import GaussianDiffusion, from_model_space, to_model_space
from .model import UViT
from .network import TextToVideoUViT
from .samplers import (
    GUIDANCE_CONVENTION,
    SAMPLERS,
    cfg_eps_fn,
    get_sampler,
    standard_to_uvit_scale,
    uvit_to_standard_scale,
)
from .text import TextEncoder, tokenize

__all__ = [
    "GUIDANCE_CONVENTION",
    "PRESETS",
    "SAMPLERS",
    "GaussianDiffusion",
    "TextEncoder",
    "TextToVideoUViT",
    "UViT",
    "UViTConfig",
    "cfg_eps_fn",
    "estimate_flops_per_sample",
    "estimate_mfu",
    "from_model_space",
    "get_config",
    "get_sampler",
    "num_params",
    "standard_to_uvit_scale",
    "to_model_space",
    "tokenize",
    "uvit_to_standard_scale",
]
