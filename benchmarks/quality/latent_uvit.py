"""Experiment (session 17): a latent U-ViT, to see how far a CPU budget reaches when the U-ViT
works on an autoencoder's latents instead of pixels.

    python benchmarks/quality/latent_uvit.py ae MINUTES [--out-dir DIR]       # the autoencoder
    python benchmarks/quality/latent_uvit.py dit MINUTES [--out-dir DIR]      # the latent U-ViT (resumes)
    python benchmarks/quality/latent_uvit.py probe [GUIDANCE] [--out-dir DIR] # the 24 x 2 quality probe

A per-frame convolutional autoencoder maps 32x32 frames to 8x8x8 latents (2-D convolutions: 3-D
ones cost as much as the U-ViT itself on this CPU)
the U-ViT (small's width and depth, Mix-FFN,
2x2x2 tubelets: 128 tokens against pixel-space small's 512) is trained on the scaled latents with
the shipped `uvit:small-gpu`'s pre-trained text encoder, frozen. Not part of the package: the
result is in the README ("Training the built-in U-ViT") and the numbers are printed as JSON lines.
"""

import copy
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from evalkit.clip import Clip
from generators.training import ClipSource
from generators.uvit.configs import UViTConfig
from generators.uvit.diffusion import GaussianDiffusion
from generators.uvit.layers import flush_denormal
from generators.uvit.network import TextToVideoUViT
from generators.uvit.samplers import cfg_eps_fn, dpmpp_2m_sample
from generators.uvit.text import tokenize

torch.set_num_threads(1)
OUT = Path(sys.argv[sys.argv.index("--out-dir") + 1] if "--out-dir" in sys.argv else "runs/latent-uvit")
PIX = UViTConfig(name="pix", frames=16, image_size=32)  # the clips: 16 x 32 x 32


class AE(nn.Module):
    """Per frame: [B, T, 3, 32, 32] in [-1, 1] <-> latent [B, T, 8, 8, 8] (space /4
    2-D convs:
    3-D ones cost as much as the U-ViT itself on this CPU)."""

    def __init__(self, c=8):
        super().__init__()
        a = nn.SiLU
        self.enc = nn.Sequential(nn.Conv2d(3, 32, 3, 1, 1), a(), nn.Conv2d(32, 48, 4, 2, 1), a(),
                                 nn.Conv2d(48, 64, 4, 2, 1), a(), nn.Conv2d(64, 64, 3, 1, 1), a(),
                                 nn.Conv2d(64, c, 1))
        self.dec = nn.Sequential(nn.Conv2d(c, 64, 3, 1, 1), a(), nn.Conv2d(64, 64, 3, 1, 1), a(),
                                 nn.ConvTranspose2d(64, 48, 4, 2, 1), a(), nn.ConvTranspose2d(48, 32, 4, 2, 1), a(),
                                 nn.Conv2d(32, 3, 3, 1, 1))

    def encode(self, x):  # x [B, T, C, H, W] -> [B, T, c, h, w]
        b, t = x.shape[:2]
        z = self.enc(x.flatten(0, 1))
        return z.view(b, t, *z.shape[1:])

    def decode(self, z):
        b, t = z.shape[:2]
        y = self.dec(z.flatten(0, 1))
        return y.view(b, t, *y.shape[1:])


def batch(source, step, b):
    items = [source.get(step * b + j) for j in range(b)]
    return torch.stack([v for v, _ in items]) * 2 - 1, [p for _, p in items]


def train_ae(minutes):
    src = ClipSource("world", PIX, seed=21)
    ae = AE()
    opt = torch.optim.AdamW(ae.parameters(), lr=2e-3, weight_decay=0.0)
    t0, step = time.time(), 0
    while time.time() - t0 < 60 * minutes:
        x, _ = batch(src, step, 16)
        for g in opt.param_groups:
            g["lr"] = 2e-3 * min(1, (step + 1) / 100)
        with torch.autocast("cpu", torch.bfloat16):
            z = ae.encode(x)
            y = ae.decode(z)
        loss = (y.float() - x).abs().mean() + 2 * (y.float() - x).pow(2).mean() + 1e-4 * z.float().pow(2).mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ae.parameters(), 1.0)
        opt.step()
        step += 1
        if step % 100 == 0:
            mse = float((y.float() - x).pow(2).mean()) / 4  # in [0, 1] units
            print(json.dumps({"ae_step": step, "loss": round(float(loss), 4), "psnr": round(-10 * math.log10(mse), 2),
                              "min": round((time.time() - t0) / 60, 1)}), flush=True)
    with torch.no_grad():
        x, _ = batch(ClipSource("world", PIX, seed=99), 0, 64)
        z = ae.encode(x)
        y = ae.decode(z).clamp(-1, 1)
        psnr = -10 * math.log10(float((y - x).pow(2).mean()) / 4)
        scale = 1.0 / float(z.std())
    torch.save({"ae": ae.state_dict(), "scale": scale, "steps": step, "psnr": psnr}, OUT / "ae.pt")
    print(json.dumps({"ae_done": step, "held_out_psnr": round(psnr, 2), "latent_std": round(1 / scale, 3)}), flush=True)


LAT = UViTConfig(name="latent", frames=16, image_size=8, channels=8, patch_size=2, temporal_patch=2, width=192,
                 depth=7, heads=3, text_len=32, text_width=128, text_depth=2, text_heads=2, text_vocab_dim=16,
                 schedule="cosine", prediction="v", snr_shift=2.0, mix_ffn=True)


