"""U-ViT configurations: one frozen dataclass, named presets, and cost estimates.

A config fully describes a checkpoint's architecture and its diffusion parameterisation, so it is
stored next to the weights (`to_dict` / `from_dict`) and a checkpoint from another preset is
refused by name rather than by a shape error deep inside `load_state_dict`.

Presets (as DiT's size dict): `tiny` for tests (a forward pass in milliseconds on a CPU), `small`
the CPU default that ships with the repository, `base` for GPUs (>= 50M parameters).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from evalkit.errors import BadInputError
from generators.presets import config_from_dict, lookup_preset

TIME_FREQ_DIM = 256  # width of the sinusoidal timestep features fed to the time MLP (as DiT)
VOCAB_SIZE = 49408  # open_clip's BPE vocabulary (SimpleTokenizer), SOT/EOT included
H100_BF16_PEAK_FLOPS = 989e12  # dense bf16 tensor-core peak of an H100 SXM


@dataclass(frozen=True)
class UViTConfig:
    name: str = "custom"
    # video
    frames: int = 16
    image_size: int = 32
    channels: int = 3
    patch_size: int = 4  # spatial patch (pixels a side)
    temporal_patch: int = 1  # tubelet length in frames
    # transformer
    width: int = 256
    depth: int = 9  # odd: depth // 2 in-blocks, one mid-block, depth // 2 out-blocks with long skips
    heads: int = 4
    mlp_ratio: float = 4.0
    qkv_bias: bool = False
    attention: str = "joint"  # "joint" full attention | "factorised" spatial then temporal per block
    pos_embed: str = "learned"  # "learned" (initialised to sin-cos) | "fixed" (sin-cos buffer)
    final_conv: bool = True  # 3x3 conv per frame after unpatchify (U-ViT)
    # Local mixing across patch borders (off in the shipped checkpoints; `generator train --mix-ffn
    # --head-channels 16` grows a checkpoint into them, both starting as identities). A token
    # decodes its own 4x4 pixels alone, so a half-trained U-ViT's x0 estimates are mosaics of
    # patch-sized tiles and its samples objects broken into tiles:
    mix_ffn: bool = False  # Mix-FFN (SegFormer, Sana): a depthwise 3x3 conv over the patch grid in every MLP
    head_channels: int = 0  # >0: also decode this many features a pixel, mixed by a 3x3 conv into the output
    dropout: float = 0.0
    grad_checkpointing: bool = False
    # text encoder (the generator's own; never an evaluator's CLIP)
    text_len: int = 32  # tokens incl. SOT/EOT, <= 77
    text_width: int = 128
    text_depth: int = 2
    text_heads: int = 4
    text_vocab_dim: int = 32  # factorised token embedding (ALBERT): VOCAB x this, then a linear to width
    mask_text_padding: bool = True  # False keeps SDPA mask-free (flash kernel) at the cost of attending pads
    cond_drop_prob: float = 0.1  # classifier-free guidance: prompt replaced by the null embedding
    # diffusion
    schedule: str = "linear"  # "linear" (1e-4 .. 0.02) | "cosine" (Nichol & Dhariwal)
    timesteps: int = 1000
    snr_shift: float = 1.0  # SNR(t) / shift**2 (simple diffusion's shifted schedule); 1 = unshifted
    prediction: str = "eps"  # what the network outputs: "eps" | "v" | "x0" (samplers always see eps)
    learn_sigma: bool = False  # fixed posterior variances only; kept as a field so configs say so

    def __post_init__(self):
        def bad(msg: str):
            raise BadInputError(f"uvit config {self.name!r}: {msg}")

        if self.depth < 1 or self.depth % 2 == 0:
            bad(f"depth must be odd (in-blocks, mid-block, out-blocks), got {self.depth}")
        if self.image_size % self.patch_size:
            bad(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.frames % self.temporal_patch:
            bad(f"frames {self.frames} is not a multiple of temporal_patch {self.temporal_patch}")
        if self.width % self.heads or self.text_width % self.text_heads:
            bad("width must be divisible by heads (and text_width by text_heads)")
        if not 2 <= self.text_len <= 77:
            bad(f"text_len must be in [2, 77], got {self.text_len}")
        if self.attention not in ("joint", "factorised"):
            bad(f"attention must be 'joint' or 'factorised', got {self.attention!r}")
        if self.pos_embed not in ("learned", "fixed"):
            bad(f"pos_embed must be 'learned' or 'fixed', got {self.pos_embed!r}")
        if self.schedule not in ("linear", "cosine"):
            bad(f"schedule must be 'linear' or 'cosine', got {self.schedule!r}")
        if self.prediction not in ("eps", "v", "x0"):
            bad(f"prediction must be 'eps', 'v' or 'x0', got {self.prediction!r}")
        if self.learn_sigma:
            bad("learn_sigma=True is not supported (the samplers use fixed variances)")
        if self.head_channels < 0:
            bad(f"head_channels must be >= 0, got {self.head_channels}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            bad(f"cond_drop_prob must be in [0, 1), got {self.cond_drop_prob}")

    # ---- derived sizes ---------------------------------------------------------------------------
    @property
    def grid(self) -> tuple[int, int, int]:
        """(T', H', W'): the patch grid."""
        s = self.image_size // self.patch_size
        return self.frames // self.temporal_patch, s, s

    @property
    def num_patches(self) -> int:
        t, h, w = self.grid
        return t * h * w

    @property
    def num_extra_tokens(self) -> int:
        return 1 + self.text_len  # time token + text tokens

    @property
    def seq_len(self) -> int:
        return self.num_extra_tokens + self.num_patches

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UViTConfig:
        return config_from_dict(cls, d, "uvit")

PRESETS: dict[str, UViTConfig] = {
    # tests: 4 frames of 16x16, 64 patch tokens; ~0.2M parameters
    "tiny": UViTConfig(
        name="tiny",
        frames=4,
        image_size=16,
        patch_size=4,
        width=64,
        depth=3,
        heads=4,
        text_len=16,
        text_width=32,
        text_depth=1,
        text_heads=2,
        text_vocab_dim=16,
    ),
    # CPU default: 16 frames of 32x32, tubelets 2x4x4 (512 patch tokens); a few M parameters
    "small": UViTConfig(
        name="small",
        frames=16,
        image_size=32,
        patch_size=4,
        temporal_patch=2,
        width=192,
        depth=7,
        heads=3,
        text_len=32,  # world captions take up to 28 tokens with SOT/EOT
        text_width=128,
        text_depth=2,
        text_heads=2,
        text_vocab_dim=16,
        schedule="cosine",  # joint attention: at 512 tokens it is faster on a CPU than factorised
        # v-prediction: a reweighted noise MSE that keeps learning the low frequencies (mean
        # brightness, background) at high noise, where epsilon prediction left them wrong.
        prediction="v",
        # Unshifted, as the shipped stage-1/2 checkpoints were trained (their registry commands
        # must reproduce them). `generator train --snr-shift 4` is the better recipe measured since:
        # 16 nearly identical frames average the noise away, so at the cosine schedule's own levels
        # an object's place stays visible until the last ~10% of steps and the network barely
        # learns to decide it; SNR / 4^2 (simple diffusion's shift for 16x the pixels) gives that
        # decision most of the schedule (FVD 1664 -> 988 in 1,632 more steps, README).
    ),
    # GPU: 16 frames of 64x64, tubelets 2x4x4 (2048 patch tokens); ~100M parameters.
    # No padding mask so that SDPA keeps the flash kernel under bf16 autocast.
    "base": UViTConfig(
        name="base",
        frames=16,
        image_size=64,
        patch_size=4,
        temporal_patch=2,
        width=768,
        depth=13,
        heads=12,
        text_len=77,
        text_width=512,
        text_depth=4,
        text_heads=8,
        text_vocab_dim=128,
        mask_text_padding=False,
        schedule="cosine",
    ),
}


# CPU, coarse tokens: `small`'s clips and text encoder, as 4x8x8 tubelets: 64 patch tokens (8x fewer),
# so a training step costs ~5x less on a CPU and the same minutes see ~5x more clips. A token's
# decoder (rank 192) cannot output the 768 values of per-pixel noise a 4x8x8 patch holds, so this
# preset predicts x0 (eps is then taken from x_t); with v it sampled pure noise.
PRESETS["small-coarse"] = dataclasses.replace(
    PRESETS["small"], name="small-coarse", patch_size=8, temporal_patch=4, prediction="x0", snr_shift=4.0
)

def get_config(name: str, **overrides) -> UViTConfig:
    """A preset by name, with fields replaced by `overrides` (validated)."""
    return lookup_preset(PRESETS, name, "uvit", overrides)

def num_params(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# ---- cost model (nanoGPT style: 2 FLOPs a multiply-add, backward = 2x forward) ---------------------


def estimate_flops_per_sample(cfg: UViTConfig, training: bool = True, text_encoder: bool = True) -> float:
    """Matmul, convolution and attention FLOPs for one clip through the network.

    Counts what dominates (linear layers, the patch-embed and output convolutions, the two attention
    products per layer); norms, activations and softmax are left out, as nanoGPT does. The test
    checks it against torch's FlopCounterMode. `training=True` multiplies by 3 (forward + backward).
    """
    D, M = cfg.width, int(cfg.width * cfg.mlp_ratio)
    Tp, Hp, Wp = cfg.grid
    P, N, E, L = Hp * Wp, cfg.num_patches, cfg.num_extra_tokens, cfg.text_len
    S = E + N
    patch_dim = cfg.channels * cfg.temporal_patch * cfg.patch_size**2

    f = 2 * N * patch_dim * D  # patch embed
    f += 2 * (TIME_FREQ_DIM * D + D * D)  # time MLP
    f += 2 * L * cfg.text_width * D  # text projection
    for i in range(cfg.depth):
        f += 2 * S * (4 * D * D + 2 * D * M)  # qkv, out projection, MLP
        if cfg.attention == "joint":
            f += 4 * S * S * D  # QK^T and AV
        else:
            f += 4 * Tp * (E + P) ** 2 * D  # spatial: extras prepended to every frame
            f += 2 * N * 4 * D * D + 4 * P * Tp**2 * D  # temporal: own qkv/proj, patches only
        if i > cfg.depth // 2:
            f += 2 * S * 2 * D * D  # long-skip linear on the out-blocks
        if cfg.mix_ffn:
            f += 2 * N * M * 9  # depthwise 3x3 over the patch grid
    f += 2 * N * D * patch_dim  # decoder
    pixels = cfg.frames * cfg.image_size**2
    if cfg.final_conv:
        f += 2 * pixels * cfg.channels**2 * 9
    if cfg.head_channels:
        f += 2 * N * D * patch_dim // cfg.channels * cfg.head_channels  # feature decoder
        f += 2 * pixels * cfg.head_channels * cfg.channels * 9  # its 3x3 conv
    if text_encoder:
        Dt, Mt = cfg.text_width, 4 * cfg.text_width
        if cfg.text_vocab_dim != Dt:
            f += 2 * L * cfg.text_vocab_dim * Dt
        f += cfg.text_depth * (2 * L * (4 * Dt * Dt + 2 * Dt * Mt) + 4 * L * L * Dt)
    return float(3 * f if training else f)


def estimate_mfu(
    cfg: UViTConfig, samples_per_second: float, peak_flops: float = H100_BF16_PEAK_FLOPS
) -> float:
    """Model FLOPs utilisation of training: achieved model FLOP/s over the device's peak."""
    return estimate_flops_per_sample(cfg, training=True) * samples_per_second / peak_flops


def param_count_summary(cfg: UViTConfig) -> dict[str, int]:
    """Parameter counts of a freshly built network, split into denoiser and text encoder."""
    from .network import TextToVideoUViT  # local: configs must stay importable without the model

    net = TextToVideoUViT(cfg)
    return {"uvit": num_params(net.uvit), "text": num_params(net.text), "total": num_params(net)}


__all__ = [
    "H100_BF16_PEAK_FLOPS",
    "PRESETS",
    "TIME_FREQ_DIM",
    "VOCAB_SIZE",
    "UViTConfig",
    "estimate_flops_per_sample",
    "estimate_mfu",
    "get_config",
    "num_params",
    "param_count_summary",
]
