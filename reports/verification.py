"""A self-contained HTML report of `evalkit verify`: what an investigator hands on.

`verification_report(results, strips)` renders the JSON results of `verify_file` (one per file)
as one page: a summary of the verdicts, then a card per file with its verdict, a strip of frames
spread over the clip (so the reader sees which video is meant), the reasons in the order verify
gave them, and the evidence behind them: the manifest (state, failure codes, signer, issuer,
source type, generator, actions), the watermark (payload, p-value, whether it matches the
manifest's soft binding) and the detector (p against its threshold, drawn as a bar). Same
page frame as the suite and audit reports (`reports.html`): inline images only, offline, and
the load-time check that `reports.browser.check_page` reads.

`write_verification_report(path, results)` draws the strips and writes the page atomically;
`log_verification` records a verification as an MLflow run (`evalkit verify --mlflow`).
`frame_strip(path)` decodes the clip once and keeps small thumbnails only, so a long HD video
costs a few megabytes, not its frames; a file that cannot be decoded gets no strip (its card
says so), never an error: the report must cover exactly the files verify judged.
"""

from __future__ import annotations

import io
from collections import Counter

import numpy as np

from evalkit.provenance.verdict import FAILED_VERDICTS, source_type_name
from reports.html import _img, _page, _table, esc

STRIP_FRAMES = 6
THUMB_HEIGHT = 96
MAX_SCANNED = 900  # frames decoded for the strip at most (30 s at 30 fps): beyond, the strip covers the start

# verdict -> card colour: red where something is wrong, amber where AI origin is claimed or
# suspected, green for a signed capture, grey where nothing is known
_FAIL, _AI, _OK, _NONE = "#c62828", "#b26a00", "#1a7f37", "#616161"
_EXTRA_CSS = """
.card{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:14px 0}
.card h3{margin:2px 0 8px;font-size:15px;word-break:break-all}.verdict{color:#fff;border-radius:4px;
padding:2px 10px;font-weight:700;display:inline-block}.strip{max-width:100%;image-rendering:pixelated}
.gauge{position:relative;height:14px;background:#eee;border-radius:3px;width:320px;margin:4px 0}
.gauge .p{position:absolute;left:0;top:0;bottom:0;border-radius:3px}
.gauge .t{position:absolute;top:-3px;bottom:-3px;width:2px;background:#000}
.cols{display:flex;flex-wrap:wrap;gap:18px}.cols>div{flex:1 1 320px}
"""


def verdict_colour(verdict: str) -> str:
    if verdict in FAILED_VERDICTS or verdict == "unreadable":
        return _FAIL
    if verdict.startswith("capture"):
        return _OK
    if "ai-" in verdict or "watermark" in verdict:
        return _AI
    return _NONE


def frame_strip(path, n: int = STRIP_FRAMES, height: int = THUMB_HEIGHT) -> bytes | None:
    """JPEG (quality 85: a photo strip, a fifth of a PNG's size) of `n` frames spread evenly over the clip (over its first MAX_SCANNED frames), side by
    side at `height` pixels; None when the file cannot be decoded."""
    import cv2
    from PIL import Image

    from evalkit.errors import EvalkitError
    from evalkit.video import iter_frames

    thumbs = []
    try:
        for f in iter_frames(path, max_frames=MAX_SCANNED):
            w = max(1, round(f.shape[1] * height / f.shape[0]))
            thumbs.append(cv2.resize(f, (w, height), interpolation=cv2.INTER_AREA if f.shape[0] > height
                                     else cv2.INTER_NEAREST))
    except (EvalkitError, OSError, ValueError):
        pass  # a clip cut short mid-stream still shows what decoded
    if not thumbs:
        return None
    picks = np.unique(np.linspace(0, len(thumbs) - 1, min(n, len(thumbs))).round().astype(int))
    gap = np.full((height, 4, 3), 255, np.uint8)
    row = np.concatenate([x for i in picks for x in (thumbs[i], gap)][:-1], axis=1)  # [h, W, 3]
    buf = io.BytesIO()
    Image.fromarray(row).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _fmt(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.3g}"
    if isinstance(x, (list, tuple)):
        return ", ".join(map(str, x)) or "-"
    return str(x)


def _pairs(rows: list[list[str]]) -> str:
    """A two-column table of (what, value) rows, without a header row."""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f'<div class="scroll"><table><tbody>{body}</tbody></table></div>'


def _gauge(p: float, threshold: float | None, real_below: float | None = None, decision: str | None = None) -> str:
    """p_generated as a bar with both cut-offs marked: generated at or above the threshold, real
    under `real_below`, uncertain between (an uncertain p 0.89 and a real p 0.01 looked alike)."""
    colour = (_AI if decision == "generated" or (decision is None and threshold is not None and p >= threshold)
              else "#9e9e9e" if decision == "uncertain" else "#4C72B0")
    ticks = "".join(f'<div class="t" style="left:{100 * t:.1f}%" title="{esc(what)} {t:.3f}"></div>'
                    for t, what in ((threshold, "generated at >="), (real_below, "real under")) if t is not None)
    return (f'<div class="gauge" title="p_generated {p:.3f}"><div class="p" style="width:{100 * p:.1f}%;'
            f'background:{colour}"></div>{ticks}</div>')


