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
sign-blind) multiplies the p-value (Bonferroni).

Not searched here: turns, rotations, crops off centre and excerpts of segmented long clips
(`detect` reads those blind); a payload found that way needs no confirmation.
"""

from __future__ import annotations

import math

import numpy as np

from evalkit.provenance import wm_grid as geo
from evalkit.provenance.wm_ecc import DEFAULT_CODE
from evalkit.provenance.wm_pvalue import chernoff_log, log_cosh
from evalkit.provenance.wm_read import Candidate, Detection, choose_attempts, coefficient_llrs, search_lattice
from evalkit.provenance.wm_scheme import (WatermarkConfig, WatermarkInputError, as_key, check_frames, choose_profile,
                                          get_config, payload_to_bits)


def codeword_log_p(c: Candidate, cfg: WatermarkConfig, code: np.ndarray) -> tuple[float, float]:
    """(log of the Chernoff bound on the correlation with `code` under the null, the share of
    the candidate's code-bit carriers whose sign agrees with it)."""
    llr = coefficient_llrs(c, cfg)
    act = c.plan.codebit >= 0
    llr, sgn = llr[act], 1.0 - 2.0 * code[c.plan.codebit[act]]
    nz = llr != 0
    stat = float(np.sum(llr * sgn))
    agree = float(np.mean((llr[nz] * sgn[nz]) > 0)) if nz.any() else 0.0
    return chernoff_log(log_cosh, np.abs(llr[nz]), stat), agree


def confirm_payload(frames: np.ndarray, key, payload: bytes, config: WatermarkConfig | str | None = None) -> Detection:
    """Whether `frames` (uint8 [T, H, W, 3]) carry the mark of `key` with this `payload` (8 to 32
    bytes). `detected` means p_value < the config's threshold; `payload` is the one tested when
    detected; `geometry` names the read and `code_agreement` the share of agreeing carriers."""
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
    tests, best = 0, None
    for name, view in geo.views(frames, mean):
        cands, _ = search_lattice(geo.planes(view, cfg.channels), cfg, key, info.size)
        for c in choose_attempts(sorted(cands, key=lambda c: -c.z), guess, cfg):
            log_p, agree = codeword_log_p(c, cfg, code)
            tests += 1
            if best is None or log_p < best[0]:
                best = (log_p, agree, name, c)
    if best is None:
        return Detection(False, None, 1.0, 0.0, np.zeros(8 * len(payload)), geometry={"method": "known payload"})
    log_p, agree, name, c = best
    p = min(1.0, tests * math.exp(log_p))
    detected = p < cfg.p_threshold
    geometry = {"method": "known payload", "view": name, "grid": c.g, "profile": c.prof, "crop": c.crop,
                "gain": round(c.gain, 4), "tests": tests, "code_agreement": round(agree, 4)}
    return Detection(detected=detected, payload=payload if detected else None, p_value=p,
                     bit_confidence=2 * agree - 1, bits=np.zeros(8 * len(payload)), p_payload=p,
                     geometry=geometry)


__all__ = ["confirm_payload", "codeword_log_p"]
