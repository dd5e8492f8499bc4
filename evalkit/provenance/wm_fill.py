"""A picture scaled into a frame of another shape over a blurred copy of itself: the short-video
platforms' "blur-pad" reformat (a landscape clip scaled to the width of a 9:16 frame and centred,
the rows above and below filled with the same frames zoomed to cover and blurred; a portrait clip
into 16:9 with the fill left and right), then re-encoded.

Neither other finder sees the picture's box: the fill is not flat (`wm_grid.bars`) and moves with
the content (`wm_inset` wants persistent borders). What stays is that the fill is far smoother
than the picture: per line (a row, for fill above and below), the mean step between neighbours
along the line, in luma, is small in the fill and jumps where the picture starts. `find_fill`
takes the step of that profile across each line, its median over sampled frames (an edge
that persists: half the frames step there at least), the strongest rise in the first half and
fall in the second, and calls it a fill when the lines outside are at most `FILL_RATIO` as sharp
as those inside. Session 38, blur-padded clips then H.264 CRF 23: before, 6 of 20 payloads (read
only where `wm_inset` or `bars` found a box by chance); the numbers after are in the README.

The picture was resized (to the frame's width or height), so `read_fill` searches every grid and
profile (`search_lattice`), not a-priori ones; the codec blurs the edges by a line or so, so every
box with each measured edge moved by up to `REACH` px is scored by the sign-blind lattice fit, as
given and mirrored, and the best box of each is searched in full and decoded. One read in
`watermark.detect`'s union bound, whose presence bound counts every (box, plan, gain) scored.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_read import Detection, box_fits, read_candidates, search_lattice
from evalkit.provenance.wm_scheme import WatermarkConfig, WatermarkKey, choose_profile, make_plan, plan_coeffs

FILL_RATIO = 0.35  # the fill's median line sharpness is at most this share of the picture's
MIN_FILL = 0.05    # each side's fill spans at least this share of the axis
MIN_PICTURE = 0.2  # and the picture at least this share (a 2.39:1 film in 9:16 spans 0.24)
MIN_PX = 48        # and at least this many pixels (as `wm_inset`: no smaller picture holds a mark)
EDGE_STEP = math.log(1.5)  # the sharpness rises by this factor at each edge in at least half the frames
SMOOTH = 0.05      # levels added before the log: a flat fill and flat picture lines compare as equal
WINDOW = 3         # lines averaged each side of an edge (the codec smears it over a line or two)
REACH = 2          # px: how far each true edge may lie from the measured one
CENTRED = 0.02     # the two fills' widths differ by at most this share of the axis (or 2 REACH px)
MAX_FRAMES = 16


def _sharpness(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows [t, H], columns [t, W]): each sampled frame's mean absolute luma step between
    neighbours along each row, and down each column."""
    idx = np.unique(np.linspace(0, frames.shape[0] - 1, min(MAX_FRAMES, frames.shape[0])).astype(int))
    rows, cols = [], []
    for i in idx:
        y = cv2.cvtColor(np.ascontiguousarray(frames[i]), cv2.COLOR_RGB2GRAY)     # uint8 [H, W]
        rows.append(cv2.absdiff(y[:, 1:], y[:, :-1]).mean(axis=1))
        cols.append(cv2.absdiff(y[1:], y[:-1]).mean(axis=0))
    return np.log(np.array(rows) + SMOOTH), np.log(np.array(cols) + SMOOTH)


