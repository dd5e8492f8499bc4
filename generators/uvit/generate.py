"""`uvit:PRESET_OR_CKPT` as a `Generator`: load weights, sample batches, record the protocol.

Weights resolve in this order: a path (a `.safetensors` export or a `.pt` training checkpoint,
whose EMA weights are used); `$EVALKIT_HOME/models/uvit-NAME.safetensors` (a model the user
retrained); the checkpoint shipped in this package (`weights/NAME.safetensors`). The weights'
SHA-256 goes into every clip's record.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.hashing import sha256_file
from generators.checkpoints import load_failure, save_safetensors_atomic
from generators.training import pick_device

from .configs import PRESETS, UViTConfig
from .layers import flush_denormal
from .network import TextToVideoUViT
from .samplers import DEFAULT_SPACING, DEFAULT_STEPS, GUIDANCE_CONVENTION, SAMPLERS, check_guidance_interval, parse_guidance_interval
from .text import token_count

SHIPPED = Path(__file__).parent / "weights"
DEFAULT_GUIDANCE = 3.0  # for a checkpoint without a measured scale of its own
DEFAULT_FPS = 8.0  # the world's frame rate, which the shipped models learned


def default_guidance(sha256: str) -> float:
    """The guidance scale a shipped checkpoint was measured best at (`sampling.guidance` of the
    registry entry with this SHA-256, wherever the file lives), else `DEFAULT_GUIDANCE`: the
    model's own default, as a diffusers pipeline carries one."""
    return float(_registry_sampling(sha256).get("guidance", DEFAULT_GUIDANCE))


def default_guidance_rescale(sha256: str) -> float:
    """The guidance rescale of a shipped checkpoint's measured setting (`sampling.guidance_rescale`),
    else 0 (none)."""
    return float(_registry_sampling(sha256).get("guidance_rescale", 0.0))


def default_guidance_interval(sha256: str) -> tuple[float, float] | None:
    """The guidance interval of a shipped checkpoint's measured setting (`sampling.guidance_interval`,
    fractions of the noise chain), else None (guidance at every step)."""
    iv = _registry_sampling(sha256).get("guidance_interval")
    return None if iv is None else (float(iv[0]), float(iv[1]))


def _registry_sampling(sha256: str) -> dict:
    reg = json.loads((SHIPPED / "registry.json").read_text())
    return next((e for e in reg.values() if e.get("sha256") == sha256), {}).get("sampling", {})


def export_weights(checkpoint, out, dtype: torch.dtype = torch.float16) -> Path:
    """A training checkpoint's EMA weights as safetensors (no pickled code), with the model
    config and training summary in the metadata."""
    from .train import load_checkpoint

    state, tc = load_checkpoint(checkpoint)
    tensors = {k: v.detach().to(dtype if v.is_floating_point() else v.dtype).contiguous()
               for k, v in state.ema.state_dict().items()}
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if bad:  # a diverged run's weights sample black clips: not weights to ship
        raise BadInputError(f"{checkpoint}: {len(bad)} of {len(tensors)} weight tensors hold NaN or infinite values "
                            f"(e.g. {bad[0]}): the run diverged; resume an earlier checkpoint with a lower --lr")
    meta = {"format": "evalkit-uvit-v1", "model_config": json.dumps(state.ema.cfg.to_dict()),
            "train_config": json.dumps({k: v for k, v in tc.__dict__.items()}, default=str),
            "step": str(state.step), "clips_seen": str(state.clips_seen),
            "train_minutes": f"{state.seconds / 60:.1f}", "cpu_minutes": f"{state.cpu_seconds / 60:.1f}"}
    return save_safetensors_atomic(tensors, meta, out)


def resolve_weights(arg: str) -> Path:
    p = Path(arg).expanduser()
    if p.suffix in (".safetensors", ".pt") or "/" in arg or p.is_dir():
        if p.is_dir():  # a folder given for the file: bad input (exit 2), as everywhere
            raise BadInputError(f"uvit:{arg}: is a folder; give a .safetensors or .pt checkpoint file")
        if not p.is_file():
            raise MissingResourceError(f"uvit:{arg}: no such checkpoint file; check the path")
        return p
    if (SHIPPED / f"{arg}.safetensors").is_file():  # a named shipped checkpoint, e.g. small-stage1
        return SHIPPED / f"{arg}.safetensors"
    if arg not in PRESETS:
        shipped = sorted(p.stem for p in SHIPPED.glob("*.safetensors"))
        # a named model that is not there: exit 3, as vae: and gan: say (it was 2)
        raise MissingResourceError(f"uvit:{arg}: unknown preset or checkpoint; use one of "
                                   f"{sorted(PRESETS) + shipped} or a path to a .safetensors/.pt file")
    from evalkit.home import evalkit_home

    for cand in (evalkit_home(create=False) / "models" / f"uvit-{arg}.safetensors", SHIPPED / f"{arg}.safetensors"):
        if cand.is_file():
            return cand
    raise MissingResourceError(f"uvit:{arg}: no trained weights for this preset (none shipped, none in "
                               f"{evalkit_home(create=False) / 'models'}); train them with `evalkit generator train "
                               f"--preset {arg}` and export, or pass a checkpoint path")


