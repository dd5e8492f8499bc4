"""Searches for a mark the whole-frame reads miss: a crop off centre (`read_crop`, over
`wm_crops`' scan), a rotation about the centre (`read_rotation`), and the window offsets of an
excerpt of a long clip marked in segments (`scan_offsets`). Each is one read, counted in
`watermark.detect`'s union bound; each bounds its own p-value over every point it looked at."""

from __future__ import annotations

import math

import cv2
import numpy as np

from evalkit.provenance import wm_crops
from evalkit.provenance import wm_grid as geo
from evalkit.provenance import wm_time
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_pvalue import chernoff_log, log_i0
from evalkit.provenance.wm_read import (
    Candidate, Detection, a_priori_mark, box_fits, decode_candidate, read_candidates, search_lattice,
)
from evalkit.provenance.wm_scheme import (
    WatermarkConfig, WatermarkKey, choose_profile, make_plan, plan_coeffs,
)

SCAN_CHUNK = 128  # frames whose float copies `scan_offsets` holds at once


def read_crop(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int,
                 keep: int = 3) -> Detection | None:
    """`detect` on a crop off centre of the mean frame float32 [H, W, 3]: `wm_crops` ranks
    every (original size, integer origin) by the lattice fit; the best `keep` are refined on
    exact boxes (sub-pixel origin and size, gain near 1) and decoded. One read: its attempts are
    counted in p_payload, every box looked at in p_presence (as `search_lattice` counts its gain
    refinement: the boxes scored, though which ones depends on the scan's winners; the payload
    bound, which decides a detection with a payload, needs only the number of decodes)."""
    n_info = payload_bits + cfg.mac_bits
    mean, px = shrunk(mean)
    h, w = mean.shape[:2]
    planes = geo.planes(mean, cfg.channels)
    integs = [geo.Integral(p) for p in planes]
    by_profile = {prof: planes[wm_crops.marked_channel(cfg, prof)] for prof in range(len(cfg.profiles))}
    hyps, n_points = wm_crops.search(by_profile, cfg, lambda g, p: make_plan(key, g, cfg, n_info, DEFAULT_CODE, p),
                                     min_crop=cfg.crop_search, keep=keep, px=px, shift=cfg.shift_search)
    if not hyps:
        return None
    near = np.exp(np.linspace(-0.03, 0.03, 13))

    def box_of(xs: np.ndarray) -> np.ndarray:  # [B, 4] (top, left, height, width) -> (y0, y1, x0, x1)
        t, lf, hh, ww = xs.T
        return np.stack([-t / hh, (h - t) / hh, -lf / ww, (w - lf) / ww], axis=1)

    def score(plan, xs: np.ndarray, gains: np.ndarray = near):
        """Lattice fit z [B] of boxes xs [B, 4] at the best of `gains`, and (fit, gain,
        coefficients, validity) of the best box."""
        v, valid = plan_coeffs(integs, plan, cfg, box_of(xs))
        act = plan.codebit >= 0  # only the coefficients that carry code bits can fit
        fit = box_fits(v[:, act], valid[:, act], plan.step[act], plan.dither[act], gains)   # [B, gains]
        j = np.argmax(fit, axis=1)
        best_fit = fit[np.arange(len(xs)), j]
        n = valid.sum(axis=1)
        z = np.where(n >= 24, best_fit / np.sqrt(np.maximum(n, 1) / 2), -np.inf)
        b = int(np.argmax(z))
        return z, (float(best_fit[b]), float(gains[j[b]]), v[b], valid[b])

    cands = []
    for hyp in hyps:
        plan = make_plan(key, hyp.g, cfg, n_info, DEFAULT_CODE, hyp.profile)
        y0, y1, x0, x1 = hyp.box
        hc, wc = h / (y1 - y0), w / (x1 - x0)
        x = np.array([-y0 * hc, -x0 * wc, hc, wc])  # the original's top, left, height, width here
        both = y1 - y0 < 1 and x1 - x0 < 1  # both sides cut by one fraction
        moved = abs(hc - h) < 0.5 and abs(wc - w) < 0.5  # the picture at its size, moved
        x, z, info, n = _refine_box(lambda xs, gains=near: score(plan, xs, gains), x, both, h, w, near, moved)
        n_points += n * near.size
        if np.isfinite(z):
            fit, gain, v, valid = info
            cands.append(Candidate(z, fit, plan.g, tuple(box_of(x[None])[0]), h / x[2], gain, v, valid, plan,
                               hyp.profile))
    if not cands:
        return None
    cands.sort(key=lambda c: -c.z)
    p_presence = min(1.0, n_points * math.exp(chernoff_log(log_i0, np.ones(int(cands[0].valid.sum())),
                                                             cands[0].fit)))
    results = []
    for c in cands:
        results.append(decode_candidate(c, cfg, key, payload_bits))
        if results[-1]["ok"]:
            break
    r = results[-1] if results[-1]["ok"] else results[0]
    p_payload = min(1.0, len(cands) * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0)))) \
        if r["ok"] else 1.0
    p = min(1.0, 2 * min(p_payload, p_presence))
    c = r["cand"]
    geometry = {"grid": c.g, "profile": c.prof, "crop": "off-centre", "box": tuple(round(x, 4) for x in c.box),
                "gain": round(c.gain, 4), "presence_z": round(cands[0].z, 2), "attempts": len(results),
                "boxes_searched": n_points}
    return Detection(detected=p < cfg.p_threshold, payload=r["payload"] if r["ok"] else None, p_value=p,
                     bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"], p_payload=p_payload,
                     p_presence=p_presence, geometry=geometry)


