"""Sample grids: layout, letterboxing, labels, atomic PNG writing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evalkit.clip import Clip
from evalkit.grid import frame_grid, save_png


def _ramp(t: int, h: int, w: int) -> np.ndarray:
    """Frame i is filled with value 10 * i: which frames were picked is readable from pixels."""
    return np.broadcast_to((np.arange(t, dtype=np.uint8) * 10)[:, None, None, None], (t, h, w, 3)).copy()


def test_shape_dtype_rows_and_default_cell():
    clips = [Clip(_ramp(16, 32, 32)), _ramp(16, 32, 32), Clip(_ramp(9, 32, 32))]
    g = frame_grid(clips, frames_per_row=4, pad=2)
    assert g.dtype == np.uint8 and g.ndim == 3 and g.shape[2] == 3
    cell = 96  # 32 px enlarged by 3, the smallest whole factor reaching 96
    assert g.shape == (2 + 3 * (cell + 2), 2 + 4 * (cell + 2), 3)
    # Evenly spaced from first to last: frames 0, 5, 10, 15 of a 16-frame clip.
    centres = [g[2 + cell // 2, 2 + j * (cell + 2) + cell // 2, 0] for j in range(4)]
    assert centres == [0, 50, 100, 150]
    # Third row: 9 frames -> 0, 3, 5, 8 (rounded linspace).
    y = 2 + 2 * (cell + 2) + cell // 2
    assert [g[y, 2 + j * (cell + 2) + cell // 2, 0] for j in range(4)] == [0, 30, 50, 80]


def test_short_clip_leaves_cells_empty_rather_than_repeating():
    g = frame_grid([_ramp(2, 96, 96) + 100], frames_per_row=4, pad=0)
    assert g.shape == (96, 4 * 96, 3)
    assert g[48, 48, 0] == 100 and g[48, 96 + 48, 0] == 110
    assert (g[:, 2 * 96:] == 32).all()  # background, not frames


def test_nearest_neighbour_is_pixel_exact():
    f = np.zeros((1, 4, 4, 3), np.uint8)
    f[0, 0, 0] = 255
    g = frame_grid([f], frames_per_row=1, pad=0)  # 4 px -> 96 px, factor 24
    assert g.shape == (96, 96, 3)
    assert (g[:24, :24] == 255).all() and (g[24:, :] == 0).all() and (g[:24, 24:] == 0).all()


def test_different_sizes_are_letterboxed_to_one_cell():
    wide = np.full((3, 32, 64, 3), 200, np.uint8)
    tall = np.full((3, 64, 32, 3), 100, np.uint8)
    g = frame_grid([wide, tall], frames_per_row=2, pad=0)
    # cell = (64, 64) * 2 = 128 x 128: the wide clip is 64 x 128 centred with 32 px bars.
    assert g.shape == (256, 256, 3)
    row0 = g[:128, :128, 0]
    assert (row0[:32] == 0).all() and (row0[32:96] == 200).all() and (row0[96:] == 0).all()
    row1 = g[128:, :128, 0]
    assert (row1[:, :32] == 0).all() and (row1[:, 32:96] == 100).all() and (row1[:, 96:] == 0).all()
    # An explicit smaller cell downscales.
    small = frame_grid([wide], frames_per_row=1, cell=(16, 16), pad=0)
    assert small.shape == (16, 16, 3) and (small[4:12] == 200).all() and (small[:4] == 0).all()


def test_labels_change_pixels_and_height():
    clips = [_ramp(8, 32, 32), _ramp(8, 32, 32)]
    plain = frame_grid(clips, frames_per_row=2)
    labelled = frame_grid(clips, frames_per_row=2, labels=["a red ball falls", "ゲーム " + "x" * 500])
    assert labelled.shape[0] > plain.shape[0] and labelled.shape[1] == plain.shape[1]
    strip = labelled[2:2 + (labelled.shape[0] - plain.shape[0]) // 2]
    assert (strip != 32).any()  # text was drawn
    assert frame_grid(clips, frames_per_row=2, labels=[None, ""]).shape == plain.shape


def test_bad_inputs():
    with pytest.raises(ValueError, match="at least one"):
        frame_grid([])
    with pytest.raises(ValueError, match="clip 1"):
        frame_grid([_ramp(2, 8, 8), np.zeros((2, 8, 8, 3), np.float32)])
    with pytest.raises(ValueError, match="labels"):
        frame_grid([_ramp(2, 8, 8)], labels=["a", "b"])


def test_save_png_roundtrip_and_atomic(tmp_path):
    g = frame_grid([_ramp(8, 16, 16)], frames_per_row=3, labels=["x"])
    out = save_png(g, tmp_path / "sub" / "grid.png")
    assert out == tmp_path / "sub" / "grid.png"
    with Image.open(out) as im:
        assert im.format == "PNG" and np.array_equal(np.asarray(im), g)
    assert sorted(p.name for p in out.parent.iterdir()) == ["grid.png"]  # no temp file left
    with pytest.raises(ValueError):
        save_png(np.zeros((4, 4, 3), np.float32), tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
