"""`evalkit bench run`: one suite over one model, as one MLflow run shaped by `benchmarks.schema`.

    res = run_suite("world-v1", "uvit:small-stage1", out_dir="evalkit-bench")
    res.run_id, res.status, res.metrics, res.folder, res.bundle

Steps: generate every (prompt, sample) clip of the suite (or read them, for `folder:`), sign and
watermark them when the model is the built-in U-ViT, score every metric of the suite, check
provenance, watermark survival after re-encoding and the default detector per clip, then log
params, metrics with CIs, the per-clip table, a sample grid and the signed result bundle.

Where clips are made is the executor's business (`benchmarks.executors`: here, or Ray actors on a
cluster); everything else stays in this process, so the clips and numbers do not depend on it.

Resume without repeating work or duplicating runs:

* the run key (schema.TAG_RUN_KEY) hashes the suite, the model and its generation settings; an
  MLflow run with that key that is complete is returned as is, an incomplete one (killed,
  crashed) is resumed into, so one key never has two runs;
* every finished clip is kept under `$EVALKIT_HOME/bench/work/<run key>/` (the MP4, then its
  record, each written atomically: a record exists only for a whole clip), and generation is
  deterministic per seed, so a restarted run generates only the clips that are missing;
* per-clip checks (provenance, watermark survival, detector) are cached under
  `$EVALKIT_HOME/bench/cache/` by the clip's SHA-256 and the check's protocol, and the set-level
  scores by the SHA-256 of every clip and reference clip and the metric protocol. Scoring is
  deterministic (fixed bootstrap seeds), so a recomputation gives the same numbers anyway.
"""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import schema
from benchmarks.clip_shape import bundle_generation, made_shape, resolve_shape, shape_params
from benchmarks.clip_checks import (load_default_detector, per_clip_checks, project_credentials, protector,
                                    safety_metrics)
from benchmarks.executors import LocalExecutor, Shard
from benchmarks.run_cache import CODE_VERSION, bench_home, clean, read_json, sha_of
from benchmarks.run_scoring import (  # noqa: F401  (re-exported)
    SCORE_FAMILIES, _cost_entry, _two_sample_diff, cost_metrics, folder_digest, physics_parts, score_run,
)
from benchmarks.suite import Suite, SuitePrompt, load_suite
from evalkit.atomic import check_parents, write_atomic
from evalkit.clipset import read_index
from evalkit.errors import BadInputError, EvalkitError
from evalkit.hashing import sha256_file
from generators.base import record_shape


@dataclass
class RunResult:
    run_id: str
    status: str  # "new", "resumed" or "complete" (an earlier run with this key, returned as is)
    suite: str
    model: str
    run_key: str
    folder: Path | None = None
    bundle: Path | None = None
    metrics: dict = field(default_factory=dict)  # name -> {"value", "ci_low", "ci_high", "n"}
    warnings: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# small helpers


