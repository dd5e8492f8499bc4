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

import json
import math
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from evalkit.errors import BadInputError, MissingResourceError
from generators.checkpoints import (canonical_header, log_probe_samples, torch_load_checked,
                                   torch_save_atomic)
from generators.uvit.layers import flush_denormal
from generators.uvit.train import ClipSource, pick_device

from .configs import VAEConfig, get_config
from .model import ConditionalVideoVAE, vae_loss

CHECKPOINT_FORMAT = "evalkit-vae-train-v1"
EXPORT_FORMAT = "evalkit-vae-v1"
EXPERIMENT = "evalkit-generator-train"
# TrainConfig fields that do not change the trained weights: left out of the export's metadata
BOOKKEEPING = ("max_minutes", "checkpoint_every_steps", "log_every_steps", "device")


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


def _sample_seed(seed: int, index: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, index, stream]).generate_state(1)[0])


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
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=tc.betas)
    return TrainState(net=net, opt=opt)


# ---------------------------------------------------------------------------------- checkpoints
def save_checkpoint(state: TrainState, tc: TrainConfig, path) -> Path:
    """Everything to resume exactly; tensors and plain data only (loads with weights_only=True)."""
    payload = {"format": CHECKPOINT_FORMAT, "train_config": json.dumps(asdict(tc)),
               "model_config": json.dumps(state.net.cfg.to_dict()), "model": state.net.state_dict(),
               "opt": state.opt.state_dict(), "step": state.step, "clips_seen": state.clips_seen,
               "seconds": state.seconds, "cpu_seconds": state.cpu_seconds}
    return torch_save_atomic(payload, path)


def load_checkpoint(path, device: torch.device = torch.device("cpu")) -> tuple[TrainState, TrainConfig]:
    path = Path(path)
    payload = torch_load_checked(path, CHECKPOINT_FORMAT, "VAE", device)
    try:
        tc_dict = json.loads(payload["train_config"])
        tc = TrainConfig(**{**tc_dict, "betas": tuple(tc_dict["betas"]), "init_from": None})
        state = build_state(tc, device)
        if json.loads(payload["model_config"]) != state.net.cfg.to_dict():
            raise ValueError("its model config differs from its preset's")
        state.net.load_state_dict(payload["model"])
        state.opt.load_state_dict(payload["opt"])
    except (BadInputError, MissingResourceError):
        raise
    except Exception as e:  # any failure to read a user-given file is bad input, not a bug
        msg = " ".join(str(e).split())[:200]
        raise BadInputError(f"{path}: unreadable or corrupt VAE checkpoint ({msg}); train again or pick another")
    state.step, state.clips_seen = int(payload["step"]), int(payload["clips_seen"])
    state.seconds, state.cpu_seconds = float(payload["seconds"]), float(payload["cpu_seconds"])
    return state, replace(tc, init_from=json.loads(payload["train_config"]).get("init_from"))


