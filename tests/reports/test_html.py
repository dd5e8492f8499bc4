"""Self-contained HTML reports: every section present or explained, every image a decodable inline
PNG, nothing fetched from outside; and, where Chromium is installed, the page opened headless with
no console errors and every image decoded, its screenshot kept in MLflow."""

from __future__ import annotations

import base64
import io
import re

import pytest

from conftest import SUITE
from evalkit.cli import main
from reports import write_text_atomic
from reports.audit import evaluate_policy, parse_policy
from reports.browser import check_page, find_browser
from reports.html import audit_report, log_report, suite_report
from reports.leaderboard import leaderboard

IMG = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def images(page: str) -> list:
    from PIL import Image

    out = []
    for b64 in IMG.findall(page):
        im = Image.open(io.BytesIO(base64.b64decode(b64)))
        im.load()  # raises on a truncated or corrupt PNG
        out.append(im.size)
    return out


def assert_self_contained(page: str):
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert not re.search(r'(src|href)="(?!data:)', page), "a resource outside the file"
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert page.count("<img") == len(IMG.findall(page))  # every image inline


def log_watermark_summary():
    """A summary with every attack name the benchmark's grid writes (combined ones such as
    `h264_crf18+crf30` included: the report once crashed on them)."""
    from benchmarks.robustness.attacks import ATTACKS
    from evalkit import tracking

    crf = {23: (0.99, 0.98), 30: (0.97, 0.9), 40: (0.9, 0.6), 50: (0.7, 0.2)}
    attacks = {}
    for name in ATTACKS:
        b, p = crf.get(int(name[len("h264_crf"):]) if name[len("h264_crf"):].isdigit() else -1, (0.95, 0.8))
        attacks[name] = {"bit_acc": b, "payload": p, "detect": p}
    with tracking.start_run("watermark-robustness", run_name="quick"):
        tracking.log_json({"attacks": attacks, "clips": 6, "psnr_mean": 44.1}, "watermark_summary.json")


_RENDERED: dict[str, str] = {}


@pytest.fixture
def report_html(bench_store):
    """Rendered once per session (a second or two: artifact downloads and four figures)."""
    if "suite" not in _RENDERED:
        log_watermark_summary()
        _RENDERED["suite"] = suite_report(leaderboard(SUITE))
    return _RENDERED["suite"]


def test_suite_report_has_every_section_with_inline_images(report_html):
    assert_self_contained(report_html)
    for heading in ("Leaderboard", "Metrics with 95% CI",
                    "Physics laws: in-distribution vs out-of-distribution",
                    "Detectors: ROC and calibration", "Watermark robustness", "Samples"):
        assert f"<h2>{heading}</h2>" in report_html
    sizes = images(report_html)
    # bars, laws, ROC + calibration, watermark, and a grid for every run but the control's
    assert len(sizes) == 4 + 4 and all(w > 10 and h > 10 for w, h in sizes)
    assert "<td>uvit:twin</td>" in report_html
    assert "a ball 10 falls" in report_html and "control:frozen: no sample grid" in report_html
    assert "data-images-ok" in report_html  # the load-time check the browser test reads


def test_sections_without_data_say_so(bench_store):
    from benchmarks import schema
    from evalkit import tracking
    import mlflow

    tags = {schema.TAG_KIND: "bench", schema.TAG_SUITE: "bare", schema.TAG_SUITE_HASH: "x",
            schema.TAG_MODEL: "uvit:a", schema.TAG_ROLE: "model"}
    with tracking.start_run(schema.experiment_name("bare"), tags=tags):
        tracking.log_metric_ci("fvd", 10, 8, 12, 5)
        mlflow.set_tag(schema.TAG_COMPLETE, "true")
    page = suite_report(leaderboard("bare"), watermark_experiment="no-such-experiment")
    assert_self_contained(page)
    assert "no per-law physics rates" in page and "No detector curves" in page
    assert "No watermark robustness run" in page and "uvit:a: no sample grid" in page
    assert len(images(page)) == 1  # just the metric bars


def test_audit_report(bench_store):
    pol = parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 150}, "kvd": {"max": 1}}})
    page = audit_report(evaluate_policy(pol, bench_store["uvit:good"]))
    assert_self_contained(page)
    assert 'class="badge fail">FAIL<' in page and "not measured" in page and "100 [90, 110] (n=40)" in page
    assert len(images(page)) == 1


