"""benchmarks/validity/interval_coverage.py: one JSON line a setting, before and after."""

from __future__ import annotations

import json

import pytest

from benchmarks.validity.interval_coverage import main


def test_one_line_a_setting_and_the_skewed_mean_is_held_more_often(capsys):
    assert main(["--reps", "300", "--n-boot", "200", "--ns", "4,8", "--dists", "beta-0.3-3,5%-failures"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["dist"], r["n"]) for r in rows] == [("beta-0.3-3", 4), ("beta-0.3-3", 8),
                                                   ("5%-failures", 4), ("5%-failures", 8)]
    for r in rows:
        assert r["coverage"] > r["coverage_before"] + 0.05 and r["mean_width"] > r["mean_width_before"]
    # a set without a failure cannot show one: the share that has one is listed beside coverage
    assert all(0 < r["share_with_a_failure"] < 0.5 for r in rows[2:])


def test_bad_arguments_are_one_line_errors(capsys):
    for argv in (["--ns", "four"], ["--dists", "cauchy"], ["--ns", "1"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "error:" in capsys.readouterr().err
