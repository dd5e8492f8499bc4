"""`evalkit demo`: the main job on the embedded default, end to end.

1. render the reference world (a test split and an ood split) as MP4s and measure it;
2. get the default generator (`uvit:small`; while it has no trained weights, the best shipped
   checkpoint `uvit:small-gpu`, said so), generate a few clips for world prompts, and sign
   (C2PA) and watermark each with throw-away demo credentials;
3. score them against the reference with every metric, beside the world's own ood split (what a
   perfect generator would get);
4. load the default detector (or say there is none) and run it on the generated and real clips;
5. verify a signed clip, a tampered copy (one media byte flipped) and a stripped copy (remuxed
   without the manifest: only the watermark remains);
6. run the `world-v1` suite (its first N prompts) over the world ceiling, the generator and a
   control, each its own MLflow bench run, cached and resumed under $EVALKIT_HOME;
7. print the leaderboard and write the HTML suite report;
8. log the demo's own MLflow run and print where everything is and the `mlflow ui` command.

The step functions live in evalkit/demo_steps.py; the packages above the core are imported there,
inside the functions.
"""

from __future__ import annotations

import functools
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.clipset import iter_clips
from evalkit.demo_steps import (  # the steps import the packages above the core lazily
    CONTROL, DEFAULT_GENERATOR, SUITE, Progress, bench, bench_warnings, clip_statistics, default_generator,
    demo_credentials, detection_line, format_detection, generate_signed, leaderboard_and_report, load_default_detector,
    run_detector, verdict_line, verify_three,
)
from evalkit.errors import BadInputError
from evalkit.safe_text import display_width, ljust
from evalkit.grid import frame_grid, save_png
from evalkit.metrics.stats import Estimate, mean_ci, proportion_ci
from evalkit.world import KINDS, WorldConfig
from evalkit.world.export import render_folder

EXPERIMENT = "evalkit-demo"
_MARKER = ".evalkit-demo"  # marks a folder the demo owns and may replace
STEPS = 8
SHOWN_SCORES = ("fvd", "clip_alignment", "flicker", "physics_score", "physics_pass_rate")


