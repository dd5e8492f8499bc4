"""Training the built-in U-ViT: AdamW, warm-up, EMA with warm-up, gradient clipping, min-SNR
weighting, offset noise, bf16 autocast on CUDA, optional torch.compile, DDP under torchrun,
checkpoints that resume exactly, MLflow learning curves and sample grids.

Exact resume, and DDP equal to one process of the same global batch, both come from one rule:
every random draw of a training sample (its clip, timestep, noise, condition dropout) is a pure
function of (seed, global sample index), and global sample index = step * batch_size + j. So a
resumed run redraws exactly what the uninterrupted run would have, and ranks split a global
batch without changing it.

    evalkit generator train --preset small --max-minutes 170 --out run.pt
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist

from evalkit.errors import BadInputError
from generators.checkpoints import load_failure, torch_load_checked, torch_save_atomic, weights_target
from generators.prefetch import Prefetcher
from generators.training import ClipSource, deferred_interrupts, pick_device

from .configs import UViTConfig, get_config
from .diffusion import GaussianDiffusion
from .layers import flush_denormal
from .network import TextToVideoUViT
from .train_inputs import (  # noqa: F401 (re-exported)
    OBJECT_SPREAD,
    StepInputs,
    batch_for_step,
    frame_windows,
    object_weights,
    per_sample_randomness,
    step_inputs,
)
from .train_logging import PROBE_PROMPTS, _log_metrics, _log_samples, _start_mlflow  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "small"
    overrides: dict = field(default_factory=dict)  # UViTConfig fields to change
    batch_size: int = 16  # global, over all ranks
    max_steps: int = 100_000  # where the learning-rate schedule ends (and training, unless stop_step)
    max_minutes: float | None = None
    # End here, part-way down a schedule that runs to max_steps: a stage of a recorded lineage that
    # was stopped early (`recipes`) is reproduced by its step count, not by its wall time.
    stop_step: int | None = None
    lr: float = 1e-3
    warmup_steps: int = 500
    lr_decay: str = "cosine"  # "cosine" to lr_min at max_steps | "constant"
    lr_min: float = 1e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    min_snr_gamma: float | None = 5.0
    offset_noise: float = 0.1  # std of a per-clip, per-channel constant added to the noise
    seed: int = 0
    data: str = "world"  # "world" (train split rendered on the fly) or a folder of any videos (clip_windows)
    compile: bool = False
    # "auto": bf16 autocast on CUDA, fp32 on a CPU; "bf16": bf16 autocast on either (on a CPU with
    # AMX or AVX512-BF16, oneDNN runs the matmuls in bf16: measured 1.2-1.6x faster steps for
    # `small` on this project's 2-core machine, README); "fp32": none. Weights and optimiser stay fp32.
    precision: str = "auto"
    checkpoint_every_minutes: float = 5.0
    sample_every_steps: int = 1000
    log_every_steps: int = 25
    device: str = "auto"
    # Joint image-video training (Latte, Vidu): with this probability a step trains on windows of
    # `window_frames` frames, one random window per clip, instead of whole clips. A 2-frame window
    # of `small` is 64 patch tokens against 512, so such a step costs a fraction of a full one and
    # spends the budget on what every frame must get right (a compact object of the prompted
    # colour and size) rather than on the clip's 16 near-copies of it. Measured alone (P = 0.8,
    # README): no better FVD per CPU-minute than whole clips; what held the colours back was the
    # text encoder (text_pretrain.py).
    window_prob: float = 0.0
    window_frames: int = 2
    # Object-weighted loss: pixels of saturated colour (the world's objects: every object colour
    # has an RGB spread >= 0.6, every background 0), grown by one pixel, weigh this many times a
    # background pixel in each clip's MSE. Objects are ~5% of the world's pixels, so the plain MSE
    # spends ~95% of its gradient on backgrounds the model already draws well. 1: off. Measured
    # (README, session 20): FVD far worse and objects duplicated, since a weight that depends on
    # x0 moves the loss's minimiser from E[x0 | x_t] towards object colours. Kept as a recipe
    # choice with its measurement, not as a default.
    object_weight: float = 1.0
    # Warm start: weights (a .safetensors export) to begin from instead of a fresh init, for
    # training in stages across sessions; its SHA-256 is recorded with the run.
    init_from: str | None = None
    # Text encoder from `generator pretrain-text` (text_pretrain.py), loaded after `init_from`;
    # with `freeze_text` it is not trained further (the denoiser learns to read fixed features).
    text_init: str | None = None
    freeze_text: bool = False
    # Processes that make each step's inputs (world clips, noise, tokens) ahead of the step; they
    # change no result (a step's inputs are a pure function of seed and step). None: 0 on a CPU,
    # whose cores the step itself needs; on CUDA enough to keep the GPU fed (one core renders a
    # 64-clip `small` batch in ~0.2 s; an H200 trains on it in ~0.04 s, README).
    data_workers: int | None = None

    def model_config(self) -> UViTConfig:
        return get_config(self.preset, **self.overrides)


def autocast_for(precision: str, device: torch.device):
    """The autocast context of a training step (see TrainConfig.precision)."""
    if precision not in ("auto", "fp32", "bf16"):
        raise BadInputError(f"precision must be auto, fp32 or bf16, got {precision!r}")
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)


def lr_at(tc: TrainConfig, step: int) -> float:
    if step < tc.warmup_steps:
        return tc.lr * (step + 1) / tc.warmup_steps
    if tc.lr_decay == "constant":
        return tc.lr
    progress = min(1.0, (step - tc.warmup_steps) / max(1, tc.max_steps - tc.warmup_steps))
    return tc.lr_min + 0.5 * (tc.lr - tc.lr_min) * (1 + math.cos(math.pi * progress))


def ema_decay_at(tc: TrainConfig, step: int) -> float:
    """EMA warm-up: early weights are forgotten fast, so the average is not stuck at init."""
    return min(tc.ema_decay, (1 + step) / (10 + step))


@dataclass
class TrainState:
    net: TextToVideoUViT
    ema: TextToVideoUViT
    opt: torch.optim.Optimizer
    step: int = 0
    clips_seen: int = 0
    seconds: float = 0.0  # training wall time so far, over all resumes
    cpu_seconds: float = 0.0


def build_state(tc: TrainConfig, device: torch.device) -> TrainState:
    torch.manual_seed(tc.seed)  # the initial weights
    cfg = tc.model_config()
    net = TextToVideoUViT(cfg).to(device)
    ema = TextToVideoUViT(cfg).to(device)
    if tc.init_from:
        from .generate import load_network

        grow_from(net, load_network(Path(tc.init_from), expect_preset=cfg.name), tc.init_from)
    if tc.text_init:
        from .text_pretrain import load_text_weights

        load_text_weights(net.text, tc.text_init)
    if tc.freeze_text:  # the null context stays trainable: pre-training never saw it
        net.text.requires_grad_(False)
        net.text.null_embed.requires_grad_(True)
    ema.load_state_dict(net.state_dict())
    ema.requires_grad_(False).eval()
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or "pos" in name or "embed" in name else decay).append(p)
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tc.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=tc.lr, betas=tc.betas,
                            fused=device.type == "cuda")  # one kernel for all tensors, not ~10 each
    return TrainState(net=net, ema=ema, opt=opt)


# ---------------------------------------------------------------------------------- checkpoints
# Parts a checkpoint may lack and grow into (configs.py: mix_ffn, head_channels); each starts at zero
GROWABLE = ("mlp.local.", "uvit.decoder_feat.", "uvit.head_conv.")


def grow_from(net: TextToVideoUViT, start: TextToVideoUViT, source: str) -> None:
    """Load `start`'s weights into `net`; `net` may add the GROWABLE parts, which keep their init."""
    try:
        missing, unexpected = net.load_state_dict(start.state_dict(), strict=False)
    except RuntimeError as e:  # a shape mismatch: another width, depth or patch size
        missing, unexpected = [" ".join(str(e).split())[:120]], []
    lost = [k for k in missing if not any(g in k for g in GROWABLE)]
    if unexpected or lost:
        raise BadInputError(f"{source}: its weights do not fit this model (missing {lost[:2]}, unexpected "
                            f"{unexpected[:2]}); start from a checkpoint of the same architecture")


