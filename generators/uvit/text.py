"""The generator's own text encoder: a small bidirectional transformer over open_clip's BPE tokens.

It is trained with the generator and never shares weights with an evaluator's CLIP (the model under
test must not be able to game its judge). Only the tokenizer is borrowed: open_clip's
`SimpleTokenizer` reads the BPE vocabulary bundled in the wheel, so tokenisation is offline and
deterministic (lower-cased, whitespace-normalised, truncated to `text_len` with EOT kept last).

Token embedding is factorised (ALBERT): VOCAB x text_vocab_dim, then a linear map to the width,
because a full 49408 x width table would dominate the small model's size and checkpoint.

Classifier-free guidance: a learned null sequence [text_len, width] (mask all True) stands for
"no prompt". The empty prompt maps to it, and so does every row flagged in `drop` (condition
dropout during training).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import nn

from .configs import VOCAB_SIZE, UViTConfig
from .layers import Attention, Mlp, key_mask, xavier_init_linears

SOT_ID, EOT_ID = 49406, 49407


@lru_cache(maxsize=1)
def get_tokenizer():
    from open_clip.tokenizer import SimpleTokenizer  # bundled BPE vocabulary: no network

    return SimpleTokenizer()


def tokenize(prompts: str | Sequence[str], text_len: int) -> torch.Tensor:
    """prompts -> LongTensor [B, text_len]: SOT, BPE ids, EOT, zero padding (truncated, EOT kept)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    return get_tokenizer()(list(prompts), context_length=text_len)


def token_count(prompt: str) -> int:
    """Tokens the prompt needs, SOT and EOT included: callers compare it with text_len to refuse an
    over-long prompt with a clear message instead of letting `tokenize` truncate it silently."""
    return len(get_tokenizer().encode(prompt)) + 2


def padding_mask(tokens: torch.Tensor) -> torch.Tensor:
    """tokens [B, L] -> [B, L] bool, True up to and including the first EOT.

    Not `tokens != 0`: id 0 is a real BPE token ("!"), and padding is also 0.
    """
    is_eot = tokens == EOT_ID
    first = torch.where(
        is_eot.any(1), is_eot.int().argmax(1), torch.full_like(tokens[:, 0], tokens.shape[1] - 1)
    )
    return torch.arange(tokens.shape[1], device=tokens.device)[None] <= first[:, None]


def is_empty(tokens: torch.Tensor) -> torch.Tensor:
    """[B, L] -> [B] bool: the prompt had no tokens (SOT immediately followed by EOT)."""
    return tokens[:, 1] == EOT_ID


class TextLayer(nn.Module):
    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.attn = Attention(width, heads, qkv_bias=True, dropout=dropout)
        self.mlp = Mlp(width, 4 * width, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), mask)  # x [B, L, Dt]; mask [B, 1, 1, L]
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """forward(tokens [B, L] long, drop [B] bool | None) -> (emb [B, L, text_width], mask [B, L] bool)."""

    def __init__(self, cfg: UViTConfig):
        super().__init__()
        self.cfg = cfg
        W = cfg.text_width
        self.token_embed = nn.Embedding(VOCAB_SIZE, cfg.text_vocab_dim)
        self.token_proj = (
            nn.Linear(cfg.text_vocab_dim, W, bias=False) if cfg.text_vocab_dim != W else nn.Identity()
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.text_len, W))
        self.layers = nn.ModuleList(TextLayer(W, cfg.text_heads, cfg.dropout) for _ in range(cfg.text_depth))
        self.norm = nn.LayerNorm(W)
        self.null_embed = nn.Parameter(torch.zeros(cfg.text_len, W))
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        xavier_init_linears(self)
        nn.init.normal_(self.token_embed.weight, std=0.02)
        nn.init.normal_(self.pos_embed, std=0.01)  # as CLIP's text tower
        nn.init.normal_(self.null_embed, std=0.02)

    def tokenize(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return tokenize(prompts, self.cfg.text_len).to(self.pos_embed.device)

    def null(self, batch: int, length: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The unconditional context: ([B, L, Dt], all-True mask [B, L])."""
        L = length or self.cfg.text_len
        emb = self.null_embed[:L].unsqueeze(0).expand(batch, L, -1)
        return emb, torch.ones(batch, L, dtype=torch.bool, device=emb.device)

    def forward(
        self, tokens: torch.Tensor, drop: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        B, L = tokens.shape
        if L > self.cfg.text_len:
            raise ValueError(f"{L} text tokens > text_len {self.cfg.text_len}")
        mask = padding_mask(tokens)  # [B, L]
        x = self.token_proj(self.token_embed(tokens)) + self.pos_embed[:, :L]  # [B, L, Dt]
        for layer in self.layers:
            x = layer(x, key_mask(mask))  # pads are never keys: real tokens do not see them
        x = self.norm(x) * mask[..., None]  # zero the pads so their ids cannot leak anywhere
        use_null = is_empty(tokens) if drop is None else (is_empty(tokens) | drop.to(tokens.device).bool())
        null_emb, null_mask = self.null(B, L)
        x = torch.where(use_null[:, None, None], null_emb.to(x.dtype), x)
        mask = torch.where(use_null[:, None], null_mask, mask)
        return x, mask
