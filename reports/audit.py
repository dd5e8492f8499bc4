"""Release audits: a policy YAML of thresholds, checked against one bench run, with evidence.

Policy schema (strict: an unknown key or a bad value is a BadInputError naming the key, e.g.
`checks.fvd.max: expected a number, got 'abc'`):

    name: release-gate            # optional, default: the file's stem
    description: ...              # optional, free text
    suite: world-v1               # required: the bench suite the model is run on
    checks:                       # required, at least one; each key a metric of benchmarks/schema.py
      fvd:                   {max: 400}          # (or physics_law.<law>.<id|ood>)
      clip_alignment:        {min: 20}
      physics_ood_gap:       {max: 0.15}
      provenance_valid_rate: {min: 1.0, use: value}   # every output signed and valid
      watermark_survival_crf30: {min: 0.9, min_n: 50}

Per check: `min` and/or `max` (numbers; at least one), `use` ("ci", the default, or "value") and
`min_n` (an integer: fewer samples fail the check).

The rule is conservative by default: a `max` is met when the *upper* 95% CI bound is at most max,
a `min` when the *lower* bound is at least min, so a pass means the data support it, not just the
point estimate. `use: value` compares the point value instead; it is the default only for the cost
metrics, whose interval (logged since session 27) is the spread of the run's shards' timings on a
machine shared with other work, not a sampling error a release gate should rest on. A rate checked at `min: 1.0` (or `max: 0`)
with `use: ci` could never pass (a Wilson bound of a finite sample never reaches 1), so the policy
is rejected with that reason rather than failing every audit. A metric the run did not log, or
logged as NaN, fails with "not measured"; an interval that is not defined (n = 1) fails a `ci`
check. A bench run that is not marked complete fails the audit too, and so (since session 30) does
one over the suite's first prompts only (`bench run --max-prompts`).
"""

from __future__ import annotations

import math
import reprlib
import re
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Mapping

from benchmarks import schema
from benchmarks.suite import load_yaml, suite_name
from evalkit.errors import BadInputError, MissingResourceError

EXPERIMENT = "evalkit-audit"
KNOWN = (*schema.SCORE_METRICS, *schema.PHYSICS_PART_METRICS, *schema.SAFETY_METRICS, *schema.COST_METRICS)
_LAW = re.compile(r"^physics_law\.[A-Za-z0-9_]+\.(id|ood)$")
# Proportions (Wilson intervals): the bounds 0 and 1 are out of reach of a `ci` rule.
RATES = ("physics_pass_rate", "clip_retrieval_top1", *schema.SAFETY_METRICS)
TOP_KEYS = ("name", "description", "suite", "checks")
CHECK_KEYS = ("min", "max", "use", "min_n")
# Where each metric's values lie: a min above the top or a max below the bottom can never pass,
# a min below the bottom or a max above the top always passes; both are a mistake of scale
# (CLIP alignment is 0-100, rates are 0-1).
_UNIT = (0.0, 1.0)
RANGES = {"fvd": (0.0, math.inf), "kvd": (0.0, math.inf), "clip_alignment": (0.0, 100.0),
          "warp_error": (0.0, math.inf), "physics_ood_gap": (-1.0, 1.0),
          **{m: (0.0, math.inf) for m in schema.COST_METRICS}}


@dataclass(frozen=True)
class Check:
    metric: str
    min: float | None = None
    max: float | None = None
    use: str = "ci"
    min_n: int | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    suite: str
    checks: tuple[Check, ...]
    description: str = ""
    source: str = ""  # the YAML text, logged with the audit
    suite_name: str = ""  # the suite's own name (`suite` may be a YAML file's path)


@dataclass
class CheckResult:
    metric: str
    passed: bool
    rule: str  # e.g. "upper CI bound 312 <= max 400"
    reason: str  # "" when passed; "not measured", "n=12 < min_n 50", "upper CI bound 512 > max 400"
    value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    n: int | None = None
    min: float | None = None  # the policy's thresholds, repeated so that the result stands alone
    max: float | None = None
    use: str = "ci"


@dataclass
class AuditResult:
    policy: str
    suite: str
    model: str
    run_id: str | None
    suite_hash: str | None
    checks: list[CheckResult]
    notes: list[str] = field(default_factory=list)
    complete: bool = True

    @property
    def passed(self) -> bool:
        return self.complete and all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        return d


