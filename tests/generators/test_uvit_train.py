"""Training resumes exactly, DDP equals one process of the same global batch, checkpoints
load as generators, and bad checkpoints are one-line errors."""

from __future__ import annotations

import os
import socket
import warnings

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from evalkit.errors import BadInputError, MissingResourceError
from generators.uvit.generate import UViTGenerator, export_weights, sha256_file
from generators.uvit.train import TrainConfig, load_checkpoint, train

TINY = TrainConfig(preset="tiny", batch_size=4, max_steps=4, warmup_steps=2, sample_every_steps=10**9,
                   checkpoint_every_minutes=10**6)



def params(state_or_net):
    net = getattr(state_or_net, "net", state_or_net)
    return torch.cat([p.detach().flatten() for p in net.parameters()])


def test_resume_is_exact(tmp_path):
    full = train(TINY, tmp_path / "full.pt", progress=False, log_mlflow=False)
    half = TrainConfig(**{**TINY.__dict__, "max_steps": 2})
    train(half, tmp_path / "split.pt", progress=False, log_mlflow=False)
    resumed = train(TINY, tmp_path / "split.pt", progress=False, log_mlflow=False)
    assert full.step == resumed.step == 4 and full.clips_seen == resumed.clips_seen == 16
    assert torch.equal(params(full), params(resumed))
    assert torch.equal(params(full.ema), params(resumed.ema))
    state, tc = load_checkpoint(tmp_path / "split.pt")
    assert state.step == 4 and tc.preset == "tiny" and torch.equal(params(state), params(full))


def test_frame_window_steps_are_seeded_and_resume_exactly(tmp_path):
    """Joint image-video training: a step is a window step by (seed, step), each clip gives one
    window of whole tubelets at a seeded offset, and a resumed run still matches an uninterrupted one."""
    from dataclasses import replace

    from generators.uvit.configs import get_config
    from generators.uvit.train import frame_windows

    tc = replace(TINY, overrides={"temporal_patch": 2, "frames": 8}, window_prob=0.5, window_frames=2)
    cfg = get_config("tiny", temporal_patch=2, frames=8)
    video = torch.rand(4, 8, 3, 16, 16)
    kinds = []
    for step in range(12):
        idx = [step * 4 + j for j in range(4)]
        v, off = frame_windows(tc, cfg, step, video, idx)
        assert torch.equal(v, frame_windows(tc, cfg, step, video, idx)[0])
        kinds.append(off is not None)
        if off is not None:
            assert v.shape == (4, 2, 3, 16, 16) and all(o % 2 == 0 and 0 <= o <= 6 for o in off.tolist())
            assert all(torch.equal(v[j], video[j, o:o + 2]) for j, o in enumerate(off.tolist()))
        else:
            assert v is video
    assert 2 <= sum(kinds) <= 10, kinds  # both kinds occur at p = 0.5
    with pytest.raises(BadInputError, match="window_frames"):
        frame_windows(replace(tc, window_prob=1.0, window_frames=3), cfg, 0, video, [0, 1, 2, 3])
    full = train(tc, tmp_path / "full.pt", progress=False, log_mlflow=False)
    train(replace(tc, max_steps=2), tmp_path / "split.pt", progress=False, log_mlflow=False)
    resumed = train(tc, tmp_path / "split.pt", progress=False, log_mlflow=False)
    assert torch.equal(params(full), params(resumed))


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    train(TrainConfig(**{**TINY.__dict__, "max_steps": 3, "device": "cpu"}), out, resume=False,
          progress=False, log_mlflow=False)


