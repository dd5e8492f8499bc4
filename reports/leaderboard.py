"""The leaderboard of a suite, drawn from its bench runs in MLflow (see benchmarks/schema.py).

Which runs: per model, the newest run tagged complete in `experiment_name(suite)` (a run over the
whole suite before any quick `--max-prompts` run, which a note names), among the runs
of the newest complete run's suite hash (a leaderboard mixes no suite versions; runs of other
hashes are ignored and the frame's notes say so).

Ranking: by `PRIMARY_METRICS`' first metric that some model row has, FVD by default: it is the
suite's headline distribution-quality number and every suite scores it. Direction comes from
`schema.LOWER_IS_BETTER`. Only rows with role "model" are ranked; the ceiling (`world`, the
renderer itself) and the controls stay in the table, unranked, for scale.

The mark: a ranked row gets `tie_with_above` when the data do not support its difference from the
row ranked just above it. For a metric with per-clip values (clip_alignment, flicker, warp_error,
physics_score, physics_pass_rate) that is a paired comparison (`paired_bootstrap_diff`, clips
matched by prompt and seed): marked unless the randomisation test gives p < 0.05 and the 95%
interval of the difference excludes 0 (since session 30: exact at small N, where the bootstrap's
p once supported differences between two clips). FVD and KVD are set-level, but their
clips pair too: since session 36 each run logs its clips' FVD features and the reference's
(`schema.ARTIFACT_FEATURES`), and two neighbours are compared by a paired bootstrap of the
difference of their distances to the shared reference (`fvd_paired.paired_distance_diff`: pair
and reference indices drawn once a resample for both), marked unless p < 0.05 and the interval
excludes 0. Runs without features (older ones), on different backbones or references fall back
to overlap of the two 95% CIs, which is conservative, and a note says why.

Columns: model, role, rank (nullable int), tie_with_above, tie_test, run_id, suite_hash, and for
every metric `m`: m, m_ci_low, m_ci_high, m_n (as logged). `df.attrs` holds suite, experiment,
suite_hash, primary, lower_is_better, metrics (names in order) and notes (sentences for the reader).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from benchmarks import schema
from evalkit.safe_text import printable
from reports import _store

PRIMARY_METRICS = ("fvd", "physics_score", "clip_alignment")
PER_CLIP_METRICS = ("clip_alignment", "flicker", "warp_error", "physics_score", "physics_pass_rate")
# the per-clip value a set-level rate is the mean of (it was compared by CI overlap: 30/60 passes
# against 18/60, every discordant pair one way, read "~")
_PER_CLIP_KEY = {"physics_pass_rate": "physics_pass"}
# the range of each per-clip value (a paired difference that does not vary gets the worst case
# this range allows, not a point: 8 passes against 8 fails read "1 [1, 1]")
METRIC_BOUNDS = {"clip_alignment": (0.0, 100.0), "flicker": (0.0, 1.0), "warp_error": (0.0, 1.0),
                 "physics_score": (0.0, 1.0), "physics_pass_rate": (0.0, 1.0)}
ALPHA = 0.05
# What the table, markdown and HTML show; csv and json carry every metric.
# physics_score is the share of a clip's laws that hold, so a frozen clip that keeps its objects
# scores about 0.8 (only its motion law fails); physics_pass_rate (every law holds) is what tells
# a still picture from a plausible motion, so the two are shown together.
HEADLINE = ("fvd", "clip_alignment", "flicker", "physics_score", "physics_pass_rate", "physics_score_id",
            "physics_score_ood", "physics_ood_gap", "provenance_valid_rate", "watermark_survival_crf30",
            "detector_catch_rate")
COST = schema.COST_METRICS
# The terminal table stays narrower: the quality headline, the physics gap and cost.
TABLE = ("fvd", "clip_alignment", "flicker", "physics_score", "physics_pass_rate", "physics_ood_gap")
MARK = "~"
ROLE_ORDER = {"model": 0, "ceiling": 1, "control": 2}


def _role(tags: dict, model: str) -> str:
    role = tags.get(schema.TAG_ROLE)
    if role in schema.ROLES:
        return role
    # Runs from before the role tag: infer it as the runner would.
    return "ceiling" if model == "world" else "control" if model.startswith("control:") else "model"


def _select_runs(suite: str) -> tuple[Any, list[str]]:
    """The chosen runs (a runs_frame slice, newest first) and notes about what was left out."""
    from evalkit.errors import MissingResourceError
    from evalkit.tracking import runs_frame, tracking_uri

    runs = runs_frame(schema.experiment_name(suite))
    hint = f"run `evalkit bench run --suite {suite} --model SPEC` first"
    if runs.empty:
        known = _store.known_suites()
        if suite not in known:
            listed = ", ".join(known) if known else "none"
            raise MissingResourceError(f"unknown suite {suite!r}: no experiment "
                                       f"{schema.experiment_name(suite)!r} in {tracking_uri()} "
                                       f"(known suites: {listed}); {hint}")
        raise MissingResourceError(f"suite {suite!r} has no bench runs in {tracking_uri()}; {hint}")

    def tag(name):
        col = f"tags.{name}"
        return runs[col] if col in runs else np.full(len(runs), None, dtype=object)

    runs = runs.assign(_kind=tag(schema.TAG_KIND), _complete=tag(schema.TAG_COMPLETE),
                       _model=tag(schema.TAG_MODEL), _hash=tag(schema.TAG_SUITE_HASH))
    runs = runs[(runs["_kind"].fillna(schema.KIND_BENCH) == schema.KIND_BENCH) & runs["_model"].notna()]
    done = runs[runs["_complete"] == "true"].sort_values("start_time", ascending=False)
    notes = []
    unhashed = done[done["_hash"].isna()]
    if len(unhashed):  # not logged by the bench runner (hand-made, another tool's): no suite version
        notes.append(f"ignored {len(unhashed)} complete run(s) without {schema.TAG_SUITE_HASH} (not logged by "
                     "`evalkit bench run`): " + ", ".join(sorted(map(str, set(unhashed["_model"]))))[:200])
        done = done[done["_hash"].notna()]
    if done.empty:
        raise MissingResourceError(f"suite {suite!r} has no complete bench runs in {tracking_uri()} "
                                   f"({len(runs)} incomplete); {hint}")
    suite_hash = done["_hash"].iloc[0]
    other = done[done["_hash"] != suite_hash]
    if len(other):
        lost = sorted(set(other["_model"]) - set(done.loc[done["_hash"] == suite_hash, "_model"]))
        notes.append(f"ignored {len(other)} complete run(s) of other suite hashes (older suite versions)"
                     + (f"; not on this board: {', '.join(lost)}" if lost else ""))
    done = done[done["_hash"] == suite_hash]
    n_incomplete = int((runs["_complete"] != "true").sum())
    if n_incomplete:
        notes.append(f"{n_incomplete} incomplete run(s) ignored")
    # A quick run (--max-prompts N) covers part of the suite: a model's whole-suite run comes first
    # (a newer quick run once replaced it, and the ranking flipped on a quarter of the prompts)
    col = "params.max_prompts"
    partial = done[col].map(lambda v: v not in (None, "", "None") and v == v) if col in done else False
    done = done.assign(_partial=partial).sort_values(["_partial", "start_time"], ascending=[True, False])
    chosen = done.drop_duplicates("_model", keep="first")
    quick = chosen[chosen["_partial"]]
    if len(quick):
        notes.append("from quick runs over the suite's first prompts only (bench run --max-prompts), not "
                     "comparable with whole-suite rows: " + ", ".join(f"{m} (--max-prompts {k})" for m, k in
                                                                     zip(quick["_model"], quick[col])))
    notes += _mixed_scoring(chosen)
    return chosen, notes


def _mixed_scoring(chosen) -> list[str]:
    """A note where the chosen runs were scored by different versions of the bench's scoring code
    (`params.scoring_code`, logged since session 36; runs before it name none): their numbers can
    differ for that alone (CLIPScore over 8 frames before session 36, every frame since)."""
    col = "params.scoring_code"
    versions = chosen[col].where(chosen[col].notna(), "before bench-runner-6") if col in chosen else None
    if versions is None:
        versions = chosen["_model"].map(lambda _: "before bench-runner-6")
    groups: dict[str, list[str]] = {}
    for model, v in zip(chosen["_model"], versions):
        groups.setdefault(str(v), []).append(str(model))
    if len(groups) < 2:
        return []
    parts = "; ".join(f"{v}: {', '.join(sorted(ms))}" for v, ms in sorted(groups.items()))
    return [f"rows were scored by different versions of the bench's scoring ({parts})"[:400]
            + "; their numbers can differ for that alone (CLIPScore averaged 8 frames before bench-runner-6): "
            "run the older models again to compare them"]


def _frame(chosen) -> Any:
    import pandas as pd

    rows, names = [], []
    for _, r in chosen.iterrows():
        metrics = {c[len("metrics."):]: v for c, v in r.items() if c.startswith("metrics.") and pd.notna(v)}
        for m in _store.metric_names(metrics):
            if m not in names:
                names.append(m)
        tags = {c[len("tags."):]: v for c, v in r.items() if c.startswith("tags.") and isinstance(v, str)}
        quick = r.get("params.max_prompts")
        quick = int(quick) if isinstance(quick, str) and quick.isdigit() else None
        rows.append({"model": r["_model"], "role": _role(tags, r["_model"]), "run_id": r["run_id"],
                     "suite_hash": r["_hash"], "max_prompts": quick, **metrics})
    df = pd.DataFrame(rows)
    ordered = [*schema.SCORE_METRICS, *schema.PHYSICS_PART_METRICS, *schema.SAFETY_METRICS, *COST]
    names = [m for m in ordered if m in names] + sorted(m for m in names if m not in ordered)
    for m in names:
        for c in (m, *(m + s for s in _store.CI_SUFFIXES)):
            if c not in df:
                df[c] = math.nan
    df["max_prompts"] = df["max_prompts"].astype("Int64")  # a quick run's prompt count; <NA>: the whole suite
    return df[["model", "role", "run_id", "suite_hash", "max_prompts", *[c for m in names for c in
                                                           (m, *(m + s for s in _store.CI_SUFFIXES))]]], names


def pick_primary(df, names: list[str], primary: str | None = None) -> str | None:
    from evalkit.errors import BadInputError

    if primary is not None:
        if primary not in names:
            raise BadInputError(f"--rank-by {primary!r}: not a metric of this suite's runs "
                                f"(have: {', '.join(names)})")
        return primary
    models = df[df["role"] == "model"]
    for m in PRIMARY_METRICS:
        if m in names and models[m].notna().any():
            return m
    return next((m for m in names if models[m].notna().any()), None)


def _paired(run_a: str, run_b: str, metric: str, cache: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip values of `metric` for the clips both runs share, matched by (prompt, seed);
    repeated keys within a run are averaged so each key is one pair."""
    def table(run_id):
        if run_id not in cache:
            cache[run_id] = _store.per_clip(run_id)
        acc: dict[tuple, list[float]] = {}
        for row in cache[run_id]:
            v = row.get(_PER_CLIP_KEY.get(metric, metric))
            if isinstance(v, (int, float)) and math.isfinite(float(v)):  # (a bool is an int: a pass)
                acc.setdefault((row.get("prompt"), row.get("seed")), []).append(float(v))
        return {k: float(np.mean(v)) for k, v in acc.items()}

    ta, tb = table(run_a), table(run_b)
    keys = sorted(set(ta) & set(tb), key=repr)
    return np.array([ta[k] for k in keys]), np.array([tb[k] for k in keys])


