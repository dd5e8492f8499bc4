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


__all__ = ["printable"]
