"""Prompt alignment: CLIPScore over frames and text-to-clip retrieval among a suite's prompts.

Definitions (every number states its backbone and weights hash in `protocol()`):

- Frames: every frame of a clip of up to `num_frames` (default 32) frames, as DESIGN.md defines
  CLIPScore; a longer clip uses `num_frames` evenly spaced frames, indices
  `round(linspace(0, T - 1, num_frames))` (first and last included). Until session 36 the default
  was 8, so a 16-frame suite clip was scored on half its frames (88.87 against 87.72 on every
  frame, the red team's check of session 35); 32 keeps every frame of the suite's clips and of most
  generators' (CogVideoX 49, Wan 81 frames are sampled), and bounds the cost of a long recording.
- CLIPScore, `clamp="frame"` (default, DESIGN.md): per frame `100 * max(cos(image, text), 0)`,
  averaged over the clip's frames; the metric is the mean over clips. A frame that points away from
  the prompt counts 0, not negative.
- CLIPScore, `clamp="mean"` (torchmetrics' `CLIPScore` convention): per clip `100 * mean cos`
  (unclamped); the metric is `max(mean over clips, 0)`. With the same number of frames in every
  clip this is exactly `torchmetrics.multimodal.CLIPScore` fed every (frame, prompt) pair, which
  clamps only its final mean. The two conventions agree exactly when no frame cosine is negative.
- Retrieval per attribute (`attribute_retrieval`, world clips only): for each clip and each
  attribute (colour, shape, size, count, motion, background), its own caption against the
  captions of the same scene with only that attribute changed (`encoders.counterfactual_captions`),
  ranked by the clip's mean frame cosine: top-1 = the own caption scores above every alternative
  (ties count against); pairwise = the share of alternatives it beats (chance 0.5).
- Retrieval (text -> clip): for each clip, the distinct prompts of the whole set (after DDP sync:
  of all ranks) are ranked by the clip's mean cosine over its frames (`<mean_f e_f, t>`, unclamped,
  so no ties at 0); rank = number of distinct prompts scoring >= the clip's own (ties count
  against it). top-k accuracy = share of clips whose own prompt has rank <= k; chance = k / number
  of distinct prompts. Distinct prompts are identified by a 52-bit SHA-256 key of the exact string.

Embeddings are L2-normalised float64 (computed by the backbone in float32).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from evalkit.metrics.base import EvalkitMetric, cat_state, keep_out_of_compute_groups, synced, warn_one_sample
from evalkit.metrics.stats import Estimate, mean_ci, proportion_ci

DEFAULT_NUM_FRAMES = 32  # every frame up to this many (see the module's docstring)
CLAMPS = ("frame", "mean")
TOP_K = (1, 5)


def frame_indices(t: int, num_frames: int = DEFAULT_NUM_FRAMES) -> np.ndarray:
    """Indices of `num_frames` evenly spaced frames of a T-frame clip (all T when T <= num_frames)."""
    if t < 1 or num_frames < 1:
        raise ValueError(f"need T >= 1 and num_frames >= 1, got {t} and {num_frames}")
    if t <= num_frames:
        return np.arange(t)
    return np.round(np.linspace(0, t - 1, num_frames)).astype(np.int64)


def prompt_key(prompt: str) -> float:
    """A float64-exact 52-bit key of the exact prompt string (distinct prompts, across ranks)."""
    return float(int(hashlib.sha256(prompt.encode("utf-8", "backslashreplace")).hexdigest()[:13], 16))


def _check_clamp(clamp: str) -> str:
    if clamp not in CLAMPS:
        raise ValueError(f"clamp must be one of {CLAMPS}, got {clamp!r}")
    return clamp


def _normalize64(x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().to(torch.float64).cpu()
    if not torch.isfinite(x).all():
        raise ValueError("embeddings hold NaN or infinite values")
    return F.normalize(x, dim=-1)


def frame_cosines(frame_embeds, text_embeds) -> torch.Tensor:
    """float64 [B, F] cosines of each clip's frames [B, F, D] with its prompt [B, D]."""
    fe, te = _normalize64(frame_embeds), _normalize64(text_embeds)
    if fe.ndim != 3 or te.ndim != 2 or fe.shape[0] != te.shape[0] or fe.shape[2] != te.shape[1]:
        raise ValueError(f"expected frame embeddings [B, F, D] and text embeddings [B, D], got "
                         f"{tuple(fe.shape)} and {tuple(te.shape)}")
    return torch.einsum("bfd,bd->bf", fe, te)