SET_LEVEL_METRICS = ("fvd", "kvd")
# resamples of a paired FVD/KVD test: each is two distances from draw counts, 40 ms at 1,000 clips
# of I3D's 400-d features on the 2-core machine at load 4 (`benchmarks/perf/leaderboard.py`: 8 s a
# test, 1.3 s a resample before session 38); only neighbours whose intervals overlap are tested,
# each pair once (`paired_cache`)
PAIRED_BOOT = 200


def _paired_features(run_a: str, run_b: str, cache: dict):
    """(reference [R, D], a [K, D], b [K, D]) for two runs that logged their FVD features on one
    backbone and one reference, clips matched by (prompt, seed); else (None, why not)."""
    def load(run_id):
        key = ("features", run_id)
        if key not in cache:
            cache[key] = _store.features(run_id)
        return cache[key]

    fa, fb = load(run_a), load(run_b)
    if fa is None or fb is None:
        return None, "a run has no logged features (made before session 36)"
    if fa.get("backbone") != fb.get("backbone"):
        return None, "the runs' FVD backbones differ"
    def by_key(f):
        out = {}
        for c in f["clips"]:
            if isinstance(c, dict):
                out.setdefault((str(c.get("prompt")), str(c.get("seed"))), c.get("features"))
        return out

    ta, tb = by_key(fa), by_key(fb)
    keys = sorted(set(ta) & set(tb))
    if len(keys) < 2:
        return None, "fewer than 2 clips matched by (prompt, seed)"
    try:  # a store anyone can write to: ragged, non-numeric or non-finite lists are not features
        ref_a, ref_b = _matrix(fa["reference"]), _matrix(fb["reference"])
        a, b = _matrix([ta[k] for k in keys]), _matrix([tb[k] for k in keys])
    except (TypeError, ValueError):
        return None, "a run's logged features are malformed"
    if len({m.shape[1] for m in (ref_a, ref_b, a, b)}) > 1:
        return None, "a run's logged features are malformed"
    # the same reference clips: by the reference folder's content digest where both runs logged it
    # (features computed on another machine differ in the last bits), else by the features
    # themselves, perhaps listed in another order
    da, db = fa.get("reference_digest"), fb.get("reference_digest")
    same = da == db if (da and db) else (ref_a.shape == ref_b.shape and np.allclose(
        np.unique(ref_a, axis=0), np.unique(ref_b, axis=0), rtol=1e-5, atol=1e-6))
    if not same:
        return None, "the runs were scored against different reference sets"
    if ref_a.shape[0] < 2:
        return None, "fewer than 2 reference clips"
    return (ref_a, a, b), ""


