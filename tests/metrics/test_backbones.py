"""Backbones: the I3D loader and StyleGAN-V preprocessing (on a TorchScript stand-in built here), the
open_clip loader's offline rules, the shipped world backbones (hashes, sizes, validity of their
features) and retraining by name. Nothing here touches the network."""

from __future__ import annotations

import inspect
import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from evalkit.errors import EXIT_MISSING, BadInputError, MissingResourceError
from evalkit.metrics import backbones as bb
from evalkit.metrics import encoders as enc
from evalkit.metrics.fvd import FrechetVideoDistance, frechet_distance_from_features
from evalkit.world import make_clip

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*a, **k):
        raise AssertionError("a backbone test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def world_videos(split: str, n: int, start: int = 0, seed: int = 0) -> torch.Tensor:
    return torch.stack([make_clip(split, i, seed).to_tensor() for i in range(start, start + n)])


# ------------------------------------------------------------------------------------------------
# I3D: a TorchScript stand-in with StyleGAN-V's interface


class FakeI3D(nn.Module):
    """Same call signature as StyleGAN-V's i3d_torchscript.pt; refuses anything but the protocol's
    input (16 frames at 224 x 224 in [-1, 1], rescale=False, resize=False, return_features=True)."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(12, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if rescale or resize or not return_features:
            raise RuntimeError("wrong I3D call flags")
        if x.dim() != 5 or x.size(1) != 3 or x.size(2) != 16 or x.size(3) != 224 or x.size(4) != 224:
            raise RuntimeError("wrong I3D input shape")
        if bool(x.min() < -1.0) or bool(x.max() > 1.0):
            raise RuntimeError("I3D input outside [-1, 1]")
        stats = torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4)), x.amin(dim=(2, 3, 4)),
                           x[:, :, 0].mean(dim=(2, 3))], dim=1)  # [B, 12]
        return self.proj(stats)


@pytest.fixture(scope="module")
def i3d_path(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("i3d") / "i3d_torchscript.pt"
    torch.jit.script(FakeI3D().eval()).save(str(path))
    return path


def reference_preprocess(video: torch.Tensor, resolution: int = 224) -> torch.Tensor:
    """StyleGAN-V's protocol as common_metrics_on_video_quality's fvd/styleganv/fvd.py writes it,
    for one video [C, T, H, W] in [0, 1]: shorter side to 224 (bilinear), centre crop, to [-1, 1]."""
    c, t, h, w = video.shape
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    c, t, h, w = video.shape
    w0, h0 = (w - resolution) // 2, (h - resolution) // 2
    return (video[:, :, h0:h0 + resolution, w0:w0 + resolution] - 0.5) * 2


@pytest.mark.parametrize("shape", [(2, 16, 3, 32, 32), (1, 20, 3, 40, 56), (1, 16, 3, 300, 240)])
def test_i3d_preprocess_matches_stylegan_v_port(shape):
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    got = bb.i3d_preprocess(x)
    assert got.shape == (shape[0], 3, 16, 224, 224) and got.dtype == torch.float32
    for b in range(shape[0]):
        ref = reference_preprocess(x[b, :16].permute(1, 0, 2, 3))  # first 16 frames, [C, T, H, W]
        torch.testing.assert_close(got[b], ref, rtol=0, atol=1e-6)
    assert got.min() >= -1 and got.max() <= 1


def test_i3d_temporal_policy():
    x = torch.arange(10, dtype=torch.float32).view(1, 10, 1, 1, 1).expand(1, 10, 3, 4, 4) / 10
    long, note = bb.temporal_crop(torch.cat([x, x], 1), 16)
    assert long.shape[1] == 16 and note == "first 16 of 20"
    short, note = bb.temporal_crop(x, 16)
    assert "stretched 10 -> 16" in note
    assert short[0, :, 0, 0, 0].mul(10).round().tolist() == [i * 10 // 16 for i in range(16)]
    uint8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(bb.i3d_preprocess(uint8), bb.i3d_preprocess(uint8.float() / 255))


def test_load_i3d_features_are_the_scripted_call(i3d_path):
    i3d = bb.load_i3d(i3d_path)
    x = world_videos("test", 3)
    f = i3d.features(x)
    assert f.shape == (3, 400) and f.dtype == torch.float64
    scripted = torch.jit.load(str(i3d_path))
    with torch.no_grad():
        expected = scripted(bb.i3d_preprocess(x), rescale=False, resize=False, return_features=True)
    torch.testing.assert_close(f, expected.double(), rtol=1e-6, atol=1e-6)
    assert i3d.sha256 == enc.file_sha256(i3d_path)
    p = i3d.protocol()
    assert p["backbone"] == "i3d" and p["weights_sha256"] == i3d.sha256 and p["frames"] == 16
    assert p["call"] == {"rescale": False, "resize": False, "return_features": True}
    # usable as FVD's feature extractor
    fvd = FrechetVideoDistance(num_features=400, feature_extractor=i3d)
    fvd.update(x, real=True)
    fvd.update(world_videos("test", 3, start=3), real=False)
    assert math.isfinite(float(fvd.compute()))


def test_load_i3d_from_env_and_by_name(i3d_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_I3D", str(i3d_path))
    assert bb.load_i3d().source == str(i3d_path)
    assert bb.get_backbone("i3d").sha256 == enc.file_sha256(i3d_path)


def test_missing_i3d_is_one_line_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("EVALKIT_I3D", raising=False)
    calls = (lambda: bb.load_i3d(), lambda: bb.load_i3d(tmp_path / "nope.pt"), lambda: bb.get_backbone("i3d"))
    for call in calls:
        with pytest.raises(MissingResourceError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "EVALKIT_I3D" in msg and "--i3d" in msg and "i3d_torchscript.pt" in msg
        assert e.value.exit_code == EXIT_MISSING
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not torchscript")
    with pytest.raises(BadInputError, match="not a TorchScript I3D"):
        bb.load_i3d(bad)
    state = tmp_path / "i3d_pretrained_400.pt"
    torch.save(torch.nn.Linear(3, 2).state_dict(), state)
    with pytest.raises(BadInputError, match="not a TorchScript I3D .a torch.save checkpoint"):
        bb.load_i3d(state)
    # another TorchScript model (say, OpenAI's CLIP release) is named as such at load, not
    # called with I3D's flags later (that was an internal error)
    other = tmp_path / "ViT-B-32.pt"
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(other))
    with pytest.raises(BadInputError, match="TorchScript model but not StyleGAN-V's I3D") as e:
        bb.load_i3d(other)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------------
# open_clip loader: user weights, explicit opt-in for downloads


@pytest.fixture(scope="module")
def tiny_clip_weights(tmp_path_factory) -> Path:
    """A randomly initialised world-clip architecture saved as an ordinary open_clip state dict."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("clip") / "weights.pt"
    torch.save(enc.create_world_clip().state_dict(), path)
    return path


def test_load_clip_from_user_path(tiny_clip_weights):
    clip = bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=tiny_clip_weights)
    assert clip.sha256 == enc.file_sha256(tiny_clip_weights) and clip.image_size == 32
    t = clip.encode_text(["a small red ball rests still, on a dark background", "a cat"])
    v = clip.encode_video_frames(world_videos("test", 2))
    assert t.shape == (2, 128) and v.shape == (2, 16, 128) and t.dtype == v.dtype == torch.float64
    torch.testing.assert_close(t.norm(dim=-1), torch.ones(2, dtype=torch.float64))
    torch.testing.assert_close(v.norm(dim=-1), torch.ones(2, 16, dtype=torch.float64))
    # the weights really came from the file
    state = torch.load(tiny_clip_weights)
    torch.testing.assert_close(clip.model.visual.conv1.weight, state["visual.conv1.weight"])


