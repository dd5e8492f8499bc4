"""The training plumbing the generator families share: the clip source, the device choice and
per-sample seeds (all three families, the U-ViT included), and for the one-pass families (VAE,
GAN) checkpoints that resume exactly, reproducible safetensors exports and the loop itself.

A family supplies what is its own (the state with its networks and optimisers, one training step,
what goes into the checkpoint and the export) as a `FamilyTrainer`; this module does the rest the
same way for all of them:

- exact resume from one rule: every random draw of a training sample is a pure function of
  (seed, global sample index, stream) (`sample_seed`), and global index = step * batch + j, so a
  resumed run redraws what the uninterrupted run would have;
- the checkpoint is written atomically every `checkpoint_every_steps` and at the end, and a file
  that does not load is a one-line BadInputError naming it;
- the export holds only deterministic facts (no timings), with its header canonicalised, so the
  same command and seed give the same file and the same SHA-256;
- one MLflow run per training (losses, schedules, wall and CPU minutes, a probe sample grid).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from evalkit.errors import BadInputError, MissingResourceError
from evalkit.world import WorldConfig, make_clip
from generators.checkpoints import load_failure, save_safetensors_atomic, torch_load_checked

EXPERIMENT = "evalkit-generator-train"
# TrainConfig fields that do not change the trained weights: left out of an export's metadata
BOOKKEEPING = ("max_minutes", "checkpoint_every_steps", "log_every_steps", "device")


@contextmanager
def deferred_interrupts():
    """Ctrl-C (SIGINT) and `kill` (SIGTERM) arriving inside the block take effect at its end: an
    optimiser step interrupted half-way left a checkpoint whose weights had moved and whose step
    counter had not, and the resume applied that step again (2 of 7 killed runs, session 31). The
    process's own handlers are restored and called after the block; outside the main thread (where
    handlers cannot be set) the block runs as is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {s: signal.getsignal(s) for s in signals}
    for s in signals:
        signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    for s in dict.fromkeys(held):  # each signal once, in the order it came, to the handler it was meant for
        h = previous[s]
        if callable(h):
            h(s, None)
        elif h == signal.SIG_DFL and s == signal.SIGINT:
            raise KeyboardInterrupt
        elif h == signal.SIG_DFL:
            os.kill(os.getpid(), s)