def _matrix(rows) -> np.ndarray:
    m = np.asarray(rows, dtype=np.float64)
    if m.ndim != 2 or min(m.shape) < 1 or not np.isfinite(m).all():
        raise ValueError("not a finite [N, D] matrix")
    return m


def _unpaired(cache: dict, metric: str, why: str) -> None:
    """Keep why a pair of neighbours fell back to CI overlap (the board's note names each reason once)."""
    whys = cache.setdefault(("why-unpaired", metric), [])
    if why not in whys:
        whys.append(why)


def _paired_set_level(above, row, metric: str, cache: dict) -> tuple[bool, str] | None:
    """The paired bootstrap of two runs' FVD (or KVD) against their shared reference, or None
    when the runs do not hold what it needs (then the CI overlap rule decides, and says why)."""
    tie, _ = _ci_overlap(above, row, metric)
    if not tie:  # disjoint 95% intervals: supported, and a paired test (its features, megabytes a
        # run, read only for the pairs tested) is not needed
        return False, "95% CIs do not overlap (no paired test needed)"
    got, why = _paired_features(above["run_id"], row["run_id"], cache)
    if got is None:
        return _unpaired(cache, metric, why)
    real, a, b = got
    try:
        est, p = _paired_test(real, a, b, metric, f"{above['model']} vs {row['model']}")
    except ValueError as e:  # a shape the checks above let through: the CI rule, said
        return _unpaired(cache, metric, f"a run's logged features are malformed ({e})")
    return _paired_verdict(est, p, f"paired bootstrap over {a.shape[0]} matched clips and {real.shape[0]} "
                                   "reference clips", "p")


