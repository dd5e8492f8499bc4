"""`evalkit score`: every metric of a folder of candidate clips, against a reference folder.

Each number comes out as {"value", "ci_low", "ci_high", "n", "protocol"}: a 95% bootstrap CI
(Wilson for rates), its N, and the protocol that produced it (backbone and weights hash, frames,
size, the candidates' generation settings). Per-clip values go to "per_clip".
"""

from __future__ import annotations

import json

from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from evalkit.atomic import resolved
from evalkit.clipset import clip_set, load_clip
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.video import shrink_to_fit
from evalkit.metrics.stats import Estimate, mean_ci, proportion_ci
from evalkit.metrics.flicker import hf_min_frames

ALL_METRICS = ("fvd", "clip", "flicker", "physics")
PHYSICS_MIN_FRAMES = 3  # the probes fit motion: a velocity change needs three frames
STABLE_FVD_N = 256  # below this FVD's small-sample bias dominates differences between models


def parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(m.strip() for m in text.split(",") if m.strip())
    bad = [m for m in names if m not in ALL_METRICS]
    if bad or not names:
        raise BadInputError(f"--metrics {text!r}: unknown {bad or 'empty'}; choose from {','.join(ALL_METRICS)}")
    return names


def _entry(est: Estimate, protocol: dict) -> dict:
    d = est.to_dict()
    return {"value": d["value"], "ci_low": d["ci_low"], "ci_high": d["ci_high"], "n": d["n"],
            "protocol": {**protocol, "ci": f"{d['method']}@{d['confidence']}"}}


class _Seen:
    """What scoring keeps of a clip once its frames are gone: a folder is read one clip at a time,
    so memory holds one clip (and the metrics' small per-clip features), not the whole folder."""

    def __init__(self, clip):
        self.meta = {"record": clip.meta["record"]}
        self.prompt = clip.prompt or clip.meta["record"]["prompt"]
        self.num_frames, self.size = clip.num_frames, clip.size


def _off_world(metric: str, bb, prompts: list[str], what: str, instead: str) -> list[str]:
    """A warning when clips outside the world's grammar meet a backbone trained on the world
    only: its features of other footage, or of other words, were never trained to mean anything."""
    from evalkit.world.captions import parse_caption

    off = [p for p in prompts if parse_caption(p) is None]
    if not off:
        return []
    example = repr(off[0] if len(off[0]) <= 60 else off[0][:57] + "...") if off[0].strip() else "one without a prompt"
    return [f"{metric}: {len(off)} of {len(prompts)} {what} are not world clips (e.g. {example}); the "
            f"{bb.name} backbone was trained on the world's renders and captions only, so its features "
            f"say little about them: use {instead}"]


def _still_error(source, frames: int, what: str) -> BadInputError:
    return BadInputError(f"{source}: {frames} frame ({what}); every metric needs a video of at least 2 frames: "
                         "remove it from the folder")


def _preflight(folder, what: str, first_frames_only: bool = False) -> None:
    """Stop before any work at a file the run would stop at later: every header read (cheap),
    so a broken file or a one-frame still at the end of a folder of HD recordings, or in the
    reference, is named at once rather than after minutes of scoring. `first_frames_only`: the
    run decodes only a clip's first frames (the reference, for FVD's backbone), so a clip over
    the frame limit is no reason to stop (a 21,120-frame reference was refused for it)."""
    from dataclasses import replace

    from evalkit.video import VideoLimits, probe_video

    if not Path(folder).exists():
        raise MissingResourceError(f"{folder}: no such folder of clips ({what}); check the path")
    folder, records = clip_set(folder)
    limits = VideoLimits.from_env().without_decode_budget()  # an HD clip is read reduced
    if first_frames_only:
        limits = replace(limits, max_frames=1 << 62)
    for rec in records:
        try:
            if probe_video(Path(folder) / rec["file"], limits=limits).frames == 1:
                raise _still_error(Path(folder) / rec["file"], 1, what)
        except (BadInputError, MissingResourceError) as e:
            e.unscorable_file = True  # the CLI names its --skip-unreadable on these
            raise


