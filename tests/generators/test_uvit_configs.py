"""Presets, config validation, parameter counts, the FLOP estimate, and the package's import rule."""

import ast
import dataclasses
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from evalkit.errors import BadInputError
from generators.uvit import layers
from generators.uvit.configs import (
    PRESETS,
    UViTConfig,
    estimate_flops_per_sample,
    estimate_mfu,
    get_config,
    num_params,
)
from generators.uvit.network import TextToVideoUViT

PKG = Path(__file__).resolve().parents[2] / "generators" / "uvit"


def test_presets_and_overrides():
    assert set(PRESETS) >= {"tiny", "small", "base"}
    tiny = get_config("tiny", attention="factorised")
    assert tiny.attention == "factorised" and PRESETS["tiny"].attention == "joint"
    with pytest.raises(dataclasses.FrozenInstanceError):
        tiny.width = 3
    assert UViTConfig.from_dict(tiny.to_dict()) == tiny
    assert get_config("base").frames == 16 and get_config("base").image_size >= 64


@pytest.mark.parametrize(
    "bad",
    [
        {"depth": 4},
        {"patch_size": 5},
        {"attention": "sparse"},
        {"text_len": 78},
        {"schedule": "sqrt"},
        {"learn_sigma": True},
        {"heads": 5},
    ],
)
def test_bad_config_is_a_one_line_user_error(bad):
    with pytest.raises(BadInputError) as e:
        get_config("tiny", **bad)
    assert "\n" not in str(e.value)


def test_unknown_preset_and_field():
    with pytest.raises(BadInputError, match="unknown uvit preset"):
        get_config("huge")
    with pytest.raises(BadInputError, match="unknown uvit config fields"):
        get_config("tiny", widht=3)
    with pytest.raises(BadInputError):
        UViTConfig.from_dict({**get_config("tiny").to_dict(), "extra": 1})


def test_param_counts_of_presets():
    with torch.device("meta"):  # no memory, no init cost
        counts = {n: num_params(TextToVideoUViT(get_config(n)).uvit) for n in ("tiny", "small", "base")}
    assert counts["tiny"] < 1e6
    assert 1e6 < counts["small"] < 10e6
    assert counts["base"] >= 50e6


@pytest.mark.parametrize(
    "over",
    [
        {},
        {"attention": "factorised"},
        {"temporal_patch": 2, "frames": 8},
        {"attention": "factorised", "text_vocab_dim": 32},
        {"mix_ffn": True, "head_channels": 8},
    ],
)
def test_flop_estimate_matches_torch_flop_counter(over, monkeypatch):
    """Linear and conv FLOPs from torch's FlopCounterMode; SDPA's two products counted by a spy,
    since FlopCounterMode does not see the CPU attention kernels."""
    attn = []
    real = layers.F.scaled_dot_product_attention

    def spy(q, k, v, **kw):
        attn.append(4 * q.shape[0] * q.shape[1] * q.shape[2] * k.shape[2] * q.shape[3])  # QK^T and AV
        return real(q, k, v, **kw)

    monkeypatch.setattr(layers.F, "scaled_dot_product_attention", spy)
    cfg = get_config("tiny", **over)
    net = TextToVideoUViT(cfg).eval()
    B = 2
    x = torch.randn(B, cfg.frames, cfg.channels, cfg.image_size, cfg.image_size)
    tokens = net.tokenize(["a red ball falls"] * B)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        net(x, torch.tensor([1, 500]), tokens)
    measured = (fc.get_total_flops() + sum(attn)) / B
    assert measured == pytest.approx(estimate_flops_per_sample(cfg, training=False), rel=1e-3)
    assert estimate_flops_per_sample(cfg) == 3 * estimate_flops_per_sample(cfg, training=False)
    assert estimate_mfu(cfg, 10.0, peak_flops=1e12) == pytest.approx(
        estimate_flops_per_sample(cfg) * 10 / 1e12
    )


def test_generator_never_imports_the_judge():
    """A generator must not see its evaluator: no evalkit.metrics, no evaluator backbones, no CLIP models."""
    for path in PKG.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                assert not n.startswith(("evalkit.metrics", "evalkit.provenance", "detectors")), (
                    path.name,
                    n,
                )
                assert n in ("open_clip.tokenizer",) or not n.startswith("open_clip"), (path.name, n)