def test_ddp_two_gloo_processes_match_one_process(tmp_path):
    single = train(TrainConfig(**{**TINY.__dict__, "max_steps": 3}), tmp_path / "one.pt", progress=False,
                   log_mlflow=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    ddp, _ = load_checkpoint(tmp_path / "ddp.pt")
    assert ddp.step == 3
    torch.testing.assert_close(params(ddp), params(single), rtol=1e-5, atol=1e-6)
    assert not torch.equal(params(single), params(load_checkpoint(tmp_path / "one.pt")[0].ema))


def test_training_logs_learning_curve_to_mlflow(mlflow_store, tmp_path):
    from mlflow.tracking import MlflowClient

    tc = TrainConfig(**{**TINY.__dict__, "max_steps": 4, "log_every_steps": 2, "sample_every_steps": 4})
    train(tc, tmp_path / "m.pt", progress=False)
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs([client.get_experiment_by_name("evalkit-generator-train").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [2, 4]
    assert {"lr", "clips_per_s", "cpu_minutes"} <= set(run.data.metrics)
    assert run.data.params["train.preset"] == "tiny"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "samples")] == ["samples/step-0000004.png"]


def test_exported_weights_generate_deterministically_with_protocol(tmp_path):
    train(TINY, tmp_path / "g.pt", progress=False, log_mlflow=False)
    st = export_weights(tmp_path / "g.pt", tmp_path / "g.safetensors")
    gen = UViTGenerator(str(st), sampler="ddim", steps=4, guidance=2.0)
    proto = gen.protocol()
    assert proto["weights_sha256"] == sha256_file(st) and proto["steps"] == 4 and proto["preset"] == "tiny"
    assert "uncond + s * (cond - uncond)" in proto["guidance_convention"]
    prompt = "a small red ball rests still, on a dark background"
    a, b = gen.generate([prompt, prompt], [1, 2])
    assert a.frames.shape == (4, 16, 16, 3) and a.frames.dtype == np.uint8
    assert np.array_equal(a.frames, gen.generate([prompt], [1])[0].frames)
    assert not np.array_equal(a.frames, b.frames)
    # The .pt training checkpoint's EMA weights give the same clips (up to the fp16 export).
    from_pt = UViTGenerator(str(tmp_path / "g.pt"), sampler="ddim", steps=4, guidance=2.0)
    assert np.abs(from_pt.generate([prompt], [1])[0].frames.astype(int) - a.frames).max() <= 8


def test_bf16_sampling_is_recorded_and_close_to_fp32(tmp_path):
    """`precision="bf16"` samples the network under bf16 autocast (about 1.8x faster on this CPU,
    several times on a GPU, where it is the default); the clips stay near the fp32 ones and the
    protocol says which it was."""
    import torch

    from generators.training import pick_device

    train(TINY, tmp_path / "g.pt", progress=False, log_mlflow=False)
    st = export_weights(tmp_path / "g.pt", tmp_path / "g.safetensors")
    prompt = "a small red ball rests still, on a dark background"
    fp32 = UViTGenerator(str(st), sampler="ddim", steps=4, guidance=2.0)
    bf16 = UViTGenerator(str(st), sampler="ddim", steps=4, guidance=2.0, precision="bf16")
    assert fp32.protocol()["precision"] == "fp32" and bf16.protocol()["precision"] == "bf16-autocast"
    a, b = fp32.generate([prompt], [1])[0].frames, bf16.generate([prompt], [1])[0].frames
    assert b.dtype == np.uint8 and b.shape == a.shape
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 4 and np.array_equal(b, bf16.generate([prompt], [1])[0].frames)
    assert bf16.device == pick_device("cpu")
    if not torch.cuda.is_available():
        assert UViTGenerator(str(st), device="auto").device.type == "cpu"
        with pytest.raises(BadInputError, match="--device cuda: no CUDA device"):
            UViTGenerator(str(st), device="cuda")
    with pytest.raises(BadInputError, match="--precision fp16"):
        UViTGenerator(str(st), precision="fp16")


def test_guidance_defaults_to_the_checkpoints_measured_scale(tmp_path):
    import json
    import shutil

    from generators.uvit.generate import DEFAULT_GUIDANCE, SHIPPED

    reg = json.loads((SHIPPED / "registry.json").read_text())
    tuned = next(name for name, e in reg.items() if "guidance" in e.get("sampling", {}))
    assert UViTGenerator(tuned).protocol()["guidance"] == reg[tuned]["sampling"]["guidance"] != DEFAULT_GUIDANCE
    # found by the weights' SHA-256, wherever the file lives; an explicit scale wins
    copy = shutil.copy(SHIPPED / f"{tuned}.safetensors", tmp_path / "copy.safetensors")
    assert UViTGenerator(str(copy)).guidance == reg[tuned]["sampling"]["guidance"]
    assert UViTGenerator(str(copy), guidance=4.5).guidance == 4.5
    # a checkpoint without a measured scale takes the project's default
    train(TINY, tmp_path / "g.pt", progress=False, log_mlflow=False)
    plain = UViTGenerator(str(export_weights(tmp_path / "g.pt", tmp_path / "g.safetensors")), steps=4)
    assert plain.guidance == DEFAULT_GUIDANCE and plain.protocol()["guidance_rescale"] == 0.0
    # guidance rescale is recorded and reaches the sampler; out of [0, 1] it is a one-line error
    rescaled = UViTGenerator(str(tmp_path / "g.safetensors"), steps=4, guidance_rescale=0.7)
    assert rescaled.protocol()["guidance_rescale"] == 0.7
    a, b = (g.generate(["a red ball falls"], [3])[0].frames for g in (plain, rescaled))
    assert a.shape == b.shape and not np.array_equal(a, b)
    with pytest.raises(BadInputError, match="guidance-rescale"):
        UViTGenerator(str(tmp_path / "g.safetensors"), guidance_rescale=1.5)
    # a guidance interval is recorded only when set (earlier run keys hold), and reaches the sampler;
    # one covering the whole chain samples exactly as plain guidance
    assert "guidance_interval" not in plain.protocol()
    late = UViTGenerator(str(tmp_path / "g.safetensors"), steps=4, guidance_interval="0:0.5")
    whole = UViTGenerator(str(tmp_path / "g.safetensors"), steps=4, guidance_interval=(0.0, 1.0))
    assert late.protocol()["guidance_interval"] == [0.0, 0.5]
    c, d = (g.generate(["a red ball falls"], [3])[0].frames for g in (late, whole))
    assert np.array_equal(d, a) and not np.array_equal(c, a)
    assert "guidance_interval" not in UViTGenerator(str(tmp_path / "g.safetensors"), guidance_interval="none").protocol()
    for bad in ("0.7:0.2", "half"):
        with pytest.raises(BadInputError, match="guidance interval"):
            UViTGenerator(str(tmp_path / "g.safetensors"), guidance_interval=bad)


def test_bad_checkpoints_and_prompts_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(BadInputError, match="corrupt"):
        UViTGenerator(str(bad))
    with pytest.raises(MissingResourceError):
        UViTGenerator(str(tmp_path / "none.pt"))
    with pytest.raises(MissingResourceError, match="unknown preset"):  # a named model not there: exit 3
        UViTGenerator("gigantic")
    with pytest.raises(BadInputError, match="is a folder"):  # a folder for the file: exit 2
        UViTGenerator(str(tmp_path))
    with pytest.raises(BadInputError, match="corrupt"):
        load_checkpoint(bad)
    (tmp_path / "bad.pt").write_bytes(b"\x80\x04garbage")  # a raw pickle's header, then junk
    with pytest.raises(BadInputError, match="not a PyTorch checkpoint") as e, \
            warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_checkpoint(tmp_path / "bad.pt")
    assert "weights_only" not in str(e.value) and not seen  # one line, no torch warning before it
    train(TINY, tmp_path / "t.pt", progress=False, log_mlflow=False)
    gen = UViTGenerator(str(tmp_path / "t.pt"), steps=2)
    with pytest.raises(BadInputError, match="tokens"):
        gen.generate(["a red ball " * 20], [0])


def test_warm_start_from_exported_weights(tmp_path):
    train(TINY, tmp_path / "a.pt", progress=False, log_mlflow=False)
    st = export_weights(tmp_path / "a.pt", tmp_path / "a.safetensors")
    tc = TrainConfig(**{**TINY.__dict__, "max_steps": 1, "init_from": str(st)})
    from generators.uvit.train import build_state
    from generators.uvit.generate import load_network

    state = build_state(tc, torch.device("cpu"))
    torch.testing.assert_close(params(state), params(load_network(st)))
    with pytest.raises(BadInputError, match="preset"):
        build_state(TrainConfig(**{**tc.__dict__, "preset": "small"}), torch.device("cpu"))


def test_training_and_sampling_leave_subnormal_floats_alone(tmp_path):
    """Flushing subnormals speeds CPU training 6x, but it is processor state: it must not leak
    into the caller (hypothesis, numpy code relying on IEEE subnormals)."""
    tiny = np.array([1e-310])  # a float64 subnormal
    assert tiny[0] != 0
    train(TINY, tmp_path / "f.pt", progress=False, log_mlflow=False)
    UViTGenerator(str(tmp_path / "f.pt"), steps=2).generate(["a small red ball rests still, on a dark background"], [0])
    assert (np.array([1e-310]) * 1.0)[0] != 0 and torch.tensor([1e-40])[0].item() != 0


def test_cli_recipe_flags_reach_the_checkpoint(tmp_path, monkeypatch):
    """--snr-shift, --min-snr-gamma and --warmup-steps are recorded in the checkpoint they train."""
    from evalkit.cli import main
    from generators.uvit.train import load_checkpoint

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    out = tmp_path / "t.pt"
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "2", "--batch-size", "2",
                 "--snr-shift", "3", "--min-snr-gamma", "0", "--warmup-steps", "1", "--out", str(out)]) == 0
    state, tc = load_checkpoint(out)
    assert state.net.cfg.snr_shift == 3.0 and tc.min_snr_gamma is None and tc.warmup_steps == 1
    assert main(["generator", "train", "--preset", "tiny", "--snr-shift", "-1", "--out", str(tmp_path / "x.pt")]) == 2
    assert main(["generator", "train", "--preset", "tiny", "--window-prob", "0.5", "--window-frames", "4",
                 "--out", str(tmp_path / "x.pt")]) == 2  # tiny has 4 frames: a window must be shorter
    assert not (tmp_path / "x.pt").exists()
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "2", "--batch-size", "2",
                 "--window-prob", "1", "--window-frames", "2", "--out", str(tmp_path / "w.pt")]) == 0
    assert load_checkpoint(tmp_path / "w.pt")[1].window_prob == 1.0
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--mix-ffn",
                 "--head-channels", "4", "--out", str(tmp_path / "m.pt")]) == 0
    cfg = load_checkpoint(tmp_path / "m.pt")[0].net.cfg
    assert cfg.mix_ffn and cfg.head_channels == 4
    assert main(["generator", "train", "--preset", "gan-small", "--mix-ffn", "--out", str(tmp_path / "g.pt")]) == 2
    assert main(["generator", "train", "--preset", "vae-small", "--data-workers", "2", "--out", str(tmp_path / "g.pt")]) == 2
    assert not (tmp_path / "g.pt").exists()
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--data-workers",
                 "1", "--out", str(tmp_path / "d.pt")]) == 0
    assert load_checkpoint(tmp_path / "d.pt")[1].data_workers == 1
    # the object-weighted loss is recorded and changes what a step learns (same seed, same batch)
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "1", "--batch-size", "2", "--object-weight",
                 "4", "--out", str(tmp_path / "o.pt")]) == 0
    assert main(["generator", "train", "--preset", "tiny", "--max-steps", "1", "--batch-size", "2",
                 "--out", str(tmp_path / "p.pt")]) == 0
    weighted, plain = load_checkpoint(tmp_path / "o.pt"), load_checkpoint(tmp_path / "p.pt")
    assert weighted[1].object_weight == 4.0 and plain[1].object_weight == 1.0
    assert not torch.equal(params(weighted[0]), params(plain[0]))
    assert main(["generator", "train", "--preset", "tiny", "--object-weight", "0.5", "--out", str(tmp_path / "y.pt")]) == 2
    assert main(["generator", "train", "--preset", "gan-small", "--object-weight", "2", "--out", str(tmp_path / "y.pt")]) == 2
    assert not (tmp_path / "y.pt").exists()