def _paired_test(real, a, b, metric: str, what: str):
    """`paired_distance_diff` with PAIRED_BOOT resamples, its result kept between calls
    (`paired_cache`: the same features give the same answer) and a progress bar on a terminal
    while it runs (seconds at 1,000 clips of 400-d features)."""
    from tqdm.auto import tqdm

    from evalkit.metrics.fvd_paired import paired_distance_diff
    from evalkit.safe_text import printable
    from reports import paired_cache

    cache_key = paired_cache.key(metric, real, a, b, n_boot=PAIRED_BOOT, seed=0)
    kept = paired_cache.lookup(cache_key, n=a.shape[0])
    if kept is not None:
        return kept
    bar = lambda it: tqdm(it, total=PAIRED_BOOT, desc=f"paired {metric.upper()} {printable(what)}",  # noqa: E731
                          unit="resample", disable=None, leave=False)
    est, p = paired_distance_diff(real, a, b, metric, n_boot=PAIRED_BOOT, seed=0, progress=bar)
    paired_cache.store(cache_key, est, p)
    return est, p


def _paired_verdict(est, p: float, test: str, p_name: str) -> tuple[bool, str]:
    """Whether a paired difference is NOT supported, and the line that says why: supported only
    when the test's p is under ALPHA and the interval excludes 0 (one alone once marked "~"
    beside an interval that excluded 0). With no interval (differences that never vary and no
    range to bound them, `not_estimable`) it is not supported, whatever p says (NaN compared
    False, so "0 <= nan" read as an interval excluding 0)."""
    if math.isnan(est.ci_low) or math.isnan(est.ci_high):
        return True, (f"{test}: diff {est.value:.4g}, no interval ({est.method}), {p_name}={p:.3g}: "
                      "difference not established")
    tie = not p < ALPHA or est.ci_low <= 0 <= est.ci_high
    return bool(tie), f"{test}: diff {est.value:.4g} [{est.ci_low:.4g}, {est.ci_high:.4g}], {p_name}={p:.3g}"


