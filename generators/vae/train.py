"""Training the conditional video VAE on the world: AdamW, warm-up then cosine decay, KL warm-up
to `kl_weight`, gradient clipping, checkpoints every N steps that resume exactly, one MLflow run.

Exact resume comes from one rule (as the U-ViT's): every random draw of a training sample (its
clip and its reparameterisation noise) is a pure function of (seed, global sample index), and
global sample index = step * batch_size + j. A resumed run redraws what the uninterrupted run
would have, and the checkpoint holds weights, optimiser moments and the step.

    evalkit generator train --preset vae-small --seed 0 --max-steps 1000 --out runs/vae-small.pt

The end of a run also writes the float16 weights next to the checkpoint (`runs/vae-small.safetensors`),
which is what `vae:PATH` and the shipped `vae:small` load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from generators.checkpoints import log_probe_samples, torch_save_atomic
from generators.training import (
    ClipSource,
    FamilyTrainer,
    adamw_no_decay_on_embeddings,
    checkpoint_payload,
    read_checkpoint,
    seeded_normal,
    write_export,
)

from .configs import VAEConfig, get_config
from .model import ConditionalVideoVAE, vae_loss

CHECKPOINT_FORMAT = "evalkit-vae-train-v1"
EXPORT_FORMAT = "evalkit-vae-v1"


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "vae-small"
    batch_size: int = 32
    max_steps: int = 1000
    max_minutes: float | None = None  # a wall-clock cap; the documented runs stop on max_steps
    lr: float = 2e-3
    warmup_steps: int = 50
    lr_min: float = 2e-4  # cosine decay from lr to this at max_steps
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    kl_weight: float = 0.5  # beta per pixel (see model.vae_loss): a Gaussian likelihood of std 0.5
    kl_warmup_steps: int = 100  # beta ramps linearly from 0, so the decoder learns to use z first
    seed: int = 0
    data: str = "world"  # the world's train split rendered on the fly, or a folder of clips
    checkpoint_every_steps: int = 200
    log_every_steps: int = 25
    device: str = "cpu"
    init_from: str | None = None  # weights (.safetensors export or .pt checkpoint) to start from

    def model_config(self) -> VAEConfig:
        return get_config(self.preset)


def lr_at(tc: TrainConfig, step: int) -> float:
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps))
    return tc.lr_min + 0.5 * (tc.lr - tc.lr_min) * (1 + math.cos(math.pi * progress))


def kl_weight_at(tc: TrainConfig, step: int) -> float:
    return tc.kl_weight * min(1.0, (step + 1) / max(1, tc.kl_warmup_steps))


@dataclass
class TrainState:
    net: ConditionalVideoVAE
    opt: torch.optim.Optimizer
    step: int = 0
    clips_seen: int = 0
    seconds: float = 0.0  # training wall time over all resumes
    cpu_seconds: float = 0.0


def build_state(tc: TrainConfig, device: torch.device) -> TrainState:
    torch.manual_seed(tc.seed)  # the initial weights
    net = ConditionalVideoVAE(tc.model_config()).to(device)
    if tc.init_from:
        from .generate import load_network

        net.load_state_dict(load_network(Path(tc.init_from)).state_dict())
    return TrainState(net=net, opt=adamw_no_decay_on_embeddings(net, tc.lr, tc.betas, tc.weight_decay))


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(state: TrainState, tc: TrainConfig, path) -> Path:
    """Everything to resume exactly; tensors and plain data only (loads with weights_only=True)."""
    return torch_save_atomic(checkpoint_payload(CHECKPOINT_FORMAT, state, tc, model=state.net.state_dict(),
                                                opt=state.opt.state_dict()), path)


def _restore(state: TrainState, payload: dict) -> None:
    state.net.load_state_dict(payload["model"])
    state.opt.load_state_dict(payload["opt"])


def load_checkpoint(path, device: torch.device = torch.device("cpu")) -> tuple[TrainState, TrainConfig]:
    return read_checkpoint(path, CHECKPOINT_FORMAT, "VAE", TrainConfig, build_state, _restore, device)


def export_weights(state: TrainState, tc: TrainConfig, out, dtype: torch.dtype = torch.float16) -> Path:
    """The weights as safetensors with the model config and recipe in the metadata (reproducible
    to the byte: `generators.training.write_export`)."""
    return write_export(state.net.state_dict(), EXPORT_FORMAT, state.net.cfg, tc, state, out, dtype)


# ---------------------------------------------------------------------------------- one step
def batch_for_step(source: ClipSource, tc: TrainConfig, latent_dim: int, step: int):
    """(videos [B, T, C, H, W] in [0, 1], prompts, eps [B, Z]) of `step`, from global sample indices."""
    idx = [step * tc.batch_size + j for j in range(tc.batch_size)]
    items = [source.get(i) for i in idx]
    eps = seeded_normal(tc.seed, idx, 1, latent_dim)
    return torch.stack([v for v, _ in items]), [p for _, p in items], eps


def train_step(state: TrainState, tc: TrainConfig, source: ClipSource, device: torch.device) -> dict:
    net = state.net
    video, prompts, eps = batch_for_step(source, tc, net.cfg.latent_dim, state.step)
    video, eps, tokens = video.to(device), eps.to(device), net.tokenize(prompts)
    for group in state.opt.param_groups:
        group["lr"] = lr_at(tc, state.step)
    logits, mu, logvar = net(video, tokens, eps)
    loss, recon, kl = vae_loss(logits, video, mu, logvar, kl_weight_at(tc, state.step))
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(net.parameters(), tc.grad_clip)
    state.opt.step()
    state.step += 1
    state.clips_seen += tc.batch_size
    return {"loss": float(loss.detach()), "recon_mse": float(recon.detach()), "kl": float(kl.detach())}


# ---------------------------------------------------------------------------------- the loop
def _log_samples(state: TrainState, weights: Path) -> None:
    """A prior-sample grid of the final weights and their SHA-256."""
    def sample(prompts, seeds):
        videos = state.net.eval().sample(prompts, seeds=seeds)
        state.net.train()
        return videos

    log_probe_samples(sample, state.step, weights)


TRAINER = FamilyTrainer(
    family="vae", build_state=build_state, load_checkpoint=load_checkpoint, save_checkpoint=save_checkpoint,
    train_step=train_step, export_weights=export_weights, log_samples=_log_samples,
    schedules=lambda tc, step: {"lr": lr_at(tc, step), "kl_weight": kl_weight_at(tc, step)},
    run_params=lambda state: {"params": sum(p.numel() for p in state.net.parameters())},
    postfix=("loss", "kl"))


def train(tc: TrainConfig, out, *, resume: bool = True, progress: bool = True, log_mlflow: bool = True) -> TrainState:
    """`FamilyTrainer.train` for the VAE: to max_steps, checkpoints to `out` (.pt), then the
    float16 weights next to it (.safetensors)."""
    return TRAINER.train(tc, out, resume=resume, progress=progress, log_mlflow=log_mlflow)


def train_from_cli(preset: str, data: str, out, max_minutes, max_steps: int, batch_size: int, lr: float,
                   seed: int, compile_: bool, device: str, init_from) -> str:
    """`evalkit generator train --preset vae-...`: the shared flags mapped onto this family's
    TrainConfig; returns the line the CLI prints."""
    get_config(preset)  # an unknown preset fails here, before anything is written
    tc = TrainConfig(preset=preset, data=data, batch_size=batch_size, max_steps=max_steps,
                     max_minutes=max_minutes, lr=lr, seed=seed, device=device,
                     init_from=str(init_from) if init_from else None)
    return TRAINER.train_from_cli(tc, out, compile_)