class TrainingDiverged(BadInputError):
    """The loss or the weights became NaN or infinite: the settings, not the code, are at fault."""


def save_checkpoint(state: TrainState, tc: TrainConfig, path) -> Path:
    """Everything to resume exactly; tensors and plain data only (loads with weights_only=True).
    Weights that are no longer finite are never written over a good checkpoint."""
    if not all(bool(torch.isfinite(p).all()) for p in state.net.parameters()):
        kept = (f"{path} keeps its last good checkpoint: lower --lr and resume from it" if Path(path).exists()
                else "no checkpoint was written: lower --lr and train again")
        raise TrainingDiverged(f"training diverged by step {state.step} (weights no longer finite); {kept}")
    payload = {
        "format": "evalkit-uvit-train-v1",
        "train_config": json.dumps(asdict(tc)),
        "model_config": json.dumps(state.net.cfg.to_dict()),
        "model": state.net.state_dict(), "ema": state.ema.state_dict(), "opt": state.opt.state_dict(),
        "step": state.step, "clips_seen": state.clips_seen, "seconds": state.seconds,
        "cpu_seconds": state.cpu_seconds,
    }
    return torch_save_atomic(payload, path)


def saved_config(path) -> tuple[TrainConfig, int]:
    """(the TrainConfig, the step) a training checkpoint was saved with, without building its
    network: what a resume will continue."""
    path = Path(path)
    payload = torch_load_checked(path, "evalkit-uvit-train-v1", "U-ViT", torch.device("cpu"))
    try:
        tc_dict = json.loads(payload["train_config"])
        tc_dict["betas"] = tuple(tc_dict["betas"])
        return TrainConfig(**tc_dict), int(payload["step"])
    except Exception as e:  # noqa: BLE001  a user-given file
        raise BadInputError(f"{path}: unreadable or corrupt checkpoint ({load_failure(e, 200)}); train again or "
                            "pick another") from None


