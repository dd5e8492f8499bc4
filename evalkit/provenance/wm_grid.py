"""Geometry of the watermark (`evalkit.provenance.watermark`): colour channels, the chip grid
and its Haar levels, the crop boxes the detector tries, and the views of a suspect clip it reads
(as given, mirrored, with letterbox or pillarbox bars removed, cut to a picture laid inside
another video's frame, turned by a quarter or a half).

Colour channels. A mark lives in one of three orthogonal colour directions of BT.601: luma
("y", the same change added to R, G and B) and the two colour differences ("cb", "cr", changes
that leave luma exactly unchanged). `CHANNELS[name]` gives the projection `pv` (RGB -> channel
value), the direction `dv` (the RGB change of one unit of the channel; pv . dv = 1 and every
other channel's pv . dv = 0, so marks in different channels do not see each other) and `cost`,
the RGB mean squared error of one unit of change (what PSNR counts): 1 for luma, 0.83 for Cr,
1.09 for Cb.

A luma mark is embedded along one of `LUMA_DIRECTIONS` (`WatermarkConfig.luma`, `direction`):
"flat", the same change on R, G and B (every mark made before session 19), or "least-squares",
the change spread in proportion to the BT.601 weights, (0.67, 1.31, 0.26): the smallest RGB
change with that luma, 0.746 of flat's cost, so 1.27 dB more luma signal at the same PSNR. It
also moves Cb and Cr a little (-0.42 and -0.24 a unit of luma), which no profile that marks luma
reads.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])  # BT.601


def _channel(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "y":
        return _LUMA, np.ones(3)
    if name == "cb":
        return (np.array([0.0, 0.0, 1.0]) - _LUMA) / 1.772, np.array([0.0, -0.114 * 1.772 / 0.587, 1.772])
    if name == "cr":
        return (np.array([1.0, 0.0, 0.0]) - _LUMA) / 1.402, np.array([1.402, -0.299 * 1.402 / 0.587, 0.0])
    raise ValueError(f"unknown colour channel {name!r}; use y, cb or cr")


CHANNELS: dict[str, tuple[np.ndarray, np.ndarray, float]] = {
    n: (pv, dv, float(np.mean(dv ** 2))) for n in ("y", "cb", "cr") for pv, dv in [_channel(n)]}

LUMA_DIRECTIONS: dict[str, np.ndarray] = {"flat": np.ones(3), "least-squares": _LUMA / float(_LUMA @ _LUMA)}


def direction(channel: str, luma: str = "least-squares") -> tuple[np.ndarray, float]:
    """(the RGB change of one unit of `channel` as the embedder makes it, its RGB cost): luma
    along `LUMA_DIRECTIONS[luma]`, the colour differences along `CHANNELS`' directions."""
    dv = LUMA_DIRECTIONS[luma] if channel == "y" else CHANNELS[channel][1]
    return dv, float(np.mean(dv ** 2))


def mean_frame(frames: np.ndarray) -> np.ndarray:
    """float32 [H, W, 3]: the temporal mean of uint8 frames [T, H, W, 3]."""
    t = frames.shape[0]
    s = frames.sum(axis=0, dtype=np.uint32 if t < (1 << 24) else np.float64)
    return (s.astype(np.float32) / np.float32(t)).astype(np.float32)