def load_ae():
    d = torch.load(OUT / "ae.pt")
    ae = AE()
    ae.load_state_dict(d["ae"])
    ae.eval()
    for p in ae.parameters():
        p.requires_grad_(False)
    return ae, d["scale"]


def new_net():
    from safetensors.torch import load_file
    net = TextToVideoUViT(LAT)
    w = load_file("generators/uvit/weights/small-gpu.safetensors")  # the generator's own text encoder
    text = {k[5:]: v.float() for k, v in w.items() if k.startswith("text.")}
    net.text.load_state_dict(text)
    for n, p in net.text.named_parameters():
        p.requires_grad_(n == "null_embed")
    return net


def train_dit(minutes, b=32, lr=5e-4):
    ae, scale = load_ae()
    diff = GaussianDiffusion.from_config(LAT)
    ck = OUT / "dit.pt"
    net = new_net()
    ema = copy.deepcopy(net)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    step, seconds = 0, 0.0
    if ck.exists():
        d = torch.load(ck)
        net.load_state_dict(d["net"])
        ema.load_state_dict(d["ema"])
        opt.load_state_dict(d["opt"])
        step, seconds = d["step"], d["seconds"]
    src = ClipSource("world", PIX, seed=23)
    t0, last = time.time(), time.time()
    g = torch.Generator().manual_seed(step)
    losses = []
    with flush_denormal():
        while time.time() - t0 < 60 * minutes:
            x, prompts = batch(src, step, b)
            with torch.no_grad():
                z0 = ae.encode(x) * scale  # [B, T, C', H', W']
            t = torch.randint(0, diff.num_timesteps, (b,), generator=g)
            noise = torch.randn(z0.shape, generator=g)
            tokens = tokenize(prompts, LAT.text_len)
            for gr in opt.param_groups:
                gr["lr"] = lr * min(1, (step + 1) / 200)
            with torch.autocast("cpu", torch.bfloat16):
                loss = diff.training_loss(lambda xt, tt: net(xt, tt, tokens), z0, t, noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                dec = min(0.999, (1 + step) / (10 + step))
                for pe, pn in zip(ema.parameters(), net.parameters()):
                    pe.lerp_(pn, 1 - dec)
            step += 1
            losses.append(float(loss.detach()))
            if step % 100 == 0:
                print(json.dumps({"dit_step": step, "loss": round(float(np.mean(losses)), 4),
                                  "min": round((seconds + time.time() - t0) / 60, 1)}), flush=True)
                losses = []
            if time.time() - last > 300:
                torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                            "seconds": seconds + time.time() - t0}, ck)
                last = time.time()
    torch.save({"net": net.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(), "step": step,
                "seconds": seconds + time.time() - t0}, ck)
    print(json.dumps({"dit_done": step, "clips": step * b}), flush=True)


def probe(guidance=2.0):
    from evalkit.metrics.generator_quality import QualityProbe

    ae, scale = load_ae()
    d = torch.load(OUT / "dit.pt")
    net = new_net()
    net.load_state_dict(d["ema"])
    net.eval()
    diff = GaussianDiffusion.from_config(LAT)

    def sample(prompts, seeds):
        clips = []
        for i in range(0, len(prompts), 16):
            ps, ss = prompts[i:i + 16], seeds[i:i + 16]
            tokens = tokenize(ps, LAT.text_len)
            with torch.no_grad(), flush_denormal():
                cond = net.text(tokens)
                uncond = net.text.null(len(ps), tokens.shape[1])
                eps = diff.eps_fn(cfg_eps_fn(net.denoise, cond, uncond, guidance))
                gens = [torch.Generator().manual_seed(int(s)) for s in ss]
                z = dpmpp_2m_sample(diff, eps, (len(ps), LAT.frames, LAT.channels, LAT.image_size, LAT.image_size),
                                    20, spacing="trailing", generator=gens, clip_x0=None)
                v = (ae.decode(z / scale).clamp(-1, 1) + 1) / 2
            clips += [Clip.from_tensor(x, fps=8.0, prompt=p) for x, p in zip(v, ps)]
        return clips

    r = QualityProbe().evaluate(sample)
    q = {k: (round(v["value"], 3) if v else None) for k, v in r["quality"].items()}
    print(json.dumps({"probe_step": d["step"], "clips_seen": d["step"] * 32, "guidance": guidance, "quality": q,
                      "fvd": round(r["fvd"]["value"], 1), "fvd_rr": round(r["fvd_real_vs_real"]["value"], 1)}),
          flush=True)


if __name__ == "__main__":
    args = [a for i, a in enumerate(sys.argv[1:], 1) if a != "--out-dir" and sys.argv[i - 1] != "--out-dir"]
    cmd = args[0] if args else "--help"
    if cmd not in ("ae", "dit", "probe") or (cmd != "probe" and len(args) < 2):
        # (--help, a misspelt command or none was taken as "probe", after making runs/ in the cwd)
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        raise SystemExit(0 if cmd in ("-h", "--help") else 2)
    OUT.mkdir(parents=True, exist_ok=True)
    if cmd == "ae":
        train_ae(float(args[1]))
    elif cmd == "dit":
        train_dit(float(args[1]))
    else:
        probe(float(args[1]) if len(args) > 1 else 2.0)