def shrunk(mean: np.ndarray, short: int = 320) -> tuple[np.ndarray, float]:
    """A large frame shrunk by a whole factor to about `short` px on its short side, and the
    video pixels per pixel of it. The mark is read in frame-relative coordinates, so the
    searches for crops and rotations run on it: the same hypotheses for a fraction of the cost
    (720p: 5x less)."""
    k = min(mean.shape[:2]) // short
    if k < 2:
        return mean, 1.0
    size = (round(mean.shape[1] / k), round(mean.shape[0] / k))
    return cv2.resize(mean, size, interpolation=cv2.INTER_AREA), mean.shape[0] / size[1]


def read_rotation(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int) -> Detection:
    """`detect` on the mean frame float32 [H, W, 3] turned back by a small angle: a clip rotated
    about its centre and kept at its size (an editor's straightening, a tilted re-shoot of a
    screen). The whole frame's lattice fit shows only within about a quarter of a chip at the
    frame's edge (measured on a 64 px world clip rotated 5 degrees: z 14 at the angle, 7 half a
    degree off, 5 at one degree), so angles 16/G degrees apart (G the frame's own grid) are
    tried up to `cfg.rotation_search` either way on the frame shrunk to about 320 px (the grid is
    frame-relative), the best one again a quarter and half a step either side, and the winner is
    read at full size. One read: every (angle, hypothesis, gain) point tried counts in the
    presence bound, its decodes in the payload bound."""
    n_info = payload_bits + cfg.mac_bits
    h, w = mean.shape[:2]
    small, _ = shrunk(mean)
    step = 16.0 / cfg.grid_for(h, w)
    n_points = 0

    def search(frame: np.ndarray, deg: float) -> list[Candidate]:
        nonlocal n_points
        cands, n = search_lattice(geo.planes(geo.unrotate(frame, deg), cfg.channels), cfg, key, n_info, crops=(1.0,))
        n_points += n
        return cands

    screened: dict[float, list[Candidate]] = {}

    def z(deg: float) -> float:
        screened[deg] = search(small, deg)
        return max((c.z for c in screened[deg]), default=-math.inf)

    k = max(1, int(cfg.rotation_search / step + 1e-9))
    angles = [s * step * i for i in range(1, k + 1) for s in (1, -1)]
    zs = [z(a) for a in angles]
    a0 = angles[int(np.argmax(zs))]
    near = [a0 + f * step for f in (-0.5, -0.25, 0.25, 0.5)]
    angles, zs = angles + near, zs + [z(a) for a in near]
    deg = angles[int(np.argmax(zs))]
    cands = screened[deg] if small is mean else search(mean, deg)  # an unshrunk frame: already read
    d, _ = read_candidates(cands, n_points, choose_profile(mean, cfg), cfg, key, payload_bits)
    d.geometry["rotation"] = round(deg, 2)
    return d


