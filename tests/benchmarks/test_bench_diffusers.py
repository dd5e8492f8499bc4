"""`bench run` of a diffusers model (tiny random pipelines built here, nothing downloaded): the
clip shape asked with --frames/--size/--fps (a value or `suite`), recorded in the run's params,
each clip's record and the signed bundle; the run key and clip store following it; a shape the
pipeline cannot make refused in one line before any run opens; the options refused for models
that take no shape."""

from __future__ import annotations

import json

import pytest

from evalkit.cli import main
from evalkit.clipset import read_index
from evalkit.errors import EXIT_BAD_INPUT, BadInputError
from evalkit.video import read_video

pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from tiny_diffusers import tiny_cogvideox, tiny_text_to_video_sd  # noqa: E402

SUITE = """\
name: tinyd
version: 1
video: {{frames: 4, size: {size}, fps: 8}}
samples_per_prompt: 1
seed: 3
reference: {{world_split: test, n: 2, seed: 1, prompt_samples: 0}}
metrics: [flicker, cost]
prompts:
  - {{id: fall, part: id, text: "a small red ball falls"}}
  - {{id: slide, part: ood, text: "a green square slides"}}
"""


@pytest.fixture(scope="module")
def t2v(tmp_path_factory):
    return tiny_text_to_video_sd(tmp_path_factory.mktemp("bench-t2v"))


def _suite(tmp_path, size=32):
    path = tmp_path / f"tinyd-{size}.yaml"
    path.write_text(SUITE.format(size=size))
    return path


def _bench(capsys, suite, model, *flags, out="out"):
    steps = ("--steps", "1") if model.startswith("diffusers:") else ()
    code = main(["bench", "run", "--suite", str(suite), "--model", model, *steps, "--out", out, *flags])
    got = capsys.readouterr()
    return code, got.out, got.err


def _run_of(out: str):
    from mlflow.tracking import MlflowClient

    run_id = out.split("MLflow run ")[1].split()[0]
    return MlflowClient().get_run(run_id)


def test_a_suite_shaped_run_records_what_it_asked_and_got_and_keys_its_clips_by_it(mlflow_store, t2v, tmp_path,
                                                                                   capsys):
    suite, model = _suite(tmp_path), f"diffusers:{t2v}"
    code, out, err = _bench(capsys, suite, model, "--size", "suite", "--frames", "suite")
    assert code == 0, err
    assert "not the suite's video format" not in err  # 4 frames of 32x32 at the model's published 8 fps
    run = _run_of(out)
    p = run.data.params
    assert (p["shape_asked.frames"], p["shape_asked.size"], p["shape_asked.fps"]) == ("4", "[32, 32]", "8.0")
    assert (p["shape_asked.from.frames"], p["shape_asked.from.size"], p["shape_asked.from.fps"]) == (
        "suite", "suite", "model")
    assert (p["shape_made.frames"], p["shape_made.size"], p["shape_made.fps"]) == ("4", "[32, 32]", "8")
    assert p["fps_from"].startswith("published for ModelScope text-to-video-ms-1.7b")
    folder = tmp_path / out.split("clips and bundle in ")[1].split()[0]
    recs = read_index(folder)
    assert [(r["frames"], r["size"], r["fps"]) for r in recs] == [(4, [32, 32], 8)] * 2
    assert all(type(r["fps"]) is int for r in recs)  # DESIGN.md's index format: a whole rate is an int
    assert not any(k.endswith("_requested") for r in recs for k in r)
    assert main(["bench", "verify", str(folder)]) == 0
    first = {r["id"]: r["sha256"] for r in recs}

    # the same shape asked again, by value or on another device spelling of the CPU: the same run
    for flags in (("--size", "suite", "--frames", "suite"), ("--size", "32", "--frames", "4", "--device", "cpu")):
        code, again, err = _bench(capsys, suite, model, *flags)
        assert code == 0 and "already complete" in again and _run_of(again).info.run_id == run.info.run_id, err
    # another size: another run key, so new clips of that size (the 32x32 ones are not reused)
    code, small, err = _bench(capsys, suite, model, "--size", "16", "--frames", "suite")
    assert code == 0 and "new run" in small, err
    assert "2 of 2 clips are not the suite's video format" in err  # 16x16 against the suite's 32
    other = _run_of(small)
    assert other.info.run_id != run.info.run_id and other.data.params["shape_asked.from.size"] == "option"
    assert other.data.tags["evalkit.run_key"] != run.data.tags["evalkit.run_key"]
    recs = read_index(tmp_path / small.split("clips and bundle in ")[1].split()[0])
    assert {tuple(r["size"]) for r in recs} == {(16, 16)} and not set(first.values()) & {r["sha256"] for r in recs}


def test_a_shape_the_pipeline_cannot_make_is_refused_before_any_run(mlflow_store, t2v, tmp_path, capsys):
    model = f"diffusers:{t2v}"
    for suite, flags, says in [
        (_suite(tmp_path), ("--size", "30"), "--size 30x30: TextToVideoSDPipeline makes frames whose height and width "
                                             "are multiples of 8"),
        (_suite(tmp_path, 20), ("--size", "suite"), "--size 20x20 (--size suite: the suite's video.size): "
                                                    "TextToVideoSDPipeline makes frames whose height and width are "
                                                    "multiples of 8 (its VAE's spatial factor 2; its own input "
                                                    "check: 8); give 16x16 or 24x24"),
        (_suite(tmp_path), ("--frames", "many"), "--frames many: give a whole number of frames, or 'suite'"),
        (_suite(tmp_path), ("--fps", "0"), "--fps 0: give a frame rate from 0.01 to 1000"),
        (_suite(tmp_path), ("--size", "3x"), "--size '3x': give S or HxW"),
    ]:
        code, _, err = _bench(capsys, suite, model, *flags)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, err
    from mlflow.tracking import MlflowClient

    assert MlflowClient().search_experiments(filter_string="name = 'evalkit-bench-tinyd'") == []
    assert not (tmp_path / "out").exists()