def _slug(spec: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", spec).strip("-.")[:60] or "model"


def role_of(spec: str) -> str:
    if spec == "world":
        return "ceiling"
    return "control" if spec.startswith("control:") else "model"


# ---------------------------------------------------------------------------------------------
# generation


def _generator(suite: Suite, spec: str, options: dict):
    from evalkit.world import WorldConfig
    from generators.base import get_generator

    if spec == "world" or spec.startswith("control:"):
        v = suite.video
        return get_generator(spec, config=WorldConfig(frames=v["frames"], size=v["size"], fps=v["fps"]), **options)
    return get_generator(spec, **options)


def _model_fingerprint(spec: str) -> str | None:
    """For `folder:` the generator's 'weights' are its files: the index's content hash and every
    video's name, size and modification time (top level, clips/, and what the index lists), so a
    video replaced under the same name makes a new run, never the old numbers. (Times rather than
    contents: hashing a folder of HD videos would cost more than the bench run it keys.)"""
    if not spec.startswith("folder:"):
        return None
    from evalkit.clipset import video_files

    d = Path(spec.partition(":")[2])
    if not d.is_dir():
        return None
    idx = d / "index.jsonl"
    files = set(video_files(d))
    if idx.is_file():
        try:
            files |= {d / rec["file"] for rec in read_index(d)}
        except EvalkitError:  # a bad index is refused where it is read, with its line
            pass

    def stat(f: Path):
        try:
            st = f.stat()
            return f.relative_to(d).as_posix(), st.st_size, st.st_mtime_ns
        except (OSError, ValueError):
            return str(f), None, None
    return sha_of({"index": sha256_file(idx) if idx.is_file() else None,
                   "videos": sorted(stat(f) for f in files)})


def _format_mismatch(suite: Suite, records: list[dict]) -> list[str]:
    """A warning where the clips are not the suite's video format (a folder of another tool's
    videos, a diffusers pipeline): physics is judged per frame and FVD's reference is rendered in
    the suite's format, so the numbers compare with other models' only in part."""
    v = suite.video
    off = [r for r in records if (r.get("frames"), r.get("fps")) != (v["frames"], v["fps"])
           or tuple(r.get("size") or ()) not in ((v["size"], v["size"]),)]
    if not off:
        return []
    r = off[0]
    return [f"{len(off)} of {len(records)} clips are not the suite's video format ({v['frames']} frames of "
            f"{v['size']}x{v['size']} at {v['fps']:g} fps; e.g. {r['id']}: {r.get('frames')} frames of "
            f"{'x'.join(map(str, r.get('size') or []))} at {r.get('fps', 0):.3g} fps): the reference is in the "
            "suite's format, so FVD and physics compare with other models' in part only"]


def _device_of(gen) -> str | None:
    """Where the model runs ("cpu", "cuda"), where it says: a U-ViT's device, a pipeline's."""
    device = getattr(gen, "device", None) or getattr(getattr(gen, "pipe", None), "device", None)
    kind = getattr(device, "type", device)
    return kind if isinstance(kind, str) else None


def run_key(suite: Suite, spec: str, protocol: dict, max_prompts: int | None, judges: dict | None = None) -> str:
    """Everything a run's numbers depend on: the suite, the model and its settings, and the judges
    (the detector's weights, user-given backbone paths), so a new judge never reuses old numbers."""
    return sha_of({"suite_hash": suite.hash, "model": spec, "weights_sha256": protocol.get("weights_sha256"),
                 "generation": protocol, "max_prompts": max_prompts, "folder": _model_fingerprint(spec),
                 "code": CODE_VERSION, **({"judges": judges} if judges else {})})


class _ClipStore:
    """Finished clips of one run key: clips/<id>.mp4 and records/<id>.json (written last)."""

    def __init__(self, root: Path):
        self.root = root
        (root / "clips").mkdir(parents=True, exist_ok=True)
        (root / "records").mkdir(parents=True, exist_ok=True)

    def record(self, clip_id: str) -> dict | None:
        rec = read_json(self.root / "records" / f"{clip_id}.json")
        path = self.root / "clips" / f"{clip_id}.mp4"
        if rec is None or not path.is_file() or sha256_file(path) != rec.get("sha256"):
            return None  # missing or damaged: generated again
        return rec

    def add(self, clip_id: str, tmp_mp4: Path, rec: dict) -> dict:
        path = self.root / "clips" / f"{clip_id}.mp4"
        os.replace(tmp_mp4, path)
        rec = {**rec, "sha256": sha256_file(path)}
        write_atomic(self.root / "records" / f"{clip_id}.json", json.dumps(clean(rec)).encode())
        return rec


def _generate(suite: Suite, prompts: list[SuitePrompt], gen, store: _ClipStore, *, protect, progress: bool,
              on_clip, executor=None, make_generator=None) -> list[dict]:
    """Every clip of `prompts`, generating only those the store lacks; records in suite order.
    The executor makes the clips (here or on a cluster); storing, signing and watermarking happen
    here, so the credentials never leave this process."""
    from tqdm.auto import tqdm

    from evalkit.video import write_video
    from generators.base import sample_seed

    executor = executor or LocalExecutor()
    k_all = range(suite.samples_per_prompt)
    proto = gen.protocol()
    out: dict[str, dict] = {}
    shards = []
    bar = tqdm(total=len(prompts) * suite.samples_per_prompt, desc=f"generate {gen.spec}", unit="clip",
               disable=None if progress else True)
    for p in prompts:
        ids = {k: f"{p.id}-{k:02d}" for k in k_all}
        have = {k: store.record(ids[k]) for k in k_all}
        # A prompt's samples are always generated as one batch, even when some are already stored:
        # batched float maths can differ in the last bits with the batch's size, and a resumed run
        # must make the very same clips. (folder: serves a prompt's videos in request order too.)
        if gen.spec.startswith("folder:") or any(h is None for h in have.values()):
            shards.append(Shard((p, ids, have), [p.text] * len(k_all), [sample_seed(suite.seed, p.index, k)
                                                                          for k in k_all]))
        else:
            out.update({ids[k]: have[k] for k in k_all})
            bar.update(suite.samples_per_prompt)
    for shard, clips, cost in executor.run(make_generator, shards, gen=gen):
        p, ids, have = shard.key
        for k, s, clip in zip(k_all, shard.seeds, clips):
            if have[k] is None:
                rec = {"id": ids[k], "file": f"clips/{ids[k]}.mp4", "prompt": p.text, "prompt_id": p.id,
                       "part": p.part, "sample": k,
                       # a folder's videos are made: a seed would claim a choice nobody made (session 32)
                       "seed": s if getattr(gen, "uses_seeds", True) else None,
                       # the clip's own shape wins over the protocol's (CogVideoX asked 5 frames makes 8)
                       **proto, **record_shape(proto, clip), **cost}
                if p.probe is not None:
                    rec["probe"] = p.probe
                if clip.meta.get("frames_made"):  # a pipeline made more frames than asked: the first kept
                    rec["frames_made"] = clip.meta["frames_made"]
                if gen.spec.startswith("folder:") and clip.meta.get("source"):
                    # the user's own file, and its bytes: the bench scores an H.264 copy of it
                    # (clips/ID.mp4), whose numbers can differ from the original's in the last digits
                    src = Path(clip.meta["source"])
                    rec.update(source_file=str(src), source_sha256=sha256_file(src))
                tmp = store.root / "clips" / f".{ids[k]}.{os.getpid()}.mp4"
                write_video(tmp, clip)
                if protect is not None:
                    rec.update(protect(tmp, rec) or {})
                have[k] = store.add(ids[k], tmp, rec)
                if on_clip is not None:
                    on_clip(have[k])
            out[ids[k]] = have[k]
        bar.update(suite.samples_per_prompt)
    bar.close()
    return [out[f"{p.id}-{k:02d}"] for p in prompts for k in k_all]


def _assemble(records: list[dict], store: _ClipStore, folder: Path) -> Path:
    """The run's clip folder (clips/*.mp4 + index.jsonl, suite order), built beside and renamed."""
    stage = folder.with_name(f".{folder.name}.partial-{os.getpid()}")
    shutil.rmtree(stage, ignore_errors=True)
    (stage / "clips").mkdir(parents=True)
    for rec in records:
        src, dst = store.root / rec["file"], stage / rec["file"]
        try:
            os.link(src, dst)  # same bytes, no copy
        except OSError:
            shutil.copy2(src, dst)
    index = "".join(json.dumps({k: v for k, v in rec.items() if not k.startswith("gen_")},
                               separators=(",", ":")) + "\n" for rec in records)
    (stage / "index.jsonl").write_text(index, encoding="utf-8")
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(stage, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder


# ---------------------------------------------------------------------------------------------
# the reference set (scoring it and the clips: benchmarks.run_scoring)


def reference_folder(suite: Suite, prompts: list[SuitePrompt], progress: bool = False) -> Path:
    """World test-split clips plus the world's rendering of each prompt (cached by its spec)."""
    from evalkit.clipset import ClipFolderWriter
    from evalkit.world import WorldConfig, make_clip, make_clip_for_prompt
    from generators.base import sample_seed

    ref, v = suite.reference, suite.video
    config = WorldConfig(frames=v["frames"], size=v["size"], fps=v["fps"])
    spec = {"reference": ref, "video": v, "prompts": [[p.index, p.text] for p in prompts]}
    folder = bench_home() / "refs" / sha_of(spec)[:24]
    if (folder / "index.jsonl").is_file():
        return folder
    with ClipFolderWriter(folder, replace=True) as w:
        for i in range(ref["n"]):
            clip = make_clip(ref["world_split"], i, ref["seed"], config)
            w.add(clip, clip.meta["record"])
        for p in prompts:
            for k in range(ref["prompt_samples"]):
                s = sample_seed(ref["prompt_seed"], p.index, k)
                try:
                    clip = make_clip_for_prompt(p.text, s, config, clip_id=f"ref-{p.id}-{k:02d}")
                except ValueError:
                    continue  # not a world prompt: the world has no footage of it
                w.add(clip, clip.meta["record"])
    return folder


# ---------------------------------------------------------------------------------------------
# the sample grid (the per-clip safety checks: benchmarks.clip_checks; cost: benchmarks.run_scoring)


def _grid(records: list[dict], folder: Path):
    from evalkit.clipset import load_clip
    from evalkit.grid import frame_grid

    firsts = [r for r in records if r.get("sample") == 0]
    shown = ([r for r in firsts if r["part"] == "id"][:4] + [r for r in firsts if r["part"] == "ood"][:4]) or records[:8]
    clips = [load_clip(folder, r) for r in shown]
    return frame_grid(clips, labels=[f"{r['part']}: {r['prompt']}" for r in shown])


# ---------------------------------------------------------------------------------------------
# MLflow


def find_run(experiment: str, key: str):
    """The run with this run key: a complete one if any, else the newest incomplete one."""
    from mlflow.tracking import MlflowClient

    from evalkit import tracking

    tracking._quiet_store_setup()  # no INFO lines about creating a new store's tables
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return None
    runs = client.search_runs([exp.experiment_id], filter_string=f"tags.`{schema.TAG_RUN_KEY}` = '{key}'",
                              order_by=["attributes.start_time DESC"])
    complete = [r for r in runs if r.data.tags.get(schema.TAG_COMPLETE) == "true"]
    return (complete or runs or [None])[0]


def metrics_of_run(run) -> dict:
    m = run.data.metrics
    out = {}
    for k in m:
        base = k[:-2] if k.endswith("_n") else None
        if base and base in m:
            out[base] = {"value": m[base], "ci_low": m.get(base + "_ci_low"), "ci_high": m.get(base + "_ci_high"),
                         "n": int(m[k])}
    return clean(out)


def _nan(x):
    return math.nan if x is None else x


def _complete_run_folder(run, suite: Suite, prompts, key: str, folder: Path):
    """(folder, bundle, warnings) of a complete run asked for again. Its clips and bundle go where
    this call's --out puts them: the folder is made from the run's clip store and its MLflow
    bundle when it is not there (another --out, or the first one deleted); before, the run was
    returned pointing at wherever it had first been written, gone or not."""
    from mlflow.artifacts import download_artifacts

    from benchmarks.bundle import BUNDLE_FILE, SIG_FILE
    from evalkit.atomic import write_atomic

    recorded = run.data.tags.get("evalkit.bench.folder")
    if (folder / BUNDLE_FILE).is_file():
        return folder, folder / BUNDLE_FILE, []
    store_root = bench_home() / "work" / key[:32]
    ids = [f"{p.id}-{k:02d}" for p in prompts for k in range(suite.samples_per_prompt)]
    store = _ClipStore(store_root)
    records = [store.record(i) for i in ids]
    if any(r is None for r in records):
        if recorded and (Path(recorded) / BUNDLE_FILE).is_file():
            return Path(recorded), Path(recorded) / BUNDLE_FILE, [
                f"the earlier run's clips are in {recorded}; they could not be copied to {folder} "
                f"(their store {store_root} is gone)"]
        return None, None, [f"the earlier run's clips are gone (its folder {recorded} and its store "
                            f"{store_root}); its numbers and bundle stay in MLflow run {run.info.run_id}"]
    with tempfile.TemporaryDirectory(prefix="evalkit-bundle-") as tmp:
        got = Path(download_artifacts(run_id=run.info.run_id, artifact_path="bundle", dst_path=tmp))
        files = {name: (got / name).read_bytes() for name in (BUNDLE_FILE, SIG_FILE) if (got / name).is_file()}
    if len(files) < 2:
        return None, None, [f"MLflow run {run.info.run_id} holds no signed bundle; run the suite again "
                            "after deleting that run"]
    _assemble(records, store, folder)
    for name, data in files.items():
        write_atomic(folder / name, data)
    return folder, folder / BUNDLE_FILE, []


def _params(suite: Suite, spec: str, proto: dict, records_seeds: list, max_prompts, shape_asked: dict) -> dict:
    return {"model": spec, "weights_sha256": proto.get("weights_sha256"), "sampler": proto.get("sampler"),
            "steps": proto.get("steps"), "guidance": proto.get("guidance"),
            "guidance_rescale": proto.get("guidance_rescale"), "guidance_convention": proto.get("guidance_convention"),
            "guidance_interval": proto.get("guidance_interval"), "preset": proto.get("preset"),
            "precision": proto.get("precision"), "timestep_spacing": proto.get("timestep_spacing"),
            "watermark_key": proto.get("watermark_key"),  # its fingerprint: the mark is in the scored pixels
            "n_clips": len(records_seeds), "samples_per_prompt": suite.samples_per_prompt,
            "seed": suite.seed, "seeds": records_seeds, "max_prompts": max_prompts,
            "suite_version": suite.version, "video": suite.video,
            # the clip shape asked of the model and where each part came from (`shape_made`, what
            # the clips are, is logged once they are made); the rate's source; a GPU, if one
            "shape_asked": shape_asked, "fps_from": proto.get("fps_from"), "device": proto.get("device"),
            # the scoring code's version: rows of other versions on one board are named (session 36's
            # CLIPScore averages every frame, not 8)
            "scoring_code": CODE_VERSION}


def run_suite(suite, model_spec: str, *, out_dir, max_prompts: int | None = None,
              generator_options: dict | None = None, backbone_paths: dict | None = None,
              progress: bool = True, on_clip=None, executor=None) -> RunResult:
    """Run `suite` (a Suite, a shipped name or a path) over one model; see the module docstring.
    `on_clip(record)` is called after each newly generated clip is stored; `executor` (from
    `benchmarks.executors.get_executor`) says where the clips are made (default: here);
    `generator_options` go to the model (a diffusers model's `frames`, `size` and `fps` may be
    "suite": the suite's video format, `benchmarks.clip_shape`)."""
    from evalkit import tracking

    tracking.check_reachable()  # before any clip is made: the run is logged at its end

    if not isinstance(suite, Suite):
        suite = load_suite(suite)
    if not isinstance(model_spec, str) or not model_spec.strip():
        raise BadInputError("--model: give a model spec (world, control:KIND, folder:DIR, uvit:PRESET_OR_CKPT, "
                            "diffusers:ID_OR_PATH)")
    from generators.base import canonical_spec

    model_spec = canonical_spec(model_spec)  # a folder by its resolved path: one leaderboard row a folder
    prompts = suite.select(max_prompts)
    check_out_dir(out_dir, suite.name)  # before the model loads, a clip is made or a run is opened
    # `suite` in a shape option: the suite's format; shape options for a model that takes none: refused
    options, asked, origin = resolve_shape(suite, model_spec, generator_options or {})
    gen = _generator(suite, model_spec, options)
    proto = gen.protocol()
    device = _device_of(gen)
    if device not in (None, "cpu"):  # a GPU's clips differ from the CPU's in the last bits: another run
        proto = {**proto, "device": device}
    detector_warnings: list[str] = []  # (and any other said before the run)
    if model_spec.startswith("uvit:"):
        # its clips are watermarked before they are scored, and the mark moves the pixels: the key
        # is part of the protocol (two homes' keys gave FVD 1051 and 1056 under one run key,
        # session 33). Its fingerprint, as soft bindings name it; the key stays secret.
        from evalkit.provenance.credentials import load_watermark_key
        from evalkit.provenance.watermark import make_key

        paths = project_credentials(detector_warnings)
        proto = {**proto, "watermark_key": make_key(load_watermark_key(paths.watermark_key)).fingerprint}
    detector = load_default_detector(detector_warnings) if "detector" in suite.metrics else None
    judges = {"detector": getattr(detector, "weights_sha256", None) if detector is not None else None,
              "backbones": {k: str(v) for k, v in (backbone_paths or {}).items()}}
    key = run_key(suite, model_spec, proto, max_prompts, judges)
    with _run_key_lock(key):  # one process a run key: two at once made two complete MLflow runs
        return _run_suite_locked(suite, model_spec, key, prompts, gen, proto, detector, detector_warnings,
                                 judges, out_dir=out_dir, max_prompts=max_prompts,
                                 generator_options=options, shape_asked=shape_params(proto, asked, origin),
                                 backbone_paths=backbone_paths,
                                 progress=progress, on_clip=on_clip, executor=executor)


def check_out_dir(out_dir, suite_name: str) -> Path:
    """`out_dir` refused in one line when the run's folder (OUT/SUITE/MODEL-KEY, staged beside
    itself) cannot be made there: a file in the way, no permission, a read-only or full disk, a
    name too long. The run found out at its end, after every clip was made, and left a FAILED
    MLflow run (session 34)."""
    out = Path(out_dir)
    try:
        for d in (out, out / suite_name):
            if d.exists() and not d.is_dir():
                raise BadInputError(f"{out}: {'is a file' if d == out else f'{d} is a file'}, where the run's "
                                    "folder goes; choose another folder")
    except OSError as e:  # a name too long
        raise BadInputError(f"{out}: {e.strerror or type(e).__name__}; choose another folder") from None
    check_parents(out)
    target = out / suite_name
    made = [d for d in (target, *target.parents) if not d.exists()]  # taken away again: a refusal
    probe = target / f".evalkit-probe-{os.getpid()}-{os.urandom(3).hex()}"  # after leaves nothing
    try:
        probe.mkdir(parents=True)  # a folder made, not os.access asked: root, a full disk, long names
        probe.rmdir()
    except OSError as e:
        raise BadInputError(f"{out}: cannot write the run's clips and bundle there ({e.strerror or type(e).__name__}"
                            "); choose another folder") from None
    finally:
        for d in made:  # deepest first; one another process has filled meanwhile stays
            try:
                d.rmdir()
            except OSError:
                pass
    return out


def _discard_run(run_id: str) -> None:
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient().delete_run(run_id)
    except Exception:  # noqa: BLE001 (the user's error is what to report, not this)
        pass


# what the user fixes (input, a path, permissions, a full disk): a new run stopped by one is deleted
_USER_ERRNOS = {errno.ENAMETOOLONG, errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM,
                errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _settle_stopped_run(run_id: str, resumed: bool, error: BaseException) -> None:
    """A run that stops before its end must not pass for a result. A new one stopped by the user's
    error is deleted: nothing is lost, the clips it made stay in the clip store for the next run.
    Any other (a crash, Ctrl-C, or a run resumed before) stays for `bench run` to resume, as it
    always did, with a tag saying why it stopped and MLflow's description saying it is no result
    (a FAILED run looked like one in the MLflow UI)."""
    from mlflow.tracking import MlflowClient

    if not resumed and (isinstance(error, EvalkitError) or
                        (isinstance(error, OSError) and error.errno in _USER_ERRNOS)):
        _discard_run(run_id)
        return
    why = "interrupted" if not isinstance(error, Exception) else \
        " ".join(f"{type(error).__name__}: {error}".split())[:300]
    try:
        client = MlflowClient()
        client.set_tag(run_id, "evalkit.bench.stopped", why)
        client.set_tag(run_id, "mlflow.note.content", f"Incomplete bench run, not a result (stopped: {why}). "
                       "`evalkit bench run` with the same suite and model resumes it.")
    except BaseException:  # noqa: BLE001 (what stopped the run is what to report, not this)
        pass


def _run_key_lock(key: str):
    """Hold `$EVALKIT_HOME/bench/work/<key>.lock`; a second `bench run` of the same suite and model
    waits for the first, then finds its run complete (or resumes it, if the first was killed)."""
    from evalkit.atomic import file_lock

    lock = bench_home() / "work" / f"{key[:32]}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    return file_lock(lock, f"evalkit: another bench run of this suite and model (run key {key[:12]}) is "
                           "running; waiting for it")


def _run_suite_locked(suite, model_spec, key, prompts, gen, proto, detector, detector_warnings, judges, *,
                      out_dir, max_prompts, generator_options, shape_asked, backbone_paths, progress, on_clip,
                      executor) -> RunResult:
    import mlflow

    from benchmarks.bundle import build_bundle, write_signed_bundle
    from evalkit import tracking
    from generators.base import sample_seed

    experiment = schema.experiment_name(suite.name)
    existing = find_run(experiment, key)
    folder = Path(out_dir) / suite.name / f"{_slug(model_spec)}-{key[:8]}"
    if existing is not None and existing.data.tags.get(schema.TAG_COMPLETE) == "true":
        done, bundle_path, notes = _complete_run_folder(existing, suite, prompts, key, folder)
        return RunResult(existing.info.run_id, "complete", suite.name, model_spec, key, done, bundle_path,
                         metrics_of_run(existing), notes)
    warnings: list[str] = []
    paths = project_credentials(warnings)
    seeds = [sample_seed(suite.seed, p.index, k) for p in prompts for k in range(suite.samples_per_prompt)]
    tags = {schema.TAG_KIND: schema.KIND_BENCH, schema.TAG_SUITE: suite.name, schema.TAG_SUITE_HASH: suite.hash,
            schema.TAG_MODEL: model_spec, schema.TAG_ROLE: role_of(model_spec), schema.TAG_RUN_KEY: key,
            schema.TAG_COMPLETE: "false", "evalkit.bench.folder": str(folder.resolve())}
    opened: list[str] = []
    try:
        with tracking.start_run(experiment, run_name=f"{suite.name}:{model_spec}", tags=tags, seed=suite.seed,
                                params=_params(suite, model_spec, proto, seeds, max_prompts, shape_asked),
                                run_id=existing.info.run_id if existing is not None else None) as run:
            opened.append(run.info.run_id)
            store = _ClipStore(bench_home() / "work" / key[:32])
            protect = protector(paths) if model_spec.startswith("uvit:") else None
            records = _generate(suite, prompts, gen, store, protect=protect, progress=progress, on_clip=on_clip,
                                executor=executor,
                                make_generator=functools.partial(_generator, suite, model_spec, generator_options or {}))
            _assemble(records, store, folder)
            mlflow.log_params(tracking.flatten_params({"shape_made": made_shape(records)}))
            warnings += _format_mismatch(suite, records)
            reference = reference_folder(suite, prompts, progress)
            part_of = {r["id"]: r["part"] for r in records}
            scored = score_run(suite, folder, reference, part_of, progress=progress, backbone_paths=backbone_paths)
            warnings += detector_warnings
            checks = per_clip_checks(suite, records, folder, paths, detector, progress=progress)
            metrics = {**scored["metrics"], **safety_metrics(suite, checks)}
            if "cost" in suite.metrics:
                metrics.update(cost_metrics(records))
            warnings += scored["scores"].get("warnings", [])

            scores_by_id = {r["id"]: r for r in scored["per_clip"]}
            by_id = {r["id"]: r for r in records}
            rows = []
            for rec in records:
                row = {"id": rec["id"], "prompt": rec["prompt"], "prompt_id": rec["prompt_id"], "part": rec["part"],
                       "seed": rec["seed"], "sha256": rec["sha256"],
                       **{k: rec[k] for k in ("source_file", "source_sha256") if k in rec}}
                s = scores_by_id.get(rec["id"], {})
                row.update({k: s.get(k) for k in schema.PER_CLIP_KEYS if k not in row})
                row.update(checks[rec["id"]])
                rows.append(row)

            for name, m in sorted(metrics.items()):
                tracking.log_metric_ci(name, _nan(m["value"]), _nan(m["ci_low"]), _nan(m["ci_high"]), m["n"])
            backbones = {}
            for fam, name in (("fvd", "video"), ("clip", "clip")):
                bb = scored["scores"]["metrics"].get("fvd" if fam == "fvd" else "clip_alignment", {}) \
                    .get("protocol", {}).get("backbone")
                if bb:
                    backbones[name] = {"name": bb.get("backbone"), "weights_sha256": bb.get("weights_sha256")}
            if backbones:
                mlflow.log_params(tracking.flatten_params({"backbone": backbones}))
            tracking.log_json(rows, schema.ARTIFACT_PER_CLIP)
            feats = scored.get("features")
            if feats:  # each clip's with its prompt and seed: the leaderboard pairs two models' clips by them
                clips = []
                for s, f in zip(scored["per_clip"], feats["candidates"]):
                    rec = by_id.get(s["id"], {})
                    clips.append({"id": s["id"], "prompt": rec.get("prompt"), "seed": rec.get("seed"), "features": f})
                tracking.log_json({"backbone": feats["backbone"], "reference": feats["reference"],
                                   "reference_digest": folder_digest(reference), "clips": clips},
                                  schema.ARTIFACT_FEATURES, indent=None)
            tracking.log_json({**scored["scores"], "warnings": warnings}, schema.ARTIFACT_SCORES)
            tracking.log_image(_grid(records, folder), schema.ARTIFACT_GRID)
            bundle = build_bundle(suite, model_spec, role_of(model_spec), key, bundle_generation(proto, records),
                                  max_prompts, records, reference, metrics, backbones, run.info.run_id)
            bundle_path, sig_path = write_signed_bundle(bundle, folder, paths)
            tracking.log_artifact(bundle_path, "bundle")
            tracking.log_artifact(sig_path, "bundle")
            if warnings:
                mlflow.set_tag("evalkit.warnings", " | ".join(warnings)[:4900])
            mlflow.set_tag(schema.TAG_COMPLETE, "true")
            run_id = run.info.run_id
    except BaseException as e:
        # refused input (a prompt the model cannot make, a folder without its video): a new run
        # left FAILED in MLflow put "1 incomplete run(s) ignored" under every later leaderboard
        if opened:
            _settle_stopped_run(opened[0], existing is not None, e)
        raise
    return RunResult(run_id, "resumed" if existing is not None else "new", suite.name, model_spec, key,
                     folder, bundle_path, clean(metrics), warnings)
