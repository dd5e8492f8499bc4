"""The part of a screen recording that plays: a rectangle where every pixel changes, inside an
interface that stands still (session 35).

A clip played in a window and recorded is a picture of the window: its title bar, menus, toolbar,
side panel and status bar hold text and edges that correlate at every distance, so noise played
inside read as a picture (session 32's `screenrec` edit of `control:noise`; session 35: 120 of 120
recordings of 32-64 px noise upscaled 2-28x into windows on 480p-1080p screens, 111 of them
caught since). The noise checks judge the playing rectangle instead, as they judge the picture
inside letterbox bars. Footage moves almost everywhere (its rectangle is the frame) or in shapes
that are not a filled rectangle (a person before a still background), and keeps its whole frame:
none of 6,071 clips of the four recordings, their crops, thumbnails and edits changed verdict.
A mouse pointer resting over the played noise stays in the rectangle, and over bilinear noise it
is one small sharp object in one place, which `upscaled_noise` keeps a picture (9 of 17).
"""

from __future__ import annotations

import numpy as np

CHANGE_MIN = 2.0  # luma levels a frame: a pixel plays where it changes more (a codec's flicker less)
FILLED = 0.9  # share of the rectangle's pixels that change: every one of a playing video's
STILL_AROUND = 0.05  # share of the pixels around it that may change (a cursor, a clock)
MIN_SIDE = 32  # px
MAX_SHARE = 0.8  # of the frame's area: a larger rectangle is the frame, bars or not


def _longest_run(mask: np.ndarray) -> tuple[int, int]:
    """[start, stop) of the longest run of True in a 1-D mask ((0, 0) when none)."""
    best, start = (0, 0), None
    for i, m in enumerate(np.append(mask, False)):
        if m and start is None:
            start = i
        elif not m and start is not None:
            best = max(best, (start, i), key=lambda r: r[1] - r[0])
            start = None
    return best


def playing_region(y: np.ndarray) -> tuple[slice, slice] | None:
    """(rows, cols) of the rectangle of the luma frames [T, H, W] that plays while all around it
    stands still, or None (footage, one frame, or no such rectangle)."""
    t, h, w = y.shape
    if t < 2:
        return None
    playing = np.abs(np.diff(y, axis=0)).mean(axis=0) > CHANGE_MIN  # [H, W]
    rows = _longest_run(playing.mean(axis=1) >= 0.5 * playing.mean(axis=1).max(initial=0))
    cols = _longest_run(playing[rows[0]:rows[1]].mean(axis=0) >= FILLED) if rows[1] > rows[0] else (0, 0)
    if cols[1] - cols[0] < MIN_SIDE:
        return None
    rows = _longest_run(playing[:, cols[0]:cols[1]].mean(axis=1) >= FILLED)
    r, c = slice(*rows), slice(*cols)
    inside = playing[r, c]
    if min(inside.shape) < MIN_SIDE or inside.size > MAX_SHARE * h * w or inside.mean() < FILLED:
        return None
    outside = (playing.sum() - inside.sum()) / max(h * w - inside.size, 1)
    return (r, c) if outside <= STILL_AROUND else None
