"""`world-video-encoder`: the 3D CNN whose 128-d feature is the offline FVD feature (see
`encoders`): its definition, training from the world's ground truth, evaluation and loading."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from evalkit.world import BACKGROUNDS, KINDS, WorldConfig


from evalkit.metrics.encoder_base import (
    HEADS, _check_recipe, _lr_at,
    _progress, load_checkpoint, render_batch, resolve_output, save_checkpoint, single_thread,
    _world_config_dict, file_sha256, FORMAT_VERSION,
)


# --------------------------------------------------------------------------------------------
# world-video-encoder


VIDEO_ENCODER_CONFIG: dict[str, Any] = {
    "frames": 16, "size": 32, "channels": [16, 32, 64, 128], "feature_dim": 128,
    "heads": {k: v[0] for k, v in HEADS.items()},
}


def _conv_block(cin: int, cout: int, stride) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm3d(cout),
                         nn.ReLU(inplace=True))


class WorldVideoEncoder(nn.Module):
    """3D CNN: [B, 3, 16, 32, 32] in [-1, 1] -> 128-d feature -> task heads.

    Four conv blocks (3x3x3, BatchNorm, ReLU; strides (1,2,2), 2, 2, 2) -> global average and max
    pool (concatenated: a small object must not vanish in the average) -> linear to `feature_dim`
    (the FVD feature, taken before its ReLU) -> ReLU -> one linear head per task."""

    def __init__(self, channels=(16, 32, 64, 128), feature_dim: int = 128, heads: dict | None = None,
                 **_ignored):
        super().__init__()
        heads = heads or {k: v[0] for k, v in HEADS.items()}
        c = [3, *channels]
        strides = [(1, 2, 2)] + [2] * (len(channels) - 1)
        self.trunk = nn.Sequential(*[_conv_block(c[i], c[i + 1], strides[i]) for i in range(len(channels))])
        self.embed = nn.Linear(2 * c[-1], feature_dim)
        self.heads = nn.ModuleDict({k: nn.Linear(feature_dim, n) for k, n in heads.items()})

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: float [B, 3, T, H, W] in [-1, 1] -> [B, feature_dim]."""
        h = self.trunk(x)
        return self.embed(torch.cat([h.mean(dim=(2, 3, 4)), h.amax(dim=(2, 3, 4))], dim=1))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = F.relu(self.features(x))
        return {k: head(h) for k, head in self.heads.items()}