def _iter(folder, what: str, progress: bool, max_frames: int | None = None, skipped: list | None = None):
    """Each clip of a folder in turn (frames decoded one clip at a time), checked for scoring;
    `max_frames`: decode only the first frames (all that FVD's backbone reads of a reference clip).
    A file that cannot be scored (unreadable, or under 2 frames) stops the run with its name,
    unless `skipped` is a list: then it is appended there ({"set", "file", "why"}) and passed over."""
    if not Path(folder).exists():
        raise MissingResourceError(f"{folder}: no such folder of clips ({what}); check the path")
    folder, records = clip_set(folder)  # a folder, or one video file
    for rec in tqdm(records, desc=f"score {what}", unit="clip", disable=None if progress else True):
        try:
            # a whole clip over the decode budget (a 4K phone clip) is read reduced by a whole factor,
            # all its frames kept; the reference is read only as far as FVD's backbone does
            k = 1 if max_frames else shrink_to_fit(Path(folder) / rec["file"])
            c = load_clip(folder, rec, max_frames=max_frames, shrink=k)
            c.meta["shrink"] = k
            if c.num_frames < 2:  # a still is no video: flicker, warping and FVD compare frames
                raise _still_error(c.meta.get("source"), c.num_frames, what)
        except (BadInputError, MissingResourceError) as e:
            if skipped is None:
                e.unscorable_file = True  # the CLI names its --skip-unreadable on these
                raise
            skipped.append({"set": what, "file": str(Path(folder) / rec["file"]), "why": str(e)})
            continue
        yield c


def generation_protocol(clips) -> dict:
    """The candidates' generation settings when they all share them (else "mixed")."""
    out = {}
    # every setting an index records that changes the pixels (bf16 against fp32, guidance rescale and
    # interval, spacing: two such folders reported under one protocol, session 33)
    for key in ("model", "source_model", "weights_sha256", "preset", "sampler", "steps", "guidance",
                "guidance_convention", "guidance_rescale", "guidance_interval", "timestep_spacing", "precision",
                "noise", "crf"):
        # compared as JSON, kept as given: steps 20 stays a number (it read "20"); a key some clips
        # lack is mixed too (crf is recorded only where it is not the default: CRF 18 and 30 clips
        # together read crf 30, session 33)
        given = [c.meta["record"].get(key) for c in clips]
        vals = {json.dumps(v, sort_keys=True, default=str) for v in given if v is not None}
        if vals:
            out[key] = json.loads(vals.pop()) if len(vals) == 1 and None not in given else "mixed"
    sizes = Counter((c.num_frames, *c.size) for c in clips)
    out["frames_size"] = [list(k) for k in sizes]
    seeds = {json.dumps(v, default=str): v for c in clips if (v := c.meta["record"].get("seed")) is not None}
    # an index may give a seed as text ("1"): ordered numbers first, then the rest by their text
    listed = sorted(seeds.values(), key=lambda v: (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool)
                    else (1, 0, str(v)))
    out["seeds"], out["n_seeds"] = listed[:MAX_SEEDS_LISTED], len(listed)
    if len(listed) > MAX_SEEDS_LISTED:
        out["seeds_note"] = (f"the first {MAX_SEEDS_LISTED} of {len(listed)} distinct seeds; every clip's seed is "
                             "in its index line")
    return out


MAX_SEEDS_LISTED = 50


def _unlisted(candidates) -> list[str]:
    """Videos of an indexed folder (top level and clips/) that its index does not list."""
    from evalkit.clipset import INDEX, read_index, video_files

    folder = Path(candidates)
    if not (folder / INDEX).is_file():
        return []
    listed = {resolved(folder / r["file"]) or folder / r["file"] for r in read_index(folder)}
    # a link loop stays as named: listed, and reading it names the problem
    return [f.relative_to(folder).as_posix() for f in video_files(folder) if (resolved(f) or f) not in listed]


