"""`diffusers:ID_OR_PATH` as a `Generator`: an installed diffusers text-to-video pipeline.

`diffusers:PATH` loads a pipeline folder (one that `save_pretrained` wrote: `model_index.json` and
a folder per component); `diffusers:ORG/NAME` loads that model from the user's Hugging Face cache.
Nothing is ever downloaded: a model not in the cache is a one-line error saying how to get it.

Each (prompt, seed) pair is one pipeline call with a CPU `torch.Generator` seeded with the seed, so
a clip does not depend on how prompts are batched nor on the device. The protocol records the
pipeline, a SHA-256 over its weight files, the scheduler (sampler), steps, guidance (diffusers
uses the standard convention, `uncond + s * (cond - uncond)`), frames, size and fps.

Needs the optional packages: `pip install 'evalkit[diffusers]'` (diffusers, transformers and
accelerate, without which diffusers cannot load Wan, SkyReels-V2, Kandinsky 5 or Cosmos).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from evalkit.clip import Clip
from evalkit.errors import BadInputError, MissingResourceError, UnavailableError, out_of_memory_message

from .diffusers_shape import DEFAULT_FPS, check_frames, check_size, clip_rate, example_fps  # noqa: F401 (re-exported)
from .uvit.layers import flush_denormal

GUIDANCE_CONVENTION = ("standard: eps = uncond + s * (cond - uncond); diffusers skips the unconditional pass "
                       "for s <= 1 (so s < 1 gives the conditional model)")
# Distilled models (HunyuanVideo) take guidance_scale as an input embedding, and real CFG as
# true_cfg_scale (unused here: default off): guidance_scale is then not the CFG scale.
DISTILLED_GUIDANCE = ("distilled: guidance_scale is an input of the network (guidance embedding), not classifier-"
                      "free guidance; true CFG (true_cfg_scale) left at the pipeline's default")
FRAME_ARGS = ("num_frames", "video_length")
# the frame rate a pipeline is conditioned on: LTX-Video's frame_rate; SkyReels-V2 and Cosmos's fps;
# I2VGen-XL's target_fps. The model makes motion for that rate: its clips are written at it.
RATE_ARGS = ("frame_rate", "fps", "target_fps")
# inputs that make a pipeline image- or video-to-video: refused when its call requires one (no
# default), or when its class name says it is conditioned on one although the argument defaults to
# None (LTXImageToVideoPipeline, CosmosVideoToWorldPipeline). Not "whatever takes an image first":
# Cosmos2_5_PredictBasePipeline does, and makes video from text alone when image and video are None.
MEDIA_ARGS = ("image", "images", "video", "videos")
MEDIA_CLASS_NAME = re.compile(r"ImageTo|VideoTo|Image2|Video2|^I2V")
# VAEs whose decode raises NotImplementedError unless tiling is on (diffusers' own examples enable it)
TILED_ONLY_VAES = ("AutoencoderKLAllegro",)
# the pipelines' own per-call line for a prompt over the text encoder's length (said once per run)
TRUNCATED_LINE = "The following part of your input was truncated"
# transformers' warning when a pipeline tokenizes a prompt whole (textual inversion's check) before
# cutting it: "will result in indexing errors" does not hold, the pipeline cuts it (dropped)
TOKENIZER_LOGGER = "transformers.tokenization_utils_base"
TOO_LONG_LINE = "Token indices sequence length is longer"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".msgpack", ".onnx", ".gguf")
# what else decides the clips: component configs (a scheduler's prediction type), tokenizers
CONFIG_SUFFIXES = (".json", ".txt", ".model", ".tiktoken")
# `--sampler` shorthands shared with uvit; any diffusers scheduler class name works too.
SAMPLER_ALIASES = {"ddim": "DDIMScheduler", "ddpm": "DDPMScheduler",
                   "dpmpp-2m": "DPMSolverMultistepScheduler", "euler": "EulerDiscreteScheduler",
                   "euler-a": "EulerAncestralDiscreteScheduler",
                   "unipc": "UniPCMultistepScheduler", "pndm": "PNDMScheduler"}
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _import_diffusers(spec: str):
    try:
        import diffusers
        import transformers  # noqa: F401  (text encoders and tokenizers of every t2v pipeline)
    except ImportError as e:
        raise UnavailableError(f"{spec}: the diffusers adapter needs the optional packages diffusers and "
                               f"transformers ({e.name or 'import'} is not installed); "
                               "pip install 'evalkit[diffusers]'") from None
    return diffusers


@contextmanager
def _quiet_loading():
    """Loading a pipeline: no per-component progress bars, no advice to install accelerate, no
    deprecation notices; diffusers' and transformers' logging settings are restored afterwards."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    saved = [(m, m.get_verbosity(), m.is_progress_bar_enabled()) for m in (dlog, tlog)]
    for m, _, _ in saved:
        # critical, not error: a missing weights file is logged as an error before the exception
        # that evalkit turns into its own one line (two lines on stderr, session 32)
        m.set_verbosity(50)
        m.disable_progress_bar()
    try:
        yield
    finally:
        for m, verbosity, bar in saved:
            m.set_verbosity(verbosity)
            if bar:
                m.enable_progress_bar()