def pick_device(name: str) -> torch.device:
    """cpu | cuda | auto (cuda when there is one) as a torch device; anything else is bad input."""
    if name not in ("auto", "cpu", "cuda"):
        raise BadInputError(f"--device {name}: choose auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInputError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return torch.device(name)


class ClipSource:
    """Training clips by global sample index: the world's train split, or a folder of clips. `cfg`
    is any family's model config (its `name`, `frames` and `image_size` are used)."""

    def __init__(self, data: str, cfg, seed: int):
        self.cfg, self.seed = cfg, seed
        self.world = WorldConfig(frames=cfg.frames, size=cfg.image_size)
        self.folder, self.skipped_short = None, 0
        if data != "world":  # any videos, cut to the model's shape (generators/clip_windows.py)
            from evalkit.clipset import read_index
            from generators.clip_windows import training_windows

            self.folder, short = [], 0
            for rec in read_index(data):
                windows = training_windows(Path(data) / rec["file"], cfg.frames, cfg.image_size, self.world.fps)
                short += not windows
                self.folder += [(torch.from_numpy(w).permute(0, 3, 1, 2).float() / 255.0, rec.get("prompt", ""))
                                for w in windows]
            if not self.folder:
                raise BadInputError(f"{data}: no video has {cfg.frames} frames at {self.world.fps:g} fps (preset "
                                    f"{cfg.name!r} trains on clips of that length); give longer videos")
            self.skipped_short = short

    def get(self, index: int) -> tuple[torch.Tensor, str]:
        """video float [T, C, H, W] in [0, 1] and its prompt."""
        if self.folder is not None:
            order = np.random.default_rng([self.seed, index // len(self.folder)]).permutation(len(self.folder))
            return self.folder[order[index % len(self.folder)]]
        clip = make_clip("train", index, self.seed, self.world)
        return clip.to_tensor(), clip.prompt


def sample_seed(seed: int, index: int, stream: int) -> int:
    """The seed of one random draw (`stream`) of global training sample `index`."""
    return int(np.random.SeedSequence([seed, index, stream]).generate_state(1)[0])


def seeded_normal(seed: int, indices, stream: int, dim: int) -> torch.Tensor:
    """[len(indices), dim] standard normals, row j a pure function of (seed, indices[j], stream)."""
    return torch.stack([torch.randn(dim, generator=torch.Generator().manual_seed(sample_seed(seed, i, stream)))
                        for i in indices])


def adamw_no_decay_on_embeddings(net: torch.nn.Module, lr: float, betas, weight_decay: float):
    """AdamW with weight decay on matrices only (not on biases, norms or embeddings)."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim < 2 or "embed" in name else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=betas)


# ---------------------------------------------------------------------------------- checkpoints
def checkpoint_payload(fmt: str, state, tc, **parts) -> dict:
    """What every family's checkpoint holds (format, configs, counters) plus its own `parts`
    (state dicts of networks and optimisers)."""
    return {"format": fmt, "train_config": json.dumps(asdict(tc)),
            "model_config": json.dumps(state.net.cfg.to_dict()), **parts, "step": state.step,
            "clips_seen": state.clips_seen, "seconds": state.seconds, "cpu_seconds": state.cpu_seconds}


def read_checkpoint(path, fmt: str, what: str, tc_cls, build_state: Callable, restore: Callable,
                    device: torch.device = torch.device("cpu")):
    """(state, train config) from a checkpoint of `checkpoint_payload`: the state is rebuilt from
    the saved config (without its warm start, which the saved weights replace), then
    `restore(state, payload)` loads the family's networks and optimisers."""
    path = Path(path)
    payload = torch_load_checked(path, fmt, what, device)
    try:
        tc_dict = json.loads(payload["train_config"])
        tc = tc_cls(**{**tc_dict, "betas": tuple(tc_dict["betas"]), "init_from": None})
        state = build_state(tc, device)
        if json.loads(payload["model_config"]) != state.net.cfg.to_dict():
            raise ValueError("its model config differs from its preset's")
        restore(state, payload)
    except (BadInputError, MissingResourceError):
        raise
    except Exception as e:  # any failure to read a user-given file is bad input, not a bug
        msg = load_failure(e, 200)
        raise BadInputError(f"{path}: unreadable or corrupt {what} checkpoint ({msg}); "
                            "train again or pick another")
    state.step, state.clips_seen = int(payload["step"]), int(payload["clips_seen"])
    state.seconds, state.cpu_seconds = float(payload["seconds"]), float(payload["cpu_seconds"])
    return state, replace(tc, init_from=tc_dict.get("init_from"))


def write_export(tensors: dict[str, torch.Tensor], fmt: str, cfg, tc, state, out,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Weights as safetensors (no pickled code), floating tensors cast to `dtype`, with the model
    config, the recipe (the train config less `BOOKKEEPING`), the step and clips seen in the
    metadata; written atomically with a canonical header."""
    tensors = {k: v.detach().cpu().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in tensors.items()}
    recipe = {k: v for k, v in asdict(tc).items() if k not in BOOKKEEPING}
    meta = {"format": fmt, "model_config": json.dumps(cfg.to_dict()), "train_config": json.dumps(recipe),
            "step": str(state.step), "clips_seen": str(state.clips_seen)}
    return save_safetensors_atomic(tensors, meta, out)


# ---------------------------------------------------------------------------------- the loop
@dataclass(frozen=True)
class FamilyTrainer:
    """A family's parts of training; `train` runs them. The state is any object with `net` (whose
    `cfg` has `name` and `to_dict`), `step`, `clips_seen`, `seconds` and `cpu_seconds`."""

    family: str  # "vae" | "gan": names runs, progress bars and the weights spec (`family:PATH`)
    build_state: Callable[[Any, torch.device], Any]
    load_checkpoint: Callable[[Path, torch.device], tuple[Any, Any]]
    save_checkpoint: Callable[[Any, Any, Path], Path]
    train_step: Callable[[Any, Any, Any, torch.device], dict]  # -> scalar metrics of the step
    export_weights: Callable[[Any, Any, Path], Path]
    log_samples: Callable[[Any, Path], None]  # into the active MLflow run, after the export
    schedules: Callable[[Any, int], dict]  # lr, KL weight, EMA decay... at a step, logged with the losses
    run_params: Callable[[Any], dict]  # e.g. parameter counts, logged once
    postfix: tuple[str, ...]  # step metrics shown on the progress bar

    def train(self, tc, out, *, resume: bool = True, progress: bool = True, log_mlflow: bool = True):
        """Train until max_steps (or max_minutes); checkpoint to `out` every
        `checkpoint_every_steps` and at the end, then export float16 weights to `out` with the
        suffix .safetensors. With `resume` and an existing `out`, continue from it (its config
        wins, except max_steps, max_minutes and device, which come from `tc`)."""
        from generators.uvit.layers import flush_denormal

        out = Path(out)
        if out.suffix == ".safetensors":
            raise BadInputError(f"{out}: --out is the resumable training checkpoint; name it .pt "
                                "(the .safetensors weights are written next to it)")
        with flush_denormal():  # subnormal Adam moments make CPU steps several times slower
            return self._train(tc, out, resume, progress, log_mlflow)

    def _train(self, tc, out: Path, resume: bool, progress: bool, log_mlflow: bool):
        from contextlib import nullcontext

        from tqdm.auto import tqdm

        device = pick_device(tc.device)
        if resume and out.exists():
            state, saved = self.load_checkpoint(out, device)
            tc = replace(saved, max_steps=tc.max_steps, max_minutes=tc.max_minutes, device=tc.device)
        else:
            state = self.build_state(tc, device)
        cfg = state.net.cfg
        source = ClipSource(tc.data, cfg, tc.seed)
        run_ctx = nullcontext()
        if log_mlflow:
            from evalkit import tracking

            params = {"train": asdict(tc), "model": cfg.to_dict(), "family": self.family,
                      **self.run_params(state), "resumed_at": state.step}
            run_ctx = tracking.start_run(EXPERIMENT, f"{self.family}-{cfg.name}", params=params, seed=tc.seed)
        state.net.train()
        with run_ctx as run:
            t_start, cpu_start = time.perf_counter(), time.process_time()
            seconds0, cpu0 = state.seconds, state.cpu_seconds
            bar = tqdm(total=tc.max_steps, initial=state.step, desc=f"train {self.family}:{cfg.name}",
                       unit="step", disable=None if progress else True)
            window: list[dict] = []
            try:
                while state.step < tc.max_steps:
                    if tc.max_minutes is not None and time.perf_counter() - t_start > 60 * tc.max_minutes:
                        break
                    window.append(self.train_step(state, tc, source, device))
                    state.seconds = seconds0 + time.perf_counter() - t_start
                    state.cpu_seconds = cpu0 + time.process_time() - cpu_start
                    bar.update(1)
                    bar.set_postfix({k: f"{window[-1][k]:.4g}" for k in self.postfix})
                    if state.step % tc.log_every_steps == 0:
                        self._log(run, bar, progress, tc, state, window)
                        window.clear()
                    if state.step % tc.checkpoint_every_steps == 0:
                        self.save_checkpoint(state, tc, out)
            finally:
                bar.close()
                self.save_checkpoint(state, tc, out)
            weights = self.export_weights(state, tc, out.with_suffix(".safetensors"))
            if run is not None:
                self.log_samples(state, weights)
        return state

    def _log(self, run, bar, progress: bool, tc, state, window: list[dict]) -> None:
        means = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
        if run is not None:
            import mlflow

            mlflow.log_metrics({**means, **self.schedules(tc, state.step - 1),
                                "train_minutes": state.seconds / 60,
                                "cpu_minutes": state.cpu_seconds / 60}, step=state.step)
        if progress:
            bar.write(f"step {state.step}: " + " ".join(f"{k} {v:.4g}" for k, v in means.items())
                      + f" ({state.seconds / 60:.1f} min)")

    def train_from_cli(self, tc, out, compile_: bool) -> str:
        """`evalkit generator train --preset FAMILY-...` with `tc` built from the shared flags;
        returns the line the CLI prints."""
        from evalkit.home import evalkit_home

        if compile_:
            raise BadInputError(f"--compile applies to the U-ViT presets only, not to {tc.preset}")
        out = Path(out) if out else evalkit_home() / "models" / f"{tc.preset}.pt"
        state = self.train(tc, out)
        weights = out.with_suffix(".safetensors")
        return (f"trained {tc.preset} to step {state.step} ({state.clips_seen} clips, "
                f"{state.seconds / 60:.1f} min, {state.cpu_seconds / 60:.1f} CPU-min); "
                f"checkpoint {out}, weights {weights} (use {self.family}:{weights})")


__all__ = ["BOOKKEEPING", "EXPERIMENT", "ClipSource", "FamilyTrainer", "adamw_no_decay_on_embeddings", "checkpoint_payload",
           "pick_device", "read_checkpoint", "sample_seed", "seeded_normal", "write_export"]