def load_network(path: Path, expect_preset: str | None = None) -> TextToVideoUViT:
    try:
        if path.suffix == ".pt":
            from .train import load_checkpoint

            net = load_checkpoint(path)[0].ema
        else:
            from safetensors import safe_open

            with safe_open(str(path), "pt") as f:
                meta = f.metadata() or {}
                if meta.get("format") != "evalkit-uvit-v1":
                    raise ValueError("not an evalkit U-ViT export")
                cfg = UViTConfig.from_dict(json.loads(meta["model_config"]))
                state = {k: f.get_tensor(k).float() if f.get_tensor(k).is_floating_point() else f.get_tensor(k)
                         for k in f.keys()}
            net = TextToVideoUViT(cfg)
            net.load_state_dict(state)
    except MissingResourceError:
        raise
    except BadInputError as e:  # named with the file it is about (a config "unknown fields" did not say which)
        raise BadInputError(str(e) if str(e).startswith(str(path)) else f"{path}: {e}") from None
    except Exception as e:
        msg = load_failure(e, 160)
        raise BadInputError(f"{path}: unreadable or corrupt U-ViT checkpoint ({msg}); re-export or retrain it")
    if expect_preset and net.cfg.name != expect_preset:
        raise BadInputError(f"{path}: a checkpoint of preset {net.cfg.name!r}, not {expect_preset!r}")
    if not all(bool(torch.isfinite(p).all()) for p in net.parameters()):  # a diverged run's: black clips, exit 0
        raise BadInputError(f"{path}: its weights hold NaN or infinite values (a run that diverged); retrain "
                            "with a lower --lr, or resume an earlier checkpoint")
    return net.eval()


class UViTGenerator:
    def __init__(self, arg: str, sampler: str = "dpmpp-2m", steps: int | None = None,
                 guidance: float | None = None, batch_size: int = 8, device: str = "cpu",
                 guidance_rescale: float | None = None, precision: str = "auto",
                 guidance_interval: tuple[float, float] | str | None = None):
        """`device`: cpu, cuda or auto (cuda when there is one); `precision`: fp32, bf16 (the
        network under bf16 autocast; the sampler's updates stay fp32) or auto (bf16 on a GPU,
        where it is several times faster, fp32 on a CPU, so that CPU clips stay as they were)."""
        sampler = sampler.strip().lower() if isinstance(sampler, str) else sampler  # DDIM as ddim
        if sampler not in SAMPLERS:
            raise BadInputError(f"--sampler {sampler}: unknown; choose one of {', '.join(sorted(SAMPLERS))}")
        self.device = pick_device(device)
        if precision not in ("auto", "fp32", "bf16"):
            raise BadInputError(f"--precision {precision}: choose auto, fp32 or bf16")
        self.bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self.spec = f"uvit:{arg}"
        self.path = resolve_weights(arg)
        self.net = load_network(self.path, arg if arg in PRESETS else None).to(self.device)
        self.sha256 = sha256_file(self.path)
        self.sampler = sampler
        self.guidance = float(guidance) if guidance is not None else default_guidance(self.sha256)
        self.guidance_rescale = (float(guidance_rescale) if guidance_rescale is not None
                                 else default_guidance_rescale(self.sha256))
        if not 0.0 <= self.guidance_rescale <= 1.0:
            raise BadInputError(f"--guidance-rescale {self.guidance_rescale}: must be in [0, 1]")
        if isinstance(guidance_interval, str):  # 'LO:HI' or 'none' (every step, over a registry default)
            self.guidance_interval = parse_guidance_interval(guidance_interval)
        elif guidance_interval is None:
            self.guidance_interval = default_guidance_interval(self.sha256)
        else:
            self.guidance_interval = check_guidance_interval(guidance_interval)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps < 1):
            # 0 ran the default 20 silently, and "ten" failed inside the sampler (session 32)
            raise BadInputError(f"--steps {steps!r}: give a whole number of sampler steps, 1 or more")
        self.steps = steps or DEFAULT_STEPS[sampler]
        self.batch_size = batch_size

    def protocol(self) -> dict:
        proto = {"model": self.spec, "weights_sha256": self.sha256, "preset": self.net.cfg.name,
                 "sampler": self.sampler, "steps": self.steps, "guidance": self.guidance,
                 "guidance_rescale": self.guidance_rescale, "guidance_convention": GUIDANCE_CONVENTION,
                 # where the steps fall decides the clip as much as their number (session 32)
                 "timestep_spacing": DEFAULT_SPACING[self.sampler],
                 "precision": "bf16-autocast" if self.bf16 else "fp32"}
        if self.guidance_interval is not None:  # absent: guided at every step (and earlier run keys hold)
            proto["guidance_interval"] = list(self.guidance_interval)
        return proto

    def check_prompts(self, prompts: list[str]) -> None:
        for p in prompts:
            n = token_count(p)
            if n > self.net.cfg.text_len:
                raise BadInputError(f"prompt {p[:60]!r}...: {n} tokens, over this model's {self.net.cfg.text_len}; "
                                    "shorten it")

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        self.check_prompts(prompts)
        with flush_denormal():  # subnormal activations are ~100x slower on x86 CPUs
            return self._generate(prompts, seeds)

    def _generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        # A clip must not depend on what it was batched with. The maths of a batch row does not
        # depend on the other rows, but the kernels chosen do depend on the batch's size: a clip
        # sampled in a batch of 8 came out 1 level off the same clip alone, and H.264 spread that
        # over 32,000 pixels (session 33). On the CPU each clip is sampled alone, which costs
        # nothing there (2 threads are busy with one clip); on a GPU batches are kept for speed,
        # and a clip can differ in the last bit with its batch's size.
        size = self.batch_size if self.device.type == "cuda" else 1
        out = []
        for i in range(0, len(prompts), size):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                videos = self.net.sample(prompts[i:i + size], sampler=self.sampler, steps=self.steps,
                                         guidance=self.guidance, guidance_rescale=self.guidance_rescale,
                                         guidance_interval=self.guidance_interval, seed=seeds[i:i + size])
            out += [Clip.from_tensor(v, fps=DEFAULT_FPS, prompt=p) for v, p in zip(videos.float().cpu(), prompts[i:i + size])]
        return out