def clip_scores(frame_embeds, text_embeds, clamp: str = "frame") -> torch.Tensor:
    """Per-clip CLIPScore float64 [B]: `clamp="frame"`: mean_f 100 * max(cos, 0); `clamp="mean"`:
    100 * mean_f cos (unclamped; the clamp applies to the mean over clips, see `aggregate`)."""
    cos = frame_cosines(frame_embeds, text_embeds)
    if _check_clamp(clamp) == "frame":
        return (100.0 * cos.clamp(min=0.0)).mean(dim=1)
    return 100.0 * cos.mean(dim=1)


def aggregate(values, clamp: str = "frame", axis: int = -1):
    """The metric's value from per-clip scores: their mean, clamped at 0 for `clamp="mean"`.
    Vectorised over `axis` (for the bootstrap)."""
    m = np.mean(np.asarray(values, dtype=np.float64), axis=axis)
    return np.maximum(m, 0.0) if _check_clamp(clamp) == "mean" else m


def retrieval_ranks(clip_embeds, text_embeds, keys) -> np.ndarray:
    """int [N]: rank of each clip's own prompt among the distinct prompts (1 = best; ties count
    against). clip_embeds [N, D]: mean of a clip's L2-normalised frame embeddings (not
    renormalised: its dot product with a unit prompt embedding is the clip's mean cosine);
    text_embeds [N, D]: each clip's prompt embedding; keys [N]: `prompt_key` of each prompt."""
    ce = torch.as_tensor(clip_embeds, dtype=torch.float64)
    te = _normalize64(text_embeds)
    keys = np.asarray(torch.as_tensor(keys, dtype=torch.float64).numpy())
    if ce.ndim != 2 or ce.shape != te.shape or keys.shape != (ce.shape[0],):
        raise ValueError(f"expected clip and text embeddings [N, D] and keys [N], got {tuple(ce.shape)}, "
                         f"{tuple(te.shape)}, {keys.shape}")
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    prompts = te[torch.from_numpy(first)]  # [K, D]
    scores = ce @ prompts.T  # [N, K]
    own = scores[torch.arange(ce.shape[0]), torch.from_numpy(inverse.reshape(-1))]
    return (scores >= own[:, None]).sum(dim=1).numpy().astype(np.int64)


def _mean_frame_embeds(frame_embeds) -> torch.Tensor:
    return _normalize64(frame_embeds).mean(dim=1)


