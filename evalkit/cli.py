"""The `evalkit` command: parses, calls the library, prints. Exit codes in evalkit.errors.

The commands live one family a module in `evalkit.commands` (demo/info/probe, world,
generator/generate, score/backbones/index, keys/sign/verify, detectors/detect, and
bench/leaderboard/audit/report); this module is the group they join and the entry point that
turns every user error into one line and an exit code."""

from __future__ import annotations

import errno
import os
import sys

import click

from evalkit import __version__, interrupts
from evalkit.commands import bench, demo, detect, generator, provenance, score, world
from evalkit.commands.detect import detectors_train  # noqa: F401  (tests call it directly)
from evalkit.errors import (
    EXIT_BAD_INPUT, EXIT_BROKEN_PIPE, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OUT_OF_MEMORY, EvalkitError,
    out_of_memory_message,
    path_error_message,
)
from evalkit.streams import escape_what_cannot_be_shown


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="evalkit")
def cli():
    """evalkit: evaluation, safety and synthetic-media detection for text-to-video models.

    Exit codes: 0 success, 1 a check failed, 2 bad input, 3 missing weights/credentials/model,
    4 not available in this version, 5 out of memory, 70 internal error, 130 interrupted,
    141 the reader of stdout went away (`| head`).
    """


for _family in (demo, world, generator, score, provenance, detect, bench):
    for _command in _family.COMMANDS:
        cli.add_command(_command)


# evalkit's own top-level packages beside `evalkit` (DESIGN's layout)
SIBLING_PACKAGES = ("generators", "reports", "benchmarks", "detectors")


