"""How many bits does the watermark's channel still carry after an attack? A capacity study.

    python benchmarks/robustness/watermark_capacity.py [--sizes 64,128,256] [--world 8] [--crfs 30,40,50]

For each world clip (the robustness grid's, `watermark.world_clips`), marked with a random
payload, then re-encoded with H.264 at each CRF, the detector's per-coefficient LLRs are read at
the geometry the mark was made at (`wm_read.coefficient_llrs`: the clip's own grid and profile,
no crop; gain 1 and the gains the detector's lattice search keeps, the best of them) and summed per code bit, as the decoder sees them. Knowing the true code bits,
each code bit's LLR L and sign s give its generalised mutual information
    GMI = max_a  1 - E[log2(1 + exp(-a s L))]
summed over the code bits: a lower bound on the bits any decoder fed these LLRs could recover
(mismatched decoding; Kaplan & Shamai 1993). The payload and its check are 88 information bits:
where the sum stays below 88, no error-correcting code on this modulation can return the
payload, so the miss is a capacity limit of the mark at its PSNR, not a decoding one.
Beside it, whether the blind detector returned the payload. One JSON line per (size, CRF)
on stdout, and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.robustness import watermark as grid  # noqa: E402  (the grid's clips)
from benchmarks.robustness.attacks import h264  # noqa: E402
from evalkit.provenance import wm_grid as geo  # noqa: E402
from evalkit.provenance.watermark import detect, embed, get_config, make_key, marking_plan  # noqa: E402
from evalkit.provenance.wm_read import Candidate, coefficient_llrs, search_lattice  # noqa: E402
from evalkit.provenance.wm_scheme import plan_coeffs  # noqa: E402

SCALES = np.exp(np.linspace(np.log(1e-4), np.log(10.0), 120))


def gmi_bits(llr: np.ndarray, sign: np.ndarray) -> float:
    """Sum over code bits of max_a 1 - E[log2(1 + exp(-a s L))] (the expectation as the mean over
    the bits, the scale shared); 0 where nothing is known."""
    if llr.size == 0:
        return 0.0
    x = sign * llr
    per = [1.0 - np.mean(np.logaddexp(0.0, -a * x)) / np.log(2.0) for a in SCALES]
    return max(0.0, float(max(per))) * llr.size


def channel_bits(frames: np.ndarray, payload: bytes, key, cfg) -> tuple[float, int]:
    """(GMI bits, code bits carried) of a marked, attacked clip read at the mark's grid and
    profile, no crop: the most of the gain 1 read and of every gain the detector's lattice search
    kept for that plan (chosen knowing the truth, so if anything optimistic)."""
    mean = geo.mean_frame(frames)
    plan, code = marking_plan(mean, payload, key, cfg)
    planes = geo.planes(mean, cfg.channels)
    integs = [geo.Integral(p) for p in planes]
    v, valid = (a[0] for a in plan_coeffs(integs, plan, cfg, np.asarray([(0.0, 1.0, 0.0, 1.0)])))
    n_info = 64 + cfg.mac_bits
    reads = [Candidate(0.0, 0.0, plan.g, (0.0, 1.0, 0.0, 1.0), 1.0, 1.0, v, valid, plan)]
    reads += [c for c in search_lattice(planes, cfg, key, n_info, crops=(1.0,))[0] if c.plan is plan]
    act = plan.codebit >= 0
    carried = np.bincount(plan.codebit[act & valid], minlength=plan.n_code) > 0
    sign = 1.0 - 2.0 * code
    best = 0.0
    for c in reads:
        llr_dim = coefficient_llrs(c, cfg)
        per_bit = np.bincount(plan.codebit[act], weights=llr_dim[act], minlength=plan.n_code)
        best = max(best, gmi_bits(per_bit[carried], sign[carried]))
    return best, int(carried.sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="64,128,256")
    ap.add_argument("--world", type=int, default=8, help="world clips per size (half at 256 px)")
    ap.add_argument("--crfs", default="30,40,50")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    for flag, v in (("sizes", a.sizes), ("crfs", a.crfs)):
        if not re.fullmatch(r"\d+(,\d+)*", v):
            ap.error(f"--{flag} {v!r}: give whole numbers, comma-separated")
    cfg = get_config("default")
    key = make_key("capacity study")
    rng = np.random.default_rng(a.seed)
    crfs = [int(x) for x in a.crfs.split(",")]
    rows, wd = [], tempfile.mkdtemp()
    for size in (int(s) for s in a.sizes.split(",")):
        n = a.world if size <= 128 else max(1, a.world // 2)
        for _, name, frames, fps in grid.world_clips(n, size, a.seed):
            payload = rng.bytes(8)
            marked = embed(frames, payload, key, cfg)
            for crf in [None] + crfs:
                x = marked if crf is None else h264(marked, fps, crf, wd)
                bits, n_code = channel_bits(x, payload, key, cfg)
                read = detect(x, key, cfg).payload == payload  # what the blind detector returns
                rows.append({"size": size, "clip": name, "attack": "none" if crf is None else f"h264_crf{crf}",
                             "gmi_bits": round(bits, 1), "code_bits": n_code, "payload_read": read})
                print(f"  {name} {rows[-1]['attack']}: {bits:.1f} bits of {n_code} code bits, payload "
                      f"{'read' if read else 'not read'}", file=sys.stderr)
    need = 64 + cfg.mac_bits
    lines = ["| size | attack | bits carried (median) | min - max | clips carrying >= 88 | payload read (blind) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for size in sorted({r["size"] for r in rows}):
        for att in dict.fromkeys(r["attack"] for r in rows):
            sel = [r for r in rows if r["size"] == size and r["attack"] == att]
            b = [r["gmi_bits"] for r in sel]
            out = {"size": size, "attack": att, "n": len(b), "median_bits": round(float(np.median(b)), 3),
                   "min_bits": min(b), "max_bits": max(b), "enough": sum(x >= need for x in b), "needed": need,
                   "read": sum(r["payload_read"] for r in sel),
                   "read_with_enough": sum(r["payload_read"] for r in sel if r["gmi_bits"] >= need)}
            print(json.dumps(out))
            lines.append(f"| {size} px | {att} | {out['median_bits']:.0f} | {out['min_bits']:.0f} - {out['max_bits']:.0f} "
                         f"| {out['enough']}/{len(b)} | {out['read']}/{len(b)} |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
