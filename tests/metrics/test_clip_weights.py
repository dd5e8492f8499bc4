"""The forms of CLIP weights users hold (evalkit.metrics.clip_weights): OpenAI's TorchScript
release, Hugging Face snapshots of open_clip weights, bare state dicts, and what is refused. Each
form is built here from a tiny open_clip model (the world-clip architecture) in that format."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from evalkit.errors import BadInputError, MissingResourceError
from evalkit.metrics import backbones as bb
from evalkit.metrics import clip_weights as cw
from evalkit.metrics import encoders as enc
from evalkit.metrics import weight_files

PROMPTS = ["a small red ball rests still, on a dark background", "a big blue square slides"]


def _model(quick_gelu: bool, seed: int = 5):
    import open_clip

    from evalkit.metrics.world_clip import register_world_clip_config

    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return open_clip.create_model(register_world_clip_config(), force_quick_gelu=quick_gelu).eval()


def _images(n: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def _embeddings(model, clip: bb.ClipBackbone) -> tuple[torch.Tensor, torch.Tensor]:
    """What `model` itself gives on the backbone's preprocessing: (text, image), normalised."""
    from evalkit.metrics.world_clip import clip_pixels

    with torch.no_grad():
        t = model.encode_text(clip.tokenizer(PROMPTS))
        i = model.encode_image(clip_pixels(_images(), clip.image_size, clip.mean, clip.std))
    return F.normalize(t.float(), dim=-1).double(), F.normalize(i.float(), dim=-1).double()


def _assert_runs_as(clip: bb.ClipBackbone, model) -> None:
    t, i = _embeddings(model, clip)
    torch.testing.assert_close(clip.encode_text(PROMPTS), t)
    torch.testing.assert_close(clip.encode_images(_images()), i)


@pytest.fixture(scope="module")
def quick_model():
    return _model(quick_gelu=True)


def test_openai_torchscript_release_loads_with_quickgelu(tmp_path, quick_model):
    """OpenAI's ViT-B-32.pt is a TorchScript archive. torch.load refuses TorchScript with
    weights_only=True (what open_clip asks for), so it used to be refused as 'not open_clip
    weights'; loaded into the named GELU config it would run with the wrong activation."""
    path = tmp_path / "ViT-B-32.pt"
    img, txt = torch.rand(1, 3, 32, 32), torch.zeros(1, quick_model.context_length, dtype=torch.long)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.trace(quick_model, (img, txt), strict=False, check_trace=False).save(str(path))
    assert weight_files.is_torchscript(path)
    with pytest.raises(RuntimeError, match="TorchScript"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's note that it is dispatching to torch.jit.load
        torch.load(path, weights_only=True)

    clip = bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=path)
    proto = clip.protocol()
    assert proto["activation"] == "QuickGELU" and "TorchScript" in proto["weights_form"]
    assert proto["weights_sha256"] == enc.file_sha256(path)
    _assert_runs_as(clip, quick_model)
    # the activation matters: the same weights run with GELU give other embeddings
    gelu = _model(quick_gelu=False)
    gelu.load_state_dict(quick_model.state_dict())
    assert (clip.encode_text(PROMPTS) - _embeddings(gelu, clip)[0]).abs().max() > 1e-4


@pytest.mark.parametrize("quick", [True, False])
@pytest.mark.parametrize("give", ["folder", "file"])
def test_snapshot_config_decides_the_activation(tmp_path, quick, give):
    """A Hugging Face snapshot of open_clip weights (open_clip_config.json beside the weights)."""
    model = _model(quick_gelu=quick, seed=6)
    torch.save(model.state_dict(), tmp_path / "open_clip_pytorch_model.bin")
    cfg = {"model_cfg": {"embed_dim": 128, "quick_gelu": quick}, "preprocess_cfg": {}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(cfg))
    given = tmp_path if give == "folder" else tmp_path / "open_clip_pytorch_model.bin"
    clip = bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=given)
    assert clip.protocol()["activation"] == ("QuickGELU" if quick else "GELU")
    assert clip.sha256 == enc.file_sha256(tmp_path / "open_clip_pytorch_model.bin")
    _assert_runs_as(clip, model)