def _ci_overlap(a, b, metric: str) -> tuple[bool, str]:
    lo_a, hi_a, lo_b, hi_b = (a[metric + "_ci_low"], a[metric + "_ci_high"], b[metric + "_ci_low"],
                              b[metric + "_ci_high"])
    if any(map(math.isnan, (lo_a, hi_a, lo_b, hi_b))):  # n = 1, not estimable or an open bound: not supported
        return True, "no CI to compare: difference not established"
    overlap = lo_a <= hi_b and lo_b <= hi_a
    return overlap, f"95% CIs {'overlap' if overlap else 'do not overlap'} (set-level metric: no paired test)"


def _tie(above, row, metric: str, cache: dict) -> tuple[bool, str]:
    """Whether the difference between two neighbours is NOT supported, and how that was decided."""
    from evalkit.metrics.stats import paired_bootstrap_diff

    if metric in PER_CLIP_METRICS:
        a, b = _paired(above["run_id"], row["run_id"], metric, cache)
        if a.size >= 2:
            est, p = paired_bootstrap_diff(a, b, seed=0, bounds=METRIC_BOUNDS.get(metric))
            return _paired_verdict(est, p, f"paired test over {a.size} matched clips", "randomisation p")
        tie, why = _ci_overlap(above, row, metric)
        return tie, f"fewer than 2 clips matched by (prompt, seed); {why}"
    if metric in SET_LEVEL_METRICS:
        paired = _paired_set_level(above, row, metric, cache)
        if paired is not None:
            return paired
    return _ci_overlap(above, row, metric)


