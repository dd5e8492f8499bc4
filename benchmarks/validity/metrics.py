"""Validity study of evalkit's metrics: severity sweeps of controlled corruptions.

    python benchmarks/validity/metrics.py [--quick] [--n 48] [--probe-n 256] [--out table.md]
                                          [--mlflow] [--seed S]

For each metric and the corruption it should see, severities 0..4 (--quick: 0, 2, 4) are applied
to world test clips (16 x 64 x 64, `make_clip('test', i, config=WorldConfig(size=64))`) and, for
the temporal metrics, to 16-frame segments of the real footage in ../shared/data/real-videos
(resized to 64 x 64 with cv2.INTER_AREA; skipped when the folder is missing):

| metric | corruptions (severity 0..4) |
| --- | --- |
| flicker (VBench, higher = better) | brightness flicker, +/-a grey levels on alternate frames |
| warp_error | Gaussian noise sigma; fraction of frames shuffled |
| temporal_hf | brightness flicker |
| FVD, KVD (world-video-encoder) | blur sigma; noise sigma 32..64 (real set A vs corrupted real set B) |
| clip_alignment (world-clip) | noise sigma |
| physics_score | fraction of frames shuffled; teleport magnitude 0.03..0.08 (one object, from mid-clip on) |

Two sweeps run over the range their metric can see, and why:

- FVD/KVD under noise: sigma 0, 32, 40, 48, 64 grey levels. The world video encoder looks at
  16 x 32 x 32 clips, so the 64-pixel clips are resized with an antialiased 2x reduction that
  halves i.i.d. noise, and the encoder (trained with noise of up to 3 grey levels as an
  augmentation) hardly moves below that: measured with 48 clips a set, FVD is 157 clean, 155 to
  159 at sigma 4 to 24 (well inside its sampling noise: the real-vs-real FVD's 95% CI at this N is
  [84, 272]), 172 at 32, 207 at 40, 271 at 48 and 476 at 64. Milder noise (0, 8, 16, 24) is still swept and shown as an
  information row (the encoder's floor), outside the rho >= 0.95 count.
- physics_score under teleport: magnitudes 0, 0.03, 0.04, 0.06, 0.08 of the frame (1.9 to 5.1
  px at 64 px). The score counts laws, and a jump belongs to no_teleport alone (the motion laws
  look past a single jump), so once a jump is caught each clip loses exactly one law whatever its
  size: the score moves with the magnitude only while the jump crosses no_teleport's slack (2
  px, plus a frame of gravity in falls). Measured on 48 clips: caught in 0, 6, 31, 92 and 100%
  of the clips; every jump of 0.08 and above is caught.

Per (metric, corruption): Spearman rho between severity and the mean score, sign-adjusted so that
"gets worse" is positive, with a 95% percentile bootstrap CI over clips (the clips are resampled,
the per-severity means recomputed, rho recomputed; for FVD/KVD both sets are resampled), and
whether rho >= 0.95. FVD/KVD: the distance between the two disjoint real sets (with its CI) against
the blurred and the noisy set at the top severity: ordering real < blurred < noise. Physics (on
--probe-n world test clips, default 256: the momentum control needs collide clips, a tenth of
them): for the violations of `control_clip`, each law's catch rate on its violation, false alarms
on the other laws, and the pass rate on clean clips. CLIP: on the same --probe-n clips, the
world-clip backbone's retrieval of each clip's caption against the captions with one attribute
changed (colour, shape, size, count, motion, background; `clip_alignment.attribute_retrieval`).

The markdown table is printed (and written with --out); one JSON summary line ends the output;
--mlflow logs each rho with its CI and the table to an MLflow run in "evalkit-validity".
Corruptions are deterministic: the same clip, severity and seed give the same frames.

The corruptions and clip sources are in `corruptions.py`, the table, summary and MLflow run in
`report.py`; this file holds the study: severity levels, rank correlations, sweeps and `main`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.validity.corruptions import (  # noqa: E402, F401  (shuffle_frames re-exported)
    CORRUPT,
    real_segments,
    shuffle_frames,
    teleport,
    world_clips,
)
from benchmarks.validity.report import log_mlflow, markdown, summary  # noqa: E402
from evalkit.metrics.stats import Estimate, proportion_ci  # noqa: E402
from benchmarks.script_args import check_outputs  # noqa: E402

# Severity levels 0..4 of each corruption (index = severity).
LEVELS = {
    "flicker": (0.0, 3.0, 6.0, 12.0, 24.0),  # grey levels added/subtracted on alternate frames
    "noise": (0.0, 8.0, 16.0, 32.0, 64.0),  # Gaussian sigma, grey levels
    "shuffle": (0.0, 0.25, 0.5, 0.75, 1.0),  # fraction of frames moved
    "blur": (0.0, 0.6, 1.2, 2.0, 3.0),  # Gaussian sigma, pixels
    "teleport": (0.0, 0.03, 0.04, 0.06, 0.08),  # jump, fraction of the frame (see the docstring)
}
# FVD/KVD: the world encoder's visible range of noise, and the floor below it shown for information.
FEATURE_LEVELS = {"blur": LEVELS["blur"], "noise": (0.0, 32.0, 40.0, 48.0, 64.0)}
FEATURE_FLOOR = {"noise": (0.0, 8.0, 16.0, 24.0)}

# metric -> +1 when a larger value is worse, -1 when a smaller value is worse
WORSE_SIGN = {"flicker": -1, "warp_error": 1, "temporal_hf": 1, "fvd": 1, "kvd": 1, "clip_alignment": -1,
              "physics_score": -1}

# control of `control_clip` -> the law it breaks
VIOLATIONS = {"teleport": "no_teleport", "vanish": "permanence", "recolour": "constant_colour",
              "resize": "constant_size", "reverse": "bounce_heights_non_increasing",
              "momentum": "momentum_conserved"}


# --------------------------------------------------------------------------------------------
# statistics


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks along the last axis (ties share their mean rank)."""
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)