OPENAI_TAG = "openai"  # open_clip's name for OpenAI's release; these tests check it is never fetched unasked


def test_clip_without_weights_or_opt_in_never_downloads(monkeypatch, tmp_path):
    import open_clip.pretrained as ocp

    def forbidden(*a, **k):
        raise AssertionError("open_clip download attempted")

    monkeypatch.setattr(ocp, "download_pretrained", forbidden)
    monkeypatch.delenv("EVALKIT_CLIP", raising=False)
    monkeypatch.delenv("EVALKIT_ALLOW_DOWNLOAD", raising=False)
    for call in (lambda: bb.load_clip("ViT-B-32"), lambda: bb.get_backbone("ViT-B-32"),
                 lambda: bb.load_clip("ViT-B-32", pretrained=OPENAI_TAG),
                 lambda: bb.load_clip("ViT-B-32", pretrained=tmp_path / "missing.bin")):
        with pytest.raises(MissingResourceError) as e:
            call()
        msg = str(e.value)
        assert "\n" not in msg and "EVALKIT_CLIP" in msg and "EVALKIT_ALLOW_DOWNLOAD=1" in msg
    with pytest.raises(BadInputError, match="unknown open_clip model"):
        bb.load_clip("ViT-Nope", pretrained="x")


@pytest.mark.parametrize("how", ["argument", "env"])
def test_clip_download_only_with_explicit_opt_in(how, monkeypatch, tiny_clip_weights):
    """With the opt-in, a named tag goes through open_clip's downloader (stubbed here to a local
    file) and the resulting file's hash is the backbone's."""
    import open_clip
    import open_clip.pretrained as ocp

    calls = []
    monkeypatch.setattr(ocp, "download_pretrained",
                        lambda cfg, *a, **k: calls.append(cfg) or str(tiny_clip_weights))
    real_create = open_clip.create_model

    def create(name, pretrained=None, **kw):  # build the tiny architecture instead of ViT-B-32
        assert name == "ViT-B-32" and pretrained == str(tiny_clip_weights.resolve())
        assert kw.get("force_quick_gelu") is True  # the openai tag's weights were trained with it
        return real_create(enc.WORLD_CLIP_MODEL, pretrained=pretrained, **kw)

    monkeypatch.setattr(open_clip, "create_model", create)
    monkeypatch.setattr(open_clip, "get_tokenizer",
                        lambda name, **k: open_clip.SimpleTokenizer(context_length=32))
    if how == "env":
        monkeypatch.setenv("EVALKIT_ALLOW_DOWNLOAD", "1")
        clip = bb.load_clip("ViT-B-32", pretrained=OPENAI_TAG)
    else:
        clip = bb.load_clip("ViT-B-32", pretrained=OPENAI_TAG, allow_download=True)
    assert len(calls) == 1 and clip.sha256 == enc.file_sha256(tiny_clip_weights)
    assert clip.source == "ViT-B-32/openai"
    assert clip.protocol()["activation"] == "QuickGELU"