def _refine_box(score, x: np.ndarray, both: bool, h: int, w: int, near: np.ndarray, moved: bool = False):
    """The best box near x = [top, left, height, width] (the original frame's, in pixels of the
    crop) by `score(xs [B, 4], gains) -> (z [B], info of the best)` with gains from `near`;
    returns (x, z, info, boxes scored).
    A crop at whole pixels, not resized after, has a whole-pixel origin and size, and on sharp
    content only that exact box fits (measured on a 128 px world clip: z 16 at it, 3-4 half a
    pixel off), so every such box near x is tried; then ascent, coarse to fine, for a crop
    resized after (best of the 16 one-coordinate moves, twice at each scale). `moved`: a
    picture shifted within its frame, at its own size, so its origin may lie inside the frame."""
    t0, l0, h0, w0 = (int(round(v)) for v in x)
    boxes = [x]
    if moved:
        boxes += [np.array([top, left, h, w], np.float64)
                  for top in range(t0 - 2, t0 + 3) for left in range(l0 - 2, l0 + 3)]
    for hh in range(max(h, h0 - 3), h0 + 4):
        widths = [int(round(hh * w / h)) + e for e in (-1, 0, 1)] if both else range(w0 - 3, w0 + 4)
        for ww in (ww for ww in widths if ww >= w):
            boxes += [np.array([top, left, hh, ww], np.float64)
                      for top in range(max(h - hh, t0 - 2), min(0, t0 + 2) + 1)      # the crop lies inside
                      for left in range(max(w - ww, l0 - 2), min(0, l0 + 2) + 1)]
    zs, info = score(np.stack(boxes), near[::3])  # every third gain: many boxes, a cropped copy keeps its gain
    i = int(np.argmax(zs))
    x, z, n = boxes[i], float(zs[i]), len(boxes)
    moves = np.array([[d if k == i else 0.0 for k in range(4)] for i in range(4) for d in (-2, -1, 1, 2)])
    for scale in (1.0, 0.5, 0.25, 0.25):
        for _ in range(2):
            # positions move by pixels, sizes by half a percent
            ys = x + scale * moves * np.array([1.0, 1.0, 0.005 * x[2], 0.005 * x[3]])
            zy, iy = score(ys)
            n += len(ys)
            j = int(np.argmax(zy))
            if zy[j] > z:
                x, z, info = ys[j], float(zy[j]), iy
    return x, z, info, n


