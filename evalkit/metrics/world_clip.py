"""`world-clip`: the tiny open_clip CLIP of the offline protocol (see `encoders`): its config,
training on (frame, caption) pairs of world clips with hard negatives, evaluation, and the
counterfactual captions that the alignment metric and the evaluation share."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from evalkit.world import BACKGROUNDS, KINDS, SHAPES, WorldConfig
from evalkit.world.clips import make_clip, make_clip_for_prompt


from evalkit.metrics.encoder_base import (
    COLOR_NAMES, OPEN_CLIP_CONFIG_DIR, SIZE_NAMES, WORLD_CLIP_MODEL, _check_recipe, _lr_at,
    _progress, load_checkpoint, render_batch, resolve_output, save_checkpoint, single_thread,
    _world_config_dict, file_sha256, FORMAT_VERSION,
)


# --------------------------------------------------------------------------------------------
# world-clip (open_clip)

WORLD_CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 32, "layers": 3, "width": 96, "head_width": 32, "mlp_ratio": 4.0,
                   "patch_size": 4},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 96, "heads": 3, "layers": 3},
}
# OpenAI CLIP's normalisation (open_clip's default preprocess_cfg for this config).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

_registered = False
# open_clip's model registry is a module global: two threads registering at once raced on it
_register_lock = threading.Lock()


def register_world_clip_config() -> str:
    """Register the shipped `evalkit-world-clip` config with open_clip (once) and return its name."""
    global _registered
    import open_clip

    with _register_lock:
        if not _registered or WORLD_CLIP_MODEL not in open_clip.list_models():
            open_clip.add_model_config(OPEN_CLIP_CONFIG_DIR / f"{WORLD_CLIP_MODEL}.json")
            _registered = True
    return WORLD_CLIP_MODEL


class _OpenClipNoise(logging.Filter):
    """Drops open_clip's info and warning records ("No pretrained weights loaded ... initialized
    randomly": expected here) logged by a thread inside `_quiet_open_clip`, and nothing else.

    open_clip logs through the root logger (`logging.warning(...)`), so this filter sits on it; it
    never changes the root logger's level. Saving, raising and restoring that level (before session
    34) left a host program's logging at ERROR for good when two threads loaded a model at once, and
    hid every other thread's warnings meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: dict[int, int] = {}  # thread id -> nesting depth inside `_quiet_open_clip`
        self.lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno < logging.ERROR and record.thread in self.threads
                    and _OPEN_CLIP_DIR in record.pathname)


_OPEN_CLIP_DIR = f"{os.sep}open_clip{os.sep}"  # the package's own modules
_noise = _OpenClipNoise()


@contextlib.contextmanager
def _quiet_open_clip():
    """Hide open_clip's info and warnings of this thread for the body (`_OpenClipNoise`)."""
    me = threading.get_ident()
    with _noise.lock:
        root = logging.getLogger()
        if _noise not in root.filters:  # installed once, kept: a filter removed while another thread
            root.addFilter(_noise)      # logs can be skipped, and this one passes all but our records
        _noise.threads[me] = _noise.threads.get(me, 0) + 1
    try:
        yield
    finally:
        with _noise.lock:
            _noise.threads[me] -= 1
            if not _noise.threads[me]:
                del _noise.threads[me]


def create_world_clip():
    """A randomly initialised `evalkit-world-clip` open_clip model (no weights are fetched)."""
    import open_clip

    name = register_world_clip_config()
    with _quiet_open_clip():
        return open_clip.create_model(name, pretrained=None)


