"""Reading the mark from one frame: the lattice search over (profile, grid, centre crop, gain)
hypotheses (`search_lattice`), the soft decode of a candidate geometry (`decode_candidate`), and
the p-values that count every hypothesis and decode tried (`read_candidates`). A view of a
clip, a window of it or a searched geometry (`wm_search`) is one such read."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_pvalue import chernoff_log, log_cosh, log_i0
from evalkit.provenance.wm_scheme import (
    Plan, WatermarkConfig, WatermarkKey, choose_profile, companion_gain, haar_of, make_plan, marks_luma, plan_coeffs,
    prior_gains, profile_for_size,
)


@dataclass
class Detection:
    """What `detect` found. `bits` are soft payload bits in [-1, 1] (positive means 1);
    `bit_confidence` is their mean magnitude. `p_value` is the probability, with no mark of this
    key present, of evidence at least this strong (see `watermark`'s docstring)."""

    detected: bool
    payload: bytes | None
    p_value: float
    bit_confidence: float
    bits: np.ndarray
    p_payload: float = 1.0
    p_presence: float = 1.0
    geometry: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"detected": bool(self.detected),
                "payload": self.payload.hex() if self.payload is not None else None,
                "p_value": float(self.p_value), "bit_confidence": float(self.bit_confidence)}


@dataclass
class Candidate:
    z: float
    fit: float
    g: int
    box: tuple
    crop: float
    gain: float
    v: np.ndarray
    valid: np.ndarray
    plan: Plan
    prof: int = 0
    prior: bool = False  # the a-priori geometry of its profile (native grid, no crop, a prior gain)
    legacy: bool = False  # ... at another kind's a-priori gain (the other luma direction, a luma companion)
    base: float = 1.0  # the gain of an unattacked mark of its kind (a luma companion's); gains are reported over it


def lattice_fit(v, st, di, gains):
    """Lattice fit (sign-blind: a half step apart both bits fit) at each gain."""
    return box_fits(v[None], None, st, di, gains)[0]


def box_fits(vs: np.ndarray, valids: np.ndarray | None, st: np.ndarray, di: np.ndarray,
             gains: np.ndarray) -> np.ndarray:
    """`lattice_fit` [B, gains] of the coefficients [B, n] of many boxes, each over its own valid
    ones (None: all). In float32 from the start and in place: the cosines of every (box, gain,
    coefficient) are most of a read's arithmetic (4x faster than float64 temporaries; the phases
    agree to 1e-4 of a turn, far inside the lattice noise)."""
    if valids is not None:
        cols = np.flatnonzero(valids.any(axis=0))
        vs, valids, st, di = vs[:, cols], valids[:, cols], st[cols], di[cols]
    x = (vs / st).astype(np.float32)                                       # [B, n] in steps
    e = x[:, None, :] * (1.0 / np.asarray(gains)).astype(np.float32)[None, :, None]   # [B, gains, n]
    e -= di.astype(np.float32)
    e *= np.float32(4 * np.pi)
    np.cos(e, out=e)
    if valids is not None:
        e *= valids[:, None, :]
    return e.sum(axis=2, dtype=np.float64)


def colourless(pl: list[np.ndarray], cfg: WatermarkConfig) -> bool:
    """Whether the colour-difference planes of a frame are flat (under half a level end to end):
    a greyscale copy, in which only luma can hold a mark."""
    diff = [p for c, p in zip(cfg.channels, pl) if c != "y"]
    return "y" in cfg.channels and bool(diff) and all(float(np.ptp(p)) < 0.5 for p in diff)


def a_priori_mark(frame: np.ndarray, cfg: WatermarkConfig) -> tuple[int, float]:
    """(profile, gain) at which an unattacked mark reads in a clip like `frame` [H, W, 3]: the
    profile the embedder picks for its size at gain 1, or, in a frame without colour where that
    profile marks none but colour, the luma profile at the luma companion's gain."""
    return a_priori_for(*frame.shape[:2], cfg, lambda: colourless(geo.planes(frame, cfg.channels), cfg))


def a_priori_for(h: int, w: int, cfg: WatermarkConfig, grey: Callable[[], bool]) -> tuple[int, float]:
    """`a_priori_mark` for a picture of h x w pixels; `grey()` says whether it has no colour
    (asked only where the answer matters: the test reads the whole frame)."""
    prof = profile_for_size(h, w, cfg)
    comp = companion_gain(cfg, 0)
    if comp and not marks_luma(cfg, prof) and grey():
        return 0, comp
    return prof, 1.0


