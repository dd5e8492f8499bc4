"""The `Generator` protocol, prompt files, model specs, and writing generated clips to a folder.

A generator turns prompts and seeds into clips. Everything it did is recorded next to each clip
(`protocol()`: model, weights hash, sampler, steps, guidance and its convention), so that a
number computed on its clips can always say what made them. Generators never import the
evaluator's metrics or backbones: the model under test must not see its judge.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from evalkit.clip import Clip
from evalkit.clipset import ClipFolderWriter
from evalkit.errors import BadInputError, MissingResourceError, path_is

MAX_PROMPT_CHARS = 1000


@dataclass(frozen=True)
class Prompt:
    text: str
    probe: dict | None = field(default=None, compare=False)  # what the suite checks, if it says
    id: str | None = None


def _check_prompt(text, where: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadInputError(f"{where}: empty prompt; give some text")
    text = " ".join(text.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise BadInputError(f"{where}: prompt of {len(text)} characters is over the limit of "
                            f"{MAX_PROMPT_CHARS}; shorten it")
    return text


def load_prompts(arg: str) -> list[Prompt]:
    """`--prompts`: a text file (a prompt a line), a .jsonl file (`prompt`, optional `probe` and
    `id` keys a line), or, when no such file exists, the literal prompt itself."""
    path = Path(arg)
    if not path_is(path, "file"):  # a long literal prompt is no path the OS accepts
        if arg.endswith((".txt", ".jsonl")) and len(arg) < 4096:
            raise MissingResourceError(f"{arg}: no such prompts file; check the path")
        return [Prompt(_check_prompt(arg, "--prompts"))]
    prompts = []
    try:
        # -sig: Windows editors save UTF-8 with a BOM, which would otherwise start the first prompt
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; give a text or .jsonl file of prompts")
    for n, line in enumerate(lines, 1):
        where = f"{path}:{n}"
        if not line.strip() or (path.suffix != ".jsonl" and line.lstrip().startswith("#")):
            continue
        if path.suffix == ".jsonl":
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInputError(f"{where}: not valid JSON ({e.msg}); one object a line")
            if not isinstance(rec, dict) or "prompt" not in rec:
                raise BadInputError(f"{where}: each line needs a \"prompt\" key")
            probe = rec.get("probe")
            if probe is not None and not isinstance(probe, dict):
                raise BadInputError(f"{where}: \"probe\" must be an object")
            prompts.append(Prompt(_check_prompt(rec["prompt"], where), probe, rec.get("id")))
        else:
            prompts.append(Prompt(_check_prompt(line, where)))
    if not prompts:
        raise BadInputError(f"{path}: no prompts in this file")
    return prompts


@runtime_checkable
class Generator(Protocol):
    spec: str

    def protocol(self) -> dict:
        """What made the clips: model, weights_sha256, sampler, steps, guidance, guidance_convention."""

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        """One clip per (prompt, seed) pair; the same pair always gives the same clip."""


def get_generator(spec: str, **options) -> Generator:
    """A generator from a model spec: `world`, `control:KIND`, `folder:DIR`, `uvit:PRESET_OR_CKPT`,
    `vae:small|CKPT`, `gan:small|CKPT`, `diffusers:ID_OR_PATH`."""
    kind, _, arg = spec.partition(":")
    if spec == "world":
        from generators.world import WorldGenerator

        return WorldGenerator(**options)
    if kind == "control" and arg:
        from generators.world import ControlGenerator

        return ControlGenerator(arg, **options)
    if kind == "folder" and arg:
        from generators.folder import FolderGenerator

        return FolderGenerator(arg)
    if kind == "uvit" and arg:
        from generators.uvit.generate import UViTGenerator

        return UViTGenerator(arg, **options)
    if kind == "vae" and arg:
        from generators.vae.generate import VAEGenerator

        return VAEGenerator(arg, **options)
    if kind == "gan" and arg:
        from generators.gan.generate import GANGenerator

        return GANGenerator(arg, **options)
    if kind == "diffusers" and arg:
        from generators.hf_diffusers import DiffusersGenerator

        return DiffusersGenerator(arg, **options)
    raise BadInputError(f"unknown model spec {spec!r}; use world, control:noise|frozen|shuffled, "
                        "folder:DIR, uvit:PRESET_OR_CKPT, vae:small|CKPT, gan:small|CKPT or "
                        "diffusers:ID_OR_PATH")


def sample_seed(seed: int, prompt_index: int, k: int) -> int:
    """The seed of sample k of prompt i in a run with base `seed` (independent streams)."""
    return int(np.random.SeedSequence([seed, prompt_index, k]).generate_state(1)[0] >> 1)


def generate_folder(gen: Generator, prompts: list[Prompt], out, *, n_per_prompt: int = 1, seed: int = 0,
                    batch_size: int = 8, progress: bool = True, postprocess=None) -> list[dict]:
    """Generate n_per_prompt clips per prompt into `out` (clips/*.mp4 + index.jsonl, written
    atomically), each record carrying the generator's full protocol and its seed.

    `postprocess(path, record) -> dict` runs on each written clip before the folder appears (the
    CLI signs and watermarks there); the fields it returns join the clip's record."""
    if n_per_prompt < 1:
        raise BadInputError(f"--n-per-prompt must be positive, got {n_per_prompt}")
    jobs = [(i, k, p) for i, p in enumerate(prompts) for k in range(n_per_prompt)]
    proto = gen.protocol()
    with ClipFolderWriter(out) as writer:
        bar = tqdm(total=len(jobs), desc=f"generate {gen.spec}", unit="clip", disable=None if progress else True)
        for start in range(0, len(jobs), batch_size):
            batch = jobs[start:start + batch_size]
            seeds = [sample_seed(seed, i, k) for i, k, _ in batch]
            clips = gen.generate([p.text for _, _, p in batch], seeds)
            for (i, k, p), s, clip in zip(batch, seeds, clips):
                # what the clip is wins over what was asked: a pipeline may round frames or size
                rec = {"id": f"{p.id or f'p{i:04d}'}-{k:02d}", "prompt": p.text, "seed": s, **proto,
                       "fps": clip.fps, "frames": clip.num_frames, "size": list(clip.size)}
                for key in ("frames", "size"):
                    if proto.get(key) is not None and proto[key] != rec[key]:
                        rec[f"{key}_requested"] = proto[key]
                if p.probe is not None:
                    rec["probe"] = p.probe
                world_rec = clip.meta.get("record")
                if world_rec and "scene" in world_rec:
                    rec["split"], rec["scene"] = world_rec["split"], world_rec["scene"]
                written = writer.add(clip, rec)
                if postprocess is not None:
                    written.update(postprocess(writer.stage / written["file"], written) or {})
            bar.update(len(batch))
        bar.close()
    return writer.records
