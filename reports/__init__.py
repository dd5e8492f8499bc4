"""Leaderboards, release audits and self-contained HTML reports, drawn from MLflow.

reports/leaderboard.py  rank a suite's models with CIs and the paired-bootstrap mark
reports/audit.py        policy YAML, pass/fail per check with evidence, logged to MLflow
reports/html.py         one self-contained HTML file for a suite or an audit
reports/browser.py      open a report in headless Chromium: console errors, images, screenshot
"""

from __future__ import annotations

import os
from pathlib import Path


def write_text_atomic(path, text: str) -> Path:
    """Write `text` to a temporary name beside `path`, then rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
