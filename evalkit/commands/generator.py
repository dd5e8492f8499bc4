"""`evalkit generator ...` (train, recipe, pretrain-text, export) and `evalkit generate`."""

from __future__ import annotations

import math

from pathlib import Path

import click

from evalkit.safe_text import printable

from evalkit.atomic import check_output_file, check_writable
from evalkit.commands.options import (
    CERT_HELP, KEY_HELP, SEED, WATERMARK_KEY_HELP, check_tsa, frame_rate, guidance_scale, positive, require_file,
)
from evalkit.errors import BadInputError


@click.group()
def generator():
    """The built-in U-ViT video diffusion generator."""


@generator.command("train")
@click.option("--preset", default="small", show_default=True,
              help="tiny | small | small-coarse | base | vae-small | gan-small")
@click.option("--data", default="world", show_default=True, help="world, or a folder of clips.")
@click.option("--out", type=click.Path(readable=False, path_type=Path), help="Checkpoint (resumed if it exists). "
              "Default: $EVALKIT_HOME/models/uvit-PRESET.pt")
@click.option("--max-minutes", type=float, callback=positive)
@click.option("--max-steps", type=int, default=100_000, show_default=True, callback=positive)
@click.option("--batch-size", type=int, default=16, show_default=True, callback=positive)
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=positive)
@click.option("--warmup-steps", type=int, default=500, show_default=True, help="uvit: linear learning-rate warm-up.")
@click.option("--min-snr-gamma", type=float, default=5.0, show_default=True,
              help="uvit: min-SNR loss weighting (Hang et al.); 0 turns it off.")
@click.option("--snr-shift", type=float, callback=positive,
              help="uvit: shift the noise schedule to SNR/shift^2 (default: the preset's).")
@click.option("--mix-ffn", is_flag=True, help="uvit: Mix-FFN, a depthwise 3x3 conv over the patch grid in "
              "every MLP (grows an --init-from checkpoint that lacks it).")
@click.option("--head-channels", type=click.IntRange(0, 64), default=0, show_default=True,
              help="uvit: decode this many features a pixel, mixed by a 3x3 conv across patch borders.")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--compile", "compile_", is_flag=True, help="torch.compile the network.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="uvit: bf16 autocast (auto: on CUDA only; bf16 also on a CPU with AMX/AVX512-BF16, "
              "1.2-1.6x faster there, measured).")
@click.option("--init-from", type=click.Path(readable=False, path_type=Path),
              help="Start from these weights (.safetensors export) instead of a fresh init.")
@click.option("--window-prob", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="uvit: joint image-video training: the share of steps that train on short frame "
              "windows of the clips (much cheaper steps).")
@click.option("--window-frames", type=int, default=2, show_default=True, callback=positive,
              help="uvit: frames a window holds (a multiple of the tubelet length).")
@click.option("--text-init", type=click.Path(readable=False, path_type=Path),
              help="uvit: text-encoder weights from `generator pretrain-text`.")
@click.option("--freeze-text", is_flag=True, help="uvit: do not train the text encoder further.")
@click.option("--object-weight", type=click.FloatRange(1, 100), default=1.0, show_default=True,
              help="uvit: weight of saturated-colour pixels (the world's objects) in the loss; 1: plain MSE "
              "(4 measured worse: README).")
@click.option("--data-workers", type=click.IntRange(0, 64),
              help="uvit: processes that render the next steps' clips ahead (default: 0 on a CPU, "
              "enough to keep a GPU fed on CUDA); the weights do not depend on it.")
@click.option("--quality-every-minutes", type=float, callback=positive,
              help="uvit: every M training minutes (and at the end) score the EMA weights on 24 world test "
              "prompts x 2 (objects present, falls, physics, FVD) into the MLflow run: a learning curve.")
