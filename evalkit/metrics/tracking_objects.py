"""Find the objects a world prompt names in any video, frame by frame, by colour.

This is the physics probes' eye (and the generator's quality check): given uint8 frames
[T, H, W, 3] and the named objects [(shape, colour, size_name), ...], it returns per object and
frame whether the object is there as *one compact blob of its colour and about its size*, and if
so its sub-pixel centroid, area, compactness and colour.

How, and why so:

- **Colour as chroma.** Each pixel's RGB is projected on the plane orthogonal to the grey axis
  (opponent chroma, 2-D). The world's backgrounds are grey (zero chroma) and its object colours
  saturated, so a pixel that an object covers by a fraction `a` over *any* grey background has
  chroma exactly `a * chroma(object)`. The projection of a pixel's chroma on the named colour's
  chroma, divided by its squared norm, is therefore the object's coverage of that pixel: the
  anti-aliased edge makes the coverage-weighted centroid exact to ~0.01 px on clean clips, and
  brightness, background level, texture and gradient cancel. Mixing with grey (H.264's chroma
  subsampling at small sizes) scales chroma without turning its hue.
- **Hue classes.** A pixel belongs to the named colour only if that colour is the nearest of the
  world's palette in hue (so a red object does not count as orange: red's chroma projects on
  orange's at 0.83) and its coverage is at least `min_coverage`; its blob must reach `min_peak`
  somewhere. Both are low on purpose: H.264 (yuv420p) keeps a 4-pixel object's chroma in a
  couple of subsampled, quantised samples, and at CRF 30 its peak coverage can drop to 0.3. The
  per-frame median chroma is subtracted first (a tinted background) and the mask needs the pixel
  to stand out from the frame's chroma spread by `bg_sigmas` robust standard deviations (noise).
- **Cleanup.** Pixels with fewer than 2 of their 8 neighbours in the mask are dropped (salt);
  components are 8-connected within a frame (`scipy.ndimage.label`, one call for the clip).
- **One compact blob of about the right size.** The component chosen is the one whose coverage
  mass is closest (in log ratio) to the expected area (pi/4 d^2 for a ball, d^2 for a square, d =
  size fraction x min(H, W)), among the compact ones. It counts as *found* only when its fill ratio
  (pixels / bounding box) is at least `min_fill`, its bounding box is no more elongated than
  `max_aspect`, its mass is within [`min_area_ratio`, `max_area_ratio`] of the expected, and it
  holds at least `min_share` of that colour's mask in the frame. A scattering of coloured noise
  fails the last two: its pixels are many small pieces.
- **Following.** An object that changes colour or size mid-clip is still the same object: from
  frames where it is found, its track goes on, frame to frame, through the compact blob of a
  colour no named object has (or of its own colour, off its size) nearest to where its last two
  positions predict it (`_follow`). Those frames are `followed`, not `found`: permanence and the
  kinematic laws read both, constant_colour and constant_size see the change, and an object never
  found as itself is never followed.
- **Sub-pixel measures.** Centroid and area use the soft coverage (clipped to [0, 1]) over the
  chosen component dilated by `dilate` pixels, pixels of another hue class excluded; where two
  named objects of different colours touch, each blended pixel is unmixed between the two
  colours (a 2x2 least squares), so a collision does not pull one centroid towards the other.

Coordinates: (x, y) in pixel-index units, (0, 0) the centre of the top-left pixel (as the world's
tracks), y pointing down. Everything is vectorised over the clip: one labelling call per colour.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from evalkit.world.spec import COLORS, SHAPES, SIZES

# Orthonormal basis of the chroma plane (orthogonal to grey (1, 1, 1)).
_CHROMA = np.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / np.array([[math.sqrt(2.0)], [math.sqrt(6.0)]])
_PALETTE_NAMES = tuple(COLORS)
_PALETTE = np.array([_CHROMA @ np.asarray(COLORS[c], np.float64) for c in _PALETTE_NAMES])  # [K, 2]
_PALETTE_UNIT = _PALETTE / np.linalg.norm(_PALETTE, axis=1, keepdims=True)
# In-plane 8-connectivity and 3x3 neighbourhoods, never across frames.
_CONN8 = np.zeros((3, 3, 3), bool)
_CONN8[1] = True


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of the colour tracker; defaults calibrated on the world (see physics.py)."""

    min_coverage: float = 0.2  # a mask pixel is at least this much covered by the colour
    min_peak: float = 0.3  # ... and its blob reaches this coverage somewhere (no faint haze)
    bg_sigmas: float = 4.0  # ... and stands out of the frame's robust chroma spread by this much
    min_fill: float = 0.5  # pixels / bounding-box area (a disc 0.79, a square 1.0, noise much less)
    max_aspect: float = 2.5  # longer / shorter side of the bounding box
    min_area_ratio: float = 0.5  # coverage mass / expected area, to count as found
    max_area_ratio: float = 2.0
    min_share: float = 0.6  # of the colour's mask pixels in the frame, the blob holds at least this
    dilate: int = 2  # pixels around the blob whose soft coverage counts toward centroid and area


