"""`gan:small` and `gan:PATH` as a `Generator`: load the EMA generator, sample, record the protocol.

`gan:small` (or `gan:gan-small`) is always the checkpoint shipped in `weights/`, whose SHA-256 is
in `weights/registry.json`; any other argument is a path to a `.safetensors` export or a `.pt`
training checkpoint (whose EMA generator is used). The weights' SHA-256 goes into every clip's record.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.hashing import sha256_file
from generators.uvit.layers import flush_denormal
from generators.uvit.text import token_count

from .configs import PRESETS, GANConfig
from .model import VideoGenerator, sample_clips

SHIPPED = Path(__file__).parent / "weights"
DEFAULT_FPS = 8.0  # the world's frame rate, which the shipped model learned
SAMPLER = "gan-ema"  # z ~ N(0, I), one pass of the EMA generator


def resolve_weights(arg: str) -> Path:
    """The weights file of `gan:ARG`: a shipped name (`small`) or a checkpoint path."""
    name = arg.removeprefix("gan-")
    if name in PRESETS and "/" not in arg:
        shipped = SHIPPED / f"gan-{name}.safetensors"
        if shipped.is_file():
            return shipped
        raise MissingResourceError(f"gan:{arg}: no shipped weights for this preset; train them with "
                                   f"`python -m generators.gan.train --preset gan-{name} --out CKPT.pt` "
                                   "and pass "
                                   "gan:CKPT.safetensors")
    p = Path(arg).expanduser()
    if not p.is_file():
        raise MissingResourceError(f"gan:{arg}: no such checkpoint file; check the path, or use gan:small")
    if p.suffix not in (".safetensors", ".pt"):
        raise BadInputError(f"gan:{arg}: not a .safetensors or .pt checkpoint")
    return p


def load_network(path: Path) -> VideoGenerator:
    """The EMA generator in eval mode from a `.safetensors` export or a `.pt` training checkpoint."""
    try:
        if path.suffix == ".pt":
            from .train import load_checkpoint, settle_ema

            state, tc = load_checkpoint(path)
            settle_ema(state.net, tc)  # as the export does
            net = state.net.g_ema
        else:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != "evalkit-gan-v1":
                    raise ValueError("not an evalkit GAN export")
                cfg = GANConfig.from_dict(json.loads(meta["model_config"]))
                state = {k: f.get_tensor(k).float() for k in f.keys()}  # float16 on disk
            net = VideoGenerator(cfg)
            net.load_state_dict(state)
    except (BadInputError, MissingResourceError):
        raise
    except Exception as e:  # a user-given file that does not load is bad input, not a bug
        msg = " ".join(str(e).split())[:160]
        raise BadInputError(f"{path}: unreadable or corrupt GAN checkpoint ({msg}); retrain or pick another")
    return net.requires_grad_(False).eval()


class GANGenerator:
    """Generator protocol over a trained conditional video GAN's EMA generator (see model.py)."""

    def __init__(self, arg: str, device: str = "cpu"):
        self.spec = f"gan:{arg}"
        self.path = resolve_weights(arg)
        self.net = load_network(self.path).to(device)
        self.sha256 = sha256_file(self.path)

    def protocol(self) -> dict:
        return {"model": self.spec, "weights_sha256": self.sha256, "preset": f"gan-{self.net.cfg.name}",
                "sampler": SAMPLER, "steps": 1, "guidance": None, "guidance_convention": None}

    def check_prompts(self, prompts: list[str]) -> None:
        for p in prompts:
            n = token_count(p)
            if n > self.net.cfg.text_len:
                raise BadInputError(f"prompt {p[:60]!r}...: {n} tokens, over this model's "
                                    f"{self.net.cfg.text_len}; shorten it")

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        if len(prompts) != len(seeds):
            raise BadInputError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        self.check_prompts(prompts)
        with flush_denormal(), torch.no_grad():
            videos = sample_clips(self.net, prompts, seeds)  # [B, T, C, H, W] in [0, 1]
        return [Clip.from_tensor(v, fps=DEFAULT_FPS, prompt=p) for v, p in zip(videos.cpu(), prompts)]
