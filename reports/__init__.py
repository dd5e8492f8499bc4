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
    """Write `text` to a temporary name beside `path`, then rename: never a half-written file.
    A folder given as the file, or a place that cannot be written, is a one-line error."""
    from evalkit.errors import BadInputError

    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give a file name (e.g. {path / 'report.html'})")
    tmp = path.with_name(f".{path.name}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as e:
        raise BadInputError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); choose another "
                            "path") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # its folder could not be made (a file in the way): nothing was written
            pass
    return path
