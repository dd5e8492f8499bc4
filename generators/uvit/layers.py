"""Building blocks shared by the U-ViT and its text encoder: attention, MLP, sin-cos features.

Attention goes through `F.scaled_dot_product_attention` with q, k, v left in the input dtype: under
bf16 autocast the qkv projection yields bf16 and SDPA can pick the flash kernel. Upcasting q/k/v
to fp32 "for stability" would silently force the math kernel.

One exception, measured: bf16 on a CPU. There PyTorch's flash kernel is far slower than oneDNN's
bf16 matmuls (AMX / AVX512-BF16): for `small`'s attention ([16, 3, 545, 64], two threads) forward
and backward took 186 ms through SDPA and 70 ms written out in bf16 (`_attend_bf16_cpu`; 172 ms
with the softmax upcast to fp32, as a textbook version does), and attention was half of a
training step. At 545 tokens the [S, S] weights are small enough to materialise.
"""

from __future__ import annotations

import math

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """MAE/Transformer sin-cos features. positions [N] -> [N, dim] (float32, computed in float64)."""
    assert dim % 2 == 0
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))  # [dim/2]
    out = positions.to(torch.float64)[:, None] * omega[None]  # [N, dim/2]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1).float()


def sincos_2d(dim: int, h: int, w: int) -> torch.Tensor:
    """2-D sin-cos grid: half the channels encode the row, half the column. -> [h*w, dim], row-major."""
    assert dim % 4 == 0, "2-D sin-cos needs width divisible by 4"
    rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, rows.flatten()), sincos_1d(dim // 2, cols.flatten())], dim=1)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of (possibly fractional) timesteps. t [B] -> [B, dim] float32 (DiT/ADM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # [B, half]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class Attention(nn.Module):
    """Multi-head self-attention, split into qkv / attend / proj so that the factorised U-ViT block
    can rearrange tokens between the projection and the attention product."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.attn_drop = dropout
        self.proj_drop = nn.Dropout(dropout)

    def split_heads(self, qkv: torch.Tensor):
        """qkv [B, S, 3D] -> q, k, v each [B, heads, S, head_dim]."""
        B, S, _ = qkv.shape
        qkv = qkv.view(B, S, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def attend(self, q, k, v, mask: torch.Tensor | None = None) -> torch.Tensor:
        """q, k, v [B, h, S, dh]; mask [B, 1, 1, S] bool (True = key takes part) -> [B, S, D]."""
        dropout = self.attn_drop if self.training else 0.0
        if q.device.type == "cpu" and q.dtype == torch.bfloat16:  # (module docstring)
            o = _attend_bf16_cpu(q, k, v, mask, dropout)
        else:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        B, h, S, dh = o.shape
        return o.transpose(1, 2).reshape(B, S, h * dh)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        q, k, v = self.split_heads(self.qkv(x))  # x [B, S, D]
        return self.proj_drop(self.proj(self.attend(q, k, v, mask)))  # [B, S, D]


def _attend_bf16_cpu(q, k, v, mask, dropout: float) -> torch.Tensor:
    """softmax(q k^T / sqrt(dh)) v in bf16 throughout -> [B, h, S, dh]. Autocast is off so that it
    does not run the softmax in fp32 (2.5x slower here, for no accuracy: the bf16 softmax kernel
    accumulates in fp32 and the result is rounded to bf16 either way)."""
    with torch.autocast("cpu", enabled=False):
        w = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)  # [B, h, S, S]
        if mask is not None:
            w = w.masked_fill(~mask, float("-inf"))
        w = torch.softmax(w, dim=-1)
        if dropout:
            w = F.dropout(w, dropout)
        return w @ v  # [B, h, S, dh]


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2. With `local` (Mix-FFN, as SegFormer and Sana): fc1's output on the patch
    tokens also passes a depthwise 3x3 conv over each frame's patch grid, added as a residual, so
    that neighbouring patches agree at their borders. The conv starts at zero: a network grown
    from a checkpoint without it starts as that checkpoint."""

    def __init__(self, dim: int, hidden: int, dropout: float = 0.0, local: bool = False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(dim, hidden), nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)
        self.local = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden) if local else None

    def forward(self, x: torch.Tensor, extras: int = 0, grid_hw: tuple[int, int] | None = None) -> torch.Tensor:
        # x [B, S, D]: `extras` condition tokens, then patches in (t, i, j) order on a grid_hw grid
        h = self.fc1(x)  # [B, S, M]
        if self.local is not None:
            B, S, M = h.shape
            Hp, Wp = grid_hw
            pa = h[:, extras:].reshape(B, -1, Hp, Wp, M)  # [B, T', H', W', M]
            Tp = pa.shape[1]
            img = pa.permute(0, 1, 4, 2, 3).reshape(B * Tp, M, Hp, Wp)  # [B*T', M, H', W']
            mixed = self.local(img).view(B, Tp, M, Hp, Wp).permute(0, 1, 3, 4, 2).reshape(B, -1, M)
            h = torch.cat([h[:, :extras], h[:, extras:] + mixed], dim=1)
        return self.drop(self.fc2(self.drop(F.gelu(h, approximate="tanh"))))


def key_mask(keep: torch.Tensor | None) -> torch.Tensor | None:
    """[B, S] bool (True = real token) -> [B, 1, 1, S] for SDPA (broadcast over heads and queries)."""
    return None if keep is None else keep[:, None, None, :]


def xavier_init_linears(module: nn.Module) -> None:
    """DiT's basic init: xavier-uniform weights, zero biases for every Linear under `module`."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


@contextmanager
def flush_denormal():
    """Flush subnormal floats to zero inside the block, on CPUs that support it.

    Adam's second moments, the EMA and small activations drift into subnormal floats, which x86
    CPUs process ~100x slower: a CPU training step of `small` went from 7.7 s to 1.3 s. The flag is
    processor state for the whole thread, so it is restored on exit instead of leaking into the
    caller's code (which may rely on IEEE subnormals)."""
    enabled = torch.set_flush_denormal(True)
    try:
        yield enabled
    finally:
        if enabled:
            torch.set_flush_denormal(False)