def _encode(backbone, videos, prompts: Sequence[str], num_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(frame embeddings [B, F, D], text embeddings [B, D]) from videos [B, T, 3, H, W] in [0, 1]."""
    from evalkit.metrics.backbones import as_videos

    x = as_videos(videos)
    if len(prompts) != x.shape[0]:
        raise ValueError(f"got {x.shape[0]} videos and {len(prompts)} prompts; give one prompt per clip")
    idx = torch.from_numpy(frame_indices(x.shape[1], num_frames))
    return backbone.encode_video_frames(x[:, idx]), backbone.encode_text(list(prompts))


def _resolve_backbone(backbone):
    if backbone is None or isinstance(backbone, str):
        from evalkit.metrics.backbones import DEFAULT_CLIP_BACKBONE, get_backbone

        name = backbone or DEFAULT_CLIP_BACKBONE
        backbone = get_backbone(name)
    else:
        name = type(backbone).__name__
    return _check_clip_backbone(backbone, name)


def _check_clip_backbone(backbone, name: str):
    if not all(callable(getattr(backbone, m, None)) for m in ("encode_video_frames", "encode_text")):
        raise ValueError(f"backbone {name}: not a CLIP backbone (it has no encode_video_frames and encode_text); "
                         "give world-clip, an open_clip name such as ViT-B-32, or an object with both")
    return backbone


def _check_prompts(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    bad = next((i for i, p in enumerate(prompts) if not isinstance(p, str)), None)
    if bad is not None:
        raise ValueError(f"prompt {bad} is {type(prompts[bad]).__name__}, not text; give one string per clip")
    return prompts


def clip_alignment(videos=None, prompts: Sequence[str] | None = None, backbone=None, *, frame_embeds=None,
                   text_embeds=None, num_frames: int = DEFAULT_NUM_FRAMES, clamp: str = "frame") -> dict:
    """Functional form: {"clip_score", "per_clip" (float64 [N]), "retrieval_top1", "retrieval_top5",
    "ranks", "n", "n_prompts"} for videos [N, T, 3, H, W] in [0, 1] and one prompt per clip (or
    precomputed `frame_embeds` [N, F, D] (or a list of [N_i, F_i, D], clips of different lengths)
    and `text_embeds` [N, D], with `prompts` for the keys).
    `backbone`: a CLIP backbone object or name (default "world-clip")."""
    _check_clamp(clamp)
    if prompts is None:
        raise ValueError("prompts are required (one per clip)")
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if frame_embeds is None:
        frame_embeds, text_embeds = _encode(_resolve_backbone(backbone), videos, prompts, num_frames)
    elif text_embeds is None:
        text_embeds = _resolve_backbone(backbone).encode_text(prompts)
    if isinstance(frame_embeds, (list, tuple)):  # clips of different lengths: [B_i, F_i, D] each
        text_embeds = torch.cat(list(text_embeds)) if isinstance(text_embeds, (list, tuple)) else text_embeds
        sizes = [len(f) for f in frame_embeds]
        per = torch.cat([clip_scores(f, t, clamp) for f, t in zip(frame_embeds, text_embeds.split(sizes))]).numpy()
        clip_means = torch.cat([_mean_frame_embeds(f) for f in frame_embeds])
    else:
        per = clip_scores(frame_embeds, text_embeds, clamp).numpy()
        clip_means = _mean_frame_embeds(frame_embeds)
    keys = [prompt_key(p) for p in prompts]
    if len(keys) != per.shape[0]:
        raise ValueError(f"got {per.shape[0]} clips and {len(keys)} prompts")
    ranks = retrieval_ranks(clip_means, text_embeds, keys)
    n_prompts = len(set(keys))
    out = {"clip_score": float(aggregate(per, clamp)), "per_clip": per, "ranks": ranks, "n": int(per.size),
           "n_prompts": n_prompts}
    for k in TOP_K:
        out[f"retrieval_top{k}"] = float(np.mean(ranks <= k)) if n_prompts > 1 else math.nan
    return out


def _default_clip_name() -> str:
    from evalkit.metrics.backbones import DEFAULT_CLIP_BACKBONE

    return DEFAULT_CLIP_BACKBONE


def _backbone_identity(backbone) -> str:
    """What a backbone object is, for merging and grouping: its name and weights' digest where it
    has them (two workers' loads of one backbone are one setting; their id() differed and every
    merge was refused, session 33), else the object itself."""
    name, sha = getattr(backbone, "name", None), getattr(backbone, "sha256", None)
    if isinstance(name, str) and isinstance(sha, str) and sha:
        return f"{name}@{sha[:16]}"
    return f"{type(backbone).__qualname__}@{id(backbone)}"


class CLIPAlignment(EvalkitMetric):
    """CLIPScore (mean over clips, see the module docstring for `clamp`) and text-to-clip retrieval.

    `update(videos [B, T, 3, H, W] in [0, 1], prompts [B])`, or `update(prompts=..., frame_embeds=
    [B, F, D], text_embeds=[B, D])` with precomputed embeddings. `compute()` -> {"clip_score",
    "retrieval_top1", "retrieval_top5", "n_prompts"} float64 tensors (retrieval NaN with fewer than
    2 distinct prompts). States, all float64: `total`, `count` (DDP "sum"); per clip (DDP "cat"):
    `values` (its CLIPScore), `clip_embeds` (mean frame embedding), `text_embeds`, `prompt_keys`.
    `backbone`: a name for `get_backbone` (default "world-clip", loaded on first use and not
    pickled) or a CLIP backbone object.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, backbone=None, num_frames: int = DEFAULT_NUM_FRAMES, clamp: str = "frame",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.clamp = _check_clamp(clamp)
        if int(num_frames) < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        self.num_frames = int(num_frames)
        self._named = backbone is None or isinstance(backbone, str)
        self._backbone_spec = backbone if self._named else None
        self._backbone = None if self._named else _check_clip_backbone(backbone, type(backbone).__name__)
        self.add_state("total", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        for name in ("values", "clip_embeds", "text_embeds", "prompt_keys"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        spec = (backbone or _default_clip_name()) if self._named else _backbone_identity(backbone)
        keep_out_of_compute_groups(self, backbone=spec, num_frames=self.num_frames, clamp=self.clamp)

    @property
    def backbone(self):
        if self._backbone is None:
            self._backbone = _resolve_backbone(self._backbone_spec)
        return self._backbone

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        if self._named:
            state["_backbone"] = None  # a named backbone is reloaded on first use
        return state

    def update(self, videos=None, prompts: Sequence[str] | None = None, *, frame_embeds=None,
               text_embeds=None) -> None:
        if prompts is None:
            raise ValueError("CLIPAlignment.update needs the prompts (one per clip)")
        prompts = _check_prompts(prompts)
        if frame_embeds is None:
            if videos is None:
                raise ValueError("give videos or frame_embeds")
            frame_embeds, text_embeds = _encode(self.backbone, videos, prompts, self.num_frames)
        elif text_embeds is None:
            text_embeds = self.backbone.encode_text(prompts)
        per = clip_scores(frame_embeds, text_embeds, self.clamp)
        if per.shape[0] != len(prompts):
            raise ValueError(f"got {per.shape[0]} clips and {len(prompts)} prompts")
        self.total += per.sum()
        self.count += per.numel()
        self.values.append(per)
        self.clip_embeds.append(_mean_frame_embeds(frame_embeds))
        self.text_embeds.append(_normalize64(text_embeds))
        self.prompt_keys.append(torch.tensor([prompt_key(p) for p in prompts], dtype=torch.float64))

    def _check(self, method: str = "compute") -> None:
        if self.count == 0:
            raise self._no_data(method)

    @synced
    def ranks(self) -> np.ndarray:
        """Retrieval rank of each clip's own prompt (update order; under DDP: all ranks', in rank order)."""
        self._check("ranks")
        return retrieval_ranks(cat_state(self.clip_embeds), cat_state(self.text_embeds),
                               cat_state(self.prompt_keys))

    @synced
    def n_prompts(self) -> int:
        return int(np.unique(cat_state(self.prompt_keys).numpy()).size)

    def compute(self) -> dict[str, torch.Tensor]:
        self._check()
        mean = self.total / self.count
        out = {"clip_score": mean.clamp(min=0.0) if self.clamp == "mean" else mean}
        ranks, k_prompts = self.ranks(), self.n_prompts()
        for k in TOP_K:
            acc = float(np.mean(ranks <= k)) if k_prompts > 1 else math.nan
            out[f"retrieval_top{k}"] = torch.tensor(acc, dtype=torch.float64)
        out["n_prompts"] = torch.tensor(float(k_prompts), dtype=torch.float64)
        return out

    @synced
    def per_clip(self) -> np.ndarray:
        """float64 [N] per-clip CLIPScores (clamp="mean": the unclamped per-clip 100 * mean cos)."""
        return cat_state(self.values).numpy().astype(np.float64)

    @synced
    def compute_with_ci(self, n_boot: int = 2000, seed: int | None = 0, confidence: float = 0.95) -> Estimate:
        """CLIPScore with the interval `evalkit score` gives it (`stats.mean_ci`: the bootstrap widened
        to Student's t, within the score's range); for clamp="mean" the interval of the unclamped
        mean, clamped at 0 as the value is (a monotone map keeps its coverage); n is the clip count."""
        self._check("compute_with_ci")
        per = self.per_clip()
        warn_one_sample(self, per.size)
        if self.clamp == "frame":
            return mean_ci(per, bounds=(0.0, 100.0), n_boot=n_boot, seed=seed, confidence=confidence)
        est = mean_ci(per, bounds=(-100.0, 100.0), n_boot=n_boot, seed=seed, confidence=confidence)
        return Estimate(max(est.value, 0.0), max(est.ci_low, 0.0), max(est.ci_high, 0.0), est.n, est.method,
                        est.confidence)

    @synced
    def retrieval_with_ci(self, confidence: float = 0.95) -> dict[str, Estimate]:
        """{"top1", "top5"}: hit rates with Wilson intervals (clips treated as independent trials;
        the candidate set is fixed by the data). Empty with fewer than 2 distinct prompts."""
        self._check("retrieval_with_ci")
        ranks = self.ranks()
        if self.n_prompts() < 2:
            return {}
        return {f"top{k}": proportion_ci(int((ranks <= k).sum()), int(ranks.size), confidence) for k in TOP_K}

    @synced
    def protocol(self) -> dict:
        bb = self.backbone
        proto = {
            "metric": "clip_alignment",
            "definition": ("per frame 100 * max(cos, 0), mean over frames, mean over clips"
                           if self.clamp == "frame" else
                           "100 * mean cos per clip, mean over clips, clamped at 0 (torchmetrics CLIPScore)"),
            "clamp": self.clamp,
            "num_frames": self.num_frames,
            "frame_sampling": "round(linspace(0, T-1, num_frames)); all frames when T <= num_frames",
            "retrieval": "text->clip: own prompt's rank among the set's distinct prompts by mean frame "
                         "cosine; ties count against; chance = k / n_prompts",
            "n": int(self.count),
        }
        if self.count > 0:
            proto["n_prompts"] = self.n_prompts()
        if hasattr(bb, "protocol"):
            proto.update(bb.protocol())
        return proto


ATTRIBUTES = ("color", "shape", "size", "count", "motion", "background")


def attribute_retrieval(videos, scenes, backbone=None, *, num_frames: int = DEFAULT_NUM_FRAMES,
                        confidence: float = 0.95) -> dict[str, dict]:
    """Per attribute: can the CLIP backbone tell a world clip's caption from the same caption with
    only that attribute changed? videos [N, T, 3, H, W] in [0, 1] (uint8 accepted), scenes: the
    N world `Scene`s they were rendered from (`clip.meta["scene"]`).

    Returns {attribute: {"top1": Estimate (Wilson; clips whose own caption beats all of that
    attribute's alternatives), "pairwise": float (share of (clip, alternative) pairs won, chance
    0.5), "chance_top1": float (mean of 1 / (1 + alternatives)), "n": clips with an alternative}}
    for each attribute some clip has an alternative for (a one-object scene has no count to drop
    in a collide, and so on).
    """
    from evalkit.metrics.world_clip import counterfactual_captions
    from evalkit.world.captions import caption

    bb = _resolve_backbone(backbone)
    scenes = list(scenes)
    own = [caption(sc) for sc in scenes]
    alts = [counterfactual_captions(sc) for sc in scenes]
    texts = sorted(set(own) | {t for a in alts for v in a.values() for t in v})
    index = {t: k for k, t in enumerate(texts)}
    frame_embeds, _ = _encode(bb, videos, own, num_frames)
    clip_e = _mean_frame_embeds(frame_embeds)  # [N, D]
    text_e = _normalize64(bb.encode_text(texts))  # [K, D]
    scores = (clip_e @ text_e.T).numpy()  # [N, K]
    out = {}
    for attr in ATTRIBUTES:
        hits, won, pairs, chance, n = 0, 0, 0, 0.0, 0
        for i, a in enumerate(alts):
            others = [t for t in a.get(attr, []) if t != own[i]]
            if not others:
                continue
            s_own = scores[i, index[own[i]]]
            s_alt = scores[i, [index[t] for t in others]]
            hits += bool((s_own > s_alt).all())
            won += int((s_own > s_alt).sum())
            pairs += len(others)
            chance += 1.0 / (1 + len(others))
            n += 1
        if n:
            out[attr] = {"top1": proportion_ci(hits, n, confidence), "pairwise": won / pairs,
                         "chance_top1": chance / n, "n": n}
    return out