def _flicker_row(frames: np.ndarray, row: dict) -> None:
    from evalkit.metrics.flicker import temporal_flicker_score, temporal_hf_ratio, warping_error

    row["flicker"] = temporal_flicker_score(frames)
    row["warp_error"] = warping_error(frames)
    row["temporal_hf"] = temporal_hf_ratio(frames)  # NaN under 8 frames: no low band to compare with


def _flicker(rows: list[dict], base: dict) -> dict:
    from evalkit.metrics.flicker import MAX_WARP_PAIRS

    proto = {**base, "flicker": "VBench temporal flickering (255 - mean MAE(f_t, f_t+1)) / 255 on uint8",
             "warp_error": f"Farneback flow, forward-backward occlusion mask, MSE in [0, 1]; every consecutive "
                           f"pair up to {MAX_WARP_PAIRS}, else {MAX_WARP_PAIRS} evenly spaced",
             "temporal_hf": "temporal energy above 1/4 Nyquist"}
    out = {}
    for k in ("flicker", "warp_error", "temporal_hf"):
        vals = [r[k] for r in rows if np.isfinite(r[k])]
        if vals:  # temporal_hf needs 8 frames, warp_error a visible pixel: none may have it (a warning says so)
            out[k] = _entry(mean_ci(vals, bounds=(0.0, 1.0)), proto)  # each in [0, 1]
    return out


def _fvd(fake: np.ndarray, real: np.ndarray, prompts: list[str], bb, base: dict) -> dict:
    from evalkit.metrics.diversity import conditional_diversity
    from evalkit.metrics.fvd import fvd_with_ci, kvd_with_ci, precision_recall_with_ci

    if len(fake) < 2 or len(real) < 2:
        raise BadInputError(f"fvd needs at least 2 clips in each set, got {len(fake)} candidates and "
                            f"{len(real)} reference clips")
    # (the intervals take each set in one order by content, whatever order the clips were listed
    # in: `base.rows_by_content`, as the metric classes do, so that both give the same numbers)
    proto = {**base, "backbone": bb.protocol(), "n_reference": len(real)}
    # each entry states its own definition: which estimator, which kernel (StyleGAN-V's KVD averages
    # 100 subsets of up to 1,000 clips; on unequal sets that is another number, session 32)
    fvd_proto = {**proto, "definition": "|mu_r - mu_g|^2 + Tr(S_r + S_g - 2 (S_r S_g)^(1/2)) of Gaussian fits "
                 "(covariance ddof=1, float64; trace square root by Cholesky/eigenvalues, scipy sqrtm for badly "
                 "scaled features)", "note": "FVD is biased at small N: compare only at equal N and backbone"}
    kvd_proto = {**proto, "definition": "unbiased MMD^2 of the whole sets (not a mean over subsets), kernel "
                 f"(x.y / D + 1)^3 with D = {real.shape[1]}",
                 "note": "KVD is unbiased but noisy at small N; compare at equal backbone"}
    out = {"fvd": _entry(fvd_with_ci(real, fake), fvd_proto), "kvd": _entry(kvd_with_ci(real, fake), kvd_proto)}
    div = conditional_diversity(fake, prompts)
    if div is not None:
        out["conditional_diversity"] = _entry(div, {**proto, "definition": "mean pairwise L2 distance of a "
                                                    "prompt's samples' features, mean over prompts (n = prompts)"})
    if min(len(real), len(fake)) > 3:  # k-NN radii need more than k samples a set
        p, r = precision_recall_with_ci(real, fake, k=3)
        pr_proto = {**proto, "k": 3}
        if min(len(real), len(fake)) < PR_RELIABLE_N:
            # measured: 64 control:noise clips had precision 1.0 against a 64-clip world reference
            # (three real clips' radii then cover the noise), 0 against 256
            pr_proto["note"] = (f"k-NN manifolds of under {PR_RELIABLE_N} clips a set are coarse: their radii can "
                                "cover clips unlike any real one (precision 1 for noise against 64 reference clips)")
        for name, est in (("precision", p), ("recall", r)):
            out[name] = _entry(est, pr_proto)
    return out


