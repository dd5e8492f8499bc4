"""Quality of a U-ViT checkpoint on world test prompts against issue 3's targets: one JSON line.

    python benchmarks/quality/uvit.py --model uvit:PATH [--prompts 24] [--per-prompt 2] [--seed 0]
                                      [--grid PNG [--grid-rows 6]]
    python benchmarks/quality/uvit.py --curve uvit:CKPT1 uvit:CKPT2 ...   # + an MLflow learning curve

The probe (prompts, seeds, reference features) is `evalkit.metrics.generator_quality.QualityProbe`.

Measures (each with N and a 95% CI): the share of clips whose prompted objects each appear as one
compact blob of the prompted colour and about the prompted size in >= 75% of the frames (target
>= 0.90); the share of fall clips whose objects move down (target >= 0.80); the physics pass rate
against the world's own (target >= half); FVD on the world video encoder against a world
reference, and its ratio to the FVD between two disjoint real sets of the same size (goal < 3).

`--grid PNG` writes a picture: for the first prompts, the world's clip (the ceiling) above the
model's, eight frames each, with the prompt above the pair.

`--binding` adds the denoiser's prompt binding (`generators.uvit.binding`): its loss increase on
object pixels when the colour word is swapped, on background pixels when the background word is.

`--compare SAMPLER:STEPS[:GUIDANCE]` (e.g. `ddpm:250`, `dpmpp-2m:20:2`) also samples the same
prompts and seeds with a second setting and reports its FVD and the FVD difference with a paired
bootstrap CI (the two generated sets resampled together, clip by clip, the reference
independently), and the paired differences of objects present, object frames and physics pass
(clip by clip, bootstrap over the prompts' clips): the issue asks DPM-Solver++ at 20-25 steps to
match DDPM at 250 steps within the CI, and a guidance scale is chosen the same way.

`--against SPEC` does the same with another checkpoint at the same sampling setting: whether
more training of a checkpoint helped, clip by clip.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from evalkit.metrics.generator_quality import QualityProbe
from evalkit.tracking import _jsonable
from generators.base import check_spec, get_generator
from generators.uvit.samplers import parse_guidance_interval


def fvd_difference(ref: np.ndarray, fa: np.ndarray, fb: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """FVD(ref, a) - FVD(ref, b) with a 95% paired bootstrap interval: a and b are generated from the
    same prompts and seeds, so row i of each is resampled together (recentred, as fvd_with_ci)."""
    from evalkit.metrics.fvd import frechet_distance_from_features
    from evalkit.metrics.stats import no_spread, not_estimable

    value = frechet_distance_from_features(ref, fa) - frechet_distance_from_features(ref, fb)
    rng = np.random.default_rng(seed)
    reps = np.empty(n_boot)
    for b in range(n_boot):
        ir, j = rng.integers(0, len(ref), len(ref)), rng.integers(0, len(fa), len(fa))
        reps[b] = frechet_distance_from_features(ref[ir], fa[j]) - frechet_distance_from_features(ref[ir], fb[j])
    if no_spread(np.append(reps, value)):
        # every resample the same difference (a and b the same clips: --against the same model and
        # setting): no interval, as `stats.paired_bootstrap_diff` gives none, not "0 [0, 0]"
        est = not_estimable(value, len(fa), "every resample equal: a and b the same clips?")
        return {**est.to_dict(), "ci_contains_zero": None}
    lo, hi = np.quantile(reps - (reps.mean() - value), [0.025, 0.975])
    return {"value": float(value), "ci_low": float(lo), "ci_high": float(hi), "n": int(len(fa)),
            "method": "paired-bootstrap-recentred", "confidence": 0.95, "ci_contains_zero": bool(lo <= 0 <= hi)}


def paired_with(other, probe: QualityProbe, res: dict) -> dict:
    """Sample `other` on the probe's prompts and seeds; its measures, and the paired differences
    of the main model's (`res`, from `evaluate`) minus its."""
    from evalkit.metrics.fvd import fvd_with_ci
    from evalkit.metrics.generator_quality import clip_measures, clips_quality, paired_differences

    t0 = time.perf_counter()
    clips = probe.sample(other.generate, desc=f"sample {other.protocol().get('model', '')} (compared)")
    fo = probe.features(clips)
    measures = clip_measures(clips)
    return {"protocol": other.protocol(), "seconds": time.perf_counter() - t0,
            "fvd": fvd_with_ci(probe.ref, fo).to_dict(), "quality": clips_quality(clips, measures),
            "fvd_minus_compare": fvd_difference(probe.ref, probe.features(res["clips"]), fo),
            "minus_compare": paired_differences(res["measures"], measures)}


