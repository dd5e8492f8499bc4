"""A stage before the generator: contrastive pre-training of its own text encoder on its training clips.

Why: trained only through the denoising loss, the text encoder learns what lowers that loss most,
the background (95% of the world's pixels), and next to nothing about the objects. Measured on
`small` after 4,300 steps: swapping an object's colour word in the prompt changed the denoiser's
loss on the object's pixels by under 0.3% at every noise level, and the colour prompts' text
features differed 4x less than the background prompts'. The denoiser cannot bind a colour the
encoder does not carry. A CLIP-style objective (InfoNCE between the pooled text features and a
small video encoder's clip features, over the generator's own training clips) makes every word
that tells one clip from another (colour, shape, size, motion, background) separable before the
denoiser reads it; the generator then trains with this encoder frozen (`TrainConfig.text_init`,
`freeze_text`), as Imagen trains on a frozen pre-trained encoder. It is the generator's own: trained
from scratch on its data, it shares nothing with any evaluator's CLIP.

    evalkit generator pretrain-text --preset small --steps 1500 --out text.safetensors
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from evalkit.errors import BadInputError
from generators.checkpoints import save_safetensors_atomic
from generators.training import ClipSource

from .configs import UViTConfig, get_config
from .diffusion import to_model_space
from .text import TextEncoder


@dataclass(frozen=True)
class TextPretrainConfig:
    preset: str = "small"
    steps: int = 1500
    batch_size: int = 64
    lr: float = 1e-3
    embed_dim: int = 128  # the shared space of text and clip features
    seed: int = 0
    data: str = "world"


class ClipVideoEncoder(nn.Module):
    """[B, T, C, H, W] in [-1, 1] -> [B, E]: three strided 3-D convolutions, a global mean, a linear.
    Only a training partner: it is thrown away after the stage."""

    def __init__(self, channels: int, embed_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv3d(channels, 32, 3, stride=(1, 2, 2), padding=1), nn.GELU(),  # [B, 32, T, H/2, W/2]
            nn.Conv3d(32, 64, 3, stride=2, padding=1), nn.GELU(),  # [B, 64, T/2, H/4, W/4]
            nn.Conv3d(64, 128, 3, stride=2, padding=1), nn.GELU(),  # [B, 128, T/4, H/8, W/8]
        )
        self.head = nn.Linear(128 * 2, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x.permute(0, 2, 1, 3, 4))  # [B, 128, T', H', W']
        pooled = torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1)  # mean: scene; max: objects
        return self.head(pooled)


def pooled_text(text: TextEncoder, head: nn.Linear, tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, L] -> [B, E]: the mean of the encoder's features over the prompt's real tokens."""
    emb, mask = text(tokens)  # [B, L, Dt], [B, L]
    m = mask[..., None].to(emb.dtype)
    return head((emb * m).sum(1) / m.sum(1).clamp(min=1))


