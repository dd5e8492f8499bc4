"""`FAMILY:small` and `FAMILY:PATH` as a `Generator`, for the one-pass families (VAE, GAN): find
the weights, load them, sample, record the protocol. Each family subclasses `OnePassGenerator`
with its names, its network class and how it samples.

`FAMILY:small` (or `FAMILY:FAMILY-small`) is always the checkpoint shipped in the family's
`weights/` folder, whose SHA-256 is in its `registry.json`; any other argument is a path to a
`.safetensors` export or a `.pt` training checkpoint. The weights' SHA-256 goes into every clip's
record.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.hashing import sha256_file
from generators.checkpoints import load_failure
from generators.uvit.layers import flush_denormal
from generators.uvit.text import token_count

DEFAULT_FPS = 8.0  # the world's frame rate, which the shipped models learned


class OnePassGenerator:
    """Generator protocol over a trained one-pass family. Subclasses set the class attributes
    and implement `network_from_checkpoint` (a `.pt` file) and `sample`."""

    family: str  # "vae" | "gan": the spec prefix, preset prefix and export format's name
    label: str  # "VAE" | "GAN": in error messages
    sampler: str  # recorded in the protocol, e.g. "vae-prior"
    shipped: Path  # the folder of shipped weights
    presets: dict  # the family's preset registry
    config_cls: type  # its config dataclass (with `from_dict`)
    network_cls: type  # what an export's tensors load into (built from the config)
    train_command: str  # how to make weights of a preset; "{preset}" is filled in

    def __init__(self, arg: str, device: str = "cpu"):
        self.spec = f"{self.family}:{arg}"
        self.path = self.resolve_weights(arg)
        self.net = self.load_network(self.path).to(device)
        self.sha256 = sha256_file(self.path)

    # ---- weights -------------------------------------------------------------------------------
    @classmethod
    def resolve_weights(cls, arg: str) -> Path:
        """The weights file of `FAMILY:ARG`: a shipped name (`small`) or a checkpoint path."""
        f = cls.family
        name = arg.removeprefix(f"{f}-")
        if name in cls.presets and "/" not in arg:
            shipped = cls.shipped / f"{f}-{name}.safetensors"
            if shipped.is_file():
                return shipped
            raise MissingResourceError(f"{f}:{arg}: no shipped weights for this preset; train them with "
                                       f"`{cls.train_command.format(preset=f'{f}-{name}')} --out CKPT.pt` "
                                       f"and pass {f}:CKPT.safetensors")
        p = Path(arg).expanduser()
        if p.is_dir():
            raise BadInputError(f"{f}:{arg}: is a folder; give a .safetensors or .pt checkpoint file")
        if not p.is_file():
            raise MissingResourceError(f"{f}:{arg}: no such checkpoint file; check the path, or use {f}:small")
        if p.suffix not in (".safetensors", ".pt"):
            raise BadInputError(f"{f}:{arg}: not a .safetensors or .pt checkpoint")
        return p

    @classmethod
    def load_network(cls, path: Path) -> torch.nn.Module:
        """The network in eval mode, without gradients, from a `.safetensors` export or a `.pt`
        training checkpoint; a file that does not load is a one-line BadInputError naming it."""
        try:
            net = cls.network_from_checkpoint(path) if path.suffix == ".pt" else cls._from_export(path)
        except (BadInputError, MissingResourceError):
            raise
        except Exception as e:  # a user-given file that does not load is bad input, not a bug
            msg = load_failure(e, 160)
            raise BadInputError(f"{path}: unreadable or corrupt {cls.label} checkpoint ({msg}); "
                                "retrain or pick another")
        return net.requires_grad_(False).eval()

    @classmethod
    def _from_export(cls, path: Path) -> torch.nn.Module:
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != f"evalkit-{cls.family}-v1":
                raise ValueError(f"not an evalkit {cls.label} export")
            cfg = cls.config_cls.from_dict(json.loads(meta["model_config"]))
            state = {k: f.get_tensor(k).float() for k in f.keys()}  # float16 on disk
        net = cls.network_cls(cfg)
        net.load_state_dict(state)
        return net

    @classmethod
    def network_from_checkpoint(cls, path: Path) -> torch.nn.Module:
        raise NotImplementedError

    def sample(self, prompts: list[str], seeds: list[int]) -> torch.Tensor:
        """[B, T, C, H, W] in [0, 1], clip i a pure function of (prompts[i], seeds[i])."""
        raise NotImplementedError

    # ---- the Generator protocol ----------------------------------------------------------------
    def protocol(self) -> dict:
        return {"model": self.spec, "weights_sha256": self.sha256, "preset": f"{self.family}-{self.net.cfg.name}",
                "sampler": self.sampler, "steps": 1, "guidance": None, "guidance_convention": None}

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
            videos = self.sample(prompts, seeds)  # [B, T, C, H, W] in [0, 1]
        return [Clip.from_tensor(v, fps=DEFAULT_FPS, prompt=p) for v, p in zip(videos.cpu(), prompts)]


__all__ = ["DEFAULT_FPS", "OnePassGenerator"]