DEFAULT_TRACKER = TrackerConfig()


@dataclass
class ObjectTrack:
    """One named object over a clip; arrays have one row per frame. Measures are NaN where no blob
    of the colour was chosen; where one was but does not count as found (wrong size, not compact,
    not dominant) they are still given: the laws read them through `found` (or `blob`)."""

    shape: str
    color: str
    size_name: str
    expected_area: float  # pixels
    found: np.ndarray  # bool [T]: one compact blob of the colour, holding most of it, of about the size
    blob: np.ndarray  # bool [T]: the same but of any size (what constant_size looks at)
    centroid: np.ndarray  # float64 [T, 2] (x, y), pixel-index units
    area: np.ndarray  # float64 [T], pixels (coverage mass)
    compactness: np.ndarray  # float64 [T], fill ratio of the blob's bounding box
    share: np.ndarray  # float64 [T], the blob's part of the colour's mask in the frame (all of
    #                    the colour's objects together must hold `min_share` of it)
    colour: np.ndarray  # float64 [T, 3], mean RGB of the blob (coverage^2-weighted), a diagnostic
    hue: np.ndarray | None = None  # float64 [T], degrees, of the coloured blob at the object's place
    followed: np.ndarray | None = None  # bool [T]: not found as itself, but its track continues
    #                                     through a blob of another colour or size (`_follow`)

    @property
    def presence(self) -> float:
        """Fraction of frames in which the object is found (as itself: its colour, about its size)."""
        return float(self.found.mean()) if self.found.size else 0.0

    @property
    def seen(self) -> np.ndarray:
        """bool [T]: found, or followed through a change of its appearance; centroid and area are
        measured in these frames (what permanence and the kinematic laws read)."""
        return self.found if self.followed is None else self.found | self.followed

    def misses(self, cfg: "TrackerConfig | None" = None) -> np.ndarray:
        """str [T]: per frame, "found" or why not: "absent" (no blob of the colour), "scattered"
        (the colour spread over pieces, none holding `min_share` of it), "not compact" (a blob,
        but too sparse or elongated), "too small" / "too large" (a compact blob off the size)."""
        cfg = cfg or DEFAULT_TRACKER
        out = np.full(self.found.shape, "not compact", dtype=object)
        with np.errstate(invalid="ignore"):
            out[~self.blob & (self.share < cfg.min_share)] = "scattered"
            out[self.blob & (self.area < cfg.min_area_ratio * self.expected_area)] = "too small"
            out[self.blob & (self.area > cfg.max_area_ratio * self.expected_area)] = "too large"
        out[np.isnan(self.area)] = "absent"
        out[self.found] = "found"
        return out

    def to_dict(self) -> dict:
        return {"shape": self.shape, "color": self.color, "size_name": self.size_name,
                "expected_area": self.expected_area, "presence": self.presence,
                "found": self.found.tolist(), "followed": (self.seen & ~self.found).tolist(),
                "centroid": self.centroid.tolist(),
                "area": self.area.tolist(), "compactness": self.compactness.tolist()}


def expected_area(shape: str, size_name: str, frame_hw: tuple[int, int]) -> float:
    """Area in pixels that the world renders an object with: pi/4 d^2 (ball) or d^2 (square)."""
    d = SIZES[size_name] * min(frame_hw)
    return (math.pi / 4.0 if shape == "ball" else 1.0) * d * d


def normalise_objects(objects) -> list[tuple[str, str, str]]:
    """[(shape, colour, size_name), ...] checked against the world's vocabulary."""
    out = []
    for o in objects:
        if isinstance(o, dict):  # {"shape", "color" | "colour", "size_name" | "size" (a name)}
            size = o.get("size_name", o.get("size"))
            o = (o.get("shape"), o.get("color", o.get("colour")), size)
        shape, colour, size_name = (str(v) for v in o)
        if shape not in SHAPES or colour not in COLORS or size_name not in SIZES:
            raise ValueError(f"unknown object ({shape}, {colour}, {size_name}); shapes {SHAPES}, "
                             f"colours {tuple(COLORS)}, sizes {tuple(SIZES)}")
        out.append((shape, colour, size_name))
    if not out:
        raise ValueError("no objects to track")
    return out


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """bool [T, H, W] dilated by a (2r+1) x (2r+1) square within each frame (r rounds of 8-connected
    dilation), by shifted ORs: separable and an order of magnitude faster than scipy here."""
    if r <= 0:
        return mask
    out = mask.copy()
    for d in range(1, r + 1):  # rows
        out[:, d:] |= mask[:, :-d]
        out[:, :-d] |= mask[:, d:]
    rows = out.copy()
    for d in range(1, r + 1):  # columns
        out[:, :, d:] |= rows[:, :, :-d]
        out[:, :, :-d] |= rows[:, :, d:]
    return out


