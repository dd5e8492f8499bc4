"""Greyscale and desaturated copies of clips marked in Cr (160 px and more on the short side):
the luma companion (`WatermarkConfig.grey_companion`, `wm_scheme.embed_plan`) keeps a mark where
the colour is gone, the colour copy still reads from Cr first, and grey clips without the mark
are not called marked."""

from __future__ import annotations

import math
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image, ImageEnhance

from evalkit.provenance import wm_grid, wm_read, wm_scheme
from evalkit.provenance.watermark import WatermarkConfig, detect, embed, get_config, make_key
from evalkit.provenance.wm_confirm import confirm_payload
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.video import psnr, read_video, write_video
from evalkit.world import WorldConfig, make_clip

PAYLOAD = bytes.fromhex("9e7a11c0ffee2024")
BT601 = np.array([0.299, 0.587, 0.114], np.float32)


def world(i, size, frames=12, noise=0.0, seed=5):
    return make_clip("test", i, seed, WorldConfig(frames=frames, size=size, noise=noise)).frames


def grey(frames, weights=BT601):
    y = np.clip(np.rint(frames.astype(np.float32) @ weights), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=-1)


def through_filter(src, dst, chain: str, crf: int) -> np.ndarray:
    """What `ffmpeg -i src -vf CHAIN -c:v libx264 -crf CRF dst` does, through PyAV's libavfilter."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        s = inp.streams.video[0]
        o = out.add_stream("libx264", rate=Fraction(8))
        o.width, o.height, o.pix_fmt = s.codec_context.width, s.codec_context.height, "yuv420p"
        o.options = {"crf": str(crf)}
        g = av.filter.Graph()
        last = g.add_buffer(template=s)
        for part in chain.split(",") + ["format=yuv420p"]:
            name, _, args = part.partition("=")
            node = g.add(name, args)
            last.link_to(node)
            last = node
        sink = g.add("buffersink")
        last.link_to(sink)
        g.configure()
        for fr in inp.decode(s):
            g.push(fr)
            of = g.pull()
            of.pts = None
            for p in o.encode(of):
                out.mux(p)
        for p in o.encode():
            out.mux(p)
    return read_video(dst).frames


@pytest.fixture(scope="module")
def key():
    return make_key(b"greyscale copies")


def test_companion_is_a_weak_luma_copy_of_the_code_on_the_luma_plan(key):
    """A Cr-profile plan gains the luma profile's plan at a fifth of its step, its Cr steps
    shrink so the PSNR stays; a luma-profile plan is left as it was."""
    cfg = get_config()
    luma, cr = (wm_scheme.make_plan(key, 16, cfg, 88, DEFAULT_CODE, p) for p in (0, 1))
    both = wm_scheme.embed_plan(key, 16, cfg, 88, DEFAULT_CODE, 1)
    y = both.chan == 0
    assert np.allclose(both.step[y], 0.2 * luma.step[y]) and np.array_equal(both.codebit[y], luma.codebit[y])
    assert np.array_equal(both.dither[y], luma.dither[y])
    assert np.allclose(both.step[~y], math.sqrt(1 - 0.04) * cr.step[~y])
    assert np.array_equal(both.codebit[~y], cr.codebit[~y])
    assert wm_scheme.embed_plan(key, 16, cfg, 88, DEFAULT_CODE, 0) is wm_scheme.make_plan(key, 16, cfg, 88, DEFAULT_CODE, 0)
    assert wm_scheme.prior_gains(cfg, 0)[-1] == 0.2 and wm_scheme.companion_gain(cfg, 1) is None
    assert wm_scheme.companion_gain(WatermarkConfig(grey_companion=0.0), 0) is None
    with pytest.raises(ValueError, match="grey_companion"):
        WatermarkConfig(grey_companion=0.9)


@pytest.mark.parametrize("size,noise,crf", [(192, 0.0, None), (256, 2.0, 23)])
def test_greyscale_copy_keeps_the_payload(key, tmp_path, size, noise, crf):
    """BT.601 greyscale (what PIL's convert("L") and OpenCV's RGB2GRAY make), as it is or then
    H.264 CRF 23 (on flat content of 160-224 px the weak companion does not survive a re-encode
    of the grey copy: `watermark`'s docstring)."""
    f = world(1, size, noise=noise)
    m = embed(f, PAYLOAD, key)
    assert psnr(m, f) >= 42.0
    # a colour copy still reads from Cr, at once
    d = detect(m, key)
    assert d.payload == PAYLOAD and d.geometry["profile"] == 1 and d.geometry["attempts"] == 1
    g = grey(m) if crf is None else read_video(write_video(tmp_path / "g.mp4", grey(m), fps=8.0, crf=crf)).frames
    d = detect(g, key)
    assert d.detected and d.payload == PAYLOAD
    assert d.geometry["part"] == "luma companion" and d.geometry["profile"] == 0
    assert abs(d.geometry["gain"] - 1.0) < 0.05  # reported against the companion's own strength
    # a mark without the companion (every mark before session 36) leaves nothing in the grey copy
    old = grey(embed(f, PAYLOAD, key, WatermarkConfig(grey_companion=0.0)))
    d, _ = wm_read.read_mean(wm_grid.mean_frame(old), get_config(), key, 64)
    assert d.p_value > 1e-3 and d.payload is None


def test_ffmpeg_gray_filter_copy_of_the_signed_file_keeps_the_payload(key, tmp_path, real_videos_dir):
    """The file `sign --watermark` writes (H.264 CRF 18, BT.601 tagged) made grey by ffmpeg's
    `format=gray` and by `hue=s=0` (both keep its luma plane), re-encoded at CRF 18."""
    f = read_video(real_videos_dir / "bikes.mp4", max_frames=12).frames
    src = write_video(tmp_path / "signed.mp4", embed(f, PAYLOAD, key), fps=8.0, crf=18)
    for i, chain in enumerate(("format=gray", "hue=s=0")):
        g = through_filter(src, tmp_path / f"grey{i}.mp4", chain, 18)
        assert np.abs(g[..., 0].astype(int) - g[..., 2]).max() <= 1  # really grey
        d = detect(g, key)
        assert d.payload == PAYLOAD and d.geometry["part"] == "luma companion", chain


def test_excerpt_of_a_greyscale_copy_of_long_footage(key, real_videos_dir):
    """A long clip is marked in 32-frame segments; the window scan and the segments' combined
    decode of an excerpt take the luma companion as the a-priori geometry of a grey copy."""
    f = read_video(real_videos_dir / "bikes.mp4", max_frames=96).frames
    g = grey(embed(f, PAYLOAD, key))[13:88]
    assert wm_read.a_priori_mark(wm_grid.mean_frame(g), get_config()) == (0, 0.2)
    assert wm_read.a_priori_mark(wm_grid.mean_frame(f), get_config()) == (1, 1.0)
    d = detect(g, key)
    assert d.payload == PAYLOAD and d.geometry["part"] == "luma companion"
    assert d.geometry["frames"] != (0, 75)  # a window's read, not the whole excerpt's


def test_desaturated_and_contrast_changed_grey_copies(key):
    """Colour turned down to 0.3 (PIL's ImageEnhance.Color: about BT.601 luma, so the Cr mark
    reads at 0.3, below the gain search) reads from the companion a priori; so does a greyscale
    copy whose contrast was also raised by 15% (the companion's own gain search, or a priori
    where the picture is flat enough that the gain barely moves its coefficients)."""
    f = world(2, 224)
    m = embed(f, PAYLOAD, key)
    pale = np.stack([np.asarray(ImageEnhance.Color(Image.fromarray(x)).enhance(0.3)) for x in m])
    d = detect(pale, key)
    assert d.payload == PAYLOAD
    g = grey(m).astype(np.float32)
    mid = g.mean()
    punchy = np.clip(np.rint((g - mid) * 1.15 + mid), 0, 255).astype(np.uint8)
    d = detect(punchy, key)
    assert d.payload == PAYLOAD and d.geometry["part"] == "luma companion"


def test_known_payload_test_reads_the_companion_too(key):
    f = world(3, 192, noise=2.0)
    g = grey(embed(f, PAYLOAD, key))
    c = confirm_payload(g, key, PAYLOAD)
    assert c.detected and c.geometry["profile"] == 0
    other = bytes.fromhex("9e7a11c0ffee2025")
    assert not confirm_payload(g, key, other).detected


def test_colourless_frames_read_luma_only():
    cfg = get_config()
    f = world(4, 192)
    assert not wm_read.colourless(wm_grid.planes(wm_grid.mean_frame(f), cfg.channels), cfg)
    assert wm_read.colourless(wm_grid.planes(wm_grid.mean_frame(grey(f)), cfg.channels), cfg)
    tinted = grey(f).astype(np.int16)
    tinted[..., 0] += 3  # a sepia-like tint: one colour everywhere is still no colour detail
    mean = wm_grid.mean_frame(np.clip(tinted, 0, 255).astype(np.uint8))
    assert wm_read.colourless(wm_grid.planes(mean, cfg.channels), cfg)


def test_grey_clips_without_the_mark_are_not_called_marked():
    """The grey read's own search (luma profile about gain 1 and about the companion's gain, the
    colour profiles skipped) under the null: unmarked grey clips (world renders, a clip marked
    with another key, greyscale footage-like noise) give no small p-value over many keys, and
    the full detector calls none of a few marked."""
    cfg = get_config()
    clips = [grey(world(i, s, frames=8)) for i, s in ((5, 160), (6, 192), (7, 256))]
    clips.append(grey(embed(world(8, 192), PAYLOAD, make_key(b"someone else"))))
    rng = np.random.default_rng(0)
    clips.append(np.repeat(rng.integers(60, 200, (6, 176, 208, 1), dtype=np.uint8), 3, axis=-1))
    ps = []
    for ci, c in enumerate(clips):
        mean = wm_grid.mean_frame(c)
        for k in range(6):
            d, _ = wm_read.read_mean(mean, cfg, make_key(f"null {ci} {k}"), 64)
            ps.append(d.p_value)
    assert min(ps) > 1e-4  # 30 reads: far from the 1e-6 threshold, and the p-values are spread
    assert np.mean(np.array(ps) > 0.5) > 0.3
    assert not detect(clips[0][:6], make_key("null full")).detected