def spearman_rows(means: np.ndarray, sev: np.ndarray) -> np.ndarray:
    """Spearman rho between `sev` [S] and each row of `means` [B, S] (NaN where a row is constant)."""
    rx = _ranks(np.asarray(sev, np.float64))
    ry = _ranks(np.atleast_2d(means))
    rx, ry = rx - rx.mean(), ry - ry.mean(-1, keepdims=True)
    den = np.sqrt((rx ** 2).sum() * (ry ** 2).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (ry * rx).sum(-1) / den, np.nan)


def severity_rho(scores: np.ndarray, sign: int, sev=None, n_boot: int = 1000, seed: int = 0) -> Estimate:
    """Spearman rho of severity vs the mean over clips of sign * scores [N clips, S severities],
    with a percentile bootstrap CI over clips (rows resampled jointly across severities).
    A resample whose means are all tied has rho 0 (no signal)."""
    s = sign * np.asarray(scores, np.float64)
    if not np.isfinite(s).all():
        raise ValueError("NaN/inf scores in a severity sweep; drop the failed clips first")
    n, k = s.shape
    sev = np.arange(k) if sev is None else np.asarray(sev)
    rho = float(np.nan_to_num(spearman_rows(s.mean(0)[None], sev))[0])
    if n < 2:
        return Estimate(rho, math.nan, math.nan, n, "bootstrap-percentile")
    idx = np.random.default_rng(seed).integers(0, n, (n_boot, n))
    reps = np.nan_to_num(spearman_rows(s[idx].mean(1), sev))
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return Estimate(rho, float(lo), float(hi), n, "bootstrap-percentile")


def set_distance_rho(real: np.ndarray, fakes: list[np.ndarray], dist, n_boot: int = 200, seed: int = 0) -> Estimate:
    """rho of severity vs dist(real, fake_s) with a CI from resampling both sets (the same
    resample of each set at every severity)."""
    vals = np.array([dist(real, f) for f in fakes])[None]
    sev = np.arange(len(fakes))
    rho = float(np.nan_to_num(spearman_rows(vals, sev))[0])
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        ir = rng.integers(0, len(real), len(real))
        jf = rng.integers(0, len(fakes[0]), len(fakes[0]))
        reps[b] = np.nan_to_num(spearman_rows(np.array([[dist(real[ir], f[jf]) for f in fakes]]), sev))[0]
    lo, hi = np.quantile(reps, [0.025, 0.975])
    return Estimate(rho, float(lo), float(hi), len(fakes[0]), "bootstrap-percentile-2sample")


