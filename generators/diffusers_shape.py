"""What clip shape a diffusers pipeline can make, and at what rate its clips play.

`check_size` and `check_frames` refuse, in one line naming the option, a size or frame count the
pipeline cannot make, before any clip: a size that is not a multiple of its VAE's spatial factor
times its transformer's patch (Wan rounds it down to another size than asked; CogVideoX, whose own
check asks for 8, failed inside its transformer at 24x24: "The size of tensor a (3) must match the
size of tensor b (2)"), one its own `check_inputs` refuses (TextToVideoSD: divisible by 8), and a
frame count its transformer's temporal embedding has no room for (Latte: 16 or 1). A pipeline
that rounds the frame count up to its VAE's temporal factor (CogVideoX asked 5 makes 8; Wan, LTX
and Mochi make 4k+1, 17 for 16) is run as asked and its first frames asked are kept
(`HFDiffusersGenerator.generate`; each record's `frames_made` says how many it made); one that
makes fewer is recorded with `frames_requested` beside its own count.

`clip_rate(pipe)` is the rate a pipeline that takes no rate argument is written at, and where that
rate comes from (`fps_from`): the model's published rate (Mochi 1: 30 fps), else diffusers' own
example's, else evalkit's 8.
"""

from __future__ import annotations

import inspect
import math
import re
import sys

from evalkit.errors import BadInputError

DEFAULT_FPS = 8.0  # evalkit's own, where neither the model nor diffusers says a rate
# Rates published for the model a pipeline class was written for, where the pipeline's own example
# writes its video without one (so at export_to_video's default, 10 in diffusers 0.42, a rate of
# no model). Each with where it is said: a checkpoint of another rate (zeroscope through
# TextToVideoSDPipeline) is given --fps.
PUBLISHED_FPS = {
    "TextToVideoSDPipeline": (8.0, "published for ModelScope text-to-video-ms-1.7b: diffusers' text_to_video.md, "
                                   "'16 frames (2s at 8 fps)'"),
    "MochiPipeline": (30.0, "published for Genmo Mochi 1: diffusers' mochi.md, export_to_video(..., fps=30)"),
}
FROM_EXAMPLE = "diffusers' example for this pipeline"
FROM_DEFAULT = "evalkit's default"
# where a pipeline keeps its VAE's spatial factor, under the names diffusers gives it
VAE_SPATIAL_ATTRS = ("vae_scale_factor_spatial", "vae_spatial_compression_ratio", "vae_spatial_scale_factor",
                     "vae_scale_factor")


def example_fps(pipe) -> float | None:
    """The frame rate diffusers' own example for this pipeline writes its video at (the
    `export_to_video(..., fps=N)` of its module's EXAMPLE_DOC_STRING: Wan 16, HunyuanVideo 15,
    Allegro 15, CogVideoX 8), for a pipeline that takes no rate: its clips were written at 8
    (session 34's red team), though the model was trained for another rate. None where the
    example gives none."""
    for cls in type(pipe).__mro__:
        doc = getattr(sys.modules.get(cls.__module__), "EXAMPLE_DOC_STRING", None)
        if isinstance(doc, str) and "export_to_video" in doc:
            rates = {float(m) for m in re.findall(r"export_to_video\([^)]*?fps\s*=\s*([0-9]+(?:\.[0-9]+)?)", doc)}
            return rates.pop() if len(rates) == 1 and 0 < next(iter(rates)) <= 240 else None
    return None


def published_fps(pipe) -> tuple[float, str] | None:
    """(rate, where it is published) for the model this pipeline class was written for."""
    return next((PUBLISHED_FPS[c.__name__] for c in type(pipe).__mro__ if c.__name__ in PUBLISHED_FPS), None)


def clip_rate(pipe) -> tuple[float, str]:
    """(fps, fps_from) of a pipeline that takes no rate argument: the model's published rate, else
    that of diffusers' example for the pipeline, else evalkit's default."""
    published = published_fps(pipe)
    if published is not None:
        return published
    example = example_fps(pipe)
    return (example, FROM_EXAMPLE) if example is not None else (DEFAULT_FPS, FROM_DEFAULT)


