"""Watermark robustness on an omnisealbench-style grid, a false-positive study and a speed line.

    python benchmarks/robustness/watermark.py [--quick] [--out FILE.md] [--mlflow] [--seed S]
                                              [--world N] [--fp N] [--preset NAME]
                                              [--rows FILE.jsonl] [--no-real] [--sizes 32,64,128,256]
                                              [--clips DIR] [--long | --no-long] [--long-baseline]
                                              [--attacks grid|extra|crops|edits|handling|all]

Every clip is marked with its own random key and 64-bit payload (`evalkit.provenance.watermark`),
then each attack of the grid is applied to the marked frames and `detect` runs on the result:

  none, H.264 CRF 23/30/40/50 (evalkit.video.write_video, preset medium, then read_video),
  resize 0.75 and 0.5 (cv2.INTER_AREA, sizes rounded to even), centre crop 0.8 (even size, kept
  at that size), brightness x0.8 / x1.2 (clipped), contrast 0.8 / 1.2 about each frame's mean
  grey (torchvision's definition), remux (MP4 written at evalkit's default CRF 18, stream-copied
  into Matroska with PyAV, read back), resize 0.75 followed by H.264 CRF 30, and H.264 CRF 18
  followed by CRF 30 (what the bench runner's `watermark_survival_crf30` does to a clip that
  `sign --watermark` wrote at CRF 18); beyond omnisealbench's grid, attacks a re-uploader uses:
  a left-right mirror, letterbox bars (black, 1/8 of the height above and below, then H.264 CRF
  23), and greyscale (BT.601 luma in all three channels).

`--attacks extra` (or `all`) runs what a re-uploader may do beyond that grid: HEVC CRF 28, VP9
CRF 40, AV1 (SVT) CRF 40, MPEG-4 part 2 q 5, Gaussian blur 3x3, median 3x3, Gaussian noise
sigma 5, per-frame JPEG 50, saturation x1.5, hue +20 degrees, rotation 2 degrees (reflected
border), rotation 7 degrees clockwise then CRF 23, a quarter turn clockwise then CRF 23, a half
turn, an upside-down flip, VideoMarkBench's kinds at their stronger settings (a centre crop of
0.95 resized back, Gaussian noise sigma 25, Gaussian blur sigma 1.5, JPEG 20, a 5-frame moving
average), a burnt-in caption and logo then CRF 23, the clip at half size inside a black frame
(picture in picture), height squeezed to 0.75 (aspect change), 2x bicubic upscale, the short-video
"blur-pad" reformat (the clip scaled into a frame of the other orientation, at most 360 px on its
short side, over a zoomed and box-blurred copy of itself, then CRF 23), and crops off centre
(`--attacks crops` runs these alone): 0.9 from the top-left corner; 0.8 from the bottom-right
then CRF 23; 0.75 of each side from (0.05, 0.2) then CRF 30; 0.7 of the width, full height;
0.85 from the bottom-left, mirrored, then CRF 23; a
zoom (0.8 from the bottom-left corner, resized back to the frame's size); and 0.9 of the height
by 0.7 of the width (two fractions: outside the detector's crop search).

`--attacks handling` runs what happens to a video on its way to a viewer beyond re-encoding: a
hand or stabiliser's per-frame shake (up to 1 px; up to 2 px then CRF 23), a fade in and out over
a quarter of the frames at each end, a +-10% brightness flicker, 2x frame interpolation (blended
frames) then CRF 23, and 8-frame title-card slates at both ends then CRF 23.

Long clips (`--long`, on unless --quick): the whole real videos (120-250 frames) and 96-frame
world clips, marked in 32-frame segments (`evalkit.provenance.wm_time`), under the edits that
cut time rather than pixels: the first half, a 75-frame excerpt from frame 13 (3 s at 25 fps,
starting mid-segment; alone, at half the frame rate, converted to 6/5 the rate, and after
H.264 CRF 30), every other frame (frame rate halved), 30 to 25 fps (every sixth frame dropped),
and, for the price paid, H.264 CRF 30/40/50 of the whole clip.
`--long-baseline` runs the same clips marked in one piece (`segment_frames=0`, the scheme before
segments) for comparison.

Clips: world clips (`evalkit.world`, test split, 24 frames, 64x64 and 128x128, plus a few at
256x256 outside --quick; half with sensor noise; `--sizes` picks the sizes, and size 32 means the
built-in generator's own 16-frame 32x32 clips) and 32-frame segments of the real footage in
../shared/data/real-videos (bikes 640x272, carphone 176x144, bigbuckbunny 1280x720); --clips
adds every .mp4 of a folder (e.g. what `evalkit generate --model uvit:small-stage1` wrote).

Per attack: bit accuracy (hard payload bits against the truth, averaged over clips), payload
recovery rate (exact 64-bit payload, keyed check passed), detection rate at p < 1e-6, the
known-payload rate (the payload recovered, or, where the blind read lost it, confirmed by
`wm_confirm.confirm_payload` at p < 1e-6: what `verify` does when a manifest names the payload),
and the PSNR of the marked video (whole clip, RGB). The markdown table is printed and, with --out,
written; one JSON line with the summary ends the output. The false-positive study runs detect on
>= 1,000 unmarked (clip, key) pairs (world clips, crops of real footage, clips marked with
another key, and greyscale copies of 160-256 px world clips, real footage and clips marked with
another key) and counts detections at p < 1e-6 and payloads read (any is wrong); on each pair
it also tests a payload nobody embedded (`confirm_payload`) and counts those detections. The
speed line times embed and detect on a 256x256 clip of 32 frames, and detect on an unmarked one
of 96 frames (searched to the end). --mlflow logs everything to an MLflow run (evalkit.tracking).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from benchmarks.robustness.attacks import (  # noqa: E402
    ATTACKS, CROP_ATTACKS, EDIT_ATTACKS, EXTRA_ATTACKS, HANDLING_ATTACKS, LONG_ATTACKS,
)
from evalkit.provenance.watermark import (  # noqa: E402
    DEFAULT_P_THRESHOLD, Detection, WatermarkInputError, detect, embed, get_config, make_key,
)
from evalkit.video import psnr, read_video  # noqa: E402
from evalkit.provenance.wm_confirm import confirm_payload  # noqa: E402
from evalkit.metrics.stats import mean_ci, proportion_ci  # noqa: E402
from evalkit.world import WorldConfig, make_clip  # noqa: E402
from benchmarks.script_args import check_input_folders, check_outputs  # noqa: E402

REAL_VIDEOS = Path(os.environ.get("EVALKIT_REAL_VIDEOS", REPO.parent / "shared" / "data" / "real-videos"))
REAL_SEGMENTS = {"bikes.mp4": (0, 120), "carphone_pristine.mp4": (0, 60), "bigbuckbunny.mp4": (0, 64)}


# ----------------------------------------------------------------------------------------------
# Clips


def world_clips(n: int, size: int, seed: int, frames: int = 24):
    out = []
    for i in range(n):
        cfg = WorldConfig(frames=frames, size=size, fps=8.0, noise=2.0 if i % 2 else 0.0)
        c = make_clip("test", i, seed, cfg)
        bg = c.meta["scene"].background
        out.append((f"world{size}", f"world{size}-{i}-{bg}", c.frames, c.fps))
    return out


def folder_clips(folder: Path):
    out = []
    for p in sorted(Path(folder).glob("*.mp4")):
        clip = read_video(p)
        out.append(("folder", p.stem, clip.frames, clip.fps))
    if not out:
        print(f"note: no .mp4 clips in {folder}", file=sys.stderr)
    return out


def real_clips(names, frames: int = 32):
    out = []
    for name, starts in names.items():
        path = REAL_VIDEOS / name
        if not path.exists():
            print(f"note: {path} not found, skipping", file=sys.stderr)
            continue
        clip = read_video(path, max_frames=max(starts) + frames)
        for s in starts:
            out.append(("real", f"{Path(name).stem}@{s}", clip.frames[s:s + frames], clip.fps))
    return out


def long_clips(n_world: int, seed: int):
    """The whole real videos and `n_world` 96-frame world clips (sizes 64 to 256)."""
    out = []
    for name in REAL_SEGMENTS:
        if (REAL_VIDEOS / name).exists():
            clip = read_video(REAL_VIDEOS / name)
            out.append(("real", Path(name).stem, clip.frames, clip.fps))
    for i in range(n_world):
        size = (64, 128, 256)[i % 3]
        c = make_clip("test", 100 + i, seed, WorldConfig(frames=96, size=size, fps=8.0, noise=2.0 * (i % 2)))
        out.append((f"world{size}", f"world{size}-long-{i}", c.frames, c.fps))
    return out


# ----------------------------------------------------------------------------------------------
# The grid


def run_grid(clips, cfg, seed: int, attacks=ATTACKS, progress=True):
    rng = np.random.default_rng(seed)
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for ci, (group, name, frames, fps) in enumerate(clips):
            key = make_key(f"watermark-bench-{seed}-{ci}")
            payload = rng.bytes(8)
            truth = np.unpackbits(np.frombuffer(payload, np.uint8))
            t = time.perf_counter()
            marked = embed(frames, payload, key, cfg)
            q = psnr(marked, frames)
            for an, fn in attacks.items():
                attacked = None
                try:
                    attacked = fn(marked, fps, work)
                    d = detect(attacked, key, cfg)
                except WatermarkInputError:  # e.g. a 32x32 clip resized below the 32-pixel minimum
                    d = Detection(False, None, 1.0, 0.0, np.zeros(truth.size), geometry={"error": "too small"})
                # what `verify` does when a manifest names the payload: test that payload alone
                known = d.payload == payload or (d.payload is None and "error" not in d.geometry
                                                 and confirm_payload(attacked, key, payload, cfg).detected)
                rows.append({"group": group, "clip": name, "attack": an, "psnr": q,
                             "bit_acc": float(np.mean((d.bits > 0) == truth)),
                             "payload_ok": d.payload == payload, "known_ok": bool(known),
                             "detected": bool(d.p_value < DEFAULT_P_THRESHOLD), "p_value": d.p_value,
                             "geometry": d.geometry})
            if progress:
                ok = sum(r["payload_ok"] for r in rows[-len(attacks):])
                print(f"  [{ci + 1}/{len(clips)}] {name} {frames.shape[2]}x{frames.shape[1]}x{len(frames)} "
                      f"psnr {q:.2f} dB, payload recovered under {ok}/{len(attacks)} attacks "
                      f"({time.perf_counter() - t:.1f} s)", file=sys.stderr, flush=True)
    return rows


def summarize(rows, attacks):
    order = {"folder": -2, "world32": -1, "world64": 0, "world128": 1, "world256": 2}
    groups = sorted({r["group"] for r in rows}, key=lambda g: (order.get(g, 9), g))
    table = {}
    for an in attacks:
        rs = [r for r in rows if r["attack"] == an]
        entry = {"n": len(rs), "bit_acc": float(np.mean([r["bit_acc"] for r in rs])),
                 "payload": float(np.mean([r["payload_ok"] for r in rs])),
                 "known": float(np.mean([r.get("known_ok", r["payload_ok"]) for r in rs])),
                 "detect": float(np.mean([r["detected"] for r in rs])),
                 "psnr": float(np.mean([r["psnr"] for r in rs]))}
        for g in groups:
            gs = [r for r in rs if r["group"] == g]
            entry[f"bit_acc_{g}"] = float(np.mean([r["bit_acc"] for r in gs])) if gs else float("nan")
            entry[f"payload_{g}"] = float(np.mean([r["payload_ok"] for r in gs])) if gs else float("nan")
        # each number with its 95% CI over the clips: bit accuracy a mean (Student's t where the
        # bootstrap is too narrow), the rates Wilson's (the summary gave bare rates over 6 clips)
        ci = {"bit_acc": mean_ci([r["bit_acc"] for r in rs], bounds=(0.0, 1.0))}
        for m, key in (("payload", "payload_ok"), ("detect", "detected")):
            ci[m] = proportion_ci(int(sum(bool(r[key]) for r in rs)), len(rs))
        ci["known"] = proportion_ci(int(sum(bool(r.get("known_ok", r["payload_ok"])) for r in rs)), len(rs))
        entry["ci"] = {m: [round(e.ci_low, 4), round(e.ci_high, 4)] for m, e in ci.items()}
        table[an] = entry
    return groups, table


def markdown(groups, table, psnrs, n_clips):
    lines = [f"Marked clips: {n_clips}; PSNR of the marked video mean {np.mean(psnrs):.2f} dB, "
             f"min {np.min(psnrs):.2f} dB.", "",
             "| attack | bit acc | payload | detect@1e-6 | known payload | PSNR dB | " + " | ".join(
                 f"bit acc / payload {g}" for g in groups) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(groups)]
    for an, e in table.items():
        per_group = " | ".join(f"{e[f'bit_acc_{g}']:.3f} / {e[f'payload_{g}']:.2f}" for g in groups)
        lines.append(f"| {an} | {e['bit_acc']:.3f} | {e['payload']:.2f} | {e['detect']:.2f} | {e['known']:.2f} | "
                     f"{e['psnr']:.2f} | {per_group} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------
# False positives and speed


def false_positive_study(n: int, cfg, seed: int):
    """detect on n unmarked (clip, key) pairs: world clips (64 and 128), 96x96 crops of real
    footage (16 frames, and 64 frames: long enough for the window scan and combined reads), and
    clips marked with a different key (64 and 160 px, so that both the luma and the chroma
    profile occur); and greyscale copies (BT.601), which the detector reads on a path of their
    own (luma only, about the gain of a Cr mark's luma companion): of world clips of 160-256 px,
    of 192x192 crops of real footage, and of clips of 160-256 px marked with a different key (a
    luma companion under the wrong key). Returns counts and p-value quantiles."""
    from benchmarks.robustness.attacks import greyscale

    rng = np.random.default_rng(seed + 7)
    real = [read_video(REAL_VIDEOS / f, max_frames=64).frames for f in REAL_SEGMENTS
            if (REAL_VIDEOS / f).exists()]
    big = [v for v in real if min(v.shape[1:3]) >= 192]
    ps, kp, kinds = [], [], {}  # kind -> counts
    for i in range(n):
        cycle = ("world64", "world128") + (("real_crop", "real_long") if real else ()) + ("other_key",) \
            + ("grey_world", "grey_other_key") + (("grey_real",) if big else ())
        kind = cycle[i % len(cycle)]
        if kind in ("grey_world", "grey_other_key"):
            size = (160, 192, 256)[(i // len(cycle)) % 3]
            f = make_clip("train", i, seed, WorldConfig(frames=16, size=size, noise=float(i % 3))).frames
            if kind == "grey_other_key":
                f = embed(f, rng.bytes(8), make_key(f"fp-marker-{seed}-{i}"), cfg)
            f = greyscale(f)
        elif kind == "grey_real":
            v = big[i % len(big)]
            t0 = rng.integers(0, v.shape[0] - 16)
            y0 = rng.integers(0, v.shape[1] - 192 + 1)
            x0 = rng.integers(0, v.shape[2] - 192 + 1)
            f = greyscale(np.ascontiguousarray(v[t0:t0 + 16, y0:y0 + 192, x0:x0 + 192]))
        elif kind == "world128":
            f = make_clip("train", i, seed, WorldConfig(frames=16, size=128, noise=float(i % 3))).frames
        elif kind == "real_crop":
            v = real[i % len(real)]
            t0 = rng.integers(0, v.shape[0] - 16)
            y0 = rng.integers(0, v.shape[1] - 96)
            x0 = rng.integers(0, v.shape[2] - 96)
            f = np.ascontiguousarray(v[t0:t0 + 16, y0:y0 + 96, x0:x0 + 96])
        elif kind == "real_long":  # 64 frames: the window scan and combined reads run too
            v = real[i % len(real)]
            y0 = rng.integers(0, v.shape[1] - 96)
            x0 = rng.integers(0, v.shape[2] - 96)
            f = np.ascontiguousarray(v[:64, y0:y0 + 96, x0:x0 + 96])
        else:
            size = 160 if kind == "other_key" and (i // len(cycle)) % 2 else 64
            f = make_clip("train", i, seed, WorldConfig(frames=16, size=size, noise=float(i % 3))).frames
            if kind == "other_key":
                f = embed(f, rng.bytes(8), make_key(f"fp-marker-{seed}-{i}"), cfg)
        d = detect(f, make_key(f"fp-detector-{seed}-{i}"), cfg)
        ps.append(d.p_value)
        # and the known-payload test of a payload nobody embedded under this key
        kp.append(confirm_payload(f, make_key(f"fp-detector-{seed}-{i}"), rng.bytes(8), cfg).p_value)
        k = kinds.setdefault(kind, {"n": 0, "detected": 0, "payloads": 0, "min_p": 1.0})
        k["n"] += 1
        k["detected"] += int(d.p_value < DEFAULT_P_THRESHOLD)
        k["payloads"] += int(d.payload is not None)  # any payload read from an unmarked pair is wrong
        k["min_p"] = min(k["min_p"], float(d.p_value))
        if (i + 1) % 100 == 0 or i + 1 == n:
            print(f"  false positives: {i + 1}/{n} unmarked pairs read, {sum(p < DEFAULT_P_THRESHOLD for p in ps)} "
                  f"detected, min p {min(ps):.3g}", file=sys.stderr, flush=True)
    ps, kp = np.asarray(ps), np.asarray(kp)
    return {"n": n, "detected": int(np.sum(ps < DEFAULT_P_THRESHOLD)), "by_kind": kinds,
            "wrong_payloads": sum(k["payloads"] for k in kinds.values()),
            "known_payload_detected": int(np.sum(kp < DEFAULT_P_THRESHOLD)), "known_payload_min_p": float(kp.min()),
            "min_p": float(ps.min()), "frac_p_below_0.05": float(np.mean(ps < 0.05)),
            "frac_p_below_0.01": float(np.mean(ps < 0.01)), "median_p": float(np.median(ps))}


def speed(cfg, reps: int = 5):
    f = make_clip("test", 0, 0, WorldConfig(frames=32, size=256, noise=2.0)).frames
    key = make_key("speed")
    embed(f, b"\x00" * 8, key, cfg)
    t = time.perf_counter()
    for _ in range(reps):
        m = embed(f, b"\x01" * 8, key, cfg)
    te = (time.perf_counter() - t) / reps
    detect(m, key, cfg)
    t = time.perf_counter()
    for _ in range(reps):
        detect(m, key, cfg)
    td = (time.perf_counter() - t) / reps
    # an unmarked long clip is searched to the end: whole clip, window scan, window reads
    long = make_clip("test", 1, 0, WorldConfig(frames=96, size=256, noise=2.0)).frames
    t = time.perf_counter()
    for _ in range(max(1, reps // 2)):
        detect(long, key, cfg)
    tu = (time.perf_counter() - t) / max(1, reps // 2)
    return {"frames": 32, "size": "256x256", "embed_fps": round(32 / te, 1), "detect_fps": round(32 / td, 1),
            "detect_fps_unmarked_96_frames": round(96 / tu, 1)}


# ----------------------------------------------------------------------------------------------


TARGETS = {"psnr_min": 42.0, "h264_crf23": 0.99, "h264_crf40": 0.95, "h264_crf50": 0.75, "fps": 30.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a sanity run: 6 clips, 200 false-positive pairs (about 3 minutes on one core)")
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    ap.add_argument("--mlflow", action="store_true", help="log to MLflow (evalkit.tracking)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--world", type=int, default=None, help="world clips per size (default 8, quick 2)")
    ap.add_argument("--fp", type=int, default=None, help="unmarked pairs (default 1000, quick 200)")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--no-real", action="store_true", help="skip the real footage")
    ap.add_argument("--rows", type=Path, help="write one JSON line per (clip, attack) here")
    ap.add_argument("--clips", type=Path, help="also mark and attack every .mp4 in this folder")
    ap.add_argument("--sizes", default=None,
                    help="world clip sizes, comma-separated (default 64,128,256; quick 64,128); "
                         "32 gives 16-frame clips, the built-in generator's format")
    ap.add_argument("--long", action=argparse.BooleanOptionalAction, default=None,
                    help="the long-clip (time edits) table (default: on unless --quick)")
    ap.add_argument("--long-baseline", action="store_true",
                    help="also run the long clips marked in one piece (segment_frames=0)")
    ap.add_argument("--attacks", choices=("grid", "extra", "crops", "edits", "handling", "all"), default="grid",
                    help="the omnisealbench-style grid (default), the attacks beyond it, or both")
    a = ap.parse_args(argv)
    check_outputs(ap, out=a.out, rows=a.rows)
    check_input_folders(ap, clips=a.clips)
    if a.sizes and not re.fullmatch(r"\d+(,\d+)*", a.sizes):
        ap.error(f"--sizes {a.sizes!r}: give pixel sizes, comma-separated (e.g. 64,128)")
    cfg = get_config(a.preset)
    t0 = time.perf_counter()
    n_world = a.world if a.world is not None else (2 if a.quick else 8)
    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else [64, 128] + ([] if a.quick else [256])
    clips = []
    for size in sizes:  # fewer of the larger world clips, which show how robustness grows with size
        n = n_world if size <= 128 else max(1, n_world // 2)
        clips += world_clips(n, size, a.seed, frames=16 if size <= 32 else 24)
    if not a.no_real:
        real = {"carphone_pristine.mp4": (0,), "bikes.mp4": (0,)} if a.quick else REAL_SEGMENTS
        clips += real_clips(real)
    if a.clips:
        clips = folder_clips(a.clips) + clips
    attacks = {"grid": ATTACKS, "extra": EXTRA_ATTACKS, "crops": {"none": ATTACKS["none"], **CROP_ATTACKS},
               "edits": {"none": ATTACKS["none"], **EDIT_ATTACKS},
               "handling": {"none": ATTACKS["none"], **HANDLING_ATTACKS},
               "all": {**ATTACKS, **EXTRA_ATTACKS}}[a.attacks]
    rows = run_grid(clips, cfg, a.seed, attacks=attacks)
    groups, table = summarize(rows, attacks)
    psnrs = [r["psnr"] for r in rows if r["attack"] == "none"]
    md = markdown(groups, table, psnrs, len(clips))
    long_tables = {}
    if a.long if a.long is not None else not a.quick:
        lclips = long_clips(3 if a.quick else 6, a.seed)
        variants = [("segments", cfg)] + ([("one piece", replace(cfg, segment_frames=0))] if a.long_baseline else [])
        for label, c in variants:
            print(f"long clips, marked in {label}:", file=sys.stderr, flush=True)
            lrows = run_grid(lclips, c, a.seed, attacks=LONG_ATTACKS)
            lgroups, ltable = summarize(lrows, LONG_ATTACKS)
            long_tables[label] = ltable
            md += (f"\n\nLong clips marked in {label} (segment_frames={c.segment_frames}): "
                   + ", ".join(f"{n} ({f.shape[0]} frames)" for _, n, f, _ in lclips) + "\n\n"
                   + markdown(lgroups, ltable, [r["psnr"] for r in lrows if r["attack"] == "none"], len(lclips)))
    n_fp = a.fp if a.fp is not None else (200 if a.quick else 1000)
    fp = false_positive_study(n_fp, cfg, a.seed) if n_fp > 0 else {"n": 0, "detected": 0}
    sp = speed(cfg, 2 if a.quick else 5)
    md += f"\n\nPreset {a.preset!r}; seed {a.seed}; command: python benchmarks/robustness/watermark.py " \
          + " ".join(argv if argv is not None else sys.argv[1:])
    if n_fp > 0:
        md += (f"\nFalse positives: {fp['detected']} detections at p < 1e-6 over {fp['n']} unmarked "
               f"(clip, key) pairs, {fp['wrong_payloads']} payloads read from them (min p {fp['min_p']:.3g}, "
               f"fraction p < 0.05: {fp['frac_p_below_0.05']:.3f}); known-payload tests of a payload never "
               f"embedded: {fp['known_payload_detected']} detections (min p {fp['known_payload_min_p']:.3g}).")
    md += (f"\nSpeed at 256x256: embed {sp['embed_fps']} frames/s, detect {sp['detect_fps']} frames/s "
           f"(an unmarked 96-frame clip: {sp['detect_fps_unmarked_96_frames']} frames/s).")
    print(md)
    if a.rows:
        a.rows.write_text("".join(json.dumps(r) + "\n" for r in rows))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = a.out.with_name(f".{a.out.name}.partial")
        tmp.write_text(md + "\n")
        os.replace(tmp, a.out)
    met = {
        "psnr": bool(min(psnrs) >= TARGETS["psnr_min"]),
        **{k[5:]: table[k]["bit_acc"] >= TARGETS[k] for k in ("h264_crf23", "h264_crf40", "h264_crf50")
           if k in table},  # (not with --attacks extra)
        "false_positives": fp["detected"] == 0 and fp.get("wrong_payloads", 0) == 0
        and fp.get("known_payload_detected", 0) == 0 and fp["n"] >= 1000,
        "speed": min(sp["embed_fps"], sp["detect_fps"], sp["detect_fps_unmarked_96_frames"]) >= TARGETS["fps"],
    }
    summary = {"benchmark": "watermark-robustness", "quick": a.quick, "clips": len(clips),
               "psnr_mean": round(float(np.mean(psnrs)), 3), "psnr_min": round(float(np.min(psnrs)), 3),
               "attacks": {k: {**{m: round(v[m], 4) for m in ("bit_acc", "payload", "detect", "known")},
                               "ci95": v["ci"], "n": v["n"],
                               # by clip group (size, footage): the pooled rate hid a size that fails
                               "by_group": {g: {m: (None if not np.isfinite(v[f"{m}_{g}"]) else round(v[f"{m}_{g}"], 4))
                                                for m in ("bit_acc", "payload")} for g in groups}}
                           for k, v in table.items()},
               "false_positives": {**fp, "rate_ci95_high": round(proportion_ci(fp["detected"], fp["n"]).ci_high, 5)
                                   if fp.get("n") else None},
               "speed": sp, "targets_met": met,
               "long_clips": {label: {k: {m: round(v[m], 4) for m in ("bit_acc", "payload", "detect")}
                                      for k, v in t.items()} for label, t in long_tables.items()},
               "seconds": round(time.perf_counter() - t0, 1)}
    if a.mlflow:
        _log_mlflow(cfg, a, table, summary, md)
    print(json.dumps(summary))
    return 0


def _log_mlflow(cfg, a, table, summary, md):
    import mlflow

    from evalkit.tracking import log_json, sanitize_name, start_run

    with start_run("watermark-robustness", run_name="quick" if a.quick else "grid",
                   params={"config": asdict(cfg), "preset": a.preset, "quick": a.quick}, seed=a.seed):
        for an, e in table.items():
            mlflow.log_metrics({sanitize_name(f"{an}/{k}"): float(v) for k, v in e.items()
                                if isinstance(v, float) and np.isfinite(v)})
        mlflow.log_metrics({"psnr_mean": summary["psnr_mean"], "psnr_min": summary["psnr_min"],
                            "false_positives": summary["false_positives"]["detected"],
                            "fp_pairs": summary["false_positives"]["n"],
                            "known_payload_false_positives": summary["false_positives"].get("known_payload_detected", 0),
                            "embed_fps": summary["speed"]["embed_fps"],
                            "detect_fps": summary["speed"]["detect_fps"]})
        log_json(summary, "watermark_summary.json")
        with tempfile.TemporaryDirectory() as d:
            p = Path(d) / "watermark_robustness.md"
            p.write_text(md + "\n")
            mlflow.log_artifact(str(p))


if __name__ == "__main__":
    from benchmarks.script_args import run_script

    run_script(main)
