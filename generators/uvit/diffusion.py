"""Gaussian diffusion: the noise schedule and its closed forms. No model lives here.

Indexing: t = 0 .. T-1 with x_{-1} = x_0 the data, so the chain step t is
    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)            (`q_step`)
and its closed form, with alpha_bar_t = prod_{s<=t} (1 - beta_s),
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)          (`q_sample`).
Schedules are computed in float64 and cast to float32 per device on use.

Data live in "model space" [-1, 1]; `to_model_space` / `from_model_space` convert from the
library's [0, 1]. The network predicts eps (default), v = sqrt(ab) eps - sqrt(1 - ab) x_0
(Salimans & Ho) or x_0 itself; `output_to_eps` turns any of them into eps for the samplers, and
because that map is affine in the output with coefficients that depend on t only, classifier-free
guidance gives the same result whether it is applied to the raw output or to eps.

x_0 prediction suits coarse patches: a token's linear decoder has rank `width`, less than its
patch's pixel count, so it cannot output per-pixel noise (eps, or v at low noise), but a smooth
x_0 it can; eps = (x_t - sqrt(ab) x_0) / sqrt(1 - ab) then takes the noise from x_t exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .configs import UViTConfig


def to_model_space(x01: torch.Tensor) -> torch.Tensor:
    return x01 * 2.0 - 1.0


def from_model_space(x: torch.Tensor) -> torch.Tensor:
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def linear_betas(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> torch.Tensor:
    """DDPM's linear schedule; the endpoints are scaled so that any T keeps the same total noise."""
    scale = 1000.0 / timesteps
    return torch.linspace(scale * beta_start, scale * beta_end, timesteps, dtype=torch.float64)


def cosine_betas(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal (2021): alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2), betas clipped."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    betas = [min(1 - f((i + 1) / timesteps) / f(i / timesteps), max_beta) for i in range(timesteps)]
    return torch.tensor(betas, dtype=torch.float64)