def export_weights(state: TrainState, tc: TrainConfig, out, dtype: torch.dtype = torch.float16) -> Path:
    """The weights as safetensors (no pickled code) with the model config in the metadata.
    Only deterministic facts go into the metadata (no timings), so the same command and seed give
    the same file and the same SHA-256."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.net.state_dict().items()}
    recipe = {k: v for k, v in asdict(tc).items() if k not in BOOKKEEPING}
    meta = {"format": EXPORT_FORMAT, "model_config": json.dumps(state.net.cfg.to_dict()),
            "train_config": json.dumps(recipe), "step": str(state.step), "clips_seen": str(state.clips_seen)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        save_file(tensors, str(tmp), metadata=meta)
        canonical_header(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------------------------- one step
def batch_for_step(source: ClipSource, tc: TrainConfig, latent_dim: int, step: int):
    """(videos [B, T, C, H, W] in [0, 1], prompts, eps [B, Z]) of `step`, from global sample indices."""
    idx = [step * tc.batch_size + j for j in range(tc.batch_size)]
    items = [source.get(i) for i in idx]
    eps = torch.stack([torch.randn(latent_dim, generator=torch.Generator().manual_seed(_sample_seed(tc.seed, i, 1)))
                       for i in idx])
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
def train(tc: TrainConfig, out, *, resume: bool = True, progress: bool = True, log_mlflow: bool = True) -> TrainState:
    """Train until max_steps (or max_minutes); checkpoint to `out` every `checkpoint_every_steps`
    and at the end, then export float16 weights to `out` with the suffix .safetensors. With
    `resume` and an existing `out`, continue from it (its config wins, except max_steps,
    max_minutes and device, which come from `tc`)."""
    out = Path(out)
    if out.suffix == ".safetensors":
        raise BadInputError(f"{out}: --out is the resumable training checkpoint; name it .pt "
                            "(the .safetensors weights are written next to it)")
    with flush_denormal():  # subnormal Adam moments make CPU steps several times slower
        return _train(tc, out, resume, progress, log_mlflow)


def _train(tc: TrainConfig, out: Path, resume: bool, progress: bool, log_mlflow: bool) -> TrainState:
    from contextlib import nullcontext

    from tqdm.auto import tqdm

    device = pick_device(tc.device)
    if resume and out.exists():
        state, saved = load_checkpoint(out, device)
        tc = replace(saved, max_steps=tc.max_steps, max_minutes=tc.max_minutes, device=tc.device)
    else:
        state = build_state(tc, device)
    cfg = state.net.cfg
    source = ClipSource(tc.data, cfg, tc.seed)
    if log_mlflow:
        from evalkit import tracking

        params = {"train": asdict(tc), "model": cfg.to_dict(), "family": "vae",
                  "params": sum(p.numel() for p in state.net.parameters()), "resumed_at": state.step}
        run_ctx = tracking.start_run(EXPERIMENT, f"vae-{cfg.name}", params=params, seed=tc.seed)
    else:
        run_ctx = nullcontext()
    with run_ctx as run:
        t_start, cpu_start = time.perf_counter(), time.process_time()
        seconds0, cpu0 = state.seconds, state.cpu_seconds
        bar = tqdm(total=tc.max_steps, initial=state.step, desc=f"train vae:{cfg.name}", unit="step",
                   disable=None if progress else True)
        window: list[dict] = []
        try:
            while state.step < tc.max_steps:
                if tc.max_minutes is not None and time.perf_counter() - t_start > 60 * tc.max_minutes:
                    break
                window.append(train_step(state, tc, source, device))
                state.seconds = seconds0 + time.perf_counter() - t_start
                state.cpu_seconds = cpu0 + time.process_time() - cpu_start
                bar.update(1)
                bar.set_postfix(loss=f"{window[-1]['loss']:.4f}", kl=f"{window[-1]['kl']:.1f}")
                if run is not None and state.step % tc.log_every_steps == 0:
                    import mlflow

                    means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                    mlflow.log_metrics({**means, "lr": lr_at(tc, state.step - 1),
                                        "kl_weight": kl_weight_at(tc, state.step - 1),
                                        "train_minutes": state.seconds / 60,
                                        "cpu_minutes": state.cpu_seconds / 60}, step=state.step)
                    window.clear()
                if state.step % tc.checkpoint_every_steps == 0:
                    save_checkpoint(state, tc, out)
        finally:
            bar.close()
            save_checkpoint(state, tc, out)
        weights = export_weights(state, tc, out.with_suffix(".safetensors"))
        if run is not None:
            _log_samples(state, weights)
    return state


def _log_samples(state: TrainState, weights: Path) -> None:
    """A prior-sample grid of the final weights and their SHA-256."""
    def sample(prompts, seeds):
        videos = state.net.eval().sample(prompts, seeds=seeds)
        state.net.train()
        return videos

    log_probe_samples(sample, state.step, weights)


def train_from_cli(preset: str, data: str, out, max_minutes, max_steps: int, batch_size: int, lr: float,
                   seed: int, compile_: bool, device: str, init_from) -> str:
    """`evalkit generator train --preset vae-...`: the shared flags mapped onto this family's
    TrainConfig; returns the line the CLI prints."""
    from evalkit.home import evalkit_home

    get_config(preset)  # an unknown preset fails here, before anything is written
    if compile_:
        raise BadInputError("--compile applies to the U-ViT presets only, not to " + preset)
    out = Path(out) if out else evalkit_home() / "models" / f"{preset}.pt"
    tc = TrainConfig(preset=preset, data=data, batch_size=batch_size, max_steps=max_steps,
                     max_minutes=max_minutes, lr=lr, seed=seed, device=device,
                     init_from=str(init_from) if init_from else None)
    state = train(tc, out)
    return (f"trained {preset} to step {state.step} ({state.clips_seen} clips, {state.seconds / 60:.1f} min); "
            f"checkpoint {out}, weights {out.with_suffix('.safetensors')} (use vae:{out.with_suffix('.safetensors')})")