# ---------------------------------------------------------------------------------------- policy
def _short(v, n: int = 60) -> str:
    """repr of a policy value, cut: an alias bomb's expansion took gigabytes to print (session 32)."""
    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxstring, r.maxother = 2, 4, 4, n, n
    text = r.repr(v)
    return text if len(text) <= n + 20 else text[:n] + "..."


def _number(where: str, v) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadInputError(f"{where}: expected a number, got {_short(v)}")
    try:
        f = float(v)
    except OverflowError:  # a 400-digit whole number
        f = math.inf
    if not math.isfinite(f):
        raise BadInputError(f"{where}: expected a number (finite), got {_short(v)}")
    return f


def _known_metric(name) -> bool:
    if not isinstance(name, str):
        return False
    if name in KNOWN:
        return True
    m = _LAW.match(name)
    if m is None:
        return False
    from evalkit.metrics.physics_laws import LAWS

    return name.split(".")[1] in LAWS  # physics_law.permanance.id passed, then read "not measured"


def _check(metric: str, spec, where: str) -> Check:
    if not _known_metric(metric):
        from evalkit.metrics.physics_laws import LAWS

        raise BadInputError(f"{where}: unknown check; use a bench metric ({', '.join(KNOWN)}, "
                            f"or physics_law.<law>.<id|ood> with a law of {', '.join(LAWS)})")
    if not isinstance(spec, Mapping):
        raise BadInputError(f"{where}: expected a mapping such as {{min: 0.5}} or {{max: 300}}, got {_short(spec)}")
    for k in spec:
        if k not in CHECK_KEYS:
            raise BadInputError(f"{where}.{k}: unknown key; expected one of {', '.join(CHECK_KEYS)}")
    lo = _number(f"{where}.min", spec["min"]) if "min" in spec else None
    hi = _number(f"{where}.max", spec["max"]) if "max" in spec else None
    if lo is None and hi is None:
        raise BadInputError(f"{where}: give a threshold, min or max")
    if lo is not None and hi is not None and lo > hi:
        raise BadInputError(f"{where}: min {lo:g} is above max {hi:g}")
    bottom, top = RANGES.get(metric, _UNIT)
    span = f"{metric} lies in [{bottom:g}, {top:g}]"
    if lo is not None and (lo > top or lo < bottom):
        raise BadInputError(f"{where}.min: {lo:g} {'can never pass' if lo > top else 'always passes'}: {span}")
    if hi is not None and (hi < bottom or hi > top):
        raise BadInputError(f"{where}.max: {hi:g} {'can never pass' if hi < bottom else 'always passes'}: {span}")
    use = spec.get("use", "value" if metric.startswith("cost.") else "ci")
    if use not in ("ci", "value"):
        raise BadInputError(f"{where}.use: expected 'ci' or 'value', got {_short(use)}")
    min_n = spec.get("min_n")
    if min_n is not None and (isinstance(min_n, bool) or not isinstance(min_n, int) or min_n < 1):
        raise BadInputError(f"{where}.min_n: expected a positive integer, got {_short(min_n)}")
    if use == "ci" and (metric in RATES or metric.startswith("physics_law.")):
        if (lo is not None and lo >= 1.0) or (hi is not None and hi <= 0.0):
            bound = "min" if lo is not None and lo >= 1.0 else "max"
            raise BadInputError(f"{where}.{bound}: a rate's 95% CI bound never reaches "
                                f"{'1' if bound == 'min' else '0'}, so this check could never pass; "
                                "add `use: value` to require every clip")
    return Check(metric, lo, hi, use, min_n)


def parse_policy(data, *, name: str = "policy", source: str = "") -> Policy:
    """A Policy from parsed YAML; BadInputError naming the first offending key."""
    if data is None:
        raise BadInputError("is empty; a policy is a YAML mapping with suite and checks (see reports/policies/)")
    if not isinstance(data, Mapping):
        raise BadInputError(f"{name}: expected a mapping with suite and checks, got {type(data).__name__}")
    for k in data:
        if isinstance(k, str) and k.startswith("x-"):
            continue  # an extension key (as Compose files use): where anchors for `<<:` merges live
        if k not in TOP_KEYS:
            raise BadInputError(f"{k}: unknown key; expected one of {', '.join(TOP_KEYS)} (or an x-NAME key of "
                                "your own, e.g. anchors to merge)")
    for k in ("name", "description", "suite"):
        if k in data and not isinstance(data[k], str):
            raise BadInputError(f"{k}: expected a string, got {data[k]!r}")
    if not data.get("suite"):
        raise BadInputError("suite: missing; name the bench suite to audit on (e.g. suite: world-v1)")
    checks = data.get("checks")
    if not isinstance(checks, Mapping) or not checks:
        raise BadInputError(f"checks: expected a non-empty mapping of metric: {{min|max: number}}, "
                            f"got {checks!r}")
    parsed = tuple(_check(m, spec, f"checks.{m}") for m, spec in checks.items())
    return Policy(data.get("name") or name, data["suite"], parsed, data.get("description", ""), source,
                  data["suite"])