def info_nce(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of paired rows; pairs with identical captions (`same` [B, B]) are not
    counted as negatives of each other."""
    logits = logit_scale.exp().clamp(max=100) * F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    logits = logits.masked_fill(same & ~torch.eye(len(a), dtype=torch.bool, device=a.device), float("-inf"))
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def retrieval_accuracy(text_feat: torch.Tensor, clip_feat: torch.Tensor, prompts: list[str]) -> float:
    """Share of clips whose nearest caption (cosine) is their own (or an identical one)."""
    sim = F.normalize(clip_feat, dim=-1) @ F.normalize(text_feat, dim=-1).T  # [B, B]
    best = sim.argmax(1).tolist()
    return sum(prompts[j] == prompts[i] for i, j in enumerate(best)) / len(prompts)


def text_batch(source: ClipSource, batch_size: int, step: int) -> tuple[torch.Tensor, list[str]]:
    """Step `step`'s clips in model space [B, T, C, H, W] and their captions: a pure function of
    (source seed, step), so workers can make steps ahead in any order (generators/prefetch.py)."""
    items = [source.get(step * batch_size + j) for j in range(batch_size)]
    return to_model_space(torch.stack([v for v, _ in items])), [p for _, p in items]


def pretrain_text(tc: TextPretrainConfig, out, progress: bool = True, *, device: str = "cpu",
                  data_workers: int | None = None) -> dict:
    """Train the preset's text encoder contrastively on `tc.data`; write its weights (safetensors,
    keys as in `TextEncoder.state_dict()`) to `out` and return the run's summary. `device` and
    `data_workers` (processes rendering steps ahead; default as `generator train`'s: none on a
    CPU) change where it runs, not what it computes (up to the device's rounding)."""
    from tqdm.auto import tqdm

    from generators.prefetch import Prefetcher
    from generators.training import pick_device

    from .train import default_data_workers

    dev = pick_device(device)
    cfg: UViTConfig = get_config(tc.preset)
    torch.manual_seed(tc.seed)
    text = TextEncoder(cfg)
    video = ClipVideoEncoder(cfg.channels, tc.embed_dim)
    head = nn.Linear(cfg.text_width, tc.embed_dim)
    logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))  # CLIP's initial temperature
    text, video, head, logit_scale = text.to(dev), video.to(dev), head.to(dev), nn.Parameter(logit_scale.data.to(dev))
    params = [*text.parameters(), *video.parameters(), *head.parameters(), logit_scale]
    opt = torch.optim.AdamW(params, lr=tc.lr, weight_decay=0.0)
    source = ClipSource(tc.data, cfg, tc.seed)
    held_out = [source.get(10**9 + i) for i in range(256)]  # far from every training index
    t0, cpu0 = time.perf_counter(), time.process_time()
    bar = tqdm(range(tc.steps), desc=f"pretrain text {cfg.name}", unit="step", disable=None if progress else True)
    losses = []
    workers = default_data_workers(dev) if data_workers is None else data_workers
    with Prefetcher(partial(text_batch, source, tc.batch_size), 0, tc.steps, workers) as batches:
        for step in bar:
            x, prompts = batches.get(step)
            same = torch.tensor([[p == q for q in prompts] for p in prompts], device=dev)
            for g in opt.param_groups:  # warm-up, then cosine to zero
                g["lr"] = tc.lr * min(1.0, (step + 1) / 100) * 0.5 * (1 + math.cos(math.pi * step / tc.steps))
            loss = info_nce(pooled_text(text, head, text.tokenize(prompts)), video(x.to(dev)),
                            logit_scale, same)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if bar.disable and progress and (step + 1) % 100 == 0:  # no terminal: a plain line instead of a bar
                print(f"pretrain text {cfg.name}: step {step + 1}/{tc.steps}, loss {losses[-1]:.3f}",
                      file=sys.stderr, flush=True)
    text.eval(), video.eval()
    with torch.no_grad():
        prompts = [p for _, p in held_out]
        tf = pooled_text(text, head, text.tokenize(prompts))
        vf = video(to_model_space(torch.stack([v for v, _ in held_out])).to(dev))
        acc = retrieval_accuracy(tf, vf, prompts)
    summary = {"preset": cfg.name, "steps": tc.steps, "batch_size": tc.batch_size, "lr": tc.lr, "seed": tc.seed,
               "data": tc.data, "device": dev.type, "final_loss": sum(losses[-20:]) / len(losses[-20:]),
               "held_out_retrieval_top1": acc, "held_out_n": len(held_out), "chance": 1 / len(held_out),
               "seconds": round(time.perf_counter() - t0, 1), "cpu_seconds": round(time.process_time() - cpu0, 1)}
    tensors = {k: v.detach().float().cpu().contiguous() for k, v in text.state_dict().items()}
    meta = {"format": "evalkit-uvit-text-v1", "preset": cfg.name, "summary": json.dumps(summary)}
    save_safetensors_atomic(tensors, meta, out)
    return summary


def load_text_weights(text: TextEncoder, path) -> None:
    """Load a `pretrain_text` export into `text`; a file for another preset is a clear error."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != "evalkit-uvit-text-v1":
            raise ValueError("not a text-encoder export of `generator pretrain-text`")
        if meta.get("preset") != text.cfg.name:
            raise ValueError(f"made for preset {meta.get('preset')!r}, not {text.cfg.name!r}")
        text.load_state_dict(state)
    except Exception as e:  # a user-given file: its failure is bad input
        msg = " ".join(str(e).split())[:200]
        raise BadInputError(f"{path}: cannot use as text-encoder weights ({msg}); run `evalkit generator "
                            "pretrain-text` for this preset")