# ------------------------------------------------------------------------------------------------
# shipped world backbones


def test_registry_hashes_sizes_and_recipes():
    reg = json.loads(bb.REGISTRY_PATH.read_text())
    assert set(reg) == set(bb.SHIPPED)
    total = 0
    for name, e in reg.items():
        p = enc.WEIGHTS_DIR / e["file"]
        assert enc.file_sha256(p) == e["sha256"], f"{name}: weights differ from the registry"
        assert p.stat().st_size == e["bytes"]
        total += e["bytes"]
        assert e["train"]["seed"] == bb.SHIPPED_RECIPES[name]["seed"]
        assert e["train"]["steps"] == bb.SHIPPED_RECIPES[name]["steps"]
        _, meta = enc.load_checkpoint(p)
        assert meta["seed"] == e["train"]["seed"] and meta["steps"] == e["train"]["steps"]
        assert meta["data"]["split"] == "train"
        assert "seconds" not in json.dumps(meta)  # wall time never enters the file (hash = recipe)
    assert total <= 5 * 2**20
    # the open_clip config shipped for world-clip is the one the code trains
    cfg = json.loads((enc.OPEN_CLIP_CONFIG_DIR / f"{enc.WORLD_CLIP_MODEL}.json").read_text())
    assert cfg == enc.WORLD_CLIP_CONFIG


@pytest.mark.parametrize("name", bb.SHIPPED)
def test_shipped_metadata_is_what_the_recipe_writes(name):
    """The JSON inside each shipped file (part of its hash) is exactly what the trainer writes for
    the registered recipe: a cheap guard that the code and the shipped bytes have not drifted apart
    (the slow test retrains and compares the whole file)."""
    train, meta_fn = {"world-video-encoder": (enc.train_world_video_encoder, enc.video_encoder_metadata),
                      "world-clip": (enc.train_world_clip, enc.world_clip_metadata)}[name]
    params = inspect.signature(train).parameters
    recipe = {k: v.default for k, v in params.items() if v.default is not inspect.Parameter.empty}
    recipe.update(bb.SHIPPED_RECIPES[name])
    expected = meta_fn(**{k: recipe[k] for k in inspect.signature(meta_fn).parameters})
    _, meta = enc.load_checkpoint(enc.WEIGHTS_DIR / f"{name}.safetensors")
    assert meta == json.loads(json.dumps(expected))


