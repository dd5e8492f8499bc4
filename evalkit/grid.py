"""Sample grids: one row per clip, a few frames of each, for reports and MLflow artifacts.

Pixels are enlarged by an integer nearest-neighbour factor where possible, so that a 32x32
generator output is shown as its pixels, not as a blur that hides artefacts. Clips of different
sizes are letterboxed (black bars) into one cell size; grey padding separates cells.
"""

from __future__ import annotations

import math
import os
import secrets
from pathlib import Path
from typing import Sequence

import numpy as np
from evalkit.atomic import short_name

MIN_CELL = 96  # px: the smaller side of a default cell
_BG = (32, 32, 32)  # padding and label strips
_LETTERBOX = (0, 0, 0)
_TEXT = (235, 235, 235)


def _frames_of(clip, i: int) -> np.ndarray:
    """uint8 [T, H, W, 3] from a Clip (duck-typed: importing evalkit.clip would pull in torch)
    or from an array."""
    f = getattr(clip, "frames", clip)
    ok = isinstance(f, np.ndarray) and f.dtype == np.uint8 and f.ndim == 4 and f.shape[-1] == 3
    if not ok or not f.shape[0]:
        raise ValueError(f"clip {i}: expected a Clip or uint8 [T, H, W, 3] frames, got "
                         f"{getattr(f, 'dtype', type(f).__name__)} {getattr(f, 'shape', '')}")
    return f


def _cell_size(cell, frames: list[np.ndarray]) -> tuple[int, int]:
    if cell is None:
        h = max(f.shape[1] for f in frames)
        w = max(f.shape[2] for f in frames)
        k = max(1, math.ceil(MIN_CELL / min(h, w)))
        return h * k, w * k
    ch, cw = (cell, cell) if np.isscalar(cell) else cell
    if int(ch) < 1 or int(cw) < 1:
        raise ValueError(f"cell must be positive, got {cell!r}")
    return int(ch), int(cw)


def _fit(frames: np.ndarray, ch: int, cw: int) -> np.ndarray:
    """Nearest-neighbour resize of [K, H, W, 3] to fit (ch, cw), centred on black bars."""
    _, h, w, _ = frames.shape
    s = min(ch / h, cw / w)
    if s >= 1:
        s = math.floor(s)  # whole-pixel enlargement: every source pixel the same size
    nh, nw = max(1, min(ch, round(h * s))), max(1, min(cw, round(w * s)))
    rows = np.arange(nh) * h // nh
    cols = np.arange(nw) * w // nw
    out = np.empty((frames.shape[0], ch, cw, 3), np.uint8)
    out[:] = _LETTERBOX
    y0, x0 = (ch - nh) // 2, (cw - nw) // 2
    out[:, y0:y0 + nh, x0:x0 + nw] = frames[:, rows][:, :, cols]
    return out


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()  # FreeType when Pillow has it, else the latin-1 bitmap font


def _draw_label(draw, font, text: str, xy: tuple[int, int], max_w: int) -> None:
    text = " ".join(str(text).split())  # one line
    if draw.textlength(text, font=font) > max_w:
        while text and draw.textlength(text + "...", font=font) > max_w:
            text = text[:-1]
        text += "..."
    try:
        draw.text(xy, text, font=font, fill=_TEXT)
    except UnicodeEncodeError:  # the bitmap fallback font is latin-1 only
        draw.text(xy, text.encode("latin-1", "replace").decode("latin-1"), font=font, fill=_TEXT)


def frame_grid(clips: Sequence, *, frames_per_row: int = 8, cell=None,
               labels: Sequence[str | None] | None = None, pad: int = 2) -> np.ndarray:
    """uint8 [H, W, 3] image: one row per clip, `frames_per_row` frames evenly spaced from the
    first to the last frame. A clip shorter than that shows each of its frames once and leaves the
    rest of its row empty (repeating frames would make it look frozen).

    `cell`: int or (h, w) pixels per frame; default: the largest frame size enlarged by the smallest
    whole factor that makes its smaller side at least 96 px. `labels`: one short line per clip
    (None or "" for none), drawn above its row and cut with "..." to the grid's width.
    """
    clips = list(clips)
    if not clips:
        raise ValueError("frame_grid needs at least one clip")
    if frames_per_row < 1 or pad < 0:
        raise ValueError(f"frames_per_row must be >= 1 and pad >= 0, got {frames_per_row} and {pad}")
    if labels is not None and len(labels) != len(clips):
        raise ValueError(f"got {len(labels)} labels for {len(clips)} clips")
    frames = [_frames_of(c, i) for i, c in enumerate(clips)]
    ch, cw = _cell_size(cell, frames)

    font = label_h = None
    if labels is not None and any(labels):
        font = _font()
        label_h = font.getbbox("Ag")[3] + 4
    label_h = label_h or 0

    width = pad + frames_per_row * (cw + pad)
    row_h = label_h + ch + pad
    grid = np.empty((pad + len(clips) * row_h, width, 3), np.uint8)
    grid[:] = _BG
    for r, f in enumerate(frames):
        k = min(f.shape[0], frames_per_row)
        idx = np.linspace(0, f.shape[0] - 1, k).round().astype(int)
        cells = _fit(f[idx], ch, cw)
        y = pad + r * row_h + label_h
        for j in range(k):
            x = pad + j * (cw + pad)
            grid[y:y + ch, x:x + cw] = cells[j]

    if font is not None:
        from PIL import Image, ImageDraw

        im = Image.fromarray(grid)
        draw = ImageDraw.Draw(im)
        for r, text in enumerate(labels):
            if text:
                _draw_label(draw, font, text, (pad + 2, pad + r * row_h + 1), width - 2 * pad - 4)
        grid = np.asarray(im).copy()
    return grid


def save_png(image: np.ndarray, path) -> Path:
    """Write a uint8 [H, W, 3] (or [H, W], [H, W, 4]) image as PNG, atomically: a hidden temporary
    file in the same folder, then os.replace, so a reader never sees half a file."""
    from PIL import Image

    a = np.asarray(image)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (3, 4))):
        raise ValueError(f"save_png expects uint8 [H, W, 3], got {a.dtype} {a.shape}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Our own unique name opened with "x" (not mkstemp): the file gets the umask's permissions, not 0600.
    tmp = path.with_name(f".{short_name(path.name)}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with open(tmp, "xb") as fh:
            Image.fromarray(np.ascontiguousarray(a)).save(fh, format="PNG")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