def _evidence(r: dict) -> str:
    prov, wm, det = r.get("provenance") or {}, r.get("watermark") or {}, r.get("detector") or {}
    prov_rows = [["state", _fmt(prov.get("state"))], ["failure codes", _fmt(prov.get("failures"))],
                 ["signer", _fmt(prov.get("signer"))], ["issuer", _fmt(prov.get("issuer"))],
                 ["source type", _fmt(source_type_name(prov["digital_source_type"]) if prov.get("digital_source_type") else "-")],
                 ["generator", _fmt(prov.get("generator"))], ["actions", _fmt(prov.get("actions"))]]
    if prov.get("manifest_source"):
        prov_rows.append(["manifest from", _fmt(prov["manifest_source"])])
    if not wm.get("checked", True):
        wm_rows = [["checked", "no"]]
    else:
        wm_rows = [["detected", "yes" if wm.get("detected") else "no"], ["payload", _fmt(wm.get("payload"))],
                   ["p-value", _fmt(wm.get("p_value"))], ["method", _fmt(wm.get("method"))],
                   ["matches manifest", _fmt(wm.get("matches_manifest"))], ["key", _fmt(wm.get("key_id"))]]
    p = det.get("p_generated")
    if p is None:
        det_html = '<p class="muted">not run</p>'
    else:
        det_rows = [["detector", _fmt(det.get("name"))], ["p_generated", f"{p:.3f}"],
                    ["generated at >=", _fmt(det.get("threshold"))], ["real under", _fmt(det.get("real_below"))],
                    ["decision", _fmt(det.get("decision"))]]
        if det.get("out_of_domain"):
            det_rows.append(["abstains", det["out_of_domain"]])
        det_html = _gauge(float(p), det.get("threshold"), det.get("real_below"), det.get("decision")) + _pairs(det_rows)
    return ('<div class="cols">'
            f'<div><h4>C2PA manifest</h4>{_pairs(prov_rows)}</div>'
            f'<div><h4>Watermark</h4>{_pairs(wm_rows)}</div>'
            f'<div><h4>Detector</h4>{det_html}</div></div>')


def _card(r: dict, strip: bytes | None) -> str:
    verdict = str(r.get("verdict"))
    head = (f'<h3>{esc(str(r.get("file")))}</h3><span class="verdict" style="background:'
            f'{verdict_colour(verdict)}">{esc(verdict)}</span>')
    pic = (_img(strip, f"frames of {r.get('file')}", "strip", "image/jpeg") if strip is not None
           else '<p class="muted">No frames could be decoded for a preview.</p>')
    err = f'<p class="fail">{esc(r["error"])}</p>' if r.get("error") else ""
    reasons = "".join(f"<li>{esc(x)}</li>" for x in r.get("reasons") or [])
    return f'<div class="card">{head}<p>{pic}</p>{err}<ul>{reasons}</ul>{_evidence(r)}</div>'


def verification_report(results: list[dict], strips: dict[str, bytes | None] | None = None,
                        title: str = "evalkit verification report") -> str:
    """The page for `verify_file` results; `strips` maps each result's "file" to `frame_strip`."""
    strips = strips or {}
    counts = Counter(str(r.get("verdict")) for r in results)
    summary = _table(["verdict", "files"], [[v, str(n)] for v, n in counts.most_common()])
    body = [f"<h1>{esc(title)}</h1>",
            f'<p class="muted">{len(results)} file{"s" if len(results) != 1 else ""}; the verdict reads the '
            "manifest, the watermark and the detector together (README, Verification).</p>",
            "<h2>Verdicts</h2>", summary, "<h2>Files</h2>",
            *(_card(r, strips.get(str(r.get("file")))) for r in results)]
    return _page(title, body, extra_css=_EXTRA_CSS)


def write_verification_report(path, results: list[dict]):
    """Draw each readable file's frame strip and write the page to `path` atomically."""
    from reports import write_text_atomic

    strips = {str(r["file"]): frame_strip(r["file"]) if r.get("readable") else None for r in results}
    return write_text_atomic(path, verification_report(results, strips))


VERIFY_EXPERIMENT = "evalkit-verify"


def log_verification(results: list[dict], html_path=None, *, detector: str | None = None,
                     trust_sha256: str | None = None) -> str:
    """One MLflow run in `VERIFY_EXPERIMENT` recording a verification: the number of files and of
    each verdict as metrics, the detector and the trust anchors' SHA-256 (never the anchors or
    any key) as params, every file's JSON result as `verify.json`, and the HTML page (the one at
    `html_path`, else one drawn for the run) as `verify.html`. Returns the run id."""
    import re
    import tempfile
    from pathlib import Path

    from evalkit import tracking

    counts = Counter(str(r.get("verdict")) for r in results)
    params = {"files": len(results), "detector": detector or "none", "trust_sha256": trust_sha256 or "none"}
    name = Path(str(results[0]["file"])).name if len(results) == 1 else f"{len(results)} files"
    with tracking.start_run(VERIFY_EXPERIMENT, run_name=name, params=params) as run:
        import mlflow

        mlflow.log_metric("files", len(results))
        mlflow.log_metric("readable", sum(bool(r.get("readable")) for r in results))
        for verdict, n in counts.items():
            mlflow.log_metric("verdict." + re.sub(r"[^A-Za-z0-9_.-]+", "_", verdict).strip("_"), n)
        tracking.log_json(results, "verify.json")
        if html_path is not None:
            tracking.log_artifact(html_path)
        else:
            with tempfile.TemporaryDirectory() as tmp:
                tracking.log_artifact(write_verification_report(Path(tmp) / "verify.html", results))
        return run.info.run_id