def test_object_weights_mark_saturated_objects_and_their_rim_only():
    from evalkit.world import WorldConfig, make_clip
    from generators.uvit.diffusion import to_model_space
    from generators.uvit.train import object_weights

    x = -torch.ones(1, 2, 3, 8, 8)  # a dark grey clip
    x[:, :, :, :, 4:] = torch.linspace(-1, 1, 4)  # a grey gradient: no spread between channels
    x[0, 1, 0, 2:4, 2:4] = 0.7  # a 2x2 reddish object in frame 1
    w = object_weights(x, 4.0)
    assert w.shape == (1, 2, 1, 8, 8) and torch.all(w[0, 0] == 1.0)
    assert torch.all(w[0, 1, 0, 1:5, 1:5] == 4.0) and int((w == 4.0).sum()) == 16  # object + 1-pixel rim
    clip = make_clip("train", 3, 0, WorldConfig(frames=4, size=32, noise=2.0))
    share = float((object_weights(to_model_space(clip.to_tensor())[None], 4.0) > 1).float().mean())
    assert 0.005 < share < 0.5  # a world clip's objects, not its background or sensor noise


def test_bf16_autocast_on_the_cpu_trains_and_a_resume_may_change_precision(tmp_path):
    """`precision="bf16"` runs the steps under CPU bf16 autocast with fp32 weights: the loss stays
    finite and close to the fp32 run's, the weights move differently (so autocast was really on),
    and resuming an fp32 checkpoint with bf16 takes the caller's precision."""
    from dataclasses import replace

    from generators.uvit.train import autocast_for

    with autocast_for("bf16", torch.device("cpu")):
        assert torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4)).dtype == torch.bfloat16
    with autocast_for("auto", torch.device("cpu")):
        assert torch.nn.functional.linear(torch.randn(2, 4), torch.randn(3, 4)).dtype == torch.float32
    with pytest.raises(BadInputError):
        autocast_for("fp8", torch.device("cpu"))
    fp32 = train(TINY, tmp_path / "a.pt", progress=False, log_mlflow=False)
    bf16 = train(replace(TINY, precision="bf16"), tmp_path / "b.pt", progress=False, log_mlflow=False)
    assert all(p.dtype == torch.float32 for p in bf16.net.parameters())
    assert torch.isfinite(params(bf16)).all() and not torch.equal(params(fp32), params(bf16))
    torch.testing.assert_close(params(bf16), params(fp32), rtol=0, atol=0.05)
    train(replace(TINY, max_steps=2), tmp_path / "c.pt", progress=False, log_mlflow=False)
    train(replace(TINY, precision="bf16"), tmp_path / "c.pt", progress=False, log_mlflow=False)
    state, tc = load_checkpoint(tmp_path / "c.pt")
    assert state.step == 4 and tc.precision == "bf16"


