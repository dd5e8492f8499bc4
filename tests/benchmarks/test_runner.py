"""bench run end to end on a tiny suite, with a real MLflow store and real keys: the schema's
tags, metrics and artifacts; reruns that return the same run; a killed run that resumes to the
numbers of an uninterrupted one; bundles that verify and that catch tampering."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from benchmarks import schema
from benchmarks.bundle import verify_bundle
from benchmarks.runner import run_suite
from benchmarks.suite import load_suite
from evalkit.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, BadInputError
from evalkit.cli import main

TINY = """\
name: tiny
version: 1
video: {frames: 16, size: 32, fps: 8}
samples_per_prompt: 2
seed: 3
reference: {world_split: test, n: 4, seed: 1, prompt_samples: 1}
prompts:
  - {id: fall, part: id, text: "a small red ball falls and bounces on the floor, on a dark background"}
  - {id: green, part: ood, text: "a medium green square slides and slows down, on a light background"}
  - {id: still, part: id, text: "a large blue square rests still, on a light background"}
"""


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return load_suite(p)


def _runs(experiment="evalkit-bench-tiny"):
    from evalkit.tracking import runs_frame

    return runs_frame(experiment)


def _artifacts(run_id: str) -> set[str]:
    from mlflow.tracking import MlflowClient

    c = MlflowClient()
    out, todo = set(), [None]
    while todo:
        for f in c.list_artifacts(run_id, todo.pop()):
            (todo.append(f.path) if f.is_dir else out.add(f.path))
    return out


def _quality(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not k.startswith("cost.")}  # timings differ by nature


def test_cost_columns_carry_intervals_over_clips():
    """Per-clip cost as each clip's shard measured it; the mean with a bootstrap CI over the clips,
    clips per second as the inverse of the mean wall time (its bounds swapped)."""
    from benchmarks.runner import cost_metrics

    recs = [{"gen_wall_s": w, "gen_cpu_s": 2 * w} for w in (0.1, 0.1, 0.3, 0.3)]
    m = cost_metrics(recs)
    cpu, rate = m["cost.cpu_s_per_clip"], m["cost.clips_per_s"]
    assert cpu["value"] == pytest.approx(0.4) and cpu["n"] == 4 and cpu["ci_low"] < 0.4 < cpu["ci_high"]
    assert rate["value"] == pytest.approx(5.0)
    assert rate["ci_low"] == pytest.approx(1 / (cpu["ci_high"] / 2)) and rate["ci_high"] == pytest.approx(
        1 / (cpu["ci_low"] / 2))
    assert "cost.gpu_s_per_clip" not in m and "cost.energy_j_per_clip" not in m  # no GPU: no columns
    one = cost_metrics([{"gen_wall_s": 0.2, "gen_cpu_s": 0.2}])["cost.cpu_s_per_clip"]
    assert one["value"] == pytest.approx(0.2) and one["ci_low"] is None and one["n"] == 1


def test_runs_log_the_schema_and_reruns_return_the_same_run(mlflow_store, tiny, tmp_path):
    from mlflow.tracking import MlflowClient

    world = run_suite(tiny, "world", out_dir=tmp_path / "out", progress=False)
    frozen = run_suite(tiny, "control:frozen", out_dir=tmp_path / "out", progress=False)
    assert world.status == frozen.status == "new"
    run = MlflowClient().get_run(world.run_id)
    t, m, p = run.data.tags, run.data.metrics, run.data.params
    assert t[schema.TAG_KIND] == schema.KIND_BENCH and t[schema.TAG_SUITE] == "tiny"
    assert t[schema.TAG_SUITE_HASH] == tiny.hash and t[schema.TAG_MODEL] == "world"
    assert t[schema.TAG_ROLE] == "ceiling" and t[schema.TAG_COMPLETE] == "true"
    assert MlflowClient().get_run(frozen.run_id).data.tags[schema.TAG_ROLE] == "control"
    for name in schema.SCORE_METRICS + schema.PHYSICS_PART_METRICS + ("cost.cpu_s_per_clip",):
        for suffix in ("", "_ci_low", "_ci_high", "_n"):
            assert name + suffix in m, name + suffix
    assert m["fvd_n"] == 6 and m["physics_score_ood_n"] == 2
    assert any(k.startswith("physics_law.") and k.endswith(".ood") for k in m)
    assert {"model", "weights_sha256", "sampler", "steps", "guidance", "guidance_convention", "n_clips",
            "samples_per_prompt", "seeds", "backbone.video.weights_sha256"} <= set(p)
    assert {schema.ARTIFACT_PER_CLIP, schema.ARTIFACT_SCORES, schema.ARTIFACT_GRID, schema.ARTIFACT_BUNDLE,
            schema.ARTIFACT_BUNDLE_SIG} <= _artifacts(world.run_id)
    rows = json.loads((world.folder / "bundle.json").read_text())["clips"]
    assert len(rows) == 6 and {r["part"] for r in rows} == {"id", "ood"}
    # the FVD features of each clip (keyed by prompt and seed, as the leaderboard pairs two models'
    # clips) and of the reference, one list of the backbone's width each
    from reports import _store

    feats = [_store.features(r.run_id) for r in (world, frozen)]
    assert all(f is not None for f in feats)
    assert [(c["prompt"], c["seed"]) for c in feats[0]["clips"]] == [(r["prompt"], r["seed"]) for r in rows]
    assert feats[0]["reference"] == feats[1]["reference"] and len(feats[0]["reference"]) >= 2
    width = {len(c["features"]) for f in feats for c in f["clips"]} | {len(x) for x in feats[0]["reference"]}
    assert len(width) == 1 and feats[0]["backbone"]["weights_sha256"] == p["backbone.video.weights_sha256"]
    # the ceiling obeys physics; a frozen copy of it does not
    assert world.metrics["physics_score"]["value"] > frozen.metrics["physics_score"]["value"]
    # no detector in this checkout (or one): either way the run says what it did
    assert ("detector_catch_rate" in world.metrics) != any("detector" in w for w in world.warnings)

    again = run_suite(tiny, "world", out_dir=tmp_path / "out", progress=False)
    assert again.status == "complete" and again.run_id == world.run_id
    assert _quality(again.metrics) == _quality(world.metrics)
    assert again.folder == world.folder and again.bundle == world.folder / "bundle.json"
    # another --out, or the first folder deleted: the complete run's clips and signed bundle are
    # made there from its clip store and MLflow (before: the result named the old folder, gone or not)
    from evalkit.provenance.credentials import default_paths

    moved = run_suite(tiny, "world", out_dir=tmp_path / "elsewhere", progress=False)
    assert moved.status == "complete" and moved.folder.is_relative_to(tmp_path / "elsewhere")
    assert verify_bundle(moved.bundle, clips=moved.folder, trust=default_paths().ca_cert)["ok"]
    assert (moved.folder / "bundle.json").read_bytes() == (world.folder / "bundle.json").read_bytes()
    shutil.rmtree(world.folder)
    back = run_suite(tiny, "world", out_dir=tmp_path / "out", progress=False)
    assert back.folder == world.folder and sorted(p.name for p in (back.folder / "clips").iterdir()) == sorted(
        p.name for p in (moved.folder / "clips").iterdir())
    assert len(_runs()) == 2 and not back.warnings


def test_bundle_verifies_and_catches_tampering(mlflow_store, tiny, tmp_path):
    from evalkit.provenance.credentials import default_paths

    res = run_suite(tiny, "control:frozen", out_dir=tmp_path / "out", progress=False)
    ca = default_paths().ca_cert
    ok = verify_bundle(res.bundle, clips=res.folder, trust=ca, recompute=True)
    assert ok["ok"] and ok["exit_code"] == 0, ok["problems"]
    assert ok["signature"]["trusted"] is True and ok["recompute"]["checked"] > 10
    assert not ok["recompute"]["mismatched"] and "note" not in ok["recompute"]
    # a bundle from before the content-ordered intervals: values and N recomputed, bounds not, said
    old_style = json.loads(res.bundle.read_text())
    # (the clips' decoding and CLIPScore's frames are checked below)
    old_style["scoring"] = {k: old_style["scoring"][k] for k in ("rgb", "clip_frames")}
    for m in ("fvd", "kvd"):
        if m in old_style["metrics"]:
            old_style["metrics"][m]["ci_low"] -= 1.0  # as drawn in listing order
    older = res.bundle.with_name("older.json")
    older.write_text(json.dumps(old_style))
    back = verify_bundle(older, clips=res.folder, recompute=True)
    assert not back["recompute"]["mismatched"] and "predates the set-level intervals" in back["recompute"]["note"]
    # a bundle says how its clips were decoded to RGB, and a recompute decodes them so: these were
    # scored with the exact colours, and swscale's fast path (every bundle before session 34) moves
    # the scores off them
    fast = {**old_style, "scoring": {"clip_frames": old_style["scoring"]["clip_frames"]}}
    older.write_text(json.dumps(fast))
    moved = verify_bundle(older, clips=res.folder, recompute=True)
    assert moved["recompute"]["mismatched"] and "decoded to RGB by swscale-default" in moved["recompute"]["note"]
    # a bundle before session 36 averaged CLIPScore over 8 of these 16 frames: recomputed so (these
    # numbers, over all 16, then differ in clip_alignment alone), and said
    eight = {**old_style, "scoring": {"rgb": old_style["scoring"]["rgb"]}}
    older.write_text(json.dumps(eight))
    by8 = verify_bundle(older, clips=res.folder, recompute=True)["recompute"]
    assert {m["metric"] for m in by8["mismatched"]} == {"clip_alignment"}
    assert "CLIPScore averaged 8 evenly spaced frames" in by8["note"]
    older.unlink()
    import shutil  # a video added to the run's folder is not vouched for by the bundle

    shutil.copy(res.folder / "clips" / "fall-00.mp4", res.folder / "clips" / "extra.mp4")
    added = verify_bundle(res.bundle, clips=res.folder)
    assert not added["ok"] and added["clips"]["extra"] == ["clips/extra.mp4"]
    (res.folder / "clips" / "extra.mp4").unlink()
    # a FIFO or a folder in a clip's place read as "missing" (session 34), and hashing a FIFO would
    # wait for a writer for ever: each is named for what it is, never opened
    import os

    kept = tmp_path / "kept"
    kept.mkdir()
    fifo, folder = res.folder / "clips" / "fall-00.mp4", res.folder / "clips" / "fall-01.mp4"
    for c in (fifo, folder):
        os.replace(c, kept / c.name)
    os.mkfifo(fifo)
    folder.mkdir()
    odd = verify_bundle(res.bundle, clips=res.folder)
    assert not odd["ok"] and odd["clips"]["missing"] == [] and odd["exit_code"] == EXIT_CHECK_FAILED
    assert odd["clips"]["not_regular"] == [{"id": "fall-00", "file": "clips/fall-00.mp4", "is": "a FIFO (named pipe)"},
                                           {"id": "fall-01", "file": "clips/fall-01.mp4", "is": "a folder"}]
    assert "2 clip(s) not a regular file (not read): fall-00 (clips/fall-00.mp4) is a FIFO (named pipe), " \
           "fall-01 (clips/fall-01.mp4) is a folder" in odd["problems"]
    fifo.unlink()
    folder.rmdir()
    for c in (fifo, folder):
        os.replace(kept / c.name, c)
    os.mkfifo(tmp_path / "fifo.json")  # given as the bundle itself: exit 2, not "no such bundle"
    assert main(["bench", "verify", str(tmp_path / "fifo.json")]) == EXIT_BAD_INPUT
    # the folder's index is what score and folder: read: a forged prompt or seed there is named
    # (it passed as "6/6 match", and --recompute blamed the order, session 33)
    index = res.folder / "index.jsonl"
    before = index.read_text()
    lines = [json.loads(x) for x in before.splitlines()]
    lines[1]["prompt"], lines[1]["seed"] = "a blue cube slides", lines[1]["seed"] + 1
    index.write_text("".join(json.dumps(x) + "\n" for x in lines))
    forged_index = verify_bundle(res.bundle, clips=res.folder, recompute=True)
    assert not forged_index["ok"] and forged_index["recompute"] is None
    assert forged_index["clips"]["index"] == [f"index.jsonl line 2 ({lines[1]['id']}): prompt/seed differ from the bundle"]
    lines = [json.loads(x) for x in before.splitlines()]  # the probe score reads, and the generation settings
    lines[0]["probe"], lines[0]["sampler"] = {"kind": "static"}, "ddpm"
    index.write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert verify_bundle(res.bundle, clips=res.folder)["clips"]["index"] == [
        f"index.jsonl line 1 ({lines[0]['id']}): probe/sampler differ from the bundle"]
    index.unlink()  # a run folder whose index was deleted is still checked (it read OK, session 33)
    assert main(["bench", "verify", str(res.folder)]) == EXIT_CHECK_FAILED
    os.mkfifo(index)  # never read: it would block
    assert verify_bundle(res.bundle, clips=res.folder)["clips"]["index"] == [
        f"{res.folder}/index.jsonl is not a regular file: a FIFO (named pipe)"]
    index.unlink()
    index.write_text(before)

    clip = res.folder / "clips" / "fall-00.mp4"
    data = bytearray(clip.read_bytes())
    data[-100] ^= 0xFF
    clip.unlink()  # a hard link into the run's store: replace, never write through it
    clip.write_bytes(bytes(data))
    bad = verify_bundle(res.bundle, clips=res.folder)
    assert not bad["ok"] and bad["exit_code"] == EXIT_CHECK_FAILED and bad["clips"]["mismatched"] == ["fall-00"]

    b = json.loads(res.bundle.read_text())
    b["metrics"]["physics_score"]["value"] = 1.0
    res.bundle.write_text(json.dumps(b))
    forged = verify_bundle(res.bundle)
    assert not forged["ok"] and forged["exit_code"] == EXIT_CHECK_FAILED
    assert any("signature does not match" in p for p in forged["problems"])

    # A hostile bundle: a clip named outside the run's folder is not read, and a malformed
    # structure is a one-line refusal naming the field, never a traceback
    secret = tmp_path / "secret.txt"
    secret.write_text("not a clip")
    for name in ("../../secret.txt", str(secret)):
        b["clips"][0]["file"] = name
        res.bundle.write_text(json.dumps(b))
        out = verify_bundle(res.bundle, clips=res.folder, recompute=True)
        assert not out["ok"] and out["clips"]["outside"] == [b["clips"][0]["id"]] and out["recompute"] is None
    for field, value, says in (("clips", "nope", "clips must be a list"), ("suite", {"name": 1}, "suite.name"),
                               ("clips", [{"id": 3}], "clips[0] must be an object")):
        res.bundle.write_text(json.dumps({**b, field: value}))
        with pytest.raises(BadInputError, match=re.escape(says)):
            verify_bundle(res.bundle, clips=res.folder)


def test_a_bundle_re_signed_by_anyone_else_or_crafted_to_break_the_reader_fails(mlflow_store, tiny, tmp_path,
                                                                                 monkeypatch):
    """Found in session 29: a bundle with its numbers changed and signed again with other keys
    (`keys init` elsewhere: the same default signer name) read "valid ... OK", exit 0, without
    --trust; a key given twice, NaN or deep nesting were internal errors; a model name with a
    newline printed a line "OK" of its own."""
    from benchmarks.bundle import SIG_FILE, canonical_json, sign_bytes
    from evalkit.provenance.credentials import default_paths, init_keys

    res = run_suite(tiny, "control:noise", out_dir=tmp_path / "out", progress=False)
    assert verify_bundle(res.bundle)["ok"]  # this machine's project CA is the default anchor
    other = init_keys(tmp_path / "other")
    b = json.loads(res.bundle.read_text())
    b["metrics"]["fvd"]["value"] = 1.0
    b["model"] = "control:noise\n  OK"
    res.bundle.write_text(json.dumps(b))
    sig = sign_bytes(canonical_json(b), default_paths(other.dir))
    res.bundle.with_name(SIG_FILE).write_text(json.dumps(sig))
    forged = verify_bundle(res.bundle)
    assert forged["signature"]["valid"] and not forged["ok"]  # intact, but not the project's
    assert any("does not chain to the trust anchor" in p for p in forged["problems"])
    assert main(["bench", "verify", str(res.bundle)]) == EXIT_CHECK_FAILED
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "elsewhere"))  # a machine without the CA
    alone = verify_bundle(res.bundle)
    assert not alone["ok"] and any(p.startswith("no trust anchor") for p in alone["problems"])
    assert verify_bundle(res.bundle, trust=other.ca_cert)["ok"]  # anchored in the other CA: its bundle
    text = res.bundle.read_text()
    for hostile, says in ((text.replace('"format"', '"model": "x", "format"', 1), "'model' is given twice"),
                          (text.replace('"value": 1.0', '"value": NaN', 1), "NaN is not a JSON number"),
                          ("[" * 100000 + "]" * 100000, "nested too deep"),
                          (text[: len(text) // 2], "damaged or cut short")):
        res.bundle.write_text(hostile)
        with pytest.raises(BadInputError, match=re.escape(says)):
            verify_bundle(res.bundle)
    res.bundle.write_text(json.dumps({**b, "max_prompts": "abc"}))
    with pytest.raises(BadInputError, match="max_prompts must be null or a positive whole number"):
        verify_bundle(res.bundle)


class Killed(Exception):
    pass


def test_killed_run_resumes_into_the_same_run_with_the_same_numbers(mlflow_store, tiny, tmp_path, monkeypatch):
    import mlflow

    done = []

    def die_after_three(rec):
        done.append(rec["id"])
        if len(done) == 3:
            raise Killed

    with pytest.raises(Killed):
        run_suite(tiny, "control:frozen", out_dir=tmp_path / "out", progress=False, on_clip=die_after_three)
    runs = _runs()
    assert len(runs) == 1 and runs[f"tags.{schema.TAG_COMPLETE}"].iloc[0] == "false"

    regenerated = []
    resumed = run_suite(tiny, "control:frozen", out_dir=tmp_path / "out", progress=False,
                        on_clip=lambda r: regenerated.append(r["id"]))
    assert resumed.status == "resumed" and resumed.run_id == runs["run_id"].iloc[0]
    assert len(regenerated) == 3 and not set(regenerated) & set(done)  # finished clips kept
    runs = _runs()
    assert len(runs) == 1 and runs[f"tags.{schema.TAG_COMPLETE}"].iloc[0] == "true"

    # The same run from scratch, in a fresh home and store, without interruption.
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home2"))
    uri = f"sqlite:///{tmp_path / 'other.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    clean = run_suite(tiny, "control:frozen", out_dir=tmp_path / "out2", progress=False)
    assert clean.status == "new"
    assert _quality(clean.metrics) == _quality(resumed.metrics)
    a = json.loads(resumed.bundle.read_text())["clips"]
    b = json.loads(clean.bundle.read_text())["clips"]
    assert [c["sha256"] for c in a] == [c["sha256"] for c in b]  # bit-identical clips


def test_builtin_model_outputs_are_signed_and_watermarked(mlflow_store, tiny, tmp_path):
    res = run_suite(tiny, "uvit:small-stage1", out_dir=tmp_path / "out", max_prompts=1,
                    generator_options={"steps": 2}, progress=False)
    assert res.metrics["provenance_valid_rate"]["value"] == 1.0
    assert res.metrics["provenance_valid_rate"]["n"] == 2
    assert res.metrics["watermark_survival_crf30"]["n"] == 2
    assert any("created a development CA" in w for w in res.warnings)
    from mlflow.tracking import MlflowClient

    p = MlflowClient().get_run(res.run_id).data.params
    assert p["steps"] == "2" and p["max_prompts"] == "1" and len(p["weights_sha256"]) == 64
    index = [json.loads(line) for line in (res.folder / "index.jsonl").read_text().splitlines()]
    assert all(r["signed"] and r["watermark_payload"] for r in index)
    assert verify_bundle(res.bundle, clips=res.folder, recompute=True)["ok"]
    # the mark moves the pixels that are scored: the key's fingerprint is part of the protocol, so
    # another home's key is another run, not other numbers under one run key (session 33)
    from evalkit.provenance.credentials import default_paths
    from evalkit.provenance.watermark import make_key

    fp = make_key(default_paths().watermark_key.read_text().strip()).fingerprint
    assert p["watermark_key"] == fp and json.loads(res.bundle.read_text())["generation"]["watermark_key"] == fp
    default_paths().watermark_key.write_text("ab" * 32 + "\n")
    other = run_suite(tiny, "uvit:small-stage1", out_dir=tmp_path / "out", max_prompts=1,
                      generator_options={"steps": 2}, progress=False)
    assert other.status == "new" and other.run_key != res.run_key


def test_a_folder_models_key_changes_when_a_video_is_replaced(tmp_path):
    """The key hashed index.jsonl alone (or the top level's names and sizes), so videos replaced
    under the same names returned the earlier run's numbers ("already complete")."""
    import os

    from benchmarks.runner import _model_fingerprint
    from evalkit.video import write_video
    from evalkit.world import make_clip

    d = tmp_path / "outs"
    (d / "clips").mkdir(parents=True)
    clip = write_video(d / "clips" / "a_red_ball_falls-0.mp4", make_clip("test", 0))
    before = _model_fingerprint(f"folder:{d}")
    assert before == _model_fingerprint(f"folder:{d}")  # stable
    write_video(clip, make_clip("test", 1))
    st = clip.stat()
    os.utime(clip, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a copy over it, a second later
    assert _model_fingerprint(f"folder:{d}") != before


def test_clips_outside_the_suites_format_are_named(tiny):
    from benchmarks.runner import _format_mismatch

    v = tiny.video
    ok = {"id": "a", "frames": v["frames"], "fps": v["fps"], "size": [v["size"], v["size"]]}
    assert _format_mismatch(tiny, [ok]) == []
    (w,) = _format_mismatch(tiny, [ok, {**ok, "id": "b", "frames": 40, "size": [64, 64], "fps": 24.0}])
    assert w.startswith("1 of 2 clips are not the suite's video format") and "b: 40 frames of 64x64 at 24 fps" in w


def test_a_refused_run_leaves_no_failed_mlflow_run(mlflow_store, tmp_path):
    """A prompt the world cannot draw stopped the run with one line, but left a FAILED MLflow run
    that every later leaderboard noted as "1 incomplete run(s) ignored" (session 30)."""
    p = tmp_path / "odd.yaml"
    p.write_text(TINY.replace("name: tiny", "name: odd").replace(
        "a large blue square rests still, on a light background", "a purple elephant dances"))
    with pytest.raises(BadInputError, match="not a world prompt"):
        run_suite(load_suite(p), "world", out_dir=tmp_path / "out", progress=False)
    assert _runs("evalkit-bench-odd").empty


def test_a_folder_model_is_one_model_however_its_path_is_typed(mlflow_store, tiny, tmp_path, monkeypatch):
    """`folder:outs`, `folder:./outs/` and the absolute path were three bench runs and three
    leaderboard rows of one folder, and `folder:outs` typed in two places one row (session 32)."""
    from generators.base import generate_folder, get_generator, load_prompts

    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.txt").write_text("\n".join(p.text for p in tiny.prompts) + "\n")
    prompts = load_prompts(str(tmp_path / "prompts.txt"))
    generate_folder(get_generator("world"), prompts, tmp_path / "outs", n_per_prompt=tiny.samples_per_prompt,
                    progress=False)
    first = run_suite(tiny, "folder:outs", out_dir=tmp_path / "b", progress=False)
    assert first.model == f"folder:{(tmp_path / 'outs').resolve()}"
    again = run_suite(tiny, "folder:./outs/", out_dir=tmp_path / "b", progress=False)
    same = run_suite(tiny, f"folder:{tmp_path / 'outs'}", out_dir=tmp_path / "b", progress=False)
    assert again.status == same.status == "complete" and again.run_id == same.run_id == first.run_id


def test_recomputed_numbers_are_compared_to_a_relative_tolerance():
    """FVD recomputed with 2 BLAS threads instead of 1 moved by 1e-8 of its value, and an honest
    bundle read as tampered (session 33); a real change still fails, and N is exact."""
    from benchmarks.bundle import RECOMPUTE_REL_TOL, _same

    assert _same(1060.4437192282408, 1060.4437284470905, RECOMPUTE_REL_TOL)
    assert not _same(1060.44, 1061.44, RECOMPUTE_REL_TOL) and not _same(0.5, 0.5002, RECOMPUTE_REL_TOL)
    assert not _same(1060.4437192282408, 1060.4437284470905)  # exact where no tolerance is given (N)
    # a KVD near 0 moves by 1e-5 in absolute terms between thread counts: an absolute floor of 1e-4
    assert _same(-0.3387866791204033, -0.338783569503903, RECOMPUTE_REL_TOL)
    assert _same(4e-6, -3.5e-5, RECOMPUTE_REL_TOL) and not _same(0.0, 3e-4, RECOMPUTE_REL_TOL)
    assert _same(None, None) and not _same(1.0, None) and not _same(float("nan"), 1.0, RECOMPUTE_REL_TOL)



def test_an_out_folder_that_cannot_be_written_is_refused_before_any_run_or_clip(mlflow_store, tmp_path):
    """`bench run --out` of a read-only folder made every clip, then failed writing the run's folder
    and left a FAILED MLflow run (session 34): refused first now, in one line naming the folder."""
    import os
    import subprocess
    import sys

    from benchmarks.run_cache import bench_home

    suite_file = tmp_path / "tiny.yaml"
    suite_file.write_text(TINY)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "tiny").write_text("x")  # where OUT/SUITE goes
    refused = {tmp_path / "afile" / "sub": "afile is a file", tmp_path / "taken": "taken/tiny is a file",
               tmp_path / ("n" * 300): "File name too long"}
    for out, says in refused.items():
        with pytest.raises(BadInputError, match=re.escape(says)):
            run_suite(load_suite(suite_file), "control:frozen", out_dir=out, max_prompts=1, progress=False)
    # a folder without write permission, for root too (its power to write anywhere set aside)
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    prefix = []
    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only folder is writable to root")
        prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
    r = subprocess.run([*prefix, sys.executable, "-m", "evalkit.cli", "bench", "run", "--suite", str(suite_file),
                        "--model", "control:frozen", "--out", str(ro / "sub")],
                       capture_output=True, text=True, env=os.environ, timeout=120)
    assert r.returncode == EXIT_BAD_INPUT and r.stderr.count("\n") == 1, r.stderr
    assert f"evalkit: error: {ro / 'sub'}: cannot write the run's clips and bundle there (Permission denied)" \
        in r.stderr
    assert _runs().empty and not list(bench_home().glob("work/*/clips/*.mp4"))  # no run, no clip made


def test_a_new_run_stopped_by_a_path_error_is_deleted_and_a_crash_is_marked(mlflow_store, tiny, tmp_path):
    """After the run opened, a path the OS refuses (here: its folder replaced by a file midway)
    left a FAILED run that read as a result; it is deleted, and the clips it made stay in the clip
    store for the next run. A crash's run stays, to be resumed, marked as no result in MLflow."""
    from mlflow.tracking import MlflowClient

    from benchmarks.run_cache import bench_home

    def block_the_folder(rec):
        (tmp_path / "out").mkdir(exist_ok=True)
        (tmp_path / "out" / "tiny").write_text("in the way")

    with pytest.raises(NotADirectoryError):
        run_suite(tiny, "control:frozen", out_dir=tmp_path / "out", max_prompts=1, progress=False,
                  on_clip=block_the_folder)
    assert _runs().empty and len(list(bench_home().glob("work/*/clips/*.mp4"))) == tiny.samples_per_prompt

    def crash(rec):
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run_suite(tiny, "world", out_dir=tmp_path / "out2", max_prompts=1, progress=False, on_clip=crash)
    runs = _runs()
    assert len(runs) == 1 and runs["status"].iloc[0] == "FAILED"
    tags = MlflowClient().get_run(runs["run_id"].iloc[0]).data.tags
    assert tags["evalkit.bench.stopped"] == "RuntimeError: a bug" and tags[schema.TAG_COMPLETE] == "false"
    assert tags["mlflow.note.content"].startswith("Incomplete bench run, not a result (stopped: RuntimeError")