def evaluate(probe: QualityProbe, spec: str, sampling: dict, world_quality: dict | None = None) -> dict:
    gen = get_generator(spec, **(sampling if spec.startswith("uvit:") else {}))
    t0 = time.perf_counter()
    res = probe.evaluate(gen.generate, desc=f"sample {spec}")
    out = {"benchmark": "uvit-quality", "model": spec, "protocol": gen.protocol(), **probe.protocol(),
           "sample_seconds": round(time.perf_counter() - t0, 1), "model_quality": res["quality"],
           "world_quality": world_quality, "fvd": res["fvd"], "fvd_real_vs_real": res["fvd_real_vs_real"],
           "fvd_ratio": res["fvd_ratio"], "breakdown": res["breakdown"]}
    if spec.startswith("uvit:") and hasattr(gen, "path"):
        from generators.uvit.generate import lineage

        out["lineage"] = lineage(gen.path)
    return out, res


def log_curve(points: list[dict]) -> str:
    """One MLflow run (experiment `evalkit-generator-quality`) whose metric histories are the
    learning curve: every quality measure at each checkpoint's cumulative training step, with its
    cumulative CPU minutes logged alongside."""
    from evalkit import tracking

    with tracking.start_run("evalkit-generator-quality", "uvit-learning-curve",
                            params={"checkpoints": [p["model"] for p in points],
                                    "protocol": {k: points[0][k] for k in ("n", "prompts", "backbone",
                                                                           "backbone_sha256")},
                                    "sampling": {k: points[0]["protocol"][k] for k in ("sampler", "steps",
                                                                                     "guidance")}}) as run:
        import mlflow

        for p in points:
            flat = QualityProbe.flat_metrics({"quality": p["model_quality"], "fvd": p["fvd"],
                                              "fvd_ratio": p["fvd_ratio"], "breakdown": p["breakdown"]})
            flat["cpu_minutes"] = p["lineage"]["cpu_minutes"]
            flat["clips_seen"] = p["lineage"]["clips_seen"]
            mlflow.log_metrics(flat, step=p["lineage"]["steps"])
        return run.info.run_id


