"""Prompt binding: how much the denoiser's loss depends on one attribute word of the prompt."""

import torch
from torch import nn

from generators.uvit.binding import BACKGROUND_WORDS, prompt_binding, swap_word
from generators.uvit.configs import get_config
from generators.uvit.network import TextToVideoUViT
from evalkit.world.spec import COLORS


def test_swap_word_changes_exactly_one_attribute():
    p = "a small red ball and a large blue square collide, on a dark background"
    s = swap_word(p, COLORS)
    assert s != p and s.replace(s.split()[2], "red", 1) == p and s.split()[2] in COLORS
    assert swap_word(p, BACKGROUND_WORDS).endswith(f"on a {BACKGROUND_WORDS[3]} background")
    assert swap_word("a ball falls", COLORS) is None


def test_a_network_that_ignores_the_prompt_binds_nothing_and_one_that_reads_it_does():
    torch.manual_seed(0)
    net = TextToVideoUViT(get_config("tiny")).eval()  # zero-initialised last layer: output 0 for any prompt
    r = prompt_binding(net, n_clips=8, timesteps=(500,), batch=8)
    assert r["colour"]["value"] == 0 and r["background"]["value"] == 0 and r["colour"]["n"] > 0
    with torch.no_grad():
        nn.init.normal_(net.uvit.final_layer.weight, std=0.3)
    r = prompt_binding(net, n_clips=8, timesteps=(300, 700), batch=4)
    for kind in ("colour", "background"):
        assert abs(r[kind]["value"]) > 1e-4 and r[kind]["ci_low"] <= r[kind]["value"] <= r[kind]["ci_high"]
        assert set(r[kind]["by_timestep"]) == {300, 700}
