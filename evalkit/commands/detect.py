"""`evalkit detectors ...` and `evalkit detect`: synthetic-video detectors."""

from __future__ import annotations

import json
from pathlib import Path

import click

from evalkit.commands.options import SEED
from evalkit.errors import EXIT_BAD_INPUT, EXIT_MISSING
from evalkit.safe_text import printable


@click.group()
def detectors():
    """Synthetic-video detectors."""


@detectors.command("train")
@click.option("--real", required=True, multiple=True, type=click.Path(readable=False, path_type=Path),
              help="Real clips: a clip folder (index.jsonl), or natural videos (a file or folder). Repeatable.")
@click.option("--fake", required=True, multiple=True, type=click.Path(readable=False, path_type=Path),
              help="Generated clips, one clip folder per generator. Repeatable.")
# Spelled out rather than imported: the CLI starts without scikit-learn and torch. A test keeps
# these equal to detectors.families.DEFAULT_FAMILIES, ensemble.COMBINES, ensemble.THRESHOLD_RULES
# and TrainConfig.
@click.option("--family", "families", default="spectral,temporal,cnn3d,oneclass,naive", show_default=True,
              help="Families to combine (naive, spectral, temporal, cnn3d, oneclass); naive is always evaluated.")
@click.option("--out", "name", default="default", show_default=True, help="Name to save and register it under.")
@click.option("--calibration", type=click.Choice(["platt", "isotonic"]), default="platt", show_default=True)
@click.option("--combine", type=click.Choice(["stack", "trimmed"]), default="trimmed", show_default=True,
              help="Pool the families by stacking, or by a trimmed mean of their calibrated scores.")
@click.option("--target-fpr", type=click.FloatRange(0.0001, 0.5), default=0.01, show_default=True)
@click.option("--threshold-rule", type=click.Choice(["conformal", "empirical"]), default="conformal",
              show_default=True, help="conformal: new real clips are expected to be flagged at most "
              "--target-fpr of the time; empirical: the held-out real clips are.")
@click.option("--seed", type=SEED, default=0, show_default=True)
def detectors_train(real, fake, families, name, calibration, combine, target_fpr, threshold_rule, seed):
    """Train a calibrated detector on real and generated clips; saves, logs to MLflow, registers."""
    from detectors.train import TrainConfig, parse_families, table_rows, train_detector

    cfg = TrainConfig(families=parse_families(families), calibration=calibration, combine=combine,
                      target_fpr=target_fpr, threshold_rule=threshold_rule, seed=seed)
    report = train_detector(list(real), list(fake), name=name, cfg=cfg)
    for row in table_rows(report):
        # a test split of one class has no AUC (16 + 16 clips: an internal error after the save)
        na = "n/a"
        click.echo(f"{row['detector']:>10}  AUC {row.get('auc', na)}  TPR@1%FPR {row.get('tpr_at_1pct_fpr', na)}  "
                   f"ECE {row.get('ece', na)}  natural FPR {row['natural_fpr']}  (test n={row['n']})")
    fit = ", ".join(f"{f} {s:.0f} s" for f, s in report["fit_s"].items())
    clips = ", ".join(f"{s} {c['real'] + c['generated']} ({c['real']} real, {c['generated']} generated)"
                      for s, c in report["clips_by_class"].items())
    click.echo(f"clips: {clips}; prepared in {report['prep_s']:.0f} s; trained: {fit}")
    for w in report["warnings"]:
        click.echo(printable(f"evalkit: warning: {w}"), err=True)
    click.echo(f"threshold {report['threshold']:.4f} ({threshold_rule}, target FPR {target_fpr:g}; expected "
               f"on new real clips {report['expected_fpr_new_real']:.4f}); "
               f"saved to {report['path']}; MLflow run {report.get('mlflow_run_id')}")


@detectors.command("list")
def detectors_list():
    """Detectors available by name."""
    from detectors.registry import list_detectors

    for name, where in list_detectors().items():
        click.echo(f"{name}\t{where}")


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--detector", "name", default=None, help="Detector name (default: default).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per file.")
@click.option("--windows", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Also judge this many evenly spaced windows across each whole video and report where "
              "it reads generated (the decision stays the first window's).")
def detect(files, name, as_json, windows):
    """Calibrated probability that each video is generated, the threshold and the decision.
    Exit 3 if a file is not there, else 2 if any file is unreadable."""
    from detectors.predict import detect_files
    from evalkit.clipset import expand_folders

    rows = detect_files(expand_folders(files), name, windows=windows)
    said = next((r["detector"].get("calibration_warnings") for r in rows
                 if (r.get("detector") or {}).get("calibration_warnings")), None)
    for w in said or []:  # a detector calibrated on too few clips: its verdicts rest on that
        click.echo(printable(f"evalkit: warning: detector {rows[0]['detector']['name']}: {w}"), err=True)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        for r in rows:
            proto = r.get("protocol") or {}
            ood, total = proto.get("out_of_domain"), proto.get("video_frames")
            below = (r.get("detector") or {}).get("real_below")
            judged = (f"; judged its first {proto['frames']} of {total} frames"
                      if total and proto.get("frames") and total > proto["frames"] else "")
            click.echo(f"{printable(r['file'])}: " + (f"error: {printable(r['error'])}" if r.get("error") else
                       f"p_generated {r['p_generated']:.3f} (generated at >= {r['threshold']:.3f}"
                       + (f", real under {below:.3f}" if below is not None else "") + f") -> {r['decision']}"
                       + (f" (abstains: {ood})" if ood else "") + judged))
            cover, total = r.get("windows_cover"), (r.get("protocol") or {}).get("video_frames")
            if cover and total and cover[1] + 1 < total - 2:  # (a header may miscount a frame or two)
                click.echo(f"  windows cover frames 0-{cover[1]} of {total} (the frame limit, EVALKIT_MAX_FRAMES)")
            later = [w for w in r.get("windows", [])[1:] if w["p_generated"] >= r["threshold"]]
            if later:  # the verdict is the first window's; say where else the video reads generated
                w = max(later, key=lambda w: w["p_generated"])
                click.echo(f"  {len(later)} later window(s) read generated, e.g. frames {w['frames'][0]}-"
                           f"{w['frames'][1]} p_generated {w['p_generated']:.3f}; the decision above rests on the "
                           "first window")
    code = (EXIT_MISSING if any(r.get("missing") for r in rows) else
            EXIT_BAD_INPUT if any(r.get("error") for r in rows) else 0)
    raise click.exceptions.Exit(code)


COMMANDS = [detectors, detect]  # what `evalkit.cli` adds to the `evalkit` group
