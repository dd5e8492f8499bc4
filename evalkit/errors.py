"""User-facing errors and the exit codes the CLI maps them to.

Every error a user can cause (a bad file, a bad flag, missing weights) is an `EvalkitError`
whose message is one line naming the input and what to do. The CLI prints it without a
traceback and exits with the class's code; the codes are documented in the README.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1  # the command ran and a check it makes failed (audit, verify, ...)
EXIT_BAD_INPUT = 2  # bad flag, bad value, unreadable or hostile file
EXIT_MISSING = 3  # weights, credentials, a named model or a path that is not there
EXIT_UNAVAILABLE = 4  # the command exists in the contract but this version does not provide it yet
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