def _past_the_ceiling(df, ranked, metric: str | None, lower: bool) -> list[str]:
    """Notes for ranked models that score at or past the ceiling (the real data) on the ranking
    metric: there the metric has stopped telling model from data at this N (FVD on a small set,
    an encoder that does not see what the model gets wrong), so their rank says little."""
    ceiling = df[df["role"] == "ceiling"]
    if metric is None or ceiling.empty or not np.isfinite(float(ceiling[metric].iloc[0])):
        return []
    c, name = float(ceiling[metric].iloc[0]), ceiling["model"].iloc[0]
    out = []
    for idx in ranked:
        v = float(df.loc[idx, metric])
        if (v <= c) if lower else (v >= c):
            out.append(f"{df.loc[idx, 'model']} scores {metric} {v:.4g}, at or past the ceiling ({name}: {c:.4g}): "
                       f"at this N {metric} does not tell it from the real data; read the other metrics beside it")
    # A control past the ceiling (a frozen clip's FVD under the world's own at N = 6: FVD's
    # small-sample bias is larger than what freezing costs) says the metric cannot rank anything here.
    for idx in df.index[(df["role"] == "control") & df[metric].notna()]:
        v = float(df.loc[idx, metric])
        if (v <= c) if lower else (v >= c):
            n = df.loc[idx].get(metric + "_n", math.nan)
            at_n = f"N = {int(n)}" if isinstance(n, (int, float)) and math.isfinite(n) else "this N"
            out.append(f"the control {df.loc[idx, 'model']} scores {metric} {v:.4g}, at or past the ceiling "
                       f"({name}: {c:.4g}): at {at_n} {metric} cannot tell even a control from the real data, "
                       f"so no order of {metric} in this table means anything; run more clips")
    return out


def leaderboard(suite_name: str, primary: str | None = None):
    """One row per model of `suite_name` (see the module docstring), ranked rows first, then the
    ceiling and control rows."""
    chosen, notes = _select_runs(suite_name)
    df, names = _frame(chosen)
    metric = pick_primary(df, names, primary)
    lower = metric in schema.LOWER_IS_BETTER
    df["rank"] = np.nan
    df["tie_with_above"] = False
    df["tie_test"] = ""
    if metric is None:
        notes.append("no model rows to rank (only the ceiling and controls)" if not (df["role"] == "model").any()
                     else "no metric to rank by: rows are unranked")
        df["_key"] = 0.0
    else:
        # Sort key: better first, rows without the metric last; ties broken by model name.
        df["_key"] = (df[metric] if lower else -df[metric]).fillna(math.inf)
    df["_role"] = df["role"].map(ROLE_ORDER).fillna(3)
    df = df.sort_values(["_role", "_key", "model"], kind="stable").reset_index(drop=True)
    ranked = df.index[(df["role"] == "model") & df[metric].notna()] if metric else []
    cache: dict = {}
    for i, idx in enumerate(ranked):
        df.loc[idx, "rank"] = i + 1
        if i:
            tie, why = _tie(df.loc[ranked[i - 1]], df.loc[idx], metric, cache)
            df.loc[idx, ["tie_with_above", "tie_test"]] = [tie, why]
    unpaired = cache.get(("why-unpaired", metric))
    if metric in schema.SCORE_METRICS and metric not in PER_CLIP_METRICS and (
            metric not in SET_LEVEL_METRICS or unpaired):
        # FVD and KVD are paired through the runs' logged features where both runs have them
        notes.append(f"{metric} is set-level: neighbours are compared by CI overlap, not a paired test"
                     + (f" ({'; '.join(unpaired)})" if unpaired else ""))
    notes += _past_the_ceiling(df, ranked, metric, lower)
    df["rank"] = df["rank"].astype("Int64")
    df = df.drop(columns=["_key", "_role"])
    front = ["rank", "tie_with_above", "model", "role"]
    df = df[front + [c for c in df.columns if c not in front]]
    df.attrs.update(suite=suite_name, experiment=schema.experiment_name(suite_name),
                    suite_hash=chosen["_hash"].iloc[0], primary=metric, lower_is_better=lower,
                    metrics=names, notes=notes)
    return df


# ------------------------------------------------------------------------------------- formats
def _num(x: float, digits: int = 4) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}g}"


def cell(row, m: str) -> str:
    """'value [lo, hi]' (or the value alone where the interval is not defined)."""
    v, lo, hi = row.get(m, math.nan), row.get(m + "_ci_low", math.nan), row.get(m + "_ci_high", math.nan)
    if isinstance(v, float) and math.isnan(v):
        return "—"
    if math.isnan(lo) and math.isnan(hi):
        return _num(v)
    digits = 3  # more where 3 would print a real interval as a point ("1 [1, 1]" for 0.99977-0.99990)
    while digits < 7 and lo != hi and _num(lo, digits) == _num(hi, digits):
        digits += 1
    return f"{_num(v, digits)} [{_num(lo, digits)}, {_num(hi, digits)}]"  # an open bound shows as —


