"""Training the conditional video GAN on the world: hinge loss, one discriminator step per
generator step, Adam(0.5, 0.999) as in DCGAN, an EMA of the generator's weights (which is what
ships and generates, with BatchNorm "standing statistics" recomputed for it), checkpoints every N
steps that resume exactly, one MLflow run.

Exact resume comes from one rule (as the VAE's and the U-ViT's): every random draw of a training
sample (its clip and the generator noise of the discriminator's and of the generator's step) is a
pure function of (seed, global sample index), and global sample index = step * batch_size + j. A
resumed run redraws what the uninterrupted run would have; the checkpoint holds the generator,
its EMA, the discriminator (with its spectral-norm power-iteration vectors), both optimisers'
moments and the step.

    python -m generators.gan.train --preset gan-small --seed 0 --max-steps 1500 --out runs/gan-small.pt
    (or: evalkit generator train --preset gan-small ...)

The end of a run also writes the float16 EMA generator next to the checkpoint
(`runs/gan-small.safetensors`), which is what `gan:PATH` and the shipped `gan:small` load.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from evalkit.errors import BadInputError, MissingResourceError
from generators.checkpoints import log_probe_samples, torch_save_atomic
from generators.training import (
    ClipSource,
    FamilyTrainer,
    checkpoint_payload,
    read_checkpoint,
    seeded_normal,
    write_export,
)

from .configs import GANConfig, get_config
from .model import ConditionalVideoGAN, d_hinge_loss, g_hinge_loss, standing_stats, to_gan_space

CHECKPOINT_FORMAT = "evalkit-gan-train-v1"
EXPORT_FORMAT = "evalkit-gan-v1"


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "gan-small"
    batch_size: int = 16
    max_steps: int = 1500
    max_minutes: float | None = None  # a wall-clock cap; the documented runs stop on max_steps
    lr: float = 2e-4  # the generator's
    d_lr: float = 2e-4  # the discriminator's
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.995  # of the generator's weights, with a warm-up (see ema_decay_at)
    seed: int = 0
    data: str = "world"  # the world's train split rendered on the fly, or a folder of clips
    checkpoint_every_steps: int = 200
    log_every_steps: int = 25
    device: str = "cpu"
    init_from: str | None = None  # a .pt training checkpoint (G, EMA and D) to start from

    def model_config(self) -> GANConfig:
        return get_config(self.preset)


def ema_decay_at(tc: TrainConfig, step: int) -> float:
    """EMA warm-up: early weights are forgotten fast, so the average is not stuck at init."""
    return min(tc.ema_decay, (1 + step) / (10 + step))


@dataclass
class TrainState:
    net: ConditionalVideoGAN
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0
    clips_seen: int = 0
    seconds: float = 0.0  # training wall time over all resumes
    cpu_seconds: float = 0.0


def build_state(tc: TrainConfig, device: torch.device) -> TrainState:
    torch.manual_seed(tc.seed)  # the initial weights and spectral-norm vectors
    net = ConditionalVideoGAN(tc.model_config()).to(device)
    if tc.init_from:
        start = load_checkpoint(Path(tc.init_from), device)[0]
        net.load_state_dict(start.net.state_dict())
    opt_g = torch.optim.Adam(net.g.parameters(), lr=tc.lr, betas=tc.betas)
    opt_d = torch.optim.Adam(net.d.parameters(), lr=tc.d_lr, betas=tc.betas)
    return TrainState(net=net, opt_g=opt_g, opt_d=opt_d)


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(state: TrainState, tc: TrainConfig, path) -> Path:
    """Everything to resume exactly; tensors and plain data only (loads with weights_only=True)."""
    return torch_save_atomic(checkpoint_payload(CHECKPOINT_FORMAT, state, tc, model=state.net.state_dict(),
                                                opt_g=state.opt_g.state_dict(), opt_d=state.opt_d.state_dict()),
                             path)


def _restore(state: TrainState, payload: dict) -> None:
    state.net.load_state_dict(payload["model"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_d.load_state_dict(payload["opt_d"])


def load_checkpoint(path, device: torch.device = torch.device("cpu")) -> tuple[TrainState, TrainConfig]:
    return read_checkpoint(path, CHECKPOINT_FORMAT, "GAN", TrainConfig, build_state, _restore, device)


def settle_ema(net: ConditionalVideoGAN, tc: TrainConfig, batches: int = 8, batch_size: int = 16) -> None:
    """Standing BatchNorm statistics for the EMA generator (see model.standing_stats), from the
    prompts of the first batches * batch_size training samples and noise seeded by (seed, index):
    deterministic, so an export and a `.pt` checkpoint loaded later generate the same clips."""
    source = ClipSource(tc.data, net.cfg, tc.seed)
    device = next(net.g_ema.parameters()).device
    zs, toks = [], []
    for b in range(batches):
        idx = range(b * batch_size, (b + 1) * batch_size)
        toks.append(net.tokenize([source.get(i)[1] for i in idx]))
        zs.append(seeded_normal(tc.seed, idx, 3, net.cfg.z_dim).to(device))
    standing_stats(net.g_ema, zs, toks)


def export_weights(state: TrainState, tc: TrainConfig, out, dtype: torch.dtype = torch.float16) -> Path:
    """The EMA generator's weights, after `settle_ema`, as safetensors with the model config and
    recipe in the metadata (reproducible to the byte: `generators.training.write_export`). The
    discriminator is not needed to generate and stays in the .pt checkpoint."""
    settle_ema(state.net, tc)
    return write_export(state.net.g_ema.state_dict(), EXPORT_FORMAT, state.net.cfg, tc, state, out, dtype)


# ---------------------------------------------------------------------------------- one step
def batch_for_step(source: ClipSource, tc: TrainConfig, z_dim: int, step: int):
    """(videos [B, T, C, H, W] in [0, 1], prompts, z_d [B, Z], z_g [B, Z]) of `step`, from global
    sample indices: z_d feeds the discriminator's step, z_g the generator's."""
    idx = [step * tc.batch_size + j for j in range(tc.batch_size)]
    items = [source.get(i) for i in idx]
    z = [seeded_normal(tc.seed, idx, s, z_dim) for s in (1, 2)]
    return torch.stack([v for v, _ in items]), [p for _, p in items], z[0], z[1]


def train_step(state: TrainState, tc: TrainConfig, source: ClipSource, device: torch.device) -> dict:
    net = state.net
    video, prompts, z_d, z_g = batch_for_step(source, tc, net.cfg.z_dim, state.step)
    real, tokens = to_gan_space(video.to(device)), net.tokenize(prompts)  # [B, C, T, H, W] in [-1, 1]
    z_d, z_g = z_d.to(device), z_g.to(device)
    # discriminator: real clips with their captions vs generated clips for the same captions
    with torch.no_grad():
        fake = net.g(z_d, tokens)
    real_logits, fake_logits = net.d(real, tokens), net.d(fake, tokens)
    loss_d = d_hinge_loss(real_logits, fake_logits)
    state.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    state.opt_d.step()
    # generator: fool the (just updated) discriminator; D's gradients are dropped, not stepped
    net.d.requires_grad_(False)
    loss_g = g_hinge_loss(net.d(net.g(z_g, tokens), tokens))
    state.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    state.opt_g.step()
    net.d.requires_grad_(True)
    net.update_ema(ema_decay_at(tc, state.step))
    state.step += 1
    state.clips_seen += tc.batch_size
    return {"loss_d": float(loss_d.detach()), "loss_g": float(loss_g.detach()),
            "d_real": float(real_logits.detach().mean()), "d_fake": float(fake_logits.detach().mean())}


# ---------------------------------------------------------------------------------- the loop
def _log_samples(state: TrainState, weights: Path) -> None:
    """A sample grid of the final EMA generator and its weights' SHA-256."""
    log_probe_samples(lambda p, s: state.net.sample(p, seeds=s), state.step, weights)


