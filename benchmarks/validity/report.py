"""Reporting of the validity study (`metrics.py`): the markdown table, the one-line JSON summary
and the MLflow run, with the pass thresholds they judge against.

Kept apart from the study so that how results are computed and how they are shown change
independently.
"""

from __future__ import annotations

import numpy as np

from evalkit.metrics.stats import Estimate

TARGET_RHO = 0.95
ATTRIBUTE_TARGET = 0.9  # CLIP top-1 against one-attribute-changed captions, for colour and shape


def _f(x) -> str:
    return "nan" if x is None or not np.isfinite(x) else f"{x:.4g}"


def _ci(e: Estimate) -> str:
    return f"{_f(e.value)} [{_f(e.ci_low)}, {_f(e.ci_high)}]"


def markdown(res: dict) -> str:
    lines = [f"## Severity sweeps (N = {res['n']} world clips, {res['n_real_segments']} real segments, "
             f"severities {res['severities']}{', --quick' if res['quick'] else ''})", "",
             "| metric | corruption | data | N | levels | mean score per severity | rho (worse = +) [95% CI] | >= 0.95 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in res["rows"]:
        lvls = ", ".join(_f(x) for x in r["levels"])
        means = ", ".join(_f(x) for x in r["means"])
        ok = "info" if r.get("info") else "yes" if r["rho"].value >= TARGET_RHO else "**no**"
        lines.append(f"| {r['metric']} | {r['corruption']} | {r['data']} | {r['n']} | {lvls} | {means} | "
                     f"{_ci(r['rho'])} | {ok} |")
    fv = res["fvd"]
    lines += ["", f"## FVD / KVD: real set A vs disjoint real set B (N = {fv['n']} each), and B corrupted at the top severity",
              "", "| metric | real vs real [95% CI] | blurred [95% CI] | noise [95% CI] | real < blurred < noise | CIs separated |",
              "| --- | --- | --- | --- | --- | --- |"]
    for m in ("fvd", "kvd"):
        lines.append(f"| {m} | {_ci(fv['ci'][(m, 'real')])} | {_ci(fv['ci'][(m, 'blur')])} | "
                     f"{_ci(fv['ci'][(m, 'noise')])} | {'yes' if fv[f'{m}_ordered'] else '**no**'} | "
                     f"{'yes' if fv[f'{m}_ordered_ci_separated'] else 'no'} |")
    ph = res["physics"]
    lines += ["", f"## Physics probes on control violations (severity 1), N = {res['probe_n']} world clips",
              "",
              f"Clean pass rate: {_ci(ph['clean_pass'])} (target >= 0.99)", "",
              "| violation | law | clips | catch rate [95% CI] (>= 0.95) | false alarms on other laws [95% CI] (<= 0.02) | which laws (count) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for v, d in ph["violations"].items():
        fa = _ci(d["false_alarm"]) + f" of {d['false_alarm'].n}" if d["false_alarm"] else "n/a"
        which = ", ".join(f"{k} ({c})" for k, c in d["false_alarm_laws"].items()) or "-"
        lines.append(f"| {v} | {d['law']} | {d['catch'].n} | {_ci(d['catch'])} | {fa} | {which} |")
    lines += ["", f"## CLIP (world-clip): caption vs the same caption with one attribute changed, "
              f"N = {res['probe_n']} world clips", "",
              "| attribute | clips | top-1 [95% CI] | chance | pairwise (chance 0.5) | target |",
              "| --- | --- | --- | --- | --- | --- |"]
    for a, d in res["attributes"].items():
        target = "-"
        if a in ("color", "shape"):
            target = ("yes" if d["top1"].value >= ATTRIBUTE_TARGET else "**no**") + f" (>= {ATTRIBUTE_TARGET})"
        lines.append(f"| {a} | {d['n']} | {_ci(d['top1'])} | {_f(d['chance_top1'])} | {_f(d['pairwise'])} | "
                     f"{target} |")
    return "\n".join(lines) + "\n"


def summary(res: dict, seconds: float) -> dict:
    rows = [r for r in res["rows"] if not r.get("info")]
    rhos = {f"{r['metric']}/{r['corruption']}/{r['data']}": round(r["rho"].value, 4) for r in rows}
    met = [k for k, r in zip(rhos, rows) if r["rho"].value >= TARGET_RHO]
    info = {f"{r['metric']}/{r['corruption']}/{r['data']}": round(r["rho"].value, 4)
            for r in res["rows"] if r.get("info")}
    ph = res["physics"]
    return {"study": "validity", "n": res["n"], "quick": res["quick"], "seconds": round(seconds, 1), "rho": rhos,
            "rho_met": len(met), "rho_total": len(rhos),
            "fvd_ordered": res["fvd"]["fvd_ordered"], "kvd_ordered": res["fvd"]["kvd_ordered"],
            "physics_clean_pass": round(ph["clean_pass"].value, 4),
            "physics_catch": {v: round(d["catch"].value, 4) for v, d in ph["violations"].items()},
            "physics_false_alarm": {v: round(d["false_alarm"].value, 4) for v, d in ph["violations"].items()
                                    if d["false_alarm"]},
            "rho_info": info, "probe_n": res["probe_n"],
            "clip_attribute_top1": {a: round(d["top1"].value, 4) for a, d in res["attributes"].items()}}


def log_mlflow(res: dict, table: str, summ: dict) -> None:
    from evalkit.metrics.backbones import get_backbone
    from evalkit.tracking import log_estimate, log_json, log_metric_ci, start_run

    params = {"n": res["n"], "quick": res["quick"], "severities": res["severities"], "levels": res["levels"],
              "video_backbone": get_backbone("world-video-encoder").protocol().get("sha256", ""),
              "clip_backbone": get_backbone("world-clip").protocol().get("sha256", "")}
    with start_run("evalkit-validity", "validity-quick" if res["quick"] else "validity", params=params):
        for r in res["rows"]:
            e = r["rho"]
            corr = r["corruption"].split()[0] + (".floor" if r.get("info") else "")
            name = f"rho.{r['metric']}.{corr}.{r['data'].split()[0]}"
            log_metric_ci(name, e.value, e.ci_low, e.ci_high, e.n)
        for (m, k), e in res["fvd"]["ci"].items():
            log_estimate(f"{m}.{k}", e)
        ph = res["physics"]
        log_estimate("physics.clean_pass", ph["clean_pass"])
        for v, d in ph["violations"].items():
            log_estimate(f"physics.catch.{v}", d["catch"])
            if d["false_alarm"]:
                log_estimate(f"physics.false_alarm.{v}", d["false_alarm"])
        for a, d in res["attributes"].items():
            log_estimate(f"clip.attribute_top1.{a}", d["top1"])
        import mlflow

        mlflow.log_text(table, "validity_table.md")
        log_json(summ, "validity_summary.json")