def search_lattice(pl: list[np.ndarray], cfg: WatermarkConfig, key: WatermarkKey, n_info: int,
            crops: tuple[float, ...] | None = None):
    """Every (profile, grid, crop box) hypothesis with its best gain (and its best gain near 1);
    the centre crops are `cfg.crops` unless `crops` is given. Returns the candidates and the
    number of (hypothesis, gain) points looked at.

    A greyscale frame (`colourless`) holds no colour difference, so the profiles that mark none
    but colour are not read (the choice depends on the frame alone, never on the key, so the
    bounds hold); the luma profile is searched instead over a second gain range, about the gain
    of a Cr mark's luma companion (`wm_scheme.companion_gain`): what a greyscale copy of a clip
    marked in Cr keeps (after a contrast or brightness change too)."""
    h, w = pl[0].shape
    integs = [geo.Integral(p) for p in pl]
    lo, hi = math.log(cfg.gain_range[0]), math.log(cfg.gain_range[1])
    coarse = np.exp(np.linspace(lo, hi, cfg.gain_steps))
    step = (hi - lo) / max(cfg.gain_steps - 1, 1)
    near = np.exp(np.linspace(-0.03, 0.03, 13))
    native = cfg.grid_for(h, w)
    grey = colourless(pl, cfg)
    cands, n_search = [], 0
    for g, prof in ((g, p) for p in range(len(cfg.profiles)) for g in cfg.grid_sizes):
        if grey and not marks_luma(cfg, prof):
            continue
        plan = make_plan(key, g, cfg, n_info, DEFAULT_CODE, prof)
        # a priori: gain 1, and where a mark along the other luma direction or a luma companion reads
        priors = prior_gains(cfg, prof)
        comp = companion_gain(cfg, prof)
        at_prior = [g0 * near for g0 in priors]
        bases = [1.0] + ([comp] if grey and comp else [])
        for crop in cfg.crops if crops is None else crops:
            if min(h, w) / crop / g < 2.0:
                continue
            boxes = [(0.0, 1.0, 0.0, 1.0)] if crop >= 1.0 else geo.crop_boxes(h, w, crop)
            apriori = g == native and crop >= 1.0
            # all boxes measured at once: [B, n] coefficients
            vs, valids = plan_coeffs(integs, plan, cfg, np.asarray(boxes, np.float64))
            for base in bases:
                # many candidate crop boxes: rank them on every 4th gain, refine the best two
                grid = coarse * base if len(boxes) == 1 else coarse[::4] * base
                gstep = step * (coarse.size - 1) / max(grid.size - 1, 1)
                fits = box_fits(vs, valids, plan.step, plan.dither, grid)     # [B, gains]
                per_box = []
                for b, box in enumerate(boxes):
                    v, valid = vs[b], valids[b]
                    if valid.sum() < 24:
                        continue
                    vv, st, di = v[valid], plan.step[valid], plan.dither[valid]
                    n_search += grid.size
                    per_box.append((float(fits[b].max()), box, v, valid, vv, st, di, int(np.argmax(fits[b]))))
                per_box.sort(key=lambda t: -t[0])
                for rank, (_, box, v, valid, vv, st, di, j) in enumerate(per_box[:2]):
                    fine = np.exp(math.log(grid[j]) + np.linspace(-gstep, gstep, 15 if len(boxes) == 1 else 41))
                    gains = [fine] + (at_prior if rank == 0 and base == 1.0 else [])
                    for k, gs in enumerate(gains):
                        fit = lattice_fit(vv, st, di, gs)
                        n_search += gs.size
                        i = int(np.argmax(fit))
                        z = float(fit[i]) / math.sqrt(vv.size / 2)
                        kind = base if k == 0 else priors[k - 1]
                        cands.append(Candidate(z, float(fit[i]), g, box, crop, float(gs[i]), v, valid, plan, prof,
                                               prior=apriori and k >= 1, legacy=apriori and k >= 2,
                                               base=kind if kind == comp else 1.0))
    return cands, n_search


def decode_candidate(c: Candidate, cfg: WatermarkConfig, key: WatermarkKey, payload_bits: int) -> dict:
    return {**decode_llrs(coefficient_llrs(c, cfg), c.plan, key, cfg, payload_bits), "cand": c}


