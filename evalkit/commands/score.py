"""`evalkit score`, `evalkit index` and `evalkit backbones ...`: metrics, the prompts of another
tool's numbered videos, and the encoders clips are read with."""

from __future__ import annotations

import json
import os
import math
from pathlib import Path

import click

from evalkit.safe_text import printable

from evalkit.atomic import check_writable, is_stdout, check_not_input, check_output_file, write_atomic
from evalkit.commands.options import SEED, positive
from evalkit.errors import BadInputError, EvalkitError


@click.command()
@click.argument("candidates", type=click.Path(readable=False, path_type=Path))
@click.option("--reference", type=click.Path(readable=False, path_type=Path), help="Folder of real clips (needed for fvd).")
@click.option("--metrics", default="fvd,clip,flicker,physics", show_default=True)
@click.option("--json", "json_file", type=click.Path(readable=False, path_type=Path), help="Also write the results here.")
@click.option("--video-backbone", default="world-video-encoder", show_default=True,
              help="FVD features: world-video-encoder, i3d (with --i3d), or a retrained name.")
@click.option("--i3d", type=click.Path(readable=False, path_type=Path), help="StyleGAN-V's i3d_torchscript.pt (implies "
              "--video-backbone i3d).")
@click.option("--clip-backbone", default="world-clip", show_default=True,
              help="CLIP model: world-clip, or ViT-B-32 with --clip-weights.")
@click.option("--clip-weights", type=click.Path(readable=False, path_type=Path),
              help="CLIP weights: OpenAI's ViT-B-32.pt, an open_clip state dict, or a Hugging Face "
              "snapshot folder of open_clip weights.")
@click.option("--no-mlflow", is_flag=True, help="Do not log an MLflow run.")
@click.option("--skip-unreadable", is_flag=True, help="Leave out files that cannot be scored (broken, "
              "not a video, one frame), each named in a warning and in the JSON's skipped list; without "
              "it the first one stops the run.")
def score(candidates, reference, metrics, json_file, video_backbone, i3d, clip_backbone, clip_weights, no_mlflow,
          skip_unreadable):
    """Score a folder of clips (against a reference folder): every number with its 95% CI, N and
    protocol."""
    from evalkit.metrics.score import parse_metrics, score_folders

    names = parse_metrics(metrics)
    if not candidates.exists() and not candidates.is_symlink():  # the path first: a typo is exit 3, not "give --reference"
        from evalkit.errors import MissingResourceError

        raise MissingResourceError(f"{candidates}: no such folder or video; check the path")
    if "fvd" in names and reference is None:
        rest = ",".join(n for n in names if n != "fvd")
        raise BadInputError("--metrics includes fvd (the default): give --reference REAL (a folder of real clips)"
                            + (f", or score without it: --metrics {rest}" if rest else ""))
    json_only = json_file is not None and is_stdout(json_file)  # the JSON alone on stdout, the table on stderr
    if json_file is not None and not json_only:  # before the work, not after it
        check_writable(check_not_input(check_output_file(json_file, "scores.json"),
                                       [candidates, reference, i3d, clip_weights], "--json"))
    try:
        result = score_folders(candidates, reference, names, video_backbone="i3d" if i3d else video_backbone,
                               video_backbone_path=i3d, clip_backbone=clip_backbone, clip_backbone_path=clip_weights,
                               log_mlflow=not no_mlflow, skip_unreadable=skip_unreadable)
    except EvalkitError as e:
        if getattr(e, "unscorable_file", False):  # one broken file among many: say how to go on
            raise type(e)(f"{e} (or pass --skip-unreadable to score the rest)") from None
        raise
    if json_file is not None:
        from evalkit.tracking import _jsonable

        text = json.dumps(_jsonable(result), indent=1)
        if json_only:
            click.echo(text)
        else:
            write_atomic(json_file, text)
    for name, m in result["metrics"].items():
        ci = (f"[{_num(m['ci_low'], m)}, {_num(m['ci_high'], m)}]"
              if all(isinstance(m.get(k), (int, float)) and math.isfinite(m[k]) for k in ("ci_low", "ci_high"))
              else "(no CI: n too small)" if (m.get("n") or 0) < 2 else "(no CI)")
        click.echo(f"{name:<44} {_num(m['value'], m):>10} {ci:<24} n={m['n']}", err=json_only)
    for w in result["warnings"]:
        click.echo(printable(f"evalkit: warning: {w}"), err=True)
    if "mlflow_run_id" in result:
        click.echo(f"MLflow run {result['mlflow_run_id']} in experiment 'evalkit-score'", err=json_only)


