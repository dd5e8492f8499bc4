"""Intervals that are not estimable (session 34: NaN bounds, null in JSON, method
"not-estimable(...)") downstream of `stats`: bench summaries and cost, bundles recomputed against
ones made under the older rules, the demo's table and the quality probe (`score`'s MLflow tags:
tests/reports/test_no_interval.py, whose store is made once)."""

from __future__ import annotations

import json
import math
import re
from types import SimpleNamespace

import numpy as np

from evalkit.metrics.stats import Estimate, not_estimable


def test_an_estimate_without_bounds_prints_no_nan():
    assert str(not_estimable(1382.0, 4, "all 4 values equal")) == "1382 (no CI) (n=4)"
    assert str(Estimate(0.5, None, None, 1)) == "0.5 (no CI) (n=1)"
    assert str(Estimate(0.5, 0.25, 0.75, 8)) == "0.5 [0.25, 0.75] (n=8)"


def test_bench_summary_and_cost_of_clips_timed_alike():
    """Clips that share one shard's time cost the same each: the mean has no interval (it read
    "0.5 [0.5, 0.5]"); the summary says "(no CI)" where a bound is null or NaN, never "nan"."""
    from benchmarks.run_scoring import cost_metrics
    from evalkit.commands.bench import _summary_table

    m = cost_metrics([{"gen_wall_s": 0.5, "gen_cpu_s": 1.0}] * 4)
    cpu, rate = m["cost.cpu_s_per_clip"], m["cost.clips_per_s"]
    assert cpu["value"] == 1.0 and cpu["n"] == 4 and math.isnan(cpu["ci_low"]) and math.isnan(cpu["ci_high"])
    assert rate["value"] == 2.0 and rate["ci_low"] is None and rate["ci_high"] is None
    metrics = {"fvd": {"value": 1382.0, "ci_low": math.nan, "ci_high": math.nan, "n": 4}, **m}
    text = _summary_table([SimpleNamespace(model="folder:copies", metrics=metrics)])
    assert not re.search(r"\bnan\b", text)
    assert next(x for x in text.splitlines() if x.startswith("fvd")).split() == ["fvd", "1382", "(no", "CI)", "n=4"]
    assert next(x for x in text.splitlines() if x.startswith("cost.clips_per_s")).split()[1:] == ["2", "(no", "CI)",
                                                                                                    "n=4"]


def test_no_interval_is_null_or_nan_alike():
    """A null and a NaN (another writer's JSON) are the same 'no interval' when a bundle is
    recomputed; neither equals a number."""
    from benchmarks.bundle import _same

    assert _same(None, math.nan) and _same(math.nan, math.nan) and not _same(None, 0.0) and not _same(math.nan, 1.0)


def test_demo_table_and_tags_carry_no_nan():
    from evalkit.demo import _scores_table

    fvd = {"value": 1382.0, "ci_low": math.nan, "ci_high": math.nan, "n": 4}
    assert _scores_table({"model": {"metrics": {"fvd": fvd}}}).splitlines()[1].split()[1:] == ["1382", "(no", "CI)",
                                                                                              "(n=4)"]


def test_quality_probe_differences_without_an_interval_are_null_in_strict_json():
    """The same clips on both sides (--against the same model and setting): every resampled FVD
    difference is 0, no interval rather than "0 [0, 0]"; a single pair's interval is null and its
    `ci_contains_zero` too (False read as a supported difference)."""
    from benchmarks.quality.uvit import fvd_difference
    from evalkit.metrics.generator_quality import paired_differences
    from evalkit.tracking import _jsonable

    rng = np.random.default_rng(0)
    ref, fa = rng.normal(size=(12, 4)), rng.normal(size=(6, 4)) + 1
    same = fvd_difference(ref, fa, fa.copy(), n_boot=20)
    assert same["value"] == 0.0 and math.isnan(same["ci_low"]) and same["ci_contains_zero"] is None
    assert same["method"].startswith("not-estimable(every resample equal")
    other = fvd_difference(ref, fa, fa + 0.5, n_boot=20)
    assert other["ci_low"] <= other["value"] <= other["ci_high"] and other["ci_contains_zero"] in (True, False)
    one = {"objects_present": [1.0], "object_frames": [0.8], "physics_pass": [1.0]}
    d = paired_differences(one, {**one, "object_frames": [0.2]}, n_boot=20)
    assert d["object_frames"]["n"] == 1 and d["object_frames"]["ci_contains_zero"] is None
    text = json.dumps(_jsonable({"fvd_minus_compare": same, "minus_compare": d}), allow_nan=False)
    assert json.loads(text)["fvd_minus_compare"]["ci_low"] is None

