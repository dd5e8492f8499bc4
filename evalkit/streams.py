"""stdout and stderr that show what their encoding cannot as escapes, never as `?`, never a crash.

A name in 漢字 on a Latin-1 terminal was exit 70 (session 31). Under an ASCII locale (`LANG=C`
with `PYTHONUTF8=0`) every non-ASCII name printed as `?` (session 34): click wraps an ASCII stream
in one of its own that replaces what it cannot write, and a byte of a name that is not valid in
the locale reaches Python as a lone surrogate, which that wrapper writes as `?` too. So a user
could not tell which file an error or a result was about. Now such a byte prints as `\\xNN` (the
byte itself) and a character the encoding lacks as `\\xNN`, `\\uNNNN` or `\\UNNNNNNNN`. JSON that
evalkit prints is ASCII already (json.dumps' ensure_ascii), so it stays valid JSON.
"""

from __future__ import annotations

import codecs
import encodings.ascii

ESCAPE = "evalkit.escape"
# ASCII under another name: click re-wraps any stream it sees as ASCII (see above)
ASCII_ESCAPED = "ascii_escaped"


def _escape(err: UnicodeError):
    if not isinstance(err, UnicodeEncodeError):
        raise err
    out = []
    for ch in err.object[err.start:err.end]:
        n = ord(ch)
        out.append(f"\\x{n - 0xDC00:02x}" if 0xDC80 <= n <= 0xDCFF  # a byte the locale could not decode
                   else f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}")
    return "".join(out), err.end


def _find_codec(name: str):
    if name != ASCII_ESCAPED:
        return None
    a = codecs.lookup("ascii")
    return codecs.CodecInfo(a.encode, a.decode, name=ASCII_ESCAPED, streamreader=a.streamreader,
                            streamwriter=a.streamwriter, incrementalencoder=encodings.ascii.IncrementalEncoder,
                            incrementaldecoder=encodings.ascii.IncrementalDecoder)


codecs.register_error(ESCAPE, _escape)
codecs.register(_find_codec)


def escape_what_cannot_be_shown(*streams) -> None:
    """Make each text stream (sys.stdout, sys.stderr) write escapes for what it cannot encode."""
    for stream in streams:
        if stream is None or not hasattr(stream, "reconfigure"):
            continue  # closed (`>&-`), or replaced by a program embedding evalkit
        try:
            ascii_only = codecs.lookup(stream.encoding).name == "ascii"
        except (LookupError, TypeError):
            ascii_only = False
        stream.reconfigure(errors=ESCAPE, **({"encoding": ASCII_ESCAPED} if ascii_only else {}))
