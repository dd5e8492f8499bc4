"""Text that came from an untrusted file, made safe to show a person.

A manifest's strings (signer, generator, titles, software agents), a file's own name and a
library's message about a hostile file end up in `verify`'s lines, error messages and HTML
reports. A newline in such a string would let the file's author print a line that looks like
evalkit's own ("provenance: trusted, signer ..."); an ANSI escape would drive the terminal; a
right-to-left override (U+202E) would show "mp4.exe" as "exe.4pm". `printable` shows every such
character as a visible escape (`\\n`, `\\x1b`, `\\u202e`) and leaves all other text, every
script included, as it is.
"""

from __future__ import annotations

import re

# C0 and C1 controls and DEL; the Unicode line and paragraph separators; bidirectional marks,
# embeddings, overrides and isolates (the "Trojan Source" characters, CVE-2021-42574).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(text) -> str:
    """`text` with control and bidirectional-formatting characters shown as escapes, so that it
    stays on one line and reads in the order it is stored."""
    return _UNSAFE.sub(_escape, str(text))


def display_width(text: str) -> int:
    """Terminal columns `text` takes: wide (CJK, most emoji) characters count two, combining marks
    none, so that tables of users' names (a folder called 模型A) stay aligned."""
    from wcwidth import wcswidth

    w = wcswidth(text)
    return len(text) if w < 0 else w  # -1: a character wcwidth cannot place; count it as one


def ljust(text: str, width: int) -> str:
    """`text` padded with spaces on the right to `width` terminal columns."""
    return text + " " * max(0, width - display_width(text))


def rjust(text: str, width: int) -> str:
    """`text` padded with spaces on the left to `width` terminal columns."""
    return " " * max(0, width - display_width(text)) + text


__all__ = ["printable", "display_width", "ljust", "rjust"]
