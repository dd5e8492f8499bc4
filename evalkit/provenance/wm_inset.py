"""Where a marked picture sits inside a larger frame (`wm_grid.views`): picture-in-picture, a
split screen beside another video, a player window in a screen recording.

The mark is read on the temporal mean of the frame the embedder marked, so a picture laid shrunk
into another video's frame is not found by reading the whole frame (measured: a marked 1280x720
recording laid at half size into a corner or the centre of another 720p video, CRF 23: no
detection; the same frames cut back to the inset: payload read, p 1e-141, and still with the box
off by 2-3 px, p 1e-48 or less). Flat bars are `wm_grid.bars`' case; here the surround moves.

An inset's border is an edge at a fixed place in every frame, while the edges of moving content
come and go. So the finder takes the 20th percentile over time of each pixel's step to its right
and lower neighbour, in the colour channel that steps most (two pictures can meet at equal luma;
an edge present in at least 80% of the frames survives). The strongest column and row lines of
those maps are candidate sides, the frame's own edges too, and a rectangle counts when 85% of
every inner side reaches `MIN_STEP` (or three times the frame's median persistent step where
that is higher: in noise every line steps) and its inside is a picture (its mean luma spreads by
`MIN_TEXTURE`, so the outline of a flat object that never moves is not one). More inner sides
rank first, then the weakest side. Static scenery has persistent edges too (a car's window
frame), so a found box is only one more view to read, never a finding: its read counts in the
detector's union bound like every other view.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_STEP = 5.0     # levels: the step 85% of every inner side reaches (`_along`). Measured (session 28):
#                    found in 5 of 5 picture-in-picture and split-screen clips (CRF 23), in 0 of 240
#                    world clips, in 3 of 43 24-frame windows of ten real recordings without an inset
#                    and in none of five random-noise clips
#                    (static scenery: each costs one more view read, never a detection)
MIN_TEXTURE = 6.0  # luma levels: a picture's spread inside the box (a flat object's outline is no inset)
MIN_SIDE = 0.12    # the inset spans at least this share of the frame's height and of its width
#                    (0.25 until session 36: a player window in a recorded desktop is often smaller;
#                    boxes in clips without an inset, 24-frame windows of the four real videos and
#                    240 world clips: 9 of 265 against 3, each one more view read)
MIN_PX = 48        # and at least this many pixels a side: under it no mark can be read (32 is the floor)
MAX_AREA = 0.9     # and at most this share of its area (a thin border is not an inset)
MARGIN = 4         # px: lines this close to the frame's edge are the edge's (codec ringing)
MAX_FRAMES = 16    # frames sampled evenly to judge persistence
SHORT_SIDE = 360   # frames are shrunk by a whole factor to about this short side first


def _lines(profile: np.ndarray, k: int = 8, sep: int = 3) -> list[int]:
    """The `k` strongest positions of a line profile, at least `sep` apart."""
    out: list[int] = []
    for i in np.argsort(profile)[::-1]:
        if all(abs(int(i) - j) > sep for j in out):
            out.append(int(i))
        if len(out) == k:
            break
    return out


def find_insets(frames: np.ndarray, limit: int = 2) -> list[tuple[int, int, int, int]]:
    """Up to `limit` boxes (y0, y1, x0, x1), in pixels of uint8 frames [T, H, W, 3], of pictures
    laid inside the frame with persistent borders, best first; two boxes overlap by less than
    half (a split screen: each half)."""
    t, h, w = frames.shape[:3]
    if t < 2:
        return []
    k = max(1, min(h, w) // SHORT_SIDE)
    idx = np.unique(np.linspace(0, t - 1, min(MAX_FRAMES, t)).astype(int))
    steps_x, steps_y, lumas = [], [], []
    for i in idx:
        f = frames[i] if k == 1 else cv2.resize(frames[i], (w // k, h // k), interpolation=cv2.INTER_AREA)
        f = np.ascontiguousarray(f)                  # uint8 [h, w, 3]
        lumas.append(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))
        # the largest channel's step: two pictures can meet at equal luma but seldom in all colours
        # (uint8 absolute differences by OpenCV: 3x faster than numpy's in float)
        dx, dy = cv2.absdiff(f[:, 1:], f[:, :-1]), cv2.absdiff(f[1:], f[:-1])
        steps_x.append(np.maximum(np.maximum(dx[..., 0], dx[..., 1]), dx[..., 2]))   # [h, w-1]: columns x | x+1
        steps_y.append(np.maximum(np.maximum(dy[..., 0], dy[..., 1]), dy[..., 2]))   # [h-1, w]
    q = max(0, int(0.2 * len(idx)) - 1)              # the 20th percentile over time
    ex = np.partition(np.stack(steps_x), q, axis=0)[q].astype(np.float32)
    ey = np.partition(np.stack(steps_y), q, axis=0)[q].astype(np.float32)
    luma = np.mean(lumas, axis=0, dtype=np.float64)  # [h, w]: the sampled frames' mean
    hs, ws = h // k, w // k
    # A border must stand out from the frame's own persistent steps: in noise (or a clip of a
    # few frames) every pixel steps in every frame, and every line would pass MIN_STEP
    floor = max(MIN_STEP, 3.0 * float(np.median(ex)), 3.0 * float(np.median(ey)))
    m = max(1, MARGIN // k)
    xs = sorted({x for x in _lines(ex.mean(axis=0)) if m <= x + 1 <= ws - m} | {-1, ws - 1})
    ys = sorted({y for y in _lines(ey.mean(axis=1)) if m <= y + 1 <= hs - m} | {-1, hs - 1})
    # Running sums: a side's mean and a box's luma spread in O(1) for each of the ~2,000 boxes
    cx = np.vstack([np.zeros((1, ex.shape[1])), np.cumsum(ex, axis=0, dtype=np.float64)])     # down columns
    cy = np.hstack([np.zeros((ey.shape[0], 1)), np.cumsum(ey, axis=1, dtype=np.float64)])     # along rows
    sat = cv2.integral(luma.astype(np.float64))                                             # [h+1, w+1]
    sat2 = cv2.integral(luma.astype(np.float64) ** 2)
    strength: dict = {}  # a side's `_along`, by (line, span): boxes share their sides

    def side(kind: str, at: int, lo: int, hi: int) -> float | None:
        """The side's strength, or None when its mean already rules it out (85% of a side at
        `floor` or more put its mean at 0.85 `floor` or more)."""
        key = (kind, at, lo, hi)
        if key not in strength:
            mean = ((cx[hi, at] - cx[lo, at]) if kind == "x" else (cy[at, hi] - cy[at, lo])) / (hi - lo)
            strength[key] = None if mean < 0.85 * floor else _along(ex[lo:hi, at] if kind == "x" else ey[at, lo:hi])
        return strength[key]

    def spread(y0: int, y1: int, x0: int, x1: int) -> float:
        n = (y1 - y0) * (x1 - x0)
        s1 = sat[y1, x1] - sat[y0, x1] - sat[y1, x0] + sat[y0, x0]
        s2 = sat2[y1, x1] - sat2[y0, x1] - sat2[y1, x0] + sat2[y0, x0]
        return float(np.sqrt(max(s2 / n - (s1 / n) ** 2, 0.0)))

    found = []
    for a, xa in enumerate(xs):
        for xb in xs[a + 1:]:
            x0, x1 = xa + 1, xb + 1                    # columns [x0, x1)
            if x1 - x0 < max(MIN_SIDE * ws, MIN_PX / k):
                continue
            for c, ya in enumerate(ys):
                for yb in ys[c + 1:]:
                    y0, y1 = ya + 1, yb + 1
                    if y1 - y0 < max(MIN_SIDE * hs, MIN_PX / k) or (y1 - y0) * (x1 - x0) > MAX_AREA * hs * ws:
                        continue
                    sides = []
                    for kind, at, lo, hi, inner in (("x", x0 - 1, y0, y1, x0 > 0), ("x", x1 - 1, y0, y1, x1 < ws),
                                                    ("y", y0 - 1, x0, x1, y0 > 0), ("y", y1 - 1, x0, x1, y1 < hs)):
                        if inner:
                            sides.append(side(kind, at, lo, hi))
                            if sides[-1] is None or sides[-1] < floor:
                                break
                    if not sides or sides[-1] is None or min(sides) < floor or spread(y0, y1, x0, x1) < MIN_TEXTURE:
                        continue
                    found.append(((len(sides), float(min(sides))), (y0, y1, x0, x1)))
    kept: list[tuple[int, int, int, int]] = []
    for _, box in sorted(found, reverse=True):
        if len(kept) == limit:
            break
        if all(_overlap(box, other) < 0.5 for other in kept):
            kept.append(box)
    return [(y0 * k, y1 * k if y1 < hs else h, x0 * k, x1 * k if x1 < ws else w) for y0, y1, x0, x1 in kept]


def _along(side: np.ndarray) -> float:
    """A side's strength: the persistent step that 85% of its length reach (an inset's border
    runs its whole length, bar the odd stretch where the two pictures' colours meet; an
    object's edge covers only part of a line)."""
    return float(np.quantile(side, 0.15))


def _overlap(a: tuple, b: tuple) -> float:
    """Intersection over the smaller box's area."""
    dy = min(a[1], b[1]) - max(a[0], b[0])
    dx = min(a[3], b[3]) - max(a[2], b[2])
    if dy <= 0 or dx <= 0:
        return 0.0
    return dy * dx / min((a[1] - a[0]) * (a[3] - a[2]), (b[1] - b[0]) * (b[3] - b[2]))