def _dilate_boxes(mask: np.ndarray, boxes: list, r: int) -> np.ndarray:
    """`_dilate(mask, r)` where `mask` is empty outside `boxes` ((frame, rows, cols) slices): the
    dilation is run on the box that holds them all, grown by r (the same pixels, by construction)."""
    if r <= 0 or not boxes:
        return mask
    t, h, w = mask.shape
    y0, y1 = max(min(b[1].start for b in boxes) - r, 0), min(max(b[1].stop for b in boxes) + r, h)
    x0, x1 = max(min(b[2].start for b in boxes) - r, 0), min(max(b[2].stop for b in boxes) + r, w)
    out = np.zeros_like(mask)
    out[:, y0:y1, x0:x1] = _dilate(np.ascontiguousarray(mask[:, y0:y1, x0:x1]), r)
    return out


def _neighbours(mask: np.ndarray) -> np.ndarray:
    """uint8 [T, H, W]: how many of each pixel's 8 neighbours (same frame) are set."""
    m = mask.astype(np.uint8)
    rows = m.copy()  # 3-row sums, then 3-column sums of those: the 3x3 box, less the pixel itself
    rows[:, 1:] += m[:, :-1]
    rows[:, :-1] += m[:, 1:]
    box = rows.copy()
    box[:, :, 1:] += rows[:, :, :-1]
    box[:, :, :-1] += rows[:, :, 1:]
    box -= m
    return box


def palette_hues() -> dict[str, float]:
    """Hue angle (degrees) of each world colour in the chroma plane used here."""
    return {n: float(np.degrees(np.arctan2(q[1], q[0]))) for n, q in zip(_PALETTE_NAMES, _PALETTE)}