POLICIES_DIR = Path(__file__).resolve().parent / "policies"


def shipped_policies() -> list[str]:
    return sorted(p.stem for p in POLICIES_DIR.glob("*.yaml"))


def load_policy(path) -> Policy:
    """Read and validate a policy YAML; every error is one line starting with the file's name."""
    import yaml

    arg = str(path)
    path = Path(path).expanduser()
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give the policy YAML file")
    if not path.is_file():
        shipped = POLICIES_DIR / f"{arg}.yaml"
        # a shipped policy by name (`release`), as a suite is: its repository path does not exist
        # where evalkit is installed with pip
        if "/" not in arg and not arg.endswith((".yaml", ".yml")) and shipped.is_file():
            path = shipped
        elif (POLICIES_DIR / path.name).is_file() and Path(arg).parts in (("reports", "policies", path.name),
                                                                          (".", "reports", "policies", path.name)):
            # the README's own reports/policies/NAME.yaml outside a checkout, that path only: a
            # mistyped ~/team/policies/release.yaml was audited against evalkit's (session 33)
            path = POLICIES_DIR / path.name
        else:
            raise MissingResourceError(f"{arg}: policy file not found; give a policy YAML file or a shipped "
                                       f"policy's name ({', '.join(shipped_policies())})")
    try:
        text = path.read_text(encoding="utf-8")
        data = load_yaml(text)
    except UnicodeDecodeError:
        raise BadInputError(f"{path}: not UTF-8 text; a policy is a YAML file (save it as UTF-8)") from None
    except OSError as e:
        raise BadInputError(f"{path}: cannot read the policy ({e.strerror}); check its permissions") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1})" if mark is not None else ""
        raise BadInputError(f"{path}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    try:
        pol = parse_policy(data, name=path.stem, source=text)
    except BadInputError as e:
        raise BadInputError(f"{path}: {e}") from None
    if pol.suite.endswith((".yaml", ".yml")) or "/" in pol.suite:
        # a suite file named by the policy is found beside the policy, wherever the audit runs
        where = Path(pol.suite).expanduser()
        where = where if where.is_absolute() else path.parent / where
        pol = replace(pol, suite=str(where), suite_name=suite_name(where))
    return pol


# ------------------------------------------------------------------------------------ evaluation
def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _judge(check: Check, ev: dict | None) -> CheckResult:
    limits = " and ".join(f"{k} {v:g}" for k, v in (("min", check.min), ("max", check.max)) if v is not None)
    limit = {"min": check.min, "max": check.max, "use": check.use}
    if ev is None or ev["value"] is None or math.isnan(ev["value"]):
        return CheckResult(check.metric, False, limits, "not measured", **limit)
    n = None if math.isnan(ev["n"]) else int(ev["n"])
    res = CheckResult(check.metric, True, "", "", _num(ev["value"]), _num(ev["ci_low"]), _num(ev["ci_high"]),
                      n, **limit)
    if check.min_n is not None and (n is None or n < check.min_n):
        res.passed, res.rule, res.reason = False, f"n >= {check.min_n}", f"n={n} < min_n {check.min_n}"
        return res
    rules, fails = [], []
    for kind, limit in (("min", check.min), ("max", check.max)):
        if limit is None:
            continue
        if check.use == "value":
            what, x = "value", ev["value"]
        else:
            what, x = ("lower CI bound", ev["ci_low"]) if kind == "min" else ("upper CI bound", ev["ci_high"])
        op_ok, op_bad = (">=", "<") if kind == "min" else ("<=", ">")
        if math.isnan(x):  # no interval (n = 1, or values that do not vary: not estimable): the data do
            # not support the threshold, so the check fails, never passes on the point value unasked
            rules.append(f"{what} {op_ok} {kind} {limit:g}")
            why = ": its values do not vary (one clip repeated?) or a bound is open" if (n or 0) >= 2 else ""
            fails.append(f"no confidence interval (n={n}{why}); add `use: value` to judge the point value")
            continue
        ok = x >= limit if kind == "min" else x <= limit
        rules.append(f"{what} {x:.4g} {op_ok if ok else op_bad} {kind} {limit:g}")
        if not ok:
            fails.append(rules[-1])
    res.rule = "; ".join(rules)
    res.passed, res.reason = not fails, "; ".join(fails)
    return res


def evaluate_policy(policy: Policy, run) -> AuditResult:
    """Judge every check of `policy` on `run`: a bench run's id, an mlflow Run, or a mapping of
    MLflow metric names to values (as `Run.data.metrics`)."""
    from reports import _store

    tags: dict = {}
    run_id = None
    if isinstance(run, str):
        run = _store.get_run(run)
    if hasattr(run, "data"):
        run_id, tags, metrics = run.info.run_id, dict(run.data.tags), dict(run.data.metrics)
        _check_live(run)
        if tags.get(schema.TAG_KIND) != schema.KIND_BENCH:
            from evalkit.errors import BadInputError

            kind = tags.get(schema.TAG_KIND)
            raise BadInputError(f"--run {run_id} is not a bench run{f' (its kind: {kind})' if kind else ''}; "
                                "give the id of an `evalkit bench run`, or leave --run out")
    elif isinstance(run, Mapping):
        metrics = {str(k): float(v) for k, v in run.items()}
    else:
        raise TypeError(f"run must be a run id, an mlflow Run or a metrics mapping, got {type(run).__name__}")
    notes = []
    complete = run_id is None or tags.get(schema.TAG_COMPLETE) == "true"
    if not complete:
        notes.append(f"bench run {run_id} is not marked complete ({schema.TAG_COMPLETE}): the audit fails")
    params = dict(run.data.params) if hasattr(run, "data") else {}
    quick = params.get("max_prompts") not in (None, "", "None")
    if quick:  # a quick run is not the release's whole suite (it read as one: "audit FAIL ... on world-v1")
        complete = False
        notes.append(f"bench run {run_id} covers only the suite's first prompts (--max-prompts "
                     f"{params['max_prompts']}): the audit fails; audit a run of the whole suite")
    suite = tags.get(schema.TAG_SUITE, policy.suite_name)
    if suite != policy.suite_name:
        notes.append(f"the policy names suite {policy.suite_name!r} but the run is of suite {suite!r}")
    want = _suite_hash(policy)
    if run_id is not None and want is not None and tags.get(schema.TAG_SUITE_HASH) != want:
        # another version of the suite (other prompts, samples or metrics): not this policy's evidence
        complete = False
        notes.append(f"bench run {run_id} ran suite {suite} at hash {str(tags.get(schema.TAG_SUITE_HASH))[:12]}, "
                     f"the policy's suite is now at {want[:12]}: the audit fails; run the suite again")
    checks = [_judge(c, _store.evidence(metrics, c.metric)) for c in policy.checks]
    return AuditResult(policy.name, suite, tags.get(schema.TAG_MODEL, "?"), run_id,
                       tags.get(schema.TAG_SUITE_HASH), checks, notes, complete)


def _check_live(run) -> None:
    """A deleted run (or one in a deleted experiment) is not evidence: the leaderboard no longer
    shows it, and an audit passed on it (session 32)."""
    from evalkit.errors import MissingResourceError

    stage = getattr(run.info, "lifecycle_stage", "active")
    if stage == "active":
        try:
            from mlflow.tracking import MlflowClient

            stage = MlflowClient().get_experiment(run.info.experiment_id).lifecycle_stage
        except Exception:  # noqa: BLE001  an experiment we cannot read: judged by the run alone
            stage = "active"
    if stage != "active":
        raise MissingResourceError(f"--run {run.info.run_id} is deleted in the MLflow store (or its experiment "
                                   "is); restore it, or audit a run that stands")


def _suite_hash(policy: Policy) -> str | None:
    """The content hash of the policy's suite as it is now, or None where it cannot be read."""
    try:
        from benchmarks.suite import load_suite

        return load_suite(policy.suite).hash
    except Exception:  # noqa: BLE001  a suite that no longer loads is named by the run's own check
        return None


# ------------------------------------------------------------------------------ output, logging
def _fmt(x, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def evidence_text(c: CheckResult) -> str:
    if c.value is None:
        return "—"
    # one open bound (clips/s when the wall time's lower bound reaches 0) keeps the other: "3.59 [1.69, —]"
    # (the interval was dropped whole, while the rule quoted its lower bound, session 32)
    bound = lambda b: None if b is None or not math.isfinite(b) else b  # noqa: E731
    lo, hi = bound(c.ci_low), bound(c.ci_high)
    # neither bound: said ("1382 (n=4)" read as a number known exactly)
    ci = f" [{_fmt(lo)}, {_fmt(hi)}]" if lo is not None or hi is not None else " (no CI)"
    return f"{_fmt(c.value)}{ci} (n={c.n if c.n is not None else '—'})"


def render_markdown(result: AuditResult) -> str:
    verdict = "PASS" if result.passed else "FAIL"
    from reports.leaderboard import md_cell as cell
    from reports.leaderboard import md_escape as esc  # names and notes are the user's text (an
    # `<img onerror>` model name went into audit.md raw); evidence and rules are evalkit's

    failed = sum(not c.passed for c in result.checks)
    lines = [f"# Audit {verdict}: {esc(result.model)} against policy {esc(repr(result.policy))}", "",
             f"Suite {esc(result.suite)} (hash {str(result.suite_hash)[:12]}), bench run {result.run_id}; "
             f"{len(result.checks) - failed} of {len(result.checks)} checks pass.", "",
             "| check | result | evidence: value [95% CI] (N) | rule | reason |", "|---|---|---|---|---|"]
    for c in result.checks:
        lines.append(f"| {cell(c.metric)} | {'pass' if c.passed else '**FAIL**'} | {cell(evidence_text(c))} | "
                     f"{cell(c.rule)} | {cell(c.reason or '')} |")
    lines += ["", *(f"- {esc(n)}" for n in result.notes)]
    lines.append("A `min` is judged on the lower 95% CI bound and a `max` on the upper one unless the "
                 "policy says `use: value`.")
    return "\n".join(lines) + "\n"


def format_text(result: AuditResult) -> str:
    """A compact terminal form: one line per check."""
    from evalkit.safe_text import printable  # a model name with a newline forged a line

    out = [f"audit {'PASS' if result.passed else 'FAIL'}: {printable(result.model)} on {printable(result.suite)} "
           f"(policy {printable(repr(result.policy))}, bench run {result.run_id})"]
    for c in result.checks:
        out.append(f"  {'pass' if c.passed else 'FAIL'}  {c.metric:<28} {evidence_text(c):<36} "
                   f"{printable(c.reason or c.rule)}")
    out += [f"  note: {printable(n)}" for n in result.notes]
    return "\n".join(out)


def log_audit(result: AuditResult, policy: Policy | None = None) -> str:
    """One run in the "evalkit-audit" experiment: pass/fail per check as metrics, the result as
    JSON, markdown and the HTML report, and the policy's YAML. Returns the audit run's id."""
    import mlflow

    from evalkit import tracking
    from reports.html import audit_report

    tags = {"evalkit.kind": "audit", schema.TAG_MODEL: result.model, schema.TAG_SUITE: result.suite,
            "evalkit.audit.policy": result.policy, "evalkit.audit.passed": str(result.passed).lower(),
            "evalkit.audit.bench_run": str(result.run_id)}
    with tracking.start_run(EXPERIMENT, run_name=f"{result.model} / {result.policy}", tags=tags,
                            params={"policy": result.policy, "suite": result.suite,
                                    "model": result.model}) as run:
        mlflow.log_metrics({"audit.passed": float(result.passed),
                            "audit.checks_failed": float(sum(not c.passed for c in result.checks)),
                            **{tracking.sanitize_name(f"check.{c.metric}.passed"): float(c.passed)
                               for c in result.checks}})
        tracking.log_json(result.to_dict(), "audit.json")
        texts = {"audit.md": render_markdown(result), "audit.html": audit_report(result)}
        if policy is not None and policy.source:
            texts["policy.yaml"] = policy.source
        with tempfile.TemporaryDirectory(prefix="evalkit-audit-") as tmp:
            for fname, text in texts.items():
                (Path(tmp) / fname).write_text(text, encoding="utf-8")
                tracking.log_artifact(Path(tmp) / fname)
        return run.info.run_id