class GaussianDiffusion:
    def __init__(
        self, schedule: str = "linear", timesteps: int = 1000, prediction: str = "eps", snr_shift: float = 1.0
    ):
        if schedule == "linear":
            betas = linear_betas(timesteps)
        elif schedule == "cosine":
            betas = cosine_betas(timesteps)
        else:
            raise ValueError(f"unknown schedule {schedule!r}")
        ab = torch.cumprod(1.0 - betas, 0)
        if snr_shift != 1.0:  # SNR(t) / shift^2, then recover betas from the shifted alpha_bar
            ab = ab / (ab + snr_shift**2 * (1.0 - ab))
            betas = 1.0 - ab / torch.cat([ab.new_ones(1), ab[:-1]])
        self.schedule, self.num_timesteps = schedule, timesteps
        self.prediction, self.snr_shift = prediction, snr_shift
        self.betas = betas  # [T] float64
        self.alphas_cumprod = ab
        self.alphas_cumprod_prev = torch.cat([ab.new_ones(1), ab[:-1]])
        self.sqrt_alphas_cumprod = ab.sqrt()
        self.sqrt_one_minus_alphas_cumprod = (1.0 - ab).sqrt()
        # posterior q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, var)
        abp = self.alphas_cumprod_prev
        self.posterior_variance = betas * (1.0 - abp) / (1.0 - ab)
        # var is 0 at t = 0; clip the log as DDPM does (var at t=1 stands in)
        pv = self.posterior_variance
        self.posterior_log_variance_clipped = torch.log(torch.cat([pv[1:2], pv[1:]]))
        self.posterior_mean_coef1 = betas * abp.sqrt() / (1.0 - ab)
        self.posterior_mean_coef2 = (1.0 - abp) * (1.0 - betas).sqrt() / (1.0 - ab)
        self._cache: dict = {}

    @classmethod
    def from_config(cls, cfg: UViTConfig) -> GaussianDiffusion:
        return cls(cfg.schedule, cfg.timesteps, cfg.prediction, cfg.snr_shift)

    def _extract(self, name: str, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Schedule array `name` at timesteps t [B] -> [B, 1, ..., 1] in x's dtype and device."""
        key = (name, x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = getattr(self, name).to(device=x.device, dtype=x.dtype)
        return self._cache[key][t.long()].view(-1, *([1] * (x.dim() - 1)))

    def _alpha_sigma(self, t: torch.Tensor, x: torch.Tensor):
        """(sqrt(ab_t), sqrt(1 - ab_t)) broadcastable against x."""
        return self._extract("sqrt_alphas_cumprod", t, x), self._extract(
            "sqrt_one_minus_alphas_cumprod", t, x
        )

    # ---- forward process ---------------------------------------------------------------------------
    def sample_timesteps(
        self, batch: int, device=None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """t ~ Uniform{0, ..., T-1}, [B] long."""
        gdev = generator.device if generator is not None else device
        return torch.randint(0, self.num_timesteps, (batch,), generator=generator, device=gdev).to(device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) noise."""
        a, s = self._alpha_sigma(t, x0)
        return a * x0 + s * noise

    def q_step(self, x_prev: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """One step of the chain: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise."""
        beta = self._extract("betas", t, x_prev)
        return (1.0 - beta).sqrt() * x_prev + beta.sqrt() * noise

    def q_posterior_mean_variance(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor):
        """q(x_{t-1} | x_t, x_0): (mean, variance, log variance clipped)."""
        c0, ct = self._extract("posterior_mean_coef1", t, x_t), self._extract("posterior_mean_coef2", t, x_t)
        var = self._extract("posterior_variance", t, x_t)
        return c0 * x0 + ct * x_t, var, self._extract("posterior_log_variance_clipped", t, x_t)

    # ---- parameterisations -------------------------------------------------------------------------
    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a, s = self._alpha_sigma(t, x_t)
        return (x_t - s * eps) / a

    def predict_eps(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        a, s = self._alpha_sigma(t, x_t)
        return (x_t - a * x0) / s

    def v_target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        a, s = self._alpha_sigma(t, x0)
        return a * noise - s * x0

    def target(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """What the network regresses: the noise, v or x0, per `prediction`."""
        if self.prediction == "eps":
            return noise
        return x0 if self.prediction == "x0" else self.v_target(x0, t, noise)

    def output_to_eps(self, out: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's output (eps, v or x0) -> eps. For v: eps = sqrt(ab) v + sqrt(1 - ab) x_t;
        for x0: eps = (x_t - sqrt(ab) x0) / sqrt(1 - ab)."""
        if self.prediction == "eps":
            return out
        if self.prediction == "x0":
            return self.predict_eps(x_t, t, out)
        a, s = self._alpha_sigma(t, x_t)
        return a * out + s * x_t

    def eps_fn(self, model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]):
        """Wrap a network `model_fn(x_t, t) -> output` into the samplers' `eps_fn(x_t, t) -> eps`."""
        if self.prediction == "eps":
            return model_fn
        return lambda x_t, t: self.output_to_eps(model_fn(x_t, t), x_t, t)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        ab = self.alphas_cumprod.to(t.device)[t.long()]
        return ab / (1.0 - ab)  # float64

    # ---- training ----------------------------------------------------------------------------------
    def training_loss(
        self,
        model_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x0: torch.Tensor,
        t: torch.Tensor,
        noise: torch.Tensor | None = None,
        min_snr_gamma: float | None = None,
        reduce: bool = True,
        pixel_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """MSE between the target (eps, or v) and the network's output on x_t = q_sample(x0, t, noise).

        `min_snr_gamma` (Hang et al. 2023) weights each sample's loss by min(SNR, gamma)/SNR for eps
        prediction (min(SNR, gamma)/(SNR + 1) for v), which down-weights the easy low-noise steps.
        x0 prediction always weights its x0 MSE by the truncated SNR max(SNR, 1) (Salimans & Ho),
        capped at `min_snr_gamma` when given: uniform where the noise dominates, more where detail
        is decided. `reduce=False` gives the per-sample loss [B]. `pixel_weight` (broadcastable to
        x0, >= 0) makes each sample's MSE a weighted mean over its elements (sum w e^2 / sum w).
        """
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        out = model_fn(x_t, t)
        target = self.target(x0, t, noise)
        err2 = (out.float() - target.float()).pow(2)  # like x0
        if pixel_weight is None:
            per_sample = err2.flatten(1).mean(1)  # [B]
        else:
            w = pixel_weight.float().expand_as(err2).flatten(1)
            per_sample = (err2.flatten(1) * w).sum(1) / w.sum(1).clamp(min=1e-12)
        if self.prediction == "x0":
            w = self.snr(t).clamp(min=1.0, max=min_snr_gamma)
            per_sample = per_sample * w.to(per_sample)
        elif min_snr_gamma is not None:
            snr = self.snr(t)
            w = snr.clamp(max=min_snr_gamma) / (snr if self.prediction == "eps" else snr + 1.0)
            per_sample = per_sample * w.to(per_sample)
        return per_sample.mean() if reduce else per_sample
