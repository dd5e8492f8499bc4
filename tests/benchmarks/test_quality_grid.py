"""The U-ViT quality benchmark's picture: the world's clip above the model's, one pair a prompt."""

import numpy as np
from PIL import Image

from benchmarks.quality.uvit import save_pair_grid
from evalkit.clip import Clip


def _clip(value: int) -> Clip:
    return Clip(frames=np.full((8, 16, 16, 3), value, np.uint8), fps=8.0)


def test_pair_grid_has_one_world_and_one_model_row_per_distinct_prompt(tmp_path):
    prompts = ["a red ball", "a red ball", "a blue cube", "a green ball"]
    world = [_clip(200)] * 4
    model = [_clip(20)] * 4
    two = np.asarray(Image.open(save_pair_grid(tmp_path / "two.png", prompts, world, model, rows=2)))
    one = np.asarray(Image.open(save_pair_grid(tmp_path / "one.png", prompts, world, model, rows=1)))
    assert two.shape[1] == one.shape[1] and 1.8 < two.shape[0] / one.shape[0] < 2.2
    # world rows (bright) above model rows (dark) in every pair
    top, bottom = one[: one.shape[0] // 2], one[one.shape[0] // 2:]
    assert (top > 150).all(axis=-1).sum() > (bottom > 150).all(axis=-1).sum()
    assert not list(tmp_path.glob(".*partial"))


def test_paired_comparison_of_two_models_on_the_same_prompts_and_seeds():
    """`--against`: the second model samples the probe's own prompts and seeds, and the paired
    differences point the right way (the world against pure noise)."""
    from benchmarks.quality.uvit import paired_with
    from evalkit.metrics.generator_quality import QualityProbe
    from generators.base import get_generator

    probe = QualityProbe(4, 2, 0)
    res = probe.evaluate(get_generator("world").generate)
    out = paired_with(get_generator("control:noise"), probe, res)
    assert out["fvd_minus_compare"]["n"] == 8 and out["fvd_minus_compare"]["value"] < 0
    diff = out["minus_compare"]
    assert diff["objects_present"]["value"] > 0.5 and diff["objects_present"]["n"] == 8
    assert out["quality"]["objects_present"]["value"] == 0.0