def generator_train(preset, data, out, max_minutes, max_steps, batch_size, lr, warmup_steps, min_snr_gamma,
                    snr_shift, mix_ffn, head_channels, seed, compile_, device, precision, init_from,
                    window_prob, window_frames, text_init, freeze_text, object_weight, data_workers,
                    quality_every_minutes):
    """Train the built-in generator on the world (or a folder of clips); resumes from --out."""
    require_file(init_from, "weights file", "give the .safetensors of `evalkit generator export`")
    require_file(text_init, "text-encoder file", "give the .safetensors of `evalkit generator pretrain-text`")
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
    from generators.checkpoints import weights_target

    out = check_writable(check_output_file(out or evalkit_home() / "models" / f"uvit-{preset}.pt", f"{preset}.pt"))
    weights_target(out)  # a device (/dev/null) is refused as one, not as "no such checkpoint"
    if warmup_steps < 0 or not min_snr_gamma >= 0 or math.isinf(min_snr_gamma):  # NaN trained NaN weights
        raise BadInputError("--warmup-steps and --min-snr-gamma must be finite numbers >= 0")
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
    if out.exists():
        _check_resume(out, tc)
    cfg = tc.model_config()
    if window_prob and (window_frames % cfg.temporal_patch or window_frames >= cfg.frames):
        raise BadInputError(f"--window-frames {window_frames}: must be a multiple of {cfg.temporal_patch} "
                            f"below {cfg.frames} for preset {preset}")
    hook = None
    if quality_every_minutes:
        from evalkit.metrics.generator_quality import training_quality_hook

        hook = training_quality_hook(quality_every_minutes)
    state = train(tc, out, on_checkpoint=hook)
    click.echo(f"trained uvit:{state.net.cfg.name} to step {state.step} ({state.clips_seen} clips, "
               f"{state.seconds / 60:.1f} min); checkpoint {out}")


# generator train's flags that make a run what it is (a resume keeps the checkpoint's), by the
# TrainConfig field each sets; --max-steps/--max-minutes, --device, --precision and
# --data-workers are the caller's on every resume.
_RUN_FLAGS = {"preset": "preset", "data": "data", "batch_size": "batch_size", "lr": "lr",
              "warmup_steps": "warmup_steps", "min_snr_gamma": "min_snr_gamma", "seed": "seed",
              "snr_shift": "overrides", "mix_ffn": "overrides", "head_channels": "overrides",
              "window_prob": "window_prob", "window_frames": "window_frames", "text_init": "text_init",
              "freeze_text": "freeze_text", "object_weight": "object_weight", "init_from": "init_from",
              "compile_": "compile"}


def _check_resume(out: Path, tc) -> None:
    """A resume continues the checkpoint's run: flags given on purpose that differ from it were
    dropped without a word (another --preset, --lr, --seed trained the old run on), and a
    --max-steps below its step trained nothing and reported success."""
    from click.core import ParameterSource

    from generators.uvit.train import resume_conflicts, saved_config

    saved, step = saved_config(out)
    ctx = click.get_current_context()
    given = {field for flag, field in _RUN_FLAGS.items() if ctx.get_parameter_source(flag) == ParameterSource.COMMANDLINE}
    clash = resume_conflicts(saved, tc, sorted(given))
    if clash:
        raise BadInputError(f"--out {out}: resumes a run trained with {'; '.join(clash)}; a resume keeps its "
                            "run's settings: drop those flags, or give a new --out to start another run")
    if tc.max_steps <= step:
        raise BadInputError(f"--max-steps {tc.max_steps}: {out} is at step {step} already; give a larger --max-steps "
                            "to train on")


