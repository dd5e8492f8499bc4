"""Runs whose intervals are not estimable (session 34: NaN bounds where every resample is equal,
e.g. each set one clip repeated): the leaderboard does not call their differences supported and
says why a value stands without [CI], an audit's `ci` check fails with the reason instead of
passing or crashing, the HTML report prints no "nan", and `score`'s run tags each interval's method."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from conftest import SUITE, log_bench_run, logged_store
from evalkit.metrics.stats import Estimate, not_estimable

NO_CI = (math.nan, math.nan)


@pytest.fixture(scope="module")
def _copies_once(tmp_path_factory):
    """Two models of one clip repeated: FVD without an interval, physics constant per model (0.9
    against 0.4 on every clip). Logged once for the module (about a second a run)."""
    return logged_store(tmp_path_factory, "copies-store", lambda: {
        "uvit:a": log_bench_run("uvit:a", fvd=(1382.0, *NO_CI), physics=np.full(40, 0.9)),
        "uvit:b": log_bench_run("uvit:b", fvd=(1490.0, *NO_CI), physics=np.full(40, 0.4))})


@pytest.fixture
def copies_store(_copies_once, monkeypatch):
    import mlflow

    uri, tmp, ids = _copies_once
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("EVALKIT_HOME", str(tmp / "home"))
    monkeypatch.chdir(tmp)
    mlflow.set_tracking_uri(uri)
    yield ids
    mlflow.set_tracking_uri(None)


def test_no_interval_is_no_supported_difference_and_is_said(copies_store, monkeypatch):
    from reports import leaderboard as lb

    board = lb.leaderboard(SUITE)
    by = board.set_index("model")
    assert list(board["model"]) == ["uvit:a", "uvit:b"] and by.loc["uvit:b", "tie_with_above"]
    assert by.loc["uvit:b", "tie_test"] == "no CI to compare: difference not established"
    text = lb.format_leaderboard(board, "table")
    assert re.search(r"\nfvd, physics_score.*: a value without \[CI\] has no interval", text) and "nan" not in text
    assert re.search(r"uvit:a\s+model\s+1382\s", text)  # the value alone, no "[nan, nan]"
    # per-clip: bounded, the constant differences get the worst case their range allows and are
    # supported (0.5 on each of 40 pairs); with no range, the paired interval is not estimable and a
    # p of 0.0005 alone marked them supported ("0 <= nan" is False): now "~", and the reason
    on_physics = lb.leaderboard(SUITE, primary="physics_score").set_index("model")
    assert not on_physics.loc["uvit:b", "tie_with_above"] and "[" in on_physics.loc["uvit:b", "tie_test"]
    monkeypatch.delitem(lb.METRIC_BOUNDS, "physics_score")
    unbounded = lb.leaderboard(SUITE, primary="physics_score").set_index("model")
    assert unbounded.loc["uvit:b", "tie_with_above"]
    assert "no interval (not-estimable(all 40 paired differences equal))" in unbounded.loc["uvit:b", "tie_test"]


def test_an_audit_ci_check_without_an_interval_fails_with_the_reason(copies_store):
    from reports.audit import evaluate_policy, evidence_text, parse_policy

    pol = parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 5000}, "flicker": {"min": 0.9}}})
    res = evaluate_policy(pol, copies_store["uvit:a"])
    fvd, flicker = res.checks
    assert not fvd.passed and not res.passed and flicker.passed
    assert fvd.reason.startswith("no confidence interval (n=40: its values do not vary")
    assert "add `use: value`" in fvd.reason and fvd.ci_low is None and fvd.ci_high is None
    assert evidence_text(fvd) == "1382 (no CI) (n=40)"
    by_value = evaluate_policy(parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 5000, "use": "value"}}}),
                               copies_store["uvit:a"])
    assert by_value.passed  # asked for: the point value


def test_html_shows_no_nan_and_labels_bars_without_whiskers(copies_store, monkeypatch):
    from reports import html
    from reports.audit import evaluate_policy, parse_policy
    from reports.leaderboard import leaderboard

    figs = []
    real_fig = html._fig
    monkeypatch.setattr(html, "_fig", lambda fig, alt: (figs.append(fig), real_fig(fig, alt))[1])
    board = leaderboard(SUITE)
    page = html.suite_report(board)
    text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)
    assert not re.search(r"\bnan\b", text, re.I) and "a value without [CI] has no interval" in text
    labels = [t.get_text() for f in figs for ax in f.axes for t in ax.texts]
    assert "n=40, no CI" in labels and "n=40" in labels  # fvd has none; physics_pass_rate (Wilson) has one
    figs.clear()
    pol = parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 5000}}})
    page = html.audit_report(evaluate_policy(pol, copies_store["uvit:a"]))
    assert not re.search(r"\bnan\b", re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page), re.I)
    assert "1382 (no CI) (n=40)" in page and [t.get_text() for t in figs[0].axes[0].texts] == ["no CI"]


def test_score_tags_how_each_interval_was_made(copies_store):
    """NaN bounds in MLflow alone do not say whether n was 1 or the values did not vary."""
    from mlflow.tracking import MlflowClient

    from evalkit.metrics.score import _entry, _log_run

    result = {"metrics": {"fvd": _entry(not_estimable(1382.0, 4, "every resample equal"), {}),
                          "flicker": _entry(Estimate(0.99, 0.5, 0.9999, 4, "wilson-bounded"), {})},
              "per_clip": [{"id": "a", "flicker": 0.99}], "warnings": [], "skipped": []}
    run = MlflowClient().get_run(_log_run("copies", "ref", ("fvd", "flicker"), result))
    assert math.isnan(run.data.metrics["fvd_ci_low"]) and run.data.metrics["fvd"] == 1382.0
    assert run.data.tags["ci.fvd"] == "not-estimable(every resample equal)@0.95"
    assert run.data.tags["ci.flicker"] == "wilson-bounded@0.95"