def resolve_pipeline_dir(arg: str) -> Path:
    """A local pipeline folder: the path itself, or the snapshot of ORG/NAME in the Hugging Face
    cache (never downloaded)."""
    spec = f"diffusers:{arg}"
    path = Path(arg).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "model_index.json").is_file():
            raise BadInputError(f"{spec}: not a diffusers pipeline folder (no model_index.json); give a "
                                "folder written by save_pretrained or a cached ORG/NAME")
        return path
    if not _REPO_ID.match(arg) or arg.startswith((".", "~")):
        raise MissingResourceError(f"{spec}: no such pipeline folder; check the path")
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(arg, local_files_only=True))
    except Exception:
        snap = None
    if snap is None or not (snap / "model_index.json").is_file():
        raise MissingResourceError(f"{spec}: neither a folder nor in the local Hugging Face cache; download "
                                   f"it first (huggingface-cli download {arg}) or pass a path to a pipeline "
                                   "folder")
    return snap


def sha256_weights(folder: Path) -> str:
    """One SHA-256 over the pipeline's weight and config files: each file's relative path and
    content hash, in sorted order (so renaming, adding or changing one changes it). Configs count
    since session 30: a scheduler config edited in place (its prediction type) made other clips
    under the same recorded protocol."""
    h = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES + CONFIG_SUFFIXES)
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    for p in files:
        fh = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                fh.update(chunk)
        h.update(f"{p.relative_to(folder).as_posix()}\0{fh.hexdigest()}\n".encode())
    return h.hexdigest()


def _parse_size(size) -> tuple[int, int] | None:
    if size is None:
        return None
    hw = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise BadInputError(f"size {size!r}: give a positive int or [height, width]")
    return int(hw[0]), int(hw[1])