def _median_rows(x: np.ndarray) -> np.ndarray:
    """np.median(x, axis=1) of a float32 [R, N] without NaN, bit for bit (a sort is several times
    faster than numpy's partition here): the middle value, or the float32 mean of the two."""
    v = np.sort(x, axis=1)
    n = v.shape[1]
    return v[:, n // 2] if n % 2 else (v[:, n // 2 - 1] + v[:, n // 2]) / np.float32(2)


def chroma_planes(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(chroma float32 [T, H, W, 2] with each frame's median removed, robust spread float32 [T]).

    The medians are taken over at most ~2048 evenly strided pixels of each frame (exact up to 64 x
    32): the background is most of any world frame, and its chroma is what they estimate."""
    t, h, w, _ = frames.shape
    f32 = frames if frames.dtype == np.float32 else frames.astype(np.float32)  # one conversion
    r, g, b = (f32[..., i] for i in range(3))
    v0 = np.multiply(r - g, np.float32(_CHROMA[0, 0]))  # (R - G) / sqrt 2
    v1 = np.multiply(r + g - 2 * b, np.float32(_CHROMA[1, 0]))  # (R + G - 2B) / sqrt 6
    n = h * w
    step = max(1, n // 2048)
    s0, s1 = v0.reshape(t, n)[:, ::step], v1.reshape(t, n)[:, ::step]
    m0, m1 = _median_rows(s0), _median_rows(s1)  # [T] each
    c = np.empty((t, h, w, 2), np.float32)
    np.subtract(v0, m0[:, None, None], out=c[..., 0])
    np.subtract(v1, m1[:, None, None], out=c[..., 1])
    # As before (bit for bit): the spread's sample was a view of c, so the median is taken off twice.
    d0, d1 = (s0 - m0[:, None]) - m0[:, None], (s1 - m1[:, None]) - m1[:, None]
    spread = np.float32(1.4826) * _median_rows(np.sqrt(d0 * d0 + d1 * d1))  # robust radius scale
    return c, spread.astype(np.float32)


# Nearest palette colour by hue, tabulated on a 0.1 degree grid of angles (nearest by cosine).
_HUE_BINS = 3600
_HUE_LUT = np.argmax(np.stack([np.cos(np.linspace(-np.pi, np.pi, _HUE_BINS + 1)),
                               np.sin(np.linspace(-np.pi, np.pi, _HUE_BINS + 1))], 1) @ _PALETTE_UNIT.T,
                     axis=1).astype(np.int8)


def _hue_class(c: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """int8 [T, H, W]: index of the palette colour nearest in hue, per pixel (with `where`, bool
    [T, H, W], only there, and -1 elsewhere)."""
    if where is not None:
        out = np.full(c.shape[:-1], -1, np.int8)
        on = np.flatnonzero(where)
        out.reshape(-1)[on] = _hue_class(c.reshape(-1, 2)[on])
        return out
    ang = np.arctan2(c[..., 1], c[..., 0])  # [-pi, pi]
    return _HUE_LUT[np.rint((ang + np.pi) * (_HUE_BINS / (2 * np.pi))).astype(np.int32)]


def track_objects(frames, objects, config: TrackerConfig = DEFAULT_TRACKER) -> list[ObjectTrack]:
    """Track each (shape, colour, size_name) of `objects` through uint8 frames [T, H, W, 3].

    Objects sharing a colour are taken as that colour's largest acceptable blobs, assigned to the
    objects in order of expected size (then kept apart frame to frame by nearest position).
    """
    from evalkit.metrics.base import as_frames

    f = as_frames(frames, min_frames=1)
    objects = normalise_objects(objects)
    t, h, w, _ = f.shape
    f32 = f.astype(np.float32)
    c, spread = chroma_planes(f32)  # the same as of f (exact integers)
    mag = np.hypot(c[..., 0], c[..., 1])  # [T, H, W]
    floor = np.maximum(config.bg_sigmas * spread, 6.0)[:, None, None]  # [T, 1, 1] chroma units
    # The hue class is only ever read where the chroma stands out (mag >= floor: `soft`, and the
    # masks, whose coverage test implies it); classify those pixels (with a wide margin) only.
    cls = _hue_class(c, mag >= 0.99 * floor)
    tracks: list[ObjectTrack | None] = [None] * len(objects)
    by_colour: dict[str, list[int]] = {}
    for i, (_, colour, _) in enumerate(objects):
        by_colour.setdefault(colour, []).append(i)
    cov, raw = {}, {}
    for colour in by_colour:
        k = _PALETTE_NAMES.index(colour)
        q = _PALETTE[k].astype(np.float32)
        cov[colour] = (c @ q) / float(q @ q)  # [T, H, W] coverage estimate
        strong = cov[colour] * float(np.sqrt(q @ q)) >= floor  # stands out of the background
        raw[colour] = (cls == k) & (cov[colour] >= config.min_coverage) & strong
    for colour, idx in by_colour.items():
        got = _track_colour(f32, c, cls, mag, floor, cov, raw, colour, [objects[i] for i in idx], config)
        for i, tr in zip(idx, got):
            tracks[i] = tr
    for tr in tracks:
        _follow(tr, f32, c, cls, mag, floor, raw, config)
    # (each colour's mask dilated by 1, needed only as another track's exclusion: one colour, none)
    others_any = {colour: _dilate(m, 1) for colour, m in raw.items()} if len(raw) > 1 else {}
    for tr in tracks:
        excl = np.zeros_like(mag, bool)
        for colour, m in others_any.items():
            if colour != tr.color:
                excl |= m
        tr.hue, _ = _local_hue(c, mag, floor, excl, tr, config)
    return tracks  # type: ignore[return-value]


# An object that changes its appearance is still the same object: its track goes on through a blob
# of another colour or size that continues its motion. Within this reach of the place its last two
# positions predict (px: twice the last step, for a bounce that reverses it, plus its diameter and
# 2 px of slack), and within these factors of its area as found (the world's sizes differ by 1.33
# to 2 x in extent, 1.8 to 4 x in area).
_FOLLOW_SLACK_PX = 2.0
_FOLLOW_AREA = (0.2, 5.0)


def _follow(tr: "ObjectTrack", f, c, cls, mag, floor, raws, cfg) -> None:
    """Set `tr.followed`: frames where the object is not found as itself (its colour, about its
    size) but a compact blob that dominates its own colour continues its track, frame to frame,
    from frames where it is: the object recoloured (a palette colour no named object has) or
    resized (its own colour, off its size). Its centroid, area and colour are measured there as
    for a found blob (coverage of the blob's own colour), so permanence and the kinematic laws
    keep the object while constant_colour and constant_size see the change.

    Only from an anchor: an object never found as itself is never followed, so a scattering of
    coloured noise or another object of the wrong colour is not taken for it."""
    t = len(tr.found)
    tr.followed = np.zeros(t, bool)
    lost = np.nonzero(~tr.found)[0]
    if not lost.size or tr.found.sum() < 2:
        return
    cands: dict[int, list] = {int(i): [] for i in lost}
    for i in lost:
        if tr.blob[i]:  # its own colour, off its size
            cands[int(i)].append((tr.centroid[i], tr.area[i], tr.colour[i]))
    # Other colours: only those no named object has, with a blob's worth of salient pixels in a lost frame.
    sub_floor = floor[lost]
    salient = mag[lost] >= sub_floor
    need = 0.5 * _FOLLOW_AREA[0] * tr.expected_area
    for k, name in enumerate(_PALETTE_NAMES):
        if name in raws or np.count_nonzero((cls[lost] == k) & salient, axis=(1, 2)).max() < need:
            continue
        q = _PALETTE[k].astype(np.float32)
        cov_k = (c[lost] @ q) / float(q @ q)
        raw_k = (cls[lost] == k) & (cov_k >= cfg.min_coverage) & (cov_k * float(np.sqrt(q @ q)) >= sub_floor)
        sub_raws = {n: m[lost] for n, m in raws.items()} | {name: raw_k}
        (alt,) = _track_colour(f[lost], c[lost], cls[lost], mag[lost], sub_floor, {name: cov_k}, sub_raws,
                               name, [(tr.shape, name, tr.size_name)], cfg)
        for j in np.nonzero(alt.blob)[0]:
            cands[int(lost[j])].append((alt.centroid[j], alt.area[j], alt.colour[j]))
    ref_area = float(np.median(tr.area[tr.found]))
    diameter = 2.0 * math.sqrt(ref_area / math.pi)
    seen = tr.found.copy()
    for order, back in ((range(t), 1), (range(t - 1, -1, -1), -1)):  # forwards, then backwards
        for i in order:
            if seen[i] or not cands.get(i) or not (0 <= i - back < t and seen[i - back]):
                continue
            prev = tr.centroid[i - back]
            j = i - 2 * back
            v = prev - tr.centroid[j] if 0 <= j < t and seen[j] else np.zeros(2)
            pred, reach = prev + v, 2.0 * float(np.hypot(*v)) + diameter + _FOLLOW_SLACK_PX
            best, best_d = None, reach
            for cen, area, rgb in cands[i]:
                d = float(np.hypot(*(cen - pred)))
                if _FOLLOW_AREA[0] <= area / ref_area <= _FOLLOW_AREA[1] and d <= best_d:
                    best, best_d = (cen, area, rgb), d
            if best is not None:
                seen[i] = tr.followed[i] = True
                tr.centroid[i], tr.area[i], tr.colour[i] = best


def _weighted_sums(wgt: np.ndarray, vals: np.ndarray, at: np.ndarray) -> np.ndarray:
    """np.einsum("tn,tnc->tc", wgt, vals[at]) bit for bit, over the non-zero weights only.

    einsum accumulates each output in its dtype, term by term in order, from 0 (checked against a
    cumulative sum); zero weights add exact zeros. So: the non-zero terms of each row, in order,
    packed into rows of equal length (zeros after them), summed the same way by cumsum, whose first
    column is the zero it starts from."""
    t = wgt.shape[0]
    on = np.flatnonzero(wgt)
    row = on // wgt.shape[1]
    prod = wgt.reshape(-1)[on, None] * vals[at.reshape(-1)[on]]  # [N, C], as einsum multiplies
    counts = np.bincount(row, minlength=t)
    rank = np.arange(on.size) - (np.cumsum(counts) - counts)[row]
    pad = np.zeros((t, int(counts.max(initial=0)) + 1, vals.shape[1]), prod.dtype)
    pad[row, rank + 1] = prod
    return np.cumsum(pad, axis=1)[:, -1]


def _local_hue(c, mag, floor, exclude, tr: "ObjectTrack", cfg) -> tuple[np.ndarray, np.ndarray]:
    """Hue (degrees) of whatever coloured blob sits where the object is, frame by frame.

    The place is the object's centroid where seen (found or followed), interpolated (held at the
    ends) where not, so an object that changes colour is still looked at. Over a disc 1.5 x its
    expected half extent plus 2 px, pixels that stand out of the background (and are not another
    named colour's) are summed as chroma vectors: mixing with grey does not turn a hue, so the
    sum's angle is the blob's hue. NaN where the disc holds less than 0.3 of the object's expected
    chroma mass.
    """
    t, h, w = mag.shape
    hue = np.full(t, np.nan)
    amount = np.zeros(t)
    ok = tr.seen & np.isfinite(tr.centroid).all(1)
    if not ok.any():
        return hue, amount
    frames = np.arange(t)
    px = np.interp(frames, frames[ok], tr.centroid[ok, 0])
    py = np.interp(frames, frames[ok], tr.centroid[ok, 1])
    q = _PALETTE[_PALETTE_NAMES.index(tr.color)]
    radius = 1.5 * 0.5 * math.sqrt(tr.expected_area * (4 / math.pi if tr.shape == "ball" else 1.0)) + 2.0
    # Gather a (2r+1)^2 window around each frame's place instead of working on whole frames.
    r = int(math.ceil(radius))
    off = np.arange(-r, r + 1)
    rows = np.rint(py).astype(np.int64)[:, None] + off[None, :]  # [T, S]
    cols = np.rint(px).astype(np.int64)[:, None] + off[None, :]
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # [T, S, S]
    ri, ci = np.clip(rows, 0, h - 1)[:, :, None], np.clip(cols, 0, w - 1)[:, None, :]
    lin = (np.arange(t)[:, None, None] * h + ri) * w + ci  # [T, S, S] flat pixel index
    dy = rows[:, :, None] - py[:, None, None]
    dx = cols[:, None, :] - px[:, None, None]
    m_win = mag.reshape(-1)[lin]  # [T, S, S]
    disc = (inside & (dx * dx + dy * dy <= radius * radius) & (m_win >= floor[:, :, :1])
            & ~exclude.reshape(-1)[lin])
    wm = np.where(disc, m_win, 0.0)
    # [T, 2], strong pixels count most: np.einsum("tij,tijc->tc", wm, c[window]), bit for bit
    vec = _weighted_sums(wm.reshape(t, -1), c.reshape(-1, 2), lin.reshape(t, -1))
    amount = wm.reshape(t, -1).sum(1) / float(np.linalg.norm(q))  # coverage units
    enough = amount >= 0.3 * tr.expected_area
    hue[enough] = np.degrees(np.arctan2(vec[enough, 1], vec[enough, 0]))
    # Where the object is not found (and the disc holds no blob), a compact blob of about its size
    # in a colour no other named object has, anywhere in the frame, is the object recoloured.
    lost = ~tr.found & ~enough
    if lost.any():
        q_min = float(np.linalg.norm(_PALETTE, axis=1).min())
        salient = (mag >= np.maximum(floor, 0.35 * q_min)) & ~exclude
        salient[~lost] = False
        labels, n, slices = _label(salient)
        if n:
            ids = np.arange(1, n + 1)
            npx = ndimage.sum_labels(np.ones_like(mag), labels, ids)
            bh = np.array([sl[1].stop - sl[1].start for sl in slices], np.float64)
            bw = np.array([sl[2].stop - sl[2].start for sl in slices], np.float64)
            good = ((npx / (bh * bw) >= cfg.min_fill)
                    & (np.maximum(bh, bw) / np.minimum(bh, bw) <= cfg.max_aspect)
                    & (npx >= cfg.min_area_ratio * 0.5 * tr.expected_area)
                    & (npx <= cfg.max_area_ratio * 1.5 * tr.expected_area))
            cyx = np.array(ndimage.center_of_mass(np.ones_like(mag), labels, ids))  # [n, 3] (t, y, x)
            cvec = np.stack([ndimage.sum_labels(c[..., j] * mag, labels, ids) for j in range(2)], 1)
            for j in np.nonzero(good)[0]:
                ti = int(round(cyx[j, 0]))
                d = math.hypot(cyx[j, 2] - px[ti], cyx[j, 1] - py[ti])
                if not np.isfinite(hue[ti]) or d < amount[ti]:  # keep the nearest (amount: scratch)
                    hue[ti] = math.degrees(math.atan2(cvec[j, 1], cvec[j, 0]))
                    amount[ti] = d
    return hue, amount


def _track_colour(f, c, cls, mag, floor, cov, raws, colour, objs, cfg) -> list[ObjectTrack]:
    t, h, w, _ = f.shape
    k = _PALETTE_NAMES.index(colour)
    a = cov[colour]  # [T, H, W]
    raw = raws[colour]  # [T, H, W]
    # Salt removal: keep pixels with at least 2 of their 8 neighbours in the mask.
    mask = raw & (_neighbours(raw) >= 2)
    labels, n, slices = _label(mask)
    soft = np.clip(a, 0.0, 1.0)
    # other hues: not ours
    soft = np.where((cls == k) | (mag < floor), soft, 0.0).astype(np.float32, copy=False)
    colour_total = np.count_nonzero(raw.reshape(t, -1), axis=1).astype(np.float64)  # [T] mask pixels
    exp_areas = [expected_area(o[0], o[2], (h, w)) for o in objs]
    found = np.zeros((len(objs), t), bool)
    chosen = np.zeros((len(objs), t), np.int64)  # label id (0: none)
    comp = {}
    if n:
        # Over the mask's pixels only (bincount sums each label's pixels in the same order).
        on = np.flatnonzero(mask)  # = the labelled pixels
        flat, soft_on = labels.ravel()[on], soft.ravel()[on]
        npx = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
        mass = np.bincount(flat, weights=soft_on, minlength=n + 1)[1:]
        strong = np.bincount(flat[soft_on >= cfg.min_peak], minlength=n + 1)[1:]
        frame_of = np.array([s[0].start for s in slices])
        bh = np.array([s[1].stop - s[1].start for s in slices], np.float64)
        bw = np.array([s[2].stop - s[2].start for s in slices], np.float64)
        fill = npx / (bh * bw)
        aspect = np.maximum(bh, bw) / np.minimum(bh, bw)
        comp = dict(npx=npx, mass=mass, fill=fill, aspect=aspect, frame=frame_of, slices=slices)
        compact = (fill >= cfg.min_fill) & (aspect <= cfg.max_aspect) & (strong > 0)
        order = np.argsort(exp_areas)[::-1]  # largest expected first
        if len(objs) == 1:  # the common case, vectorised: per frame the best component
            misfit = np.abs(np.log(np.maximum(mass, 1e-3) / exp_areas[0])) + np.where(compact, 0.0, 1e6)
            best = np.lexsort((misfit, frame_of))  # by frame, then misfit
            first = best[np.r_[True, frame_of[best][1:] != frame_of[best][:-1]]]
            chosen[0, frame_of[first]] = first + 1
            share = npx[first] / np.maximum(colour_total[frame_of[first]], 1.0)
            found[0, frame_of[first]] = compact[first] & (np.minimum(share, 1.0) >= cfg.min_share)
        for ti in (range(t) if len(objs) > 1 else ()):
            cand = np.nonzero(frame_of == ti)[0]
            if cand.size == 0:
                continue
            taken: set[int] = set()
            for oi in order:
                ea = exp_areas[oi]
                pool = [j for j in cand if j not in taken]
                if not pool:
                    break
                # Prefer compact blobs, then the mass closest to the expected area.
                key = [(not compact[j], abs(math.log(max(mass[j], 1e-3) / ea))) for j in pool]
                j = pool[min(range(len(pool)), key=key.__getitem__)]
                taken.add(j)
                chosen[oi, ti] = j + 1
                found[oi, ti] = compact[j]  # size: in _measure
            # Together, the colour's objects hold most of its pixels in the frame.
            together = sum(npx[j] for j in taken) / max(colour_total[ti], 1.0)
            found[:, ti] &= together >= cfg.min_share
        if len(objs) > 1:
            _keep_identities(chosen, found, labels)
    others = {cc: m for cc, m in raws.items() if cc != colour}
    return [_measure(f, c, soft, labels, chosen[i], found[i], comp, colour_total, o,
                     exp_areas[i], k, others, cfg)
            for i, o in enumerate(objs)]


def _label(mask: np.ndarray) -> tuple[np.ndarray, int, list]:
    """`ndimage.label(mask, structure=_CONN8)` and `ndimage.find_objects` of it, run on the box
    that holds every mask pixel of the clip (a sixth of the frame, typically): the same labels,
    numbered in the same (raster) order, several times faster."""
    rows, cols = np.flatnonzero(mask.any(axis=(0, 2))), np.flatnonzero(mask.any(axis=(0, 1)))
    labels = np.zeros(mask.shape, np.int32)
    if not rows.size:
        return labels, 0, []
    ys, xs = slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
    sub, n = ndimage.label(mask[:, ys, xs], structure=_CONN8)
    labels[:, ys, xs] = sub
    slices = [(st, slice(sy.start + ys.start, sy.stop + ys.start),
               slice(sx.start + xs.start, sx.stop + xs.start)) for st, sy, sx in ndimage.find_objects(sub)]
    return labels, int(n), slices


def _keep_identities(chosen: np.ndarray, found: np.ndarray, labels: np.ndarray) -> None:
    """Same-colour objects: swap assignments frame to frame to keep each near its last position."""
    n_obj, t = chosen.shape
    cents = ndimage.center_of_mass(np.ones_like(labels), labels, np.arange(1, labels.max() + 1))
    pos = {i + 1: np.asarray(p[1:]) for i, p in enumerate(cents)}
    last = [None] * n_obj
    for ti in range(t):
        ids = list(chosen[:, ti])
        if all(last[o] is not None and ids[o] for o in range(n_obj)):
            import itertools
            best = min(itertools.permutations(range(n_obj)),
                       key=lambda p: sum(np.linalg.norm(pos[ids[p[o]]] - last[o]) for o in range(n_obj)))
            chosen[:, ti] = [ids[best[o]] for o in range(n_obj)]
            found[:, ti] = found[list(best), ti]
        for o in range(n_obj):
            if chosen[o, ti]:
                last[o] = pos[int(chosen[o, ti])]


def _measure(f, c, soft, labels, chosen, found, comp, colour_total, obj, exp_area, k,
             others, cfg) -> ObjectTrack:
    t, h, w, _ = f.shape
    blob = np.zeros(labels.shape, bool)  # [T, H, W] the chosen component of each frame
    boxes = [comp["slices"][j - 1] for j in chosen[chosen > 0]]  # its bounding box (find_objects)
    for sl in boxes:
        blob[sl] |= labels[sl] == chosen[sl[0].start]
    region = _dilate_boxes(blob, boxes, cfg.dilate)
    wgt = np.where(region, soft, 0.0)
    # Where another named colour's blob is within reach, unmix each pixel between the two colours
    # (exact for two colours over grey: chroma = a_k q_k + a_o q_o). Not for nearly opposite hues
    # (red and cyan, yellow and blue mix to grey: the 2x2 system is singular).
    q = _PALETTE[k]
    for other, other_raw in others.items():
        qo = _PALETTE[_PALETTE_NAMES.index(other)]
        if abs(float(q @ qo)) / float(np.linalg.norm(q) * np.linalg.norm(qo)) > math.cos(math.radians(45)):
            continue
        # Nothing of the other colour within reach of the region (its blob's box grown by both
        # dilations): `near` would be empty; skip the dilation of the whole clip.
        reach = max(cfg.dilate, 0) + max(cfg.dilate + 1, 0)
        if not any(other_raw[sl[0], max(sl[1].start - reach, 0):sl[1].stop + reach,
                             max(sl[2].start - reach, 0):sl[2].stop + reach].any() for sl in boxes):
            continue
        near = region & _dilate(other_raw, cfg.dilate + 1)
        if not near.any():
            continue
        inv = np.linalg.inv(np.stack([q, qo], 1))  # chroma -> (a_k, a_o)
        wgt[near] = np.clip(c[near] @ inv[0].astype(np.float32), 0.0, 1.0)
    wgt = wgt.astype(np.float64)
    mass = wgt.reshape(t, -1).sum(1)  # [T]
    ys, xs = np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        cx = (wgt.sum(1) @ xs) / mass
        cy = (wgt.sum(2) @ ys) / mass
    has = chosen > 0
    centroid = np.where(has[:, None], np.stack([cx, cy], 1), np.nan)
    area = np.where(has, mass, np.nan)
    idx = np.clip(chosen - 1, 0, None)
    compactness = np.where(has, comp["fill"][idx] if comp else np.nan, np.nan)
    share = np.where(has, np.minimum(comp["npx"][idx] / np.maximum(colour_total, 1.0), 1.0)
                     if comp else np.nan, np.nan)
    # Colour: mean RGB of the blob's core, each pixel weighted by its coverage squared (the
    # anti-aliased edge and the codec's halo count little).
    w2 = np.where(blob, soft, np.float32(0.0))  # [T, H, W] float32
    np.square(w2, out=w2)
    norm = w2.reshape(t, -1).sum(1)  # [T]
    # np.einsum("thw,thwc->tc", w2, f) over each frame's blob box only: einsum accumulates each
    # output in float32 in raster order, and the pixels outside the box add exact zeros.
    rgb = np.zeros((t, f.shape[-1]), np.result_type(w2, f))
    for sl in boxes:
        ti = sl[0].start
        rgb[ti] = np.einsum("hw,hwc->c", w2[ti, sl[1], sl[2]], f[ti, sl[1], sl[2]])
    with np.errstate(invalid="ignore", divide="ignore"):
        colour = rgb / norm[:, None]
    colour = np.where(has[:, None] & (norm[:, None] > 0), colour, np.nan).astype(np.float64)
    with np.errstate(invalid="ignore"):
        sized = (area >= cfg.min_area_ratio * exp_area) & (area <= cfg.max_area_ratio * exp_area)
    return ObjectTrack(shape=obj[0], color=obj[1], size_name=obj[2], expected_area=exp_area,
                       found=found & sized, blob=found.copy(), centroid=centroid, area=area,
                       compactness=compactness,
                       share=share, colour=colour)