def scan_offsets(frames: np.ndarray, wins: list, cfg: WatermarkConfig, key: WatermarkKey, n_info: int,
                  keep: int = 2, max_segments: int = 8) -> list[tuple[int, int, str]]:
    """(length, offset, view) of the window offsets to read: the first frame's (an untrimmed
    clip), then for each window length in `wins` the best `keep` by the narrow score and the
    best `keep // 2` by the broad one. An offset's score is the sign-blind lattice fit summed
    over the windows in step with it (up to `max_segments` of them), as given or mirrored, no
    crop: the segments of a long clip all sit on the lattice, so their sum stands out from
    noise long before a single window does. The narrow score fits the a-priori geometry only
    (the clip's own grid and profile, gain within 3% of 1: what trimming and re-encoding
    leave; in a greyscale copy of a Cr mark, its luma companion's: `wm_read.a_priori_mark`),
    which few wrong offsets can match by chance; the broad one every profile and grid
    over a coarse gain grid (a resized or brightened excerpt)."""
    if not wins:
        return []
    t, h, w = frames.shape[:3]
    gains = np.exp(np.linspace(*np.log(cfg.gain_range), 13))
    near = np.exp(np.linspace(-0.03, 0.03, 7))
    geoms = [(g, prof) for prof in range(len(cfg.profiles)) for g in cfg.grid_sizes if min(h, w) / g >= 2.0]
    plans = [make_plan(key, g, cfg, n_info, DEFAULT_CODE, prof) for g, prof in geoms]
    # the a-priori geometry: in a greyscale copy of a Cr mark, its luma companion's
    prof, gain0 = a_priori_mark(np.ascontiguousarray(frames[0], np.float32), cfg)
    own = (cfg.grid_for(h, w), prof)
    # Chip means are linear in the frame, so each frame's are taken once and a window's are their
    # mean (running sums over time) instead of measuring every window's mean frame again. Taken
    # SCAN_CHUNK frames at a time: the whole clip's float copies and their products held 3.3x the
    # decoded clip at once (2,048 frames of 640x360: 4.7 GB over the clip's 1.4, session 31).
    grids = sorted({p.g for p in plans})
    per: dict = {g: [] for g in grids}
    for a in range(0, t, SCAN_CHUNK):
        small = wm_time.shrink(frames[a:a + SCAN_CHUNK])
        pl = np.stack([small @ geo.CHANNELS[c][0].astype(np.float32) for c in cfg.channels], axis=1)  # [t, C, h, w]
        sh, sw = pl.shape[2:]
        for g in grids:
            per[g].append(np.einsum("gh,tchw,kw->tcgk", geo.chip_weights(sh, g), pl, geo.chip_weights(sw, g),
                                    optimize=True))
    cum = {}
    for g in grids:
        per_frame = np.concatenate(per[g])  # [T, C, g, g]
        cum[g] = np.concatenate([np.zeros((1,) + per_frame.shape[1:]), np.cumsum(per_frame, axis=0)])
    picks = []
    for n in sorted({b - a for a, b in wins}, reverse=True):
        offsets = {a for a, b in wins if b - a == n}
        spans = np.array([(a, a + n) for a in range(0, min(t - n, max_segments * n - 1) + 1) if a % n in offsets])
        acc: dict = {}  # (offset, view, plan index) -> [fits per gain, fits near gain 1, coefficients]
        for name in ("as-is", "mirrored"):  # a mirrored view's chips are the columns reversed
            coeffs = {}
            for pi, plan in enumerate(plans):
                if plan.g not in coeffs:
                    c = (cum[plan.g][spans[:, 1]] - cum[plan.g][spans[:, 0]]) / n      # [S, C, g, g]
                    c = c if name == "as-is" else c[..., ::-1]
                    coeffs[plan.g] = np.concatenate([geo.haar(c[:, k], cfg.levels) for k in range(c.shape[1])], axis=1)
                v = coeffs[plan.g]                                                        # [S, n_coeffs]
                valid = geo.haar_valid(np.ones((plan.g, plan.g), bool), cfg.levels)
                valid = np.tile(valid, len(cfg.channels)) & (plan.codebit >= 0)
                if valid.sum() < 24:
                    continue
                ok = np.broadcast_to(valid, v.shape)
                at = near * (gain0 if geoms[pi] == own else 1.0)
                for (a, _), fit, fit_near in zip(spans, box_fits(v, ok, plan.step, plan.dither, gains),
                                                       box_fits(v, ok, plan.step, plan.dither, at)):
                    e = acc.setdefault((int(a) % n, name, pi), [0.0, 0.0, 0])
                    e[0], e[1], e[2] = e[0] + fit, e[1] + fit_near, e[2] + int(valid.sum())
        broad: dict = {}
        narrow: dict = {}
        for (off, name, pi), (fit, fit_near, m) in acc.items():
            broad[(off, name)] = max(broad.get((off, name), -math.inf), float(np.max(fit)) / math.sqrt(m / 2))
            if geoms[pi] == own:
                narrow[(off, name)] = float(np.max(fit_near)) / math.sqrt(m / 2)
        if not picks and (0, "as-is") in broad:  # first, segments in step with the first frame:
            picks.append((n, 0, "as-is"))         # the clip as it was marked, untrimmed
        for score, k in ((narrow, keep), (broad, max(1, keep // 2))):
            ranked = [(n, off, name) for (off, name), _ in sorted(score.items(), key=lambda kv: -kv[1])]
            picks += [r for r in ranked if r not in picks][:k]
    return picks
