"""Does the leaderboard's paired FVD test separate models on real features? One JSON line a setting.

    python -m benchmarks.validity.fvd_paired_power [--pool 240] [--pairs 60] [--ref 120] [--trials 40]
        [--blur 1,2] [--noise 16,32]

The paired bootstrap (`evalkit.metrics.fvd_paired`) was measured on Gaussian features; here it is
measured on the offline backbone's features (`world-video-encoder`, 128-d) of world clips, as a
bench run would log them. Model A renders each prompt perfectly (the world itself, seed 0); model
B renders the same prompts with another seed (the null: the same distribution), or with another
seed and then blurred or noised (a worse model). Prompts are captions of world test scenes; the
reference is other world test clips. Each trial draws `--pairs` prompts and `--ref` reference
clips from pools of features computed once, and asks two questions the leaderboard asks of two
neighbours: is the difference supported by the paired test (p < 0.05 and the 95% interval of
the difference excludes 0, `reports.leaderboard._paired_verdict`), and do the two single 95%
intervals (`fvd_with_ci`) fail to overlap (the rule before session 36)?

A line: {"setting", "level", "trials", "paired_supported", "paired_supported_b_worse",
"disjoint_intervals", "disjoint_b_worse", "mean_fvd_a", "mean_fvd_b", ...}, each share with its
95% Wilson interval. Under the null, "paired_supported" is the test's false-positive rate
(wanted: at most 0.05); under a degradation "paired_supported_b_worse" is its power. The trials
draw from shared pools, so they are not independent: the intervals are a guide.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def render_features(prompts: list[str], seed: int, corrupt=None, level: float = 0.0, size: int = 64) -> np.ndarray:
    from benchmarks.validity.metrics import features
    from evalkit.world import WorldConfig
    from evalkit.world.clips import make_clip_for_prompt

    cfg = WorldConfig(size=size)
    frames = []
    for i, p in enumerate(prompts):
        f = make_clip_for_prompt(p, seed, config=cfg).frames
        frames.append(corrupt(f, level, 7919 * i + seed) if corrupt is not None else f)
    return np.concatenate([features(frames[s:s + 64]) for s in range(0, len(frames), 64)])


def trial(ref, a, b, pairs: int, n_ref: int, rng, n_boot: int) -> tuple[bool, bool, float, float]:
    from evalkit.metrics.fvd import fvd_with_ci
    from evalkit.metrics.fvd_paired import paired_distance_diff

    i = rng.choice(a.shape[0], pairs, replace=False)
    j = rng.choice(ref.shape[0], n_ref, replace=False)
    est, p = paired_distance_diff(ref[j], a[i], b[i], "fvd", n_boot=n_boot, seed=int(rng.integers(1 << 31)))
    supported = bool(p < 0.05 and not est.ci_low <= 0 <= est.ci_high)
    ea, eb = fvd_with_ci(ref[j], a[i], n_boot=n_boot, seed=1), fvd_with_ci(ref[j], b[i], n_boot=n_boot, seed=2)
    disjoint = bool(ea.ci_high < eb.ci_low or eb.ci_high < ea.ci_low)
    # power counts only the right way round (B, the worse model, further from the reference)
    return supported, supported and est.value < 0, disjoint, disjoint and ea.value < eb.value, ea.value, eb.value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pool", type=int, default=240, help="prompts rendered per model (features computed once)")
    ap.add_argument("--pairs", type=int, default=60, help="matched clips per trial")
    ap.add_argument("--ref", type=int, default=120, help="reference clips per trial")
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--blur", default="1,2", help="blur sigmas of model B")
    ap.add_argument("--noise", default="16,32", help="noise sigmas (grey levels) of model B")
    args = ap.parse_args()

    from benchmarks.validity.corruptions import add_noise, blur, world_clips
    from evalkit.metrics.stats import proportion_ci

    t0 = time.perf_counter()
    ref_clips = world_clips(2 * args.ref, start=0)
    from benchmarks.validity.metrics import features

    ref = np.concatenate([features([c.frames for c in ref_clips[s:s + 64]]) for s in range(0, len(ref_clips), 64)])
    prompts = [c.prompt for c in world_clips(args.pool, start=5000)]
    a = render_features(prompts, seed=0)
    settings = [("null: another seed", 0.0, render_features(prompts, seed=1))]
    settings += [("blur", float(s), render_features(prompts, 1, blur, float(s))) for s in args.blur.split(",") if s]
    settings += [("noise", float(s), render_features(prompts, 1, add_noise, float(s))) for s in args.noise.split(",") if s]
    setup_s = time.perf_counter() - t0
    for name, level, b in settings:
        rng = np.random.default_rng([len(name), int(level * 100)])
        rows = [trial(ref, a, b, args.pairs, args.ref, rng, args.n_boot) for _ in range(args.trials)]
        paired, paired_right, disjoint, disjoint_right, fa, fb = (np.array(x) for x in zip(*rows))

        def share(x):  # with its 95% Wilson interval (trials share the pools: read it as a guide)
            e = proportion_ci(int(x.sum()), x.size)
            return [round(float(e.value), 3), round(float(e.ci_low), 3), round(float(e.ci_high), 3)]

        print(json.dumps({"setting": name, "level": level, "trials": args.trials, "pairs": args.pairs,
                          "ref": args.ref, "pool": args.pool, "backbone": "world-video-encoder",
                          "paired_supported": share(paired), "paired_supported_b_worse": share(paired_right),
                          "disjoint_intervals": share(disjoint), "disjoint_b_worse": share(disjoint_right),
                          "mean_fvd_a": round(float(fa.mean()), 2), "mean_fvd_b": round(float(fb.mean()), 2),
                          "setup_s": round(setup_s, 1)}), flush=True)


if __name__ == "__main__":
    main()
