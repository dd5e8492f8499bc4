"""`bench run --executor ray`: a real local Ray instance makes the same clips and numbers as the
local executor, and a run killed under one executor resumes under the other."""

from __future__ import annotations

import json

import pytest

from benchmarks.executors import LocalExecutor, RayExecutor, Shard, get_executor
from benchmarks.runner import run_suite
from benchmarks.suite import load_suite
from evalkit.errors import BadInputError, MissingResourceError

from test_runner import TINY, Killed, _quality  # tests/benchmarks is on sys.path (rootdir-relative import)

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_pool():
    pool = RayExecutor(workers=2)
    yield pool
    pool.close()


@pytest.fixture
def tiny(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY)
    return load_suite(p)


def _use_store(monkeypatch, tmp_path, name):
    import mlflow

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / f"home-{name}"))
    uri = f"sqlite:///{tmp_path / f'{name}.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)


def _clip_hashes(res) -> list[str]:
    return [c["sha256"] for c in json.loads(res.bundle.read_text())["clips"]]


def test_ray_and_local_make_the_same_clips_and_numbers(ray_pool, tiny, tmp_path, monkeypatch):
    _use_store(monkeypatch, tmp_path, "local")
    local = run_suite(tiny, "world", out_dir=tmp_path / "a", progress=False)
    _use_store(monkeypatch, tmp_path, "ray")
    seen = []
    remote = run_suite(tiny, "world", out_dir=tmp_path / "b", progress=False, executor=ray_pool,
                       on_clip=lambda r: seen.append(r["id"]))
    assert remote.status == "new" and sorted(seen) == sorted(r["id"] for r in
                                                              json.loads(remote.bundle.read_text())["clips"])
    assert _clip_hashes(remote) == _clip_hashes(local)  # suite order, bit-identical clips
    assert _quality(remote.metrics) == _quality(local.metrics)
    # cost is timed where the clip was made, so it is there under both executors
    assert remote.metrics["cost.cpu_s_per_clip"]["n"] == local.metrics["cost.cpu_s_per_clip"]["n"] == 6


def test_a_run_killed_under_ray_resumes_under_local(ray_pool, tiny, tmp_path, monkeypatch):
    _use_store(monkeypatch, tmp_path, "kill")
    done = []

    def die_after_two(rec):
        done.append(rec["id"])
        if len(done) == 2:
            raise Killed

    with pytest.raises(Killed):
        run_suite(tiny, "control:frozen", out_dir=tmp_path / "o", progress=False, executor=ray_pool,
                  on_clip=die_after_two)
    more = []
    resumed = run_suite(tiny, "control:frozen", out_dir=tmp_path / "o", progress=False,
                        on_clip=lambda r: more.append(r["id"]))
    assert resumed.status == "resumed" and len(more) == 4 and not set(more) & set(done)
    _use_store(monkeypatch, tmp_path, "clean")
    clean = run_suite(tiny, "control:frozen", out_dir=tmp_path / "o2", progress=False)
    assert _clip_hashes(resumed) == _clip_hashes(clean)
    assert _quality(resumed.metrics) == _quality(clean.metrics)


def test_shards_come_back_from_every_worker_with_their_cost(ray_pool, tiny):
    from functools import partial

    from benchmarks.runner import _generator

    shards = [Shard(i, [p.text], [i]) for i, p in enumerate(tiny.prompts)]
    got = list(ray_pool.run(partial(_generator, tiny, "world", {}), shards))
    assert sorted(s.key for s, _, _ in got) == [0, 1, 2]
    for shard, clips, cost in got:
        assert len(clips) == 1 and clips[0].prompt == shard.texts[0] and clips[0].frames.shape == (16, 32, 32, 3)
        assert cost["gen_wall_s"] > 0 and cost["gen_cpu_s"] >= 0
    local = {s.key: c[0].frames for s, c, _ in LocalExecutor().run(partial(_generator, tiny, "world", {}), shards)}
    assert all((clips[0].frames == local[s.key]).all() for s, clips, _ in got)


def test_a_worker_error_reaches_the_caller_as_itself(ray_pool, tiny):
    from functools import partial

    from benchmarks.runner import _generator

    with pytest.raises(MissingResourceError, match="uvit:no-such"):
        list(ray_pool.run(partial(_generator, tiny, "uvit:no-such-preset", {}), [Shard(0, ["x"], [0])]))


def test_bad_executor_options_are_refused():
    with pytest.raises(BadInputError, match="--executor"):
        get_executor("slurm")
    with pytest.raises(BadInputError, match="--workers"):
        get_executor("ray", workers=0)