TRAINER = FamilyTrainer(
    family="gan", build_state=build_state, load_checkpoint=load_checkpoint, save_checkpoint=save_checkpoint,
    train_step=train_step, export_weights=export_weights, log_samples=_log_samples,
    schedules=lambda tc, step: {"ema_decay": ema_decay_at(tc, step)},
    run_params=lambda state: {"params_g": sum(p.numel() for p in state.net.g.parameters()),
                              "params_d": sum(p.numel() for p in state.net.d.parameters())},
    postfix=("loss_d", "loss_g"))


def train(tc: TrainConfig, out, *, resume: bool = True, progress: bool = True,
          log_mlflow: bool = True) -> TrainState:
    """`FamilyTrainer.train` for the GAN: to max_steps, checkpoints to `out` (.pt), then the
    float16 EMA generator next to it (.safetensors)."""
    return TRAINER.train(tc, out, resume=resume, progress=progress, log_mlflow=log_mlflow)


def train_from_cli(preset: str, data: str, out, max_minutes, max_steps: int, batch_size: int, lr: float,
                   seed: int, compile_: bool, device: str, init_from) -> str:
    """`evalkit generator train --preset gan-...`: the shared flags mapped onto this family's
    TrainConfig (--lr sets both networks' learning rates); returns the line the CLI prints."""
    get_config(preset)  # an unknown preset fails here, before anything is written
    tc = TrainConfig(preset=preset, data=data, batch_size=batch_size, max_steps=max_steps,
                     max_minutes=max_minutes, lr=lr, d_lr=lr, seed=seed, device=device,
                     init_from=str(init_from) if init_from else None)
    return TRAINER.train_from_cli(tc, out, compile_)


def main(argv=None) -> None:
    """`python -m generators.gan.train`: the same run as `evalkit generator train --preset gan-...`,
    with the GAN's own flags (both learning rates, EMA decay)."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m generators.gan.train", description=main.__doc__)
    d = TrainConfig()
    p.add_argument("--preset", default=d.preset)
    p.add_argument("--data", default=d.data)
    p.add_argument("--out", required=True, help="the resumable .pt checkpoint (weights go next to it)")
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--max-minutes", type=float)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--d-lr", type=float, default=d.d_lr)
    p.add_argument("--ema-decay", type=float, default=d.ema_decay)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--no-mlflow", action="store_true")
    a = p.parse_args(argv)
    try:
        get_config(a.preset)
        if a.batch_size < 1 or a.max_steps < 1 or a.lr <= 0 or a.d_lr <= 0 or not 0 <= a.ema_decay < 1:
            raise BadInputError("--batch-size and --max-steps must be positive, learning rates > 0, "
                                "--ema-decay in [0, 1)")
        tc = TrainConfig(preset=a.preset, data=a.data, batch_size=a.batch_size, max_steps=a.max_steps,
                         max_minutes=a.max_minutes, lr=a.lr, d_lr=a.d_lr, ema_decay=a.ema_decay, seed=a.seed,
                         device=a.device)
        state = train(tc, a.out, log_mlflow=not a.no_mlflow)
    except (BadInputError, MissingResourceError) as e:
        raise SystemExit(f"error: {e}")
    print(f"trained {a.preset} to step {state.step} ({state.clips_seen} clips, {state.seconds / 60:.1f} min, "
          f"{state.cpu_seconds / 60:.1f} CPU-min); checkpoint {a.out}, "
          f"weights {Path(a.out).with_suffix('.safetensors')}")


if __name__ == "__main__":
    main()