@generator.command("recipe")
@click.argument("name", required=False)
@click.option("--out-dir", type=click.Path(readable=False, path_type=Path, file_okay=False),
              help="Where the stages' checkpoints, exports and recipe.json go (resumed if it exists).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True)
@click.option("--until", help="Stop after this stage.")
@click.option("--smoke", is_flag=True,
              help="Every stage for 2 steps only, in a folder of its own: checks the whole recipe runs here.")
def generator_recipe(name, out_dir, device, precision, until, smoke):
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
    if device is not None:
        from generators.training import pick_device

        pick_device(device)  # no CUDA here: said now, not after the text stage has trained
    record = run_recipe(name, out_dir, device=device, precision=precision, until=until, echo=click.echo, smoke=smoke)
    final = record["final"]
    kind = " (smoke run: not weights to use)" if smoke else ""
    click.echo(f"recipe {name}: {len(record['stages'])} stages done in {printable(out_dir)}{kind}; weights {printable(out_dir / final)}"
               if final else f"recipe {name}: {len(record['stages'])} stages done in {printable(out_dir)}{kind}")


@generator.command("pretrain-text")
@click.option("--preset", default="small", show_default=True, help="A U-ViT preset (its text encoder's shape).")
@click.option("--data", default="world", show_default=True, help="world, or a folder of captioned clips.")
@click.option("--steps", type=int, default=1500, show_default=True, callback=positive)
@click.option("--batch-size", type=int, default=64, show_default=True, callback=positive)
@click.option("--lr", type=float, default=1e-3, show_default=True, callback=positive)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--out", type=click.Path(readable=False, path_type=Path), required=True, help="Text-encoder weights (.safetensors).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--data-workers", type=click.IntRange(min=0), default=None,
              help="Processes rendering steps ahead (default: none on a CPU, as generator train).")
def generator_pretrain_text(preset, data, steps, batch_size, lr, seed, out, device, data_workers):
    """Pre-train the U-ViT's own text encoder contrastively against its training clips (a stage
    before `generator train --text-init OUT --freeze-text`)."""
    from generators.uvit.configs import get_config
    from generators.uvit.text_pretrain import TextPretrainConfig, pretrain_text

    if preset.startswith(("vae-", "gan-")):
        raise BadInputError(f"pretrain-text applies to the U-ViT presets only, not to {preset}")
    get_config(preset)
    check_writable(check_output_file(out, "text.safetensors"))
    _check_text_out(out)
    s = pretrain_text(TextPretrainConfig(preset=preset, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                                         data=data), out, device=device, data_workers=data_workers)
    click.echo(f"text encoder for uvit:{preset}: {printable(out)} (held-out caption retrieval top-1 "
               f"{s['held_out_retrieval_top1']:.2f} of {s['held_out_n']}, chance {s['chance']:.3f}; {s['seconds']:.0f} s)")


def _check_text_out(out: Path) -> None:
    """pretrain-text writes a .safetensors text encoder: over a training checkpoint, notes or a
    device it replaced them (a 16 MB checkpoint became a text encoder; /dev/null a file)."""
    from generators.checkpoints import weights_target

    weights_target(out)
    if out.suffix != ".safetensors":
        raise BadInputError(f"--out {out}: the text encoder is a .safetensors file; name it so")
    if out.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(out), framework="pt") as f:
                ours = (f.metadata() or {}).get("format") == "evalkit-uvit-text-v1"
        except Exception:  # noqa: BLE001  not safetensors at all
            ours = False
        if not ours:
            raise BadInputError(f"--out {out}: exists and is not a text encoder of `generator pretrain-text`; give "
                                "a new file name (it would be overwritten)")


@generator.command("export")
@click.argument("checkpoint", type=click.Path(readable=False, path_type=Path))
@click.argument("out", type=click.Path(readable=False, path_type=Path))
def generator_export(checkpoint, out):
    """Export a training checkpoint's EMA weights as fp16 safetensors (what `uvit:PATH`, `uvit:NAME`
    and --init-from load)."""
    require_file(checkpoint, "checkpoint", "give the .pt file `evalkit generator train --out` wrote")
    from evalkit.hashing import sha256_file
    from generators.uvit.generate import export_weights

    if out.suffix != ".safetensors":
        raise BadInputError(f"{out}: the export is a .safetensors file; name it so")
    check_writable(check_output_file(out, "model.safetensors"))
    path = export_weights(checkpoint, out)
    click.echo(f"exported {checkpoint} to {path} (sha256 {sha256_file(path)})")


