"""User-facing errors and the exit codes the CLI maps them to.

Every error a user can cause (a bad file, a bad flag, missing weights) is an `EvalkitError`
whose message is one line naming the input and what to do. The CLI prints it without a
traceback and exits with the class's code; the codes are documented in the README.
"""

from __future__ import annotations

import os

import errno
import re

from evalkit.safe_text import printable

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the command ran and a check it makes failed (audit, verify, ...)
EXIT_BAD_INPUT = 2  # bad flag, bad value, unreadable or hostile file
EXIT_MISSING = 3  # weights, credentials, a named model or a path that is not there
EXIT_UNAVAILABLE = 4  # the command exists in the contract but this version does not provide it yet
EXIT_OUT_OF_MEMORY = 5  # the settings need more memory (RAM or GPU) than the machine has
EXIT_INTERNAL = 70  # a bug in evalkit (EX_SOFTWARE); rerun with EVALKIT_DEBUG=1 for the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as shells report it


class EvalkitError(Exception):
    """Base class: a one-line message for the user and an exit code."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        # One line, always: multi-line messages from libraries are folded, and what is left of
        # a hostile name's control or bidi characters is shown as escapes.
        super().__init__(printable(" ".join(str(message).split())))


class BadInputError(EvalkitError):
    """A flag, a value or a file the user gave is wrong."""

    exit_code = EXIT_BAD_INPUT


class VideoError(BadInputError):
    """A video file cannot be read or written: empty, not a video, truncated, too large, ..."""


class MissingResourceError(EvalkitError):
    """Weights, credentials, a named model or an input path are not where the user said."""

    exit_code = EXIT_MISSING


class UnavailableError(EvalkitError):
    """The command is part of the contract but not provided by this version."""

    exit_code = EXIT_UNAVAILABLE


class CheckFailedError(EvalkitError):
    """The command ran and a check it makes failed."""

    exit_code = EXIT_CHECK_FAILED


def out_of_memory_message(exc: BaseException) -> str | None:
    """A one-line explanation when `exc` is an out-of-memory failure (Python's MemoryError, torch's
    CUDA OutOfMemoryError, or torch's CPU allocator failing, which raises a plain RuntimeError),
    else None. Checked by name and text so that this core module never imports torch."""
    text = " ".join(str(exc).split())
    if not (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or (isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text))):
        return None
    m = re.search(r"allocate (\d+) bytes", text) or re.search(r"allocate ([\d.]+ [KMGT]i?B)", text)
    amount = ""
    if m:
        amount = m.group(1)
        amount = f" (tried to allocate {int(amount) / 2**30:.1f} GiB)" if amount.isdigit() else f" (tried to allocate {amount})"
    where = "GPU" if "CUDA" in text or type(exc).__name__ == "OutOfMemoryError" else "memory"
    return (f"out of {where}{amount}; ask for less at once (--batch-size, preset, --size, --frames, --n) "
            "or use a machine with more; an interrupted training resumes from its last checkpoint")


# What the OS can say about a path a user gave, and what to do about it.
_PATH_ERRORS = {
    errno.ENAMETOOLONG: "use a shorter name (the OS allows 255 bytes a name, 4,096 a path)",
    errno.ENOENT: "check the path", errno.ENOTDIR: "check the path", errno.EISDIR: "check the path",
    errno.ELOOP: "check the path (a link loops)", errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions", errno.EROFS: "write somewhere writable",
    errno.ENOSPC: "free some disk space", errno.EDQUOT: "free some disk space (quota)",
}


# The hidden names outputs are written under before they are renamed into place (atomic writes,
# staged folders): ".NAME.1a2b3c4d.tmp.mp4", ".NAME.PID.HEX.partial", ".NAME.partial-PID".
_STAGED = re.compile(r"^\.(?P<stem>.+?)(?:\.[0-9a-f]{8}\.tmp(?P<suffix>\.[^./]+)?|\.\d+\.[0-9a-f]{6}\.partial"
                     r"|\.partial-\d+(?:-[0-9a-f]+)?(?P<suffix2>\.[^./]+)?)$")


def user_path(name: str) -> str:
    """The path the user gave for a hidden staging name evalkit wrote under (an error about a
    full or read-only disk named `.signed.bd4b97df.tmp.mp4`, a name the user never saw)."""
    from pathlib import Path

    parts = list(Path(name).parts)
    for i, part in enumerate(parts):
        while (m := _STAGED.match(part)) is not None:  # a staging name of a staging name, too
            part = m.group("stem") + (m.group("suffix") or m.group("suffix2") or "")
        parts[i] = part
    return str(Path(*parts)) if parts else name


def path_error_message(exc: BaseException) -> tuple[str, int] | None:
    """(one line, exit code) when `exc` is the OS refusing a path (a name too long, no such file,
    no permission, a full disk), else None. Such an OSError reaches the CLI wherever a command
    first touches the path, often inside a library, so it is recognised here once rather than
    at every open: exit 3 for a path that is not there, 2 otherwise."""
    if not isinstance(exc, OSError) or exc.errno not in _PATH_ERRORS or exc.filename is None:
        return None
    name = user_path(str(exc.filename))
    shown = name if len(name) <= 120 else f"{name[:60]}...{name[-20:]} ({len(name)} characters)"
    code = EXIT_MISSING if exc.errno == errno.ENOENT else EXIT_BAD_INPUT
    return f"{shown}: {exc.strerror or 'refused'}; {_PATH_ERRORS[exc.errno]}", code


def special_file(path) -> str | None:
    """What a path that exists but is no regular file is ("a FIFO (named pipe)", "a character
    device", ...), else None. A video is read with seeks, and opening a FIFO blocks until a writer
    comes: `verify` and `sign` of a FIFO a tar archive carried waited forever (session 33)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def special_file_message(path, what: str) -> str:
    return f"{path}: is {what}, not a video file; save the video to a file and give that"


def path_is(path, kind: str) -> bool:
    """`Path.is_file()` (kind "file") or `is_dir()` ("dir") that answers False where the OS refuses
    the name itself (over 255 bytes, a NUL byte): pathlib raises there instead of answering, and a
    literal prompt or one bad name in a batch must not stop the command."""
    from pathlib import Path

    try:
        return Path(path).is_file() if kind == "file" else Path(path).is_dir()
    except (OSError, ValueError):
        return False


def os_path(path, what: str):
    """`path` as the str or os.PathLike it is, bytes (or a PathLike of bytes) decoded as the OS
    names files (`os.fsdecode`); anything else (None, an open file, a BytesIO) is a one-line
    BadInputError naming `what` (pathlib raised a bare TypeError for all of them, session 34)."""
    if isinstance(path, str):
        return path
    try:
        raw = os.fspath(path)
    except TypeError:
        raise BadInputError(f"{what}: expected a file path (str, bytes or pathlib.Path), got "
                            f"{type(path).__name__}; give the file's path (an open file or buffer is not read)") from None
    return os.fsdecode(raw) if isinstance(raw, bytes) else path