def clip_pixels(frames: torch.Tensor, size: int, mean=CLIP_MEAN, std=CLIP_STD) -> torch.Tensor:
    """float [N, 3, H, W] in [0, 1] -> normalised [N, 3, size, size]: shorter side to `size` (bicubic,
    antialiased, as open_clip's Resize), centre crop, (x - mean) / std. Identity resize when
    H = W = size (world frames for world-clip)."""
    x = frames.float()
    h, w = x.shape[-2:]
    if (h, w) != (size, size):
        # the long side as torchvision's Resize sizes it (truncated, int(size * long / short)) and
        # the crop as its CenterCrop places it (rounded): 320x240 became 299 wide here, 298 in
        # open_clip's own transform, and the pixels differed by 2.7 levels on average (session 32)
        if h <= w:
            nh, nw = size, max(size, int(size * w / h))
        else:
            nh, nw = max(size, int(size * h / w)), size
        x = F.interpolate(x, size=(nh, nw), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
        top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
        x = x[..., top:top + size, left:left + size]
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


class _TokenCache:
    """open_clip's default BPE tokenizer with a per-caption cache (world captions repeat)."""

    def __init__(self, context_length: int):
        import open_clip

        self.tok = open_clip.get_tokenizer(register_world_clip_config(), context_length=context_length)
        self.cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: list[str]) -> torch.Tensor:
        miss = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if miss:
            for t, row in zip(miss, self.tok(miss)):
                self.cache[t] = row
        return torch.stack([self.cache[t] for t in texts])