def resume_conflicts(saved: TrainConfig, asked: TrainConfig, fields) -> list[str]:
    """The `fields` (TrainConfig names the caller set on purpose) whose asked value differs from the
    run being resumed: a resume continues the checkpoint's run, so these would be dropped."""
    out = []
    for f in fields:
        a, b = getattr(asked, f), getattr(saved, f)
        if f == "overrides":
            a, b = {k: v for k, v in a.items() if v}, {k: v for k, v in b.items() if v}
        if a != b:
            out.append(f"{f} {b!r} (asked: {a!r})")
    return out


def load_checkpoint(path, device: torch.device = torch.device("cpu")) -> tuple[TrainState, TrainConfig]:
    path = Path(path)
    payload = torch_load_checked(path, "evalkit-uvit-train-v1", "U-ViT", device)
    try:
        tc_dict = json.loads(payload["train_config"])
        tc_dict["betas"] = tuple(tc_dict["betas"])
        tc = TrainConfig(**tc_dict)
        # the checkpoint holds every weight: its warm-start files are history, not needed (they
        # may have moved with the folder, or be gone)
        state = build_state(replace(tc, init_from=None, text_init=None), device)
        if json.loads(payload["model_config"]) != state.net.cfg.to_dict():
            raise ValueError("its model config differs from its preset's")
        state.net.load_state_dict(payload["model"])
        state.ema.load_state_dict(payload["ema"])
        state.opt.load_state_dict(payload["opt"])
    except Exception as e:  # any failure to read a user-given file is bad input, not a bug
        msg = load_failure(e, 200)
        raise BadInputError(f"{path}: unreadable or corrupt checkpoint ({msg}); train again or pick another")
    state.step, state.clips_seen = int(payload["step"]), int(payload["clips_seen"])
    state.seconds, state.cpu_seconds = float(payload["seconds"]), float(payload["cpu_seconds"])
    return state, tc