def shown_metrics(df, narrow: bool = False) -> list[str]:
    """Headline (or, narrow, the table's) and cost metrics that at least one row has, and the
    ranking metric first where it is none of those (ranked by kvd, no kvd column said nothing)."""
    names = df.attrs.get("metrics", [])
    shown = [m for m in (*(TABLE if narrow else HEADLINE), *COST) if m in names and df[m].notna().any()]
    primary = df.attrs.get("primary")
    return shown if primary is None or primary in shown or primary not in names else [primary, *shown]


def display_rows(df, narrow: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and string cells shared by the table, markdown and HTML formats."""
    import pandas as pd

    metrics = shown_metrics(df, narrow)
    # N of the ranking metric (else of the first shown): the sample size a reader should know.
    n_of = df.attrs.get("primary") or (metrics[0] if metrics else None)
    header = ["rank", "tie", "model", "role", *metrics, "n"]
    out = []
    for _, r in df.iterrows():
        n = r.get(n_of + "_n", math.nan) if n_of else math.nan

        def own_n(m):  # a number resting on fewer clips than the row's n says so (the id/ood parts)
            k = r.get(m + "_n", math.nan)
            return "" if math.isnan(k) or math.isnan(n) or int(k) == int(n) else f" n={int(k)}"

        out.append(["" if pd.isna(r["rank"]) else str(int(r["rank"])),
                    MARK if r["tie_with_above"] else "", printable(r["model"]), r["role"],
                    *[cell(r, m) + (own_n(m) if cell(r, m) != "—" else "") for m in metrics],
                    "—" if math.isnan(n) else str(int(n))])
    return header, out


def caption(df) -> str:
    primary = df.attrs.get("primary")
    how = (f"ranked by {primary} ({'lower' if df.attrs.get('lower_is_better') else 'higher'} is better)"
           if primary else "unranked")
    return (f"Suite {df.attrs.get('suite')} (hash {str(df.attrs.get('suite_hash'))[:12]}), {how}; "
            f"values are 'value [95% CI]'.")


def footnotes(df, narrow: bool = False) -> list[str]:
    """The notes under a table, model names in them printable (a name with a newline forged a line)."""
    notes = [f"{MARK} the data do not support the difference from the model ranked just above "
             "(see tie_test in --format csv/json)."] if df["tie_with_above"].any() else []
    bare = [m for m in shown_metrics(df, narrow) if _without_ci(df, m)]
    if bare:  # "1382" beside "1.22e+03 [356, 2.06e+03]" read as a number known exactly
        notes.append(f"{', '.join(bare)}: a value without [CI] has no interval (one clip, or values that "
                     "do not vary, e.g. one clip repeated or every clip timed alike); a zero-width one would "
                     "claim a certainty the data cannot give.")
    return notes + [printable(n) for n in df.attrs.get("notes", [])]


def _without_ci(df, m: str) -> bool:
    """Whether some row has a value of `m` from 2 or more samples but neither bound."""
    cols = [m, m + "_ci_low", m + "_ci_high", m + "_n"]
    if not all(c in df for c in cols):
        return False
    v, lo, hi, n = (df[c].astype(float) for c in cols)
    return bool((v.notna() & lo.isna() & hi.isna() & (n >= 2)).any())


def _json_rows(df) -> list[dict]:
    import pandas as pd

    def num(x):
        return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else float(x)

    rows = []
    for _, r in df.iterrows():
        # what the rank is by and whether the row covers the whole suite travel with each row: a
        # file of rows said neither, and a quick run's row read as a whole-suite one (session 32)
        row = {"rank": None if pd.isna(r["rank"]) else int(r["rank"]), "model": r["model"],
               "role": r["role"], "tie_with_above": bool(r["tie_with_above"]), "tie_test": r["tie_test"],
               "ranked_by": df.attrs.get("primary"),
               "lower_is_better": None if df.attrs.get("primary") is None else bool(df.attrs.get("lower_is_better")),
               "max_prompts": None if pd.isna(r["max_prompts"]) else int(r["max_prompts"]),
               "run_id": r["run_id"], "suite_hash": r["suite_hash"]}
        for m in df.attrs.get("metrics", []):
            n = num(r[m + "_n"])
            row[m] = {"value": num(r[m]), "ci_low": num(r[m + "_ci_low"]), "ci_high": num(r[m + "_ci_high"]),
                      "n": None if n is None else int(n)}
        rows.append(row)
    return rows


def _plain(header, rows) -> str:
    from evalkit.safe_text import display_width, ljust

    # terminal columns, not characters: a model folder named in CJK is two columns a character
    widths = [max(display_width(h), *(display_width(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(ljust(c, w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def md_escape(text: str) -> str:
    """Text safe in markdown: no HTML, no table breaks, and no markdown syntax (a model named
    `![a](https://...)` became an image fetched from outside wherever the table was rendered)."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_\[\]!|])", r"\\\1", text)