def test_shape_options_are_for_diffusers_models_only(mlflow_store, t2v, tmp_path, capsys):
    suite = _suite(tmp_path)
    (tmp_path / "vids").mkdir()
    for model, flags in (("world", ("--size", "suite")), ("control:frozen", ("--frames", "8")),
                         (f"folder:{tmp_path / 'vids'}", ("--fps", "suite")), ("world", ("--device", "cpu"))):
        code, _, err = _bench(capsys, suite, model, *flags)
        assert code == EXIT_BAD_INPUT and "only for" in err and err.count("\n") == 1, err
        assert (flags[0] + ": only for diffusers models") in err or flags[0] == "--device", err
    # beside a model that takes them: a warning for the one that does not (the diffusers model's
    # size is refused here, before any run, so nothing is made)
    code, _, err = _bench(capsys, suite, f"diffusers:{t2v}", "--model", "world", "--size", "30")
    assert code == EXIT_BAD_INPUT and "warning: --size do not apply to world" in err and "--size 30x30" in err, err
    from benchmarks.runner import run_suite
    from benchmarks.suite import load_suite

    with pytest.raises(BadInputError, match="only diffusers models take a clip shape"):
        run_suite(load_suite(suite), "world", out_dir=tmp_path / "api", generator_options={"frames": "suite"})


def test_a_pipeline_that_makes_more_frames_than_asked_gives_the_frames_asked(mlflow_store, tmp_path, capsys):
    """CogVideoX asked for 5 frames makes 8 (its latent frames padded; Wan asked 16 makes 17): the
    first 5 are kept, so the clips have the shape asked, and each record says the pipeline made 8
    (`frames_made`); the params and the signed bundle agree, and `bench verify` passes. Until
    session 36 the clips kept all 8, and a suite's clips of two models had different lengths."""
    cog = tiny_cogvideox(tmp_path)
    capsys.readouterr()
    suite, model = _suite(tmp_path), f"diffusers:{cog}"
    # its VAE (8) times its patch (2): 24 failed inside the transformer, though its own check takes it
    code, _, err = _bench(capsys, suite, model, "--size", "24", "--frames", "5")
    assert code == EXIT_BAD_INPUT and "multiples of 16 (its VAE's spatial factor 8 times its patch 2" in err, err
    code, out, err = _bench(capsys, suite, model, "--size", "16", "--frames", "5")
    assert code == 0, err
    folder = tmp_path / out.split("clips and bundle in ")[1].split()[0]
    recs = read_index(folder)
    assert {(r["frames"], r.get("frames_made"), "frames_requested" in r, tuple(r["size"])) for r in recs} == {
        (5, 8, False, (16, 16))}
    assert {read_video(folder / r["file"]).num_frames for r in recs} == {5}
    p = _run_of(out).data.params
    assert (p["shape_asked.frames"], p["shape_made.frames"]) == ("5", "5")
    bundle = json.loads((folder / "bundle.json").read_text())
    assert bundle["generation"]["frames"] == 5 and "frames_requested" not in bundle["generation"]
    assert main(["bench", "verify", str(folder)]) == 0, capsys.readouterr().out


def test_suite_values_resolve_to_the_suites_format_and_mixed_clips_are_stated_as_mixed(tmp_path):
    from benchmarks.clip_shape import bundle_generation, made_shape, resolve_shape, shape_params
    from benchmarks.suite import load_suite

    suite = load_suite(_suite(tmp_path))
    out, asked, origin = resolve_shape(suite, "diffusers:x", {"size": "suite", "fps": "Suite", "frames": 9, "steps": 1})
    assert out == {"size": (32, 32), "fps": 8.0, "frames": 9, "steps": 1,
                   "asked_as": {"size": "--size suite: the suite's video.size"}}
    assert origin == {"frames": "option", "size": "suite", "fps": "suite"}
    assert shape_params({"frames": 9}, asked, origin)["size"] == [32, 32]
    # the world renders in the suite's format whatever is asked of others; a U-ViT its own
    assert resolve_shape(suite, "world", {})[1:] == ({"frames": 4, "size": (32, 32), "fps": 8.0},
                                                     dict.fromkeys(("frames", "size", "fps"), "suite"))
    assert shape_params({}, *resolve_shape(suite, "uvit:small-gpu", {"steps": 2})[1:]) == {
        "frames": None, "size": None, "fps": None, "from": dict.fromkeys(("frames", "size", "fps"), "model")}
    # clips of two frame counts (one as asked): no one count claimed for the run, what was asked kept
    recs = [{"frames": 8, "size": [16, 16], "fps": 8.0, "frames_requested": 5},
            {"frames": 5, "size": [16, 16], "fps": 8.0}]
    proto = {"model": "diffusers:x", "frames": 5, "size": [16, 16], "fps": 8.0}
    assert made_shape(recs) == {"frames": [8, 5], "size": [16, 16], "fps": 8.0}
    assert bundle_generation(proto, recs) == {"model": "diffusers:x", "frames_requested": 5, "size": [16, 16],
                                              "fps": 8.0}
    assert bundle_generation(proto, recs[1:]) == proto
