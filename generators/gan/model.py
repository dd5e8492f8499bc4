"""A conditional video GAN: (noise, prompt) -> clip by a generator of 3-D transposed convolutions,
and a spectral-normalised 3-D convolutional discriminator with projection conditioning on the
prompt (Miyato & Koyama 2018).

A third family next to the U-ViT diffusion model and the convolutional VAE, on purpose: it is
trained adversarially only (no reconstruction or denoising loss), so its clips carry the GAN
family's own traces (the transposed convolutions' checkerboard, texture the discriminator does
not punish, sharp but imperfect shapes) and detectors can be tested leave-one-generator-family-out.

Tensors: clips are float32 [B, T, C, H, W] in [0, 1] at the boundary (the library's layout);
inside, Conv3d wants [B, C, T, H, W] in [-1, 1] (the generator ends in tanh).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from generators.vae.model import FiLM, PromptEncoder  # reads only text_len, text_buckets, text_width

from .configs import GANConfig


class VideoGenerator(nn.Module):
    """(z [B, z_dim], tokens [B, L]) -> clip [B, C, T, H, W] in [-1, 1].

    The prompt embedding joins the noise at the stem and steers every stage by FiLM on top of an
    affine-free BatchNorm (conditional batch norm, as in DCGAN/BigGAN generators). BatchNorm rather
    than the VAE's per-sample GroupNorm: a first recipe with GroupNorm (and Adam betas (0, 0.99))
    gave one identical clip for every noise and prompt after 500 steps; this one did not.
    Generation runs in eval mode on fixed "standing" statistics (see `standing_stats`), so a
    generated clip never depends on what else is in its batch."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.prompt = PromptEncoder(cfg)
        cond = cfg.z_dim + cfg.text_width
        t, h, w = cfg.bottom_grid
        self.stem = nn.Linear(cond, cfg.g_widths[0] * t * h * w)  # -> [B, g0, T', H', W']
        self.stem_norm = nn.BatchNorm3d(cfg.g_widths[0], affine=False)  # FiLM is the affine
        self.stem_film = FiLM(cond, cfg.g_widths[0])
        # g0 -> g1 -> ... -> g[-1] -> g[-1] // 2: len(g_widths) stages, each doubling T, H, W
        chans = (*cfg.g_widths, max(1, cfg.g_widths[-1] // 2))
        self.ups = nn.ModuleList(nn.ConvTranspose3d(cin, cout, 4, stride=2, padding=1)
                                 for cin, cout in zip(chans[:-1], chans[1:]))
        self.norms = nn.ModuleList(nn.BatchNorm3d(c, affine=False) for c in chans[1:])
        self.films = nn.ModuleList(FiLM(cond, c) for c in chans[1:])
        self.to_rgb = nn.Conv3d(chans[-1], cfg.channels, (1, 3, 3), padding=(0, 1, 1))  # per frame

    def forward(self, z: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([z, self.prompt(tokens)], dim=1)  # [B, Z + W]
        t, h, w = self.cfg.bottom_grid
        x = self.stem(cond).view(z.shape[0], self.cfg.g_widths[0], t, h, w)  # [B, g0, T', H', W']
        x = F.relu(self.stem_film(self.stem_norm(x), cond))
        for up, norm, film in zip(self.ups, self.norms, self.films):
            x = F.relu(film(norm(up(x)), cond))  # doubles T, H, W
        return torch.tanh(self.to_rgb(x))  # [B, C, T, H, W] in [-1, 1]


class VideoDiscriminator(nn.Module):
    """(clip [B, C, T, H, W] in [-1, 1], tokens [B, L]) -> realness logit [B].

    Stride-2 spectral-normalised 3-D convolutions (each halves T, H, W) with leaky ReLU, a sum
    over the remaining space-time, then projection conditioning:
    logit = psi(h) + <h, V e(prompt)>, with the discriminator's own prompt encoder e."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.prompt = PromptEncoder(cfg)
        chans = (cfg.channels, *cfg.d_widths)
        self.stages = nn.ModuleList(spectral_norm(nn.Conv3d(cin, cout, 4, stride=2, padding=1))
                                    for cin, cout in zip(chans[:-1], chans[1:]))
        self.mix = spectral_norm(nn.Conv3d(chans[-1], chans[-1], 3, padding=1))  # same grid
        self.out = spectral_norm(nn.Linear(chans[-1], 1))
        self.embed = spectral_norm(nn.Linear(cfg.text_width, chans[-1], bias=False))

    def forward(self, x: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = F.leaky_relu(stage(x), 0.2)  # halves T, H, W
        h = F.leaky_relu(self.mix(x), 0.2).sum(dim=(2, 3, 4))  # [B, d[-1]]
        e = self.embed(self.prompt(tokens))  # [B, d[-1]]
        return self.out(h).squeeze(1) + (h * e).sum(1)  # [B]


def init_weights(module: nn.Module) -> None:
    """DCGAN-style N(0, 0.02) for every convolution and linear layer, zero biases, identity FiLM,
    small token embeddings. Spectral norm rescales the discriminator's weights anyway."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d, nn.Linear)):
                w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
                nn.init.normal_(w, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, PromptEncoder):
                nn.init.normal_(m.token_embed.weight, std=0.02)
                nn.init.normal_(m.pos_embed, std=0.01)
        for m in module.modules():
            if isinstance(m, FiLM):  # every stage starts unconditioned (see FiLM)
                nn.init.zeros_(m.proj.weight)
                nn.init.zeros_(m.proj.bias)
        if isinstance(module, VideoGenerator):  # He init for the ReLU trunk of the generator
            for m in (module.stem, *module.ups):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")


class ConditionalVideoGAN(nn.Module):
    """Generator, its exponential moving average (what generation uses) and the discriminator.
    `sample` draws one clip per (prompt, seed) from the EMA generator."""

    def __init__(self, cfg: GANConfig):
        super().__init__()
        self.cfg = cfg
        self.g = VideoGenerator(cfg)
        self.d = VideoDiscriminator(cfg)
        init_weights(self.g)
        init_weights(self.d)
        self.g_ema = VideoGenerator(cfg).requires_grad_(False)
        self.g_ema.load_state_dict(self.g.state_dict())

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return self.g.prompt.tokenize(prompts)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        for pe, p in zip(self.g_ema.parameters(), self.g.parameters()):
            pe.lerp_(p, 1 - decay)
        for be, b in zip(self.g_ema.buffers(), self.g.buffers()):
            be.copy_(b)

    @torch.no_grad()
    def sample(self, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """One clip per (prompt, seed): z ~ N(0, I) from the seed alone, one clip at a time in eval
        mode so that a clip never depends on what else shares its batch. -> [B, T, C, H, W] in [0, 1]."""
        return sample_clips(self.g_ema, prompts, seeds)


@torch.no_grad()
def standing_stats(g: VideoGenerator, z_batches: Sequence[torch.Tensor],
                   token_batches: Sequence[torch.Tensor]) -> None:
    """Replace the BatchNorm running statistics of `g` by their exact average over the given batches
    ("standing statistics", as BigGAN samples): the EMA weights never ran in training mode, so
    the statistics copied from the live generator do not quite fit them. Leaves `g` in eval mode."""
    norms = [m for m in g.modules() if isinstance(m, nn.BatchNorm3d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    g.train()
    for z, tokens in zip(z_batches, token_batches):
        g(z, tokens)
    for m in norms:
        m.momentum = 0.1
    g.eval()


@torch.no_grad()
def sample_clips(g: VideoGenerator, prompts: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
    device = g.prompt.pos_embed.device
    was_training = g.training
    g.eval()
    out = []
    for prompt, seed in zip(prompts, seeds):
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(1, g.cfg.z_dim, generator=gen).to(device)
        x = g(z, g.prompt.tokenize([prompt]))  # [1, C, T, H, W] in [-1, 1]
        out.append(((x + 1) / 2).clamp(0, 1).permute(0, 2, 1, 3, 4))  # [1, T, C, H, W] in [0, 1]
    g.train(was_training)
    return torch.cat(out)


def to_gan_space(video: torch.Tensor) -> torch.Tensor:
    """[B, T, C, H, W] in [0, 1] -> [B, C, T, H, W] in [-1, 1]."""
    return video.permute(0, 2, 1, 3, 4) * 2 - 1


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


__all__ = ["ConditionalVideoGAN", "VideoDiscriminator", "VideoGenerator", "d_hinge_loss", "g_hinge_loss",
           "sample_clips", "standing_stats", "to_gan_space"]
