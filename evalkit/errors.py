"""User-facing errors and the exit codes the CLI maps them to.

Every error a user can cause (a bad file, a bad flag, missing weights) is an `EvalkitError`
whose message is one line naming the input and what to do. The CLI prints it without a
traceback and exits with the class's code; the codes are documented in the README.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the command ran and a check it makes failed (audit, verify, ...)
EXIT_BAD_INPUT = 2  # bad flag, bad value, unreadable or hostile file
EXIT_MISSING = 3  # weights, credentials, a named model or a path that is not there
EXIT_UNAVAILABLE = 4  # the command exists in the contract but this version does not provide it yet
EXIT_OUT_OF_MEMORY = 5  # the settings need more memory (RAM or GPU) than the machine has
EXIT_INTERNAL = 70  # a bug in evalkit (EX_SOFTWARE); rerun with EVALKIT_DEBUG=1 for the traceback
EXIT_INTERRUPTED = 130  # Ctrl-C


class EvalkitError(Exception):
    """Base class: a one-line message for the user and an exit code."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str):
        # One line, always: multi-line messages from libraries are folded.
        super().__init__(" ".join(str(message).split()))


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
