"""Open a report in headless Chromium and say whether it rendered: no console messages or script
errors, every image decoded; optionally a PNG screenshot.

Two signals, so that neither browser logging nor the page's own script is trusted alone:
- the page's inline check (reports/html.py) writes `data-images-ok`, `data-images-bad` and
  `data-js-errors` on <body> at the load event; `--dump-dom` prints the DOM after load, so the
  attributes are in the dump;
- Chromium's `--enable-logging=stderr` prints every console message as a `CONSOLE` line; a report
  writes nothing to the console, so any such line counts as an error.

Chromium is Debian's `chromium` (or `chromium-browser`, `google-chrome`); `.ci/run` installs it
when absent. `--no-sandbox` because CI containers run as root, where the sandbox cannot start.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", "--no-first-run",
          "--disable-extensions", "--mute-audio"]


def find_browser() -> str | None:
    """Path of the first headless-capable Chromium on PATH, or None."""
    return next((p for p in map(shutil.which, BROWSERS) if p), None)


@dataclass
class PageCheck:
    images: int = 0
    images_bad: int = 0
    js_errors: int = 0
    checked: bool = False  # the page's load-time check ran (its attributes are in the DOM)
    console: list[str] = field(default_factory=list)
    screenshot: Path | None = None

    @property
    def ok(self) -> bool:
        return self.checked and not self.images_bad and not self.js_errors and not self.console


def _attr(dom: str, name: str) -> str | None:
    m = re.search(rf'<body[^>]*\s{name}="([^"]*)"', dom)
    return m.group(1) if m else None


MAX_SHOT = 16_000  # pixels: Chromium's screenshot surface tops out near 16,384


def page_height(html: str, width: int = 1280, content: int = 1200) -> int:
    """About how tall the page is at `width`: its images at their displayed size (a PNG's size is
    in its header) plus a line a table row and a margin. The screenshot was a fixed 4,000 px and
    cut a report off halfway through its samples (session 32); Chromium's command line cannot
    ask the page, so the page is measured from its source."""
    import base64
    import struct

    total = 400
    for data in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]{32,})', html):
        head = base64.b64decode(data[:32] + "=" * (-len(data[:32]) % 4))
        if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
            w, h = struct.unpack(">II", head[16:24])
            total += int(h * min(1.0, content / max(w, 1))) + 24
    total += 30 * html.count("<tr") + 40 * html.count("<h2") + 24 * html.count("<p")
    return int(min(MAX_SHOT, max(800, total)))


def page_width(html: str, least: int = 1280) -> int:
    """Pixels wide enough for the widest table: each column as wide as its longest cell's text
    (about 8 px a character at the page's 14 px font, plus padding). The leaderboard's 18 columns
    scrolled inside a 1,200-px box and the screenshot showed 8 of them (session 32)."""
    widest = 0
    for table in re.findall(r"<table>.*?</table>", html, re.S):
        cols: dict[int, int] = {}
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S):
            for i, cell in enumerate(re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)):
                text = re.sub(r"<[^>]+>", "", cell)
                text = re.sub(r"&[a-z]+;|&#\d+;", "x", text)
                cols[i] = max(cols.get(i, 0), len(text))
        widest = max(widest, sum(8 * n + 18 for n in cols.values()))
    return int(min(6000, max(least, 80 + widest)))


# For the screenshot only: the page as wide as its tables, nothing scrolled out of sight.
_SHOT_CSS = "<style>body{max-width:none!important}.scroll{overflow:visible!important}</style>"


def check_page(html_path, *, screenshot=None, width: int = 1280, height: int | None = None, timeout: float = 60,
               browser: str | None = None) -> PageCheck:
    """Load `html_path` in headless Chromium; with `screenshot` (a .png path) also save a picture
    of the whole page (`height` pixels; default: the page's measured height, `page_height`, up to
    MAX_SHOT; as wide as its widest table, `page_width`). RuntimeError when no browser is found or
    it fails to start."""
    html = Path(html_path).read_text(encoding="utf-8", errors="replace")
    if height is None:
        height = page_height(html, width)
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError(f"no Chromium found on PATH (tried {', '.join(BROWSERS)})")
    url = Path(html_path).resolve().as_uri()
    # A private profile per call: parallel runs and a user's own profile never collide.
    with tempfile.TemporaryDirectory(prefix="evalkit-chromium-") as profile:
        base = [browser, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"]
        dump = subprocess.run([*base, "--enable-logging=stderr", "--v=0", "--dump-dom", url],
                              capture_output=True, text=True, timeout=timeout)
        if dump.returncode != 0 or "<body" not in dump.stdout:
            tail = " ".join(dump.stderr.split())[-300:]
            raise RuntimeError(f"{browser} --dump-dom failed (exit {dump.returncode}): {tail}")
        res = PageCheck(console=[ln.strip() for ln in dump.stderr.splitlines() if ":CONSOLE" in ln])
        ok = _attr(dump.stdout, "data-images-ok")
        res.checked = ok is not None
        res.images = int(_attr(dump.stdout, "data-images") or 0)
        res.images_bad = int(_attr(dump.stdout, "data-images-bad") or 0)
        res.js_errors = int(_attr(dump.stdout, "data-js-errors") or 0)
        if screenshot is not None:
            shot = Path(screenshot).resolve()
            # a copy as wide as its widest table (images are inline: the copy shows the same page)
            wide = Path(profile) / "shot.html"
            wide.write_text(html.replace("</head>", _SHOT_CSS + "</head>", 1), encoding="utf-8")
            shot_w = max(width, page_width(html))
            shot_h = height if shot_w == width else page_height(html, shot_w, content=shot_w - 80)
            r = subprocess.run([browser, *_FLAGS, f"--user-data-dir={profile}", f"--window-size={shot_w},{shot_h}",
                                f"--screenshot={shot}", wide.as_uri()], capture_output=True, text=True,
                               timeout=timeout)
            if r.returncode != 0 or not shot.is_file():
                raise RuntimeError(f"{browser} --screenshot failed (exit {r.returncode})")
            res.screenshot = shot
    return res
