"""Leaderboards, release audits and self-contained HTML reports, drawn from MLflow.

reports/leaderboard.py  rank a suite's models with CIs and the paired-bootstrap mark
reports/audit.py        policy YAML, pass/fail per check with evidence, logged to MLflow
reports/html.py         one self-contained HTML file for a suite or an audit
reports/verification.py the same for `evalkit verify`'s results: verdicts, frames, evidence
reports/browser.py      open a report in headless Chromium: console errors, images, screenshot
"""

from __future__ import annotations

from pathlib import Path


def write_text_atomic(path, text: str) -> Path:
    """Write `text` whole or not at all (`evalkit.atomic.write_atomic`); a folder given as the file,
    or a place that cannot be written, is a one-line error."""
    from evalkit.atomic import check_output_file, write_atomic

    return write_atomic(check_output_file(path, "report.html"), text)