def _clip_shape_options(model: str, frames, size, fps, device) -> dict:
    """generate's --frames/--size/--fps/--device as generator options; the models whose clip
    shape is fixed (uvit, vae, gan: their training's; folder: its files') refuse them."""
    given = {k: v for k, v in dict(frames=frames, size=size, fps=fps, device=device).items() if v is not None}
    if not given:
        return {}
    from evalkit.video import VideoLimits

    most = VideoLimits.from_env().max_frames
    if frames is not None and frames > most:  # clips no command could read back
        raise BadInputError(f"--frames {frames}: over the {most} frames evalkit reads (EVALKIT_MAX_FRAMES)")
    hw = None
    if size is not None:
        parts = str(size).lower().split("x")
        if not (1 <= len(parts) <= 2 and all(x.strip().isdigit() and int(x) > 0 for x in parts)):
            raise BadInputError(f"--size {size!r}: give S or HxW in pixels, e.g. 256 or 480x832")
        hw = (int(parts[0]), int(parts[-1]))
        limits = VideoLimits.from_env()
        if hw[0] * hw[1] > limits.max_pixels:  # clips no command could read back
            raise BadInputError(f"--size {size}: {hw[0] * hw[1]} pixels a frame is over the {limits.max_pixels} "
                                "evalkit reads (EVALKIT_MAX_PIXELS)")
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
            config = WorldConfig(frames=frames or base.frames, size=hw[0] if hw else base.size, fps=fps or base.fps)
        except ValueError as e:  # the world's own limits (size, frames)
            raise BadInputError(f"--{'/--'.join(given)}: {e}") from None
        if config.size % 2:  # found only when the first clip was written (naming a staging folder)
            raise BadInputError(f"--size {size}: H.264 (yuv420p) needs an even frame size; use {config.size + 1}")
        return {"config": config}
    raise BadInputError(f"--{'/--'.join(given)} do not apply to {model}: its clips' frames and size are "
                        "fixed (its training's, or its files')")


def _clip_hw(gen) -> tuple[int, int] | None:
    """(height, width) of the clips `gen` makes, where it says (world, controls, uvit, diffusers)."""
    if getattr(gen, "config", None) is not None and hasattr(gen.config, "size"):
        return gen.config.size, gen.config.size
    cfg = getattr(getattr(gen, "net", None), "cfg", None)
    if cfg is not None and hasattr(cfg, "image_size"):
        return cfg.image_size, cfg.image_size
    size = getattr(gen, "size", None)
    return tuple(size) if isinstance(size, (tuple, list)) and len(size) == 2 else None


@click.command()
@click.option("--model", required=True,
              help="uvit:PRESET_OR_CKPT | folder:DIR | diffusers:ID | world | control:noise|frozen|shuffled")
