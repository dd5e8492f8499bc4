"""U-ViT speed: one JSON line per setting.

    python benchmarks/perf/generator.py [--presets tiny,small] [--quick] [--full]

Per preset: training steps and clips per second (and, beside it, a plain reference: the same
network with attention written out as softmax(q k^T / sqrt(d)) v instead of the fused
scaled_dot_product_attention), peak memory, model FLOPs utilisation against a given peak; per
sampler and step count: sampled clips per second with classifier-free guidance. Each setting runs
in its own process so that its peak memory is its own. On CUDA, training runs under bf16 autocast
and MFU is against the H100's dense bf16 peak. On a CPU, training is timed in fp32 and under bf16
autocast (`generator train --precision bf16`: oneDNN's bf16 matmuls on AMX / AVX512-BF16).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import resource
import time
from contextlib import contextmanager


@contextmanager
def plain_attention():
    """Swap the fused attention for the textbook one (the unfused reference)."""
    import torch

    from generators.uvit.layers import Attention

    fused = Attention.attend

    def attend(self, q, k, v, mask=None):
        w = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])  # [B, h, S, S]
        if mask is not None:
            w = w.masked_fill(~mask, float("-inf"))
        o = torch.softmax(w.float(), dim=-1).to(v.dtype) @ v  # [B, h, S, dh]
        B, h, S, dh = o.shape
        return o.transpose(1, 2).reshape(B, S, h * dh)

    Attention.attend = attend
    try:
        yield
    finally:
        Attention.attend = fused


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def bench_train(preset: str, batch: int, steps: int, reference: bool, precision: str, queue) -> None:
    import torch

    from generators.uvit.configs import estimate_flops_per_sample, estimate_mfu
    from generators.uvit.train import ClipSource, TrainConfig, build_state, train_step
    from generators.uvit.diffusion import GaussianDiffusion

    torch.set_flush_denormal(True)  # as train() does (its own process: nothing else to restore)
    tc = TrainConfig(preset=preset, batch_size=batch, precision=precision)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    state = build_state(tc, device)
    cfg = state.net.cfg
    source, diffusion = ClipSource("world", cfg, 0), GaussianDiffusion.from_config(cfg)
    ctx = plain_attention() if reference else contextmanager(lambda: (yield))()
    with ctx:
        train_step(state, tc, source, diffusion, device)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(steps):
            train_step(state, tc, source, diffusion, device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = (time.perf_counter() - t) / steps
    clips_s = batch / dt
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    queue.put({"benchmark": "generator-train", "preset": preset, "attention": "plain" if reference else "sdpa",
               "device": str(device), "precision": "bf16-autocast" if bf16 else "fp32", "batch": batch, "steps_per_s": round(1 / dt, 3),
               "clips_per_s": round(clips_s, 2), "tokens_per_s": round(clips_s * cfg.seq_len, 1),
               "gflop_per_clip": round(estimate_flops_per_sample(cfg) / 1e9, 2),
               "mfu_vs_h100_bf16": round(estimate_mfu(cfg, clips_s), 5) if device.type == "cuda" else None,
               "achieved_gflops": round(clips_s * estimate_flops_per_sample(cfg) / 1e9, 1),
               "peak_mb": round(_peak_mb(device), 1)})


def bench_sample(preset: str, sampler: str, steps: int, batch: int, queue) -> None:
    import torch

    from generators.uvit.network import TextToVideoUViT
    from generators.uvit.configs import get_config

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as UViTGenerator does (its own process)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = TextToVideoUViT(get_config(preset)).to(device).eval()
    prompts = ["a medium red ball falls and bounces on the floor, on a dark background"] * batch
    t = time.perf_counter()
    net.sample(prompts, sampler=sampler, steps=steps, guidance=3.0, seed=0)
    dt = time.perf_counter() - t
    queue.put({"benchmark": "generator-sample", "preset": preset, "sampler": sampler, "steps": steps,
               "guidance": 3.0, "device": str(device), "batch": batch,
               "clips_per_s": round(batch / dt, 3), "peak_mb": round(_peak_mb(device), 1)})


def run(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    out = q.get()
    p.join()
    return out


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    ap.add_argument("--full", action="store_true", help="also DDPM at 250 steps")
    a = ap.parse_args()
    machine = f"{platform.machine()} {os.cpu_count()} cpu"
    steps = 2 if a.quick else 5
    for preset in a.presets.split(","):
        for reference, precision in ((False, "auto"), (True, "auto"), (False, "bf16")):
            if precision == "bf16" and torch_cuda_available():
                continue  # "auto" is already bf16 there
            row = run(bench_train, preset, a.batch, steps, reference, precision)
            print(json.dumps({**row, "machine": machine}), flush=True)
        settings = [("dpmpp-2m", 20), ("ddim", 50)] + ([("ddpm", 250)] if a.full else [])
        for sampler, n in settings:
            n = max(2, n // 10) if a.quick else n
            print(json.dumps({**run(bench_sample, preset, sampler, n, 4), "machine": machine}), flush=True)


if __name__ == "__main__":
    main()