def _to_uint8_frames(video) -> np.ndarray:
    """One video of a pipeline's `.frames` (numpy [T, H, W, C] in [0, 1], a tensor, or a list of
    PIL images) as uint8 [T, H, W, 3]."""
    if isinstance(video, (list, tuple)):
        video = np.stack([np.asarray(im.convert("RGB")) if hasattr(im, "convert") else np.asarray(im)
                          for im in video])
    if isinstance(video, torch.Tensor):
        video = video.detach().float().cpu().numpy()
        if video.ndim == 4 and video.shape[1] in (1, 3) and video.shape[-1] not in (1, 3):
            video = video.transpose(0, 2, 3, 1)  # [T, C, H, W] -> [T, H, W, C]
    video = np.asarray(video)
    if video.ndim != 4:
        raise BadInputError(f"the pipeline returned frames of shape {video.shape}, not [T, H, W, C]; "
                            "is it a text-to-video pipeline?")
    if video.dtype != np.uint8:
        video = (np.clip(video.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    return np.ascontiguousarray(video[..., :3])


def _declared_class(diffusers, folder: Path):
    """The pipeline class model_index.json names, where diffusers has it (None otherwise): its call
    is judged before minutes of loading weights."""
    try:
        name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
        cls = getattr(diffusers, name, None) if isinstance(name, str) and name.isidentifier() else None
    except Exception:  # noqa: BLE001 (an unreadable index: from_pretrained says what is wrong)
        return None
    # not diffusers' stand-ins for pipelines whose optional packages are missing (no real call)
    return cls if isinstance(cls, type) and issubclass(cls, diffusers.DiffusionPipeline) else None


def _call_params(spec: str, cls: type):
    """(call parameters, frame-count argument, frame-rate argument or None) of a text-to-video
    pipeline class; a one-line error for any other pipeline."""
    params = inspect.signature(cls.__call__).parameters
    name = cls.__name__
    if "prompt" not in params:  # Stable Video Diffusion and other image-to-video pipelines
        takes = "an image" if "image" in params else "no prompt"
        raise BadInputError(f"{spec}: {name} is not a text-to-video pipeline (its call takes {takes}, not a prompt)")
    required = [n for n, p in params.items() if n != "self" and p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and (n in MEDIA_ARGS or n.startswith("control"))]
    named = [n for n in params if n in MEDIA_ARGS] if MEDIA_CLASS_NAME.search(name) else []
    if required or named:
        words = {"image": "an image", "images": "images", "video": "a video", "videos": "videos"}
        needs = (" and " if required else " or ").join(words.get(n, f"a {n} input") for n in required or named)
        raise BadInputError(f"{spec}: {name} is not a text-to-video pipeline (its call needs {needs}); "
                            "give a text-to-video pipeline")
    # the frame count's name: num_frames in most, video_length in Latte and Text2Video-Zero
    frames_arg = next((n for n in FRAME_ARGS if n in params), None)
    if frames_arg is None:
        raise BadInputError(f"{spec}: {name} is not a text-to-video pipeline "
                            f"(its call takes no {' or '.join(FRAME_ARGS)})")
    return params, frames_arg, next((n for n in RATE_ARGS if n in params), None)


def _label(option: str, value, how: str | None) -> str:
    return f"{option} {value}" + (f" ({how})" if how else "")


class _SaidOnce(logging.Filter):
    """Passes the pipeline's truncation line the first time in `said` (one per generator: one per
    run) and drops it after (each clip's index record says prompt_truncated); drops TOO_LONG_LINE.
    Set on the pipeline's own module loggers and the tokenizers' for the length of one call and
    judging only the calling thread's records, so a host program's logging, and its other threads,
    are as they were."""

    def __init__(self, said: dict):
        super().__init__()
        self.thread, self.said = threading.get_ident(), said

    def filter(self, record: logging.LogRecord) -> bool:
        if record.thread != self.thread:
            return True
        if TOO_LONG_LINE in str(record.msg):
            return False
        if TRUNCATED_LINE not in str(record.msg):
            return True
        if self.said.get("truncation"):
            return False
        self.said["truncation"] = True
        record.msg = f"{record.msg} (said once a run; the index records prompt_truncated for each clip)"
        return True


@contextmanager
def _truncation_said_once(pipe, said: dict):
    names = dict.fromkeys([*(c.__module__ for c in type(pipe).__mro__), TOKENIZER_LOGGER])
    loggers = [logging.getLogger(m) for m in names if m != "builtins"]
    once = _SaidOnce(said)
    for lg in loggers:
        lg.addFilter(once)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(once)


class DiffusersGenerator:
    def __init__(self, arg: str, sampler: str | None = None, steps: int | None = None,
                 guidance: float | None = None, frames: int | None = None, size=None,
                 fps: float | None = None, device: str = "cpu", batch_size: int | None = None,
                 asked_as: dict | None = None):
        """`asked_as`: how the caller's user asked for `size`/`frames`, said after the value in an
        error ({"size": "--size suite: the suite's video.size"}); they are `--size`/`--frames`."""
        self.spec = f"diffusers:{arg}"
        diffusers = _import_diffusers(self.spec)
        for name, value in (("steps", steps), ("frames", frames)):  # bad options fail before a long load
            if value is not None and not (isinstance(value, (int, np.integer)) and value >= 1):
                raise BadInputError(f"{name} {value!r}: must be a positive integer")
        if fps is not None and not fps > 0:
            raise BadInputError(f"fps {fps!r}: must be positive")
        size = _parse_size(size)
        scheduler_cls = self._scheduler_class(diffusers, sampler) if sampler is not None else None
        self.path = resolve_pipeline_dir(arg)
        declared = _declared_class(diffusers, self.path)
        if declared is not None:  # an image-to-video pipeline is refused before its weights load
            _call_params(self.spec, declared)
        try:
            with _quiet_loading():
                pipe = diffusers.DiffusionPipeline.from_pretrained(str(self.path), local_files_only=True)
        except Exception as e:
            msg = " ".join(str(e).split())
            missing = re.search(r"no file named \S+ found in directory (\S+?)\.?$", msg)
            if isinstance(e, OSError) and missing:  # a component folder without its weights: exit 3
                raise MissingResourceError(f"{self.spec}: the component {Path(missing.group(1)).name}/ has no "
                                           "weights file (diffusion_pytorch_model.safetensors or .bin, or "
                                           "model.safetensors); copy the complete pipeline folder") from None
            if "keep_in_fp32_modules" in msg and not diffusers.utils.is_accelerate_available():
                # Wan, SkyReels-V2, Kandinsky 5, Cosmos: a model that keeps layers in float32 loads
                # only through accelerate (diffusers' own ValueError says nothing of it)
                raise UnavailableError(f"{self.spec}: this pipeline needs the accelerate package: pip install "
                                       "accelerate (or pip install 'evalkit[diffusers]')") from None
            raise BadInputError(f"{self.spec}: cannot load this pipeline ({type(e).__name__}: {msg[:200]}); "
                                "check that the folder is complete and diffusers supports it") from None
        params, self.frames_arg, self.rate_arg = _call_params(self.spec, type(pipe))
        if scheduler_cls is not None:
            try:
                pipe.scheduler = scheduler_cls.from_config(pipe.scheduler.config)
            except Exception as e:
                raise BadInputError(f"--sampler {sampler}: cannot build it from this pipeline's scheduler "
                                    f"config ({' '.join(str(e).split())[:120]})") from None
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            self.pipe = pipe.to(device)
        except Exception as e:
            raise BadInputError(f"--device {device}: cannot move the pipeline there "
                                f"({' '.join(str(e).split())[:120]})") from None
        self.pipe.set_progress_bar_config(disable=True)
        self.params = params

        def default(name, fallback=None):
            # newer pipelines (CogVideoX) default some arguments to None and decide in the call
            p = params.get(name)
            return fallback if p is None or p.default in (inspect.Parameter.empty, None) else p.default

        self.steps = int(steps if steps is not None else default("num_inference_steps", 50))
        self.guidance = float(guidance if guidance is not None else default("guidance_scale", 7.5))
        # None: the pipeline's own count (from its model config); the clips say what it was
        made = frames if frames is not None else default(self.frames_arg)
        self.frames = int(made) if made is not None else None
        # a pipeline conditioned on the frame rate (RATE_ARGS) makes motion for that rate: the clips
        # are written at it, and an asked-for rate is passed to it
        native = default(self.rate_arg) if self.rate_arg is not None else None
        if fps is not None:
            self.fps, self.fps_from = float(fps), "asked"
        elif isinstance(native, (int, float)) and not isinstance(native, bool):
            self.fps, self.fps_from = float(native), "the pipeline's own rate"
        else:  # the model's published rate, diffusers' example's, or evalkit's 8
            self.fps, self.fps_from = clip_rate(self.pipe)
        # a shape asked that the pipeline cannot make: said now, naming the option, not after the
        # model has run (or never: Wan makes a smaller size than asked)
        said = asked_as or {}
        if size is not None:
            check_size(self.pipe, params, size, _label("--size", f"{size[0]}x{size[1]}", said.get("size")))
        if frames is not None:
            check_frames(self.pipe, int(frames), _label("--frames", frames, said.get("frames")))
        self.size = size or self._default_size()
        self.vae_tiling = False
        if type(getattr(self.pipe, "vae", None)).__name__ in TILED_ONLY_VAES:
            self._enable_vae_tiling()
        self._said = {}  # what was said once this run (the truncation line)
        self.sha256 = sha256_weights(self.path)
        self.batch_size = batch_size  # unused: one call per (prompt, seed), kept for option symmetry

    @staticmethod
    def _scheduler_class(diffusers, sampler: str):
        name = SAMPLER_ALIASES.get(str(sampler).lower(), sampler)
        if isinstance(name, str) and name.isidentifier() and getattr(diffusers, name, None) is None:
            # any case, as uvit's samplers ("DDIM", "ddimscheduler")
            name = next((n for n in dir(diffusers) if n.lower() in (name.lower(), name.lower() + "scheduler")), name)
        cls = getattr(diffusers, name, None) if isinstance(name, str) and name.isidentifier() else None
        if not (isinstance(cls, type) and issubclass(cls, diffusers.SchedulerMixin)):
            examples = ["DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler",
                        "EulerDiscreteScheduler",
                        "PNDMScheduler", "UniPCMultistepScheduler"]
            raise BadInputError(f"--sampler {sampler}: not a diffusers scheduler; use a scheduler class "
                                f"name, e.g. {', '.join(examples)}, or one of {sorted(SAMPLER_ALIASES)}")
        return cls

    def _default_size(self) -> tuple[int, int] | None:
        """The pipeline's own default resolution, where it says (a UNet's sample size times the VAE
        factor); None leaves it to the pipeline."""
        unet = getattr(self.pipe, "unet", None)
        factor = getattr(self.pipe, "vae_scale_factor", None)
        sample = getattr(getattr(unet, "config", None), "sample_size", None)
        if isinstance(sample, int) and isinstance(factor, int):
            return sample * factor, sample * factor
        return None

    def _guidance_convention(self) -> str:
        return DISTILLED_GUIDANCE if "true_cfg_scale" in self.params else GUIDANCE_CONVENTION

    def protocol(self) -> dict:
        proto = {"model": self.spec, "weights_sha256": self.sha256, "pipeline": type(self.pipe).__name__,
                 "sampler": type(self.pipe.scheduler).__name__, "steps": self.steps,
                 "guidance": self.guidance, "guidance_convention": self._guidance_convention(), "fps": self.fps,
                 "fps_from": self.fps_from}
        if self.frames is not None:
            proto["frames"] = self.frames
        if self.size is not None:
            proto["size"] = list(self.size)
        if self.vae_tiling:  # decoded in tiles (the VAE has no other way): said, as it shapes the pixels
            proto["vae_tiling"] = True
        return proto

    def _enable_vae_tiling(self) -> bool:
        vae = getattr(self.pipe, "vae", None)
        if self.vae_tiling or not callable(getattr(vae, "enable_tiling", None)):
            return False
        vae.enable_tiling()
        self.vae_tiling = True
        return True

    def _call(self, prompt: str, seed: int):
        kwargs = {"num_inference_steps": self.steps, "guidance_scale": self.guidance,
                  self.frames_arg: self.frames, "output_type": "np"}
        if self.rate_arg is not None:  # an int where the pipeline's own default is one (SkyReels-V2's 24)
            native = self.params[self.rate_arg].default
            whole = isinstance(native, int) and not isinstance(native, bool) and self.fps.is_integer()
            kwargs[self.rate_arg] = int(self.fps) if whole else self.fps
        if self.size is not None:
            kwargs["height"], kwargs["width"] = self.size
        kwargs = {k: v for k, v in kwargs.items() if k in self.params and v is not None}
        for attempt in range(2):
            try:
                return self._run(prompt, seed, kwargs)
            except (ValueError, TypeError, RuntimeError, AttributeError) as e:  # (a scheduler that does not fit)
                # running out of memory goes on to the CLI's own message and exit code (5)
                if out_of_memory_message(e) is not None:
                    raise
                # a VAE that decodes only in tiles, not in TILED_ONLY_VAES: tiles from now on
                if (attempt == 0 and isinstance(e, NotImplementedError) and "tiling" in str(e).lower()
                        and self._enable_vae_tiling()):
                    continue
                # the pipeline's own input checks (sizes, frame counts, ...), or its model failing on a
                # shape it was not built for (Latte's temporal embedding is for a fixed frame count)
                msg = " ".join(str(e).split())[:200]
                raise BadInputError(f"{self.spec}: the pipeline refused the request ({type(e).__name__}: {msg}); "
                                    "check size, frames and steps against what the model supports") from None

    def _run(self, prompt: str, seed: int, kwargs: dict):
        generator = torch.Generator("cpu").manual_seed(int(seed))
        # subnormals are ~100x slower on x86 CPUs; prompt by name: LTXConditionPipeline's first
        # parameter is its conditions
        with torch.inference_mode(), flush_denormal(), _truncation_said_once(self.pipe, self._said):
            return self.pipe(prompt=prompt, generator=generator, **kwargs).frames

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        if len(prompts) != len(seeds):
            raise BadInputError(f"{len(prompts)} prompts but {len(seeds)} seeds; give one seed a prompt")
        clips = []
        for prompt, seed in zip(prompts, seeds):
            frames = self._call(prompt, seed)
            video = frames[0] if (isinstance(frames, (list, tuple)) or np.ndim(frames) == 5) else frames
            meta = {"seed": int(seed), "model": self.spec}
            cut = self._truncation(prompt)
            if cut is not None:  # the model saw less than the prompt the index records: say how much
                meta["prompt_truncated"] = cut
            pixels = _to_uint8_frames(video)
            if self.frames is not None and pixels.shape[0] > self.frames:
                # Wan, LTX and CogVideoX make 4k+1 (or 8k) frames: asked 16, Wan makes 17. The first
                # frames asked are kept, so the clip has the suite's shape (FVD's backbone reads 16,
                # flicker averages over pairs) and the record says what the pipeline made.
                meta["frames_made"] = int(pixels.shape[0])
                pixels = pixels[:self.frames]
            clips.append(Clip(pixels, fps=self.fps, prompt=prompt, meta=meta))
        return clips

    def _truncation(self, prompt: str) -> dict | None:
        """{"tokens", "kept"} where the pipeline's tokenizer cuts `prompt` (CLIP's 77 tokens), else None."""
        tok = getattr(self.pipe, "tokenizer", None)
        most = getattr(tok, "model_max_length", None)
        if tok is None or not isinstance(most, int) or most > 100_000:
            return None
        try:
            # verbose=False: no "Token indices sequence length is longer" warning of its own (the
            # clip's record says it, and the pipeline's line once a run)
            n = len(tok(prompt, truncation=False, verbose=False)["input_ids"])
        except Exception:  # noqa: BLE001 (a tokenizer of another shape: nothing to say)
            return None
        return {"tokens": n, "kept": most} if n > most else None
