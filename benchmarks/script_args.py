"""Checks the benchmark scripts make on their paths before any work: an output whose folder cannot
be made was found after a 9-minute grid (a traceback, the table and the MLflow run lost), and an
input folder that is not there was dropped with a note (the run went on without it, exit 0)."""

from __future__ import annotations

import argparse
from pathlib import Path


def check_outputs(ap: argparse.ArgumentParser, **paths: Path | None) -> None:
    """Each given output (flag name -> path) can be written: its folder made now, a probe file
    written and removed; else argparse's one-line error, exit 2."""
    from evalkit.atomic import check_writable
    from evalkit.errors import EvalkitError

    for flag, path in paths.items():
        if path is None:
            continue
        if Path(path).is_dir():
            ap.error(f"--{flag.replace('_', '-')} {path}: is a folder; give a file name")
        try:
            check_writable(path)
        except EvalkitError as e:
            ap.error(f"--{flag.replace('_', '-')}: {e}")


def check_input_folders(ap: argparse.ArgumentParser, **paths: Path | None) -> None:
    """Each given input folder (flag name -> path) is there; else argparse's error, exit 2."""
    for flag, path in paths.items():
        if path is not None and not Path(path).is_dir():
            ap.error(f"--{flag.replace('_', '-')} {path}: no such folder; check the path")


def run_script(main) -> None:
    """A benchmark script's entry: `main()`, with evalkit's one-line errors for what the user gave
    (a missing folder, an unknown preset or detector: tracebacks before session 30), exit with
    their code. Anything else is a bug and keeps its traceback."""
    import sys

    from evalkit.errors import EvalkitError

    prog = Path(sys.argv[0]).name
    try:
        code = main()
    except EvalkitError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(e.exit_code) from None
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code if isinstance(code, int) else 0)