# --------------------------------------------------------------------------------------------
# sweeps


def _temporal(name: str, frames: np.ndarray) -> float:
    from evalkit.metrics.flicker import temporal_flicker_score, temporal_hf_ratio, warping_error

    return {"flicker": temporal_flicker_score, "warp_error": warping_error, "temporal_hf": temporal_hf_ratio}[name](frames)


def sweep_frames(frames_list: list[np.ndarray], metric: str, corruption: str, levels, seed: int = 0) -> np.ndarray:
    """Per-clip scores [N, S] of a temporal metric on each clip corrupted at each level."""
    fn = CORRUPT[corruption]
    return np.array([[_temporal(metric, fn(f, lv, seed + 7919 * i)) for lv in levels]
                     for i, f in enumerate(frames_list)], dtype=np.float64)


def _videos(frames_list) -> torch.Tensor:
    return torch.from_numpy(np.stack(frames_list)).permute(0, 1, 4, 2, 3).float().div_(255.0)  # [N, T, 3, H, W]


def sweep_clip(clips, corruption: str, levels, seed: int = 0) -> np.ndarray:
    from evalkit.metrics.backbones import get_backbone
    from evalkit.metrics.clip_alignment import clip_alignment

    bb = get_backbone("world-clip")
    prompts = [c.prompt for c in clips]
    fn = CORRUPT[corruption]
    cols = []
    for lv in levels:
        vids = _videos([fn(c.frames, lv, seed + 7919 * i) for i, c in enumerate(clips)])
        cols.append(np.asarray(clip_alignment(vids, prompts, bb)["per_clip"], np.float64))
    return np.stack(cols, 1)


def _physics_score(clip) -> float:
    from evalkit.metrics.physics import physics_probe

    return float(physics_probe(clip.frames, clip.prompt, fps=clip.fps)["physics_score"])


def sweep_physics(clips, corruption: str, levels, seed: int = 0) -> np.ndarray:
    rows = []
    for i, c in enumerate(clips):
        row = []
        for lv in levels:
            if corruption == "teleport":
                cc = teleport(c, lv, seed + i)
            else:
                cc = c.with_frames(CORRUPT[corruption](c.frames, lv, seed + 7919 * i))
            row.append(_physics_score(cc))
        rows.append(row)
    return np.array(rows, dtype=np.float64)


def features(frames_list) -> np.ndarray:
    from evalkit.metrics.backbones import get_backbone

    return get_backbone("world-video-encoder").features(_videos(frames_list)).numpy()


