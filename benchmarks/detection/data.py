"""The detectors' default training and evaluation data, made from scratch.

    python -m benchmarks.detection.data OUT [--n-world 120] [--n-prompts 60]

Writes under OUT: world-train, world-test, world-ood (real: the world's renders, 120 each),
photo-pans (real: 240 hand-held camera clips of still photographs, `benchmarks/detection/photos.py`;
`pip install -e '.[detdata]'` first for all nine photos, else the three that always ship) and
one folder per generator (generated, 2 clips a prompt over 60 world captions): uvit-ddim20,
uvit-dpmpp10, uvit-ddpm50 (the shipped U-ViT stage-1 checkpoint with three samplers),
uvit-gpu-dpmpp20 (the much later `uvit:small-gpu`, session 9: stage 2 before it), vae-small (the convolutional VAE, another family) and
gan-small (the conditional video GAN, a third family).
Folders that exist are kept, so an interrupted run continues. Then:

    evalkit detectors train --real OUT/world-train --real OUT/world-test --real OUT/world-ood \\
        --real ../shared/data/real-videos --real OUT/photo-pans --fake OUT/uvit-ddim20 --fake OUT/uvit-dpmpp10 \\
        --fake OUT/uvit-ddpm50 --fake OUT/uvit-gpu-dpmpp20 --fake OUT/vae-small --fake OUT/gan-small \\
        --out default
"""

from __future__ import annotations

import argparse
from pathlib import Path

GENERATORS = {  # folder: (model spec, sampler options, seed, prompts used)
    "uvit-ddim20": ("uvit:small-stage1", {"sampler": "ddim", "steps": 20}, 1, 60),
    "uvit-dpmpp10": ("uvit:small-stage1", {"sampler": "dpmpp-2m", "steps": 10}, 2, 60),
    "uvit-ddpm50": ("uvit:small-stage1", {"sampler": "ddpm", "steps": 50, "guidance": 2.0}, 3, 60),
    "uvit-gpu-dpmpp20": ("uvit:small-gpu", {"sampler": "dpmpp-2m", "steps": 20, "guidance": 3.0}, 5, 60),
    "vae-small": ("vae:small", {}, 4, 60),
    "gan-small": ("gan:small", {}, 6, 60),
}


def world_prompts(n: int) -> list[str]:
    """Captions of world scenes from every split (so generated clips cover the real ones' content)."""
    from evalkit.world.clips import make_clip_from_seed

    return [make_clip_from_seed(10_000 + s, ("train", "test", "ood")[s % 3]).prompt for s in range(n)]


def make_data(out: Path, n_world: int = 120, n_prompts: int = 60, only: list[str] | None = None) -> None:
    from evalkit.world.export import render_folder
    from generators.base import Prompt, generate_folder, get_generator

    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "test", "ood"):
        if not (out / f"world-{split}").exists():
            render_folder(out / f"world-{split}", split=split, n=n_world, seed=7)
    if not (out / "photo-pans").exists():
        from benchmarks.detection.photos import make_photo_clips

        make_photo_clips(out / "photo-pans", n=2 * n_world)
    prompts = [Prompt(p) for p in world_prompts(n_prompts)]
    for name, (spec, opts, seed, n) in GENERATORS.items():
        if (out / name).exists() or (only and name not in only):
            continue
        gen = get_generator(spec, **opts)
        generate_folder(gen, prompts[:n], out / name, n_per_prompt=2, seed=seed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--n-world", type=int, default=120)
    ap.add_argument("--n-prompts", type=int, default=60)
    ap.add_argument("--only", action="append", help="Only these generator folders (repeatable).")
    a = ap.parse_args(argv)
    make_data(a.out, a.n_world, a.n_prompts, a.only)
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
