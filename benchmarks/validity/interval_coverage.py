"""Coverage of the interval evalkit gives a mean of per-clip values: one JSON line a setting.

    python -m benchmarks.validity.interval_coverage [--reps 2000] [--n-boot 1000] [--ns 4,8,16,48]

For each distribution and clip count N, `--reps` simulated sets of N values, each summarised by
`stats.mean_ci` as `evalkit score` does (bounds (0, 1) for the bounded ones), and by the interval
it gave before session 34 (the percentile bootstrap widened to Student's t, "before"). A line:
{"dist", "n", "reps", "coverage", "mean_width", "coverage_before", "mean_width_before", ...}:
the share of sets whose interval holds the true mean, and the intervals' mean width.

- normal(0, 1), no bounds; uniform(0, 1); beta-0.3-3: beta(0.3, 3), skewed towards the bound at 0;
- 5%-failures: 95% of clips beta(1, 40) (near 0), 5% beta(40, 1) (large failures near 1). A set
  without a failure cannot show one: `share_with_a_failure` (1 - 0.95^N) is what an interval that
  reacts only to what it sees can reach, and `coverage_given_a_failure` how it does when it sees one.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np


def distributions() -> dict:
    """name -> (draw(rng, shape), true mean, bounds)."""
    ok, bad = (1.0, 40.0), (40.0, 1.0)

    def failures(rng, shape):
        return np.where(rng.random(shape) < 0.05, rng.beta(*bad, size=shape), rng.beta(*ok, size=shape))

    return {"normal": (lambda rng, s: rng.normal(0.0, 1.0, s), 0.0, None),
            "uniform": (lambda rng, s: rng.random(s), 0.5, (0.0, 1.0)),
            "beta-0.3-3": (lambda rng, s: rng.beta(0.3, 3.0, s), 0.3 / 3.3, (0.0, 1.0)),
            "5%-failures": (failures, 0.95 * ok[0] / sum(ok) + 0.05 * bad[0] / sum(bad), (0.0, 1.0))}


def interval_before(x: np.ndarray, bounds, n_boot: int, seed: int) -> tuple[float, float]:
    """Session 33's mean_ci for values that vary: percentile bootstrap widened to t, clipped."""
    from evalkit.metrics.stats import _t_quantile, bootstrap_ci

    e = bootstrap_ci(x, np.mean, n_boot=n_boot, seed=seed)
    half = _t_quantile(0.95, x.size - 1) * float(x.std(ddof=1)) / math.sqrt(x.size)
    lo, hi = min(e.ci_low, e.value - half), max(e.ci_high, e.value + half)
    return (lo, hi) if bounds is None else (max(lo, bounds[0]), min(hi, bounds[1]))


def setting(name: str, n: int, reps: int, n_boot: int, seed: int) -> dict:
    from evalkit.metrics.stats import mean_ci

    draw, mu, bounds = distributions()[name]
    sets = draw(np.random.default_rng([seed, n, len(name)]), (reps, n))
    now, before = np.empty((reps, 2)), np.empty((reps, 2))
    for i, x in enumerate(sets):
        e = mean_ci(x, bounds=bounds, n_boot=n_boot, seed=i)
        now[i] = e.ci_low, e.ci_high
        before[i] = interval_before(x, bounds, n_boot, i)
    row = {"dist": name, "n": n, "reps": reps, "n_boot": n_boot, "true_mean": round(mu, 6),
           "bounds": list(bounds) if bounds else None}
    seen = (sets > 0.5).any(1) if name == "5%-failures" else None
    for label, iv in (("", now), ("_before", before)):
        held = (iv[:, 0] <= mu) & (mu <= iv[:, 1])
        row[f"coverage{label}"] = round(float(held.mean()), 4)
        row[f"mean_width{label}"] = round(float((iv[:, 1] - iv[:, 0]).mean()), 4)
        if seen is not None and seen.any():
            row[f"coverage_given_a_failure{label}"] = round(float(held[seen].mean()), 4)
    if seen is not None:
        row["share_with_a_failure"] = round(float(seen.mean()), 4)
    row["coverage_se"] = round(math.sqrt(0.95 * 0.05 / reps), 4)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=2000, help="simulated sets a setting")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples an interval")
    ap.add_argument("--ns", default="4,8,16,48", help="clip counts, comma-separated")
    ap.add_argument("--dists", default=",".join(distributions()), help="distributions, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        ns = [int(v) for v in args.ns.split(",")]
    except ValueError:
        ap.error(f"--ns {args.ns!r}: give clip counts such as 4,8,16,48")
    bad = [d for d in args.dists.split(",") if d not in distributions()]
    if bad or min(ns) < 2 or args.reps < 1 or args.n_boot < 1:
        ap.error(f"need known --dists ({', '.join(distributions())}; got {bad}), --ns of at least 2, "
                 "--reps and --n-boot of at least 1")
    for name in args.dists.split(","):
        for n in ns:
            t0 = time.perf_counter()
            row = setting(name, n, args.reps, args.n_boot, args.seed)
            print(json.dumps({**row, "seconds": round(time.perf_counter() - t0, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