def bars(frames: np.ndarray, mean: np.ndarray, tol: float = 2.0) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) widths in pixels of flat bars added around the picture
    (letterbox, pillarbox, padding): outer rows/columns of one colour that never change. Bars
    under 2 px, or that would leave under half of a side, count as none."""
    w3 = _LUMA.astype(np.float32)
    m = mean @ w3                                                       # [H, W]
    # per-frame row and column means of luma, one frame at a time (a long 1080p clip in float32
    # would not fit in memory)
    row_t = np.empty((frames.shape[0], m.shape[0]), np.float32)        # [T, H]
    col_t = np.empty((frames.shape[0], m.shape[1]), np.float32)        # [T, W]
    for i, f in enumerate(frames):
        y = f.astype(np.float32) @ w3
        row_t[i], col_t[i] = y.mean(axis=1), y.mean(axis=0)

    def flat(prof_t: np.ndarray, prof: np.ndarray, spread: np.ndarray) -> np.ndarray:
        # a line is flat when it is one colour (spread) and its level never moves over time
        return (spread < tol) & (np.abs(prof_t - prof[None]).max(axis=0) < tol)

    rows = flat(row_t, m.mean(axis=1), m.max(axis=1) - m.min(axis=1))   # [H]
    cols = flat(col_t, m.mean(axis=0), m.max(axis=0) - m.min(axis=0))   # [W]

    def run(line: np.ndarray) -> int:
        n = int(np.argmin(line)) if not line.all() else line.size
        return n if n >= 2 else 0

    t, b, lf, r = run(rows), run(rows[::-1]), run(cols), run(cols[::-1])
    # A codec rings at the edge between bar and picture, so the last bar line may not look flat:
    # bars are padded in whole chroma samples (even widths in 4:2:0) and letterboxes are centred,
    # so round each width up to even and give both sides of a nearly symmetric pair the larger.
    t, b, lf, r = (x + x % 2 for x in (t, b, lf, r))
    if t and b and abs(t - b) <= 2:
        t = b = max(t, b)
    if lf and r and abs(lf - r) <= 2:
        lf = r = max(lf, r)
    h, w = m.shape
    if h - t - b < h / 2:
        t = b = 0
    if w - lf - r < w / 2:
        lf = r = 0
    return t, b, lf, r


def _four_ints(geometry: dict | None, name: str) -> tuple[int, int, int, int] | None:
    """`geometry[name]` as four integers; None when absent or not four numbers (a read's geometry
    comes back from JSON and registries, which anyone may have written)."""
    try:
        a, b, c, d = (int(x) for x in (geometry or {}).get(name))
    except (TypeError, ValueError):
        return None
    return a, b, c, d


def cut_read(geometry: dict | None, shape: tuple) -> tuple[int, int, int, int] | None:
    """The bars a watermark read cut off (`geometry["bars"]`: `wm_bars.read_bars` refines the
    measured ones by a few pixels), for laying a frame [H, W, ...] of `shape` out as the mark was
    read; None when the read names none or a cut that would leave under half a side."""
    cut = _four_ints(geometry, "bars")
    if cut is None:
        return None
    t, b, lf, r = cut
    h, w = shape[:2]
    return cut if min(cut) >= 0 and h - t - b >= h / 2 and w - lf - r >= w / 2 else None


def fill_read(geometry: dict | None, shape: tuple) -> tuple[int, int, int, int] | None:
    """The box (y0, y1, x0, x1), in the clip as given, of a picture read over a blurred fill
    (`geometry["fill_box"]`: `wm_fill.read_fill`), for laying a frame [H, W, ...] of `shape` out
    as the mark was read; None when the read names none or a box outside the frame."""
    box = _four_ints(geometry, "fill_box")
    if box is None:
        return None
    y0, y1, x0, x1 = box
    h, w = shape[:2]
    return box if 0 <= y0 < y1 <= h and 0 <= x0 < x1 <= w else None


def views(frames: np.ndarray, mean: np.ndarray,
          cut: tuple[int, int, int, int] | None = None) -> list[tuple[str, np.ndarray]]:
    """The mean frames the detector reads: as given, mirrored left-right (a common re-upload
    trick), when the clip has flat bars around it both again with the bars cut off (else, when
    a picture sits inside a frame whose borders persist, `wm_inset`, both again cut to it), and when
    its frames' brightness swings (a fade in or out) the mean with each frame's gain undone.
    `cut`: the clip's `bars`, when the caller has measured them already."""
    out = [("as-is", mean), ("mirrored", mean[:, ::-1])]
    t, b, lf, r = bars(frames, mean) if cut is None else cut
    h, w = mean.shape[:2]
    if t or b or lf or r:
        inner = mean[t:h - b, lf:w - r]
        out += [("bars-removed", inner), ("bars-removed-mirrored", inner[:, ::-1])]
    # pictures inside a frame that moves around them (picture-in-picture, a split screen; within
    # the bars, if any): each cut out, as given and mirrored
    from evalkit.provenance.wm_inset import find_insets

    for i, (y0, y1, x0, x1) in enumerate(find_insets(frames[:, t:h - b, lf:w - r])):
        name = "inset" if i == 0 else f"inset-{i + 1}"
        out += _inset_views(frames, mean, (t + y0, t + y1, lf + x0, lf + x1), name)
    faded = defaded_mean(frames)
    if faded is not None:
        out.append(("fade undone", faded))
    kept = without_flat_frames(frames)
    if kept is not None:
        out.append(("flat frames left out", kept))
    return [(name, np.ascontiguousarray(v)) for name, v in out]