def coefficient_llrs(c: Candidate, cfg: WatermarkConfig) -> np.ndarray:
    """Per-coefficient log-likelihood ratios of the code bits (positive = 0) at geometry `c`."""
    plan, valid = c.plan, c.valid
    e = c.v / c.gain / np.where(valid, plan.step, 1.0) - plan.dither
    cos2 = np.where(valid, np.cos(4 * np.pi * e), 0.0)
    s = np.where(valid, np.cos(2 * np.pi * e), 0.0)
    # Reliability of each (channel, level) from its lattice fit alone (sign-blind, so the null
    # stays exact): for a Gaussian error, E cos(4 pi e) = m and E cos(2 pi e) = m ** (1/4).
    group = plan.chan * cfg.levels + plan.level
    kappa = np.zeros(len(cfg.channels) * cfg.levels)
    for gi in range(kappa.size):
        sel = valid & (group == gi)
        if sel.any():
            m = max(float(cos2[sel].mean()) - 2.0 / math.sqrt(2.0 * sel.sum()), 1e-3)
            mu = m ** 0.25
            kappa[gi] = 2 * mu / max((1 + m) / 2 - mu * mu, 0.05)
    return kappa[group] * s


def decode_llrs(llr_dim: np.ndarray, plan: Plan, key: WatermarkKey, cfg: WatermarkConfig,
              payload_bits: int) -> dict:
    """Decode per-coefficient LLRs (positive = code bit 0); check the MAC; bound the evidence."""
    n_info = payload_bits + cfg.mac_bits
    act = plan.codebit >= 0
    llr_dim, codebit = llr_dim[act], plan.codebit[act]
    llr = np.bincount(codebit, weights=llr_dim, minlength=plan.n_code)
    hard, out_llr = DEFAULT_CODE.decode(llr, n_info)
    payload = np.packbits(hard[:payload_bits]).tobytes()
    ok = bool(np.array_equal(hard[payload_bits:], key.mac(payload, cfg.mac_bits)))
    sgn = 1.0 - 2.0 * DEFAULT_CODE.encode(hard)[codebit]
    stat = float(np.sum(llr_dim * sgn))
    mags = np.abs(llr_dim[llr_dim != 0])
    # Given the magnitudes, the signs are fair coins under the null: a Chernoff bound on the
    # correlation with one codeword, times the number of payloads (union bound).
    log_corr = payload_bits * math.log(2) + chernoff_log(log_cosh, mags, stat)
    soft = -np.tanh(np.clip(out_llr[:payload_bits], -60, 60) / 2)
    return {"ok": ok, "payload": payload, "log_corr": log_corr, "soft": soft}


def read_mean(mean: np.ndarray, cfg: WatermarkConfig, key: WatermarkKey,
                 payload_bits: int, crops: tuple[float, ...] | None = None) -> tuple[Detection, Candidate | None]:
    """`detect` on one view: the mean frame float32 [H, W, 3] of the clip as the embedder saw it
    (centre crops `crops`, default `cfg.crops`). Also returns the geometry of best lattice fit
    (None if nothing could be measured)."""
    cands, n_search = search_lattice(geo.planes(mean, cfg.channels), cfg, key, payload_bits + cfg.mac_bits, crops)
    return read_candidates(cands, n_search, choose_profile(mean, cfg), cfg, key, payload_bits)


def choose_attempts(cands: list[Candidate], guess: int, cfg: WatermarkConfig) -> list[Candidate]:
    """The geometries to decode, from candidates sorted by lattice fit (best first): the most
    plausible a priori (native grid, no crop, gain near 1) of every profile, the one the embedder
    would have picked for this clip (`guess`) first, then that of a mark along the other luma
    direction or of a Cr mark's luma companion (`prior_gains`; the better fitting one) where it
    fits better, then the best lattice fits; at most
    `cfg.max_attempts`, every one counted in the p-value. Sign-blind: the choice does not bias a
    test of the bits."""
    attempts = []
    for c in sorted((c for c in cands if c.prior and not c.legacy), key=lambda c: c.prof != guess):  # stable: by z
        if not any(a.prof == c.prof for a in attempts):
            attempts.append(c)
            # then a mark along the other luma direction, where its a-priori gain fits better
            attempts += [o for o in cands if o.prior and o.legacy and o.prof == c.prof and o.z > c.z][:1]
    attempts = attempts[:cfg.max_attempts]
    for c in cands:
        if len(attempts) >= cfg.max_attempts:
            break
        if not any(c.plan is a.plan and c.box == a.box and abs(c.gain / a.gain - 1) < 0.005
                   for a in attempts):
            attempts.append(c)
    return attempts


