"""`evalkit score`: every metric of a folder of candidate clips, against a reference folder.

Each number comes out as {"value", "ci_low", "ci_high", "n", "protocol"}: a 95% bootstrap CI
(Wilson for rates), its N, and the protocol that produced it (backbone and weights hash, frames,
size, the candidates' generation settings). Per-clip values go to "per_clip".
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evalkit.clipset import iter_clips, read_index
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.metrics.stats import Estimate, mean_ci, proportion_ci

ALL_METRICS = ("fvd", "clip", "flicker", "physics")
STABLE_FVD_N = 256  # below this FVD's small-sample bias dominates differences between models


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise BadInputError(f"--metrics {text!r}: unknown {bad or 'empty'}; choose from {','.join(ALL_METRICS)}")
    return names


def _entry(est: Estimate, protocol: dict) -> dict:
    d = est.to_dict()
    return {"value": d["value"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"],
            "protocol": {**protocol, "ci": f"{d['method']}@{d['confidence']}"}}


def _load(folder, what: str, progress: bool):
    if not Path(folder).is_dir():
        raise MissingResourceError(f"{folder}: no such folder of clips ({what}); check the path")
    records = read_index(folder)
    clips = list(tqdm(iter_clips(folder), total=len(records), desc=f"read {what}", unit="clip",
                      disable=None if progress else True))
    for c in clips:  # a still is no video: flicker, warping and FVD compare frames
        if c.num_frames < 2:
            raise BadInputError(f"{c.meta.get('source')}: {c.num_frames} frame ({what}); every metric needs "
                                "a video of at least 2 frames: remove it from the folder")
    return clips


def _videos(clips) -> list[torch.Tensor]:
    return [c.to_tensor()[None] for c in clips]  # each [1, T, C, H, W]


def generation_protocol(clips) -> dict:
    """The candidates' generation settings when they all share them (else "mixed")."""
    out = {}
    for key in ("model", "weights_sha256", "sampler", "steps", "guidance", "guidance_convention"):
        vals = {str(c.meta["record"].get(key)) for c in clips if c.meta["record"].get(key) is not None}
        if vals:
            out[key] = vals.pop() if len(vals) == 1 else "mixed"
    sizes = Counter((c.num_frames, *c.size) for c in clips)
    out["frames_size"] = [list(k) for k in sizes]
    out["seeds"] = sorted({c.meta["record"].get("seed") for c in clips if c.meta["record"].get("seed") is not None})[:50]
    return out


def _flicker(clips, base: dict, rows: list[dict]) -> dict:
    from evalkit.metrics.flicker import temporal_flicker_score, temporal_hf_ratio, warping_error

    vals = {"flicker": [], "warp_error": [], "temporal_hf": []}
    for c, row in zip(clips, rows):
        row["flicker"] = temporal_flicker_score(c.frames)
        row["warp_error"] = warping_error(c.frames)
        row["temporal_hf"] = temporal_hf_ratio(c.frames) if c.num_frames > 2 else math.nan
        for k in vals:
            vals[k].append(row[k])
    proto = {**base, "flicker": "VBench temporal flickering (255 - mean MAE(f_t, f_t+1)) / 255 on uint8",
             "warp_error": "Farneback flow, forward-backward occlusion mask, MSE in [0, 1]",
             "temporal_hf": "temporal energy above 1/4 Nyquist"}
    return {k: _entry(mean_ci([x for x in v if np.isfinite(x)]), proto) for k, v in vals.items()}


def _fvd(clips, ref_clips, backbone_name: str, backbone_path, base: dict) -> dict:
    from evalkit.metrics.backbones import get_backbone
    from evalkit.metrics.diversity import conditional_diversity
    from evalkit.metrics.fvd import fvd_with_ci, kvd_with_ci, precision_recall

    if len(clips) < 2 or len(ref_clips) < 2:
        raise BadInputError(f"fvd needs at least 2 clips in each set, got {len(clips)} candidates and "
                            f"{len(ref_clips)} reference clips")
    bb = get_backbone(backbone_name, path=backbone_path)
    fake = torch.cat([bb.features(v) for v in _videos(clips)]).double().numpy()
    real = torch.cat([bb.features(v) for v in _videos(ref_clips)]).double().numpy()
    proto = {**base, "backbone": bb.protocol(), "n_reference": len(ref_clips),
             "note": "FVD is biased at small N: compare only at equal N and backbone"}
    out = {"fvd": _entry(fvd_with_ci(real, fake), proto), "kvd": _entry(kvd_with_ci(real, fake), proto)}
    prompts = [c.prompt or c.meta["record"]["prompt"] for c in clips]
    div = conditional_diversity(fake, prompts)
    if div is not None:
        out["conditional_diversity"] = _entry(div, {**proto, "definition": "mean pairwise L2 distance of a "
                                                    "prompt's samples' features, mean over prompts (n = prompts)"})
    if min(len(real), len(fake)) > 3:  # k-NN radii need more than k samples a set
        p, r = precision_recall(real, fake, k=3)
        for name, v in (("precision", p), ("recall", r)):
            out[name] = {"value": v, "ci_low": None, "ci_high": None, "n": len(clips), "protocol": {**proto, "k": 3}}
    return out


