"""The suspect's own 8-frame windows against the registered video's (session 35): what moves
where, which a temporal mean averages away.

An excerpt of a fast pan has a nearly flat mean frame, and so has the stretch of the registered
video it came from, so the mean frames agree, but a grey card with the mark copied on agrees
with them as well: the stretch could make such an excerpt "uncertain" at most. Their 8-frame
windows still differ from one another where the camera moved, and an excerpt's windows, laid in
step with the registered ones, change the same way; a copy on still content does not change at
all. `in_step` finds where in the registered video the suspect's windows change as the
registered windows do, and how far they are from it then; `still_copy` says where the
registered video moves and the suspect holds still (its own background, the mark copied on).

Only the change from window to window is compared (each window less the run's mean): the mean
frame is `registry_picture`'s. A registered stretch that changes by less than `FLOOR` levels
gives no evidence either way.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from evalkit.provenance import registry_picture as pic
from evalkit.provenance import registry_segments as seg
from evalkit.provenance import wm_grid as geo

MIN_WINDOWS = 2  # windows in step: one change from the one to the other at least
MAX_STARTS = 2048  # offsets tried at each speed: a long record's are stepped
MAX_FRAMES = 1024  # a suspect's frames held (shrunk): a longer one is compared by its first ones
SMALL = 32  # px: about the short side frames are shrunk to first (an area average, as the thumbnail's)
# A still suspect's windows do not change at all, which against a registered stretch changing
# by FLOOR to 2 FLOOR levels reads 0.5 to 1.0 (measured: 0.51-0.58 for grey cards with the mark of a
# fast pan copied on, runs/s35/registry); genuine excerpts of it in step read 0.02-0.04, at twice
# the speed 0.13-0.17: only a clearly close fit confirms an excerpt.
STEP_MATCH = 0.35
SPEEDS = (1.0, 2.0, 0.5)
# levels of change between windows that a still suspect must lack: a copy on a still picture holds
# 0.0-0.3 (codec noise, the mark), genuine excerpts of a world clip whose stretch changes by 1.5-2.9
# held 2.4-2.6 (runs/s35/registry)
STILL_FLOOR = 1.5  # as played, sped up by dropping every other frame, slowed by doubling each


def _layout(frames: np.ndarray, view: str | None, cut: tuple | None = None, fill: tuple | None = None):
    """The function that lays one frame [H, W, 3] as `wm_grid.views` (or a turn of
    `wm_grid.TURNS`) laid the mean frame of the view named `view`; the frame as it is for a view
    that reweights frames (a fade undone) or a name it does not know. `cut`: the bars the read
    cut off (`wm_grid.cut_read`), else those `wm_grid.bars` measures; `fill`: the box of a
    picture read over a blurred fill (`wm_grid.fill_read`, the "blur-fill" views)."""
    turns = dict(geo.TURNS)
    if view in turns:
        return turns[view]
    name = view or ""
    mirrored = name.endswith("mirrored")
    name = name[:-len("-mirrored")] if mirrored and name != "mirrored" else name
    h, w = frames.shape[1:3]
    y0, y1, x0, x1 = 0, h, 0, w
    if name == "blur-fill" and fill is not None:
        y0, y1, x0, x1 = fill
    if name == "bars-removed" or name.startswith("inset"):
        t, b, lf, r = cut or geo.bars(frames, geo.mean_frame(frames))
        y0, y1, x0, x1 = t, h - b, lf, w - r
    if name.startswith("inset"):  # as `wm_grid.views` finds them: inside the bars, best first
        from evalkit.provenance.wm_inset import find_insets

        boxes = find_insets(frames[:, y0:y1, x0:x1])
        k = int(name.split("-")[1]) - 1 if "-" in name else 0
        if k < len(boxes):
            y0, y1, x0, x1 = y0 + boxes[k][0], y0 + boxes[k][1], x0 + boxes[k][2], x0 + boxes[k][3]
    return lambda f: f[y0:y1, x0:x1][:, ::-1] if mirrored else f[y0:y1, x0:x1]


def _shrink(f: np.ndarray) -> np.ndarray:
    """uint8 frame [H, W, 3] area-averaged to a short side of `SMALL` px or a little more by halvings
    (OpenCV's area average by 2 is a fast block mean; by an odd factor it cost 35 ms a 1080p frame)."""
    while min(f.shape[:2]) >= 2 * SMALL:
        h, w = f.shape[0] // 2, f.shape[1] // 2
        f = cv2.resize(np.ascontiguousarray(f[:2 * h, :2 * w]), (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(f)


class Frames:
    """A suspect's frames laid as its mark was read (`view`, the read's geometry's), shrunk to
    `SMALL` px (an area average, which the thumbnail's is too) and summed, so that the luma and
    value thumbnails of the mean of any run of them (`window`) cost one subtraction. The value
    thumbnail (max(R, G, B)) is taken of the shrunk mean, not the full-size one: near enough for
    how windows change."""

    def __init__(self, frames: np.ndarray, view: str | None, limit: int | None = MAX_FRAMES,
                 cut: tuple | None = None, fill: tuple | None = None):
        lay = _layout(frames, view, cut, fill)
        self._windows: dict = {}
        self.total = len(frames)
        self.n = self.total if limit is None else min(self.total, limit)
        first = _shrink(lay(frames[0]))
        self._cum = np.zeros((self.n + 1, *first.shape), np.float32)
        for i in range(self.n):
            self._cum[i + 1] = self._cum[i] + (first if i == 0 else _shrink(lay(frames[i])))

    def window(self, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
        """(luma, value) blurred thumbnails of the mean of frames a..b-1 (kept: offsets a window
        apart ask for the same ones again)."""
        if (a, b) not in self._windows:
            mean = (self._cum[b] - self._cum[a]) / np.float32(b - a)
            self._windows[(a, b)] = pic.blurred(seg.luma_thumbnail(mean)), pic.blurred(seg.value_thumbnail(mean))
        return self._windows[(a, b)]


def _change(stack: np.ndarray) -> np.ndarray:
    return stack - stack.mean(axis=0, keepdims=True)


def _difference(ref: np.ndarray, sus: np.ndarray) -> float:
    """`registry_picture`'s whole-picture difference of two stacks of windows' changes, over the
    eight ways to lay the suspect (one way for all its windows); inf where the registered windows
    change by under `FLOOR` levels (no evidence)."""
    if float(ref.std()) < pic.FLOOR:
        return math.inf
    best = math.inf
    for k in range(8):
        turn = np.rot90(sus, k // 2, axes=(1, 2))
        turn = turn[:, :, ::-1] if k % 2 else turn
        best = min(best, pic.whole(ref.reshape(-1, pic.THUMB), np.ascontiguousarray(turn).reshape(-1, pic.THUMB))[0])
    return best


def _registered(segments: dict, box) -> dict[str, np.ndarray]:
    return {name: np.stack([pic.blurred(pic.crop(x, box) if box is not None else x) for x in segments[name]])
            for name in ("luma", "value")}


def in_step(segments: dict, sus: Frames, box=None) -> dict | None:
    """Where the suspect's windows change as a stretch of the registered video's windows
    (`segments`, a record's) does, played at its speed or at half or twice it: {"difference",
    "frames": [first, end) of the registered frames the windows compared span, "windows",
    "speed"}, the smallest difference over the offsets and speeds tried; None where none puts
    `MIN_WINDOWS` registered windows inside the suspect, or none of them changes by `FLOOR`
    levels."""
    t = sus.n
    edges = np.concatenate([[0], np.cumsum(segments["counts"])]).astype(int)
    total = int(edges[-1])
    ref = _registered(segments, box)
    best = None
    for speed in SPEEDS:
        span = int(t * speed)  # registered frames the suspect spans at this speed
        step = max(1, -(-(total - span + 1) // MAX_STARTS))
        for s in range(0, total - span + 1, step):
            inside = np.flatnonzero((edges[:-1] >= s) & (edges[1:] <= s + span))
            if len(inside) < MIN_WINDOWS:
                continue
            a = np.round((edges[inside] - s) / speed).astype(int)
            b = np.maximum(np.minimum(np.round((edges[inside + 1] - s) / speed).astype(int), t), a + 1)
            luma, value = (np.stack(x) for x in zip(*(sus.window(i, j) for i, j in zip(a, b))))
            d = min(_difference(_change(ref["luma"][inside]), _change(luma)),
                    _difference(_change(ref["value"][inside]), _change(value)))
            if math.isfinite(d) and (best is None or d < best["difference"]):
                best = {"difference": round(d, 3), "frames": [int(edges[inside[0]]), int(edges[inside[-1] + 1])],
                        "windows": len(inside), "speed": speed}
    return best


def still_copy(segments: dict, sus: Frames, span, box=None) -> tuple[float, float] | None:
    """(how much the registered windows in `span` = [first, end) frames change, how much the
    suspect's own windows do), standard deviations in levels, where the registered ones change by
    `STILL_FLOOR` and the suspect's by under a quarter of that: a still picture, which no copy of
    moving footage is (a freeze frame aside). None otherwise, or with under `MIN_WINDOWS`
    windows. Of a suspect longer than the frames held, the same share of `span` is taken."""
    edges = np.concatenate([[0], np.cumsum(segments["counts"])]).astype(int)
    first, end = span[0], span[0] + (span[1] - span[0]) * sus.n // sus.total
    inside = np.flatnonzero((edges[:-1] >= first) & (edges[1:] <= end))
    w = int(segments["frames"])
    own = [sus.window(i, i + w)[0] for i in range(0, sus.n - w + 1, w)]
    if len(inside) < MIN_WINDOWS or len(own) < MIN_WINDOWS:
        return None
    ref = float(_change(_registered(segments, box)["luma"][inside]).std())
    still = float(_change(np.stack(own)).std())
    return (round(ref, 1), round(still, 1)) if ref >= STILL_FLOOR and still < ref / 4 else None


__all__ = ["MIN_WINDOWS", "STEP_MATCH", "Frames", "in_step", "still_copy"]
