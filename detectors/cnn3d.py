"""`cnn3d`: a small 3D convolutional network on high-pass residuals.

Input channels (computed at the network's boundary, so the saved model is the whole recipe):
the RGB frame minus its 3x3 box blur (where generators leave their noise), scaled up, and the
luminance frame difference (where they leave temporal incoherence). Strided early, so a clip of
16x64x64 costs about 70 M multiply-adds and the family trains in a few CPU minutes.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm.auto import tqdm

from detectors.features import Protocol


@contextmanager
def _cpu_fast_math():
    # Subnormal floats (tiny gradients late in training) are ~100x slower on x86 CPUs.
    torch.set_flush_denormal(True)
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def residual_input(x: torch.Tensor) -> torch.Tensor:
    """x [B, T, S, S, 3] in [0, 1] -> [B, 4, T, S, S]: RGB high-pass residual, luma difference."""
    b, t, s, _, _ = x.shape
    v = x.permute(0, 1, 4, 2, 3).reshape(b * t, 3, s, s)
    res = (v - F.avg_pool2d(v, 3, 1, 1, count_include_pad=False)).reshape(b, t, 3, s, s) * 10.0
    luma = (x @ torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype))  # [B, T, S, S]
    d = torch.cat([torch.zeros_like(luma[:, :1]), luma[:, 1:] - luma[:, :-1]], 1) * 10.0
    return torch.cat([res.permute(0, 2, 1, 3, 4), d[:, None]], 1)


def _residuals(batch: np.ndarray, chunk: int = 64) -> torch.Tensor:
    """residual_input of a whole protocol batch, stored as float16 [N, 4, T, S, S] (half the
    memory; its rounding, 1e-3 relative, is far below the 8-bit pixels' own step of 0.04 here)."""
    parts = [residual_input(torch.from_numpy(batch[i:i + chunk])).half() for i in range(0, len(batch), chunk)]
    return torch.cat(parts) if parts else torch.zeros(0, 4, *batch.shape[1:4], dtype=torch.half)


class ResidualCNN3D(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            nn.Conv3d(4, w, 3, stride=(1, 2, 2), padding=1), nn.GELU(),          # [B, w, T, S/2, S/2]
            nn.Conv3d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),              # [B, 2w, T/2, S/4, S/4]
            nn.Conv3d(2 * w, 4 * w, 3, stride=2, padding=1), nn.GELU(),          # [B, 4w, T/4, S/8, S/8]
        )
        self.head = nn.Linear(8 * w, 1)  # mean and std pooling of 4w channels
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="linear" if m is self.head else "relu")
                nn.init.zeros_(m.bias)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        h = self.body(r).flatten(2)                                  # [B, 4w, N]
        return self.head(torch.cat([h.mean(2), h.std(2)], 1))[:, 0]  # [B] logits


class CNN3DFamily:
    name = "cnn3d"

    def __init__(self, protocol: Protocol = Protocol(), width: int = 16, epochs: int = 16,
                 batch_size: int = 32, lr: float = 2e-3):
        self.protocol, self.width, self.epochs, self.batch_size, self.lr = protocol, width, epochs, batch_size, lr
        self.net = ResidualCNN3D(width)

    def fit(self, batch: np.ndarray, y: np.ndarray, seed: int = 0, progress: bool = False) -> "CNN3DFamily":
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.net = ResidualCNN3D(self.width)
        opt = torch.optim.AdamW(self.net.parameters(), lr=self.lr, weight_decay=1e-4)
        n = len(batch)
        steps = self.epochs * max(1, -(-n // self.batch_size))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, self.lr, total_steps=steps, pct_start=0.2)
        # Balance the classes in the loss: real and generated counts differ.
        pos = float(y.mean())
        weight = torch.tensor([0.5 / max(1 - pos, 1e-3), 0.5 / max(pos, 1e-3)])
        yt = torch.from_numpy(np.asarray(y, dtype=np.float32))
        self.net.train()
        self.net.to(memory_format=torch.channels_last_3d)  # oneDNN's fast 3D convolutions (measured 1.8x)
        bar = tqdm(total=steps, desc="train cnn3d", unit="step", disable=None if progress else True)
        with _cpu_fast_math():
            r_all = _residuals(batch)  # once, not every epoch: it cost a third of each step
            for _ in range(self.epochs):
                order = torch.randperm(n, generator=g)
                for i in range(0, n, self.batch_size):
                    idx = order[i:i + self.batch_size]
                    r = r_all[idx].float()
                    # Horizontal flips (content-agnostic); the residual of a flipped clip is the
                    # flipped residual, the 3x3 box blur being symmetric.
                    flip = torch.rand(len(idx), generator=g) < 0.5
                    r[flip] = r[flip].flip(4)
                    logits = self.net(r.contiguous(memory_format=torch.channels_last_3d))
                    w = weight[yt[idx].long()]
                    loss = (F.binary_cross_entropy_with_logits(logits, yt[idx], reduction="none") * w).sum() / w.sum()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    bar.update()
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        self.net.eval()
        return self

    @torch.no_grad()
    def score(self, batch: np.ndarray) -> np.ndarray:
        self.net.eval().to(memory_format=torch.channels_last_3d)
        out = []
        with _cpu_fast_math():
            for i in range(0, len(batch), 64):
                r = residual_input(torch.from_numpy(batch[i:i + 64]))
                out.append(self.net(r.contiguous(memory_format=torch.channels_last_3d)).double().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def state(self) -> tuple[dict, dict[str, np.ndarray]]:
        meta = {"family": "cnn3d", "kind": "cnn3d", "width": self.width, "epochs": self.epochs,
                "batch_size": self.batch_size, "lr": self.lr}
        return meta, {k: v.detach().cpu().contiguous().numpy() for k, v in self.net.state_dict().items()}

    @classmethod
    def from_state(cls, meta: dict, arrays: dict, protocol: Protocol) -> "CNN3DFamily":
        fam = cls(protocol, width=meta["width"], epochs=meta["epochs"], batch_size=meta["batch_size"], lr=meta["lr"])
        fam.net.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in arrays.items()})
        fam.net.eval()
        return fam
