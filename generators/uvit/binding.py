"""Does the denoiser read the prompt's words? Loss sensitivity to a swapped attribute word.

A text-to-video model can get the background right and still ignore which object the prompt
asked for; its samples then mix every colour the training set holds. This measures it directly,
without sampling: on world clips noised to level t, the denoiser's loss on the pixels a word
describes, with the true prompt and with that word swapped for another value of its attribute:

    binding = loss(swapped prompt) / loss(true prompt) - 1     (0: the word is ignored)

`colour` swaps the first object's colour and scores the object pixels (world objects are
saturated, world backgrounds grey, so saturation finds them); `background` swaps the background
word and scores the other pixels. Mean over clips and noise levels, with a bootstrap 95% CI over
clips.
"""

from __future__ import annotations

import re

import numpy as np
import torch

from evalkit.world.spec import COLORS
from generators.training import ClipSource

from .diffusion import GaussianDiffusion, to_model_space
from .network import TextToVideoUViT

SATURATED = 0.25  # max - min of RGB in [0, 1]: world object colours are >= 0.6, backgrounds 0
BACKGROUND_WORDS = ("dark", "light", "gradient", "textured")  # as captions name evalkit.world's backgrounds


def swap_word(prompt: str, values, offset: int = 3) -> str | None:
    """The prompt with its first word from `values` replaced by another value (None if none)."""
    values = list(values)
    m = re.search(r"\b(" + "|".join(map(re.escape, values)) + r")\b", prompt)
    if m is None:
        return None
    other = values[(values.index(m.group(1)) + offset) % len(values)]
    return prompt[: m.start()] + other + prompt[m.end():]


@torch.no_grad()
def prompt_binding(net: TextToVideoUViT, n_clips: int = 64, timesteps=(300, 500, 700), seed: int = 0,
                   batch: int = 16) -> dict:
    """{"colour": {...}, "background": {...}}, each: value, ci_low, ci_high, n, per-timestep means."""
    cfg = net.cfg
    net = net.float().eval()
    diffusion = GaussianDiffusion.from_config(cfg)
    source = ClipSource("world", cfg, seed + 7919)  # not the training seed's clips
    kinds = {"colour": (COLORS, True), "background": (BACKGROUND_WORDS, False)}
    per_clip = {k: [] for k in kinds}  # rows: clips; columns: timesteps
    g = torch.Generator().manual_seed(seed)
    for start in range(0, n_clips, batch):
        items = [source.get(i) for i in range(start, min(n_clips, start + batch))]
        video = torch.stack([v for v, _ in items])  # [b, T, C, H, W] in [0, 1]
        prompts = [p for _, p in items]
        x0 = to_model_space(video)
        saturated = (video.amax(2) - video.amin(2)) > SATURATED  # [b, T, H, W]
        true_cond = net.text(net.tokenize(prompts))
        rows = {k: [[] for _ in items] for k in kinds}
        for t in timesteps:
            tt = torch.full((len(items),), int(t))
            noise = torch.randn(x0.shape, generator=g)
            x_t = diffusion.q_sample(x0, tt, noise)
            target = diffusion.target(x0, tt, noise)
            err_true = (net.denoise(x_t, tt, true_cond) - target).pow(2).mean(2)  # [b, T, H, W]
            for kind, (values, on_objects) in kinds.items():
                swapped = [swap_word(p, values) or p for p in prompts]
                err = (net.denoise(x_t, tt, net.text(net.tokenize(swapped))) - target).pow(2).mean(2)
                for j in range(len(items)):
                    where = saturated[j] if on_objects else ~saturated[j]
                    if swapped[j] == prompts[j] or not bool(where.any()):
                        continue
                    rows[kind][j].append(float(err[j][where].mean() / err_true[j][where].mean().clamp(min=1e-12) - 1))
        for kind in kinds:
            per_clip[kind] += [r for r in rows[kind] if len(r) == len(timesteps)]
    out = {}
    rng = np.random.default_rng(seed)
    for kind, rows in per_clip.items():
        a = np.asarray(rows, dtype=float)  # [n, len(timesteps)]
        if not len(a):
            out[kind] = None
            continue
        means = a.mean(1)
        boot = [means[rng.integers(0, len(means), len(means))].mean() for _ in range(1000)]
        out[kind] = {"value": float(means.mean()), "ci_low": float(np.quantile(boot, 0.025)),
                     "ci_high": float(np.quantile(boot, 0.975)), "n": len(means), "confidence": 0.95,
                     "by_timestep": {int(t): float(a[:, i].mean()) for i, t in enumerate(timesteps)}}
    return out
