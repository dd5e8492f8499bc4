"""The reader's RGB against the exact colour-matrix conversion of the decoded YUV planes, and
animated images in a folder of clips (session 34)."""

from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from evalkit.clipset import video_files
from evalkit.metrics.score import score_folders
from evalkit.video import read_video

COLOURS = [(220, 40, 40), (40, 200, 60), (30, 60, 210), (250, 230, 20), (200, 100, 180), (0, 255, 255),
           (90, 50, 20), (128, 128, 128), (16, 16, 16), (245, 245, 245)]
KR_KB = {1: (0.2126, 0.0722), 6: (0.299, 0.114), 9: (0.2627, 0.0593), 2: (0.299, 0.114)}  # 2: untagged


def _flat_clip(path, space: int, full: bool, pix_fmt: str = "yuv420p"):
    """One flat colour a frame, converted by swscale with the tagged matrix, lossless H.264."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=10, options={"qp": "0", "preset": "ultrafast", "threads": "1"})
        s.width, s.height, s.pix_fmt = 32, 32, pix_fmt
        s.codec_context.colorspace, s.codec_context.color_range = space, 2 if full else 1
        for i, rgb in enumerate(COLOURS):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), rgb, np.uint8), format="rgb24")
            f = f.reformat(format=pix_fmt, dst_colorspace=None if space == 2 else space,
                           dst_color_range=2 if full else 1)
            f.pts = i
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def _planes(f) -> list[np.ndarray]:
    """A frame's Y, U, V planes as floats on the 8-bit scale, each colour sample repeated over the
    pixels it stands for (a pair, a 2x2 block)."""
    deep = f.format.components[0].bits > 8
    out = []
    for p in f.planes:
        a = np.frombuffer(p, np.uint16 if deep else np.uint8).reshape(p.height, -1)[:, :p.width] / (4 if deep else 1)
        out.append(np.repeat(np.repeat(a, f.height // p.height, 0), f.width // p.width, 1))
    return out


def _exact_rgb(path, space: int, full: bool) -> np.ndarray:
    """[T, H, W, 3] float RGB of each frame by the colour matrix, from the decoded planes."""
    kr, kb = KR_KB[space]
    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            y, u, v = _planes(f)
            scale = (255, 255) if full else (219, 224)
            y, cb, cr = (y - (0 if full else 16)) / scale[0], (u - 128) / scale[1], (v - 128) / scale[1]
            r, b = y + 2 * (1 - kr) * cr, y + 2 * (1 - kb) * cb
            out.append(np.clip(np.stack([r, (y - kr * r - kb * b) / (1 - kr - kb), b], -1), 0, 1) * 255)
    return np.array(out)


@pytest.mark.parametrize("space,full,pix_fmt", [(6, False, "yuv420p"), (1, False, "yuv420p"), (1, True, "yuv420p"),
                                                (9, False, "yuv420p"), (2, False, "yuv420p"),
                                                (1, False, "yuv420p10le"), (6, False, "yuv422p")])
def test_flat_colours_read_as_their_matrix_says(tmp_path, space, full, pix_fmt):
    """BT.601/709/2020, limited and full range, untagged (BT.601), 10-bit, 4:2:2: each pixel within
    rounding of the exact conversion. swscale's fast path read coloured pixels 1-1.6 levels dark
    (mean -1.0 on BT.601, -1.2 on BT.709, max error 2.4); the wrong matrix is off by up to 20."""
    p = _flat_clip(tmp_path / "c.mp4", space, full, pix_fmt)
    want = _exact_rgb(p, space, full)
    got = read_video(p).frames.astype(float)
    err = got - want
    assert np.abs(err).max() <= 0.51
    assert abs(err[:7].mean()) < 0.1  # the coloured frames: no bias
    shrunk = read_video(p, shrink=2).frames.astype(float)
    assert np.abs(shrunk - want.reshape(10, 16, 2, 16, 2, 3).mean((2, 4))).max() <= 0.51


def test_only_the_rounding_changes_and_edges_stay_put(tmp_path):
    """Against swscale's fast conversion, only the rounding changes: a colour edge stays where it is
    (interpolating the colour planes instead moved every edge half a pixel)."""
    from av.video.reformatter import VideoReformatter

    rgb = np.zeros((2, 32, 64, 3), np.uint8)
    rgb[:, :, :31], rgb[:, :, 31:] = (220, 40, 40), (40, 180, 60)
    rgb[:, 20:] = (30, 60, 210)
    from evalkit.video import write_video

    p = write_video(tmp_path / "e.mp4", rgb, fps=8, crf=0)
    with av.open(str(p)) as c:
        fast = np.stack([VideoReformatter().reformat(f, format="rgb24").to_ndarray() for f in c.decode(video=0)])
    got = read_video(p).frames.astype(int)
    assert np.abs(got - fast).max() <= 3
    assert (got - fast).mean() > 0.3  # the fast path's darkening is gone


def _animated(path, frames: int = 6, **kw):
    rng = np.random.default_rng(0)
    pics = [Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)) for _ in range(frames)]
    pics[0].save(path, save_all=True, append_images=pics[1:], duration=100, loop=0, **kw)
    return path


def test_a_folder_names_its_animated_webp_instead_of_passing_over_it(tmp_path):
    """An animated WebP (which ffmpeg cannot decode) is listed and so named with its reason; an
    animated PNG under .png is read; a still WebP beside the clips is a thumbnail, not a clip."""
    from evalkit.video import write_video

    rng = np.random.default_rng(1)
    for i in range(2):
        write_video(tmp_path / f"a_ball-{i}.mp4", rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8), fps=8)
    _animated(tmp_path / "a_ball-2.webp")
    _animated(tmp_path / "a_ball-3.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "thumb.webp")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "thumb.png")
    assert [f.name for f in video_files(tmp_path)] == ["a_ball-0.mp4", "a_ball-1.mp4", "a_ball-2.webp",
                                                       "a_ball-3.png"]
    assert read_video(tmp_path / "a_ball-3.png").frames.shape == (6, 32, 32, 3)
    res = score_folders(tmp_path, metrics=["flicker"], progress=False, skip_unreadable=True)
    assert [s["file"] for s in res["skipped"]] == [str(tmp_path / "a_ball-2.webp")]
    assert "animated WebP" in res["skipped"][0]["why"] and "\n" not in res["skipped"][0]["why"]
    assert res["metrics"]["flicker"]["n"] == 3
