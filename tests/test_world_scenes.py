"""Splits hold out what they say, captions say what the scene shows, the dataset is stable."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from evalkit.world import KINDS, WorldConfig, WorldDataset, make_clip
from evalkit.world.captions import caption
from evalkit.world.scenes import held_out_reasons, sample_scene
from evalkit.world.spec import OOD_RANGES, TRAIN_RANGES


def draw(split, n=400):
    return [sample_scene(np.random.default_rng(s), split) for s in range(n)]


def physics_values(scene):
    vals = {}
    if scene.kind in ("fall", "throw"):
        vals["gravity"] = scene.gravity
    if scene.kind in ("fall", "throw", "collide"):
        vals["restitution"] = scene.restitution
    if scene.kind in ("slide", "throw"):
        vals["friction"] = scene.friction
    return vals


@pytest.mark.parametrize("split", ["train", "test"])
def test_in_distribution_splits_hold_nothing_out(split):
    scenes = draw(split)
    for s in scenes:
        assert held_out_reasons(s.kind, s.background, s.objects) == [] and s.ood == ()
        for name, v in physics_values(s).items():
            assert v in TRAIN_RANGES[name], (name, v)
    kinds = Counter(s.kind for s in scenes)
    assert set(kinds) == set(KINDS) and min(kinds.values()) > 30  # every kind is well represented
    sizes = Counter(len(s.objects) for s in scenes)
    assert set(sizes) == {1, 2, 3}


def test_ood_split_carries_a_true_held_out_factor():
    scenes = draw("ood")
    combos = physics = 0
    for s in scenes:
        assert s.ood, s
        reasons = held_out_reasons(s.kind, s.background, s.objects)
        out_of_range = [n for n, v in physics_values(s).items() if v not in TRAIN_RANGES[n]]
        assert reasons or out_of_range
        for n in out_of_range:
            assert physics_values(s)[n] in OOD_RANGES[n]
        combos += bool(reasons)
        physics += bool(out_of_range)
    assert combos > 100 and physics > 100


def test_train_and_test_are_different_draws():
    a = [make_clip("train", i).meta["record"]["prompt"] for i in range(30)]
    b = [make_clip("test", i).meta["record"]["prompt"] for i in range(30)]
    assert a != b


def test_caption_names_every_object_and_the_motion():
    verbs = {"fall": "fall", "throw": "thrown", "slide": "slide", "collide": "collide", "static": "rest"}
    for s in draw("train", 100):
        text = caption(s)
        for o in s.objects:
            assert f"{o.size_name} {o.color} {o.shape}" in text
        assert verbs[s.kind] in text
        assert "background" in text


def test_dataset_items_are_tensors_in_library_layout_and_deterministic():
    ds = WorldDataset("train", n=6, seed=5, config=WorldConfig(frames=8, size=32))
    assert len(ds) == 6
    item = ds[3]
    v = item["video"]
    assert v.shape == (8, 3, 32, 32) and v.dtype == torch.float32
    assert 0.0 <= v.min() and v.max() <= 1.0
    assert torch.equal(v, ds[3]["video"]) and item["caption"] == ds[3]["caption"]
    batch = WorldDataset.collate([ds[i] for i in range(4)])
    assert batch["video"].shape == (4, 8, 3, 32, 32) and len(batch["caption"]) == 4
    loader = torch.utils.data.DataLoader(ds, batch_size=3, collate_fn=WorldDataset.collate)
    first = next(iter(loader))
    assert torch.equal(first["video"][1], ds[1]["video"])
    with pytest.raises(IndexError):
        ds.clip(6)


def test_world_config_rejects_bad_values():
    for bad in [dict(frames=1), dict(size=4), dict(fps=0), dict(noise=-1)]:
        with pytest.raises(ValueError):
            WorldConfig(**bad)


def test_parse_caption_inverts_caption_and_rejects_other_text():
    from evalkit.world.captions import parse_caption

    for split in ("train", "ood"):
        for s in draw(split, 150):
            parsed = parse_caption(caption(s))
            assert parsed == {"kind": s.kind, "background": s.background,
                              "objects": [(o.shape, o.color, o.size_name) for o in s.objects]}
    for text in ["a cat riding a bike", "a small pink ball rests still, on a dark background",
                 "a small red ball rests still", "", "a small red ball flies, on a dark background"]:
        assert parse_caption(text) is None
    # other tools' prompt lists write sentences: a capital, a full stop, quotes (before: not a
    # world prompt, so such a folder's clips had no physics score)
    text = caption(draw("test", 1)[0])
    for other in (text.capitalize() + ".", f'"{text}"', f"\u201c{text}!\u201d"):
        assert parse_caption(other) == parse_caption(text) is not None


def test_a_file_name_gives_its_prompt_without_the_sample_number():
    from evalkit.clipset import prompt_from_name

    for stem in ("a_red_ball_falls-3", "a red ball falls_12", "a red ball falls (2)", "a red ball falls(2)"):
        assert prompt_from_name(stem) == "a red ball falls"
    assert prompt_from_name("a ball (red)") == "a ball (red)" and prompt_from_name("take (2") == "take (2"
    # a name that is only a number (a prompt list's index, a camera's date and time) is no prompt
    for stem in ("0007", "0007_2", "7 (1)", "20240501_123456"):
        assert prompt_from_name(stem) == ""
    assert prompt_from_name("take 2") == "take 2"


def test_world_renders_any_world_prompt_with_exactly_the_prompted_scene():
    from evalkit.world import make_clip_for_prompt

    for i in range(20):
        prompt = make_clip("test", i).prompt
        clip = make_clip_for_prompt(prompt, seed=i)
        rec = clip.meta["record"]
        assert clip.prompt == prompt and rec["split"] == "test"
        assert np.array_equal(clip.frames, make_clip_for_prompt(prompt, seed=i).frames)
    held_out = make_clip_for_prompt("a small green square rests still, on a dark background", 0)
    assert held_out.meta["record"]["split"] == "ood"
    with pytest.raises(ValueError):
        make_clip_for_prompt("a cat riding a bike", 0)