def save_pair_grid(path, prompts: list[str], world_clips: list, model_clips: list, rows: int):
    """A PNG of the first `rows` distinct prompts: the world's clip above the model's."""
    from evalkit.grid import frame_grid, save_png

    seen, clips, labels = set(), [], []
    for p, w, m in zip(prompts, world_clips, model_clips):
        if p in seen or len(seen) == rows:
            continue
        seen.add(p)
        clips += [w, m]
        labels += [f"world: {p}", "model"]
    return save_png(frame_grid(clips, frames_per_row=8, cell=64, labels=labels), path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="uvit:PATH or any model spec")
    ap.add_argument("--curve", nargs="+", metavar="SPEC",
                    help="Score several U-ViT checkpoints on the same probe: one JSON line each, and one "
                    "MLflow run whose metrics are plotted against cumulative training steps.")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--per-prompt", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sampler", default="dpmpp-2m")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--guidance", type=float, default=3.0)
    ap.add_argument("--guidance-rescale", type=float, default=0.0,
                    help="Guidance rescale phi in [0, 1] (samplers.cfg_eps_fn; 0: none).")
    ap.add_argument("--guidance-interval", metavar="LO:HI",
                    help="Guide only where t / T is in [LO, HI] (0 clean, 1 pure noise; samplers.cfg_eps_fn).")
    ap.add_argument("--grid", help="Write a PNG of world and model clips for the first prompts.")
    ap.add_argument("--grid-rows", type=int, default=6, help="Prompts in the --grid picture (default 6).")
    ap.add_argument("--compare", metavar="SAMPLER:STEPS[:GUIDANCE[:RESCALE]]",
                    help="A second sampling setting on the same prompts and seeds (guidance and rescale: "
                    "--guidance's and --guidance-rescale's unless given).")
    ap.add_argument("--compare-interval", metavar="LO:HI",
                    help="--compare's guidance interval (default --guidance-interval's; 'none': every step).")
    ap.add_argument("--against", metavar="SPEC",
                    help="Another checkpoint sampled at the same setting, prompts and seeds (paired "
                    "differences as --compare's).")
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                    help="uvit: the network in fp32 or under bf16 autocast (auto: bf16 on a GPU only).")
    ap.add_argument("--against-precision", choices=["auto", "fp32", "bf16"],
                    help="--against's precision (default --precision's); with --against the same model, "
                    "a paired check of bf16 against fp32 sampling.")
    ap.add_argument("--binding", action="store_true",
                    help="Also measure how much the denoiser reads the colour and background words "
                    "(generators.uvit.binding; 64 world clips, no sampling).")
    ap.add_argument("--falls", type=int, default=0, metavar="N",
                    help="Also N world test fall prompts, one sample each: falls moving down with a CI "
                    "(the main probe holds ~6 fall clips).")
    a = ap.parse_args()
    a.guidance_interval = parse_guidance_interval(a.guidance_interval) if a.guidance_interval else None
    if not a.model and not a.curve:
        ap.error("give --model or --curve")
    compare = None
    if a.compare:  # checked before the main model's minutes of sampling, not after them
        parts = a.compare.split(":")
        try:
            assert len(parts) in (2, 3, 4)
            compare = (parts[0], int(parts[1]), float(parts[2]) if len(parts) >= 3 else a.guidance,
                       float(parts[3]) if len(parts) == 4 else a.guidance_rescale)
        except (AssertionError, ValueError):
            ap.error(f"--compare takes SAMPLER:STEPS[:GUIDANCE[:RESCALE]] with numbers, got {a.compare!r}")
    for spec in [a.model, a.against, *(a.curve or [])]:
        if spec:
            check_spec(spec)
    probe = QualityProbe(a.prompts, a.per_prompt, a.seed)
    sampling = dict(sampler=a.sampler, steps=a.steps, guidance=a.guidance, guidance_rescale=a.guidance_rescale,
                    guidance_interval=a.guidance_interval, precision=a.precision)
    world_res = probe.evaluate(get_generator("world").generate, desc="render world")
    world, world_clips = world_res["quality"], world_res["clips"]
    if a.curve:
        points = []
        for spec in a.curve:
            out, _ = evaluate(probe, spec, sampling, world)
            points.append(out)
            print(json.dumps(_jsonable(out)), flush=True)
        print(json.dumps({"benchmark": "uvit-learning-curve", "mlflow_run": log_curve(points)}))
        return
    out, res = evaluate(probe, a.model, sampling, world)
    if a.binding:
        from generators.uvit.binding import prompt_binding

        out["prompt_binding"] = prompt_binding(get_generator(a.model).net)
    if a.grid:
        out["grid"] = str(save_pair_grid(a.grid, probe.prompts, world_clips, res["clips"], a.grid_rows))
    if a.falls:
        from evalkit.metrics.generator_quality import fall_probe

        model = get_generator(a.model, **(sampling if a.model.startswith("uvit:") else {}))
        out["falls_probe"] = {"model": fall_probe(model.generate, a.falls, a.seed),
                              "world": fall_probe(get_generator("world").generate, a.falls, a.seed)}
    if compare is not None:
        other = get_generator(a.model, sampler=compare[0], steps=compare[1], guidance=compare[2],
                              guidance_rescale=compare[3], guidance_interval=(a.guidance_interval if a.compare_interval is None
                                                 else parse_guidance_interval(a.compare_interval)),
                              precision=a.precision)
        out["compare"] = paired_with(other, probe, res)
    if a.against:
        against = {**sampling, "precision": a.against_precision or a.precision}
        out["against"] = paired_with(get_generator(a.against, **against), probe, res)
    print(json.dumps(_jsonable(out)))  # strict JSON: a bound that is not estimable is null, not NaN


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
