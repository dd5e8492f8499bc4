"""The watermark capacity study's estimate: the generalised mutual information of code-bit LLRs
behaves as an information measure (all of it for clean LLRs, none for noise, a binary symmetric
channel's capacity for a BSC), and a marked clip read at its geometry carries every code bit."""

from __future__ import annotations

import math

import numpy as np

from benchmarks.robustness.watermark_capacity import channel_bits, gmi_bits
from evalkit.provenance.watermark import embed, get_config, make_key
from evalkit.world import WorldConfig, make_clip


def test_gmi_is_an_information_measure():
    rng = np.random.default_rng(0)
    n = 4000
    sign = rng.choice([-1.0, 1.0], n)
    assert gmi_bits(20.0 * sign, sign) > 0.99 * n                      # certain and right
    assert gmi_bits(rng.normal(0, 3, n), sign) < 0.01 * n              # unrelated to the bits
    flip = np.where(rng.random(n) < 0.1, -1.0, 1.0)                    # a BSC with p = 0.1
    capacity = 1 + 0.1 * math.log2(0.1) + 0.9 * math.log2(0.9)
    assert abs(gmi_bits(math.log(9) * sign * flip, sign) / n - capacity) < 0.03
    # overconfident LLRs are rescaled, not penalised: the same BSC at 10x the LLR
    assert abs(gmi_bits(10 * math.log(9) * sign * flip, sign) / n - capacity) < 0.03


def test_a_clean_marked_clip_carries_every_code_bit_and_noise_carries_none():
    cfg = get_config("default")
    frames = make_clip("test", 0, 3, WorldConfig(frames=16, size=64)).frames
    key = make_key("capacity test")
    marked = embed(frames, b"capacity", key, cfg)
    bits, n_code = channel_bits(marked, b"capacity", key, cfg)
    assert n_code > 88 and bits > 0.95 * n_code
    # the unmarked clip read against the same payload carries nothing
    bits0, _ = channel_bits(frames, b"capacity", key, cfg)
    assert bits0 < 0.1 * n_code