def test_cli_html_outputs(bench_store, tmp_path, capsys):
    assert main(["leaderboard", "--suite", SUITE, "--format", "html"]) == 0
    assert capsys.readouterr().out.startswith("<!DOCTYPE html>")
    out = tmp_path / "r" / "report.html"
    assert main(["report", "--suite", SUITE, "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>") and not list(out.parent.glob(".*partial"))


def test_write_is_atomic(tmp_path):
    p = write_text_atomic(tmp_path / "a" / "x.html", "one")
    write_text_atomic(p, "two")
    assert p.read_text() == "two" and [f.name for f in p.parent.iterdir()] == ["x.html"]
    # a folder given as the file, or a file where a folder should be: one line, nothing written
    from evalkit.errors import BadInputError

    with pytest.raises(BadInputError, match="is a folder"):
        write_text_atomic(p.parent, "three")
    with pytest.raises(BadInputError, match="is a file, not a folder"):
        write_text_atomic(p / "inside.html", "three")
    assert p.read_text() == "two" and [f.name for f in p.parent.iterdir()] == ["x.html"]


BROWSER = find_browser()
needs_browser = pytest.mark.skipif(
    BROWSER is None, reason="no headless Chromium on PATH (chromium, chromium-browser, google-chrome): "
    "install Debian's `chromium` to run this check; .ci/run installs it")


@needs_browser
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    import mlflow

    page = write_text_atomic(tmp_path / "suite.html", report_html)
    res = check_page(page, screenshot=tmp_path / "suite.png")
    assert res.checked, "the page's load-time check did not run"
    assert res.images == 8 and res.images_bad == 0, res
    assert res.js_errors == 0 and res.console == [], res
    from PIL import Image

    with Image.open(res.screenshot) as shot:
        # as wide as the leaderboard table (it scrolled out of the shot) and not a blank page
        assert shot.size[0] >= 1280 and len(set(shot.convert("L").getdata())) > 10
        from reports.browser import page_width

        assert shot.size[0] == page_width(report_html) and page_width(report_html) > 1280
    run_id = log_report(page, res.screenshot, suite=SUITE)
    assert {"suite.html", "suite.png"} <= {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


@needs_browser
def test_browser_check_catches_a_broken_page(tmp_path):
    """The check must be able to fail: a corrupt image and a console error are both reported."""
    from reports.html import _page

    broken = _page("broken", ['<img alt="x" src="data:image/png;base64,AAAA">',
                              "<script>console.error('boom')</script>"])
    res = check_page(write_text_atomic(tmp_path / "b.html", broken))
    assert res.checked and not res.ok and res.images_bad == 1 and res.js_errors >= 1


def test_charts_tell_long_names_apart_and_pages_are_measured_whole():
    """Session 32's look at the pictures: two folders differing only at the end of a long path
    were drawn under one label; the screenshot stopped at a fixed 4,000 px, halfway down."""
    from reports.browser import page_height
    from reports.html import _img, chart_label, chart_labels

    a = "folder:/work/models/a_very_long_descriptive_model_folder_name_for_release_candidate_2026_v3"
    b = a[:-1] + "4"
    assert chart_label(a) != chart_label(b) and chart_label(a).endswith("2026_v3") and len(chart_label(a)) <= 40
    mid = ["folder:/x/" + "m" * 30 + c + "m" * 30 for c in "AB"]  # they differ only in the middle
    assert [lab[:3] for lab in chart_labels(mid)] == ["#1 ", "#2 "]  # still alike once cut: numbered
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (1100, 3000)).save(buf, "PNG")
    tall = "<html><body>" + _img(buf.getvalue(), "x") * 3 + "</body></html>"
    assert 9000 <= page_height(tall) <= 16000 and page_height("<html></html>") == 800


def test_audit_evidence_keeps_an_open_interval_and_charts_unmeasured_checks(bench_store):
    from reports.audit import CheckResult, evidence_text

    c = CheckResult("cost.clips_per_s", True, "lower CI bound 1.69 >= min 1", "", value=3.59, ci_low=1.69,
                    ci_high=float("inf"), n=9, min=1.0)
    assert evidence_text(c) == "3.59 [1.69, —] (n=9)"
    pol = parse_policy({"suite": SUITE, "checks": {"fvd": {"max": 150}, "watermark_survival_crf30": {"min": 0.5}}})
    page = audit_report(evaluate_policy(pol, bench_store["uvit:good"]))
    assert "not measured" in page and len(images(page)) == 1