def test_a_checkpoint_grows_into_local_mixing_but_not_into_another_shape(tmp_path):
    """--mix-ffn / --head-channels may start from a checkpoint without them (the new parts start at
    zero, so the first step's network is that checkpoint); a checkpoint of another width is refused
    with one line, and so is shrinking a grown checkpoint back."""
    from generators.uvit.generate import load_network
    from generators.uvit.train import build_state

    train(TINY, tmp_path / "a.pt", progress=False, log_mlflow=False)
    st = export_weights(tmp_path / "a.pt", tmp_path / "a.safetensors")
    grown = TrainConfig(**{**TINY.__dict__, "overrides": {"mix_ffn": True, "head_channels": 4}, "init_from": str(st)})
    state = build_state(grown, torch.device("cpu"))
    start = load_network(st)
    net = state.net.eval()
    x = torch.randn(1, 4, 3, 16, 16)
    tok = net.tokenize(["a red ball"])
    with torch.no_grad():
        torch.testing.assert_close(net(x, torch.tensor([400]), tok), start(x, torch.tensor([400]), tok))
    with pytest.raises(BadInputError, match="do not fit"):
        build_state(TrainConfig(**{**grown.__dict__, "overrides": {"width": 32}}), torch.device("cpu"))
    train(TrainConfig(**{**grown.__dict__, "max_steps": 1}), tmp_path / "g.pt", progress=False, log_mlflow=False)
    back = export_weights(tmp_path / "g.pt", tmp_path / "g.safetensors")
    with pytest.raises(BadInputError, match="do not fit"):
        build_state(TrainConfig(**{**TINY.__dict__, "init_from": str(back)}), torch.device("cpu"))