def test_shipped_backbones_load_by_name_with_their_hash():
    reg = json.loads(bb.REGISTRY_PATH.read_text())
    v = bb.get_backbone("world-video-encoder")
    c = bb.get_backbone("world-clip")
    assert v.sha256 == reg["world-video-encoder"]["sha256"] and c.sha256 == reg["world-clip"]["sha256"]
    assert v.protocol()["backbone"] == "world-video-encoder" and v.protocol()["weights_sha256"] == v.sha256
    assert c.protocol()["backbone"] == "world-clip" and c.protocol()["weights_sha256"] == c.sha256
    assert bb.get_backbone("world-video-encoder") is v  # cached per file
    names = {b["name"]: b for b in bb.list_backbones()}
    assert names["world-clip"]["where"] == "package" and names["world-clip"]["sha256"] == c.sha256


def test_tampered_weights_are_refused(tmp_path):
    src = enc.WEIGHTS_DIR / "world-video-encoder.safetensors"
    with pytest.raises(BadInputError, match="SHA-256"):
        bb._load_world(src, "world-video-encoder", expected_sha="0" * 64)


@pytest.fixture(scope="module")
def encoder():
    return bb.get_backbone("world-video-encoder")


def test_video_features_shape_dtype_determinism_and_resampling(encoder):
    x = world_videos("test", 6)
    f = encoder.features(x)
    assert f.shape == (6, encoder.dim) == (6, 128) and f.dtype == torch.float64
    assert torch.equal(f, encoder(x))  # callable, deterministic
    torch.testing.assert_close(encoder.features(x, batch_size=2), f, rtol=1e-5, atol=1e-5)
    u8 = (x * 255).round().to(torch.uint8)
    torch.testing.assert_close(encoder.features(u8), f, rtol=1e-5, atol=1e-5)
    # other sizes and lengths go through the protocol's resampling
    big = F.interpolate(x.flatten(0, 1), size=(64, 64), mode="bilinear", align_corners=False)
    big = big.view(6, 16, 3, 64, 64)
    g = encoder.features(big)
    assert g.shape == (6, 128)
    assert F.cosine_similarity(g, f).min() > 0.9
    assert encoder.features(x[:, :8]).shape == (6, 128)
    assert encoder.features(torch.cat([x, x], 1)).shape == (6, 128)


def test_video_encoder_held_out_accuracy(encoder):
    acc = enc.evaluate_world_video_encoder(encoder.model, n=300)
    assert acc["kind_acc"] >= 0.9 and acc["count_acc"] >= 0.9 and acc["background_acc"] >= 0.95
    assert acc["colors_acc"] >= 0.7 and acc["colors_label_acc"] >= 0.93


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-k ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, 7)
    b, t, c, h, w = x.shape
    y = x.reshape(-1, 1, h, w)
    y = F.conv2d(F.pad(y, (3, 3, 0, 0), mode="replicate"), k)
    y = F.conv2d(F.pad(y, (0, 0, 3, 3), mode="replicate"), k.transpose(2, 3))
    return y.view(b, t, c, h, w)


def test_video_features_separate_world_from_corrupted_and_noise(encoder):
    """FVD on the shipped encoder, corruptions applied to the same second set (paired): it grows
    with blur severity, frame shuffling doubles it, noise is far away (N=150 per set; real-vs-real
    FVD at this N is ~40-85 from estimation noise alone)."""
    n = 150
    real_a, real_b = world_videos("test", n), world_videos("test", n, start=n)
    fa = encoder.features(real_a).numpy()
    g = torch.Generator().manual_seed(0)
    sets = {"real": real_b, "blur1": _blur(real_b, 1.0), "blur2": _blur(real_b, 2.0),
            "blur3": _blur(real_b, 3.0), "shuffled": real_b[:, torch.randperm(16, generator=g)],
            "noise": torch.rand(real_b.shape, generator=g)}
    fvd = {k: frechet_distance_from_features(fa, encoder.features(v).numpy()) for k, v in sets.items()}
    assert fvd["real"] < fvd["blur1"] < fvd["blur2"] < fvd["blur3"] < fvd["noise"], fvd
    assert fvd["shuffled"] > 2 * fvd["real"] and fvd["noise"] > 10 * fvd["blur3"], fvd