# ---------------------------------------------------------------------------------- one step
def train_step(state: TrainState, tc: TrainConfig, source: ClipSource, diffusion: GaussianDiffusion,
               device: torch.device, model=None, rank: int = 0, world: int = 1,
               inputs: StepInputs | None = None) -> float:
    """One optimiser step on `inputs` (made here when None; else they must be this step's)."""
    model = state.net if model is None else model  # (a compiled module has no truth value)
    cfg = state.net.cfg
    b = step_inputs(tc, cfg, source, diffusion.num_timesteps, state.step, rank, world) if inputs is None else inputs
    x0, tokens, noise, t, drop = (v.to(device) for v in (b.x0, b.tokens, b.noise, b.t, b.drop))
    kw = {} if b.offset is None else {"frame_offset": b.offset.to(device)}
    for group in state.opt.param_groups:
        group["lr"] = lr_at(tc, state.step)
    pw = object_weights(x0, tc.object_weight) if tc.object_weight != 1.0 else None
    with autocast_for(tc.precision, device):
        loss = diffusion.training_loss(lambda x_t, tt: model(x_t, tt, tokens, drop=drop, **kw), x0, t, noise,
                                       min_snr_gamma=tc.min_snr_gamma, pixel_weight=pw)
    if not torch.isfinite(loss.detach()):  # stop before the update: the weights stay those of the last good step
        raise TrainingDiverged(f"training diverged at step {state.step} (loss {float(loss.detach())}); lower --lr "
                               "(and check --min-snr-gamma), or resume from an earlier checkpoint")
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    if tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(state.net.parameters(), tc.grad_clip)
    state.opt.step()
    with torch.no_grad():  # one fused launch for all tensors (a loop costs ~100 launches on a GPU)
        torch._foreach_lerp_(list(state.ema.parameters()), list(state.net.parameters()),
                             1.0 - ema_decay_at(tc, state.step))
    state.step += 1
    state.clips_seen += tc.batch_size
    return float(loss.detach())


def default_data_workers(device: torch.device) -> int:
    return 0 if device.type == "cpu" else max(0, min(12, (os.cpu_count() or 1) - 2))


# ---------------------------------------------------------------------------------- the loop
def train(tc: TrainConfig, out, *, resume: bool = True, progress: bool = True, log_mlflow: bool = True,
          on_checkpoint: Callable[..., dict] | None = None, metrics_jsonl=None) -> TrainState:
    """Train until max_steps (or stop_step) or max_minutes; checkpoint to `out` every few minutes and at the end.
    With `resume` and an existing `out`, continue from it (its TrainConfig wins, but max_steps,
    max_minutes, device and precision come from `tc`). Under torchrun, runs DDP (gloo on CPU, nccl on CUDA).
    `on_checkpoint(state, out)` runs after every checkpoint (with `final=True` after the last) and
    returns metrics that are logged at the step (e.g. `generator_quality.training_quality_hook`).
    `metrics_jsonl`: also append the logged metrics there, one JSON line each (for machines
    without an MLflow store, e.g. a lent GPU; `benchmarks/gpu/`)."""
    if log_mlflow:
        from evalkit import tracking

        tracking.check_reachable()
    with flush_denormal():  # 6x faster CPU steps; see layers.flush_denormal
        return _train(tc, out, resume, progress, log_mlflow, on_checkpoint, metrics_jsonl)


