"""Test one known payload: is the watermark that a manifest's soft binding names in this video?

`detect` is blind: it must decode 64 unknown bits, and its p-value pays for the 2^64 payloads
it could have decoded (a union bound), so a mark weakened by heavy re-encoding can keep most of
its code bits right and still not decode, or decode and still miss the 1e-6 threshold. A
verifier often knows which payload to expect: the soft binding of the manifest (or of the
manifest's parent, or of a sidecar) records it. `confirm_payload` tests exactly that hypothesis:
the correlation of the coefficients' soft values with the expected codeword (payload, its keyed
check and the code), bounded under "no mark of this key" as `detect` bounds the correlation
with its decoded codeword (given the magnitudes the signs are fair coins: a Chernoff bound),
but for one codeword, without the 2^64 factor. Every geometry tried (the views `detect` reads
first: as given, mirrored, bars cut off; at most `max_attempts` lattice fits each, chosen
sign-blind; since session 38 the cuts near measured bars that fit best, `wm_bars`, and the
picture over a blurred fill, `wm_fill`) multiplies the p-value (Bonferroni).

Not searched here: turns, rotations, crops off centre and excerpts of segmented long clips
(`detect` reads those blind); a payload found that way needs no confirmation.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_bars import as_given, bar_cuts
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_fill import as_given as fill_as_given, fill_box, fill_candidates
from evalkit.provenance.wm_pvalue import chernoff_log, log_cosh
from evalkit.provenance.wm_read import Candidate, Detection, choose_attempts, coefficient_llrs, search_lattice
from evalkit.provenance.wm_scheme import (WatermarkConfig, WatermarkInputError, as_key, check_frames, choose_profile,
                                          get_config, payload_to_bits)


# The code bits after the payload's last trellis step depend on the keyed check (and, through the
# recursive encoder's state, on every payload bit), so another payload's codeword agrees with them
# only by chance, however close the payloads are. A named payload is confirmed only where that tail
# alone also agrees beyond chance (p under TAIL_P): a manifest naming a payload one bit away from
# the embedded one was confirmed at p 1.8e-26 from the shared head of the codeword (session 31).
TAIL_P = 1e-2
BAR_ATTEMPTS = 3  # cuts near measured bars tested, the best-fitting first (as `wm_bars.read_bars` decodes)


def tail_code_bits(n_info: int, payload_bits: int) -> np.ndarray:
    """bool [code bits]: which code bits (in emission order) come from trellis steps at or after
    the end of the payload, i.e. from the keyed check and the termination."""
    return DEFAULT_CODE.order(n_info) // DEFAULT_CODE.n_out >= payload_bits


def codeword_log_p(c: Candidate, cfg: WatermarkConfig, code: np.ndarray,
                   only: np.ndarray | None = None) -> tuple[float, float]:
    """(log of the Chernoff bound on the correlation with `code` under the null, the share of
    the candidate's code-bit carriers whose sign agrees with it); `only`: a bool mask over the
    code bits to count (all by default)."""
    llr = coefficient_llrs(c, cfg)
    act = c.plan.codebit >= 0
    if only is not None:
        act &= np.where(act, only[np.maximum(c.plan.codebit, 0)], False)
    llr, sgn = llr[act], 1.0 - 2.0 * code[c.plan.codebit[act]]
    nz = llr != 0
    stat = float(np.sum(llr * sgn))
    agree = float(np.mean((llr[nz] * sgn[nz]) > 0)) if nz.any() else 0.0
    return chernoff_log(log_cosh, np.abs(llr[nz]), stat), agree


def confirm_payload(frames: np.ndarray, key, payload: bytes, config: WatermarkConfig | str | None = None) -> Detection:
    """Whether `frames` (uint8 [T, H, W, 3]) carry the mark of `key` with this `payload` (8 to 32
    bytes). `detected` means p_value < the config's threshold and the codeword's tail (the part
    no other payload shares, `TAIL_P`) agrees too; `payload` is the one tested when detected;
    `geometry` names the read, `code_agreement` the share of agreeing carriers and `tail_p_value`
    the tail's own bound."""
    frames = check_frames(frames)
    cfg = get_config(config)
    key = as_key(key)
    if not isinstance(payload, (bytes, bytearray)) or not 8 <= len(payload) <= 32:
        raise WatermarkInputError("the payload to confirm must be 8 to 32 bytes")
    payload = bytes(payload)
    info = np.concatenate([payload_to_bits(payload), key.mac(payload, cfg.mac_bits)])
    code = DEFAULT_CODE.encode(info)
    mean = geo.mean_frame(frames)
    guess = choose_profile(mean, cfg)
    cut = geo.bars(frames, mean)
    tests, best = 0, None
    for name, view in geo.views(frames, mean, cut):
        cands, _ = search_lattice(geo.planes(view, cfg.channels), cfg, key, info.size)
        for c in choose_attempts(sorted(cands, key=lambda c: -c.z), guess, cfg):
            log_p, agree = codeword_log_p(c, cfg, code)
            tests += 1
            if best is None or log_p < best[0]:
                best = (log_p, agree, name, c, None)
    # bars measured a few lines off (a codec rang at their edges): the cuts near them that fit
    # best, as `detect`'s bar search reads them (ranked sign-blind, so one test each)
    near = bar_cuts(mean, cut, cfg, key, info.size) if any(cut) else None
    for name, bars, c in (near.ranked[:BAR_ATTEMPTS] if near else []):
        log_p, agree = codeword_log_p(c, cfg, code)
        tests += 1
        if best is None or log_p < best[0]:
            best = (log_p, agree, name, c, {"bars": as_given(name, bars)})
    # a picture over a blurred fill (`wm_fill`): the best box of each view, as `detect` reads it
    box = fill_box(frames, cut)
    cands, _, fill_guess, boxes = fill_candidates(mean, box, cfg, key, info.size) if box else ([], 0, 0, {})
    for c in choose_attempts(sorted(cands, key=lambda c: -c.z), fill_guess, cfg):
        log_p, agree = codeword_log_p(c, cfg, code)
        tests += 1
        if best is None or log_p < best[0]:
            best = (log_p, agree, c.view, c,
                    {"fill_box": fill_as_given(c.view, boxes[c.view], mean.shape[1])})
    if best is None:
        return Detection(False, None, 1.0, 0.0, np.zeros(8 * len(payload)), geometry={"method": "known payload"})
    log_p, agree, name, c, extra = best
    p = min(1.0, tests * math.exp(log_p))
    tail_p = min(1.0, math.exp(codeword_log_p(c, cfg, code, tail_code_bits(info.size, 8 * len(payload)))[0]))
    detected = p < cfg.p_threshold and tail_p < TAIL_P
    geometry = {"method": "known payload", "view": name, "grid": c.g, "profile": c.prof, "crop": c.crop,
                "gain": round(c.gain / c.base, 4), "tests": tests, "code_agreement": round(agree, 4),
                "tail_p_value": tail_p}
    geometry.update(extra or {})
    return Detection(detected=detected, payload=payload if detected else None, p_value=p,
                     bit_confidence=2 * agree - 1, bits=np.zeros(8 * len(payload)), p_payload=p,
                     geometry=geometry)


__all__ = ["confirm_payload", "codeword_log_p", "tail_code_bits", "TAIL_P"]
