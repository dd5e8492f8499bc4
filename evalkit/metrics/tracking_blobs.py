"""One colour's blobs in every frame of a clip: which is each named object, and its measures.

Labels the colour's mask (8-connected, within a frame), chooses per frame and object the compact
component closest to the expected area (same-coloured objects kept apart by position), and
measures it at sub-pixel precision: coverage-weighted centroid and area, unmixed from a touching
object of another colour, fill ratio, share of the colour, mean colour. The why of each threshold
is in `tracking_objects`' docstring; the clip's pipeline and the following of a track live there.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from evalkit.metrics.tracking_colour import _PALETTE, _PALETTE_NAMES
from evalkit.metrics.tracking_types import ObjectTrack, expected_area

# In-plane 8-connectivity and 3x3 neighbourhoods, never across frames.
_CONN8 = np.zeros((3, 3, 3), bool)
_CONN8[1] = True


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


def _extent(cover: np.ndarray) -> tuple[float, float]:
    """(extent, span): the blob's extent in px, the geometric mean of its height and width, read
    from its coverage `cover` [1, h, w] (0 off the blob) as a share of its typical (90th
    percentile) coverage: dimmer light or a darker limb scale the chroma, not the shares, so
    neither shrinks it as they shrink the chroma mass. Its square is the silhouette's box area, so
    growth along one axis shows (the smaller side once hid a ball stretched to twice its width);
    motion blur lengthens it too, but keeps the chroma mass, which constant_size also asks to
    change. Each row's (column's) largest share, summed over the rows (columns): sub-pixel, where
    a count of pixels would step by the 2 px of the codec's subsampled chroma."""
    on = cover[cover > 0]
    if not on.size:
        return math.nan, math.nan
    share = np.clip(cover[0] / float(np.percentile(on, 90)), 0.0, 1.0)
    rows, cols = share.max(axis=1), share.max(axis=0)
    # Its silhouette: rows and columns a quarter covered (a shaded sphere's dark limb counts in
    # full here, where the summed shares read it ~4 px narrow).
    span = min(np.count_nonzero(rows >= 0.25), np.count_nonzero(cols >= 0.25))
    return float(math.sqrt(rows.sum() * cols.sum())), float(span)


def _measure(f, c, soft, labels, chosen, found, comp, colour_total, obj, exp_area, k,
             others, cfg) -> ObjectTrack:
    t, h, w, _ = f.shape
    blob = np.zeros(labels.shape, bool)  # [T, H, W] the chosen component of each frame
    boxes = [comp["slices"][j - 1] for j in chosen[chosen > 0]]  # its bounding box (find_objects)
    extent, span = np.full(t, np.nan), np.full(t, np.nan)
    for sl in boxes:
        mine = labels[sl] == chosen[sl[0].start]
        blob[sl] |= mine
        extent[sl[0].start], span[sl[0].start] = _extent(np.where(mine, soft[sl], 0.0))
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
                       share=share, colour=colour, extent=extent, span=span)