def test_inputs_made_ahead_by_workers_train_the_same_weights(tmp_path):
    """Data workers (`--data-workers`) make each step's inputs ahead in spawned processes; the
    weights, EMA and metrics log must not depend on how many there are, window steps included."""
    import json
    from dataclasses import replace

    tc = replace(TINY, window_prob=0.5, window_frames=2)
    inline = train(replace(tc, data_workers=0), tmp_path / "inline.pt", progress=False, log_mlflow=False)
    log = tmp_path / "m.jsonl"
    ahead = train(replace(tc, data_workers=2, log_every_steps=2), tmp_path / "ahead.pt", progress=False,
                  log_mlflow=False, metrics_jsonl=log)
    assert ahead.step == inline.step == 4
    assert torch.equal(params(inline), params(ahead)) and torch.equal(params(inline.ema), params(ahead.ema))
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 4] and all(r["loss"] > 0 and r["clips_per_s"] > 0 for r in rows)


def test_prefetcher_serves_steps_in_order_only():
    from generators.prefetch import Prefetcher

    with Prefetcher(lambda s: s * s, 3, 10) as p:
        assert [p.get(s) for s in (3, 4, 5)] == [9, 16, 25]
        with pytest.raises(ValueError, match="next one is 6"):
            p.get(8)