def test_bare_state_dict_runs_as_the_named_config(tmp_path):
    model = _model(quick_gelu=False, seed=7)
    torch.save(model.state_dict(), tmp_path / "w.pt")
    clip = bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=tmp_path / "w.pt")
    assert clip.protocol()["activation"] == "GELU" and "state dict" in clip.protocol()["weights_form"]
    _assert_runs_as(clip, model)


def test_refused_forms_name_the_input(tmp_path):
    hf = tmp_path / "clip-vit-base-patch32"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({"model_type": "clip"}))
    (hf / "pytorch_model.bin").write_bytes(b"\0" * 16)
    for given in (hf, hf / "pytorch_model.bin"):
        with pytest.raises(BadInputError, match="transformers CLIP") as e:
            bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=given)
        assert str(given) in str(e.value) and "\n" not in str(e.value)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MissingResourceError, match="no open_clip weights in this folder"):
        bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=empty)

    bad_cfg = tmp_path / "badcfg"
    bad_cfg.mkdir()
    torch.save(_model(False).state_dict(), bad_cfg / "open_clip_pytorch_model.bin")
    (bad_cfg / "open_clip_config.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not a readable open_clip config"):
        bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=bad_cfg)

    # text is named as not a weights file: read as a pickle it had failed with "KeyError: 101"
    # (the byte 'e' taken for a memo index; session 35's red team)
    for name, text in (("notes.pt", "hello 101\n"), ("digits.pt", "101"), ("empty.pt", "")):
        (tmp_path / name).write_text(text)
        with pytest.raises(BadInputError, match="is not a PyTorch weights file") as e:
            bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=tmp_path / name)
        assert str(tmp_path / name) in str(e.value) and "KeyError" not in str(e.value)

    # a TorchScript archive of something else: its parameters do not fit the named model
    other = tmp_path / "other.pt"
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(other))
    with pytest.raises(BadInputError, match="does not hold open_clip weights") as e:
        bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=other)
    assert "\n" not in str(e.value)

    # a damaged archive: the zip's directory is intact, its data is not
    good = tmp_path / "good.pt"
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(good))
    raw = bytearray(good.read_bytes())
    raw[40:400] = b"\xff" * 360
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(raw))
    with pytest.raises(BadInputError) as e:
        bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=damaged)
    assert str(damaged) in str(e.value) and "\n" not in str(e.value)

    # not a torch file at all (a download that saved an HTML page, random bytes): a one-line
    # error, not torch's unpickling failure escaping as an internal error
    for name, data in (("page.pt", b"<!DOCTYPE html><html>Sign in</html>"), ("noise.bin", bytes(range(256)) * 8)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadInputError, match="not a PyTorch weights file") as e:
            bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=tmp_path / name)
        assert "\n" not in str(e.value) and "weights_only" not in str(e.value)


def test_openai_release_is_named_by_its_hash(tmp_path, monkeypatch):
    path = tmp_path / "w.pt"
    torch.save(_model(False, seed=8).state_dict(), path)
    monkeypatch.setitem(cw.OPENAI_RELEASES, enc.file_sha256(path), "a release")
    assert bb.load_clip(enc.WORLD_CLIP_MODEL, pretrained=path).protocol()["weights_known_as"] == "a release"


def test_not_torchscript(tmp_path: Path):
    (tmp_path / "a.bin").write_bytes(b"PK\x03\x04 not really")
    assert not weight_files.is_torchscript(tmp_path / "a.bin") and not weight_files.is_torchscript(tmp_path / "missing")


@pytest.mark.parametrize("hw", [(240, 320), (480, 854), (360, 640), (57, 100)])
def test_frames_are_resized_and_cropped_as_open_clips_own_transform(hw):
    """4:3 and 854x480 frames were resized one column wider than torchvision's Resize makes them
    (rounded, not truncated), 2.7 levels apart on average (session 32): now rounding only."""
    import numpy as np
    import open_clip
    from PIL import Image

    from evalkit.metrics.world_clip import clip_pixels

    h, w = hw
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 3), dtype=np.uint8)
    img = np.array(Image.fromarray(small).resize((w, h), Image.BICUBIC))  # writable: torch warns otherwise
    ref = open_clip.image_transform(224, is_train=False)(Image.fromarray(img))
    ours = clip_pixels(torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255, 224)[0]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    assert ours.shape == ref.shape and float(((ours - ref) * std * 255).abs().mean()) < 1.0