def _edges(lt: np.ndarray) -> tuple[float, int, int] | None:
    """(strength, first, end) of the picture's lines [first, end) along one axis, given each
    sampled frame's log sharpness per line `lt` [t, n]; None where no fill surrounds it."""
    n = lt.shape[1]
    m = max(WINDOW, int(MIN_FILL * n))
    if n < 2 * m + MIN_PICTURE * n or n < 4 * WINDOW:
        return None
    c = np.concatenate([np.zeros((lt.shape[0], 1)), np.cumsum(lt, axis=1)], axis=1)  # [t, n+1]
    e = np.arange(WINDOW, n - WINDOW + 1)
    rise_t = (c[:, e + WINDOW] - 2 * c[:, e] + c[:, e - WINDOW]) / WINDOW  # [t, edges]: after - before
    rise = np.median(rise_t, axis=0)
    top = (e >= m) & (e <= n // 2)
    bottom = (e >= n // 2) & (e <= n - m)
    a = int(e[top][np.argmax(rise[top])])
    b = int(e[bottom][np.argmin(rise[bottom])])
    # the reformat centres the picture (ffmpeg's overlay=(W-w)/2:(H-h)/2): a smooth sky above
    # a textured ground is not taken for a fill
    if b - a < max(MIN_PICTURE * n, MIN_PX) or abs(a - (n - b)) > max(2 * REACH, CENTRED * n):
        return None
    prof = np.median(lt, axis=0)
    inside = np.exp(np.median(prof[a:b])) - SMOOTH
    # each side's fill on its own (a sharp subject over a blurred background, one side only, read
    # as a fill when both were pooled: session 38's review, a portrait crop of the bikes footage)
    outside = max(np.exp(np.median(prof[:a])), np.exp(np.median(prof[b:]))) - SMOOTH
    # the median over frames: an edge where half the frames step at least, a persistent one
    step = min(rise[a - WINDOW], -rise[b - WINDOW])
    if outside > FILL_RATIO * inside or step < EDGE_STEP:
        return None
    return float(step), a, b


def find_fill(frames: np.ndarray) -> tuple[int, int, int, int] | None:
    """The box (y0, y1, x0, x1) in pixels of uint8 frames [T, H, W, 3] of a picture centred with a
    smooth fill above and below it, or left and right (the stronger where both), or None."""
    t, h, w = frames.shape[:3]
    if t < 2:
        return None
    rows, cols = _sharpness(frames)
    # a fill above and below makes a frame at least as tall as it is wide (landscape into portrait
    # or square), a fill left and right one at least as wide
    found = [(r[0], (r[1], r[2], 0, w)) for r in [_edges(rows) if h >= w else None] if r] + \
            [(c[0], (0, h, c[1], c[2])) for c in [_edges(cols) if w >= h else None] if c]
    return max(found)[1] if found else None


def fill_box(frames: np.ndarray, cut: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """`find_fill`, unless the box is the one inside the clip's flat bars `cut` (`wm_grid.bars`,
    read already by the bar views and `wm_bars`): a black letterbox is the smoothest fill."""
    box = find_fill(frames)
    h, w = frames.shape[1:3]
    inner = (cut[0], h - cut[1], cut[2], w - cut[3])
    if box is None or (any(cut) and all(abs(a - b) <= REACH for a, b in zip(box, inner))):
        return None
    return box


def fill_candidates(mean: np.ndarray, box: tuple[int, int, int, int], cfg: WatermarkConfig, key: WatermarkKey,
                    n_info: int, reach: int = REACH) -> tuple[list, int, int, dict]:
    """Score every box with the filled axis' edges within `reach` px of `box` in the mean frame
    float32 [H, W, 3], as given and mirrored, by the sign-blind lattice fit of every plan at every
    fourth gain; search the best box of each view in full (`search_lattice`, no centre crops).
    Returns (candidates, each tagged with its `view`; the points scored and searched; the profile
    the embedder would pick for the picture's size; {view: box in that view})."""
    h, w = mean.shape[:2]
    y0, y1, x0, x1 = box
    moves = range(-reach, reach + 1)
    boxes = [(y0 + a, y1 + b, x0, x1) for a in moves for b in moves] if x1 - x0 == w else \
        [(y0, y1, x0 + a, x1 + b) for a in moves for b in moves]
    boxes = [b for b in boxes if 0 <= b[0] < b[1] <= h and 0 <= b[2] < b[3] <= w]
    if not boxes:  # (only a box given from outside the frame: `find_fill`'s lie inside)
        return [], 0, 0, {}
    gains = np.exp(np.linspace(math.log(cfg.gain_range[0]), math.log(cfg.gain_range[1]), cfg.gain_steps))[::4]
    plans = [make_plan(key, g, cfg, n_info, DEFAULT_CODE, p)
             for p in range(len(cfg.profiles)) for g in cfg.grid_sizes]
    n_points, best = 0, {}
    for view, frame in (("blur-fill", mean), ("blur-fill-mirrored", mean[:, ::-1])):
        integs = [geo.Integral(p) for p in geo.planes(np.ascontiguousarray(frame), cfg.channels)]
        # a mirrored view swaps the box's left and right; each box is the frame in its picture's unit square
        bx = [(a, b, c, d) if view == "blur-fill" else (a, b, w - d, w - c) for a, b, c, d in boxes]
        units = np.array([(-a / (b - a), (h - a) / (b - a), -c / (d - c), (w - c) / (d - c))
                          for a, b, c, d in bx], np.float64)                          # [B, 4]
        for plan in plans:
            if min(min(b - a, d - c) for a, b, c, d in bx) / plan.g < 2.0:
                continue
            v, valid = plan_coeffs(integs, plan, cfg, units)                          # [B, n]
            fits = box_fits(v, valid, plan.step, plan.dither, gains).max(axis=1)      # [B]
            n = valid.sum(axis=1)
            z = np.where(n >= 24, fits / np.sqrt(np.maximum(n, 1) / 2), -np.inf)
            n_points += len(bx) * gains.size
            i = int(np.argmax(z))
            if z[i] > best.get(view, (-np.inf,))[0]:
                best[view] = (float(z[i]), bx[i], frame)
    cands, n_search, guess = [], n_points, 0
    for view, (_, (a, b, c, d), frame) in best.items():
        pic = np.ascontiguousarray(frame[a:b, c:d])
        cs, ns = search_lattice(geo.planes(pic, cfg.channels), cfg, key, n_info, crops=(1.0,))
        for cand in cs:
            cand.view = view
        cands += cs
        # the box searched was chosen by the data (sign-blind), so the bound counts the search of
        # any of them (session 38's review: 4.8x more than the one searched)
        n_search += ns * len(boxes)
        guess = choose_profile(pic, cfg)
    return cands, n_search, guess, {view: b[1] for view, b in best.items()}


def as_given(view: str, box: tuple, w: int) -> tuple[int, int, int, int]:
    """A box of `view` in the clip as given (a mirrored view swaps left and right)."""
    a, b, c, d = (int(x) for x in box)
    return (a, b, c, d) if view == "blur-fill" else (a, b, w - d, w - c)


def read_fill(mean: np.ndarray, box: tuple[int, int, int, int], cfg: WatermarkConfig, key: WatermarkKey,
              payload_bits: int, reach: int = REACH) -> Detection:
    """`detect` on the picture at `box` (`find_fill`) in the mean frame float32 [H, W, 3]: the
    candidates of `fill_candidates` decoded together, as one view's are (`read_candidates`), the
    presence bound counting every point scored and searched."""
    cands, n_search, guess, boxes = fill_candidates(mean, box, cfg, key, payload_bits + cfg.mac_bits, reach)
    reported: list = []
    d, _ = read_candidates(cands, n_search, guess, cfg, key, payload_bits, reported)
    view = getattr(reported[0], "view", "blur-fill") if reported else "blur-fill"
    d.geometry.update(view=view, fill_box=as_given(view, boxes.get(view, box), mean.shape[1]),
                      fill_measured=tuple(int(x) for x in box))
    return d


__all__ = ["REACH", "as_given", "fill_box", "fill_candidates", "find_fill", "read_fill"]
