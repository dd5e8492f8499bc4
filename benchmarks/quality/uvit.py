"""Quality of a U-ViT checkpoint on world test prompts against issue 3's targets: one JSON line.

    python benchmarks/quality/uvit.py --model uvit:PATH [--prompts 24] [--per-prompt 2] [--seed 0]

Measures (each with N and a 95% CI): the share of clips whose prompted objects each appear as one
compact blob of the prompted colour and about the prompted size in >= 75% of the frames (target
>= 0.90); the share of fall clips whose objects move down (target >= 0.80); the physics pass rate
against the world's own (target >= half); FVD on the world video encoder against a world
reference, and its ratio to the FVD between two disjoint real sets of the same size (goal < 3).

`--compare SAMPLER:STEPS` (e.g. `ddpm:250`) also samples the same prompts and seeds with a second
sampler and reports its FVD and the FVD difference with a paired bootstrap CI (the two generated
sets resampled together, clip by clip, the reference independently): the issue asks DPM-Solver++
at 20-25 steps to match DDPM at 250 steps within the CI.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evalkit.metrics.backbones import get_backbone
from evalkit.metrics.fvd import fvd_with_ci
from evalkit.metrics.physics import object_presence, physics_probe
from evalkit.metrics.stats import proportion_ci
from evalkit.world import WorldConfig, make_clip
from generators.base import get_generator, sample_seed


def clips_quality(clips) -> dict:
    present, down, passes = [], [], []
    for c in clips:
        pres = object_presence(c.frames, c.prompt)
        present.append(pres["min_presence"] >= 0.75)
        if pres["moves_down"] is not None or pres["kind"] == "fall":
            down.append(bool(pres["moves_down"]))
        passes.append(bool(physics_probe(c.frames, c.prompt, fps=c.fps)["physics_pass"]))
    est = lambda xs: proportion_ci(int(sum(xs)), len(xs)).to_dict() if xs else None  # noqa: E731
    return {"objects_present": est(present), "falls_move_down": est(down), "physics_pass": est(passes)}


def fvd_difference(ref: np.ndarray, fa: np.ndarray, fb: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """FVD(ref, a) - FVD(ref, b) with a 95% paired bootstrap interval: a and b are generated from the
    same prompts and seeds, so row i of each is resampled together (recentred, as fvd_with_ci)."""
    from evalkit.metrics.fvd import frechet_distance_from_features

    value = frechet_distance_from_features(ref, fa) - frechet_distance_from_features(ref, fb)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        ir, j = rng.integers(0, len(ref), len(ref)), rng.integers(0, len(fa), len(fa))
        reps[b] = frechet_distance_from_features(ref[ir], fa[j]) - frechet_distance_from_features(ref[ir], fb[j])
    lo, hi = np.quantile(reps - (reps.mean() - value), [0.025, 0.975])
    return {"value": float(value), "ci_low": float(lo), "ci_high": float(hi), "n": int(len(fa)),
            "method": "paired-bootstrap-recentred", "confidence": 0.95, "ci_contains_zero": bool(lo <= 0 <= hi)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--per-prompt", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", default="dpmpp-2m")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--compare", metavar="SAMPLER:STEPS", help="A second sampler on the same prompts and seeds.")
    a = ap.parse_args()
    cfg = WorldConfig()
    prompts = [make_clip("test", i, seed=a.seed + 100, config=cfg).prompt for i in range(a.prompts)]
    jobs = [(i, k, p) for i, p in enumerate(prompts) for k in range(a.per_prompt)]
    seeds = [sample_seed(a.seed, i, k) for i, k, _ in jobs]
    sampling = dict(sampler=a.sampler, steps=a.steps, guidance=a.guidance) if a.model.startswith("uvit:") else {}
    gen = get_generator(a.model, **sampling)
    fake = gen.generate([p for _, _, p in jobs], seeds)
    world = get_generator("world").generate([p for _, _, p in jobs], seeds)
    n = len(jobs)
    ref_a = [make_clip("test", i, seed=a.seed + 200, config=cfg) for i in range(n)]
    ref_b = [make_clip("test", i, seed=a.seed + 300, config=cfg) for i in range(n)]
    bb = get_backbone("world-video-encoder")
    feats = lambda cs: np.concatenate([bb.features(c.to_tensor()[None]).numpy() for c in cs])  # noqa: E731
    fa, fb = feats(ref_a), feats(ref_b)
    ff = feats(fake)
    fvd = fvd_with_ci(fa, ff)
    fvd_real = fvd_with_ci(fa, fb)
    out = {
        "benchmark": "uvit-quality", "model": a.model, "protocol": gen.protocol(), "n": n,
        "backbone": bb.protocol()["backbone"], "backbone_sha256": bb.sha256,
        "model_quality": clips_quality(fake), "world_quality": clips_quality(world),
        "fvd": fvd.to_dict(), "fvd_real_vs_real": fvd_real.to_dict(),
        "fvd_ratio": fvd.value / max(fvd_real.value, 1e-9),
    }
    if a.compare:
        sampler, _, steps = a.compare.partition(":")
        other = get_generator(a.model, sampler=sampler, steps=int(steps), guidance=a.guidance)
        t0 = time.perf_counter()
        fo = feats(other.generate([p for _, _, p in jobs], seeds))
        out["compare"] = {"protocol": other.protocol(), "seconds": time.perf_counter() - t0,
                          "fvd": fvd_with_ci(fa, fo).to_dict(), "fvd_minus_compare": fvd_difference(fa, ff, fo)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
