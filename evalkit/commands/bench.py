"""`evalkit bench ...`, `leaderboard`, `audit` and `report`: suites, MLflow records and reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import click

from evalkit.atomic import check_not_input, check_output_file, check_parents, is_stdout
from evalkit.safe_text import printable
from evalkit.commands.options import guidance_scale, positive
from evalkit.errors import BadInputError, UnavailableError, special_file


@click.group()
def bench():
    """Versioned benchmark suites."""


CSV_FILE_BOM = "\ufeff"  # what a CSV file evalkit writes starts with (not a CSV on stdout)

_BENCH_SUMMARY = ("fvd", "clip_alignment", "physics_score_id", "physics_score_ood", "physics_ood_gap",
                  "provenance_valid_rate", "watermark_survival_crf30", "detector_catch_rate", "cost.clips_per_s")


@bench.command("run")
@click.option("--suite", required=True, help="A shipped suite (world-v1) or a suite YAML file.")
@click.option("--model", "models", required=True, multiple=True,
              help="uvit:PRESET_OR_CKPT, folder:DIR, diffusers:ID, world, control:noise|frozen|shuffled; repeatable.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where clips are generated: here, or Ray actors (pip install 'evalkit[ray]').")
@click.option("--workers", type=int, callback=positive, help="ray: actors (default: one per cluster CPU).")
@click.option("--ray-address", help="ray: a running cluster (default: $RAY_ADDRESS, else a local instance).")
@click.option("--out", type=click.Path(readable=False, path_type=Path), default=Path("evalkit-bench"), show_default=True,
              help="Where each model's clips, index and signed bundle go (OUT/SUITE/MODEL-KEY).")
@click.option("--max-prompts", type=int, callback=positive,
              help="Quick run: the first N prompts, taking the suite's parts in turn (part of the run key).")
@click.option("--sampler", help="uvit: sampler; diffusers: a scheduler name (default: the model's).")
@click.option("--steps", type=int, callback=positive, help="uvit, diffusers: sampling steps.")
@click.option("--guidance", type=float, callback=guidance_scale, help="uvit, diffusers: guidance scale (default: the model's own, "
              "as for generate).")
@click.option("--guidance-rescale", type=click.FloatRange(0, 1), help="uvit: guidance rescale (as for generate).")
@click.option("--guidance-interval", metavar="LO:HI", help="uvit: guidance interval (as for generate).")
@click.option("--frames", metavar="N|suite", help="diffusers: frames a clip (default: the pipeline's own; suite: the "
              "suite's video.frames; a pipeline may round it, the index says).")
@click.option("--size", metavar="S|HxW|suite", help="diffusers: frame size in pixels (default: the pipeline's own; "
              "suite: the suite's).")
@click.option("--fps", metavar="F|suite", help="diffusers: the clips' frame rate, given to a pipeline conditioned on "
              "one (default: the pipeline's own, else its model's published rate; suite: the suite's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), help="uvit, diffusers: where the model runs "
              "(default cpu; a GPU's clips are another run).")
def bench_run(suite, models, executor, workers, ray_address, out, max_prompts, sampler, steps, guidance,
              guidance_rescale, guidance_interval, frames, size, fps, device):
    """Run a suite over one or more models: one MLflow run per model in experiment
    evalkit-bench-SUITE; a killed run started again resumes without repeating work."""
    from benchmarks.executors import get_executor
    from benchmarks.runner import check_out_dir, run_suite
    from benchmarks.suite import load_suite

    if executor == "local" and (workers or ray_address):
        raise BadInputError("--workers/--ray-address: only with --executor ray")
    if out.exists() and not out.is_dir():  # before any run is opened in MLflow
        raise BadInputError(f"--out {out}: is a file; give a folder for the clips and bundles")
    check_parents(out)
    s = load_suite(suite)
    shared = {k: v for k, v in (("sampler", sampler), ("steps", steps), ("guidance", guidance)) if v is not None}
    uvit_only = {k: v for k, v in (("guidance_rescale", guidance_rescale), ("guidance_interval", guidance_interval))
                 if v is not None}
    if uvit_only and any(spec.startswith("diffusers:") for spec in models):
        flags = "/".join("--" + k.replace("_", "-") for k in uvit_only)
        raise BadInputError(f"{flags}: only for uvit models; run the diffusers model in a bench run of its own")

    shape = _clip_shape(frames, size, fps)
    # each group of options with the model kinds that take it: refused when no model of the run
    # takes one, named in a warning for the models that do not when others do (`generate`
    # refuses them for such a model too)
    groups = [(shared, ("uvit:", "diffusers:"), "uvit (and diffusers)",
               "render or read their clips without sampling"),
              (uvit_only, ("uvit:",), "uvit", "do not take them"),
              (shape, ("diffusers:",), "diffusers",
               "make the suite's format (world, control), their training's (uvit) or their files' (folder)"),
              ({"device": device} if device else {}, ("uvit:", "diffusers:"), "uvit and diffusers",
               "do not run a network (world, control, folder)")]
    for given, kinds, who, why in groups:
        if not given:
            continue
        flags = "/".join("--" + k.replace("_", "-") for k in given)
        deaf = [spec for spec in models if not spec.startswith(kinds)]
        if len(deaf) == len(models):
            raise BadInputError(f"{flags}: only for {who} models; {', '.join(models)} {why}")
        for spec in deaf:
            click.echo(printable(f"evalkit: warning: {flags} do not apply to {spec} (used for the other models)"), err=True)

    def options(spec: str) -> dict | None:
        taken = {k: v for given, kinds, _, _ in groups if spec.startswith(kinds) for k, v in given.items()}
        return taken or None

    check_out_dir(out, s.name)  # a folder that cannot be written: before a cluster starts or a run opens
    pool = get_executor(executor, **({"address": ray_address, "workers": workers} if executor == "ray" else {}))
    results = []
    try:
        for spec in models:
            r = run_suite(s, spec, out_dir=out, max_prompts=max_prompts, executor=pool,
                          generator_options=options(spec))
            for w in r.warnings:
                click.echo(printable(f"evalkit: warning: {spec}: {w}"), err=True)
            note = {"complete": "already complete: returned the earlier run", "resumed": "resumed an incomplete run",
                    "new": "new run"}[r.status]
            where = f"clips and bundle in {r.folder}" if r.folder is not None else "no clips on disk"
            click.echo(printable(f"{spec}: MLflow run {r.run_id} ({note}); {where}"))
            results.append(r)
    finally:
        pool.close()
    click.echo(f"\nsuite {s.name} (sha256 {s.hash[:16]}), experiment evalkit-bench-{s.name}")
    click.echo(_summary_table(results))


def _clip_shape(frames, size, fps) -> dict:
    """--frames/--size/--fps as generator options: each "suite" (the runner takes the suite's) or
    a value checked as `generate` checks it (EVALKIT_MAX_FRAMES, EVALKIT_MAX_PIXELS)."""
    from benchmarks.clip_shape import SUITE
    from evalkit.commands.generator import _clip_shape_options

    raw = {"frames": frames, "size": size, "fps": fps}
    out = {k: SUITE for k, v in raw.items() if v is not None and v.strip().lower() == SUITE}
    values = {k: v for k, v in raw.items() if v is not None and k not in out}
    for key, kind, least, most, what in (("frames", int, 1, None, "a whole number of frames"),
                                         ("fps", float, 0.01, 1000, "a frame rate from 0.01 to 1000")):
        if key in values:
            try:
                values[key] = kind(values[key])
                ok = values[key] >= least and (most is None or values[key] <= most)
            except ValueError:
                ok = False
            if not ok:
                raise BadInputError(f"--{key} {raw[key]}: give {what}, or 'suite' for the suite's video.{key}")
    if values:  # generate's own checks and parsing (S or HxW)
        out.update(_clip_shape_options("diffusers:", values.get("frames"), values.get("size"), values.get("fps"), None))
    return out


def _summary_table(results) -> str:
    """The suite's headline metrics, one column a model: value [95% CI] n=N, columns as wide as
    their widest cell and two spaces apart, model names whole."""
    from evalkit.safe_text import display_width, ljust, printable, rjust

    rows = [["metric", *(printable(r.model) for r in results)]]
    for name in _BENCH_SUMMARY:
        cells = [name]
        for r in results:
            m = r.metrics.get(name)
            if m is not None:  # NaN as null: the "nan" of a bound that is not estimable is not printed
                m = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in m.items()}
            if m is None or m.get("value") is None:
                cells.append("-")
            elif m.get("ci_low") is None and m.get("ci_high") is None:  # n = 1, or values that do not
                cells.append(f"{m['value']:.4g} (no CI) n={m['n']}")  # vary (not-estimable): as `score` says
            else:  # a bound may be open (clips/s when the wall time's lower bound reaches 0)
                lo = "-inf" if m.get("ci_low") is None else f"{m['ci_low']:.3g}"
                hi = "inf" if m.get("ci_high") is None else f"{m['ci_high']:.3g}"
                cells.append(f"{m['value']:.3g} [{lo}, {hi}] n={m['n']}")
        rows.append(cells)
    widths = [max(display_width(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(ljust(c, w) if i == 0 else rjust(c, w) for i, (c, w) in enumerate(zip(row, widths)))
                     .rstrip() for row in rows)


@bench.command("verify")
@click.argument("bundle", type=click.Path(readable=False, path_type=Path))
@click.option("--clips", type=click.Path(readable=False, path_type=Path), help="The run's folder of clips: check every SHA-256.")
@click.option("--trust", type=click.Path(readable=False, path_type=Path), help="Trust anchors PEM (e.g. the project's ca.pem).")
@click.option("--recompute", is_flag=True, help="Score the clips again and compare the numbers (N exactly, values to a relative 1e-6).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench_verify(bundle, clips, trust, recompute, as_json):
    """Check a bench run's signed result bundle (BUNDLE: bundle.json, or the run's folder, whose
    clips are then checked too). Exit 0 when everything checks, 1 when a signature, hash or
    recomputed number does not."""
    from benchmarks.bundle import RECOMPUTE_REL_TOL, verify_bundle

    if clips is None and Path(bundle).is_dir():
        # the run's folder holds both the bundle and the clips: always checked (with its index.jsonl
        # deleted, a replaced clip passed as OK, session 33)
        clips = Path(bundle)
    r = verify_bundle(bundle, clips=clips, trust=trust, recompute=recompute)
    if as_json:
        click.echo(json.dumps(r, default=str))
    else:
        from evalkit.safe_text import printable

        sig = r["signature"]
        trusted = {True: f"trusted: chains to {sig.get('anchor')}", False: f"NOT trusted by {sig.get('anchor')}",
                   None: "no trust anchor"}[sig.get("trusted")]
        lines = [f"{r['bundle']}: suite {r['suite']}, model {r['model']}",
                 f"  signature: {'intact' if sig.get('valid') else 'INVALID'} ({sig.get('signer')}; {trusted})"]
        if r["clips"] is not None:
            c = r["clips"]
            unmatched = len(c["mismatched"]) + len(c["missing"]) + len(c.get("outside", [])) + \
                len(c.get("not_regular", []))
            lines.append(f"  clips: {c['checked'] - unmatched}/{c['checked']} match")
        if r["recompute"] is not None:
            rc = r["recompute"]
            lines.append(f"  recomputed: {rc['checked'] - len(rc['mismatched'])}/{rc['checked']} metrics equal "
                         f"(N exactly, values to {RECOMPUTE_REL_TOL:g} of their size)")
        if r["recompute"] is not None and r["recompute"].get("note"):
            lines.append(f"  note: {r['recompute']['note']}")
        lines += [f"  problem: {p}" for p in r["problems"]]
        lines.append("  OK" if r["ok"] else "  FAILED")
        # the bundle's strings are its writer's: none may print a line of its own ("OK")
        click.echo("\n".join(printable(x) for x in lines))
    raise click.exceptions.Exit(r["exit_code"])


@click.command()
@click.option("--suite", required=True, help="A suite's name, or the suite YAML file bench run was given.")
@click.option("--format", "fmt", type=click.Choice(["table", "md", "csv", "json", "html"]),
              help="Output format (default: table; with --out, from its suffix: .csv, .md, .json, .html).")
@click.option("--rank-by", help="Metric to rank by (default: fvd, else physics_score, else clip_alignment).")
@click.option("--out", type=click.Path(readable=False, path_type=Path), help="Write to this file instead of stdout.")
def leaderboard(suite, fmt, rank_by, out):
    """Rank models of a suite from MLflow: each metric with its 95% CI and N; `~` marks a
    difference from the model above that a paired bootstrap (CI overlap for FVD) does not support."""
    from reports import write_text_atomic
    from reports.leaderboard import format_leaderboard
    from benchmarks.suite import suite_name
    from reports.leaderboard import leaderboard as make_board

    from evalkit.tracking import check_store_exists

    if out is not None and str(out) == "-":  # stdout, as usual (it wrote a file named "-")
        out = None
    if fmt is None:  # `--out board.csv` wrote the aligned table into a .csv
        suffix = out.suffix.lower() if out is not None else ""
        fmt = {".csv": "csv", ".md": "md", ".json": "json", ".html": "html", ".htm": "html"}.get(suffix, "table")
    if out is not None:
        check_output_file(out, f"leaderboard.{ {'table': 'txt'}.get(fmt, fmt)}")  # before the store is read
    check_store_exists()
    board = make_board(suite_name(suite), primary=rank_by)
    text = format_leaderboard(board, fmt)
    if fmt in ("csv", "json"):  # the other formats carry the notes; keep machine-readable stdout clean
        for note in board.attrs.get("notes", []):
            click.echo(f"evalkit: note: {note}", err=True)
    if out is not None:
        if fmt == "csv" and not is_stdout(out) and special_file(out) is None:  # a file, not /dev/stdout
            # a CSV file starts with a UTF-8 BOM: Excel reads one without it in the system's code page
            # (`modèle` showed as `modÃ¨le`); pandas and csv with utf-8-sig drop it. stdout stays plain
            text = CSV_FILE_BOM + text
        click.echo(f"wrote {fmt} leaderboard of {len(board)} rows to {printable(write_text_atomic(out, text))}")
    else:
        click.echo(text)


@click.command()
@click.option("--model", required=True)
@click.option("--policy", required=True, type=click.Path(readable=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@click.option("--run", "run_id", help="Audit this existing bench run instead of running the policy's suite.")
@click.option("--out-dir", type=click.Path(readable=False, path_type=Path), default=Path("evalkit-bench"), show_default=True,
              help="Where the bench run keeps the model's clips.")
@click.option("--html", "html_out", type=click.Path(readable=False, path_type=Path), help="Also write the HTML audit report here.")
def audit(model, policy, as_json, run_id, out_dir, html_out):
    """Audit a model release against a policy YAML: pass/fail per check with its evidence
    (value, 95% CI, N), logged to MLflow. Exit 0 only when every check passes, 1 otherwise."""
    from evalkit.errors import EXIT_CHECK_FAILED
    from reports import write_text_atomic
    from reports.audit import evaluate_policy, format_text, load_policy, log_audit

    if html_out is not None:  # the policy itself first: named even when it does not parse
        check_not_input(check_output_file(html_out, "audit.html"), [policy], "--html")
    pol = load_policy(policy)  # fail fast: a bad policy costs no generation
    if html_out is not None:  # never over what the audit reads: the policy, its suite, a folder model
        suite_file = Path(pol.suite) if Path(pol.suite).is_file() else None
        from generators.base import canonical_spec

        # the folder as the run names it (`~` expanded, resolved): the raw spec missed `folder:~/outs`
        folder = Path(canonical_spec(model).split(":", 1)[1]) if model.startswith("folder:") else None
        check_not_input(check_output_file(html_out, "audit.html"), [policy, suite_file, folder], "--html")
    if run_id is not None:  # only read: a mistyped store path is named, never created
        from evalkit.tracking import check_store_exists

        check_store_exists()
    if run_id is None:
        if out_dir.exists() and not out_dir.is_dir():  # before any run is opened in MLflow, as bench run
            raise BadInputError(f"--out-dir {out_dir}: is a file; give a folder for the clips and bundles")
        check_parents(out_dir)
        try:
            from benchmarks.runner import run_suite
        except ImportError as e:
            raise UnavailableError(f"audit needs the bench runner (benchmarks/runner.py): {e}; "
                                   "pass --run RUN_ID to audit an existing bench run") from None
        res = run_suite(pol.suite, model, out_dir=out_dir)
        run_id = getattr(res, "run_id", res)
    result = evaluate_policy(pol, run_id)
    from generators.base import canonical_spec

    if canonical_spec(result.model) != canonical_spec(model):
        raise BadInputError(f"--run {run_id} is a bench run of {result.model!r}, not of --model {model!r}")
    if result.suite != pol.suite_name:
        raise BadInputError(f"--run {run_id} is a run of suite {result.suite!r}; the policy names "
                            f"{pol.suite_name!r}")
    audit_run = log_audit(result, pol)
    if html_out is not None:
        from reports.html import audit_report

        write_text_atomic(html_out, audit_report(result))
    if as_json:
        click.echo(json.dumps({**result.to_dict(), "audit_run_id": audit_run}))
    else:
        click.echo(format_text(result))
        click.echo(f"MLflow run {audit_run} in experiment 'evalkit-audit'")
    raise click.exceptions.Exit(0 if result.passed else EXIT_CHECK_FAILED)


@click.command()
@click.option("--suite", required=True)
@click.option("--out", required=True, type=click.Path(readable=False, path_type=Path), help="The HTML file to write.")
@click.option("--rank-by", help="Metric to rank by (as `leaderboard`).")
@click.option("--check", is_flag=True, help="Open it in headless Chromium: no console errors, every image "
              "decodes; saves a screenshot beside it (OUT.png) and logs both to MLflow ('evalkit-reports').")
def report(suite, out, rank_by, check):
    """A self-contained HTML report of a suite: leaderboard, metric bars with CIs, physics laws
    ID vs OOD, detector and watermark curves, sample frames next to their prompts."""
    from evalkit.errors import CheckFailedError, MissingResourceError
    from reports import write_text_atomic
    from benchmarks.suite import suite_name
    from reports.html import log_report, suite_report
    from reports.leaderboard import leaderboard as make_board

    from evalkit.tracking import check_store_exists

    check_output_file(out, "report.html")  # before the store is read
    if check:  # the screenshot goes beside it, as OUT.png: never over the report
        shot = out.with_suffix(".png")
        if shot == out or shot.is_dir():
            raise BadInputError(f"--out {out}: --check writes its screenshot to {shot}; give the report a .html name")
    check_store_exists()
    path = write_text_atomic(out, suite_report(make_board(suite_name(suite), primary=rank_by)))
    click.echo(f"wrote {printable(path)}")
    if check:
        from reports.browser import check_page, find_browser

        if find_browser() is None:
            raise MissingResourceError("--check needs Chromium (apt-get install chromium); the report is written")
        res = check_page(path, screenshot=path.with_suffix(".png"))
        run_id = log_report(path, res.screenshot, suite=suite)
        click.echo(f"checked in Chromium: {res.images} images, {res.images_bad} not decoded, "
                   f"{res.js_errors + len(res.console)} console errors; screenshot {res.screenshot}; "
                   f"MLflow run {run_id} in 'evalkit-reports'")
        if not res.ok:
            raise CheckFailedError(f"{path}: the report did not render cleanly in Chromium "
                                   f"({res.images_bad} bad images, {res.js_errors} script errors, "
                                   f"{len(res.console)} console messages)")


COMMANDS = [bench, leaderboard, audit, report]  # what `evalkit.cli` adds to the `evalkit` group