@click.option("--prompts", required=True, help="A text file, a .jsonl file or a literal prompt.")
@click.option("--out", required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--n-per-prompt", type=int, default=1, show_default=True, callback=positive)
@click.option("--sampler", help="uvit: ddpm | ddim | dpmpp-2m; diffusers: a scheduler name (ddim, euler, ...).")
@click.option("--steps", type=int, callback=positive, help="uvit, diffusers: sampling steps.")
@click.option("--guidance", type=float, callback=guidance_scale,
              help="uvit, diffusers: CFG scale s in uncond + s (cond - uncond); "
              "default: the model's own (uvit: its registry entry's measured best, else 3).")
@click.option("--guidance-rescale", type=click.FloatRange(0, 1),
              help="uvit: pull the guided output's spread back to the conditional one's by this share "
              "(Lin et al. 2024; 0: none; default: the model's own, else 0).")
@click.option("--guidance-interval", metavar="LO:HI",
              help="uvit: guide only where t/T is in [LO, HI] (0 clean, 1 pure noise; Kynkaanniemi et al. 2024), "
              "the conditional model elsewhere; 'none': every step (default: the model's own, else none).")
@click.option("--frames", type=int, callback=positive,
              help="diffusers, world, control: frames a clip (default: the model's own).")
@click.option("--size", help="diffusers: S or HxW; world, control: S (default: the model's own).")
@click.option("--fps", type=float, callback=frame_rate,
              help="diffusers, world, control: frame rate of the clips (default: the model's own).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="uvit, diffusers: where the model runs "
              "(default cpu).")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]),
              help="uvit: the network in fp32 or under bf16 autocast (default auto: bf16 on a GPU, fp32 on a CPU).")
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--sign", is_flag=True, help="Sign every clip with a C2PA manifest.")
@click.option("--watermark", is_flag=True, help="Embed the invisible watermark in every clip.")
@click.option("--tsa", metavar="URL", help="With --sign: an RFC 3161 time-stamp authority dates each signature.")
@click.option("--cert", type=click.Path(readable=False, path_type=Path), help="With --sign: " + CERT_HELP)
@click.option("--key", type=click.Path(readable=False, path_type=Path), help="With --sign: " + KEY_HELP)
@click.option("--watermark-key", type=click.Path(readable=False, path_type=Path), help="With --watermark: " + WATERMARK_KEY_HELP)
def generate(model, prompts, out, n_per_prompt, sampler, steps, guidance, guidance_rescale, guidance_interval,
             frames, size, fps, device, precision, seed, sign, watermark, tsa, cert, key, watermark_key):
    """Generate clips from prompts into OUT (clips/*.mp4 + index.jsonl with the full protocol)."""
    from generators.base import check_spec, generate_folder, get_generator, load_prompts

    sampling = {k: v for k, v in dict(sampler=sampler, steps=steps, guidance=guidance).items() if v is not None}
    check_spec(model)  # a mistyped spec is named as such, before its flags are judged
    if sampling and not model.startswith(("uvit:", "diffusers:")):
        raise BadInputError(f"--{'/--'.join(sampling)} only apply to uvit and diffusers models, not {model}")
    if guidance_rescale is not None:
        if not model.startswith("uvit:"):
            raise BadInputError(f"--guidance-rescale only applies to uvit models, not {model}")
        sampling["guidance_rescale"] = guidance_rescale
    if guidance_interval is not None:
        if not model.startswith("uvit:"):
            raise BadInputError(f"--guidance-interval only applies to uvit models, not {model}")
        sampling["guidance_interval"] = guidance_interval  # 'LO:HI' or 'none', parsed by the generator
    sampling.update(_clip_shape_options(model, frames, size, fps, device))
    if precision is not None:
        if not model.startswith("uvit:"):
            raise BadInputError(f"--precision only applies to uvit models, not {model}")
        sampling["precision"] = precision
    check_tsa(tsa, sign)
    for flag, value, needs, given in (("--cert", cert, "--sign", sign), ("--key", key, "--sign", sign),
                                      ("--watermark-key", watermark_key, "--watermark", watermark)):
        if value is not None and not given:
            raise BadInputError(f"{flag} {value}: it only applies with {needs}")
    prompt_list = load_prompts(prompts)
    post, pending = None, []  # soft-binding registrations, made once the folder is kept
    if sign or watermark:
        from evalkit.provenance.credentials import load_watermark_key
        from evalkit.provenance.signers import load_signer
        from evalkit.provenance.protect import protect_file

        signer = load_signer(cert, key) if sign else None  # missing credentials fail before any generation
        wm_key = load_watermark_key(watermark_key, required=True) if watermark else None

        def post(path, record):
            return protect_file(path, record, sign=sign, watermark=watermark, signer=signer, wm_key=wm_key,
                                tsa_url=tsa, pending=pending)

    gen = get_generator(model, **sampling)
    hw = _clip_hw(gen)
    if watermark and hw is not None and min(hw) < 32:  # before any clip is made, not after the first
        raise BadInputError(f"--watermark: {model} makes {hw[1]}x{hw[0]} clips; the watermark needs at least 32x32 "
                            "pixels (give a larger --size where the model takes one)")
    records = generate_folder(gen, prompt_list, out, n_per_prompt=n_per_prompt, seed=seed, postprocess=post)
    errors = [e for e in (record()[1] for record in pending) if e]
    if errors:  # the clips stand; verify cannot resolve their payloads through the registry
        click.echo(printable(f"evalkit: warning: {len(errors)} of {len(pending)} clips: {errors[0]}"), err=True)
    done = " signed" * sign + " watermarked" * watermark
    click.echo(f"wrote {len(records)}{done} clips from {model} for {len(prompt_list)} prompts to {printable(out)}")


COMMANDS = [generator, generate]  # what `evalkit.cli` adds to the `evalkit` group