def _inset_views(frames: np.ndarray, mean: np.ndarray, box: tuple[int, int, int, int], name: str):
    """The views of a picture found inside the frame at `box` (`wm_inset`), each as given and
    mirrored: the box; the box less flat bars along its edges (`bars`); and, where the box holds
    a second persistent border of at least 0.7 of its sides, the picture inside that (less its
    flat bars). The box may be a player window in a screen recording, its own frame and control
    bar around the picture (session 35: a marked 256 px clip shown at its size in a recorded
    desktop was read only from the picture inside)."""
    from evalkit.provenance.wm_inset import find_insets

    y0, y1, x0, x1 = box
    boxes = [box]
    for sy0, sy1, sx0, sx1 in find_insets(frames[:, y0:y1, x0:x1], limit=1):
        if (sy1 - sy0) >= 0.7 * (y1 - y0) and (sx1 - sx0) >= 0.7 * (x1 - x0):
            boxes.append((y0 + sy0, y0 + sy1, x0 + sx0, x0 + sx1))
    out = []
    for k, (a, b, c, d) in enumerate(boxes):
        cuts = [(0, 0, 0, 0), bars(frames[:, a:b, c:d], mean[a:b, c:d])]
        for j, (bt, bb, bl, br) in enumerate(dict.fromkeys(cuts)):
            v = mean[a + bt:b - bb, c + bl:d - br]
            label = name + ("-picture" if k else "") + ("-bars-removed" if j else "")
            out += [(label, v), (label + "-mirrored", v[:, ::-1])]
    return out


FLAT_SD = 2.0  # luma levels: a frame this uniform holds no picture (black, an end card, a slate)


def flat_frames(frames: np.ndarray) -> np.ndarray:
    """bool [T]: frames of (nearly) one colour, whose spatial luma spread is under FLAT_SD."""
    return np.array([cv2.meanStdDev(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY))[1][0, 0] < FLAT_SD for f in frames])


def without_flat_frames(frames: np.ndarray) -> np.ndarray | None:
    """float32 [H, W, 3]: the temporal mean of the frames that hold a picture, or None when none
    or all but one of them are flat. Black frames or an end card added before or after a marked
    clip dilute its mean (24 black frames after 48 read at 0.67 of the mark's strength, and a
    moving clip with 48 added was lost, session 32); the mark lives in the picture's frames."""
    flat = flat_frames(frames)
    if not flat.any() or (~flat).sum() < 2:
        return None
    return mean_frame(frames[~flat])


def defaded_mean(frames: np.ndarray, swing: float = 1.3, floor: float = 0.15) -> np.ndarray | None:
    """float32 [H, W, 3]: the temporal mean of the frames each divided by its gain, or None when
    the frames' brightness does not swing by `swing` (max/min of the gains).

    A fade scales every frame's picture, mark included, by its own gain g_t. The plain mean then
    weighs the frames of moving content unequally, so it is no longer the mean the mark was set
    on (measured: 2 of 6 footage clips and 1 of 4 256 px world clips lost their payload to a fade
    over a quarter of the frames at each end). g_t is estimated as the frame's mean luma over the
    median frame's; frames faded below `floor` (nearly black: the picture is gone) are left out."""
    # per-frame channel means by OpenCV: numpy's float64 mean of uint8 HD frames took 1.5 s
    luma = np.array([cv2.mean(f)[:3] for f in frames]) @ _LUMA.astype(np.float64)  # [T]
    ref = float(np.median(luma))
    if ref < 4.0:
        return None
    g = luma / ref
    if g.max() < swing * max(g.min(), 1e-6) or (g >= floor).sum() < 2:
        return None
    keep = np.flatnonzero(g >= floor)
    acc = np.zeros(frames.shape[1:], np.float64)
    for i in keep:
        acc += frames[i] / g[i]
    return (acc / len(keep)).astype(np.float32)


# The frame's six other symmetries (with as-is and mirrored, the eight ways to lay a picture on
# its axes): what a transcoder that applies a phone's rotation flag, or an editor, leaves. Each
# is (what was done to the marked picture, the map that takes the suspect's frame back to it).
TURNS = (
    ("rotated 90° clockwise", lambda m: np.rot90(m, 1)),
    ("rotated 90° counter-clockwise", lambda m: np.rot90(m, -1)),
    ("rotated 180°", lambda m: m[::-1, ::-1]),
    ("flipped upside down", lambda m: m[::-1]),
    ("mirrored left-right, then rotated 90° counter-clockwise", lambda m: np.swapaxes(m, 0, 1)),
    ("mirrored left-right, then rotated 90° clockwise", lambda m: np.swapaxes(m[::-1, ::-1], 0, 1)),
)