PR_RELIABLE_N = 256  # precision/recall below this many clips a set carry a note (score also warns)


def _clip(frame_embeds, text_embeds, prompts: list[str], bb, base: dict, rows: list[dict], num_frames: int) -> dict:
    """CLIPScore per clip and text-to-clip retrieval (each clip against every distinct prompt),
    from the embeddings gathered clip by clip (so clips of different sizes are ranked too)."""
    from evalkit.metrics.clip_alignment import clip_alignment

    # a list: clips of different lengths give different numbers of frame embeddings
    res = clip_alignment(prompts=prompts, frame_embeds=frame_embeds, text_embeds=text_embeds)
    proto = {**base, "backbone": bb.protocol(),
             "score": f"100 * max(cos, 0) per frame, mean over every frame (a clip over {num_frames} frames: "
                      f"{num_frames} evenly spaced)", "num_frames": num_frames}
    out = {}
    per = [float(x) for x in res["per_clip"]]
    if res["n_prompts"] > 1:
        ranks = np.asarray(res["ranks"])
        out["clip_retrieval_top1"] = _entry(proportion_ci(int((ranks <= 1).sum()), len(ranks)),
                                            {**proto, "n_prompts": res["n_prompts"]})
    for row, s in zip(rows, per):
        row["clip_alignment"] = s
    out["clip_alignment"] = _entry(mean_ci(per, bounds=(0.0, 100.0)), proto)  # CLIPScore: 100 max(cos, 0)
    return out


def _physics_row(clip, row: dict) -> None:
    from evalkit.metrics.physics import physics_probe
    from evalkit.metrics.physics_laws import probe_spec

    rec = clip.meta["record"]
    try:
        spec = probe_spec(rec.get("probe") or rec["prompt"])
    except ValueError:
        return  # not a world prompt: the probes have nothing to test
    if clip.num_frames < PHYSICS_MIN_FRAMES:  # a motion needs 3 frames (it was blamed on the prompt)
        row["physics_untested"] = "short"
        return
    res = physics_probe(clip.frames, spec, fps=clip.fps, details=True)
    row.update(physics_score=res["physics_score"], physics_pass=res["physics_pass"],
               physics_laws=res["physics_laws"])
    if any(not tr.seen.any() for tr in res["tracks"]):
        # Scored (permanence fails, as a blank or noise clip must) but said apart from a named
        # object that breaks a law: real footage under a world prompt draws no such object.
        row["physics_untested"] = "objects not found"


def _physics(rows: list[dict], base: dict) -> dict:
    tested = [r for r in rows if "physics_score" in r]
    if not tested:
        return {}
    laws: dict[str, list[bool]] = {}
    for r in tested:
        for law, ok in r["physics_laws"].items():
            if ok is not None:
                laws.setdefault(law, []).append(bool(ok))
    proto = {**base, "probes": "colour-segmentation tracker, per-law tests of the prompted scene",
             "skipped_non_world_prompts": len(rows) - len(tested)}
    out = {"physics_score": _entry(mean_ci([r["physics_score"] for r in tested], bounds=(0.0, 1.0)), proto),
           "physics_pass_rate": _entry(proportion_ci(sum(bool(r["physics_pass"]) for r in tested), len(tested)),
                                       proto)}
    for law, oks in sorted(laws.items()):
        out[f"physics_law.{law}"] = _entry(proportion_ci(sum(oks), len(oks)), proto)
    return out


