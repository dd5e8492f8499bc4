"""How a bench run (`benchmarks.runner`) is scored and costed: `score_folders` over the suite's
quality metrics (clips against the reference set), plus the physics score split by the suite's
parts (id, ood, their gap with a bootstrap CI, each law's pass rate), cached by the content of both
folders (`folder_digest`) and the metric protocol; and the generation cost per clip, from each
clip's own timing."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from benchmarks.run_cache import CODE_VERSION, bench_home, clean, estimate_entry, read_json, sha_of
from benchmarks.suite import Suite
from evalkit.atomic import write_atomic
from evalkit.hashing import sha256_file

SCORE_FAMILIES = ("fvd", "clip", "flicker", "physics")


def folder_digest(folder: Path) -> str:
    """SHA-256 over the index and every clip's SHA-256."""
    from evalkit.clipset import read_index

    return sha_of([[r["id"], r.get("prompt"), sha256_file(folder / r["file"])] for r in read_index(folder)])


def _two_sample_diff(a, b, n_boot: int = 2000, seed: int = 0) -> dict:
    """mean(a) - mean(b) for independent samples of scores in [0, 1]: the percentile bootstrap
    (each resampled), widened where needed to Welch's t interval; where neither part varies,
    Newcombe's combination of the parts' bounded intervals (`mean_ci(bounds=(0, 1))`). The
    bootstrap alone covered 82% at 3 clips a part and read "1.0 [1.0, 1.0]" for 10 + 10 clips.
    `n` is the smaller part's count: what the difference rests on (it was their sum, so 48 + 2
    clips passed a policy's `min_n: 50`)."""
    from scipy.stats import t as student_t

    from evalkit.metrics.stats import mean_ci, no_spread

    a, b = np.asarray(a, float), np.asarray(b, float)
    value = float(a.mean() - b.mean())
    if abs(value) < 1e-12:  # two equal means differ by rounding: -2.22e-16 was printed as a gap
        value = 0.0
    n = int(min(a.size, b.size))
    if a.size < 2 or b.size < 2:
        return {"value": value, "ci_low": None, "ci_high": None, "n": n}
    rng = np.random.default_rng(seed)
    reps = (a[rng.integers(0, a.size, (n_boot, a.size))].mean(1)
            - b[rng.integers(0, b.size, (n_boot, b.size))].mean(1))
    lo, hi = (float(x) for x in np.quantile(reps, [0.025, 0.975]))
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if not (no_spread(a) and no_spread(b)):
        df = (va + vb) ** 2 / ((va**2 / (a.size - 1) if va else 0.0) + (vb**2 / (b.size - 1) if vb else 0.0))
        half = float(student_t.ppf(0.975, df)) * float(np.sqrt(va + vb))
        lo, hi = min(lo, value - half), max(hi, value + half)
    else:
        ea, eb = mean_ci(a, bounds=(0.0, 1.0)), mean_ci(b, bounds=(0.0, 1.0))
        lo = value - float(np.hypot(ea.value - ea.ci_low, eb.ci_high - eb.value))
        hi = value + float(np.hypot(ea.ci_high - ea.value, eb.value - eb.ci_low))
    return {"value": value, "ci_low": max(lo, -1.0), "ci_high": min(hi, 1.0), "n": n}


def physics_parts(rows: list[dict], part_of: dict) -> dict:
    """physics_score_{id,ood}, physics_ood_gap and physics_law.<law>.<part> (schema)."""
    from evalkit.metrics.stats import mean_ci, proportion_ci

    out: dict = {}
    by_part = {p: [r for r in rows if part_of.get(r["id"]) == p and r.get("physics_score") is not None]
               for p in ("id", "ood")}
    for part, rs in by_part.items():
        if rs:
            out[f"physics_score_{part}"] = estimate_entry(mean_ci([r["physics_score"] for r in rs], bounds=(0.0, 1.0)))
        laws: dict[str, list[bool]] = {}
        for r in rs:
            for law, ok in (r.get("physics_laws") or {}).items():
                if ok is not None:
                    laws.setdefault(law, []).append(bool(ok))
        for law, oks in sorted(laws.items()):
            out[f"physics_law.{law}.{part}"] = estimate_entry(proportion_ci(sum(oks), len(oks)))
    if by_part["id"] and by_part["ood"]:
        out["physics_ood_gap"] = _two_sample_diff([r["physics_score"] for r in by_part["id"]],
                                                  [r["physics_score"] for r in by_part["ood"]])
    return out