def _train(tc, out, resume, progress, log_mlflow, on_checkpoint, metrics_jsonl) -> TrainState:
    from tqdm.auto import tqdm

    out = weights_target(out)  # a device or a folder is refused now, not after the training
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    rank, world = 0, 1
    if ddp:
        backend = "nccl" if torch.cuda.is_available() and tc.device != "cpu" else "gloo"
        dist.init_process_group(backend)
        rank, world = dist.get_rank(), dist.get_world_size()
    device = pick_device(tc.device)
    if device.type == "cuda" and ddp:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if resume and out.exists():
        state, saved = load_checkpoint(out, device)
        # execution settings come from the caller: a resumed run may move device or precision
        tc = replace(saved, max_steps=tc.max_steps, max_minutes=tc.max_minutes, stop_step=tc.stop_step,
                     device=tc.device, precision=tc.precision, data_workers=tc.data_workers)
    else:
        state = build_state(tc, device)
    cfg = state.net.cfg
    diffusion = GaussianDiffusion.from_config(cfg)
    source = ClipSource(tc.data, cfg, tc.seed)
    model = state.net
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(state.net)
    if tc.compile:
        model = torch.compile(model)
    run = _start_mlflow(tc, cfg, state) if (log_mlflow and rank == 0) else None
    t_start, cpu_start = time.perf_counter(), time.process_time()
    t_ckpt, seconds0, cpu0 = t_start, state.seconds, state.cpu_seconds
    t_line = t_start
    end = min(tc.max_steps, tc.stop_step or tc.max_steps)
    bar = tqdm(total=end, initial=state.step, desc=f"train uvit:{cfg.name}", unit="step",
               disable=(None if progress else True) if rank == 0 else True)
    losses: list[float] = []
    workers = default_data_workers(device) if tc.data_workers is None else tc.data_workers
    inputs = Prefetcher(partial(step_inputs, tc, cfg, source, diffusion.num_timesteps, rank=rank, world=world),
                        state.step, end, workers)
    t_log, log_step = time.perf_counter(), state.step
    try:
        while state.step < end:
            if tc.max_minutes is not None and time.perf_counter() - t_start > 60 * tc.max_minutes:
                break
            batch = inputs.get(state.step)
            with deferred_interrupts():  # Ctrl-C or kill mid-update left a half-applied step in the checkpoint
                losses.append(train_step(state, tc, source, diffusion, device, model, rank, world, inputs=batch))
            state.seconds = seconds0 + time.perf_counter() - t_start
            state.cpu_seconds = cpu0 + time.process_time() - cpu_start
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
            if bar.disable and progress and rank == 0 and time.perf_counter() - t_line > 60:
                # no terminal (a background job writing a log): a plain line a minute instead of a bar
                print(f"train uvit:{cfg.name}: step {state.step}/{end}, loss {losses[-1]:.4f}, "
                      f"{state.seconds / 60:.1f} min", file=sys.stderr, flush=True)
                t_line = time.perf_counter()
            if state.step % tc.log_every_steps == 0:
                if rank == 0:
                    now = time.perf_counter()
                    _log_metrics(state, tc, losses, tc.batch_size * (state.step - log_step) / (now - t_log), run,
                                 metrics_jsonl)
                    t_log, log_step = now, state.step
                losses.clear()
            if rank == 0 and time.perf_counter() - t_ckpt > 60 * tc.checkpoint_every_minutes:
                _checkpoint(state, tc, out, run, on_checkpoint)
                t_ckpt = time.perf_counter()
            if run is not None and state.step % tc.sample_every_steps == 0:
                _log_samples(state, run)
    except BaseException as e:
        failure = e
        raise
    else:
        failure = None
    finally:
        inputs.close()
        bar.close()
        if rank == 0:
            if losses and not isinstance(failure, TrainingDiverged):  # the steps since the last log line
                now = time.perf_counter()
                _log_metrics(state, tc, losses, tc.batch_size * (state.step - log_step) / max(now - t_log, 1e-9), run,
                             metrics_jsonl)
            if not isinstance(failure, TrainingDiverged):
                _checkpoint(state, tc, out, run, on_checkpoint, final=True)
                if run is not None and failure is None and state.step % tc.sample_every_steps:
                    _log_samples(state, run)  # every run ends with a sample grid, however short
            if run is not None:
                import mlflow

                from evalkit.tracking import outer_run_set_aside

                with outer_run_set_aside():  # end_run unsets the user's variable: kept
                    mlflow.end_run(status="FINISHED" if failure is None else
                                   "KILLED" if isinstance(failure, KeyboardInterrupt) else "FAILED")
        if ddp:
            dist.destroy_process_group()
    return state


def _checkpoint(state, tc, out, run, on_checkpoint, final: bool = False):
    save_checkpoint(state, tc, out)
    if on_checkpoint is not None:
        extra = (on_checkpoint(state, out, final=True) if final else on_checkpoint(state, out)) or {}
        if run is not None and extra:
            import mlflow

            mlflow.log_metrics({k: float(v) for k, v in extra.items()}, step=state.step)
