"""A conditional convolutional video VAE: prompt -> embedding; (clip, prompt) -> q(z | x, c);
(z, prompt) -> clip. Generation samples z from the prior N(0, I) and decodes it.

A different family from the U-ViT diffusion model on purpose (one decoder pass, 3-D
convolutions, a single global latent), so that detectors can be tested leave-one-generator-out.

Why a single global latent vector rather than a spatial latent map: samples come from the prior,
and a small vector posterior is pushed close to N(0, I) by the KL term, while a spatial map's
aggregate posterior drifts far from a factorised prior and prior samples decode to mush. The
prompt conditions the encoder head and every decoder stage (FiLM), so the latent only has to
carry what the prompt does not say: where the objects start, how fast they move, the texture.

Tensors: clips are float32 [B, T, C, H, W] in [0, 1] at the boundary (the library's layout);
inside, Conv3d wants [B, C, T, H, W] in [-1, 1].
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from generators.uvit.text import padding_mask, tokenize

from .configs import VAEConfig


def _groups(channels: int) -> int:
    """GroupNorm groups: 8 where the width allows, so tiny test widths still normalise."""
    return next(g for g in (8, 4, 2, 1) if channels % g == 0)


class PromptEncoder(nn.Module):
    """tokens [B, L] long -> prompt embedding [B, text_width].

    Hashed token table (id % buckets, so any prompt tokenises and the table stays small) plus a
    learned position, a residual per-token MLP (so "red" in the first object's slot and in the
    second's become different features), then a masked mean over the real tokens."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        W = cfg.text_width
        self.token_embed = nn.Embedding(cfg.text_buckets, W)
        self.pos_embed = nn.Parameter(torch.zeros(cfg.text_len, W))
        self.mlp = nn.Sequential(nn.Linear(W, 2 * W), nn.GELU(), nn.Linear(2 * W, W))
        self.norm = nn.LayerNorm(W)

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return tokenize(prompts, self.cfg.text_len).to(self.pos_embed.device)  # [B, L]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = padding_mask(tokens).unsqueeze(-1).float()  # [B, L, 1], SOT..EOT
        x = self.token_embed(tokens % self.cfg.text_buckets) + self.pos_embed[: tokens.shape[1]]  # [B, L, W]
        x = x + self.mlp(x)
        pooled = (x * mask).sum(1) / mask.sum(1)  # [B, W]
        return self.norm(pooled)


class FiLM(nn.Module):
    """Feature-wise scale and shift from a conditioning vector; zero-initialised, so every stage
    starts as the unconditioned network and learns how much the prompt should steer it."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale, shift = self.proj(cond)[:, :, None, None, None].chunk(2, dim=1)  # each [B, C, 1, 1, 1]
        return h * (1 + scale) + shift


class VideoEncoder(nn.Module):
    """clip [B, C, T, H, W] in [-1, 1], prompt [B, W] -> (mu, logvar) each [B, latent_dim]."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        chans = (cfg.channels, *cfg.widths)
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv3d(cin, cout, 4, stride=2, padding=1), nn.GroupNorm(_groups(cout), cout), nn.SiLU())
            for cin, cout in zip(chans[:-1], chans[1:])
        )  # each halves T, H, W: [B, widths[-1], T', H', W'] at the bottom
        t, h, w = cfg.bottom_grid
        self.head = nn.Linear(cfg.widths[-1] * t * h * w + cfg.text_width, 2 * cfg.latent_dim)

    def forward(self, x: torch.Tensor, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for stage in self.stages:
            x = stage(x)
        mu, logvar = self.head(torch.cat([x.flatten(1), prompt], dim=1)).chunk(2, dim=1)  # [B, Z] each
        return mu, logvar.clamp(-12.0, 6.0)  # keeps exp() finite early in training


class VideoDecoder(nn.Module):
    """(z [B, latent_dim], prompt [B, W]) -> logits [B, C, T, H, W] (sigmoid gives the clip)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        cond = cfg.latent_dim + cfg.text_width
        t, h, w = cfg.bottom_grid
        self.stem = nn.Linear(cond, cfg.widths[-1] * t * h * w)
        # up-stages mirror the encoder: widths[-1] -> ... -> widths[0], each doubling T, H, W
        chans = (*reversed(cfg.widths), cfg.widths[0])
        self.ups = nn.ModuleList(nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1)
                                 for cin, cout in zip(chans[:-1], chans[1:]))
        self.norms = nn.ModuleList(nn.GroupNorm(_groups(c), c) for c in chans[1:])
        self.films = nn.ModuleList(FiLM(cond, c) for c in chans[1:])
        # a per-frame 3x3 to RGB smooths the transposed convolutions' checkerboard at full size
        self.to_rgb = nn.Conv3d(cfg.widths[0], cfg.channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, z: torch.Tensor, prompt: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, prompt], dim=1)  # [B, Z + W]
        t, h, w = self.cfg.bottom_grid
        x = F.silu(self.stem(cond)).view(z.shape[0], self.cfg.widths[-1], t, h, w)  # [B, C', T', H', W']
        for up, norm, film in zip(self.ups, self.norms, self.films):
            x = F.silu(film(norm(up(x)), cond))  # doubles T, H, W
        return self.to_rgb(x)  # [B, C, T, H, W] logits


class ConditionalVideoVAE(nn.Module):
    """The whole model: `forward` for training (reconstruction logits, mu, logvar), `sample` for
    generation from the prior."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        self.cfg = cfg
        self.prompt = PromptEncoder(cfg)
        self.encoder = VideoEncoder(cfg)
        self.decoder = VideoDecoder(cfg)
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He init: SiLU is ReLU-like
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.prompt.token_embed.weight, std=0.02)
        nn.init.normal_(self.prompt.pos_embed, std=0.01)
        for film in self.decoder.films:  # identity FiLM at init (see FiLM)
            nn.init.zeros_(film.proj.weight)
        nn.init.xavier_uniform_(self.decoder.to_rgb.weight, gain=0.1)  # start near mid-grey

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return self.prompt.tokenize(prompts)

    def forward(self, video: torch.Tensor, tokens: torch.Tensor, eps: torch.Tensor):
        """video [B, T, C, H, W] in [0, 1], tokens [B, L], eps [B, Z] standard normal ->
        (logits [B, T, C, H, W], mu [B, Z], logvar [B, Z]). `eps` is passed in so that the
        caller decides the randomness (seeded per training sample)."""
        c = self.prompt(tokens)  # [B, W]
        x = video.permute(0, 2, 1, 3, 4) * 2 - 1  # [B, C, T, H, W] in [-1, 1]
        mu, logvar = self.encoder(x, c)
        z = mu + torch.exp(0.5 * logvar) * eps  # reparameterisation
        logits = self.decoder(z, c).permute(0, 2, 1, 3, 4)  # [B, T, C, H, W]
        return logits, mu, logvar

    @torch.no_grad()
    def decode(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """z [B, Z], tokens [B, L] -> clips [B, T, C, H, W] in [0, 1]."""
        return torch.sigmoid(self.decoder(z, self.prompt(tokens))).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """One clip per (prompt, seed): z ~ N(0, I) from the seed alone, decoded one clip at a time
        so that a clip never depends on what else shares its batch. -> [B, T, C, H, W] in [0, 1]."""
        device = self.prompt.pos_embed.device
        out = []
        for prompt, seed in zip(prompts, seeds):
            g = torch.Generator().manual_seed(int(seed))
            z = torch.randn(1, self.cfg.latent_dim, generator=g).to(device)
            out.append(self.decode(z, self.tokenize([prompt])))
        return torch.cat(out)


def vae_loss(logits: torch.Tensor, video: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, reconstruction, kl) as scalars.

    reconstruction: mean squared error per pixel of sigmoid(logits) against the clip in [0, 1].
    kl: KL(q(z | x, c) || N(0, I)) in nats per clip. The loss weighs the KL per pixel,
    loss = mse + kl_weight * kl / pixels, i.e. a Gaussian likelihood of variance kl_weight / 2,
    which keeps kl_weight comparable across clip sizes."""
    recon = F.mse_loss(torch.sigmoid(logits), video)
    kl = (0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)).sum(1).mean()
    return recon + kl_weight * kl / video[0].numel(), recon, kl


__all__ = ["ConditionalVideoVAE", "PromptEncoder", "VideoDecoder", "VideoEncoder", "vae_loss"]