def score_run(suite: Suite, folder: Path, reference: Path, part_of: dict, *, progress: bool = False,
              backbone_paths: dict | None = None, use_cache: bool = True, clip_num_frames: int | None = None) -> dict:
    """`score_folders` over the suite's quality metrics plus the physics split by part:
    {"metrics": {name: {value, ci_low, ci_high, n}}, "scores": <score_folders JSON w/o per_clip>,
    "per_clip": rows, "features": the FVD backbone's features (`score_folders(keep_features=True)`)
    or None}. Cached by the content of both folders and the protocol."""
    from evalkit.metrics.score import score_folders

    families = tuple(f for f in SCORE_FAMILIES if f in suite.metrics)
    paths = backbone_paths or {}
    protocol = {"families": families, "opts": {f: suite.metrics[f] for f in families},
                "paths": {k: str(v) for k, v in paths.items()}, "code": CODE_VERSION,
                **({"clip_frames": clip_num_frames} if clip_num_frames else {})}
    key = sha_of({"clips": folder_digest(folder), "reference": folder_digest(reference), "protocol": protocol})
    cache = bench_home() / "cache" / "scores" / f"{key}.json"
    hit = read_json(cache) if use_cache else None
    if hit is not None:
        return hit
    if not families:
        res = {"metrics": {}, "per_clip": [], "warnings": []}
    else:
        res = score_folders(folder, reference, families,
                            video_backbone=suite.metrics.get("fvd", {}).get("backbone", "world-video-encoder"),
                            video_backbone_path=paths.get("video"),
                            clip_backbone=suite.metrics.get("clip", {}).get("backbone", "world-clip"),
                            clip_backbone_path=paths.get("clip"), progress=progress, keep_features=True,
                            clip_num_frames=clip_num_frames)
    metrics = {name: {k: m[k] for k in ("value", "ci_low", "ci_high", "n")} for name, m in res["metrics"].items()}
    if "physics" in families:
        metrics.update(physics_parts(res["per_clip"], part_of))
    out = clean({"metrics": metrics, "scores": {k: v for k, v in res.items() if k not in ("per_clip", "features")},
                  "per_clip": res["per_clip"], "features": res.get("features")})
    write_atomic(cache, json.dumps(out).encode())
    return out


def _cost_entry(per_clip: list[float], *, invert: bool = False) -> dict:
    """Mean per-clip cost with a bootstrap interval over the clips (a shard's clips share its
    time, so the interval is of the run's shard-to-shard spread, not of the machine's load);
    `invert`: the rate 1 / mean instead (clips per second), its bounds the inverted ones."""
    from evalkit.metrics.stats import mean_ci

    e = mean_ci(per_clip, bounds=(0.0, math.inf))
    lo, hi = (e.ci_low, e.ci_high) if len(per_clip) > 1 else (None, None)
    if not invert:
        return {"value": e.value, "ci_low": lo, "ci_high": hi, "n": e.n}
    rate = (lambda x: 1.0 / x if x and x > 0 else None)
    return {"value": rate(e.value), "ci_low": rate(hi) if hi is not None else None,
            "ci_high": rate(lo) if lo is not None else None, "n": e.n}


def cost_metrics(records: list[dict]) -> dict:
    """From each clip's own generation timing (kept with the clip, so a resumed run reports what
    generating its clips cost, not what reading them back did)."""
    wall = [r.get("gen_wall_s", 0.0) for r in records]
    out = {"cost.cpu_s_per_clip": _cost_entry([r.get("gen_cpu_s", 0.0) for r in records])}
    if sum(wall) > 0:
        out["cost.clips_per_s"] = _cost_entry(wall, invert=True)
    gpu = [r["gen_gpu_s"] for r in records if r.get("gen_gpu_s") is not None]
    if gpu:
        out["cost.gpu_s_per_clip"] = _cost_entry(gpu)
    energy = [r["gen_energy_j"] for r in records if r.get("gen_energy_j") is not None]
    if energy:
        out["cost.energy_j_per_clip"] = _cost_entry(energy)
    return out
