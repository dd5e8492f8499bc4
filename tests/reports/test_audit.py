"""Audit policies: strict parsing that names the bad key, conservative pass/fail with evidence,
MLflow logging, and the CLI's exit codes (0 only when every check passes)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_MISSING, BadInputError, MissingResourceError
from reports.audit import evaluate_policy, load_policy, log_audit, parse_policy, render_markdown

GOOD = """\
name: gate
suite: t-suite
checks:
  fvd: {max: 150}
  physics_score: {min: 0.6}
  provenance_valid_rate: {min: 1.0, use: value}
  watermark_survival_crf30: {min: 0.8}
  detector_catch_rate: {min: 0.7, min_n: 20}
  cost.cpu_s_per_clip: {max: 1.0}
  physics_law.constant_downward_acceleration.ood: {min: 0.5}
"""


def write(tmp_path, text, name="policy.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("text,message", [
    ("suite: s\nchecks:\n  fvd: {max: abc}\n", "checks.fvd.max: expected a number, got 'abc'"),
    ("suite: s\nchecks:\n  fvd: {max: yes}\n", "checks.fvd.max: expected a number, got True"),
    ("suite: s\nchecks:\n  fvd: {max: .nan}\n", "checks.fvd.max: expected a number"),
    ("suite: s\nsuit: x\nchecks:\n  fvd: {max: 1}\n", "suit: unknown key"),
    ("suite: s\nchecks:\n  fvdd: {max: 1}\n", "checks.fvdd: unknown check"),
    ("suite: s\nchecks:\n  fvd: {maximum: 1}\n", "checks.fvd.maximum: unknown key"),
    ("suite: s\nchecks:\n  fvd: {}\n", "checks.fvd: give a threshold"),
    ("suite: s\nchecks:\n  fvd: 300\n", "checks.fvd: expected a mapping"),
    ("suite: s\nchecks:\n  fvd: {min: 5, max: 1}\n", "checks.fvd: min 5 is above max 1"),
    ("suite: s\nchecks:\n  fvd: {max: 1, use: mean}\n", "checks.fvd.use: expected 'ci' or 'value'"),
    ("suite: s\nchecks:\n  fvd: {max: 1, min_n: 0}\n", "checks.fvd.min_n: expected a positive integer"),
    ("suite: s\nchecks:\n  provenance_valid_rate: {min: 1.0}\n",
     "checks.provenance_valid_rate.min: a rate's"),
    ("checks:\n  fvd: {max: 1}\n", "suite: missing"),
    ("suite: s\nchecks: {}\n", "checks: expected a non-empty mapping"),
    ("suite: s\nchecks:\n  fvd: {max: [1\n", "not valid YAML"),
    ("- just\n- a list\n", "expected a mapping"),
    ("", "is empty"),
    # a key given twice: safe_load kept the last silently
    ("suite: s\nchecks:\n  fvd: {max: 2000}\n  fvd: {min: 5000}\n", "'fvd' is given twice"),
    # thresholds outside the metric's range: a mistake of scale, never or always passing
    ("suite: s\nchecks:\n  clip_alignment: {min: 250}\n", "250 can never pass: clip_alignment lies in [0, 100]"),
    ("suite: s\nchecks:\n  clip_alignment: {min: -10}\n", "-10 always passes"),
    ("suite: s\nchecks:\n  fvd: {max: -5}\n", "-5 can never pass: fvd lies in [0, inf]"),
    ("suite: s\nchecks:\n  detector_catch_rate: {min: 5, use: value}\n", "5 can never pass"),
    ("suite: s\nchecks:\n  physics_ood_gap: {max: 2}\n", "2 always passes"),
    # session 32's red team: a 400-digit threshold, a misspelt law, an alias bomb
    ("suite: s\nchecks:\n  fvd: {max: " + "9" * 400 + "}\n", "checks.fvd.max: expected a number (finite)"),
    ("suite: s\nchecks:\n  physics_law.permanance.id: {min: 0.5}\n",
     "checks.physics_law.permanance.id: unknown check"),
    ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
     "suite: s\nchecks:\n  fvd: *f\n", "aliases expand to over 100,000 values"),
    ("suite: s\nchecks:\n  ? [1, 2]\n  : {max: 1}\n", "a key must be a plain value"),
])
def test_bad_policy_is_rejected_naming_the_key(tmp_path, text, message):
    p = write(tmp_path, text)
    with pytest.raises(BadInputError) as e:
        load_policy(p)
    assert str(e.value).startswith(f"{p}: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_shipped_example_policy_parses():
    pol = load_policy(Path(__file__).resolve().parents[2] / "reports" / "policies" / "release.yaml")
    assert pol.suite == "world-v1" and {c.metric for c in pol.checks} >= {"fvd", "provenance_valid_rate"}


def test_a_shipped_policy_is_found_by_name_anywhere(tmp_path, monkeypatch):
    """Installed with pip, `--policy reports/policies/release.yaml` (the README's) named nothing
    and the error said neither why nor what to do (session 30)."""
    from evalkit.errors import MissingResourceError

    monkeypatch.chdir(tmp_path)
    assert load_policy("release").name == load_policy("reports/policies/release.yaml").name == "release-gate"
    with pytest.raises(MissingResourceError, match=r"shipped policy's name \(release\)"):
        load_policy("nope")
    with pytest.raises(MissingResourceError, match="policy file not found"):
        load_policy("mine/release.yaml")
    # a mistyped folder of one's own policies is never swapped for the shipped gate (session 33)
    with pytest.raises(MissingResourceError, match="policy file not found"):
        load_policy(str(tmp_path / "team" / "policies" / "release.yaml"))


def test_pass_fail_with_evidence_and_conservative_bounds(bench_store):
    pol = parse_policy({"suite": "t-suite", "checks": {
        "fvd": {"max": 310},                      # bad: 300 [280, 320]: the upper bound fails it
        "physics_score": {"min": 0.2, "use": "value"},
        "kvd": {"max": 1},                        # never logged
        "cost.cpu_s_per_clip": {"max": 1.0},      # cost: judged on its point value by default
        "detector_catch_rate": {"min": 0.5, "min_n": 100}}})
    res = evaluate_policy(pol, bench_store["uvit:bad"])
    by = {c.metric: c for c in res.checks}
    assert not res.passed and res.model == "uvit:bad" and res.suite_hash == "h2"
    assert not by["fvd"].passed and by["fvd"].reason == "upper CI bound 320 > max 310"
    assert (by["fvd"].value, by["fvd"].ci_low, by["fvd"].ci_high, by["fvd"].n) == (300, 280, 320, 40)
    assert by["physics_score"].passed and by["physics_score"].rule.startswith("value ")
    assert not by["kvd"].passed and by["kvd"].reason == "not measured"
    assert by["cost.cpu_s_per_clip"].passed and by["cost.cpu_s_per_clip"].rule == "value 0.25 <= max 1"
    assert not by["detector_catch_rate"].passed and "min_n 100" in by["detector_catch_rate"].reason
    md = render_markdown(res)
    assert "# Audit FAIL" in md and "not measured" in md
    assert "| fvd | **FAIL** | 300 [280, 320] (n=40) |" in md
    # The same FVD judged on the point value passes: the default rule is the stricter one.
    lenient = parse_policy({"suite": "t-suite", "checks": {"fvd": {"max": 310, "use": "value"}}})
    assert evaluate_policy(lenient, bench_store["uvit:bad"]).passed


def test_incomplete_run_fails_even_when_checks_pass(bench_store):
    pol = parse_policy({"suite": "t-suite", "checks": {"cost.cpu_s_per_clip": {"max": 1.0}}})
    res = evaluate_policy(pol, bench_store["incomplete"])
    assert all(c.passed for c in res.checks) and not res.passed and "not marked complete" in res.notes[0]
    assert evaluate_policy(pol, {"cost.cpu_s_per_clip": 0.5, "cost.cpu_s_per_clip_n": 3}).passed  # a mapping


def test_log_audit_to_mlflow(bench_store, tmp_path):
    import mlflow

    pol = load_policy(write(tmp_path, GOOD))
    res = evaluate_policy(pol, bench_store["uvit:good"])
    assert res.passed, render_markdown(res)
    run_id = log_audit(res, pol)
    run = mlflow.get_run(run_id)
    assert run.data.tags["evalkit.audit.passed"] == "true" and run.data.metrics["audit.passed"] == 1.0
    assert run.data.metrics["check.fvd.passed"] == 1.0
    names = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
    assert {"audit.json", "audit.md", "audit.html", "policy.yaml"} <= names
    exp = mlflow.get_experiment(run.info.experiment_id)
    assert exp.name == "evalkit-audit"


def test_cli_exit_codes(bench_store, tmp_path, capsys):
    good = write(tmp_path, GOOD)
    code, out, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(good),
                         "--run", bench_store["uvit:good"], "--html", str(tmp_path / "a.html"))
    assert code == 0, err
    assert out.startswith("audit PASS: uvit:good") and "evalkit-audit" in out
    assert (tmp_path / "a.html").read_text().startswith("<!DOCTYPE html>")
    code, out, err = run(capsys, "audit", "--model", "uvit:bad", "--policy", str(good),
                         "--run", bench_store["uvit:bad"], "--json")
    assert code == EXIT_CHECK_FAILED
    d = json.loads(out)
    assert d["passed"] is False and d["audit_run_id"]
    fvd = next(c for c in d["checks"] if c["metric"] == "fvd")
    assert fvd == {**fvd, "passed": False, "value": 300.0, "ci_low": 280.0, "ci_high": 320.0, "n": 40}
    code, _, err = run(capsys, "audit", "--model", "uvit:twin", "--policy", str(good),
                       "--run", bench_store["uvit:good"])
    assert code == EXIT_BAD_INPUT and "not of --model 'uvit:twin'" in err and err.count("\n") == 1
    other = write(tmp_path, GOOD.replace("suite: t-suite", "suite: other"), "other.yaml")
    code, _, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(other),
                       "--run", bench_store["uvit:good"])
    assert code == EXIT_BAD_INPUT and "the policy names 'other'" in err
    code, _, err = run(capsys, "audit", "--model", "x", "--policy", str(tmp_path / "none.yaml"))
    assert code == EXIT_MISSING and "none.yaml" in err and err.count("\n") == 1
    # --run of a run that is no bench run (the demo's, an audit's): named as such
    audit_id = d["audit_run_id"]
    code, _, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(good), "--run", audit_id)
    assert code == EXIT_BAD_INPUT and "is not a bench run (its kind: audit)" in err and err.count("\n") == 1


def test_cli_runs_the_suite_after_checking_the_policy(bench_store, tmp_path, capsys, monkeypatch):
    import benchmarks.runner as runner

    calls = []

    def fake_run_suite(suite, model_spec, *, out_dir=None, **kw):
        calls.append((suite, model_spec, out_dir))
        return SimpleNamespace(run_id=bench_store["uvit:good"], status="complete")

    monkeypatch.setattr(runner, "run_suite", fake_run_suite)
    bad = write(tmp_path, "suite: t-suite\nchecks:\n  fvd: {max: abc}\n", "bad.yaml")
    code, _, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(bad))
    assert code == EXIT_BAD_INPUT and "checks.fvd.max: expected a number, got 'abc'" in err
    assert err.count("\n") == 1 and not calls  # rejected before any generation
    code, out, _ = run(capsys, "audit", "--model", "uvit:good", "--policy", str(write(tmp_path, GOOD)))
    assert code == 0 and calls == [("t-suite", "uvit:good", Path("evalkit-bench"))]


def test_a_policy_names_its_suite_by_a_file_beside_it(tmp_path, monkeypatch):
    """`suite: my-suite.yaml` is found beside the policy, wherever the audit runs, and the run it
    audits is matched by the suite's own name (it was matched against the path, and refused)."""
    import shutil

    shipped = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "world-v1.yaml"
    (tmp_path / "gates").mkdir()
    shutil.copy(shipped, tmp_path / "gates" / "my-suite.yaml")
    p = write(tmp_path / "gates", "suite: my-suite.yaml\nchecks:\n  fvd: {max: 400}\n")
    monkeypatch.chdir(tmp_path)
    pol = load_policy(p)
    assert Path(pol.suite) == tmp_path / "gates" / "my-suite.yaml" and pol.suite_name == "world-v1"
    with pytest.raises(MissingResourceError, match="no such suite file"):
        load_policy(write(tmp_path, "suite: nowhere/my-suite.yaml\nchecks:\n  fvd: {max: 400}\n", "p2.yaml"))


def test_merge_keys_work_and_an_override_wins(tmp_path):
    p = write(tmp_path, "base: &b {max: 300, use: value}\nsuite: s\nchecks:\n  fvd:\n    <<: *b\n    max: 150\n"
              .replace("base: &b {max: 300, use: value}\n", "x-base: &b {max: 300, use: value}\n"))
    pol = load_policy(p)  # an x- key holds anchors; the merge is read, the override wins
    assert [(c.metric, c.max, c.use) for c in pol.checks] == [("fvd", 150.0, "value")]
    with pytest.raises(BadInputError, match="base: unknown key"):  # other unknown keys are still named
        load_policy(write(tmp_path, "base: &b {max: 3}\nsuite: s\nchecks:\n  fvd: *b\n", "q.yaml"))
    from benchmarks.suite import load_yaml

    assert load_yaml("b: &b {max: 300, use: value}\nfvd:\n  <<: *b\n  max: 150\n")["fvd"] == {"max": 150,
                                                                                               "use": "value"}


def test_audit_never_writes_over_what_it_reads_nor_stands_on_a_deleted_or_outdated_run(bench_store, tmp_path,
                                                                                         capsys):
    """Session 32: `--html` replaced the suite YAML a policy named; a deleted run passed an audit
    the leaderboard no longer showed; a run of another version of the suite passed unremarked."""
    import shutil

    from mlflow.tracking import MlflowClient

    from conftest import log_bench_run

    shipped = Path(__file__).resolve().parents[2] / "benchmarks" / "suites" / "world-v1.yaml"
    suite_file = tmp_path / "t-suite.yaml"
    suite_file.write_text(shipped.read_text().replace("name: world-v1", "name: t-suite", 1))
    before = suite_file.read_bytes()
    pol = write(tmp_path, GOOD.replace("suite: t-suite", "suite: t-suite.yaml"))
    run_id = bench_store["uvit:good"]
    code, _, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(pol), "--run", run_id,
                       "--html", str(suite_file))
    assert code == EXIT_BAD_INPUT and "is an input of this command" in err and suite_file.read_bytes() == before
    # the run was made at suite hash "h2"; the suite file hashes otherwise: not this policy's evidence
    code, out, err = run(capsys, "audit", "--model", "uvit:good", "--policy", str(pol), "--run", run_id, "--json")
    d = json.loads(out)
    assert code == EXIT_CHECK_FAILED and d["passed"] is False and any("at hash h2" in n for n in d["notes"])
    gone = log_bench_run("uvit:gone")
    MlflowClient().delete_run(gone)
    code, _, err = run(capsys, "audit", "--model", "uvit:gone", "--policy", str(write(tmp_path, GOOD, "g.yaml")),
                       "--run", gone)
    assert code == EXIT_MISSING and "is deleted" in err and err.count("\n") == 1
    (tmp_path / "afile").write_text("x")
    code, _, err = run(capsys, "audit", "--model", "world", "--policy", str(write(tmp_path, GOOD, "w.yaml")),
                       "--out-dir", str(tmp_path / "afile"))
    assert code == EXIT_BAD_INPUT and "--out-dir" in err and "is a file" in err
    shutil.rmtree(tmp_path / "gates", ignore_errors=True)


def test_html_is_never_written_into_a_folder_model_named_with_a_tilde(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "fold").mkdir()
    index = tmp_path / "fold" / "index.jsonl"
    index.write_text('{"id": "a", "file": "a.mp4", "prompt": "x"}\n')
    code, _, err = run(capsys, "audit", "--model", "folder:~/fold", "--policy", str(write(tmp_path, GOOD)),
                       "--run", "0" * 32, "--html", str(index))
    assert code == EXIT_BAD_INPUT and "is a file of the input folder" in err
    assert index.read_text().startswith('{"id"')