def _num(x, m: dict) -> str:
    """A number of the table: 4 significant digits, or more where that would show a real interval
    as a point ("1 [1, 1]" for 0.99996 [0.99996, 0.99997])."""
    lo, hi = m.get("ci_low"), m.get("ci_high")
    digits = 4
    if all(isinstance(v, (int, float)) and math.isfinite(v) for v in (lo, hi)) and lo != hi:
        while digits < 12 and f"{lo:.{digits}g}" == f"{hi:.{digits}g}":
            digits += 1
    return f"{x:.{digits}g}" if isinstance(x, (int, float)) else str(x)


@click.group()
def backbones():
    """The evaluator's feature models: shipped world defaults, retrained ones, standard ones."""


@backbones.command("list")
def backbones_list():
    """Shipped and retrained world backbones with their weights' SHA-256."""
    from evalkit.metrics.backbones import list_backbones

    for b in list_backbones():
        click.echo(f"{b['name']:<32} {b['where']:<8} {b['kind']:<6} {b['sha256']}  {b['path']}")


@backbones.command("train")
@click.option("--which", type=click.Choice(["video", "clip", "all"]), default="all", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--steps", type=int, callback=positive, help="Training steps (default: the shipped recipe's).")
@click.option("--out", help="Name under $EVALKIT_HOME/backbones (default: world-video-encoder-seedS ...).")
def backbones_train(which, seed, steps, out):
    """Retrain the offline backbones on the world (a few CPU minutes each, deterministic)."""
    from evalkit.metrics.encoders import train_world_clip, train_world_video_encoder

    jobs = {"video": train_world_video_encoder, "clip": train_world_clip}
    for name in (["video", "clip"] if which == "all" else [which]):
        kw = {"seed": seed, **({"steps": steps} if steps else {})}
        if out:
            kw["out"] = out if which != "all" else f"{out}-{name}"
        res = jobs[name](**kw)
        click.echo(f"{name}: {res['path']} sha256 {res['sha256']} ({res['steps']} steps, {res['seconds']:.0f} s)")


@click.command("index")
@click.argument("folder", type=click.Path(readable=False, path_type=Path))
@click.option("--prompts", "prompts_file", required=True, type=click.Path(readable=False, path_type=Path),
              help="The prompt list the videos were made from, as --prompts reads it: text (a prompt a "
              "line), .jsonl, .json or .csv.")
@click.option("--start", type=click.IntRange(min=0), default=None,
              help="The number of the first prompt's video (usually 0 or 1, as the tool counts; another for a "
              "shard of a longer list); needed when a video is missing.")
def index(folder, prompts_file, start):
    """Write FOLDER/index.jsonl for videos named by number after a prompt list (0000.mp4,
    0000_1.mp4, ... as EvalCrafter and similar tools write them; sample_0000.mp4, video_3.mp4 or
    output-12_1.mp4 as Open-Sora, Latte and diffusers scripts do), so that score, bench
    (folder:FOLDER) and detectors read each video with its prompt."""
    from evalkit.clipset import INDEX, index_numbered
    from evalkit.commands.options import require
    from generators.base import load_prompts

    require(folder, "dir", "folder", "give the folder of the other tool's videos")
    target = folder / INDEX
    if target.is_symlink():  # a link planted in a downloaded folder: written through, it made a file anywhere
        raise BadInputError(f"{printable(target)}: is a link (to {printable(os.readlink(target))}); the index is written "
                            "only as a plain file in the folder: remove the link")
    if target.exists():
        raise BadInputError(f"{target}: already exists; this folder is indexed (remove it to index again)")
    require(prompts_file, "file", "prompts file", "give the tool's prompt list")
    prompts = [{"prompt": p.text, "probe": p.probe} for p in load_prompts(str(prompts_file))]
    records = index_numbered(folder, prompts, start)
    write_atomic(target, "".join(json.dumps(r) + "\n" for r in records))
    first = min(r["video_number"] for r in records)
    used = len({r["video_number"] for r in records})
    click.echo(f"wrote {printable(target)}: {len(records)} videos of {used} of the {len(prompts)} prompts "
               f"(video {first} takes prompt {first - (start if start is not None else first) + 1})")


COMMANDS = [score, backbones, index]  # what `evalkit.cli` adds to the `evalkit` group