def md_cell(text: str) -> str:
    """evalkit's own cells (numbers, marks): no HTML, no table breaks."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def _md(header, rows) -> str:
    # a model name is the user's folder name: escaped whole (no HTML, no links or images)
    model = header.index("model")
    return "\n".join(["| " + " | ".join(map(md_cell, header)) + " |", "|" + "---|" * len(header),
                      *("| " + " | ".join(md_escape(c) if i == model else md_cell(c) for i, c in enumerate(r))
                        + " |" for r in rows)])


FORMATS = ("table", "md", "csv", "json", "html")


def _csv_cell(v):
    """A text cell a spreadsheet shows as text: control characters (a bare CR split a row for some
    readers; ESC reached the terminal) as visible escapes, and a leading = + - @ or tab, which
    Excel and LibreOffice run as a formula, behind a quote (OWASP's advice; session 33)."""
    if not isinstance(v, str):
        return v
    v = printable(v)
    return "'" + v if v[:1] in ("=", "+", "-", "@", "\t") else v


def format_leaderboard(df, fmt: str = "table") -> str:
    """The leaderboard as text: table (plain, aligned), md, csv (every column), json (DESIGN's
    shape: a list of rows, each metric {value, ci_low, ci_high, n}) or html (the suite report)."""
    import json

    if fmt == "json":
        return json.dumps(_json_rows(df), indent=1)
    if fmt == "csv":  # N as integers, booleans as true/false (pandas wrote 6.0 and Python's False)
        import pandas as pd

        out = df.copy()
        for c in [c for c in out.columns if c.endswith("_n")] + ["rank"]:
            vals = pd.to_numeric(out[c], errors="coerce")
            finite = vals[np.isfinite(vals)]
            if (finite == finite.round()).all():  # a hostile store's N of 1.5 stays as logged (it was exit 70)
                out[c] = vals.round().astype("Int64")
        for c in out.columns:  # names come from the store: a formula or a bare CR must not act as one
            if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):  # (pandas 3 infers "str")
                out[c] = out[c].map(_csv_cell)
        out["tie_with_above"] = out["tie_with_above"].map({True: "true", False: "false"})
        out.insert(out.columns.get_loc("tie_test") + 1, "ranked_by", df.attrs.get("primary"))
        out.insert(out.columns.get_loc("ranked_by") + 1, "lower_is_better",
                   "true" if df.attrs.get("lower_is_better") else "false")
        return out.to_csv(index=False)
    if fmt == "html":
        from reports.html import suite_report

        return suite_report(df)
    if fmt not in ("table", "md"):
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    header, rows = display_rows(df, narrow=fmt == "table")
    if fmt == "md":
        return "\n".join([caption(df), "", _md(header, rows), "", *(f"- {md_escape(n)}" for n in footnotes(df))])
    return "\n".join([caption(df), _plain(header, rows), *footnotes(df, narrow=True)])
