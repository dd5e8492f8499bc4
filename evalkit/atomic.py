"""Output files written whole or not at all, and named output paths checked before the work.

Every file evalkit writes for a user (a JSON of scores, an HTML report, a bundle) goes to a hidden
temporary name beside its target and is renamed over it at the end, so a reader never sees half
of one and a failure leaves any old file as it was. A target that cannot be written (a folder
given as the file, a file where its folder should be) is a one-line `BadInputError`, and the
commands check their targets with `check_output_file` before computing anything.
"""

from __future__ import annotations

import errno
import os
import re
import secrets
import stat
import sys
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
    """`path` as a file to write: refused, in one line, when it is a folder, cannot be made
    (`check_parents`) or is the MLflow store (`check_not_input`)."""
    path = Path(path)
    if path.is_dir():
        raise BadInputError(f"{path}: is a folder; give a file name (e.g. {path / example})")
    if resolved(path) is None:  # before the work, not when the result is written
        raise BadInputError(f"{path}: is a loop of symbolic links; remove it or give another path")
    return check_parents(check_not_input(path, ()))


def resolved(path: Path) -> Path | None:
    """`path` with its links followed; None for a loop of links (Path.resolve raises RuntimeError
    for one before Python 3.13 and OSError ELOOP after)."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return None
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return None


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Path.resolve before 3.13)
        return False


def check_not_input(path, inputs, what: str = "output") -> Path:
    """`path` as an output: refused, in one line, when writing it would destroy what the command
    reads: one of `inputs` (a file, through any link), a video (a suffix-less one too, since
    session 38 a folder's video) or `index.jsonl` inside an input folder, or the MLflow store (a
    SQLite file) it reads or logs to. Such a mistake otherwise costs the user the evidence or the
    results (`verify suspect.mp4 --html suspect.mp4`)."""
    from evalkit.clipset import VIDEO_SUFFIXES, is_video_file
    from evalkit.tracking import store_path

    path = Path(path)
    for given in [Path(p) for p in inputs if p is not None]:
        if _same(path, given):
            raise BadInputError(f"{path}: is an input of this command (it would be overwritten); give "
                                f"another {what} path")
        if path.exists() and path.is_file() and _inside(path, given) and (
                path.suffix.lower() in VIDEO_SUFFIXES or path.name == "index.jsonl" or is_video_file(path)):
            raise BadInputError(f"{path}: is a file of the input folder {given} (it would be overwritten); "
                                f"give another {what} path")
    store = store_path()
    if store is not None and _same(path, store):
        raise BadInputError(f"{path}: is the MLflow store this command reads (it would be overwritten); "
                            f"give another {what} path")
    return path


def _inside(path: Path, folder: Path) -> bool:
    try:
        return folder.is_dir() and path.resolve().is_relative_to(folder.resolve())
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop (Path.resolve before 3.13)
        return False


def short_name(name: str, limit: int = 150) -> str:
    """`name` for a hidden temporary file beside it: cut, with a hash of the whole, where the
    temporary name's additions (about 25 bytes) would pass the OS's 255 bytes a name. Otherwise a
    name the OS takes (a 241-byte `--json` name) was refused as "File name too long"."""
    raw = name.encode("utf-8", "surrogateescape")
    if len(raw) <= limit:
        return name
    import hashlib

    head = raw[:limit - 17].decode("utf-8", "ignore")
    return f"{head}~{hashlib.sha1(raw).hexdigest()[:16]}"


def _foreign_in_shared_folder(path: Path) -> str | None:
    """Who else owns `path` (a link, or a file to be replaced) when it sits in a shared sticky
    folder (/tmp-like: world-writable, sticky) and belongs neither to this user nor to the folder's
    owner: the kernel's protected_symlinks rule. Another user's link planted there made evalkit's
    output overwrite a file of this user's wherever it pointed (session 33)."""
    try:
        st, parent = os.lstat(path), os.stat(path.parent)
    except OSError:
        return None
    shared = parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH
    if not shared or st.st_uid in (os.geteuid(), parent.st_uid):
        return None
    what = "a link" if stat.S_ISLNK(st.st_mode) else "a file"
    return f"{what} of another user (uid {st.st_uid}) in the shared folder {path.parent}"


def foreign_on_path(path) -> str | None:
    """`_foreign_in_shared_folder` for every link followed to reach `path`, folders included, and for
    the file at its end: a link of the user's own pointing at another user's planted link, or a
    planted folder link, still led the write over the user's files (session 33's recheck)."""
    todo = list(Path(os.path.abspath(path)).parts)
    cur, hops = Path(todo.pop(0)), 0
    while todo:
        cur = cur / todo.pop(0)
        try:
            link = os.path.islink(cur)
        except OSError:
            return None
        if not link:
            continue
        who = _foreign_in_shared_folder(cur)
        if who:
            return f"{cur}: is {who}"
        hops += 1
        if hops > 40:  # a loop: the write will fail on its own
            return None
        target = Path(os.readlink(cur))
        resolved = Path(os.path.normpath(target if target.is_absolute() else cur.parent / target))
        todo = list(resolved.parts[1:]) + todo
        cur = Path(resolved.parts[0])
    who = _foreign_in_shared_folder(cur) if cur.exists() else None
    return f"{cur}: is {who}" if who else None


