"""Experiment (session 18): sampling-time variants on `uvit:small-gpu`, paired against the shipped
setting (DPM-Solver++ 20 steps, trailing spacing, classifier-free guidance 2) on the 24 x 2 probe.

    python benchmarks/quality/guidance_variants.py cfg '{"s": 2.0}'                 # the baseline (run first)
    python benchmarks/quality/guidance_variants.py cfg '{"s": 3.0, "hi": 600}'      # guidance in an interval
    python benchmarks/quality/guidance_variants.py cfg '{"s": 2.0, "spacing": "karras"}'
    python benchmarks/quality/guidance_variants.py cfg '{"s": 2.0, "steps": 40}'
    python benchmarks/quality/guidance_variants.py auto '{"w": 1.3, "s": 2.0}'      # autoguidance
    python benchmarks/quality/guidance_variants.py stg '{"w": 1.0, "s": 2.0}'       # skip guidance

Variants (each an eps_fn handed to the library's sampler; nothing here enters the package):
- `cfg`: eps_u + s (eps_c - eps_u), applied only for timesteps lo <= t < hi (Kynkaanniemi et al.
  2024 apply guidance in a limited interval; since session 26 a package option, `generate
  --guidance-interval LO:HI` and `benchmarks/quality/uvit.py --guidance-interval`); `spacing` "karras" puts the steps at EDM's rho = 7
  noise levels (sigma from `smax`, default 80, down to the schedule's smallest); `steps`.
- `auto`: autoguidance (Karras et al. 2024): eps_bad + w (eps_good - eps_bad), the bad model
  `uvit:small-stage1` (the same preset, 2,281 steps into training, unshifted schedule: it is
  queried at the timestep of equal log-SNR), plus (s - 1) (eps_c - eps_u) of ordinary guidance.
- `stg`: spatiotemporal skip guidance (Hyung et al. 2024): the guided output plus w (eps_c -
  eps_skip), eps_skip the conditional output with the U-ViT's mid block skipped.

Each run prints one JSON line: the probe's measures (objects present, object frames, falls moving
down, physics pass, FVD on the world encoder) and, once the baseline has been run, the paired
differences against it (clip by clip, bootstrap CIs) and the FVD difference (paired bootstrap).
The baseline's per-clip measures and features are kept in `--cache` (default
runs/guidance-baseline-24x2.pkl). Results: README, "Training the built-in U-ViT".
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time

import torch

import generators.uvit.samplers as samplers
from benchmarks.quality.uvit import fvd_difference
from evalkit.clip import Clip
from evalkit.metrics.generator_quality import QualityProbe, paired_differences
from generators.base import get_generator
from generators.uvit.diffusion import GaussianDiffusion, from_model_space
from generators.uvit.layers import flush_denormal


def karras_timesteps(diffusion: GaussianDiffusion, steps: int, smax: float) -> list[int]:
    """EDM's rho = 7 noise levels from min(smax, the schedule's top) down to its smallest, mapped
    to the nearest integer timesteps (strictly descending)."""
    ab = diffusion.alphas_cumprod
    sig = ((1 - ab) / ab).sqrt()  # [T] float64, increasing in t
    lo, hi, rho = float(sig[0]), min(float(sig[-1]), smax), 7.0
    r = torch.linspace(0, 1, steps, dtype=torch.float64)
    grid = (hi ** (1 / rho) + r * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
    out: list[int] = []
    for t in (sig.log()[None] - grid.log()[:, None]).abs().argmin(1).tolist():
        if not out or t < out[-1]:
            out.append(int(t))
    return out


class SkipBlock(torch.nn.Module):
    """A U-ViT block replaced by the identity (the mid block takes no long skip)."""

    def forward(self, x, skip, keep, extras=0):
        return x


class Variant:
    def __init__(self, mode: str, kw: dict):
        if mode not in ("cfg", "auto", "stg"):
            raise SystemExit(f"unknown mode {mode!r}: cfg, auto or stg")
        self.mode, self.kw = mode, kw
        self.net = get_generator("uvit:small-gpu").net
        self.diffusion = GaussianDiffusion.from_config(self.net.cfg)
        if mode == "auto":
            self.bad = get_generator(kw.get("bad", "uvit:small-stage1")).net
            self.bad_diffusion = GaussianDiffusion.from_config(self.bad.cfg)
            lam = lambda d: torch.log(d.alphas_cumprod / (1 - d.alphas_cumprod))  # noqa: E731
            # the bad model's timestep of equal log-SNR, for each of the good model's
            self.tmap = (lam(self.diffusion)[:, None] - lam(self.bad_diffusion)[None, :]).abs().argmin(1)

    def _eps(self, x, t, cond, skip_mid: bool = False):
        uvit = self.net.uvit
        mid = uvit.mid_block
        if skip_mid:
            uvit.mid_block = SkipBlock()
        try:
            return self.diffusion.output_to_eps(uvit(x, t, *cond), x, t)
        finally:
            uvit.mid_block = mid

    def sample(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        kw, net, B = self.kw, self.net, len(prompts)
        tokens = net.tokenize(prompts)
        cond, uncond = net.text(tokens), net.text.null(B, tokens.shape[1])
        s = kw.get("s", 2.0)
        if self.mode == "auto":
            bad_cond = self.bad.text(self.bad.tokenize(prompts))

        def eps_fn(x, t):  # x [B, T, C, H, W], t [B]
            ec = self._eps(x, t, cond)
            if self.mode == "cfg":
                if s == 1 or not kw.get("lo", 0) <= int(t.flatten()[0]) < kw.get("hi", 1000):
                    return ec
                eu = self._eps(x, t, uncond)
                return eu + s * (ec - eu)
            if self.mode == "stg":
                eu = self._eps(x, t, uncond)
                return eu + s * (ec - eu) + kw.get("w", 1.0) * (ec - self._eps(x, t, cond, skip_mid=True))
            tb = self.tmap[t.long()].to(t.device)
            eb = self.bad_diffusion.output_to_eps(self.bad.uvit(x, tb, *bad_cond), x, tb)
            out = eb + kw.get("w", 2.0) * (ec - eb)
            if s != 1:
                out = out + (s - 1) * (ec - self._eps(x, t, uncond))
            return out

        cfg = net.cfg
        gens = [torch.Generator("cpu").manual_seed(int(z)) for z in seeds]
        x = samplers.get_sampler(kw.get("sampler", "dpmpp-2m"))(
            self.diffusion, eps_fn, (B, cfg.frames, cfg.channels, cfg.image_size, cfg.image_size),
            kw.get("steps", 20), spacing=kw.get("spacing", "trailing"), generator=gens, device="cpu", clip_x0=1.0)
        return [Clip.from_tensor(v, fps=8, prompt=p) for v, p in zip(from_model_space(x.float()), prompts)]

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Clip]:
        out = []
        with torch.no_grad(), flush_denormal():
            for i in range(0, len(prompts), 8):
                out += self.sample(prompts[i:i + 8], seeds[i:i + 8])
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("mode", choices=["cfg", "auto", "stg"])
    ap.add_argument("kw", nargs="?", default="{}", help="JSON settings of the variant (see the module docstring)")
    ap.add_argument("--prompts", type=int, default=24)
    ap.add_argument("--per-prompt", type=int, default=2)
    ap.add_argument("--cache", default=None, help="baseline cache (default runs/guidance-baseline-PxN.pkl)")
    a = ap.parse_args()
    try:
        kw = json.loads(a.kw)
    except json.JSONDecodeError as e:  # (a traceback before session 30)
        ap.error(f"kw {a.kw!r}: not JSON ({e.msg}); give the variant's settings as a JSON object, "
                 "e.g. '{\"s\": 2}'")
    if not isinstance(kw, dict):
        ap.error(f"kw {a.kw!r}: give a JSON object of settings")
    if kw.get("spacing") == "karras":
        orig = samplers.timesteps_for
        samplers.timesteps_for = lambda d, n, sp: (karras_timesteps(d, n, float(kw.get("smax", 80.0)))
                                                   if sp == "karras" else orig(d, n, sp))
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    variant = Variant(a.mode, kw)
    probe = QualityProbe(a.prompts, a.per_prompt, 0)
    t0 = time.time()
    res = probe.evaluate(variant.generate)
    row = {"benchmark": "uvit-guidance-variant", "model": "uvit:small-gpu", "mode": a.mode, "settings": kw,
           **probe.protocol(), "seconds": round(time.time() - t0), "quality": res["quality"], "fvd": res["fvd"]}
    feats = probe.features(res["clips"])
    cache = a.cache or f"runs/guidance-baseline-{a.prompts}x{a.per_prompt}.pkl"
    if a.mode == "cfg" and kw == {"s": 2.0}:
        os.makedirs(os.path.dirname(cache) or ".", exist_ok=True)
        with open(cache, "wb") as f:
            pickle.dump({"measures": res["measures"], "features": feats}, f)
    elif os.path.exists(cache):
        with open(cache, "rb") as f:
            base = pickle.load(f)
        row["minus_baseline"] = paired_differences(res["measures"], base["measures"])
        row["fvd_minus_baseline"] = fvd_difference(probe.ref, feats, base["features"])
    else:
        print(f"no baseline at {cache}: run `cfg '{{\"s\": 2.0}}'` first for the paired differences",
              file=sys.stderr)
    from evalkit.tracking import _jsonable

    print(json.dumps(_jsonable(row)), flush=True)  # strict JSON: a bound not estimable is null, not NaN


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
