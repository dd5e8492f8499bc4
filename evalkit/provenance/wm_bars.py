"""The picture inside bars measured a few lines off (`wm_grid.bars`): a codec blurs or rings the
lines where bar meets picture, so a bar is measured a line or two short or long, and a cut a line
short leaves the picture padded, which neither the read of that view nor the crop search (a crop
lies inside the original) can place (session 37: 18 px bars measured 16 after H.264 CRF 23 lost
the carphone footage's payload; cut at 18 it read at p 1e-55).

`bar_cuts` scores every cut near the measured one by the sign-blind lattice fit of its a-priori
geometry and ranks them; `read_bars` (a blind read, one of `watermark.detect`'s) decodes the
best, and `wm_confirm.confirm_payload` tests a named payload at them. The ranking never looks at
the code bits' signs, so either bound holds over the cuts it passes on."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_pvalue import chernoff_log, log_i0
from evalkit.provenance.wm_read import Candidate, Detection, a_priori_for, box_fits, colourless, decode_candidate
from evalkit.provenance.wm_scheme import (WatermarkConfig, WatermarkKey, companion_gain, make_plan, plan_coeffs,
                                          prior_gains)

BAR_REACH = 4  # px: how far a bar's true edge may lie from where `wm_grid.bars` measured it


@dataclass
class BarCuts:
    """The cuts `bar_cuts` scored. `ranked`: (view, cut (top, bottom, left, right) in that view,
    its candidate at the a-priori geometry), one per cut, best lattice fit first; `n_points`:
    every (cut, gain) that could have been scored (the presence bound's count); `n_cuts`: the
    cuts among them; `best_fit` / `best_valid`: the best cut's fit and its valid coefficients."""

    ranked: list
    n_points: int
    n_cuts: int
    best_fit: float
    best_valid: np.ndarray


def bar_cuts(mean: np.ndarray, cut: tuple[int, int, int, int], cfg: WatermarkConfig, key: WatermarkKey,
             n_info: int, reach: int = BAR_REACH) -> BarCuts | None:
    """Score the pictures inside flat bars whose edges lie up to `reach` px from the measured
    `cut` = (top, bottom, left, right), in the mean frame float32 [H, W, 3] as given and
    mirrored: every cut with each side's width within `reach` of the measured one or of the
    opposite side's (sides measured without a bar too, where the opposite side has one), the
    rows' pair first, then the columns' pair at the best rows, each by the sign-blind lattice fit
    of the a-priori geometry (the picture's own grid and profile, gains within 3% of the a-priori
    ones). None when no cut leaves enough coefficients to score."""
    h, w = mean.shape[:2]
    t, b, lf, r = cut
    picture = np.ascontiguousarray(mean[t:h - b, lf:w - r])
    grey = colourless(geo.planes(picture, cfg.channels), cfg)
    near = np.exp(np.linspace(-0.03, 0.03, 13))
    kinds: dict = {}
    plans: dict = {}

    def kind(c: tuple) -> tuple[int, np.ndarray, np.ndarray]:
        """(profile, gains, each gain's unattacked level) of the picture cut at `c`. The profile
        follows the picture's size, as the embedder chose it: a cut off by a bar's width can
        cross `chroma_min_px` (session 38: the 176x144 carphone under 14 px bars was measured
        (0, 12) after CRF 30, and its 160-line picture read with the Cr profile found nothing)."""
        prof, gain0 = a_priori_for(h - c[0] - c[1], w - c[2] - c[3], cfg, lambda: grey)
        if (prof, gain0) not in kinds:
            priors = prior_gains(cfg, prof) if gain0 == 1.0 else (gain0,)
            comp = companion_gain(cfg, prof)
            # a luma companion reads at its own level (a greyscale copy) and is reported over
            # it, as `read_candidates` does (0.2 read as "contrast lowered" otherwise)
            bases = [np.full(near.size, g0 if g0 == comp else 1.0) for g0 in priors]
            kinds[(prof, gain0)] = (prof, np.concatenate([g0 * near for g0 in priors]), np.concatenate(bases))
        return kinds[(prof, gain0)]

    def pairs(a: int, c: int, n: int) -> list[tuple[int, int]]:
        """Widths of the two bars of one axis to try: none where neither side has a bar; else each
        side within `reach` of its own measured width or of the other side's (letterboxes are
        centred, and a picture whose edge lines are flat, a dark background, adds them to its
        bar: 32 px bars on a dark 256 px render measured 32 and 40 after CRF 23)."""
        if not (a or c):
            return [(0, 0)]
        widths = sorted({x + i for x in (a, c) for i in range(-reach, reach + 1) if x + i >= 0})
        return [(x, y) for x in widths for y in widths if n - x - y >= n / 2]

    def score(integs, cuts: list) -> list:
        """(z, fit, cut, candidate) of each cut (top, bottom, left, right)."""
        out = []
        by_plan: dict = {}
        for c in cuts:
            by_plan.setdefault((cfg.grid_for(h - c[0] - c[1], w - c[2] - c[3]), kind(c)[0]), []).append(c)
        for (g, prof), cs in by_plan.items():
            plan = plans.setdefault((g, prof), make_plan(key, g, cfg, n_info, DEFAULT_CODE, prof))
            _, gains, bases = kind(cs[0])
            # the picture (h - top - bottom) x (w - left - right) at (top, left) is the unit square
            boxes = np.array([(-ct / (h - ct - cb), (h - ct) / (h - ct - cb), -cl / (w - cl - cr),
                               (w - cl) / (w - cl - cr)) for ct, cb, cl, cr in cs], np.float64)
            for k in range(0, len(cs), 64):  # bounded [boxes, gains, coefficients] temporaries
                v, valid = plan_coeffs(integs, plan, cfg, boxes[k:k + 64])
                fits = box_fits(v, valid, plan.step, plan.dither, gains)              # [B, gains]
                n = valid.sum(axis=1)
                for i, c in enumerate(cs[k:k + 64]):
                    j = int(np.argmax(fits[i]))
                    z = float(fits[i, j]) / math.sqrt(max(n[i], 1) / 2) if n[i] >= 24 else -math.inf
                    cand = Candidate(z, float(fits[i, j]), plan.g, (0.0, 1.0, 0.0, 1.0), 1.0, float(gains[j]),
                                     v[i], valid[i], plan, prof, prior=True, base=float(bases[j]))
                    out.append((z, c, cand))
        return out

    scored, n_points, n_cuts = [], 0, 0
    for view, frame, (ct, cb, cl, cr) in (("bars-removed", mean, cut),
                                          ("bars-removed-mirrored", mean[:, ::-1], (t, b, r, lf))):
        integs = [geo.Integral(p) for p in geo.planes(np.ascontiguousarray(frame), cfg.channels)]
        row_pairs, col_pairs = pairs(ct, cb, h), pairs(cl, cr, w)
        rows = score(integs, [(a, c, cl, cr) for a, c in row_pairs])
        best = max(rows, key=lambda s: s[0])[1]
        cols = score(integs, [(best[0], best[1], a, c) for a, c in col_pairs])
        # the columns are scored at the rows that won, which the data chose: the bound counts
        # every (rows, columns) pair that could have been scored, each at the most gains any
        # picture size among them is scored at
        most = max(kind((a, c, x, y))[1].size for a, c in row_pairs for x, y in [(cl, cr)] + col_pairs)
        n_cuts += len(row_pairs) * (1 + len(col_pairs))
        n_points += len(row_pairs) * (1 + len(col_pairs)) * most
        scored += [(view, z, c, cand) for z, c, cand in rows + cols if np.isfinite(z)]
    if not scored:
        return None
    scored.sort(key=lambda s: -s[1])
    ranked, seen = [], set()
    for view, _, c, cand in scored:  # the best rows are scored again with the columns: once each
        if (view, c) not in seen:
            seen.add((view, c))
            ranked.append((view, c, cand))
    return BarCuts(ranked, n_points, n_cuts, ranked[0][2].fit, ranked[0][2].valid)


def as_given(view: str, c: tuple) -> tuple[int, int, int, int]:
    """A cut of `view` in the clip as given (a mirrored view swaps left and right)."""
    return tuple(int(x) for x in (c if view == "bars-removed" else (c[0], c[1], c[3], c[2])))


def read_bars(mean: np.ndarray, cut: tuple[int, int, int, int], cfg: WatermarkConfig, key: WatermarkKey,
              payload_bits: int, reach: int = BAR_REACH, keep: int = 3) -> Detection | None:
    """`detect` on the picture inside the bars (`bar_cuts`): the best `keep` cuts are decoded.
    One read, counted as `read_crop` counts its boxes: every (cut, gain) scored in the presence
    bound, the decodes in the payload bound (the choice is sign-blind)."""
    found = bar_cuts(mean, cut, cfg, key, payload_bits + cfg.mac_bits, reach)
    if found is None:
        return None
    # every decode that could run counts in the payload bound, run or not (stopping at the first
    # payload that verifies would otherwise inflate the false-payload rate by up to 1 + 1/2 + 1/3)
    n_decodes = min(keep, len(found.ranked))
    results = []
    for view, c, cand in found.ranked[:keep]:
        results.append((view, c, decode_candidate(cand, cfg, key, payload_bits)))
        if results[-1][2]["ok"]:
            break
    p_presence = min(1.0, found.n_points * math.exp(chernoff_log(log_i0, np.ones(int(found.best_valid.sum())),
                                                                  found.best_fit)))
    view, c, res = results[-1] if results[-1][2]["ok"] else results[0]
    p_payload = min(1.0, n_decodes * min(2.0 ** -cfg.mac_bits, math.exp(min(res["log_corr"], 0.0)))) \
        if res["ok"] else 1.0
    p = min(1.0, 2 * min(p_payload, p_presence))
    cand = res["cand"]
    geometry = {"grid": cand.g, "profile": cand.prof, "crop": 1.0, "box": cand.box,
                "gain": round(cand.gain / cand.base, 4), "presence_z": round(found.ranked[0][2].z, 2),
                "attempts": len(results), "bars": as_given(view, c),
                "bars_measured": tuple(int(x) for x in cut), "cuts_searched": found.n_cuts, "view": view}
    if cand.base != 1.0:  # read from a Cr mark's luma companion (a greyscale copy)
        geometry["part"] = "luma companion"
    return Detection(detected=p < cfg.p_threshold, payload=res["payload"] if res["ok"] else None, p_value=p,
                     bit_confidence=float(np.mean(np.abs(res["soft"]))), bits=res["soft"], p_payload=p_payload,
                     p_presence=p_presence, geometry=geometry)


__all__ = ["BAR_REACH", "BarCuts", "bar_cuts", "read_bars", "as_given"]