@pytest.mark.slow  # compiling the tiny network takes ~45 s on the 2-core machine
def test_compiled_training_runs_and_matches_eager_closely(tmp_path):
    """`--compile` trains through the compiled module (a compiled module has no truth value, so
    selecting it with `model or state.net` crashed on the first step before session 9)."""
    from dataclasses import replace

    eager = train(replace(TINY, max_steps=2), tmp_path / "e.pt", progress=False, log_mlflow=False)
    compiled = train(replace(TINY, max_steps=2, compile=True), tmp_path / "c.pt", progress=False, log_mlflow=False)
    assert compiled.step == 2
    assert torch.allclose(params(eager), params(compiled), atol=1e-4)


def test_trains_on_a_folder_of_any_videos(tmp_path, real_videos_dir):
    """--data DIR took only clips at the preset's exact shape; one's own footage (any size, any
    frame rate) was refused. Now each video is cut into windows of the preset's frames at its
    frame rate, centre-cropped square and resized; clips at the exact shape pass unchanged."""
    import shutil

    from evalkit.video import read_video, write_video
    from evalkit.world import WorldConfig
    from evalkit.world.export import render_folder
    from generators.clip_windows import frame_stride
    from generators.training import ClipSource
    from generators.uvit.configs import get_config

    cfg = get_config("tiny")  # 4 frames of 16x16, at the world's 8 fps
    own = tmp_path / "own"
    own.mkdir()
    shutil.copy(real_videos_dir / "carphone_pristine.mp4", own / "a_man_on_the_phone.mp4")  # 176x144, 29.97 fps
    clip = read_video(real_videos_dir / "bikes.mp4", max_frames=30)
    write_video(own / "bikes_portrait.mkv", clip.frames[:, :, 200:330], fps=25)  # 130x272, 25 fps: 10 frames at 8 fps
    write_video(own / "too_short.mp4", clip.frames[:5], fps=25)  # 2 frames at 8 fps: no window
    src = ClipSource(str(own), cfg, 0)
    assert frame_stride(30000 / 1001, 8) == 4 and frame_stride(25, 8) == 3
    assert len(src.folder) == 120 // 4 // 4 + 30 // 3 // 4 and src.skipped_short == 1
    video, prompt = src.get(0)
    assert video.shape == (4, 3, 16, 16) and 0 <= video.min() and video.max() <= 1
    assert {p for _, p in src.folder} == {"a man on the phone", "bikes portrait"}
    # the world's own clips, already at the preset's shape, are read exactly as they are
    render_folder(tmp_path / "w", split="train", n=3, seed=0, config=WorldConfig(frames=4, size=16), progress=False)
    world = ClipSource(str(tmp_path / "w"), cfg, 0)
    from evalkit.clipset import iter_clips

    assert [torch.equal(a, c.to_tensor()) for (a, _), c in zip(world.folder, iter_clips(tmp_path / "w"))] == [True] * 3
    train(TrainConfig(**{**TINY.__dict__, "data": str(own), "max_steps": 2}), tmp_path / "own.pt", progress=False,
          log_mlflow=False)
    assert load_checkpoint(tmp_path / "own.pt")[0].step == 2
    (own / "a_man_on_the_phone.mp4").unlink()
    (own / "bikes_portrait.mkv").unlink()
    with pytest.raises(BadInputError, match="no video has 4 frames at 8 fps"):
        ClipSource(str(own), cfg, 0)