@dataclass
class DemoResult:
    out: Path
    run_id: str
    tracking_uri: str
    generator: str = DEFAULT_GENERATOR
    estimates: dict[str, Estimate] = field(default_factory=dict)
    grid_path: Path | None = None
    verification: dict[str, dict] = field(default_factory=dict)  # signed / tampered / stripped
    detection: dict | None = None  # None: no default detector
    detector_note: str | None = None
    bench: list = field(default_factory=list)  # benchmarks.runner.RunResult, one per model
    max_prompts: int | None = None
    leaderboard: str = ""
    report_path: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        suite = f"{SUITE} (first {self.max_prompts} prompts)" if self.max_prompts else SUITE
        lines = ["", f"evalkit demo: done in {self.seconds:.0f} s", "",
                 f"Leaderboard of {suite}:", *(f"  {x}" for x in self.leaderboard.splitlines()), "",
                 "Verify verdicts:", *(f"  {verdict_line(k, r)}" for k, r in self.verification.items()), "",
                 f"Detector: {self.detector_note}" if self.detection is None else
                 f"Detector: {detection_line(self.detection)}", ""]
        lines += [f"Note: {n}" for n in self.notes] + ([""] if self.notes else [])
        bench_dirs = sorted({str(r.folder.parent) for r in self.bench if r.folder is not None})
        lines += [
            "Where everything is:",
            f"  HTML report:       {self.report_path}",
            f"  world clips:       {self.out}/world-test, {self.out}/world-ood (clips/*.mp4 + index.jsonl)",
            f"  generated clips:   {self.out}/generated ({self.generator}, signed + watermarked; "
            f"prompts in {self.out}/prompts.txt)",
            f"  verify copies:     {self.out}/verify (signed/tampered/stripped.mp4, verify.json, verify.html)",
            f"  sample grid:       {self.grid_path}",
            f"  demo credentials:  {self.out}/credentials (trust with --trust {self.out}/credentials/ca.pem)",
            f"  bench clips:       {', '.join(bench_dirs) or '-'}",
            f"  MLflow demo run:   {self.run_id} in experiment '{EXPERIMENT}'",
            *(f"  MLflow bench run:  {r.run_id} ({r.model}, {r.status})" for r in self.bench),
            f"  tracking store:    {self.tracking_uri}",
            "",
            f"Open it with:  mlflow ui --backend-store-uri {self.tracking_uri}",
            f"Total wall time: {self.seconds:.1f} s",
        ]
        return "\n".join(lines)


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise BadInputError(f"{out}: is a file; --out is the folder the demo writes into, choose another")
    if out.exists() and any(out.iterdir()) and not (out / _MARKER).exists():
        raise BadInputError(f"{out}: exists and was not made by `evalkit demo`; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / _MARKER).write_text("made by evalkit demo; replaced on each run\n")
    except OSError as e:  # a file where a parent folder should be, a read-only place
        raise BadInputError(f"{out}: cannot write the demo here ({e.strerror or type(e).__name__}); choose "
                            "another --out") from None


def _scores_table(scores: dict[str, dict]) -> str:
    names = [m for m in SHOWN_SCORES if any(m in s["metrics"] for s in scores.values())]
    rows = [["", *names]]
    for label, s in scores.items():
        ests = [s["metrics"].get(m) for m in names]
        rows.append([label, *(str(Estimate(e["value"], e["ci_low"], e["ci_high"], e["n"])) if e else "-"
                              for e in ests)])
    widths = [max(display_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(ljust(c, w) for c, w in zip(r, widths)).rstrip() for r in rows)


def run_demo(out, *, n: int = 32, seed: int = 0, config: WorldConfig = WorldConfig(), n_generate: int = 4,
             n_real: int = 4, max_prompts: int | None = 8, generator: str = DEFAULT_GENERATOR,
             generator_options: dict | None = None, progress: bool = True, echo=None) -> DemoResult:
    """The whole demo into `out` (a folder it owns; replaced in place on a rerun). `echo(line)`
    receives the step lines as they happen (default: stdout); `progress` shows the bars of the
    steps (on a terminal).
    `max_prompts` bounds the suite run (None: the whole suite); `generator_options` go to the
    U-ViT generator (e.g. `steps`) in steps 2 and 6."""
    import pandas as pd

    from evalkit import tracking
    from evalkit.metrics.score import score_folders
    from evalkit.provenance.verify import load_trust

    tracking.check_reachable()
    out = Path(out).absolute()
    if n < 2:
        raise BadInputError(f"--n {n}: the demo needs at least 2 reference clips (FVD needs 2 a set)")
    if n_generate < 2:
        raise BadInputError(f"--n-generate {n_generate}: the demo needs at least 2 generated clips")
    _prepare_out(out)
    p = Progress(STEPS, echo or functools.partial(print, flush=True))
    notes: list[str] = []

    with p.step("rendering the reference world"):
        folders = {"test": out / "world-test", "ood": out / "world-ood"}
        counts = {"test": n, "ood": max(2, n // 2)}
        for split, folder in folders.items():
            render_folder(folder, split=split, n=counts[split], seed=seed, config=config,
                          progress=progress, replace=True)
        table = pd.DataFrame([r for folder in folders.values() for r in clip_statistics(folder, config)])
        test = table[table.split == "test"]
        estimates = {"mp4_psnr_db": mean_ci(table.psnr_db), "brightness": mean_ci(table.brightness),
                     "objects_per_clip": mean_ci(table.objects), "speed_px_s_test": mean_ci(test.speed_px_s),
                     "speed_px_s_ood": mean_ci(table[table.split == "ood"].speed_px_s)}
        for kind in KINDS:
            estimates[f"share_{kind}"] = proportion_ci(int((test.kind == kind).sum()), len(test))
        p.say(f"{counts['test']} test + {counts['ood']} ood clips of {config.frames} frames at "
              f"{config.size}x{config.size}; MP4 PSNR {estimates['mp4_psnr_db']} dB")

    with p.step(f"generating {n_generate} clips with the default generator {generator}, signed + "
                "watermarked"):
        gen, note = default_generator(generator, generator_options)
        if note:
            notes.append(note)
            p.say(note)
        keys, signer, wm_key = demo_credentials(out, seed)
        generated, records = generate_signed(gen, folders["test"], out, n=n_generate, seed=seed,
                                             signer=signer, wm_key=wm_key, progress=progress)
        proto = gen.protocol()
        p.say(f"{len(records)} clips in {generated} ({proto['sampler']}, {proto['steps']} steps)")
        shown = list(iter_clips(folders["test"]))[:4] + list(iter_clips(generated))[:4]
        grid = frame_grid(shown, labels=[f"{'world' if i < 4 else gen.spec}: {c.prompt}"
                                         for i, c in enumerate(shown)])
        grid_path = save_png(grid, out / "samples.png")

    with p.step("scoring the generated clips against the reference world"):
        scores = {gen.spec: score_folders(generated, folders["test"], progress=progress),
                  "world ood (ceiling)": score_folders(folders["ood"], folders["test"], progress=progress)}
        for prefix, s in zip(("generated_vs_test", "ood_vs_test"), scores.values()):
            for name, m in s["metrics"].items():
                if m["ci_low"] is not None:  # the interval's method goes with it (tagged ci.<name>: a
                    # not-estimable one's NaN bounds said "bootstrap-percentile", the default)
                    method = m["protocol"]["ci"].rsplit("@", 1)[0]
                    estimates[f"{prefix}.{name}"] = Estimate(m["value"], m["ci_low"], m["ci_high"], m["n"],
                                                             method)
        p.say(_scores_table(scores))

    with p.step("loading the default detector"):
        detector, why = load_default_detector()
        detection, detector_note = None, None
        if detector is None:
            detector_note = f"no default detector ({why})"
            p.say(detector_note)
        else:
            detection = run_detector(detector, generated, folders["ood"], n_real)
            p.say(format_detection(detection))
            estimates["detector.catch_rate"] = proportion_ci(detection["caught"], detection["n_generated"])
            estimates["detector.false_alarm_rate"] = proportion_ci(detection["false_alarms"],
                                                                   detection["n_real"])

    with p.step("verifying a signed clip, a tampered copy and a stripped copy"):
        verification = verify_three(generated / records[0]["file"], out / "verify",
                                    trust=load_trust([keys.ca_cert]), wm_key=wm_key, detector=detector)
        p.say("\n".join(verdict_line(k, r) for k, r in verification.items()))

    label = f"{SUITE} (first {max_prompts} prompts)" if max_prompts else SUITE
    with p.step(f"running {label} over world, {gen.spec} and {CONTROL}"):
        results = bench(["world", gen.spec, CONTROL], out / "bench", max_prompts=max_prompts,
                        generator_options=generator_options, progress=progress, say=p.say)
        for w in bench_warnings(results):
            p.say(f"note: {w}")

    with p.step("leaderboard and HTML report"):
        df, board, report_path = leaderboard_and_report(out)
        others = sorted(set(df["model"]) - {r.model for r in results})
        if others:
            notes.append(f"the leaderboard also shows earlier runs in this store: {', '.join(others)}")
        p.say(board)
        p.say(f"report: {report_path}")

    with p.step("logging the demo run to MLflow"):
        params = {"world": {"frames": config.frames, "size": config.size, "fps": config.fps,
                            "noise": config.noise},
                  "n_test": counts["test"], "n_ood": counts["ood"], "seed": seed,
                  "codec": "h264 yuv420p crf 18", "generator": proto, "n_generated": len(records),
                  "suite": SUITE, "max_prompts": max_prompts}
        tags = {f"evalkit.demo.bench.{r.model}": r.run_id for r in results}
        with tracking.start_run(EXPERIMENT, run_name="demo", params=params, seed=seed, tags=tags) as run:
            tracking.log_estimates(estimates)
            for prefix, s in zip(("generated_vs_test", "ood_vs_test"), scores.values()):
                tracking.log_json(s, f"scores/{prefix}.json")
            tracking.log_json(verification, "provenance/verify.json")
            tracking.log_artifact(out / "verify" / "verify.html", "provenance")
            if detection is not None:
                tracking.log_json(detection, "detector/predictions.json")
            tracking.log_image(grid, "samples.png")
            tracking.log_table(table, "clips.csv")
            tracking.log_table(df, "leaderboard.csv")
            tracking.log_artifact(report_path)
            for folder in (*folders.values(), generated):
                tracking.log_artifact(folder / "index.jsonl", folder.name)
            run_id = run.info.run_id
        p.say(f"run {run_id} in experiment '{EXPERIMENT}'")

    return DemoResult(out=out, run_id=run_id, tracking_uri=tracking.tracking_uri(), generator=gen.spec,
                      estimates=estimates, grid_path=grid_path, verification=verification,
                      detection=detection, detector_note=detector_note, bench=results,
                      max_prompts=max_prompts, leaderboard=board, report_path=report_path,
                      seconds=p.elapsed, notes=notes)


def remove_demo_output(out) -> None:
    """Delete a demo folder (only one the demo made)."""
    out = Path(out)
    if (out / _MARKER).exists():
        shutil.rmtree(out)
