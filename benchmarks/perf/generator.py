"""U-ViT speed: one JSON line per setting.

    python benchmarks/perf/generator.py [--presets tiny,small] [--quick] [--full] [--compile]
        [--batch N] [--sample-batch N] [--steps N] [--no-reference]

Per preset: training steps and clips per second (and, beside it, a plain reference: the same
network with attention written out as softmax(q k^T / sqrt(d)) v instead of the fused
scaled_dot_product_attention), peak memory, model FLOPs utilisation against a given peak; per
sampler and step count: sampled clips per second with classifier-free guidance. Each setting runs
in its own process so that its peak memory is its own. On CUDA, training runs under bf16 autocast
and MFU is against the H100's dense bf16 peak (the H200 has the same). Training steps run on
one pre-made batch: they time the model; the clips a core renders a second are a separate field
(the training loop renders them ahead in `--data-workers` processes). On a CPU, training is timed in fp32 and under bf16
autocast (`generator train --precision bf16`: oneDNN's bf16 matmuls on AMX / AVX512-BF16).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import platform
import queue
import re
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


def bench_train(preset: str, batch: int, steps: int, reference: bool, precision: str, compile_: bool, queue) -> None:
    """Optimiser steps on one pre-made batch (the model's speed: on a GPU the loop's inputs come from
    `--data-workers` processes, timed separately as `data_clips_per_s_per_core`)."""
    import torch

    from generators.uvit.configs import H100_BF16_PEAK_FLOPS, estimate_flops_per_sample, estimate_mfu
    from generators.uvit.diffusion import GaussianDiffusion
    from generators.uvit.train import ClipSource, TrainConfig, build_state, step_inputs, train_step

    torch.set_flush_denormal(True)  # as train() does (its own process: nothing else to restore)
    tc = TrainConfig(preset=preset, batch_size=batch, precision=precision)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    state = build_state(tc, device)
    cfg = state.net.cfg
    source, diffusion = ClipSource("world", cfg, 0), GaussianDiffusion.from_config(cfg)
    inputs = step_inputs(tc, cfg, source, diffusion.num_timesteps, 0)  # (loads the tokenizer)
    t = time.perf_counter()
    step_inputs(tc, cfg, source, diffusion.num_timesteps, 1)
    data_s = time.perf_counter() - t
    model = torch.compile(state.net) if compile_ else state.net
    ctx = plain_attention() if reference else contextmanager(lambda: (yield))()
    sync = _synchronizer(device)
    with ctx:
        t = time.perf_counter()
        for _ in range(3 if compile_ else 1):  # warm-up (compilation, autotuning, allocator)
            train_step(state, tc, source, diffusion, device, model, inputs=inputs)
        sync()
        warm_s = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(steps):
            train_step(state, tc, source, diffusion, device, model, inputs=inputs)
        sync()
        dt = (time.perf_counter() - t) / steps
    clips_s = batch / dt
    flops = estimate_flops_per_sample(cfg)
    # the network's own product: SDPA, except bf16 on a CPU (written out in bf16: generators/uvit/layers.py)
    bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    own = "bf16-matmul" if bf16 and device.type == "cpu" else "sdpa"
    queue.put({"benchmark": "generator-train", "preset": preset, "attention": "plain" if reference else own,
               "compile": compile_, "device": _device_name(device),
               "precision": "bf16-autocast" if bf16 else "fp32", "batch": batch, "steps_timed": steps,
               "steps_per_s": round(1 / dt, 3), "clips_per_s": round(clips_s, 2),
               "tokens_per_s": round(clips_s * cfg.seq_len, 1), "params_m": round(sum(
                   p.numel() for p in state.net.parameters()) / 1e6, 2),
               "gflop_per_clip": round(flops / 1e9, 2),
               "mfu_vs_h100_bf16": round(estimate_mfu(cfg, clips_s), 4) if device.type == "cuda" else None,
               "h100_bf16_peak_tflops": H100_BF16_PEAK_FLOPS / 1e12,
               "achieved_tflops": round(clips_s * flops / 1e12, 3), "warmup_s": round(warm_s, 1),
               "data_clips_per_s_per_core": round(batch / data_s, 1), "peak_mb": round(_peak_mb(device), 1)})


def _synchronizer(device):
    """Waits for the device's queued work (a GPU runs asynchronously; a CPU needs nothing)."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def _device_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def bench_sample(preset: str, sampler: str, steps: int, batch: int, bf16: bool, queue) -> None:
    import torch

    from generators.uvit.network import TextToVideoUViT
    from generators.uvit.configs import get_config

    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as UViTGenerator does (its own process)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = TextToVideoUViT(get_config(preset)).to(device).eval()
    prompts = ["a medium red ball falls and bounces on the floor, on a dark background"] * batch
    sync = _synchronizer(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        # warm-up on every device (kernels and the allocator on a GPU; on a CPU the first call's
        # one-time costs took 2.2 of a tiny model's 2.2 s, and sampling rates read low)
        net.sample(prompts, sampler=sampler, steps=2, guidance=3.0, seed=0)
        sync()
        t = time.perf_counter()
        net.sample(prompts, sampler=sampler, steps=steps, guidance=3.0, seed=0)
        sync()
        dt = time.perf_counter() - t
    queue.put({"benchmark": "generator-sample", "preset": preset, "sampler": sampler, "steps": steps,
               "guidance": 3.0, "device": _device_name(device), "batch": batch,
               "precision": "bf16-autocast" if bf16 else "fp32",
               "clips_per_s": round(batch / dt, 3), "peak_mb": round(_peak_mb(device), 1)})


def run(fn, *args) -> dict:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=fn, args=(*args, q))
    p.start()
    while True:  # a setting that crashes (out of memory, a compiler error) is a row, not a hang
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():
                out = {"benchmark": fn.__name__.replace("bench_", "generator-"), "args": [str(a) for a in args],
                       "error": f"exited with code {p.exitcode}"}
                break
    p.join()
    return out