def shadowed_package() -> str | None:
    """One line when a package of the user's with the name of one of evalkit's top-level packages
    comes first on the path (a project's own `generators/` or `benchmarks/` in the working folder,
    with `python -m evalkit` or PYTHONPATH=.), else None. It hid evalkit's own and every command
    that reached it failed as an internal error (session 33). Found without importing it."""
    import importlib.util
    from pathlib import Path

    home = Path(__file__).resolve().parent.parent
    for name in SIBLING_PACKAGES:
        mod = sys.modules.get(name)
        try:
            spec = importlib.util.find_spec(name) if mod is None else mod.__spec__
        except (ImportError, ValueError):
            spec = None
        places = [Path(x) for x in (getattr(spec, "submodule_search_locations", None) or [])] if spec else []
        if spec is None or not places:
            continue  # not found at all: an install problem ImportError will name
        if not any(p.resolve() == home / name for p in places):
            return (f"{places[0]}: a package named '{name}' there hides evalkit's own ({home / name}); run evalkit "
                    "from another folder, or take that folder off the Python path (PYTHONPATH, the current folder "
                    "with python -m), or rename your package")
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; user errors become one line on stderr and an exit code, never a traceback."""
    debug = bool(os.environ.get("EVALKIT_DEBUG"))
    clash = shadowed_package()
    if clash:
        click.echo(f"evalkit: error: {clash}", err=True)
        return EXIT_BAD_INPUT
    try:
        interrupts.let_raise(True)  # raises one that came while starting, here where it is caught
        try:
            # Without standalone mode click returns the code of a `click.exceptions.Exit`.
            code = cli.main(args=argv, prog_name="evalkit", standalone_mode=False)
        finally:
            interrupts.let_raise(False)  # from here on a signal is noted: no traceback after the work
        return code if isinstance(code, int) else 0
    except SystemExit:
        # click turns a broken pipe on stdout into sys.exit(1) even outside standalone mode, and 1
        # means "a check failed" here (`verify ... | head -1` read as tampered)
        if type(sys.stdout).__name__.endswith("PacifyFlushWrapper"):
            return EXIT_BROKEN_PIPE
        raise
    except click.exceptions.Exit as e:  # --help, --version
        return e.exit_code
    except click.ClickException as e:  # bad flag or value: click's message, on one line
        where = f" (see `{e.ctx.command_path} --help`)" if getattr(e, "ctx", None) else ""
        click.echo(f"evalkit: error: {' '.join(e.format_message().split())}{where}", err=True)
        return EXIT_BAD_INPUT
    except click.exceptions.Abort:
        click.echo("evalkit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except EvalkitError as e:
        if debug:
            raise
        click.echo(f"evalkit: error: {e}", err=True)
        return e.exit_code
    except KeyboardInterrupt:
        click.echo("evalkit: interrupted", err=True)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_BROKEN_PIPE
    except Exception as e:  # a bug in evalkit, not the user's fault, unless memory ran out
        if isinstance(e, OSError) and e.errno == errno.ENOSPC and _raised_in(e, "mlflow"):
            # MLflow copying a run's artifacts onto a full disk: not stdout (session 32)
            from evalkit.tracking import tracking_uri

            click.echo(f"evalkit: error: the disk under the MLflow store {tracking_uri()} (its runs' artifacts) is "
                       "full; free space there or point MLFLOW_TRACKING_URI elsewhere", err=True)
            return EXIT_BAD_INPUT
        if isinstance(e, OSError) and e.filename is None and e.errno in (errno.ENOSPC, errno.EIO, errno.EBADF):
            # the output stream itself (`>/dev/full`): the results are lost, so say so
            click.echo(f"evalkit: error: cannot write the output ({e.strerror}); send stdout somewhere writable",
                       err=True)
            return EXIT_BAD_INPUT
        if _interrupted(e):  # SIGTERM's KeyboardInterrupt raised inside code that wrapped it
            click.echo("evalkit: interrupted", err=True)
            return EXIT_INTERRUPTED
        if debug:
            raise
        oom = out_of_memory_message(e)
        if oom is not None:
            click.echo(f"evalkit: error: {oom}", err=True)
            return EXIT_OUT_OF_MEMORY
        refused = path_error_message(e)
        if refused is not None:  # the OS refused a path the user gave: too long, absent, no permission
            click.echo(f"evalkit: error: {refused[0]}", err=True)
            return refused[1]
        from evalkit.tracking import store_error_message

        store = store_error_message(e)
        if store is not None:  # the MLflow store: another version's, or read-only
            click.echo(f"evalkit: error: {store}", err=True)
            return EXIT_BAD_INPUT
        msg = " ".join(str(e).split())[:300]
        click.echo(f"evalkit: internal error: {type(e).__name__}: {msg}; rerun with EVALKIT_DEBUG=1 "
                   "for the traceback and report it", err=True)
        return EXIT_INTERNAL


def _raised_in(e: BaseException, package: str) -> bool:
    """Whether `e` was raised from inside `package`'s code (by its traceback's frames)."""
    import os

    tb, part = e.__traceback__, f"{os.sep}{package}{os.sep}"
    while tb is not None:
        if part in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False


def _interrupted(e: BaseException) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return bool(interrupts.RECEIVED)


def entry() -> None:
    interrupts.install()  # the command set them on importing evalkit; this is for a program calling entry()
    escape_what_cannot_be_shown(sys.stdout, sys.stderr)  # a name in 漢字 on a Latin-1 or ASCII terminal
    if sys.stdout is None and len(sys.argv) > 1 and not {"-h", "--help", "--version"} & set(sys.argv):
        # started with stdout closed (`>&-`): every result printed would be lost without a word
        if sys.stderr is not None:
            print("evalkit: error: standard output is closed, so the results would be lost; send it to a file "
                  "or /dev/null", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    code = main()
    if interrupts.RECEIVED and code != EXIT_INTERRUPTED:
        # raised inside a __del__ (Python prints and ignores it) or a library that wrapped it: the
        # command may have finished, but it was told to stop; say so rather than exit 0
        click.echo("evalkit: interrupted", err=True)
        code = EXIT_INTERRUPTED
    sys.exit(code)


if __name__ == "__main__":
    entry()
