"""The generator-quality probe (issue 3's measures) separates the world from a noise control, is
comparable across calls, and logs a learning curve from inside a real training run."""

from __future__ import annotations

import pytest

from evalkit.metrics.generator_quality import QualityProbe, training_quality_hook, world_test_prompts
from generators.base import get_generator


@pytest.fixture(scope="module")
def probe():
    return QualityProbe(n_prompts=6, per_prompt=1, seed=0)


def test_world_is_the_ceiling_and_noise_the_floor(probe):
    world = probe.evaluate(get_generator("world").generate)
    noise = probe.evaluate(get_generator("control:noise").generate)
    assert world["quality"]["objects_present"]["value"] == 1.0
    assert world["quality"]["physics_pass"]["value"] == 1.0
    assert noise["quality"]["objects_present"]["value"] == 0.0
    assert world["quality"]["object_frames"]["value"] == 1.0 and noise["quality"]["object_frames"]["value"] < 0.1
    assert noise["fvd"]["value"] > 2 * world["fvd"]["value"]  # N = 6: FVD's small-sample bias is large
    assert world["quality"]["objects_present"]["n"] == 6 and probe.protocol()["n"] == 6
    flat = QualityProbe.flat_metrics(noise)
    assert flat["quality/objects_present"] == 0.0 and flat["quality/fvd"] == noise["fvd"]["value"]
    assert flat["quality/outcome_found"] < 0.1 and flat["quality/outcome_not_compact"] >= 0.0
    assert all(QualityProbe.flat_metrics(world)[f"quality/objects_present_{k}"] == 1.0
               for k in world["breakdown"]["objects_present_by_kind"])


def test_same_probe_same_numbers_and_prompts_are_world_test_prompts(probe):
    a = probe.evaluate(get_generator("world").generate)["fvd"]["value"]
    b = probe.evaluate(get_generator("world").generate)["fvd"]["value"]
    assert a == b
    assert probe.prompts == world_test_prompts(6, 0)
    # shown with progress, the probe samples in chunks: the same clips as one call
    for spec in ("world", "control:noise"):
        gen = get_generator(spec)
        whole, chunked = probe.sample(gen.generate), probe.sample(gen.generate, desc=spec, chunk=4)
        assert len(chunked) == 6 and all((x.frames == y.frames).all() for x, y in zip(whole, chunked))


def test_training_hook_logs_a_learning_curve(mlflow_store, tmp_path, probe):
    from mlflow.tracking import MlflowClient

    from generators.uvit.train import TrainConfig, train

    tc = TrainConfig(preset="tiny", batch_size=2, max_steps=2, warmup_steps=1, sample_every_steps=10**9,
                     checkpoint_every_minutes=10**6)
    calls = []
    hook = training_quality_hook(10**6, probe, steps=2)
    state = train(tc, tmp_path / "q.pt", progress=False,
                  on_checkpoint=lambda s, o, **kw: calls.append(kw) or hook(s, o, **kw))
    assert calls == [{"final": True}]
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs([client.get_experiment_by_name("evalkit-generator-train").experiment_id])
    assert [m.step for m in client.get_metric_history(run.info.run_id, "quality/fvd")] == [2]
    assert 0.0 <= run.data.metrics["quality/objects_present"] <= 1.0
    # within its period (training time) the hook returns nothing, except at the end of a run
    assert hook(state, tmp_path / "q.pt") == {}
    assert "quality/fvd" in hook(state, tmp_path / "q.pt", final=True)


def test_fall_probe_has_fall_prompts_only_and_separates_world_from_noise():
    from evalkit.metrics.generator_quality import fall_probe
    from evalkit.world.captions import parse_caption

    prompts = world_test_prompts(8, kind="fall")
    assert len(prompts) == 8 and all(parse_caption(p)["kind"] == "fall" for p in prompts)
    assert prompts == world_test_prompts(8, kind="fall")
    world = fall_probe(get_generator("world").generate, 8)
    noise = fall_probe(get_generator("control:noise").generate, 8)
    assert world["n"] == 8 and world["falls_move_down"]["n"] == 8
    assert world["falls_move_down"]["value"] == 1.0 and world["objects_present"]["value"] == 1.0
    assert noise["objects_present"]["value"] == 0.0 and noise["falls_move_down"]["value"] < 0.5
    with pytest.raises(ValueError, match="no world test scenes"):
        world_test_prompts(1, kind="levitate")


def test_paired_differences_of_clip_measures(probe):
    from evalkit.metrics.generator_quality import clip_measures, paired_differences

    world = probe.evaluate(get_generator("world").generate)
    noise = clip_measures(get_generator("control:noise").generate(probe.prompts, probe.seeds))
    assert set(world["measures"]) == {"objects_present", "object_frames", "falls_move_down", "physics_pass",
                                      "outcomes", "kind", "found_by_frame"}
    assert all(len(v) == 6 for v in noise.values())
    d = paired_differences(world["measures"], noise)
    assert d["objects_present"]["value"] == 1.0 and not d["objects_present"]["ci_contains_zero"]
    # six clips, every difference the same: the bounded worst case, not a point (session 32)
    assert 0.2 < d["object_frames"]["ci_low"] < 1.0 and d["physics_pass"]["n"] == 6
    same = paired_differences(noise, noise)
    assert all(v["value"] == 0.0 and v["ci_contains_zero"] for v in same.values())


def test_failure_breakdown_says_where_objects_go_missing(probe):
    from evalkit.metrics.generator_quality import OUTCOMES, clip_measures, failure_breakdown
    from evalkit.world.captions import parse_caption

    world = probe.evaluate(get_generator("world").generate)["breakdown"]
    kinds = {parse_caption(p)["kind"] for p in probe.prompts}
    assert set(world["objects_present_by_kind"]) == kinds
    assert all(v["value"] == 1.0 for v in world["objects_present_by_kind"].values())
    assert world["object_frame_outcomes"]["found"] == 1.0 and world["object_frames"] >= 6 * 16
    curves = world["found_by_frame_by_kind"]
    assert set(curves) == kinds and all(len(c) == 16 and min(c) == 1.0 for c in curves.values())
    noise = failure_breakdown(clip_measures(get_generator("control:noise").generate(probe.prompts, probe.seeds)))
    shares = noise["object_frame_outcomes"]
    assert set(shares) == set(OUTCOMES) and abs(sum(shares.values()) - 1.0) < 1e-9
    assert shares["found"] < 0.1 and shares["absent"] + shares["scattered"] > 0.5
    assert noise["object_frames"] == world["object_frames"]
    assert all(max(c) < 0.5 for c in noise["found_by_frame_by_kind"].values())