def fvd_study(set_a, set_b, levels_by_corruption: dict, seed: int = 0, n_boot: int = 200,
              floor: dict | None = None) -> dict:
    """FVD and KVD between real set A and set B corrupted at each level (blur, noise), with the
    real-vs-real baseline (levels 0) and the per-corruption severity rho; `floor` ({corruption:
    levels}): the same below the encoder's visible range, in out["floor"] (information only)."""
    from evalkit.metrics.fvd import _mmd2_unbiased, frechet_distance_from_features, fvd_with_ci, kvd_with_ci

    fa = features([c.frames for c in set_a])
    g = 1.0 / fa.shape[1]
    dists = {"fvd": frechet_distance_from_features, "kvd": lambda a, b: _mmd2_unbiased(a, b, 3, g, 1.0)}
    cis = {"fvd": fvd_with_ci, "kvd": kvd_with_ci}
    out = {"n": len(set_a), "rho": {}, "values": {}, "ci": {}, "floor": {}}
    for corr, levels in (floor or {}).items():
        fb = [features([CORRUPT[corr](c.frames, lv, seed + 7919 * i) for i, c in enumerate(set_b)])
              for lv in levels]
        for m, dist in dists.items():
            out["floor"][(m, corr)] = {"rho": set_distance_rho(fa, fb, dist, n_boot=n_boot, seed=seed),
                                       "values": [float(dist(fa, f)) for f in fb], "levels": list(levels)}
    for corr, levels in levels_by_corruption.items():
        fn = CORRUPT[corr]
        fb = [features([fn(c.frames, lv, seed + 7919 * i) for i, c in enumerate(set_b)]) for lv in levels]
        for m, dist in dists.items():
            out["rho"][(m, corr)] = set_distance_rho(fa, fb, dist, n_boot=n_boot, seed=seed)
            out["values"][(m, corr)] = [float(dist(fa, f)) for f in fb]
            out["ci"][(m, "real")] = cis[m](fa, fb[0], n_boot=n_boot, seed=seed)
            out["ci"][(m, corr)] = cis[m](fa, fb[-1], n_boot=n_boot, seed=seed)
    for m in dists:
        r, b, nz = (out["ci"][(m, k)] for k in ("real", "blur", "noise"))
        out[f"{m}_ordered"] = bool(r.value < b.value < nz.value)
        out[f"{m}_ordered_ci_separated"] = bool(r.ci_high < b.ci_low and b.ci_high < nz.ci_low)
    return out


def _bouncing(clip) -> bool:
    """A fall/throw clip in which some object's vertical velocity flips from down to up."""
    rec = clip.meta["record"]["scene"]
    if rec["kind"] not in ("fall", "throw"):
        return False
    for o in rec["objects"]:
        vy = np.array([v[1] for v in o["velocity"]])
        if ((vy[:-1] > 0) & (vy[1:] < 0)).any():
            return True
    return False


def physics_catch_rates(clips, seed: int = 0) -> dict:
    """Clean pass rate, and per violation of `control_clip`: the catch rate of the law it breaks
    and the false-alarm rate of the other (applicable, clean-passing) laws."""
    from evalkit.metrics.physics import physics_probe
    from evalkit.metrics.physics_controls import control_clip

    clean_pass = 0
    per = {v: {"caught": 0, "n": 0, "fa": 0, "fa_n": 0, "fa_laws": {}} for v in VIOLATIONS}
    for i, c in enumerate(clips):
        base = physics_probe(c.frames, c.prompt, fps=c.fps)
        clean_pass += bool(base["physics_pass"])
        kind = c.meta["record"]["scene"]["kind"]
        for v, law in VIOLATIONS.items():
            if v == "momentum" and kind != "collide":
                continue
            if v == "reverse" and not _bouncing(c):
                continue
            if base["physics_laws"].get(law) is not True:
                continue  # only clips where the clean clip passes the law can show a catch
            res = physics_probe(control_clip(c, v, seed=seed + i).frames, c.prompt, fps=c.fps)["physics_laws"]
            d = per[v]
            d["n"] += 1
            d["caught"] += res.get(law) is False
            for other, ok in res.items():
                if other != law and ok is not None and base["physics_laws"].get(other) is True:
                    d["fa_n"] += 1
                    d["fa"] += ok is False
                    if ok is False:
                        d["fa_laws"][other] = d["fa_laws"].get(other, 0) + 1
    out = {"clean_pass": proportion_ci(clean_pass, len(clips)), "violations": {}}
    for v, d in per.items():
        if d["n"]:
            out["violations"][v] = {"law": VIOLATIONS[v], "catch": proportion_ci(d["caught"], d["n"]),
                                    "false_alarm": proportion_ci(d["fa"], d["fa_n"]) if d["fa_n"] else None,
                                    "false_alarm_laws": dict(sorted(d["fa_laws"].items()))}
    return out


def clip_attributes(clips) -> dict:
    """Per-attribute caption retrieval of the world-clip backbone on world clips."""
    from evalkit.metrics.backbones import get_backbone
    from evalkit.metrics.clip_alignment import attribute_retrieval

    return attribute_retrieval(_videos([c.frames for c in clips]), [c.meta["scene"] for c in clips],
                               get_backbone("world-clip"))


# --------------------------------------------------------------------------------------------
# the study