def _text_stage(path: Path) -> dict:
    """A `pretrain-text` export as a lineage stage (its steps are not denoiser steps)."""
    from safetensors import safe_open

    for cand in (path, Path(__file__).resolve().parents[2] / path):
        if cand.is_file():
            with safe_open(str(cand), "pt") as f:
                summary = json.loads((f.metadata() or {}).get("summary", "{}"))
            return {"file": cand.name, "kind": "text-pretrain", "found": True, "step": int(summary.get("steps", 0)),
                    "clips_seen": int(summary.get("steps", 0)) * int(summary.get("batch_size", 0)),
                    "cpu_minutes": round(float(summary.get("cpu_seconds", 0.0)) / 60, 2)}
    return {"file": path.name, "kind": "text-pretrain", "found": False, "step": 0, "clips_seen": 0, "cpu_minutes": 0.0}


def lineage(path) -> dict:
    """A U-ViT export's training history over its warm starts: each stage's steps, clips and CPU
    minutes (from the export metadata, following `train_config.init_from` back to a fresh start)
    and their sums, the x-axis of a learning curve across checkpoints. A warm start that cannot be
    found ends the chain (`complete: False`)."""
    from safetensors import safe_open

    stages, p = [], Path(path)
    seen, complete = {p.resolve()}, True
    while True:
        with safe_open(str(p), "pt") as f:
            meta = f.metadata() or {}
        tc = json.loads(meta.get("train_config", "{}"))
        stages.append({"file": p.name, "step": int(meta.get("step", 0)), "clips_seen": int(meta.get("clips_seen", 0)),
                       "cpu_minutes": float(meta.get("cpu_minutes", 0.0))})
        if tc.get("text_init"):  # a text-encoder pre-training stage: its clips and CPU time count too
            stages.append(_text_stage(Path(tc["text_init"])))
            complete = complete and stages[-1]["found"]
        prev = tc.get("init_from")
        if not prev:
            break
        # the recorded path, from the repository, or a shipped file of that name; never a file
        # already in the chain (a shipped export named like its own warm start is not its parent)
        cands = [Path(prev), Path(__file__).resolve().parents[2] / prev, SHIPPED / Path(prev).name]
        nxt = next((c for c in cands if c.is_file() and c.resolve() not in seen), None)
        if nxt is None:
            complete = False
            break
        seen.add(nxt.resolve())
        p = nxt
    return {"stages": stages[::-1], "complete": complete,
            "steps": sum(s["step"] for s in stages if s.get("kind") != "text-pretrain"),
            "clips_seen": sum(s["clips_seen"] for s in stages),
            "cpu_minutes": round(sum(s["cpu_minutes"] for s in stages), 2)}