def keep_owner_mode(tmp: Path, path: Path) -> None:
    """Give a file about to replace `path` its mode and group (a 0600 result came back 0644, a
    team's file lost its group, session 33); a new file keeps the umask's mode."""
    try:
        st = os.stat(path)
    except OSError:
        return
    try:
        os.chmod(tmp, st.st_mode & 0o7777)
    except OSError:
        pass
    try:
        if os.stat(tmp).st_gid != st.st_gid:
            os.chown(tmp, -1, st.st_gid)
    except OSError:
        pass


def check_writable(path) -> Path:
    """`path` (a file to write later, perhaps after hours of work) refused now, in one line, when
    its folder cannot be made or written, or when it is another user's link or file in a shared
    folder: a read-only folder failed a training run at its first checkpoint, an internal error
    with the work lost."""
    path = check_parents(Path(path))
    foreign = foreign_on_path(path)
    if foreign:
        raise BadInputError(f"{foreign}; evalkit does not write through it or over it: choose another path")
    probe = path.with_name(f".{short_name(path.name)}.{os.getpid()}.{secrets.token_hex(3)}.probe")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise BadInputError(f"{path}: cannot write here ({e.strerror or type(e).__name__}); choose another "
                            "path") from None
    return path


def write_atomic(path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to a hidden temporary name beside `path`, then rename it over
    `path`; folders are made as needed. Never a half-written file; a place that cannot be written
    is a one-line error and leaves nothing behind."""
    path = check_output_file(path)
    # a name that is not UTF-8 inside a page or table comes out as its escape, not an internal error
    payload = data.encode("utf-8", "backslashreplace") if isinstance(data, str) else data
    if _is_stream(path):  # /dev/stdout, a FIFO: written into, never renamed over (as root a rename
        _write_stream(path, payload)  # replaced /dev/null itself with a regular file)
        return path
    foreign = foreign_on_path(path)
    if foreign:
        raise BadInputError(f"{foreign}; evalkit does not write through it or over it: choose another path")
    given, path = path, ((resolved(path) or path) if path.is_symlink() else path)  # the link stays a link
    tmp = path.with_name(f".{short_name(path.name)}.{os.getpid()}.{secrets.token_hex(3)}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(payload)
        keep_owner_mode(tmp, path)
        os.replace(tmp, path)
    except OSError as e:
        raise BadInputError(f"{path}: cannot write it ({e.strerror or type(e).__name__}); choose another "
                            "path") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # its folder could not be made: nothing was written
            pass
    return given


def _links(path: Path):
    """Each target along `path`'s chain of symbolic links, as the OS follows them."""
    link = path
    for _ in range(40):
        if not link.is_symlink():
            return
        link = link.parent / os.readlink(link)
        yield link


def _is_stream(path: Path) -> bool:
    """A target that is there and is neither a file nor a folder (a device, a FIFO, a socket, or a
    link to one), or a link to a process's open file (/dev/stdout -> /proc/self/fd/1, a file when
    the output is redirected: renamed over, the link became a file and the output was lost)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)) or any(
        link.parts[:2] == ("/", "proc") or str(link).startswith("/dev/fd/") for link in _links(path))


def is_stdout(path) -> bool:
    """Whether an output path names this process's standard output ("-", /dev/stdout or a link to
    its descriptor): a command writing its results there prints nothing else on it."""
    return str(path) == "-" or _own_fd(Path(path)) == 1


def _own_fd(path: Path) -> int | None:
    """N where `path` links (through any chain) to this process's /proc/self/fd/N or /dev/fd/N."""
    for link in (path, *_links(path)):
        m = re.fullmatch(r"/(?:proc/(?:self|(\d+))|dev)/fd/(\d+)", str(link))
        if m and m.group(1) in (None, str(os.getpid())):
            return int(m.group(2))
    return None


def _write_stream(path: Path, payload: bytes) -> None:
    try:
        fd = _own_fd(path)
        if fd is not None:  # our own stdout: its offset shared with what else is printed there
            if fd == 1:
                sys.stdout.flush()
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            return
        with open(path, "ab") as f:
            f.write(payload)
    except OSError as e:  # /dev/full: "No space left on device"
        raise BadInputError(f"{path}: cannot write to it ({e.strerror or type(e).__name__}); choose another "
                            "path") from None


LOCK_NAME = ".evalkit.lock"


def file_lock(lock: Path, waiting: str | None = None):
    """An exclusive flock on the file `lock` (made if absent) for a `with` block; when another
    process holds it, `waiting` (if given) is printed on stderr before waiting. A no-op where the
    OS has no flock."""
    import contextlib

    try:
        import fcntl
    except ImportError:  # not POSIX
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def held():
        with open(lock, "a") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if waiting:
                    print(waiting, file=sys.stderr, flush=True)
                fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    return held()


def folder_lock(folder: Path):
    """`file_lock` on `folder`'s own lock file (LOCK_NAME)."""
    return file_lock(Path(folder) / LOCK_NAME)


__all__ = ["check_not_input", "check_output_file", "check_parents", "check_writable", "file_lock", "folder_lock",
           "write_atomic"]