def turned(mean: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """The mean frame [H, W, ...] undone by each of `TURNS`, named by the turn it undoes."""
    return [(name, np.ascontiguousarray(undo(mean))) for name, undo in TURNS]


def unrotate(mean: np.ndarray, deg: float) -> np.ndarray:
    """float32 [H, W, C]: the frame turned back by `deg` degrees, undoing a rotation by `deg`
    counter-clockwise about its centre at the same size (OpenCV's sign convention). The corners
    that rotation brought in from outside the picture are filled by reflection: noise for the
    lattice fit, never signal."""
    h, w = mean.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -deg, 1.0)
    return cv2.warpAffine(mean, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def planes(mean: np.ndarray, channels: tuple[str, ...]) -> list[np.ndarray]:
    """float32 [H, W] channel values of a mean RGB frame, one per channel."""
    return [(mean @ CHANNELS[c][0].astype(np.float32)).astype(np.float32) for c in channels]


class Integral:
    """Summed-area table of one image, for exact area means over fractional boxes."""

    def __init__(self, y: np.ndarray):
        self.h, self.w = y.shape
        s = np.zeros((self.h + 1, self.w + 1), np.float64)
        np.cumsum(y, axis=0, dtype=np.float64, out=s[1:, 1:])
        np.cumsum(s[1:, 1:], axis=1, out=s[1:, 1:])
        self.s = s

    def _at(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Integral over [0, r] x [0, c] (fractional, clamped), for r [n, 1] and c [1, m]."""
        r = np.clip(r, 0, self.h)
        c = np.clip(c, 0, self.w)
        r0 = np.minimum(np.floor(r).astype(np.int64), self.h - 1)
        c0 = np.minimum(np.floor(c).astype(np.int64), self.w - 1)
        fr, fc = r - r0, c - c0
        s = self.s
        return ((1 - fr) * (1 - fc) * s[r0, c0] + fr * (1 - fc) * s[r0 + 1, c0]
                + (1 - fr) * fc * s[r0, c0 + 1] + fr * fc * s[r0 + 1, c0 + 1])

    def table(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """[n, m]: `_at` at every pair of rows r [n] and columns c [m] (fractional, clamped).
        Interpolates whole rows first, then gathers columns: for many points on a table this
        size, two gathers instead of four (the crop scan's tile corners)."""
        r = np.clip(r, 0, self.h)
        c = np.clip(c, 0, self.w)
        r0 = np.minimum(np.floor(r).astype(np.int64), self.h - 1)
        c0 = np.minimum(np.floor(c).astype(np.int64), self.w - 1)
        rows = self.s[r0]                                                   # [n, W + 1]
        rows += (r - r0)[:, None] * (self.s[r0 + 1] - rows)
        lo, hi = rows[:, c0], rows[:, c0 + 1]                               # [n, m]
        return lo + (c - c0)[None, :] * (hi - lo)

    def chips(self, g: int, box=(0.0, 1.0, 0.0, 1.0), tol: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """Means [g, g] of the chip grid of the marked frame's unit square, and their validity,
        where this image shows the part `box` = (y0, y1, x0, x1) of that square."""
        means, valid = self.chips_many(g, np.asarray([box], np.float64), tol)
        return means[0], valid[0]

    def chips_many(self, g: int, boxes: np.ndarray, tol: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
        """`chips` for many boxes [B, 4] at once: means and validity [B, g, g]."""
        y0, y1, x0, x1 = (boxes[:, i:i + 1] for i in range(4))          # [B, 1] each
        e = np.arange(g + 1)[None, :] / g
        r = (e - y0) / (y1 - y0) * self.h                                 # [B, g + 1]
        c = (e - x0) / (x1 - x0) * self.w
        integ = self._at(r[:, :, None], c[:, None, :])                    # [B, g + 1, g + 1]
        area = np.diff(np.clip(r, 0, self.h))[:, :, None] * np.diff(np.clip(c, 0, self.w))[:, None, :]
        sums = integ[:, 1:, 1:] - integ[:, :-1, 1:] - integ[:, 1:, :-1] + integ[:, :-1, :-1]
        okr = (r[:, :-1] >= -tol) & (r[:, 1:] <= self.h + tol)
        okc = (c[:, :-1] >= -tol) & (c[:, 1:] <= self.w + tol)
        valid = okr[:, :, None] & okc[:, None, :] & (area > 0)
        return np.where(valid, sums / np.maximum(area, 1e-9), 0.0), valid


def chip_weights(n: int, g: int) -> np.ndarray:
    """float64 [g, n]: the weight of each of `n` pixels in each of `g` equal chips along one side
    of the whole frame (pixels uniform over [k, k + 1]), so that the chip means of a whole
    frame Y [n_h, n_w] are `chip_weights(n_h, g) @ Y @ chip_weights(n_w, g).T`, as
    `Integral.chips` measures them; being linear, they can be taken frame by frame and averaged."""
    edges = np.arange(g + 1) * (n / g)
    k = np.arange(n)
    overlap = np.clip(np.minimum(edges[1:, None], k + 1) - np.maximum(edges[:-1, None], k), 0, None)
    return overlap / (n / g)


def crop_boxes(h: int, w: int, frac: float) -> list[tuple[float, float, float, float]]:
    """Where a centre crop of fraction `frac` that came out h x w pixels may sit in the unit
    square of the original: the ideal box, and the boxes of every original size and integer
    offset that rounding to whole (or even) pixels could have produced."""
    def axis(n):
        out = {((1 - frac) / 2, (1 + frac) / 2)}
        for n0 in range(int(math.floor((n - 2) / frac)), int(math.ceil((n + 2) / frac)) + 1):
            if n0 <= n or abs(n - frac * n0) > 1.01:
                continue
            for off in {(n0 - n) // 2, (n0 - n + 1) // 2}:
                out.add((off / n0, (off + n) / n0))
        return sorted(out)
    return [(a, b, c, d) for a, b in axis(h) for c, d in axis(w)]


def haar(c: np.ndarray, levels: int) -> np.ndarray:
    """Orthonormal 2-D Haar detail coefficients of levels 1..levels of chip means [..., g, g],
    flattened over the last two axes (finest first)."""
    out = []
    for _ in range(levels):
        a, b, cc, d = c[..., 0::2, 0::2], c[..., 0::2, 1::2], c[..., 1::2, 0::2], c[..., 1::2, 1::2]
        out += [(a - b + cc - d) / 2, (a + b - cc - d) / 2, (a - b - cc + d) / 2]
        c = (a + b + cc + d) / 2
    return np.concatenate([o.reshape(*o.shape[:-2], -1) for o in out], axis=-1)


def haar_valid(v: np.ndarray, levels: int) -> np.ndarray:
    out = []
    for _ in range(levels):
        ok = v[..., 0::2, 0::2] & v[..., 0::2, 1::2] & v[..., 1::2, 0::2] & v[..., 1::2, 1::2]
        out += [ok.reshape(*ok.shape[:-2], -1)] * 3
        v = ok
    return np.concatenate(out, axis=-1)


def ihaar(x: np.ndarray, g: int, levels: int) -> np.ndarray:
    """Inverse of `haar` with a zero coarse average."""
    sizes = [g >> (l + 1) for l in range(levels)]
    parts, i = [], 0
    for s in sizes:
        n = s * s
        parts.append([x[i + k * n:i + (k + 1) * n].reshape(s, s) for k in range(3)])
        i += 3 * n
    c = np.zeros((sizes[-1], sizes[-1]), np.float64)
    for (h, v, d), s in zip(reversed(parts), reversed(sizes)):
        n = np.empty((2 * s, 2 * s))
        n[0::2, 0::2] = (c + h + v + d) / 2
        n[0::2, 1::2] = (c - h + v - d) / 2
        n[1::2, 0::2] = (c + h - v - d) / 2
        n[1::2, 1::2] = (c - h - v + d) / 2
        c = n
    return c


def tile_reach(g: int, levels: int) -> np.ndarray:
    """For every Haar coefficient (layout of `haar`), how far its tile reaches from the frame's
    centre (max-norm, in units of the frame side): a centre crop keeps the coefficients of small
    reach."""
    ring = []
    for l in range(levels):
        t = 2 << l  # tile side in chips
        edges = np.arange(g // t + 1) * t / g - 0.5
        reach = np.maximum(np.abs(edges[:-1]), np.abs(edges[1:]))
        ring += [np.maximum(reach[:, None], reach[None, :]).ravel()] * 3
    return np.round(np.concatenate(ring), 9)


def synth(dc: np.ndarray, h: int, w: int, blur: float) -> np.ndarray:
    """The pixel pattern [h, w] of chip values [g, g]: blocks, lightly smoothed (`blur` in chips)."""
    g = dc.shape[0]
    p = cv2.resize(dc.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST)
    if blur > 0:
        p = cv2.GaussianBlur(p, (0, 0), sigmaX=blur * w / g, sigmaY=blur * h / g,
                             borderType=cv2.BORDER_REFLECT)
    return p