def _clip(clips, backbone_name: str, backbone_path, base: dict, rows: list[dict]) -> dict:
    from evalkit.metrics.backbones import get_backbone
    from evalkit.metrics.clip_alignment import clip_alignment

    bb = get_backbone(backbone_name, path=backbone_path)
    prompts = [c.prompt or c.meta["record"]["prompt"] for c in clips]
    videos = _videos(clips)
    proto = {**base, "backbone": bb.protocol(), "score": "100 * max(cos, 0) per frame, mean over 8 frames"}
    out = {}
    if len({tuple(v.shape[1:]) for v in videos}) == 1:
        # One pass gives both the scores and retrieval (each clip against every distinct prompt).
        res = clip_alignment(torch.cat(videos), prompts, bb)
        per = [float(x) for x in res["per_clip"]]
        if res["n_prompts"] > 1:
            ranks = np.asarray(res["ranks"])
            out["clip_retrieval_top1"] = _entry(proportion_ci(int((ranks <= 1).sum()), len(ranks)),
                                                {**proto, "candidates": res["n_prompts"]})
    else:
        per = [float(clip_alignment(v, [p], bb)["per_clip"][0]) for v, p in zip(videos, prompts)]
    for row, s in zip(rows, per):
        row["clip_alignment"] = s
    out["clip_alignment"] = _entry(mean_ci(per), proto)
    return out


def _physics(clips, base: dict, rows: list[dict]) -> dict:
    from evalkit.metrics.physics import physics_probe

    scores, passes, laws = [], [], {}
    skipped = 0
    for c, row in zip(clips, rows):
        rec = c.meta["record"]
        probe = rec.get("probe") or rec["prompt"]
        try:
            res = physics_probe(c.frames, probe, fps=c.fps)
        except ValueError:
            skipped += 1  # not a world prompt: the probes have nothing to test
            continue
        row.update(physics_score=res["physics_score"], physics_pass=res["physics_pass"],
                   physics_laws=res["physics_laws"])
        scores.append(res["physics_score"])
        passes.append(bool(res["physics_pass"]))
        for law, ok in res["physics_laws"].items():
            if ok is not None:
                laws.setdefault(law, []).append(bool(ok))
    if not scores:
        return {}
    proto = {**base, "probes": "colour-segmentation tracker, per-law tests of the prompted scene",
             "skipped_non_world_prompts": skipped}
    out = {"physics_score": _entry(mean_ci(scores), proto),
           "physics_pass_rate": _entry(proportion_ci(sum(passes), len(passes)), proto)}
    for law, oks in sorted(laws.items()):
        out[f"physics_law.{law}"] = _entry(proportion_ci(sum(oks), len(oks)), proto)
    return out


def score_folders(candidates, reference=None, metrics=ALL_METRICS, *, video_backbone: str = "world-video-encoder",
                  video_backbone_path=None, clip_backbone: str = "world-clip", clip_backbone_path=None,
                  progress: bool = True, log_mlflow: bool = False) -> dict:
    """{"metrics": {name: {"value", "ci_low", "ci_high", "n", "protocol"}}, "per_clip": [...],
    "warnings": [...]}; with `log_mlflow`, also one MLflow run in experiment "evalkit-score"."""
    clips = _load(candidates, "candidates", progress)
    base = {"candidates": str(candidates), "generation": generation_protocol(clips)}
    rows = [{"id": c.meta["record"]["id"]} for c in clips]
    out: dict = {}
    if "flicker" in metrics:
        out.update(_flicker(clips, base, rows))
    if "fvd" in metrics:
        if reference is None:
            raise BadInputError("fvd needs --reference REAL (a folder of real clips)")
        out.update(_fvd(clips, _load(reference, "reference", progress), video_backbone, video_backbone_path, base))
    if "clip" in metrics:
        out.update(_clip(clips, clip_backbone, clip_backbone_path, base, rows))
    if "physics" in metrics:
        out.update(_physics(clips, base, rows))
    warnings = []
    untested = sum("physics_score" not in r for r in rows) if "physics" in metrics else 0
    if untested:  # prompts the world's probes cannot read (another tool's clips, file-name prompts)
        warnings.append(f"physics: {untested} of {len(rows)} clips have no world prompt the probes can test "
                        f"({'no physics score' if untested == len(rows) else 'left out of the physics score'})")
    if "fvd" in out and out["fvd"]["n"] < STABLE_FVD_N:
        f = out["fvd"]
        warnings.append(f"FVD from N={f['n']} clips (CI [{f['ci_low']:.4g}, {f['ci_high']:.4g}]) is strongly "
                        f"biased below about {STABLE_FVD_N}; compare FVDs only at equal N and backbone")
    result = {"metrics": out, "per_clip": rows, "warnings": warnings}
    if log_mlflow:
        result["mlflow_run_id"] = _log_run(candidates, reference, metrics, result)
    return result


def _log_run(candidates, reference, metrics, result: dict) -> str:
    import pandas as pd

    from evalkit import tracking

    params = {"candidates": str(candidates), "reference": str(reference), "metrics": ",".join(metrics)}
    with tracking.start_run("evalkit-score", run_name=Path(candidates).name, params=params) as run:
        for name, m in result["metrics"].items():
            if m["ci_low"] is None:
                tracking.log_metric_ci(name, m["value"], float("nan"), float("nan"), m["n"])
            else:
                tracking.log_metric_ci(name, m["value"], m["ci_low"], m["ci_high"], m["n"])
        tracking.log_json({k: v for k, v in result.items() if k != "per_clip"}, "score.json")
        tracking.log_table(pd.DataFrame([{k: v for k, v in r.items() if k != "physics_laws"}
                                         for r in result["per_clip"]]), "per_clip.csv")
        return run.info.run_id
