"""U-ViT for video (Bao et al. 2023, as Vidu extends it to space-time).

Every input is a token: one time token (sinusoidal features -> MLP), the prompt's text tokens
projected to the model width, and spatio-temporal patch tokens from a Conv3d patch embed form ONE
sequence `[time | text (L) | patches (T' * H' * W')]`. A patch at row i, column j, frame t gets
P_st(i, j, t) = P_s(i, j) + P_t(t): a 2-D sin-cos spatial component plus a 1-D sin-cos temporal
component (learned parameters initialised to sin-cos, or fixed buffers). Long skip connections
join shallow and deep blocks: out-block k concatenates its input with in-block (depth//2 - 1 - k)'s
output and maps 2D -> D with a linear layer. After the final norm and linear, the patch tokens are
unpatchified and a 3x3 convolution is applied per frame.

Attention (config `attention`):
- "joint": full attention over the whole sequence, time and text tokens included.
- "factorised" (Latte / Open-Sora STDiT): per block, spatial attention within each frame, then
  temporal attention across frames at each spatial location, then the MLP. The time and text
  tokens ("extras") are prepended to every frame's spatial sequence, so every patch attends to the
  condition in every block; the extras' own updates are the mean over frames of their per-frame
  outputs (one shared condition). They take no part in temporal attention: they have no time
  position, and leaving them out keeps temporal sequences T' long.

Text padding: with `mask_text_padding` the padded text tokens are masked out as keys everywhere.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from .configs import TIME_FREQ_DIM, UViTConfig
from .layers import Attention, Mlp, key_mask, sincos_1d, sincos_2d, timestep_embedding, xavier_init_linears


class TimestepEmbedder(nn.Module):
    """t [B] -> time token [B, D]: sinusoidal features, then a 2-layer MLP."""

    def __init__(self, width: int):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(TIME_FREQ_DIM, width), nn.SiLU(), nn.Linear(width, width))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        emb = timestep_embedding(t, TIME_FREQ_DIM)  # [B, 256] float32
        return self.mlp(emb.to(self.mlp[0].weight.dtype))


class Block(nn.Module):
    """Pre-norm transformer block; with `skip`, first fuses the long skip: Linear(cat[x, skip])."""

    def __init__(self, cfg: UViTConfig, skip: bool):
        super().__init__()
        D = cfg.width
        self.factorised = cfg.attention == "factorised"
        self.grid = cfg.grid
        # the extras count is E = S - num_patches: prompts may be shorter than text_len
        self.num_patches = cfg.num_patches
        self.skip_linear = nn.Linear(2 * D, D) if skip else None
        self.norm1 = nn.LayerNorm(D)
        self.attn = Attention(D, cfg.heads, cfg.qkv_bias, cfg.dropout)
        if self.factorised:
            self.norm_t = nn.LayerNorm(D)
            self.attn_t = Attention(D, cfg.heads, cfg.qkv_bias, cfg.dropout)
        self.norm2 = nn.LayerNorm(D)
        self.mlp = Mlp(D, int(D * cfg.mlp_ratio), cfg.dropout, local=cfg.mix_ffn)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None, keep: torch.Tensor | None,
                extras: int = 0) -> torch.Tensor:
        # x [B, S, D]; skip [B, S, D] or None; keep [B, S] bool or None (True = attendable key);
        # extras: the condition tokens before the patches (the Mix-FFN's conv skips them)
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))  # [B, S, 2D] -> [B, S, D]
        if self.factorised:
            x = x + self._spatial(self.norm1(x), keep)
            x = self._temporal(x)
        else:
            x = x + self.attn(self.norm1(x), key_mask(keep))
        return x + self.mlp(self.norm2(x), extras, self.grid[1:])

    def _spatial(self, h: torch.Tensor, keep: torch.Tensor | None) -> torch.Tensor:
        """Attention within each frame, the extras prepended to every frame. h [B, S, D] -> [B, S, D]."""
        B, S, D = h.shape
        E, (Tp, Hp, Wp) = S - self.num_patches, self.grid
        P = Hp * Wp
        qkv = self.attn.qkv(h)  # [B, S, 3D]: projected once, extras shared by all frames
        ex = qkv[:, None, :E].expand(B, Tp, E, 3 * D)  # [B, T', E, 3D]
        pa = qkv[:, E:].reshape(B, Tp, P, 3 * D)  # [B, T', P, 3D]
        seq = torch.cat([ex, pa], dim=2).reshape(B * Tp, E + P, 3 * D)  # [B*T', E+P, 3D]
        mask = None
        if keep is not None:
            m = torch.cat([keep[:, :E], keep.new_ones(B, P)], dim=1)  # [B, E+P]
            mask = key_mask(m.repeat_interleave(Tp, dim=0))  # [B*T', 1, 1, E+P]
        o = self.attn.attend(*self.attn.split_heads(seq), mask).view(B, Tp, E + P, D)
        o = torch.cat([o[:, :, :E].mean(dim=1), o[:, :, E:].reshape(B, Tp * P, D)], dim=1)  # [B, S, D]
        return self.attn.proj_drop(self.attn.proj(o))  # proj is linear, so mean-then-proj is exact

    def _temporal(self, x: torch.Tensor) -> torch.Tensor:
        """Attention across frames at each spatial location; extras untouched. x [B, S, D] -> [B, S, D]."""
        B, S, D = x.shape
        E, (Tp, Hp, Wp) = S - self.num_patches, self.grid
        P = Hp * Wp
        pa = self.norm_t(x[:, E:]).view(B, Tp, P, D).transpose(1, 2).reshape(B * P, Tp, D)  # [B*P, T', D]
        o = self.attn_t(pa).view(B, P, Tp, D).transpose(1, 2).reshape(B, Tp * P, D)  # [B, N, D]
        return torch.cat([x[:, :E], x[:, E:] + o], dim=1)


class UViT(nn.Module):
    """forward(x [B, T, C, H, W], t [B], text_emb [B, L, D_text], text_mask [B, L] bool) -> [B, T, C, H, W].

    The output is the noise eps (or v, per `cfg.prediction`) in model space ([-1, 1] data).
    """

    def __init__(self, cfg: UViTConfig):
        super().__init__()
        self.cfg = cfg
        D, C, p, tp = cfg.width, cfg.channels, cfg.patch_size, cfg.temporal_patch
        Tp, Hp, Wp = cfg.grid
        self.grad_checkpointing = cfg.grad_checkpointing
        self.patch_embed = nn.Conv3d(C, D, kernel_size=(tp, p, p), stride=(tp, p, p))
        self.time_embed = TimestepEmbedder(D)
        self.text_proj = nn.Linear(cfg.text_width, D)
        # P_st(i, j, t) = P_s(i, j) + P_t(t); extras (time, text) get their own learned positions
        learned = cfg.pos_embed == "learned"
        for name, shape in (("pos_spatial", (1, Hp * Wp, D)), ("pos_temporal", (1, Tp, D))):
            if learned:
                self.register_parameter(name, nn.Parameter(torch.zeros(shape)))
            else:
                self.register_buffer(name, torch.zeros(shape), persistent=False)
        self.pos_extra = nn.Parameter(torch.zeros(1, cfg.num_extra_tokens, D))
        half = cfg.depth // 2
        self.in_blocks = nn.ModuleList(Block(cfg, skip=False) for _ in range(half))
        self.mid_block = Block(cfg, skip=False)
        self.out_blocks = nn.ModuleList(Block(cfg, skip=True) for _ in range(half))
        self.norm = nn.LayerNorm(D)
        self.decoder_pred = nn.Linear(D, tp * p * p * C)
        self.final_layer = nn.Conv2d(C, C, 3, padding=1) if cfg.final_conv else nn.Identity()
        hc = cfg.head_channels  # per-pixel features whose 3x3 conv reaches across patch borders
        self.decoder_feat = nn.Linear(D, tp * p * p * hc) if hc else None
        self.head_conv = nn.Conv2d(hc, C, 3, padding=1) if hc else None
        self.initialize_weights()

    @torch.no_grad()
    def initialize_weights(self) -> None:
        cfg = self.cfg
        xavier_init_linears(self)
        w = self.patch_embed.weight  # as DiT: xavier on the flattened conv kernel
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.patch_embed.bias)
        for m in self.time_embed.mlp:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
        Tp, Hp, Wp = cfg.grid
        self.pos_spatial.copy_(sincos_2d(cfg.width, Hp, Wp)[None])
        self.pos_temporal.copy_(sincos_1d(cfg.width, torch.arange(Tp))[None])
        nn.init.trunc_normal_(self.pos_extra, std=0.02)
        # zero the last layer so that the network starts as the zero predictor (DiT's adaLN-zero idea)
        last = self.final_layer if cfg.final_conv else self.decoder_pred
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        for m in (self.head_conv, *(b.mlp.local for b in self.blocks())):  # start as identities
            if m is not None:
                nn.init.zeros_(m.weight)
                nn.init.zeros_(m.bias)

    def blocks(self):
        return [*self.in_blocks, self.mid_block, *self.out_blocks]

    def set_grad_checkpointing(self, enabled: bool = True) -> None:
        self.grad_checkpointing = enabled

    def patch_positions(self, tubelets: int | None = None, offset: torch.Tensor | None = None) -> torch.Tensor:
        """P_st for every patch, in token order (t, i, j). -> [T'*H'*W', D], or [B, n*H'*W', D]
        for a window of n = `tubelets` tubelets starting at tubelet `offset` [B] of each clip."""
        D = self.cfg.width
        if offset is None:
            return (self.pos_temporal[:, :, None] + self.pos_spatial[:, None]).reshape(-1, D)
        rows = offset[:, None] + torch.arange(tubelets, device=offset.device)  # [B, n]
        pt = self.pos_temporal[0][rows]  # [B, n, D]
        return (pt[:, :, None] + self.pos_spatial[:, None]).reshape(offset.shape[0], -1, D)

    def _run(self, block: Block, x, skip, keep, extras):
        if self.grad_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, x, skip, keep, extras, use_reentrant=False)
        return block(x, skip, keep, extras)

    def forward(
        self,
        x: torch.Tensor,
        t: torch.Tensor,
        text_emb: torch.Tensor,
        text_mask: torch.Tensor | None = None,
        frame_offset: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`frame_offset` [B] (in frames, a multiple of temporal_patch) marks x as a window of
        T < cfg.frames frames of longer clips (joint image-video training, as Latte and Vidu do):
        its patches get the temporal positions of the frames they came from."""
        cfg = self.cfg
        B, T, C, H, W = x.shape
        L = text_emb.shape[1]
        window = frame_offset is not None
        if (C, H, W) != (cfg.channels, cfg.image_size, cfg.image_size) or not (
            T == cfg.frames or (window and 0 < T < cfg.frames and T % cfg.temporal_patch == 0)
        ):
            raise ValueError(
                f"U-ViT {cfg.name}: expected [B, {cfg.frames}, {cfg.channels}, {cfg.image_size}, "
                f"{cfg.image_size}] (or fewer frames with frame_offset), got {list(x.shape)}"
            )
        if window and cfg.attention != "joint" and T != cfg.frames:
            raise ValueError(f"U-ViT {cfg.name}: frame windows need joint attention")
        if L > cfg.text_len:
            raise ValueError(f"U-ViT {cfg.name}: {L} text tokens > text_len {cfg.text_len}")
        E = 1 + L
        tok = self.patch_embed(x.permute(0, 2, 1, 3, 4))  # [B, C, T, H, W] -> [B, D, T', H', W']
        pos = self.patch_positions() if not window else self.patch_positions(
            T // cfg.temporal_patch, frame_offset.to(x.device).long() // cfg.temporal_patch
        )
        tok = tok.flatten(2).transpose(1, 2) + pos  # [B, N, D], order (t, i, j)
        time_tok = self.time_embed(t.expand(B) if t.dim() == 0 else t)[:, None]  # [B, 1, D]
        text_tok = self.text_proj(text_emb)  # [B, L, D]
        extras = torch.cat([time_tok.to(text_tok.dtype), text_tok], dim=1)  # [B, E, D]
        extras = extras + self.pos_extra[:, :E]
        h = torch.cat([extras, tok.to(extras.dtype)], dim=1)  # [B, S, D]
        keep = None
        if cfg.mask_text_padding and text_mask is not None:
            tm = text_mask.bool()  # a float mask would be read by SDPA as an additive bias
            keep = torch.cat([tm.new_ones(B, 1), tm, tm.new_ones(B, tok.shape[1])], dim=1)  # [B, S]

        skips = []
        for blk in self.in_blocks:
            h = self._run(blk, h, None, keep, E)
            skips.append(h)  # [B, S, D]
        h = self._run(self.mid_block, h, None, keep, E)
        for blk in self.out_blocks:
            h = self._run(blk, h, skips.pop(), keep, E)  # deepest in-block pairs with the first out-block
        h = self.norm(h[:, E:])  # [B, N, D]
        out = self.final_layer(self.unpatchify(self.decoder_pred(h)).flatten(0, 1))  # [B*T, C, H, W]
        if self.head_conv is not None:
            feat = self.unpatchify(self.decoder_feat(h), self.cfg.head_channels).flatten(0, 1)  # [B*T, F, H, W]
            out = out + self.head_conv(nn.functional.silu(feat))
        return out.view(B, T, C, H, W)

    def unpatchify(self, h: torch.Tensor, channels: int | None = None) -> torch.Tensor:
        """[B, T'*H'*W', tp*p*p*C] -> [B, T, C, H, W] (C = `channels`, default the video's)."""
        cfg = self.cfg
        (Tp, Hp, Wp), p, tp = cfg.grid, cfg.patch_size, cfg.temporal_patch
        C = channels or cfg.channels
        B = h.shape[0]
        Tp = h.shape[1] // (Hp * Wp)  # fewer than cfg.frames // tp for a frame window
        h = h.view(B, Tp, Hp, Wp, tp, p, p, C).permute(0, 1, 4, 7, 2, 5, 3, 6)  # [B, T', tp, C, H', p, W', p]
        return h.reshape(B, Tp * tp, C, Hp * p, Wp * p)
