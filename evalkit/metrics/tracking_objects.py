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

The pieces: colour planes and hue classes in `tracking_colour`; a colour's blobs, chosen and
measured per frame, in `tracking_blobs`; the config and result types in `tracking_types`. Here: the
clip's pipeline (`track_objects`) and the following of a track through a change of appearance.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from evalkit.metrics.tracking_blobs import _dilate, _label, _track_colour
from evalkit.metrics.tracking_colour import (  # noqa: F401  (palette_hues re-exported)
    _PALETTE, _PALETTE_NAMES, _hue_class, chroma_planes, palette_hues,
)
from evalkit.metrics.tracking_types import (  # noqa: F401  (re-exported)
    DEFAULT_TRACKER, ObjectTrack, TrackerConfig, expected_area,
)
from evalkit.world.spec import COLORS, SHAPES, SIZES


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
            cands[int(i)].append((tr.centroid[i], tr.area[i], tr.colour[i], tr.extent[i]))
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
            cands[int(lost[j])].append((alt.centroid[j], alt.area[j], alt.colour[j], alt.extent[j]))
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
            for cen, area, rgb, side in cands[i]:
                d = float(np.hypot(*(cen - pred)))
                if _FOLLOW_AREA[0] <= area / ref_area <= _FOLLOW_AREA[1] and d <= best_d:
                    best, best_d = (cen, area, rgb, side), d
            if best is not None:
                seen[i] = tr.followed[i] = True
                tr.centroid[i], tr.area[i], tr.colour[i], tr.extent[i] = best


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
