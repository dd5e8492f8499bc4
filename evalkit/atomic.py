"""Output files written whole or not at all, and named output paths checked before the work.

Every file evalkit writes for a user (a JSON of scores, an HTML report, a bundle) goes to a hidden
temporary name beside its target and is renamed over it at the end, so a reader never sees half
of one and a failure leaves any old file as it was. A target that cannot be written (a folder
given as the file, a file where its folder should be) is a one-line `BadInputError`, and the
commands check their targets with `check_output_file` before computing anything.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from evalkit.errors import BadInputError


def check_parents(path) -> Path:
    """`path` to be made (a file or a folder): refused, in one line, when something other than a
    folder stands where one of its parent folders should be (they are made as needed)."""
    path = Path(path)
    for parent in path.parents:  # the nearest one that exists must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise BadInputError(f"{path}: {parent} is a file, not a folder; choose another path")
            break
    return path


def check_output_file(path, example: str = "out.json") -> Path:
    """`path` as a file to write: refused, in one line, when it is a folder or cannot be made
    (`check_parents`)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give a file name (e.g. {path / example})")
    return check_parents(path)


def write_atomic(path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to a hidden temporary name beside `path`, then rename it over
    `path`; folders are made as needed. Never a half-written file; a place that cannot be written
    is a one-line error and leaves nothing behind."""
    path = check_output_file(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(3)}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as e:
        raise BadInputError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); choose another "
                            "path") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # its folder could not be made: nothing was written
            pass
    return path


__all__ = ["check_output_file", "check_parents", "write_atomic"]