def torch_cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--batch", type=int, default=16, help="training batch")
    ap.add_argument("--sample-batch", type=int, default=4)
    ap.add_argument("--steps", type=int, help="timed training steps (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="few steps, for a smoke run")
    ap.add_argument("--samplers", default="dpmpp-2m:20,ddim:50", help="SAMPLER:STEPS,... to time")
    ap.add_argument("--full", action="store_true", help="also DDPM at 250 steps")
    ap.add_argument("--compile", action="store_true", help="also time the torch.compile'd network")
    ap.add_argument("--no-reference", action="store_true", help="skip the plain-attention reference")
    a = ap.parse_args()
    # every preset and sampler checked before the first timing, not after minutes of them
    from generators.uvit.configs import PRESETS

    bad = [p for p in a.presets.split(",") if p not in PRESETS]
    if bad:
        ap.error(f"--presets: unknown {', '.join(bad)}; use {', '.join(PRESETS)}")
    if not re.fullmatch(r"[a-z0-9-]+:\d+(,[a-z0-9-]+:\d+)*", a.samplers or ""):
        ap.error(f"--samplers {a.samplers!r}: give SAMPLER:STEPS,... (e.g. dpmpp-2m:20,ddim:50)")
    if min(a.batch, a.sample_batch, a.steps or 1) < 1:
        ap.error("--batch, --sample-batch and --steps must be at least 1")
    machine = f"{platform.machine()} {os.cpu_count()} cpu, torch threads {torch_threads()}"
    steps = a.steps or (2 if a.quick else 5)
    cuda = torch_cuda_available()
    for preset in a.presets.split(","):
        settings = [(False, "auto", False)] + ([] if a.no_reference else [(True, "auto", False)])
        settings += [(False, "auto", True)] if a.compile else []
        # on CUDA "auto" is already bf16; on a CPU bf16 is its own setting, with its own reference
        settings += [] if cuda else [(False, "bf16", False)] + ([] if a.no_reference else [(True, "bf16", False)])
        for reference, precision, compile_ in settings:
            row = run(bench_train, preset, a.batch, steps, reference, precision, compile_)
            print(json.dumps({**row, "machine": machine}), flush=True)
        samplers = [(x.split(":")[0], int(x.split(":")[1])) for x in a.samplers.split(",") if x]
        for sampler, n in samplers + ([("ddpm", 250)] if a.full else []):
            n = max(2, n // 10) if a.quick else n
            for bf16 in (False, True) if cuda else (False,):
                row = run(bench_sample, preset, sampler, n, a.sample_batch, bf16)
                print(json.dumps({**row, "machine": machine}), flush=True)


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