def _clip_param_groups(model, weight_decay: float):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        # open_clip's own exclusion (gains, biases, logit scale) plus embeddings
        if p.ndim < 2 or "ln" in n or "bias" in n or "logit_scale" in n or "embedding" in n or n.endswith(
                "class_embedding"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batch_split(batch_size: int, hard_negatives: float) -> tuple[int, int]:
    """(base clips, twin clips) of a world-clip batch."""
    n_twins = int(round(batch_size * hard_negatives / (1 + hard_negatives)))
    return batch_size - n_twins, n_twins


def world_clip_metadata(seed: int, steps: int, batch_size: int, lr: float, weight_decay: float,
                        hard_negatives: float) -> dict:
    """The JSON metadata `train_world_clip` writes into its checkpoint (part of the file's hash: a
    pure function of the recipe)."""
    n_base, n_twins = _batch_split(batch_size, hard_negatives)
    recipe = {"optimizer": "AdamW", "betas": [0.9, 0.98], "eps": 1e-6, "lr": lr, "weight_decay": weight_decay,
              "schedule": "warmup 10% + cosine", "batch_size": batch_size, "steps": steps,
              "loss": "open_clip.loss.ClipLoss", "pairs": "one uniformly random frame per clip + its caption",
              "hard_negatives": f"{hard_negatives} twin clips per base clip (one attribute changed)",
              "augment": "horizontal flip p=0.5", "logit_scale": "learned, clamped to ln(100)",
              "threads": 1, "device": "cpu"}
    return {"format": FORMAT_VERSION, "kind": "clip", "architecture": "open_clip CLIP",
            "open_clip_model": WORLD_CLIP_MODEL, "config": WORLD_CLIP_CONFIG,
            "tokenizer": "open_clip default (SimpleTokenizer, bpe_simple_vocab_16e6)",
            "preprocess": {"size": WORLD_CLIP_CONFIG["vision_cfg"]["image_size"], "mean": list(CLIP_MEAN),
                           "std": list(CLIP_STD), "resize": "shorter side, bicubic antialias, centre crop"},
            "token_embedding": "rows of token ids seen in training only; all other rows zero",
            "recipe": recipe, "seed": seed, "steps": steps,
            "data": {"dataset": "evalkit.world WorldDataset", "split": "train", "seed": seed,
                     "clips": steps * n_base, "twin_clips": steps * n_twins,
                     "world_config": _world_config_dict(WorldConfig())},
            "trainer": "evalkit.metrics.encoders.train_world_clip"}


def train_world_clip(out: str | os.PathLike | None = None, *, seed: int = 0, steps: int = 500,
                     batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 0.1,
                     hard_negatives: float = 1.0, progress: bool | None = None, validate: int = 1024) -> dict:
    """Train `world-clip` (open_clip `evalkit-world-clip`) with open_clip's `ClipLoss` on
    (one random frame, caption) pairs of world train clips, and save it (safetensors).

    Deterministic for (seed, steps, batch_size, lr, weight_decay, hard_negatives) on CPU with one
    thread. Step s uses M = B / (1 + hard_negatives) clips s*M .. s*M+M-1 of
    `WorldDataset("train", seed=seed)` plus, for the first B - M of them, a hard-negative twin: the
    world's rendering (`make_clip_for_prompt`) of the caption with one attribute changed (colour,
    shape, size, count or motion; `twin_captions`), so that the contrastive loss must tell those
    apart. One frame per clip drawn from a generator seeded with `seed`, flipped horizontally with
    p=0.5 (captions say nothing of left and right). `out` as in `train_world_video_encoder`
    (default name `world-clip-seed{seed}`).
    Returns {"path", "sha256", "steps", "seconds", "params", "bytes", "validation":
    evaluate_world_clip(...)}.
    """
    from open_clip.loss import ClipLoss

    _check_recipe(steps, batch_size, hard_negatives)
    path = resolve_output(out, f"world-clip-seed{seed}")
    t0 = time.time()
    with single_thread():
        torch.manual_seed(seed)
        model = create_world_clip()
        ctx = model.context_length
        size = WORLD_CLIP_CONFIG["vision_cfg"]["image_size"]
        tokens = _TokenCache(ctx)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.AdamW(_clip_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98), eps=1e-6)
        loss_fn = ClipLoss()
        used = torch.zeros(model.token_embedding.weight.shape[0], dtype=torch.bool)
        warmup = max(1, steps // 10)
        model.train()
        bar = _progress(steps, "world-clip", progress)
        n_base, n_twins = _batch_split(batch_size, hard_negatives)
        for step in range(steps):
            clips = [make_clip("train", i, seed) for i in range(step * n_base, (step + 1) * n_base)]
            captions = [c.prompt for c in clips]
            if n_twins:
                twins = twin_captions([c.meta["scene"] for c in clips[:n_twins]], gen)
                seeds = torch.randint(0, 2**31 - 1, (n_twins,), generator=gen).tolist()
                clips += [make_clip_for_prompt(t, sd) for t, sd in zip(twins, seeds)]
                captions += twins
            frames = np.stack([c.frames for c in clips])
            t = torch.randint(0, frames.shape[1], (batch_size,), generator=gen)
            img = torch.from_numpy(frames[np.arange(batch_size), t.numpy()]).permute(0, 3, 1, 2).float() / 255
            flip = torch.rand(batch_size, generator=gen) < 0.5
            img = torch.where(flip[:, None, None, None], img.flip(-1), img)
            txt = tokens(captions)
            used[txt.unique()] = True
            for g in opt.param_groups:
                g["lr"] = _lr_at(step, steps, lr, warmup)
            img_f, txt_f, scale = model(clip_pixels(img, size), txt)
            loss = loss_fn(img_f, txt_f, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            bar.update(1)
            if step % 25 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
    seconds = time.time() - t0
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    ids = used.nonzero().flatten()
    emb = state.pop("token_embedding.weight")
    state["token_embedding.ids"] = ids.to(torch.int64)
    state["token_embedding.rows"] = emb[ids].clone()
    meta = world_clip_metadata(seed, steps, batch_size, lr, weight_decay, hard_negatives)
    save_checkpoint(path, state, meta)
    result = {"path": str(path), "sha256": file_sha256(path), "steps": steps, "seconds": round(seconds, 1),
              "params": sum(v.numel() for v in state.values() if v.is_floating_point()),
              "bytes": path.stat().st_size}
    if validate:
        loaded, _ = load_world_clip_model(path)
        result["validation"] = evaluate_world_clip(loaded, n=validate)
    return result


def load_world_clip_model(path: str | os.PathLike):
    """(open_clip model in eval mode, metadata) from a `train_world_clip` checkpoint."""
    tensors, meta = load_checkpoint(path)
    if meta.get("kind") != "clip":
        raise ValueError(f"{path} holds a {meta.get('kind')!r} checkpoint, not a CLIP model")
    if meta.get("config") != WORLD_CLIP_CONFIG:
        raise ValueError(f"{path} was trained with another open_clip config than {WORLD_CLIP_MODEL}")
    model = create_world_clip()
    ids, rows = tensors.pop("token_embedding.ids"), tensors.pop("token_embedding.rows")
    full = torch.zeros_like(model.token_embedding.weight)
    full[ids] = rows
    tensors["token_embedding.weight"] = full
    model.load_state_dict(tensors, strict=True)
    return model.eval(), meta


def _image_size(model) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


@torch.no_grad()
def evaluate_world_clip(model, n: int = 1024, group: int = 32, split: str = "test", seed: int = 0,
                        num_frames: int = 8, attributes: int = 256) -> dict:
    """Text -> image retrieval on held-out clips, in groups of `group` clips (chance 1/group):

    - `frame_top1`: each caption against one frame (the middle one) of every clip of its group;
    - `clip_top1`: against each clip's mean cosine over `num_frames` evenly spaced frames (what
      `CLIPAlignment` ranks by). Caption duplicates within a group count as hits for either clip.
    Also the mean CLIPScore (per-frame clamp) with own captions and with captions shuffled within
    each group (a derangement), and `attribute_pairwise_accuracy` on `attributes` clips (0: skip)."""
    model.eval()
    size = _image_size(model)
    tokens = _TokenCache(model.context_length)
    n = n - n % group
    frame_hits = clip_hits = 0
    own, shuffled = [], []
    rng = np.random.default_rng(seed)
    with single_thread():
        for start in range(0, n, group):
            frames, captions, _ = render_batch(split, start, group, seed)
            b, t = frames.shape[:2]
            idx = np.round(np.linspace(0, t - 1, min(num_frames, t))).astype(int)
            x = torch.from_numpy(frames[:, idx]).permute(0, 1, 4, 2, 3).float() / 255  # [B, F, 3, H, W]
            img = F.normalize(model.encode_image(clip_pixels(x.flatten(0, 1), size)), dim=-1)
            img = img.view(b, len(idx), -1).double()
            txt = F.normalize(model.encode_text(tokens(captions)), dim=-1).double()  # [B, D]
            cos = torch.einsum("bfd,cd->bfc", img, txt)  # [clip, frame, caption]
            same = torch.tensor([[ci == cj for cj in captions] for ci in captions])  # [caption, clip]
            mid = cos[:, len(idx) // 2, :].T  # [caption, clip]
            frame_hits += int(same[torch.arange(b), mid.argmax(1)].sum())
            clip_mean = cos.mean(1).T  # [caption, clip]
            clip_hits += int(same[torch.arange(b), clip_mean.argmax(1)].sum())
            per_frame = (100 * cos.clamp(min=0)).mean(1)  # [clip, caption]
            own.extend(per_frame.diagonal().tolist())
            perm = (np.arange(b) + rng.integers(1, b)) % b  # a derangement
            shuffled.extend(per_frame[np.arange(b), perm].tolist())
    res = {"n": n, "group": group, "chance": round(1 / group, 4), "frame_top1": round(frame_hits / n, 4),
           "clip_top1": round(clip_hits / n, 4), "clipscore_own": round(float(np.mean(own)), 3),
           "clipscore_shuffled": round(float(np.mean(shuffled)), 3), "split": split}
    if attributes:
        res["attribute_pairwise"] = attribute_pairwise_accuracy(model, n=attributes, split=split, seed=seed,
                                                                num_frames=num_frames)
    return res


_MAX_PER_KIND = {"fall": 3, "throw": 1, "slide": 3, "collide": 2, "static": 3}
_MIN_PER_KIND = {"fall": 1, "throw": 1, "slide": 1, "collide": 2, "static": 1}


def counterfactual_scenes(scene) -> dict[str, list]:
    """`scene` with exactly one attribute changed, per attribute: colour (one object's, to a colour
    absent from the scene), shape, size, count (the last object dropped, or one added where the
    kind allows), motion (another scene kind valid for the object count), background. Layout and
    physics are kept: only `caption(...)` of these is meaningful (render with
    `make_clip_for_prompt`)."""
    from dataclasses import replace

    objs = list(scene.objects)
    out: dict[str, list] = {k: [] for k in ("color", "shape", "size", "count", "motion", "background")}
    present = {o.color for o in objs}

    def with_obj(i, o):
        return replace(scene, objects=tuple(objs[:i] + [o] + objs[i + 1:]))

    for i, o in enumerate(objs):
        out["color"] += [with_obj(i, replace(o, color=c)) for c in COLOR_NAMES if c not in present]
        out["shape"] += [with_obj(i, replace(o, shape=sh)) for sh in SHAPES if sh != o.shape]
        out["size"] += [with_obj(i, replace(o, size_name=sz)) for sz in SIZE_NAMES if sz != o.size_name]
    if len(objs) > _MIN_PER_KIND[scene.kind]:
        out["count"].append(replace(scene, objects=tuple(objs[:-1])))
    if len(objs) < _MAX_PER_KIND[scene.kind]:
        c = next(c for c in COLOR_NAMES if c not in present)
        out["count"].append(replace(scene, objects=tuple(objs + [replace(objs[-1], color=c)])))
    out["motion"] = [replace(scene, kind=k) for k in KINDS
                     if k != scene.kind and _MIN_PER_KIND[k] <= len(objs) <= _MAX_PER_KIND[k]]
    out["background"] = [replace(scene, background=b) for b in BACKGROUNDS if b != scene.background]
    return out


def counterfactual_captions(scene) -> dict[str, list[str]]:
    """Captions of `counterfactual_scenes(scene)`, per attribute."""
    from evalkit.world.captions import caption

    return {k: [caption(s) for s in v] for k, v in counterfactual_scenes(scene).items()}


_TWIN_ATTRS = ("color", "shape", "size", "count", "motion")


def twin_captions(scenes, gen: torch.Generator) -> list[str]:
    """For each scene, the caption of one in-distribution counterfactual (attribute drawn uniformly
    among `_TWIN_ATTRS` that have one, then the variant uniformly; held-out combinations of the
    `ood` split are never drawn): hard negatives for the contrastive batch."""
    from evalkit.world.captions import caption
    from evalkit.world.scenes import held_out_reasons

    out = []
    for scene in scenes:
        alts = counterfactual_scenes(scene)
        options = {a: [s for s in alts[a] if not held_out_reasons(s.kind, s.background, s.objects)]
                   for a in _TWIN_ATTRS}
        options = {a: v for a, v in options.items() if v}
        attrs = sorted(options)
        a = attrs[int(torch.randint(len(attrs), (1,), generator=gen))]
        out.append(caption(options[a][int(torch.randint(len(options[a]), (1,), generator=gen))]))
    return out


@torch.no_grad()
def attribute_pairwise_accuracy(model, n: int = 256, split: str = "test", seed: int = 0,
                                num_frames: int = 8) -> dict:
    """Per attribute: share of (clip, counterfactual caption) pairs where the clip's own caption has
    the higher mean frame cosine (chance 0.5); see `counterfactual_captions`."""
    size = _image_size(model)
    tokens = _TokenCache(model.context_length)
    wins: dict[str, list[float]] = {}
    with single_thread():
        for start in range(0, n, 64):
            b = min(64, n - start)
            clips = [make_clip(split, i, seed) for i in range(start, start + b)]
            frames = np.stack([c.frames for c in clips])
            idx = np.round(np.linspace(0, frames.shape[1] - 1, num_frames)).astype(int)
            x = torch.from_numpy(frames[:, idx]).permute(0, 1, 4, 2, 3).float() / 255
            img = F.normalize(model.encode_image(clip_pixels(x.flatten(0, 1), size)), dim=-1)
            img = img.view(b, len(idx), -1)
            img = img.mean(1).double()  # [B, D]
            for j, c in enumerate(clips):
                alts = counterfactual_captions(c.meta["scene"])
                texts = [c.prompt] + [t for v in alts.values() for t in v]
                te = F.normalize(model.encode_text(tokens(texts)), dim=-1).double()
                s = te @ img[j]
                pos = 1
                for attr, v in alts.items():
                    if v:
                        wins.setdefault(attr, []).append(float((s[0] > s[pos:pos + len(v)]).double().mean()))
                    pos += len(v)
    return {k: round(float(np.mean(v)), 4) for k, v in wins.items()}