def test_a_resume_refuses_flags_its_run_was_not_trained_with(tmp_path, monkeypatch, capsys):
    """A resume kept the checkpoint's settings and dropped another --preset, --lr or --seed
    without a word ("trained uvit:small"); a --max-steps below its step trained nothing and
    reported success; NaN and inf learning rates ran (inf wrote NaN weights)."""
    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT
    from generators.uvit.train import load_checkpoint

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    out = tmp_path / "t.pt"
    base = ["generator", "train", "--batch-size", "2", "--out", str(out)]
    assert main([*base, "--preset", "tiny", "--max-steps", "2", "--lr", "0.002"]) == 0
    before = out.read_bytes()
    capsys.readouterr()
    for extra, says in ((["--preset", "small", "--max-steps", "4"], "preset 'tiny' (asked: 'small')"),
                        (["--preset", "tiny", "--lr", "0.01", "--max-steps", "4"], "lr 0.002 (asked: 0.01)"),
                        (["--preset", "tiny", "--seed", "5", "--max-steps", "4"], "seed 0 (asked: 5)"),
                        (["--preset", "tiny", "--max-steps", "1"], "is at step 2 already")):
        assert main([*base, *extra]) == EXIT_BAD_INPUT, extra
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
    assert out.read_bytes() == before  # nothing trained, nothing rewritten
    # flags the run was trained with, or left out, resume it
    assert main([*base, "--preset", "tiny", "--lr", "0.002", "--max-steps", "3"]) == 0
    assert load_checkpoint(out)[0].step == 3
    for lr in ("nan", "inf"):
        assert main([*base[:-1], str(tmp_path / f"{lr}.pt"), "--preset", "tiny", "--max-steps", "1", "--lr", lr]) == 2
        assert not (tmp_path / f"{lr}.pt").exists()


def test_an_unwritable_out_is_refused_before_any_training(tmp_path, monkeypatch, capsys):
    """A folder that cannot be written failed the run at its first checkpoint (minutes in, an
    internal error, the work lost); export and pretrain-text failed the same way at the end."""
    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'm.db'}")
    nowhere = "/proc/evalkit-cannot-write-here"  # the kernel's folder refuses new entries, even to root
    for argv in (["generator", "train", "--preset", "tiny", "--max-steps", "1", "--out", f"{nowhere}/t.pt"],
                 ["generator", "export", "generators/uvit/weights/small-stage1.safetensors", f"{nowhere}/e.safetensors"],
                 ["generator", "pretrain-text", "--preset", "tiny", "--steps", "1", "--out", f"{nowhere}/x.safetensors"]):
        assert main(argv) == EXIT_BAD_INPUT, argv
        err = capsys.readouterr().err
        assert "cannot write here" in err and err.count("\n") == 1, err


def test_an_interrupt_mid_step_takes_effect_after_it_and_the_resume_is_exact(tmp_path, monkeypatch):
    """Ctrl-C or kill landing inside an optimiser step saved a checkpoint whose weights had moved
    and whose step counter had not (2 of 7 killed runs): the resume applied that step twice. The
    interrupt now takes effect when the step is done."""
    import signal

    import generators.uvit.train as T

    tc = TrainConfig(**{**TINY.__dict__, "max_steps": 6})
    straight = train(tc, tmp_path / "straight.pt", progress=False, log_mlflow=False)
    real_step = T.train_step

    def interrupted_inside(state, *a, **kw):
        if state.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # arrives before the update below
        return real_step(state, *a, **kw)

    monkeypatch.setattr(T, "train_step", interrupted_inside)
    # Python's own Ctrl-C handler, whatever this process inherited: a shell's background job starts
    # with SIGINT ignored, and the held SIGINT then went to SIG_IGN ("DID NOT RAISE" in a CI run
    # started with &, session 33); evalkit rightly respects an ignored SIGINT
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            train(tc, tmp_path / "cut.pt", progress=False, log_mlflow=False)
    finally:
        signal.signal(signal.SIGINT, before)
    monkeypatch.setattr(T, "train_step", real_step)
    state, _ = load_checkpoint(tmp_path / "cut.pt")
    assert state.step == 4  # the step it arrived in was finished, not half-applied
    assert all(int(s["step"]) == 4 for s in state.opt.state_dict()["state"].values())
    resumed = train(tc, tmp_path / "cut.pt", progress=False, log_mlflow=False)
    assert torch.equal(params(resumed), params(straight)) and torch.equal(params(resumed.ema), params(straight.ema))