def read_candidates(cands: list[Candidate], n_search: int, guess: int, cfg: WatermarkConfig, key: WatermarkKey,
          payload_bits: int, reported: list | None = None) -> tuple[Detection, Candidate | None]:
    """Decode a view's candidates (profile `guess` is the embedder's pick for its frame size);
    the presence bound counts `n_search` points. Returns the detection and the best-fitting
    candidate; `reported`, when given, receives the candidate whose geometry is reported."""
    if not cands:
        return Detection(False, None, 1.0, 0.0, np.zeros(payload_bits)), None
    cands.sort(key=lambda c: -c.z)
    best = cands[0]
    n_valid = int(best.valid.sum())
    p_presence = min(1.0, n_search * math.exp(chernoff_log(log_i0, np.ones(n_valid), best.fit)))
    attempts = choose_attempts(cands, guess, cfg)
    results = []
    for c in attempts:
        r = decode_candidate(c, cfg, key, payload_bits)
        results.append(r)
        if r["ok"]:
            break
    good = [r for r in results if r["ok"]]
    if good:
        r = good[0]
        p_payload = min(1.0, len(attempts) * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0))))
    else:  # report the a-priori geometry unless the lattice fit clearly prefers another one
        r = results[0] if results[0]["cand"].prior and best.z < 6 else max(results, key=lambda r: r["cand"].z)
        p_payload = 1.0
    p = min(1.0, 2 * min(p_payload, p_presence))
    c = r["cand"]
    if reported is not None:
        reported.append(c)
    geometry = {"grid": c.g, "profile": c.prof, "crop": c.crop, "box": tuple(round(x, 4) for x in c.box),
                "gain": round(c.gain / c.base, 4), "presence_z": round(best.z, 2), "attempts": len(results)}
    if c.base != 1.0:  # read from a Cr mark's luma companion (a greyscale copy, or the colour gone)
        geometry["part"] = "luma companion"
    return Detection(detected=p < cfg.p_threshold, payload=r["payload"] if r["ok"] else None,
                     p_value=p, bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"],
                     p_payload=p_payload, p_presence=p_presence, geometry=geometry), best


def segment_tables(frames: np.ndarray, view: str, offset: int, n: int, cfg: WatermarkConfig) -> dict:
    """The windows of `n` frames starting at `offset`, `offset + n`, ... (the segments of a long
    marked clip, if the offset is right): their frame ranges and the summed-area tables of each
    one's mean, per channel, as given or mirrored."""
    starts = list(range(offset, frames.shape[0] - n + 1, n))
    tables = []
    for s0 in starts:
        mean = geo.mean_frame(frames[s0:s0 + n])
        mean = np.ascontiguousarray(mean if view == "as-is" else mean[:, ::-1])
        tables.append([geo.Integral(p) for p in geo.planes(mean, cfg.channels)])
    return {"frames": (starts[0], starts[-1] + n), "tables": tables}


def decode_segments(segs: dict, plan: Plan, box: tuple, gain: float, cfg: WatermarkConfig, key: WatermarkKey,
                     payload_bits: int) -> Detection:
    """Decode the sum of the code-bit LLRs of the segments `segs` (`segment_tables`), each on
    the lattice by itself, at one geometry. The geometry was chosen a priori or by sign-blind
    fits, so the code-bit signs stay fair coins under the null and `decode_llrs`'s bound holds for
    the sum."""
    llr = np.zeros(plan.step.size)
    for integs in segs["tables"]:
        v, ok = haar_of([integ.chips(plan.g, box) for integ in integs], cfg.levels)
        llr += coefficient_llrs(Candidate(0.0, 0.0, plan.g, box, 1.0, gain, v, ok & (plan.codebit >= 0), plan), cfg)
    r = decode_llrs(llr, plan, key, cfg, payload_bits)
    p = min(1.0, 2 * min(2.0 ** -cfg.mac_bits, math.exp(min(r["log_corr"], 0.0)))) if r["ok"] else 1.0
    geometry = {"grid": plan.g, "box": tuple(round(x, 4) for x in box), "gain": round(gain, 4),
                "frames": segs["frames"], "segments": len(segs["tables"])}
    return Detection(detected=False, payload=r["payload"] if r["ok"] else None, p_value=p,
                     bit_confidence=float(np.mean(np.abs(r["soft"]))), bits=r["soft"], p_payload=p,
                     geometry=geometry)
