"""The validity study (benchmarks/validity/metrics.py): corruptions, severity statistics, and the
quick study's sweeps on a handful of world clips."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from benchmarks.validity import metrics as V


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def clips():
    return V.world_clips(6, 0)


@pytest.mark.parametrize("name", ["flicker", "noise", "shuffle", "blur"])
def test_corruptions_deterministic_and_shape_preserving(clips, name):
    f = clips[0].frames
    for level in V.LEVELS[name]:
        a, b = V.CORRUPT[name](f, level, seed=3), V.CORRUPT[name](f, level, seed=3)
        assert a.shape == f.shape and a.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(V.CORRUPT[name](f, 0.0, seed=3), f)  # severity 0 is the clean clip
    assert not np.array_equal(V.CORRUPT[name](f, V.LEVELS[name][-1], seed=3), f)
    assert f is clips[0].frames and np.array_equal(f, clips[0].frames)  # input untouched


def test_shuffle_moves_exactly_the_fraction_and_keeps_frames():
    f = np.arange(16, dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2).repeat(3, 3)
    for frac in V.LEVELS["shuffle"]:
        out = V.shuffle_frames(f, frac, seed=1)
        order = out[:, 0, 0, 0]
        assert sorted(order.tolist()) == list(range(16))  # a permutation of the same frames
        assert int((order != np.arange(16)).sum()) == (int(round(frac * 16)) if frac * 16 >= 2 else 0)


def test_teleport_deterministic_and_moves_more_with_magnitude(clips):
    c = clips[1]
    a, b = V.teleport(c, 0.18, seed=2), V.teleport(c, 0.18, seed=2)
    assert a.frames.shape == c.frames.shape
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(V.teleport(c, 0.0).frames, c.frames)
    t = c.num_frames
    assert np.array_equal(a.frames[: t // 2], c.frames[: t // 2])  # the jump starts mid-clip
    assert not np.array_equal(a.frames[t // 2:], c.frames[t // 2:])


def test_severity_rho_signs_and_ci():
    rng = np.random.default_rng(0)
    scores = np.arange(5)[None] + rng.normal(0, 0.1, (10, 5))  # rises with severity
    up = V.severity_rho(scores, +1, n_boot=200)
    assert up.value == pytest.approx(1.0) and up.ci_low > 0.8 and up.n == 10
    assert V.severity_rho(scores, -1, n_boot=200).value == pytest.approx(-1.0)
    flat = V.severity_rho(np.ones((4, 5)), +1, n_boot=50)
    assert flat.value == 0.0  # all tied: no signal, not NaN
    with pytest.raises(ValueError):
        V.severity_rho(np.full((3, 5), np.nan), +1)


@pytest.mark.parametrize("metric,corr", [("flicker", "flicker"), ("warp_error", "noise"),
                                         ("warp_error", "shuffle"), ("temporal_hf", "flicker")])
def test_temporal_sweeps_monotone_on_world_clips(clips, metric, corr):
    levels = [V.LEVELS[corr][s] for s in (0, 2, 4)]
    scores = V.sweep_frames([c.frames for c in clips], metric, corr, levels)
    assert scores.shape == (len(clips), 3) and np.isfinite(scores).all()
    rho = V.severity_rho(scores, V.WORSE_SIGN[metric], n_boot=200)
    assert rho.value > 0.9, (metric, corr, scores.mean(0))


def test_physics_score_falls_with_teleport(clips):
    scores = V.sweep_physics(clips[:4], "teleport", [0.0, 0.25])
    assert (scores[:, 0] == 1.0).all() and scores[:, 1].mean() < 1.0


def test_fvd_orders_real_below_noise():
    a, b = V.world_clips(12, 0), V.world_clips(12, 12)
    fv = V.fvd_study(a, b, {"blur": [0.0, 3.0], "noise": [0.0, 64.0]}, n_boot=20)
    assert fv["ci"][("fvd", "real")].value < fv["ci"][("fvd", "noise")].value
    assert fv["values"][("fvd", "blur")][0] == pytest.approx(fv["values"][("fvd", "noise")][0])  # same baseline


def test_quick_study_end_to_end(tmp_path, mlflow_store, capsys):
    out = tmp_path / "table.md"
    assert V.main(["--quick", "--n", "4", "--no-real", "--out", str(out), "--mlflow"]) == 0
    text = capsys.readouterr().out
    summary = json.loads(text.strip().splitlines()[-1])
    assert summary["quick"] and summary["n"] == 4 and summary["rho_total"] == len(summary["rho"])
    table = out.read_text()
    assert "| flicker | flicker | world | 4 |" in table and "real < blurred < noise" in table
    import mlflow

    runs = mlflow.search_runs(experiment_names=["evalkit-validity"])
    assert len(runs) == 1 and "metrics.rho.flicker.flicker.world" in runs.columns