def _int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def spatial_factors(pipe) -> tuple[int, int] | None:
    """(the VAE's spatial factor, the transformer's spatial patch: 1 for a UNet): height and width
    must be multiples of their product; None where the pipeline says no factor."""
    factor = next((_int(getattr(pipe, a, None)) for a in VAE_SPATIAL_ATTRS if _int(getattr(pipe, a, None))), None)
    if factor is None:
        return None
    patch = _int(getattr(pipe, "transformer_spatial_patch_size", None))
    if patch is None:
        config_patch = getattr(getattr(getattr(pipe, "transformer", None), "config", None), "patch_size", None)
        if isinstance(config_patch, (list, tuple)) and config_patch:  # (t, h, w): Wan, Cosmos, SkyReels-V2
            config_patch = config_patch[-1]
        patch = _int(config_patch) or _int(getattr(pipe, "patch_size", None)) or 1
    return factor, patch


def _own_size_rule(pipe, params, size) -> str | None:
    """The pipeline's own `check_inputs` refusal of this size (its hard-coded 8, 16 or 32), or
    None. Called with the call's defaults for what it needs besides; a check it cannot be called
    for, or a refusal that is not about the size, is left to the call itself."""
    check = getattr(pipe, "check_inputs", None)
    if not callable(check):
        return None
    given = {"prompt": "a", "height": size[0], "width": size[1], "callback_steps": 1}
    kwargs = {}
    for name, p in inspect.signature(check).parameters.items():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name in given:
            kwargs[name] = given[name]
        elif name in params and params[name].default is not inspect.Parameter.empty:
            kwargs[name] = params[name].default
        elif p.default is inspect.Parameter.empty:
            return None  # something only a real call has (an image): not judged here
    try:
        check(**kwargs)
    except (ValueError, TypeError) as e:
        msg = " ".join(str(e).split())
        if re.search(r"height|width", msg) and re.search(r"divisible|multiple", msg):
            return msg
    except Exception:  # noqa: BLE001 (a check of another shape: the call says what is wrong)
        return None
    return None


def _suggest(size: tuple[int, int], step: int) -> str:
    """The sizes of multiples of `step` nearest `size`, below and above: '32x32 or 48x48'."""
    below = tuple(v // step * step for v in size)
    above = tuple(-(-v // step) * step for v in size)
    return " or ".join(dict.fromkeys(f"{h}x{w}" for h, w in (below, above) if h > 0 and w > 0))


def check_size(pipe, params, size: tuple[int, int], label: str) -> None:
    """A one-line error starting with `label` (the option and the size asked) where the pipeline
    cannot make frames of `size` (H, W)."""
    name = type(pipe).__name__
    rules, why = [], []
    factors = spatial_factors(pipe)
    if factors is not None:
        rules.append(factors[0] * factors[1])
        patch = f" times its patch {factors[1]}" if factors[1] > 1 else ""
        why.append(f"its VAE's spatial factor {factors[0]}{patch}")
    own = _own_size_rule(pipe, params, size)
    said = re.search(r"divisible by (\d+)", own or "")
    if said:
        rules.append(int(said.group(1)))
        why.append(f"its own input check: {said.group(1)}")
    if rules:
        step = math.lcm(*rules)
        if size[0] % step or size[1] % step:
            raise BadInputError(f"{label}: {name} makes frames whose height and width are multiples of {step} "
                                f"({'; '.join(why)}); give {_suggest(size, step)}")
    if own and not said:  # refused for a reason of its own wording: said as it says it
        raise BadInputError(f"{label}: {name} refuses it ({own[:160]})")


def check_frames(pipe, frames: int, label: str) -> None:
    """A one-line error starting with `label` where the transformer's temporal position embedding is
    for a fixed count (Latte: its video_length, or 1 for an image)."""
    transformer = getattr(pipe, "transformer", None)
    fixed = _int(getattr(getattr(transformer, "config", None), "video_length", None))
    if fixed is not None and hasattr(transformer, "temp_pos_embed") and frames not in (1, fixed):
        raise BadInputError(f"{label}: {type(pipe).__name__}'s transformer is built for {fixed} frames (its "
                            f"temporal embedding's length); give {fixed}")
