"""The `evalkit` command: parses, calls the library, prints. Exit codes in evalkit.errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from evalkit import __version__
from evalkit.errors import (
    EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUT_OF_MEMORY, BadInputError, EvalkitError,
    UnavailableError, out_of_memory_message,
)

SPLIT = click.Choice(["train", "test", "ood"])


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"must be positive, got {value}")
    return value


def _unavailable(command: str, issue: int):
    raise UnavailableError(f"`evalkit {command}` is not available in evalkit {__version__} yet "
                           f"(planned: issue {issue}); see the README for what works today")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="evalkit")
def cli():
    """evalkit: evaluation, safety and synthetic-media detection for text-to-video models.

    Exit codes: 0 success, 1 a check failed, 2 bad input, 3 missing weights/credentials/model,
    4 not available in this version, 70 internal error, 130 interrupted.
    """


# ---------------------------------------------------------------- demo, info, probe
@cli.command()
@click.option("--out", type=click.Path(path_type=Path), default=Path("evalkit-demo"), show_default=True,
              help="Folder for the demo's clips and pictures (replaced on each run).")
@click.option("--n", type=int, default=32, show_default=True, callback=_positive, help="Reference clips.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--n-generate", type=int, default=4, show_default=True, callback=_positive,
              help="Clips the default generator makes, signs and watermarks (at least 2).")
@click.option("--max-prompts", type=int, default=8, show_default=True, callback=_positive,
              help="Prompts of world-v1 the suite run takes (the first N, both parts in turn).")
def demo(out, n, seed, n_generate, max_prompts):
    """End-to-end on the embedded default: world, generator, scores, detector, verify, suite,
    leaderboard and HTML report; prints where the results are."""
    from evalkit.demo import run_demo

    result = run_demo(out, n=n, seed=seed, n_generate=n_generate, max_prompts=max_prompts, echo=click.echo)
    click.echo(result.summary())


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(as_json):
    """Version, machine, tracking store and home folder."""
    from evalkit.home import evalkit_home, git_commit, machine_info
    from evalkit.tracking import tracking_uri

    data = {"version": __version__, "git_commit": git_commit(), "tracking_uri": tracking_uri(),
            "evalkit_home": str(evalkit_home()), "machine": machine_info()}
    click.echo(json.dumps(data, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in data.items()))


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per file.")
def probe(files, as_json):
    """Read video headers: container, codec, size, fps, frames. Exit 2 if any file is bad."""
    from dataclasses import asdict

    from evalkit.video import display_turn, frame_timing, probe_video

    failed = None
    for f in files:
        try:
            info = asdict(probe_video(f))
            info["path"] = str(info["path"])
            info["display_turn"] = display_turn(f)  # frames are read as shown: turned by this
            info.update(frame_timing(f))
            row = {"file": str(f), "readable": True, "error": None, **info}
        except EvalkitError as e:
            row, failed = {"file": str(f), "readable": False, "error": str(e)}, e
        if as_json:
            click.echo(json.dumps(row))
        elif row["readable"]:
            # Matroska/WebM headers hold no frame count: estimate it from the duration, and say so.
            frames = (f"{row['frames']} frames" if row["frames"] else
                      f"about {round(row['duration'] * row['fps'])} frames (from the duration)"
                      if row["duration"] and row["fps"] else "frame count not in the header")
            turn = f" (stored; shown {row['display_turn']})" if row["display_turn"] else ""
            timing = (f", variable frame rate (frames {row['interval_min'] * 1000:.0f}-"
                      f"{row['interval_max'] * 1000:.0f} ms apart)" if row["variable_frame_rate"] else "")
            if row["start_time"] and abs(row["start_time"]) >= 0.0005:
                timing += f", first frame at {row['start_time']:.3f} s"
            click.echo(f"{f}: {row['container']} {row['codec']} {row['width']}x{row['height']}{turn} "
                       f"{row['fps']:.3f} fps {frames}{timing}")
        else:
            click.echo(f"evalkit: error: {row['error']}", err=True)
    if failed is not None:
        raise click.exceptions.Exit(failed.exit_code)  # each error is already printed


# ---------------------------------------------------------------- world
@cli.group()
def world():
    """The procedural physics world: the embedded reference data."""


@world.command("render")
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--split", type=SPLIT, default="test", show_default=True)
@click.option("--n", type=int, default=32, show_default=True, callback=_positive, help="Number of clips.")
@click.option("--frames", type=int, default=16, show_default=True, callback=_positive)
@click.option("--size", type=int, default=32, show_default=True, callback=_positive, help="Frame side in pixels.")
@click.option("--fps", type=float, default=8.0, show_default=True, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--noise", type=float, default=0.0, show_default=True, help="Sensor noise std (8-bit levels).")
@click.option("--crf", type=click.IntRange(0, 51), default=18, show_default=True, help="H.264 quality.")
def world_render(out, split, n, frames, size, fps, seed, noise, crf):
    """Render N world clips of a split to OUT (clips/*.mp4 + index.jsonl)."""
    from evalkit.world import WorldConfig
    from evalkit.world.export import render_folder

    if size % 2:
        raise BadInputError(f"--size {size}: H.264 (yuv420p) needs an even frame size; use {size + 1}")
    try:
        config = WorldConfig(frames=frames, size=size, fps=fps, noise=noise)
    except ValueError as e:
        raise BadInputError(f"evalkit world render: {e}")
    records = render_folder(out, split=split, n=n, seed=seed, config=config, crf=crf)
    click.echo(f"wrote {len(records)} {split} clips ({frames} frames, {size}x{size}, {fps:g} fps) to {out}")


# ---------------------------------------------------------------- the rest of the contract
@cli.group()
def generator():
    """The built-in U-ViT video diffusion generator."""


@generator.command("train")
@click.option("--preset", default="small", show_default=True,
              help="tiny | small | small-coarse | base | vae-small | gan-small")
@click.option("--data", default="world", show_default=True, help="world, or a folder of clips.")
@click.option("--out", type=click.Path(path_type=Path), help="Checkpoint (resumed if it exists). "
              "Default: $EVALKIT_HOME/models/uvit-PRESET.pt")
@click.option("--max-minutes", type=float, callback=_positive)
@click.option("--max-steps", type=int, default=100_000, show_default=True, callback=_positive)
@click.option("--batch-size", type=int, default=16, show_default=True, callback=_positive)
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=_positive)
@click.option("--warmup-steps", type=int, default=500, show_default=True, help="uvit: linear learning-rate warm-up.")
@click.option("--min-snr-gamma", type=float, default=5.0, show_default=True,
              help="uvit: min-SNR loss weighting (Hang et al.); 0 turns it off.")
@click.option("--snr-shift", type=float, callback=_positive,
              help="uvit: shift the noise schedule to SNR/shift^2 (default: the preset's).")
@click.option("--mix-ffn", is_flag=True, help="uvit: Mix-FFN, a depthwise 3x3 conv over the patch grid in "
              "every MLP (grows an --init-from checkpoint that lacks it).")
@click.option("--head-channels", type=click.IntRange(0, 64), default=0, show_default=True,
              help="uvit: decode this many features a pixel, mixed by a 3x3 conv across patch borders.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="uvit: bf16 autocast (auto: on CUDA only; bf16 also on a CPU with AMX/AVX512-BF16, "
              "1.2-1.6x faster there, measured).")
@click.option("--init-from", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Start from these weights (.safetensors export) instead of a fresh init.")
@click.option("--window-prob", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="uvit: joint image-video training: the share of steps that train on short frame "
              "windows of the clips (much cheaper steps).")
@click.option("--window-frames", type=int, default=2, show_default=True, callback=_positive,
              help="uvit: frames a window holds (a multiple of the tubelet length).")
@click.option("--text-init", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="uvit: text-encoder weights from `generator pretrain-text`.")
@click.option("--freeze-text", is_flag=True, help="uvit: do not train the text encoder further.")
@click.option("--object-weight", type=click.FloatRange(1, 100), default=1.0, show_default=True,
              help="uvit: weight of saturated-colour pixels (the world's objects) in the loss; 1: plain MSE "
              "(4 measured worse: README).")
@click.option("--data-workers", type=click.IntRange(0, 64),
              help="uvit: processes that render the next steps' clips ahead (default: 0 on a CPU, "
              "enough to keep a GPU fed on CUDA); the weights do not depend on it.")
@click.option("--quality-every-minutes", type=float, callback=_positive,
              help="uvit: every M training minutes (and at the end) score the EMA weights on 24 world test "
              "prompts x 2 (objects present, falls, physics, FVD) into the MLflow run: a learning curve.")
def generator_train(preset, data, out, max_minutes, max_steps, batch_size, lr, warmup_steps, min_snr_gamma,
                    snr_shift, mix_ffn, head_channels, seed, compile_, device, precision, init_from,
                    window_prob, window_frames, text_init, freeze_text, object_weight, data_workers,
                    quality_every_minutes):
    """Train the built-in generator on the world (or a folder of clips); resumes from --out."""
    uvit_only = (precision != "auto" or quality_every_minutes or window_prob or text_init or freeze_text
                 or mix_ffn or head_channels or data_workers is not None or object_weight != 1.0)
    if uvit_only and preset.startswith(("vae-", "gan-")):
        raise BadInputError("--precision, --window-prob, --text-init, --freeze-text, --mix-ffn, --head-channels, "
                            "--object-weight, --data-workers "
                            f"and --quality-every-minutes apply to the U-ViT presets only, not to {preset}")
    if preset.startswith("vae-"):  # the conditional video VAE family (generators/vae)
        from generators.vae.train import train_from_cli

        click.echo(train_from_cli(preset, data, out, max_minutes, max_steps, batch_size, lr, seed, compile_,
                                  device, init_from))
        return
    if preset.startswith("gan-"):  # the conditional video GAN family (generators/gan)
        from generators.gan.train import train_from_cli as train_gan

        click.echo(train_gan(preset, data, out, max_minutes, max_steps, batch_size, lr, seed, compile_,
                             device, init_from))
        return
    from evalkit.home import evalkit_home
    from generators.uvit.configs import get_config
    from generators.uvit.train import TrainConfig, train

    get_config(preset)  # an unknown preset fails here, before anything is written
    out = out or evalkit_home() / "models" / f"uvit-{preset}.pt"
    if warmup_steps < 0 or min_snr_gamma < 0:
        raise BadInputError("--warmup-steps and --min-snr-gamma must be >= 0")
    overrides = {k: v for k, v in (("snr_shift", snr_shift), ("mix_ffn", mix_ffn), ("head_channels", head_channels))
                 if v}  # unset: the preset's
    tc = TrainConfig(preset=preset, overrides=overrides,
                     data=data, batch_size=batch_size, max_steps=max_steps,
                     max_minutes=max_minutes, lr=lr, warmup_steps=warmup_steps,
                     min_snr_gamma=min_snr_gamma or None, seed=seed, compile=compile_, device=device,
                     precision=precision, init_from=str(init_from) if init_from else None,
                     window_prob=window_prob, window_frames=window_frames,
                     text_init=str(text_init) if text_init else None, freeze_text=freeze_text,
                     object_weight=object_weight, data_workers=data_workers)
    cfg = tc.model_config()
    if window_prob and (window_frames % cfg.temporal_patch or window_frames >= cfg.frames):
        raise BadInputError(f"--window-frames {window_frames}: must be a multiple of {cfg.temporal_patch} "
                            f"below {cfg.frames} for preset {preset}")
    hook = None
    if quality_every_minutes:
        from evalkit.metrics.generator_quality import training_quality_hook

        hook = training_quality_hook(quality_every_minutes)
    state = train(tc, out, on_checkpoint=hook)
    click.echo(f"trained uvit:{preset} to step {state.step} ({state.clips_seen} clips, "
               f"{state.seconds / 60:.1f} min); checkpoint {out}")


@generator.command("recipe")
@click.argument("name", required=False)
@click.option("--out-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where the stages' checkpoints, exports and recipe.json go (resumed if it exists).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True)
@click.option("--until", help="Stop after this stage.")
def generator_recipe(name, out_dir, device, precision, until):
    """Train a recorded lineage of stages with one command (no NAME: list the recipes); run it
    again to continue an interrupted one."""
    from generators.uvit.recipes import RECIPES, run_recipe

    if name is None:
        for r in RECIPES.values():
            t = r.totals()
            click.echo(f"{r.name}: {r.description}\n    stages: {', '.join(s.name for s in r.stages)}; "
                       f"{t['denoiser_steps']:,} denoiser steps, {t['denoiser_clips']:,} clips, "
                       f"{t['text_steps']:,} text steps")
        return
    if out_dir is None:
        raise BadInputError("generator recipe: give --out-dir DIR (where its stages are written and resumed)")
    record = run_recipe(name, out_dir, device=device, precision=precision, until=until, echo=click.echo)
    final = record["final"]
    click.echo(f"recipe {name}: {len(record['stages'])} stages done in {out_dir}; weights {out_dir / final}"
               if final else f"recipe {name}: {len(record['stages'])} stages done in {out_dir}")


@generator.command("pretrain-text")
@click.option("--preset", default="small", show_default=True, help="A U-ViT preset (its text encoder's shape).")
@click.option("--data", default="world", show_default=True, help="world, or a folder of captioned clips.")
@click.option("--steps", type=int, default=1500, show_default=True, callback=_positive)
@click.option("--batch-size", type=int, default=64, show_default=True, callback=_positive)
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=_positive)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Text-encoder weights (.safetensors).")
def generator_pretrain_text(preset, data, steps, batch_size, lr, seed, out):
    """Pre-train the U-ViT's own text encoder contrastively against its training clips (a stage
    before `generator train --text-init OUT --freeze-text`)."""
    from generators.uvit.configs import get_config
    from generators.uvit.text_pretrain import TextPretrainConfig, pretrain_text

    if preset.startswith(("vae-", "gan-")):
        raise BadInputError(f"pretrain-text applies to the U-ViT presets only, not to {preset}")
    get_config(preset)
    s = pretrain_text(TextPretrainConfig(preset=preset, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                         data=data), out)
    click.echo(f"text encoder for uvit:{preset}: {out} (held-out caption retrieval top-1 "
               f"{s['held_out_retrieval_top1']:.2f} of {s['held_out_n']}, chance {s['chance']:.3f}; {s['seconds']:.0f} s)")


@generator.command("export")
@click.argument("checkpoint", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.argument("out", type=click.Path(path_type=Path))
def generator_export(checkpoint, out):
    """Export a training checkpoint's EMA weights as fp16 safetensors (what `uvit:PATH`, `uvit:NAME`
    and --init-from load)."""
    from evalkit.hashing import sha256_file
    from generators.uvit.generate import export_weights

    if out.suffix != ".safetensors":
        raise BadInputError(f"{out}: the export is a .safetensors file; name it so")
    path = export_weights(checkpoint, out)
    click.echo(f"exported {checkpoint} to {path} (sha256 {sha256_file(path)})")


def _check_tsa(tsa: str | None, signing: bool = True) -> None:
    if tsa is not None and not signing:
        raise BadInputError("--tsa dates signatures: give it with --sign")
    if tsa is not None and not tsa.startswith(("http://", "https://")):
        raise BadInputError(f"--tsa {tsa}: give the time-stamp authority's http(s) URL")


def _clip_shape_options(model: str, frames, size, fps, device) -> dict:
    """generate's --frames/--size/--fps/--device as generator options; the models whose clip
    shape is fixed (uvit, vae, gan: their training's; folder: its files') refuse them."""
    given = {k: v for k, v in dict(frames=frames, size=size, fps=fps, device=device).items() if v is not None}
    if not given:
        return {}
    hw = None
    if size is not None:
        parts = str(size).lower().split("x")
        if not (1 <= len(parts) <= 2 and all(x.strip().isdigit() and int(x) > 0 for x in parts)):
            raise BadInputError(f"--size {size!r}: give S or HxW in pixels, e.g. 256 or 480x832")
        hw = (int(parts[0]), int(parts[-1]))
    if model.startswith("uvit:") and set(given) == {"device"}:
        return given  # the U-ViT samples on a GPU too; its clip shape is its training's
    if model.startswith("diffusers:"):
        out = {k: v for k, v in given.items() if k != "size"}
        if hw:
            out["size"] = hw
        return out
    if model == "world" or model.startswith("control:"):
        if device is not None:
            raise BadInputError(f"--device does not apply to {model} (it renders on the CPU)")
        if hw and hw[0] != hw[1]:
            raise BadInputError(f"--size {size}: the world renders square frames; give one number")
        from evalkit.world import WorldConfig

        base = WorldConfig()
        try:
            return {"config": WorldConfig(frames=frames or base.frames, size=hw[0] if hw else base.size,
                                          fps=fps or base.fps)}
        except ValueError as e:  # the world's own limits (size, frames)
            raise BadInputError(f"--{'/--'.join(given)}: {e}") from None
    raise BadInputError(f"--{'/--'.join(given)} do not apply to {model}: its clips' frames and size are "
                        "fixed (its training's, or its files')")


@cli.command()
@click.option("--model", required=True,
              help="uvit:PRESET_OR_CKPT | folder:DIR | diffusers:ID | world | control:noise|frozen|shuffled")
@click.option("--prompts", required=True, help="A text file, a .jsonl file or a literal prompt.")
@click.option("--out", required=True, type=click.Path(path_type=Path))
@click.option("--n-per-prompt", type=int, default=1, show_default=True, callback=_positive)
@click.option("--sampler", help="uvit: ddpm | ddim | dpmpp-2m; diffusers: a scheduler name (ddim, euler, ...).")
@click.option("--steps", type=int, callback=_positive, help="uvit, diffusers: sampling steps.")
@click.option("--guidance", type=float, help="uvit, diffusers: CFG scale s in uncond + s (cond - uncond); "
              "default: the model's own (uvit: its registry entry's measured best, else 3).")
@click.option("--guidance-rescale", type=click.FloatRange(0, 1),
              help="uvit: pull the guided output's spread back to the conditional one's by this share "
              "(Lin et al. 2024; 0: none; default: the model's own, else 0).")
@click.option("--frames", type=int, callback=_positive,
              help="diffusers, world, control: frames a clip (default: the model's own).")
@click.option("--size", help="diffusers: S or HxW; world, control: S (default: the model's own).")
@click.option("--fps", type=float, callback=_positive,
              help="diffusers, world, control: frame rate of the clips (default: the model's own).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="uvit, diffusers: where the model runs "
              "(default cpu).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="uvit: the network in fp32 or under bf16 autocast (default auto: bf16 on a GPU, fp32 on a CPU).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--sign", is_flag=True, help="Sign every clip with a C2PA manifest.")
@click.option("--watermark", is_flag=True, help="Embed the invisible watermark in every clip.")
@click.option("--tsa", metavar="URL", help="With --sign: an RFC 3161 time-stamp authority dates each signature.")
def generate(model, prompts, out, n_per_prompt, sampler, steps, guidance, guidance_rescale, frames, size, fps,
             device, precision, seed, sign, watermark, tsa):
    """Generate clips from prompts into OUT (clips/*.mp4 + index.jsonl with the full protocol)."""
    from generators.base import generate_folder, get_generator, load_prompts

    sampling = {k: v for k, v in dict(sampler=sampler, steps=steps, guidance=guidance).items() if v is not None}
    if sampling and not model.startswith(("uvit:", "diffusers:")):
        raise BadInputError(f"--{'/--'.join(sampling)} only apply to uvit and diffusers models, not {model}")
    if guidance_rescale is not None:
        if not model.startswith("uvit:"):
            raise BadInputError(f"--guidance-rescale only applies to uvit models, not {model}")
        sampling["guidance_rescale"] = guidance_rescale
    sampling.update(_clip_shape_options(model, frames, size, fps, device))
    if precision is not None:
        if not model.startswith("uvit:"):
            raise BadInputError(f"--precision only applies to uvit models, not {model}")
        sampling["precision"] = precision
    _check_tsa(tsa, sign)
    prompt_list = load_prompts(prompts)
    post = None
    if sign or watermark:
        from evalkit.provenance.credentials import load_signer, load_watermark_key
        from evalkit.provenance.protect import protect_file

        signer = load_signer() if sign else None  # missing credentials fail before any generation
        wm_key = load_watermark_key(required=True) if watermark else None

        def post(path, record):
            return protect_file(path, record, sign=sign, watermark=watermark, signer=signer, wm_key=wm_key,
                                tsa_url=tsa)

    gen = get_generator(model, **sampling)
    records = generate_folder(gen, prompt_list, out, n_per_prompt=n_per_prompt, seed=seed, postprocess=post)
    done = " signed" * sign + " watermarked" * watermark
    click.echo(f"wrote {len(records)}{done} clips from {model} for {len(prompt_list)} prompts to {out}")


@cli.command()
@click.argument("candidates", type=click.Path(path_type=Path))
@click.option("--reference", type=click.Path(path_type=Path), help="Folder of real clips (needed for fvd).")
@click.option("--metrics", default="fvd,clip,flicker,physics", show_default=True)
@click.option("--json", "json_file", type=click.Path(path_type=Path), help="Also write the results here.")
@click.option("--video-backbone", default="world-video-encoder", show_default=True,
              help="FVD features: world-video-encoder, i3d (with --i3d), or a retrained name.")
@click.option("--i3d", type=click.Path(path_type=Path), help="StyleGAN-V's i3d_torchscript.pt (implies "
              "--video-backbone i3d).")
@click.option("--clip-backbone", default="world-clip", show_default=True,
              help="CLIP model: world-clip, or ViT-B-32 with --clip-weights.")
@click.option("--clip-weights", type=click.Path(path_type=Path),
              help="CLIP weights: OpenAI's ViT-B-32.pt, an open_clip state dict, or a Hugging Face "
              "snapshot folder of open_clip weights.")
@click.option("--no-mlflow", is_flag=True, help="Do not log an MLflow run.")
def score(candidates, reference, metrics, json_file, video_backbone, i3d, clip_backbone, clip_weights, no_mlflow):
    """Score a folder of clips (against a reference folder): every number with its 95% CI, N and
    protocol."""
    from evalkit.metrics.score import parse_metrics, score_folders

    names = parse_metrics(metrics)
    if "fvd" in names and reference is None:
        raise BadInputError("--metrics includes fvd: give --reference REAL (a folder of real clips)")
    result = score_folders(candidates, reference, names, video_backbone="i3d" if i3d else video_backbone,
                           video_backbone_path=i3d, clip_backbone=clip_backbone, clip_backbone_path=clip_weights,
                           log_mlflow=not no_mlflow)
    if json_file is not None:
        from evalkit.tracking import _jsonable

        tmp = json_file.with_name(f".{json_file.name}.partial")
        tmp.write_text(json.dumps(_jsonable(result), indent=1))
        tmp.replace(json_file)
    for name, m in result["metrics"].items():
        ci = f"[{m['ci_low']:.4g}, {m['ci_high']:.4g}]" if m["ci_low"] is not None else "(no CI)"
        click.echo(f"{name:<44} {m['value']:>10.4g} {ci:<24} n={m['n']}")
    for w in result["warnings"]:
        click.echo(f"evalkit: warning: {w}", err=True)
    if "mlflow_run_id" in result:
        click.echo(f"MLflow run {result['mlflow_run_id']} in experiment 'evalkit-score'")


@cli.group()
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
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--steps", type=int, callback=_positive, help="Training steps (default: the shipped recipe's).")
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


@cli.group()
def keys():
    """Signing credentials for C2PA."""


@keys.command("init")
@click.option("--dir", "directory", type=click.Path(path_type=Path),
              help="Where to write them (default: $EVALKIT_HOME/credentials).")
@click.option("--org", default="evalkit development", show_default=True, help="Organisation name.")
@click.option("--force", is_flag=True, help="Replace existing credentials.")
def keys_init(directory, org, force):
    """Make a development root CA, an ES256 signing certificate that C2PA accepts, and a
    watermark key (private keys 0600)."""
    from evalkit.provenance.credentials import init_keys

    click.echo(init_keys(dir=directory, org=org, force=force).summary())


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@click.option("--cert", type=click.Path(path_type=Path),
              help="Certificate chain (leaf first): PEM, DER or PKCS#7; or a PKCS#12 bundle (.p12/.pfx: "
              "key and chain, no --key needed).")
@click.option("--key", type=click.Path(path_type=Path),
              help="Private key, PEM or DER (mode 0600); an encrypted one opens with $EVALKIT_KEY_PASSPHRASE.")
@click.option("--source-type", type=click.Choice(["trained", "capture", "composite"]), default=None,
              help="The IPTC digital source type of a new video (default: trained).")
@click.option("--watermark", is_flag=True, help="Embed the invisible watermark (re-encodes the video).")
@click.option("--edit", is_flag=True, help="SRC is already signed: keep its manifest as the parent ingredient "
              "and record this signing as an edit of it (c2pa.opened).")
@click.option("--sidecar", is_flag=True, help="Write the manifest beside DST (DST.c2pa) and DST as an unchanged "
              "copy: for WebM/Matroska, which c2pa cannot embed in, or to keep media files untouched.")
@click.option("--tsa", metavar="URL", help="An RFC 3161 time-stamp authority: the signature then carries a "
              "trusted time, so it stays valid after the certificate expires (the only network access sign makes).")
def sign(src, dst, cert, key, source_type, watermark, edit, sidecar, tsa):
    """Sign a video with a C2PA manifest (and an invisible watermark) into DST."""
    from evalkit.provenance.c2pa import sign_file
    from evalkit.provenance.credentials import load_signer, load_watermark_key

    _check_tsa(tsa)
    signer = load_signer(cert, key)
    wm_key = load_watermark_key(required=True) if watermark else None
    click.echo(sign_file(src, dst, signer, source_type=source_type, watermark=watermark, wm_key=wm_key,
                         edit=edit, sidecar=sidecar, tsa_url=tsa).summary())


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--trust", type=click.Path(path_type=Path), help="Trust anchors (e.g. your CA): PEM, a DER certificate or a PKCS#7 bundle.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per file.")
@click.option("--detector", "detector_name", default=None,
              help="Detector to consult (default: `default`, when one is available).")
@click.option("--no-detector", is_flag=True, help="Do not run a detector.")
@click.option("--manifest", type=click.Path(path_type=Path),
              help="A .c2pa manifest store for FILE (a sidecar, or a downloaded remote manifest); one FILE only.")
@click.option("--fetch-remote", is_flag=True,
              help="Fetch a remote manifest a file names (the only network access verify makes).")
@click.option("--fragments", multiple=True, metavar="FILES",
              help="FILE is the init segment of a fragmented (DASH/HLS) stream: its media segments, as "
              "files, a folder or a quoted glob ('seg/*.m4s'). Repeatable; one FILE only.")
def verify(files, trust, as_json, detector_name, no_detector, manifest, fetch_remote, fragments):
    """Provenance, watermark and detector verdicts of videos. Exit 1 if any file is tampered or
    its signals conflict, 2 if any is unreadable (or a stream's init segment comes without its
    segments)."""
    from evalkit.clipset import expand_folders
    from evalkit.provenance.credentials import load_watermark_key
    from evalkit.provenance.verify import format_result, load_trust, verify_exit_code, verify_file

    if manifest is not None and len(files) != 1:
        raise BadInputError(f"--manifest {manifest}: give it with one FILE (it is that file's manifest store)")
    if fragments and len(files) != 1:
        raise BadInputError(f"--fragments {fragments[0]}: give it with one FILE, the stream's init segment "
                            "(quote a glob so the shell does not expand it)")
    anchors = load_trust([trust] if trust else None)
    wm_key = load_watermark_key(required=False)
    detector = None
    if not no_detector:
        from detectors.registry import list_detectors, load_detector

        # A named detector must exist; the default is used only when one is available.
        if detector_name or "default" in list_detectors():
            detector = load_detector(detector_name)
    results = []
    for f in files if fragments else expand_folders(files):  # a folder: each of its videos
        r = verify_file(f, trust=anchors, wm_key=wm_key, detector=detector, manifest=manifest,
                        fetch_remote=fetch_remote, fragments=list(fragments) or None)
        results.append(r)
        click.echo(json.dumps(r) if as_json else format_result(r))
    raise click.exceptions.Exit(verify_exit_code(results))


@cli.group()
def detectors():
    """Synthetic-video detectors."""


@detectors.command("train")
@click.option("--real", required=True, multiple=True, type=click.Path(path_type=Path),
              help="Real clips: a clip folder (index.jsonl), or natural videos (a file or folder). Repeatable.")
@click.option("--fake", required=True, multiple=True, type=click.Path(path_type=Path),
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
@click.option("--seed", type=int, default=0, show_default=True)
def detectors_train(real, fake, families, name, calibration, combine, target_fpr, threshold_rule, seed):
    """Train a calibrated detector on real and generated clips; saves, logs to MLflow, registers."""
    from detectors.train import TrainConfig, parse_families, table_rows, train_detector

    cfg = TrainConfig(families=parse_families(families), calibration=calibration, combine=combine,
                      target_fpr=target_fpr, threshold_rule=threshold_rule, seed=seed)
    report = train_detector(list(real), list(fake), name=name, cfg=cfg)
    for row in table_rows(report):
        click.echo(f"{row['detector']:>10}  AUC {row['auc']}  TPR@1%FPR {row['tpr_at_1pct_fpr']}  "
                   f"ECE {row['ece']}  natural FPR {row['natural_fpr']}  (test n={row['n']})")
    fit = ", ".join(f"{f} {s:.0f} s" for f, s in report["fit_s"].items())
    click.echo(f"clips {report['clips']}; prepared in {report['prep_s']:.0f} s; trained: {fit}")
    click.echo(f"threshold {report['threshold']:.4f} ({threshold_rule}, target FPR {target_fpr:g}; expected "
               f"on new real clips {report['expected_fpr_new_real']:.4f}); "
               f"saved to {report['path']}; MLflow run {report.get('mlflow_run_id')}")


@detectors.command("list")
def detectors_list():
    """Detectors available by name."""
    from detectors.registry import list_detectors

    for name, where in list_detectors().items():
        click.echo(f"{name}\t{where}")


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--detector", "name", default=None, help="Detector name (default: default).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list, one object per file.")
def detect(files, name, as_json):
    """Calibrated probability that each video is generated, the threshold and the decision.
    Exit 2 if any file is unreadable."""
    from detectors.predict import detect_files
    from evalkit.clipset import expand_folders

    rows = detect_files(expand_folders(files), name)
    if as_json:
        click.echo(json.dumps(rows, indent=1))
    else:
        for r in rows:
            click.echo(f"{r['file']}: " + (f"error: {r['error']}" if r.get("error") else
                       f"p_generated {r['p_generated']:.3f} (threshold {r['threshold']:.3f}) -> {r['decision']}"))
    raise click.exceptions.Exit(EXIT_BAD_INPUT if any(r.get("error") for r in rows) else 0)


@cli.group()
def bench():
    """Versioned benchmark suites."""


_BENCH_SUMMARY = ("fvd", "clip_alignment", "physics_score_id", "physics_score_ood", "physics_ood_gap",
                  "provenance_valid_rate", "watermark_survival_crf30", "detector_catch_rate", "cost.clips_per_s")


@bench.command("run")
@click.option("--suite", required=True, help="A shipped suite (world-v1) or a suite YAML file.")
@click.option("--model", "models", required=True, multiple=True,
              help="uvit:PRESET_OR_CKPT, folder:DIR, diffusers:ID, world, control:noise|frozen|shuffled; repeatable.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where clips are generated: here, or Ray actors (pip install 'evalkit[ray]').")
@click.option("--workers", type=int, callback=_positive, help="ray: actors (default: one per cluster CPU).")
@click.option("--ray-address", help="ray: a running cluster (default: $RAY_ADDRESS, else a local instance).")
@click.option("--out", type=click.Path(path_type=Path), default=Path("evalkit-bench"), show_default=True,
              help="Where each model's clips, index and signed bundle go (OUT/SUITE/MODEL-KEY).")
@click.option("--max-prompts", type=int, callback=_positive,
              help="Quick run: the first N prompts, taking the suite's parts in turn (part of the run key).")
@click.option("--sampler", help="uvit: sampler (default: the model's).")
@click.option("--steps", type=int, callback=_positive, help="uvit: sampling steps.")
@click.option("--guidance", type=float, help="uvit: guidance scale (default: the model's own, as for generate).")
@click.option("--guidance-rescale", type=click.FloatRange(0, 1), help="uvit: guidance rescale (as for generate).")
def bench_run(suite, models, executor, workers, ray_address, out, max_prompts, sampler, steps, guidance,
              guidance_rescale):
    """Run a suite over one or more models: one MLflow run per model in experiment
    evalkit-bench-SUITE; a killed run started again resumes without repeating work."""
    from benchmarks.executors import get_executor
    from benchmarks.runner import run_suite
    from benchmarks.suite import load_suite

    if executor == "local" and (workers or ray_address):
        raise BadInputError("--workers/--ray-address: only with --executor ray")
    s = load_suite(suite)
    uvit_opts = {k: v for k, v in (("sampler", sampler), ("steps", steps), ("guidance", guidance),
                                   ("guidance_rescale", guidance_rescale)) if v is not None}
    pool = get_executor(executor, **({"address": ray_address, "workers": workers} if executor == "ray" else {}))
    results = []
    try:
        for spec in models:
            r = run_suite(s, spec, out_dir=out, max_prompts=max_prompts, executor=pool,
                          generator_options=uvit_opts if spec.startswith(("uvit:", "diffusers:")) else None)
            for w in r.warnings:
                click.echo(f"evalkit: warning: {spec}: {w}", err=True)
            note = {"complete": "already complete: returned the earlier run", "resumed": "resumed an incomplete run",
                    "new": "new run"}[r.status]
            click.echo(f"{spec}: MLflow run {r.run_id} ({note}); clips and bundle in {r.folder}")
            results.append(r)
    finally:
        pool.close()
    click.echo(f"\nsuite {s.name} (sha256 {s.hash[:16]}), experiment evalkit-bench-{s.name}")
    click.echo(f"{'metric':<26}" + "".join(f"{r.model[:26]:>28}" for r in results))
    for name in _BENCH_SUMMARY:
        cells = []
        for r in results:
            m = r.metrics.get(name)
            if m is None or m.get("value") is None:
                cells.append(f"{'-':>28}")
            elif m.get("ci_low") is None:
                cells.append(f"{m['value']:>.4g} (n={m['n']})".rjust(28))
            else:
                cells.append(f"{m['value']:.3g} [{m['ci_low']:.3g},{m['ci_high']:.3g}] n={m['n']}".rjust(28))
        click.echo(f"{name:<26}" + "".join(cells))


@bench.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--clips", type=click.Path(path_type=Path), help="The run's folder of clips: check every SHA-256.")
@click.option("--trust", type=click.Path(path_type=Path), help="Trust anchors PEM (e.g. the project's ca.pem).")
@click.option("--recompute", is_flag=True, help="Score the clips again and compare the numbers exactly.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench_verify(bundle, clips, trust, recompute, as_json):
    """Check a bench run's signed result bundle (BUNDLE: bundle.json, or the run's folder, whose
    clips are then checked too). Exit 0 when everything checks, 1 when a signature, hash or
    recomputed number does not."""
    from benchmarks.bundle import verify_bundle

    if clips is None and (Path(bundle) / "index.jsonl").is_file():
        clips = Path(bundle)  # the run's folder holds both the bundle and the clips
    r = verify_bundle(bundle, clips=clips, trust=trust, recompute=recompute)
    if as_json:
        click.echo(json.dumps(r, default=str))
    else:
        sig = r["signature"]
        trusted = {True: "trusted", False: "NOT trusted", None: "no trust anchor given"}[sig.get("trusted")]
        click.echo(f"{r['bundle']}: suite {r['suite']}, model {r['model']}")
        click.echo(f"  signature: {'valid' if sig.get('valid') else 'INVALID'} ({sig.get('signer')}; {trusted})")
        if r["clips"] is not None:
            c = r["clips"]
            click.echo(f"  clips: {c['checked'] - len(c['mismatched']) - len(c['missing'])}/{c['checked']} match")
        if r["recompute"] is not None:
            rc = r["recompute"]
            click.echo(f"  recomputed: {rc['checked'] - len(rc['mismatched'])}/{rc['checked']} metrics identical")
        for p in r["problems"]:
            click.echo(f"  problem: {p}")
        click.echo("  OK" if r["ok"] else "  FAILED")
    raise click.exceptions.Exit(r["exit_code"])


@cli.command()
@click.option("--suite", required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv", "json", "html"]), default="table")
@click.option("--rank-by", help="Metric to rank by (default: fvd, else physics_score, else clip_alignment).")
@click.option("--out", type=click.Path(path_type=Path), help="Write to this file instead of stdout.")
def leaderboard(suite, fmt, rank_by, out):
    """Rank models of a suite from MLflow: each metric with its 95% CI and N; `~` marks a
    difference from the model above that a paired bootstrap (CI overlap for FVD) does not support."""
    from reports import write_text_atomic
    from reports.leaderboard import format_leaderboard, leaderboard as make_board

    board = make_board(suite, primary=rank_by)
    text = format_leaderboard(board, fmt)
    if fmt in ("csv", "json"):  # the other formats carry the notes; keep machine-readable stdout clean
        for note in board.attrs.get("notes", []):
            click.echo(f"evalkit: note: {note}", err=True)
    if out is not None:
        click.echo(f"wrote {fmt} leaderboard of {len(board)} rows to {write_text_atomic(out, text)}")
    else:
        click.echo(text)


@cli.command()
@click.option("--model", required=True)
@click.option("--policy", required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--run", "run_id", help="Audit this existing bench run instead of running the policy's suite.")
@click.option("--out-dir", type=click.Path(path_type=Path), default=Path("evalkit-bench"), show_default=True,
              help="Where the bench run keeps the model's clips.")
@click.option("--html", "html_out", type=click.Path(path_type=Path), help="Also write the HTML audit report here.")
def audit(model, policy, as_json, run_id, out_dir, html_out):
    """Audit a model release against a policy YAML: pass/fail per check with its evidence
    (value, 95% CI, N), logged to MLflow. Exit 0 only when every check passes, 1 otherwise."""
    from evalkit.errors import EXIT_CHECK_FAILED
    from reports import write_text_atomic
    from reports.audit import evaluate_policy, format_text, load_policy, log_audit

    pol = load_policy(policy)  # fail fast: a bad policy costs no generation
    if run_id is None:
        try:
            from benchmarks.runner import run_suite
        except ImportError as e:
            raise UnavailableError(f"audit needs the bench runner (benchmarks/runner.py): {e}; "
                                   "pass --run RUN_ID to audit an existing bench run") from None
        res = run_suite(pol.suite, model, out_dir=out_dir)
        run_id = getattr(res, "run_id", res)
    result = evaluate_policy(pol, run_id)
    if result.model != model:
        raise BadInputError(f"--run {run_id} is a bench run of {result.model!r}, not of --model {model!r}")
    if result.suite != pol.suite:
        raise BadInputError(f"--run {run_id} is a run of suite {result.suite!r}; the policy names {pol.suite!r}")
    audit_run = log_audit(result, pol)
    if html_out is not None:
        from reports.html import audit_report

        write_text_atomic(html_out, audit_report(result))
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "audit_run_id": audit_run}))
    else:
        click.echo(format_text(result))
        click.echo(f"MLflow run {audit_run} in experiment 'evalkit-audit'")
    raise click.exceptions.Exit(0 if result.passed else EXIT_CHECK_FAILED)


@cli.command()
@click.option("--suite", required=True)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="The HTML file to write.")
@click.option("--rank-by", help="Metric to rank by (as `leaderboard`).")
@click.option("--check", is_flag=True, help="Open it in headless Chromium: no console errors, every image "
              "decodes; saves a screenshot beside it (OUT.png) and logs both to MLflow ('evalkit-reports').")
def report(suite, out, rank_by, check):
    """A self-contained HTML report of a suite: leaderboard, metric bars with CIs, physics laws
    ID vs OOD, detector and watermark curves, sample frames next to their prompts."""
    from evalkit.errors import CheckFailedError, MissingResourceError
    from reports import write_text_atomic
    from reports.html import log_report, suite_report
    from reports.leaderboard import leaderboard as make_board

    path = write_text_atomic(out, suite_report(make_board(suite, primary=rank_by)))
    click.echo(f"wrote {path}")
    if check:
        from reports.browser import check_page, find_browser

        if find_browser() is None:
            raise MissingResourceError("--check needs Chromium (apt-get install chromium); the report is written")
        res = check_page(path, screenshot=path.with_suffix(".png"))
        run_id = log_report(path, res.screenshot, suite=suite)
        click.echo(f"checked in Chromium: {res.images} images, {res.images_bad} not decoded, "
                   f"{res.js_errors + len(res.console)} console errors; screenshot {res.screenshot}; "
                   f"MLflow run {run_id} in 'evalkit-reports'")
        if not res.ok:
            raise CheckFailedError(f"{path}: the report did not render cleanly in Chromium "
                                   f"({res.images_bad} bad images, {res.js_errors} script errors, "
                                   f"{len(res.console)} console messages)")


# ---------------------------------------------------------------- entry point
def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and an exit code, never a traceback."""
    debug = bool(os.environ.get("EVALKIT_DEBUG"))
    try:
        # Without standalone mode click returns the code of a `click.exceptions.Exit`.
        code = cli.main(args=argv, prog_name="evalkit", standalone_mode=False)
        return code if isinstance(code, int) else 0
    except click.exceptions.Exit as e:  # --help, --version
        return e.exit_code
    except click.ClickException as e:  # bad flag or value: click's message, on one line
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        click.echo(f"evalkit: error: {' '.join(e.format_message().split())}{where}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("evalkit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except EvalkitError as e:
        if debug:
            raise
        click.echo(f"evalkit: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("evalkit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except Exception as e:  # a bug in evalkit, not the user's fault, unless memory ran out
        if debug:
            raise
        oom = out_of_memory_message(e)
        if oom is not None:
            click.echo(f"evalkit: error: {oom}", err=True)
            return EXIT_OUT_OF_MEMORY
        msg = " ".join(str(e).split())[:300]
        click.echo(f"evalkit: internal error: {type(e).__name__}: {msg}; rerun with EVALKIT_DEBUG=1 "
                   "for the traceback and report it", err=True)
        return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
