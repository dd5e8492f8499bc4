"""The text-to-video network: the generator's text encoder and the U-ViT, one module, one state dict.

This is what a training loop optimises and what a checkpoint holds:
    net = TextToVideoUViT(cfg); diffusion = GaussianDiffusion.from_config(cfg)
    tokens = net.tokenize(prompts)                                    # [B, L] long
    loss = diffusion.training_loss(lambda x_t, t: net(x_t, t, tokens), to_model_space(video01), t)
`forward` applies condition dropout (cfg.cond_drop_prob) in training mode; `sample` runs a named
sampler with classifier-free guidance and returns videos in the library's [0, 1] layout.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .configs import UViTConfig
from .diffusion import GaussianDiffusion, from_model_space
from .model import UViT
from .samplers import DEFAULT_SPACING, DEFAULT_STEPS, cfg_eps_fn, get_sampler, guidance_timesteps
from .text import TextEncoder, tokenize


class TextToVideoUViT(nn.Module):
    def __init__(self, cfg: UViTConfig):
        super().__init__()
        self.cfg = cfg
        self.text = TextEncoder(cfg)
        self.uvit = UViT(cfg)

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return tokenize(prompts, self.cfg.text_len).to(self.uvit.pos_extra.device)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        tokens: torch.Tensor,
        drop: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        frame_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x [B, T, C, H, W] noisy (model space), t [B], tokens [B, L] -> output [B, T, C, H, W].
        `frame_offset` [B]: x holds frame windows of longer clips (UViT.forward).

        In training mode, with `drop` None, each prompt is replaced by the null context with
        probability cfg.cond_drop_prob (drawn from `generator` if given)."""
        if drop is None and self.training and self.cfg.cond_drop_prob > 0:
            gdev = generator.device if generator is not None else x.device
            drop = (torch.rand(x.shape[0], generator=generator, device=gdev) < self.cfg.cond_drop_prob).to(
                x.device
            )
        return self.uvit(x, t, *self.text(tokens, drop), frame_offset=frame_offset)

    def denoise(
        self, x: torch.Tensor, t: torch.Tensor, cond: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        """The U-ViT on an encoded condition cond = (text_emb [B, L, Dt], text_mask [B, L])."""
        return self.uvit(x, t, *cond)

    @torch.no_grad()
    def sample(
        self,
        prompts: str | Sequence[str] | torch.Tensor,
        *,
        sampler: str = "dpmpp-2m",
        steps: int | None = None,
        guidance: float = 3.0,
        guidance_rescale: float = 0.0,
        guidance_interval: tuple[float, float] | None = None,
        seed: int | Sequence[int] = 0,
        spacing: str | None = None,
        diffusion: GaussianDiffusion | None = None,
        clip_x0: float | None = 1.0,
        callback=None,
        **sampler_kw,
    ) -> torch.Tensor:
        """Videos [B, T, C, H, W] float32 in [0, 1] for prompts (strings or tokens [B, L]).

        `guidance` is in the standard convention (see samplers.GUIDANCE_CONVENTION), rescaled by
        `guidance_rescale` (samplers.cfg_eps_fn; 0: none), and applied only where t / T lies in
        `guidance_interval` = (lo, hi) when given (0: clean, 1: pure noise). `seed` is one
        int for the batch (row i gets seed + i) or one per prompt; each row draws its noise from
        its own CPU generator, so a clip depends on its seed only, on any device and in any batch."""
        device = self.uvit.pos_extra.device
        tokens = prompts.to(device) if isinstance(prompts, torch.Tensor) else self.tokenize(prompts)
        B, cfg = tokens.shape[0], self.cfg
        seeds = [seed + i for i in range(B)] if isinstance(seed, int) else list(seed)
        gens = [torch.Generator("cpu").manual_seed(int(s)) for s in seeds]
        diffusion = diffusion or GaussianDiffusion.from_config(cfg)
        fn = get_sampler(sampler)
        was_training = self.training
        self.eval()  # no dropout, no condition dropout while sampling
        try:
            cond = self.text(tokens)
            uncond = self.text.null(B, tokens.shape[1])
            interval = None if guidance_interval is None else guidance_timesteps(guidance_interval, diffusion)
            eps = diffusion.eps_fn(cfg_eps_fn(self.denoise, cond, uncond, guidance, guidance_rescale, interval))
            x = fn(
                diffusion,
                eps,
                (B, cfg.frames, cfg.channels, cfg.image_size, cfg.image_size),
                steps or DEFAULT_STEPS[sampler],
                spacing=spacing or DEFAULT_SPACING[sampler],
                generator=gens,
                device=device,
                clip_x0=clip_x0,
                callback=callback,
                **sampler_kw,
            )
        finally:
            self.train(was_training)
        return from_model_space(x.float())