def test_world_clip_retrieval_far_above_chance():
    clip = bb.get_backbone("world-clip")
    res = enc.evaluate_world_clip(clip.model, n=256, group=32, attributes=64)
    assert res["clip_top1"] >= 0.8 and res["frame_top1"] >= 0.8  # chance 1/32
    assert res["clipscore_own"] > res["clipscore_shuffled"] + 30
    attr = res["attribute_pairwise"]  # own caption vs one attribute changed; chance 0.5
    assert attr["color"] >= 0.95 and attr["background"] >= 0.95 and attr["count"] >= 0.9
    assert attr["size"] >= 0.8 and attr["shape"] >= 0.6


# ------------------------------------------------------------------------------------------------
# retraining: named models under $EVALKIT_HOME, deterministic for the seed


def test_retrain_by_name_is_deterministic_and_picked_by_name(tmp_path):
    a = enc.train_world_video_encoder("tiny-enc", seed=1, steps=2, batch_size=4, validate=0, progress=False)
    home = Path(os.environ["EVALKIT_HOME"])
    assert Path(a["path"]) == home / "backbones" / "tiny-enc.safetensors"
    kw = dict(steps=2, batch_size=4, validate=0, progress=False)
    b = enc.train_world_video_encoder(tmp_path / "again.safetensors", seed=1, **kw)
    c = enc.train_world_video_encoder(tmp_path / "other.safetensors", seed=2, **kw)
    assert a["sha256"] == b["sha256"] != c["sha256"]
    got = bb.get_backbone("tiny-enc")
    assert got.name == "tiny-enc" and got.sha256 == a["sha256"]
    assert got.protocol()["train"] == {"seed": 1, "steps": 2}
    assert any(x["name"] == "tiny-enc" and x["where"] == "home" for x in bb.list_backbones())
    assert bb.get_backbone(str(tmp_path / "other.safetensors")).sha256 == c["sha256"]
    # a damaged file among them is listed as unreadable (`backbones list` was an internal error)
    (home / "backbones" / "broken.safetensors").write_bytes(b"\xff" * 64)
    listed = {x["name"]: x for x in bb.list_backbones()}
    assert listed["broken"]["kind"] == "unreadable" and listed["tiny-enc"]["kind"] == "video-encoder"
    assert listed["tiny-enc"]["sha256"] == a["sha256"]
    from evalkit.cli import main

    assert main(["backbones", "list"]) == 0


def test_retrain_world_clip_by_name_is_deterministic(tmp_path):
    kw = dict(seed=0, steps=2, batch_size=8, validate=0, progress=False)
    a = enc.train_world_clip("tiny-clip", **kw)
    b = enc.train_world_clip(tmp_path / "b.safetensors", **kw)
    assert a["sha256"] == b["sha256"]
    clip = bb.get_backbone("tiny-clip")
    assert clip.kind == "clip" and clip.sha256 == a["sha256"]
    t = clip.encode_text(["a large blue square slides and slows down, on a light background"])
    assert t.shape == (1, 128)
    tensors, meta = enc.load_checkpoint(a["path"])
    assert tensors["token_embedding.rows"].shape[0] == tensors["token_embedding.ids"].numel() < 200


def test_output_names_are_checked():
    with pytest.raises(BadInputError, match="shipped default"):
        enc.train_world_video_encoder("world-video-encoder", steps=1, batch_size=2, validate=0)
    with pytest.raises(BadInputError):
        enc.train_world_clip("bad name!", steps=1, batch_size=2, validate=0)
    with pytest.raises(MissingResourceError, match="no backbone named"):
        bb.get_backbone("never-trained")


def test_backbones_never_import_the_generators():
    code = ("import sys; from evalkit.metrics import backbones, clip_alignment, encoders; "
            "backbones.get_backbone('world-video-encoder'); backbones.get_backbone('world-clip'); "
            "bad = [m for m in sys.modules if m == 'generators' or m.startswith('generators.')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("name", bb.SHIPPED)
def test_shipped_weights_are_reproduced_by_their_recipe(name, tmp_path):
    """The one call that rebuilds a shipped default gives the registered bytes (same machine class:
    CPU kernels may round differently elsewhere). Minutes per model."""
    reg = json.loads(bb.REGISTRY_PATH.read_text())
    train = enc.train_world_video_encoder if name == "world-video-encoder" else enc.train_world_clip
    res = train(tmp_path / f"{name}.safetensors", validate=0, progress=False, **bb.SHIPPED_RECIPES[name])
    assert res["sha256"] == reg[name]["sha256"]
