"""Real DDP (2 gloo processes on CPU, spawned): every public result of every metric class equals the
one-process result, with the data split unevenly and with one rank given nothing (session 33).

Before: only compute() synced; compute_with_ci(), per_clip(), protocol()'s n, features(),
compute_laws()/compute_pass_rate() and retrieval_with_ci() read the local rank's data, and a rank
with no samples crashed gloo's all-gather of the "cat" states (a 1-D float32 stand-in against
float64 [N, D] tensors)."""

from __future__ import annotations

import datetime
import os
import pickle
import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

N = 6  # clips (and feature rows per set)


def _data():
    from evalkit.world.clips import WorldConfig, make_clip

    clips = [make_clip("test", i, config=WorldConfig(frames=8, size=32)) for i in range(N)]
    videos = torch.stack([c.to_tensor() for c in clips])
    prompts = [c.prompt for c in clips]
    g = torch.Generator().manual_seed(0)
    real = torch.randn(N, 8, generator=g, dtype=torch.float64)
    fake = torch.randn(N, 8, generator=g, dtype=torch.float64) * 1.3 + 0.5
    frame_embeds = torch.randn(N, 4, 16, generator=g)  # CLIP embeddings given directly: no backbone
    text_embeds = frame_embeds.mean(1) + 0.8 * torch.randn(N, 16, generator=g)
    return videos, prompts, real, fake, frame_embeds, text_embeds


def _metrics():
    from evalkit.metrics.clip_alignment import CLIPAlignment
    from evalkit.metrics.flicker import TemporalFlicker, TemporalHFRatio
    from evalkit.metrics.fvd import FrechetVideoDistance, KernelVideoDistance, VideoPrecisionRecall
    from evalkit.metrics.physics import PhysicsPlausibility

    return {"flicker": TemporalFlicker(), "hf": TemporalHFRatio(), "physics": PhysicsPlausibility(),
            "fvd": FrechetVideoDistance(num_features=8, keep_features=True),
            "fvd_sums": FrechetVideoDistance(num_features=8), "kvd": KernelVideoDistance(),
            "pr": VideoPrecisionRecall(k=2), "clip": CLIPAlignment()}


def _feed(name, m, idx, data) -> None:
    videos, prompts, real, fake, fe, te = data
    if not idx:
        return
    if name in ("flicker", "hf"):
        m.update(videos[idx])
    elif name == "physics":
        m.update(videos[idx], [prompts[i] for i in idx])
    elif name == "clip":
        m.update(prompts=[prompts[i] for i in idx], frame_embeds=fe[idx], text_embeds=te[idx])
    else:
        m.update(real[idx], real=True)
        m.update(fake[idx], real=False)


def _est(e):
    return (e.value, e.ci_low, e.ci_high, e.n)


def _results(name, m) -> dict:
    """Every public result method of the metric, as plain numbers."""
    out = {"compute": m.compute()}
    if name in ("flicker", "hf", "physics"):
        out.update(ci=_est(m.compute_with_ci(n_boot=50)), per_clip=m.per_clip(), n=m.protocol()["n"])
    if name == "physics":
        out["laws"] = {k: _est(v) for k, v in m.compute_laws().items()}
        out["pass_rate"] = _est(m.compute_pass_rate())
    if name == "fvd":
        out["ci"] = _est(m.compute_with_ci(n_boot=20))
    if name in ("fvd", "fvd_sums", "kvd", "pr"):
        p = m.protocol()
        out["n"] = (p["n_real"], p["n_fake"])
    if name == "kvd":
        out.update(ci=_est(m.compute_with_ci(n_boot=20)), features=m.features())
    if name == "pr":
        out["ci"] = [_est(e) for e in m.compute_with_ci(n_boot=10)]
    if name == "clip":
        out.update(ci=_est(m.compute_with_ci(n_boot=50)), per_clip=m.per_clip(), ranks=m.ranks(),
                   n_prompts=m.n_prompts(), retrieval={k: _est(v) for k, v in m.retrieval_with_ci().items()})
    return out


def _local_n(name, m) -> int:
    """Clips this rank holds in its own (unsynced) states."""
    if name in ("flicker", "hf", "physics", "clip"):
        return int(m.count)
    if name == "fvd_sums":
        return int(m.real_n)
    state = m.real_features
    return sum(len(t) for t in state) if isinstance(state, list) else len(state)


SPLITS = (4, 6)  # clips on rank 0 (the rest on rank 1): uneven, and rank 1 with none


def _worker(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2, timeout=datetime.timedelta(seconds=60))
    try:
        data = _data()
        res = {}
        for split in SPLITS:
            idx = list(range(split)) if rank == 0 else list(range(split, N))
            for name, m in _metrics().items():
                _feed(name, m, idx, data)
                r = res[split, name] = _results(name, m)
                # the rank's own states come back after every synced call, so it can go on accumulating
                r["local_n"], r["synced"] = _local_n(name, m), m._is_synced
        with open(f"{out}.{rank}", "wb") as f:
            pickle.dump(res, f)
        # both ranks done before either tears the group down: a rank that left first closed the
        # gloo pair under the other's last collective, which then aborted ("terminate called")
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _assert_close(a, b, what):
    if isinstance(b, dict):
        assert isinstance(a, dict) and a.keys() == b.keys(), f"{what}: {a} vs {b}"
        for k in b:
            _assert_close(a[k], b[k], f"{what}[{k}]")
    elif isinstance(b, (list, tuple)) and not np.isscalar(b):
        assert len(a) == len(b), f"{what}: {a} vs {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_close(x, y, f"{what}[{i}]")
    else:
        x = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a, dtype=np.float64)
        y = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b, dtype=np.float64)
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-12, err_msg=what)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_public_result_under_ddp_equals_one_process(tmp_path):
    """Ranks get 4 and 2 clips, then 6 and none; each rank's every result equals one process's."""
    data = _data()
    single = {}
    for name, m in _metrics().items():
        _feed(name, m, list(range(N)), data)
        single[name] = _results(name, m)
    out = str(tmp_path / "res")
    mp.spawn(_worker, args=(_port(), out), nprocs=2, join=True)
    for rank in (0, 1):
        with open(f"{out}.{rank}", "rb") as f:
            got = pickle.load(f)
        for split in SPLITS:
            local = split if rank == 0 else N - split
            for name, expected in single.items():
                res, what = got[split, name], f"rank {rank} of split {split}/{N - split}: {name}"
                assert res.pop("local_n") == local and res.pop("synced") is False, what
                _assert_close(res, expected, what)