def test_a_checkpoint_needs_no_warm_start_file_and_a_diverged_run_writes_no_weights(tmp_path):
    train(TINY, tmp_path / "a.pt", progress=False, log_mlflow=False)
    warm = export_weights(tmp_path / "a.pt", tmp_path / "warm.safetensors")
    tc = TrainConfig(**{**TINY.__dict__, "max_steps": 2, "init_from": str(warm)})
    train(tc, tmp_path / "w.pt", progress=False, log_mlflow=False)
    warm.rename(tmp_path / "moved.safetensors")  # the folder was moved, or the file deleted
    state, saved = load_checkpoint(tmp_path / "w.pt")  # it was "unreadable or corrupt"
    assert state.step == 2 and saved.init_from == str(warm)
    export_weights(tmp_path / "w.pt", tmp_path / "w.safetensors")
    # a learning rate that blows the weights up: stopped with one line, nothing non-finite written
    from generators.uvit.train import TrainingDiverged

    wild = TrainConfig(**{**TINY.__dict__, "max_steps": 50, "lr": 1e6, "warmup_steps": 1})
    with pytest.raises(TrainingDiverged, match="diverged"):
        train(wild, tmp_path / "nan.pt", progress=False, log_mlflow=False)
    if (tmp_path / "nan.pt").exists():  # a periodic checkpoint from before the divergence only
        st, _ = load_checkpoint(tmp_path / "nan.pt")
        assert all(bool(torch.isfinite(p).all()) for p in st.net.parameters())


def test_weights_go_through_links_never_over_devices_and_pretrain_text_keeps_foreign_files(tmp_path, capsys):
    from evalkit.cli import main

    target = tmp_path / "target.pt"
    train(TINY, target, progress=False, log_mlflow=False)
    link = tmp_path / "link.pt"
    link.symlink_to(target)
    train(TrainConfig(**{**TINY.__dict__, "max_steps": 5}), link, progress=False, log_mlflow=False)
    assert link.is_symlink() and load_checkpoint(target)[0].step == 5
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(BadInputError, match="not a regular file"):
        train(TINY, fifo, progress=False, log_mlflow=False)
    capsys.readouterr()
    assert main(["generator", "train", "--preset", "tiny", "--out", str(fifo), "--max-steps", "1"]) == 2
    assert "not a regular file" in capsys.readouterr().err
    notes = tmp_path / "notes.safetensors"
    notes.write_text("my notes")
    for out in (target, notes, fifo):
        assert main(["generator", "pretrain-text", "--preset", "tiny", "--steps", "1", "--batch-size", "4",
                     "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert ".safetensors file" in err and "not a text encoder" in err and "not a regular file" in err
    assert notes.read_text() == "my notes" and load_checkpoint(target)[0].step == 5 and fifo.exists()


def test_training_keeps_to_its_own_run_inside_a_users(mlflow_store, tmp_path, monkeypatch):
    """Inside a notebook's open run it crashed ("already active"); with $MLFLOW_RUN_ID it logged
    into the user's run and ended it (session 32)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    user = client.create_run(client.create_experiment("mine"), run_name="my run")
    monkeypatch.setenv("MLFLOW_RUN_ID", user.info.run_id)
    train(TINY, tmp_path / "a.pt", progress=False)
    assert client.get_run(user.info.run_id).info.status == "RUNNING" and os.environ["MLFLOW_RUN_ID"] == user.info.run_id
    monkeypatch.delenv("MLFLOW_RUN_ID")
    with mlflow.start_run(experiment_id=client.get_experiment_by_name("mine").experiment_id) as outer:
        train(TINY, tmp_path / "b.pt", progress=False)  # nested under the open run
        assert mlflow.active_run().info.run_id == outer.info.run_id
    exp = client.get_experiment_by_name("evalkit-generator-train").experiment_id
    assert len(client.search_runs([exp])) == 2 and not client.get_run(user.info.run_id).data.params
