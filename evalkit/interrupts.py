"""Ctrl-C (SIGINT) and `kill` (SIGTERM) for the `evalkit` command: "evalkit: interrupted", exit 130,
wherever they land.

Inside a command both unwind as KeyboardInterrupt, so the same clean-up runs (temporary files and
staged folders removed, training checkpointed). Where raising it would do harm it is held and
raised a moment later (a SIGALRM every 50 ms until it can be): inside an import (torch's C++
start-up turned it into std::terminate, exit 134, a core dump: 2 `score`s in 25 killed in their
first seconds, session 34),
inside a finaliser (Python ignores an exception raised there, so the command ran on: session 31).
Before the command starts and after it has finished it is only noted, and the command ends with
exit 130 (a bare KeyboardInterrupt traceback, or exit 143 from a `kill` before the handlers were
set). Only stdlib imports here: it is installed before evalkit imports anything heavy.
"""

from __future__ import annotations

import os
import signal
import sys

RECEIVED: list[int] = []  # SIGINT/SIGTERM seen, even where their KeyboardInterrupt was swallowed
_state = {"raising": False, "pending": False, "retrying": False}
_RETRY_S = 0.05
_IMPORTING = "<frozen importlib._bootstrap>"


def started_as_command() -> bool:
    """Whether this process is the `evalkit` command (its script, or `python -m evalkit` while
    Python is still finding evalkit/__main__.py), not a program that imports evalkit."""
    if sys.argv and sys.argv[0] == "-m":
        argv = getattr(sys, "orig_argv", [])
        return "-m" in argv and argv[argv.index("-m") + 1:][:1] == ["evalkit"]
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in ("evalkit", "evalkit.exe")


def install() -> None:
    """Take over SIGINT and SIGTERM (and SIGALRM, for the retries); a signal this process
    inherited ignored stays ignored (a shell's background job starts with SIGINT ignored), and one
    some other program set a handler for is left to it."""
    try:
        for signum, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL),
                                (signal.SIGALRM, signal.SIG_DFL)):
            if signal.getsignal(signum) == default:
                signal.signal(signum, on_signal)
    except ValueError:  # not the main thread: Python's own handling stays
        pass


def on_signal(signum, frame) -> None:
    if signum != signal.SIGALRM:
        RECEIVED.append(signum)
        if _state["pending"] and not _state["raising"]:
            _insisted()
        _state["pending"] = True
    elif not _state["pending"]:
        _stop_retrying()  # ours, once the interrupt was raised; else someone else's: not ours to act on
        return
    if not _state["raising"]:
        return  # the command has not started or has finished: it ends with exit 130 then
    if _unsafe_to_raise(frame):
        # again every 50 ms until it can be raised, not once: an alarm that lands between the
        # interpreter's last look at signals and a sleep's system call is handled only when the
        # sleep ends (a one-shot retry at an import's end held a Ctrl-C for a 30 s sleep, 1 run
        # in dozens, session 38's CI)
        if not _state["retrying"]:
            _state["retrying"] = True
            signal.setitimer(signal.ITIMER_REAL, _RETRY_S, _RETRY_S)
        return
    _state["pending"] = False
    _stop_retrying()
    raise KeyboardInterrupt


def _stop_retrying() -> None:
    if _state["retrying"]:
        _state["retrying"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _unsafe_to_raise(frame) -> bool:
    """Whether the code `frame` runs is inside an import or a finaliser."""
    while frame is not None:
        code = frame.f_code
        if code.co_name == "__del__" or code.co_filename == _IMPORTING:
            return True
        frame = frame.f_back
    return False


def _insisted() -> None:
    """A second signal while none can be raised (while starting, or stuck in shutting down): the
    user insists, so stop now."""
    try:
        sys.stdout.flush()
    except Exception:  # noqa: BLE001  (stdout gone or full: nothing more to save)
        pass
    os.write(2, b"evalkit: interrupted\n")
    os._exit(130)


def let_raise(on: bool) -> None:
    """Inside a command (on) a signal raises KeyboardInterrupt; outside it, it is only noted. One
    that came while starting is raised now."""
    _state["raising"] = on
    if on and _state["pending"]:
        _state["pending"] = False
        _stop_retrying()
        raise KeyboardInterrupt
    if not on:
        _stop_retrying()  # the command is over: whatever comes is only noted