def _float32_lists(x: torch.Tensor) -> list[list[float]]:
    """Rows of float32 features as lists of floats printed with 9 significant digits, which read
    back to the same float32 (JSON had 17 digits a number: 16 MB for 1,000 clips of 400-d each).
    Features that float32 does not hold exactly (a backbone computing in float64) keep every digit."""
    if not torch.equal(x.float().double(), x.double()):
        return x.double().tolist()
    return [[float(f"{v:.9g}") for v in row] for row in x.float().tolist()]


def _frames_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 [1, T, 3, H, W], a view of uint8 frames [T, H, W, 3]: the backbones scale it to [0, 1]
    themselves, for just the frames they read (an HD clip as float32 is 4x its frames)."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)[None]


def _features(bb, frames: np.ndarray) -> torch.Tensor:
    """A video backbone's features of a clip, given only the first frames it reads."""
    return bb.features(_frames_tensor(frames[:bb.frames] if bb.frames else frames))


def _clip_frames(t: int, num_frames: int) -> np.ndarray:
    from evalkit.metrics.clip_alignment import frame_indices

    return frame_indices(t, num_frames)


def score_folders(candidates, reference=None, metrics=ALL_METRICS, *, video_backbone: str = "world-video-encoder",
                  video_backbone_path=None, clip_backbone: str = "world-clip", clip_backbone_path=None,
                  progress: bool = True, log_mlflow: bool = False, skip_unreadable: bool = False,
                  keep_features: bool = False, clip_num_frames: int | None = None) -> dict:
    """{"metrics": {name: {"value", "ci_low", "ci_high", "n", "protocol"}}, "per_clip": [...],
    "warnings": [...], "skipped": [...]}; with `log_mlflow`, also one MLflow run in experiment
    "evalkit-score". With `skip_unreadable`, files that cannot be scored (a broken download, a
    one-frame still) are left out, each named in "skipped" and counted in a warning; otherwise
    the first one stops the run.

    One pass over the candidates computes every metric's per-clip part (flicker, physics, the
    FVD backbone's features, the CLIP embeddings) and lets the frames go, so a folder of long HD
    videos needs the memory of one of them; then one pass over the reference for FVD, decoding
    each reference video only as far as the backbone reads (its first 16 frames).

    `keep_features`: also "features": the FVD backbone's features of every candidate (in
    per_clip's order) and reference clip, as float lists, for a paired comparison of two sets'
    distances to one reference (`fvd_paired`; the bench logs them beside each run).
    `clip_num_frames`: CLIPScore's frames a clip (default `clip_alignment.DEFAULT_NUM_FRAMES`; a
    bundle scored before session 36 is recomputed with its 8)."""
    from evalkit.metrics.clip_alignment import DEFAULT_NUM_FRAMES

    clip_num_frames = int(clip_num_frames or DEFAULT_NUM_FRAMES)
    from evalkit.metrics.backbones import get_backbone

    if "fvd" in metrics and reference is None:  # before any work
        raise BadInputError("fvd needs --reference REAL (a folder of real clips)")
    if log_mlflow:
        from evalkit import tracking

        tracking.check_reachable()
    video_bb = get_backbone(video_backbone, path=video_backbone_path) if "fvd" in metrics else None
    clip_bb = get_backbone(clip_backbone, path=clip_backbone_path) if "clip" in metrics else None
    seen, rows, fake, frame_embeds, text_embeds = [], [], [], [], []
    short = [0, 0]  # candidate and reference clips shorter than the video backbone reads
    skipped: list | None = [] if skip_unreadable else None
    if skipped is None:  # without --skip-unreadable the first bad file stops the run: find it first
        _preflight(candidates, "candidates")
        if video_bb is not None:
            _preflight(reference, "reference", first_frames_only=True)
    if video_bb is not None:  # a set of one: said now, not after every clip was scored (session 33)
        for folder, what in ((candidates, "candidates"), (reference, "reference")):
            n = len(clip_set(folder)[1])
            if n < 2:
                raise BadInputError(f"{folder}: {n} clip{'s' if n != 1 else ''} ({what}); FVD compares sets of at "
                                    "least 2 clips each: give more, or score without it: --metrics clip,flicker,physics")
    for c in _iter(candidates, "candidates", progress, skipped=skipped):
        row = {"id": c.meta["record"]["id"]}
        if c.meta["shrink"] > 1:
            row["read_reduced"] = c.meta["shrink"]
        if c.meta.get("fps_source") == "timestamps":
            row["fps"], row["header_fps"] = c.fps, c.meta["header_fps"]
        seen.append(_Seen(c))
        if "flicker" in metrics:
            _flicker_row(c.frames, row)
        if "physics" in metrics:
            _physics_row(c, row)
        if video_bb is not None:
            fake.append(_features(video_bb, c.frames))
            short[0] += c.num_frames < video_bb.frames
        if clip_bb is not None and seen[-1].prompt.strip():  # no text to align with: left out, said below
            frame_embeds.append(clip_bb.encode_video_frames(_frames_tensor(c.frames[_clip_frames(c.num_frames, clip_num_frames)])))
            text_embeds.append(clip_bb.encode_text([seen[-1].prompt]))
        rows.append(row)
        del c
    if not rows:  # only with --skip-unreadable: clip_set refuses a folder without videos
        raise BadInputError(f"{candidates}: no video in it could be scored ({len(skipped)} left out, e.g. "
                            f"{skipped[0]['why']}); fix or replace them")
    base = {"candidates": str(candidates), "generation": generation_protocol(seen)}
    prompts = [s.prompt for s in seen]
    out: dict = {}
    if "flicker" in metrics:
        out.update(_flicker(rows, base))
    if video_bb is not None:
        # the reference serves FVD alone: a long real video is decoded only as far as the backbone reads
        real, ref_prompts = [], []
        for c in _iter(reference, "reference", progress, video_bb.frames, skipped=skipped):
            real.append(_features(video_bb, c.frames))
            short[1] += c.num_frames < video_bb.frames
            ref_prompts.append(c.prompt or c.meta["record"]["prompt"])
        if not real:
            raise BadInputError(f"{reference}: no reference video in it could be scored (e.g. "
                                f"{skipped[-1]['why']}); fix or replace them")
        out.update(_fvd(torch.cat(fake).double().numpy(), torch.cat(real).double().numpy() if real else
                        np.zeros((0, 1)), prompts, video_bb, base))
    if clip_bb is not None:
        if frame_embeds:
            prompted = [i for i, p in enumerate(prompts) if p.strip()]
            out.update(_clip(frame_embeds, text_embeds, [prompts[i] for i in prompted], clip_bb, base,
                             [rows[i] for i in prompted], clip_num_frames))
    if "physics" in metrics:
        out.update(_physics(rows, base))
    warnings = []
    untested = [r for r in rows if "physics_score" not in r] if "physics" in metrics else []
    too_short = sum(r.pop("physics_untested", None) == "short" for r in untested)
    tail = "no physics score" if len(untested) == len(rows) else "left out of the physics score"
    if len(untested) - too_short:  # prompts the world's probes cannot read (another tool's clips, file-name prompts)
        warnings.append(f"physics: {len(untested) - too_short} of {len(rows)} clips have no world prompt the probes "
                        f"can test ({tail})")
    if too_short:
        warnings.append(f"physics: {too_short} of {len(rows)} clips are shorter than the {PHYSICS_MIN_FRAMES} frames "
                        f"a motion needs ({tail})")
    not_found = sum(r.get("physics_untested") == "objects not found" for r in rows if "physics_score" in r)
    if not_found:
        warnings.append(f"physics: in {not_found} of {len(rows)} clips a named object is never found (no blob of "
                        "its colour and size): permanence fails and its motion laws are untested; check that "
                        "the clips show the prompted objects")
    if "flicker" in metrics:
        for k, why in (("temporal_hf", f"needs at least {hf_min_frames()} frames: shorter, every change "
                                       "counts as high-frequency"), ("warp_error", "needs a pixel the flow "
                                                                    "does not mark occluded")):
            gaps = sum(not np.isfinite(r[k]) for r in rows)
            if gaps:
                warnings.append(f"{k}: {gaps} of {len(rows)} clips have none ({why}); "
                                + ("no value" if gaps == len(rows) else "left out of its mean"))
    if video_bb is not None and (short[0] or short[1]) and (short[0], short[1]) != (len(rows), len(real)):
        # A set shorter than the backbone reads is stretched by repeating frames: its features then
        # differ from a full-length set's for that reason alone.
        warnings.append(f"fvd: {short[0]} of {len(rows)} candidate and {short[1]} of {len(real)} reference clips "
                        f"have fewer than the {video_bb.frames} frames the backbone reads and were stretched by "
                        "repeating frames; compare sets of the same length")
    unlisted = _unlisted(candidates)
    if unlisted:  # an index lists what is scored; the user may think the whole folder was
        warnings.append(f"{len(unlisted)} videos of {candidates} are not in its index.jsonl and were not scored "
                        f"(e.g. {unlisted[0]}); add them to the index to score them")
    retimed = [r for r in rows if "header_fps" in r]
    if retimed:
        r = retimed[0]
        warnings.append(f"{len(retimed)} of {len(rows)} clips show their frames at another rate than their header "
                        f"says (e.g. {r['id']}: {r['fps']:.3g} fps by its timestamps, {r['header_fps']:.3g} by its "
                        "header); motion is judged on the timestamps (per_clip fps, header_fps)")
    reduced = Counter(r["read_reduced"] for r in rows if "read_reduced" in r)
    if reduced:
        ks = ", ".join(f"{n} at 1/{k}" for k, n in sorted(reduced.items()))
        warnings.append(f"{sum(reduced.values())} of {len(rows)} clips are over the decode budget and were read "
                        f"with every frame reduced by a whole factor ({ks}, area average; all frames kept); "
                        "their flicker, warp_error and temporal_hf are of the reduced frames "
                        "(per_clip read_reduced); raise EVALKIT_MAX_DECODED_BYTES to read them whole")
    if video_bb is not None and video_bb.trained_on == "world":
        warnings += _off_world("fvd", video_bb, prompts + ref_prompts, "candidate and reference clips",
                               "--i3d PATH (StyleGAN-V's I3D)")
    unprompted = sum(not p.strip() for p in prompts) if clip_bb is not None else 0
    if unprompted:
        warnings.append(f"clip: {unprompted} of {len(rows)} clips have an empty prompt, so nothing to align "
                        f"with: {'no clip_alignment' if unprompted == len(rows) else 'left out of clip_alignment'}"
                        " (give each a prompt in index.jsonl or by its file name; for videos named by number after a "
                        "prompt list: evalkit index FOLDER --prompts LIST)")
    no_prompt = sum(not p.strip() for p in prompts) if video_bb is not None else 0
    if no_prompt:  # numbered files, camera footage: no samples of one prompt (they read as one group "")
        warnings.append(f"conditional_diversity: {no_prompt} of {len(rows)} clips have an empty prompt and were left "
                        f"out{'' if 'conditional_diversity' in out else ' (no prompt has 2 samples: no value)'}")
    if clip_bb is not None and clip_bb.trained_on == "world":
        # clips without a prompt are left out of clip_alignment (warned above), so not counted here
        warnings += _off_world("clip", clip_bb, [p for p in prompts if p.strip()], "prompted clips",
                               "--clip-backbone ViT-B-32 --clip-weights PATH")
    if "fvd" in out and out["fvd"]["n"] < STABLE_FVD_N:
        f = out["fvd"]
        ci = f"CI [{f['ci_low']:.4g}, {f['ci_high']:.4g}]" if np.isfinite([f["ci_low"], f["ci_high"]]).all() else "no CI"
        warnings.append(f"FVD from N={f['n']} clips ({ci}) is strongly "
                        f"biased below about {STABLE_FVD_N}; compare FVDs only at equal N and backbone")
    # an interval the data cannot give (two sets of copies of one clip): null bounds, said once here
    unknown = {k: m["protocol"]["ci"] for k, m in out.items() if m["protocol"]["ci"].startswith("not-estimable")}
    if unknown:
        why = sorted(set(c[len("not-estimable("):c.rindex(")")] for c in unknown.values()))
        warnings.append(f"{', '.join(unknown)}: no confidence interval ({'; '.join(why)}); a zero-width one would "
                        "claim a certainty so few distinct clips cannot give")
    if "fvd" in out and "precision" not in out:
        warnings.append(f"precision and recall were not computed: their k-NN radii (k = 3) need more than 3 clips "
                        f"in each set, got {out['fvd']['n']} candidates and {out['fvd']['protocol'].get('n_reference')} "
                        "reference clips")
    elif "precision" in out and min(out["precision"]["n"], out["recall"]["n"]) < PR_RELIABLE_N:
        warnings.append(f"precision and recall from {out['precision']['n']} candidate and {out['recall']['n']} "
                        f"reference clips: k-NN manifolds under {PR_RELIABLE_N} clips a set are coarse (64 noise "
                        "clips read precision 1 against 64 world clips); compare them only at equal N")
    for what in ("candidates", "reference"):
        gone = [k for k in skipped or [] if k["set"] == what]
        if gone:
            noun = {"candidates": "candidate", "reference": "reference"}[what] + ("s" if len(gone) > 1 else "")
            warnings.append(f"{len(gone)} {noun} could not be scored and {'were' if len(gone) > 1 else 'was'} left out "
                            f"(--skip-unreadable): " + "; ".join(k["why"] for k in gone[:3])
                            + (f"; and {len(gone) - 3} more (see skipped)" if len(gone) > 3 else ""))
    if not out:  # exit 0 with "metrics": {} read as a score to a script checking $?
        why = warnings[0] if warnings else "nothing to compute"
        raise BadInputError(f"{candidates}: none of the metrics asked for ({', '.join(metrics)}) could be "
                            f"computed: {why}")
    result = {"metrics": out, "per_clip": rows, "warnings": warnings, "skipped": skipped or []}
    if keep_features and video_bb is not None and "fvd" in out:
        result["features"] = {"backbone": out["fvd"]["protocol"]["backbone"],
                              "candidates": _float32_lists(torch.cat(fake)), "reference": _float32_lists(torch.cat(real))}
    if log_mlflow:
        result["mlflow_run_id"] = _log_run(candidates, reference, metrics, result)
    return result


def _log_run(candidates, reference, metrics, result: dict) -> str:

    from evalkit import tracking

    params = {"candidates": str(candidates), "reference": str(reference), "metrics": ",".join(metrics)}
    with tracking.start_run("evalkit-score", run_name=Path(candidates).name, params=params) as run:
        import mlflow

        nan = lambda x: float("nan") if x is None else x  # noqa: E731
        for name, m in result["metrics"].items():
            tracking.log_metric_ci(name, m["value"], nan(m["ci_low"]), nan(m["ci_high"]), m["n"])
        # how each interval was made, tagged as `log_estimates` does: NaN bounds alone do not say
        # whether n was 1 or the values did not vary (`not-estimable(...)`)
        mlflow.set_tags({f"ci.{tracking.sanitize_name(k)}": m["protocol"]["ci"]
                         for k, m in result["metrics"].items()})
        tracking.log_json({k: v for k, v in result.items() if k != "per_clip"}, "score.json")
        tracking.log_table([{k: v for k, v in r.items() if k != "physics_laws"} for r in result["per_clip"]],
                           "per_clip.csv")
        return run.info.run_id