def run_study(n: int = 48, quick: bool = False, seed: int = 0, real: bool = True, n_boot: int = 1000,
              probe_n: int | None = None) -> dict:
    sevs = (0, 2, 4) if quick else (0, 1, 2, 3, 4)
    lv = {k: [v[s] for s in sevs] for k, v in LEVELS.items()}
    flv = {k: [v[s] for s in sevs] for k, v in FEATURE_LEVELS.items()}
    fvd_boot = 50 if quick else 200
    clips = world_clips(n, 0)
    frames = [c.frames for c in clips]
    rows = []  # dicts: metric, corruption, data, levels, means, rho

    def add(metric, corr, data, scores, rho=None):
        scores = np.asarray(scores, np.float64)
        rho = rho or severity_rho(scores, WORSE_SIGN[metric], n_boot=n_boot, seed=seed)
        rows.append({"metric": metric, "corruption": corr, "data": data, "n": int(scores.shape[0]),
                     "levels": lv[corr], "means": [float(x) for x in scores.mean(0)], "rho": rho})

    temporal = [("flicker", "flicker"), ("warp_error", "noise"), ("warp_error", "shuffle"), ("temporal_hf", "flicker")]
    for metric, corr in temporal:
        add(metric, corr, "world", sweep_frames(frames, metric, corr, lv[corr], seed))
    segs = real_segments(max_segments=4 if quick else 16, per_video=1 if quick else 4) if real else []
    for metric, corr in temporal if segs else ():
        add(metric, corr, "real", sweep_frames(segs, metric, corr, lv[corr], seed))
    add("clip_alignment", "noise", "world", sweep_clip(clips, "noise", lv["noise"], seed))
    for corr in ("shuffle", "teleport"):
        add("physics_score", corr, "world", sweep_physics(clips, corr, lv[corr], seed))
    fv = fvd_study(clips, world_clips(n, n), flv, seed, fvd_boot, floor=FEATURE_FLOOR)
    for (m, corr), rho in fv["rho"].items():
        rows.append({"metric": m, "corruption": corr, "data": "world (A vs B)", "n": n, "levels": flv[corr],
                     "means": fv["values"][(m, corr)], "rho": rho})
    for (m, corr), d in fv["floor"].items():
        rows.append({"metric": m, "corruption": f"{corr} (encoder floor)", "data": "world (A vs B)", "n": n,
                     "levels": d["levels"], "means": d["values"], "rho": d["rho"], "info": True})
    probe_n = probe_n or n
    probe_clips = clips[:probe_n] if probe_n <= n else clips + world_clips(probe_n - n, n)
    phys = physics_catch_rates(probe_clips, seed)
    attrs = clip_attributes(probe_clips)
    levels = lv | {f"{k} (FVD/KVD)": v for k, v in flv.items()}
    return {"n": n, "quick": quick, "severities": list(sevs), "levels": levels, "rows": rows, "fvd": fv, "physics": phys, "attributes": attrs, "probe_n": len(probe_clips),
            "n_real_segments": len(segs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 clips, severities 0, 2, 4 (under a minute)")
    ap.add_argument("--n", type=int, default=None, help="world clips per set (default 48; 8 with --quick)")
    ap.add_argument("--probe-n", type=int, default=None,
                    help="world clips for the physics controls and CLIP attributes "
                         "(default 256; --n with --quick)")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    ap.add_argument("--mlflow", action="store_true", help="log an MLflow run in evalkit-validity")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-real", action="store_true", help="skip the real footage")
    args = ap.parse_args(argv)
    check_outputs(ap, out=args.out)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    n = args.n or (8 if args.quick else 48)
    t0 = time.perf_counter()
    res = run_study(n=n, quick=args.quick, seed=args.seed, real=not args.no_real,
                    n_boot=300 if args.quick else 1000, probe_n=args.probe_n or (n if args.quick else 256))
    table = markdown(res)
    summ = summary(res, time.perf_counter() - t0)
    print(table)
    if args.out:
        args.out.write_text(table)
    if args.mlflow:
        log_mlflow(res, table, summ)
    print(json.dumps(summ))
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