def video_encoder_input(frames_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float [B, 3, T, H, W] in [-1, 1] (the encoder's own boundary)."""
    x = torch.as_tensor(frames_uint8)
    return x.permute(0, 4, 1, 2, 3).float().div(127.5).sub(1.0)


def _head_losses(out: dict, labels: dict) -> torch.Tensor:
    loss = out["kind"].new_zeros(())
    for k, (_, kind) in HEADS.items():
        target = torch.as_tensor(labels[k])
        if kind == "single":
            loss = loss + F.cross_entropy(out[k], target)
        else:
            # summed over labels: a mean over 7 colours would weigh each colour 1/7 of a class head
            bce = F.binary_cross_entropy_with_logits(out[k], target, reduction="sum")
            loss = loss + bce / target.shape[0]
    return loss


def video_encoder_metadata(seed: int, steps: int, batch_size: int, lr: float, weight_decay: float) -> dict:
    """The JSON metadata `train_world_video_encoder` writes into its checkpoint (part of the file's
    hash: a pure function of the recipe)."""
    recipe = {"optimizer": "AdamW", "lr": lr, "weight_decay": weight_decay, "schedule": "warmup 5% + cosine",
              "batch_size": batch_size, "steps": steps,
              "loss": "sum of CE (kind, count, background) and BCE summed over labels "
                      "(colors, shapes, sizes)",
              "augment": "horizontal flip p=0.5, gaussian noise std U(0, 3)/255",
              "threads": 1, "device": "cpu"}
    return {"format": FORMAT_VERSION, "kind": "video-encoder", "architecture": "WorldVideoEncoder",
            "config": dict(VIDEO_ENCODER_CONFIG),
            "input": "float [B, 3, 16, 32, 32] in [-1, 1]; feature = embed layer (pre-ReLU)",
            "recipe": recipe, "seed": seed, "steps": steps,
            "data": {"dataset": "evalkit.world WorldDataset", "split": "train", "seed": seed,
                     "clips": steps * batch_size, "world_config": _world_config_dict(WorldConfig())},
            "trainer": "evalkit.metrics.encoders.train_world_video_encoder"}


def train_world_video_encoder(out: str | os.PathLike | None = None, *, seed: int = 0, steps: int = 800,
                              batch_size: int = 48, lr: float = 3e-3, weight_decay: float = 1e-4,
                              progress: bool | None = None, validate: int = 1000) -> dict:
    """Train `world-video-encoder` on the world's train split and save it (safetensors).

    Deterministic for (seed, steps, batch_size, lr, weight_decay) on CPU: one thread, data clips
    s*B .. s*B+B-1 of `WorldDataset("train", seed=seed)` at step s, horizontal flips and sensor
    noise (std up to 3 levels) drawn from a generator seeded with `seed`. `out`: a path ending in
    `.safetensors`, or a name saved as `$EVALKIT_HOME/backbones/NAME.safetensors` (default name
    `world-video-encoder-seed{seed}`). Returns {"path", "sha256", "steps", "seconds", "params",
    "bytes", "validation": evaluate_world_video_encoder(...)} (validation on `validate` test clips,
    0 to skip).
    """
    _check_recipe(steps, batch_size)
    path = resolve_output(out, f"world-video-encoder-seed{seed}")
    cfg = dict(VIDEO_ENCODER_CONFIG)
    t0 = time.time()
    with single_thread():
        torch.manual_seed(seed)
        model = WorldVideoEncoder(**cfg)
        gen = torch.Generator().manual_seed(seed)
        decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr)
        warmup = max(1, steps // 20)
        model.train()
        bar = _progress(steps, "world-video-encoder", progress)
        for step in range(steps):
            frames, _, labels = render_batch("train", step * batch_size, batch_size, seed)
            x = video_encoder_input(frames)
            flip = torch.rand(batch_size, generator=gen) < 0.5
            x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
            sigma = torch.rand(batch_size, 1, 1, 1, 1, generator=gen) * (3.0 / 127.5)
            x = x + sigma * torch.randn(x.shape, generator=gen)
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr, warmup)
            loss = _head_losses(model(x), labels)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    seconds = time.time() - t0
    meta = video_encoder_metadata(seed, steps, batch_size, lr, weight_decay)
    model.eval()
    save_checkpoint(path, {k: v.detach().clone() for k, v in model.state_dict().items()}, meta)
    result = {"path": str(path), "sha256": file_sha256(path), "steps": steps, "seconds": round(seconds, 1),
              "params": sum(p.numel() for p in model.parameters()), "bytes": path.stat().st_size}
    if validate:
        loaded, _ = load_video_encoder(path)
        result["validation"] = evaluate_world_video_encoder(loaded, n=validate)
    return result


@torch.no_grad()
def evaluate_world_video_encoder(model: WorldVideoEncoder, n: int = 1000, split: str = "test", seed: int = 0,
                                 batch_size: int = 100) -> dict:
    """Held-out accuracies: exact class for kind / count / background, exact label set for colours /
    shapes / sizes (all labels right), plus per-label accuracy of the multi-label heads."""
    model.eval()
    hits = {k: 0 for k in HEADS}
    label_hits = {k: 0 for k, (_, kind) in HEADS.items() if kind == "multi"}
    with single_thread():
        for start in range(0, n, batch_size):
            b = min(batch_size, n - start)
            frames, _, labels = render_batch(split, start, b, seed)
            out = model(video_encoder_input(frames))
            for k, (_, kind) in HEADS.items():
                target = torch.as_tensor(labels[k])
                if kind == "single":
                    hits[k] += int((out[k].argmax(1) == target).sum())
                else:
                    pred = (out[k] > 0).float()
                    hits[k] += int((pred == target).all(1).sum())
                    label_hits[k] += int((pred == target).sum())
    res = {f"{k}_acc": round(hits[k] / n, 4) for k in HEADS}
    for k in label_hits:
        res[f"{k}_label_acc"] = round(label_hits[k] / (n * HEADS[k][0]), 4)
    res["n"] = n
    res["split"] = split
    res["chance"] = {"kind": round(1 / len(KINDS), 3), "background": round(1 / len(BACKGROUNDS), 3)}
    return res


def load_video_encoder(path: str | os.PathLike) -> tuple[WorldVideoEncoder, dict]:
    """(model in eval mode, metadata) from a safetensors checkpoint of `train_world_video_encoder`."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "video-encoder":
        raise ValueError(f"{path} holds a {meta.get('kind')!r} checkpoint, not a video encoder")
    model = WorldVideoEncoder(**meta["config"])
    model.load_state_dict(tensors, strict=True)
    return model.eval(), meta
