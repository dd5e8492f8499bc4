"""Where evalkit keeps its files, and what it records about the code and machine behind a number.

`evalkit_home()` holds caches, credentials and retrained models, so it is created private (0700).
`git_commit`, `git_dirty` and `machine_info` feed the MLflow run tags ("every number carries its
protocol"); they never raise: a missing git, a tarball install or a missing torch gives None/"none".
"""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from pathlib import Path

from evalkit.errors import BadInputError

_DEFAULT_HOME = "~/.cache/evalkit"
_GIT_TIMEOUT_S = 3.0  # a hung git (network FS, huge repo) must not stall a run


def evalkit_home(create: bool = True) -> Path:
    """`$EVALKIT_HOME` (an empty value counts as unset), else `~/.cache/evalkit`; created on demand.

    A folder we create is made 0700 (it will hold signing keys). An existing folder the user
    chose is left with its permissions: we do not chmod what we did not make. `create=False` is
    for look-ups (a model, a detector, a soft-binding record): a home that is absent, or cannot be
    made (a read-only $HOME), simply holds nothing, so `verify`, `detect` and `generate` with
    shipped models still run there.
    """
    home = Path(os.environ.get("EVALKIT_HOME") or _DEFAULT_HOME).expanduser()
    if home.is_dir() or not create:
        return home
    try:
        home.mkdir(parents=True, mode=0o700)
        home.chmod(0o700)  # mkdir's mode is masked by the umask
    except FileExistsError:
        if not home.is_dir():
            raise BadInputError(
                f"EVALKIT_HOME {home} exists and is not a folder; set EVALKIT_HOME to a writable folder"
            ) from None
    except OSError as e:
        raise BadInputError(
            f"cannot create EVALKIT_HOME {home} ({e.strerror}); set EVALKIT_HOME to a writable folder"
        ) from None
    return home


def _source_root() -> Path:
    """The folder that holds the `evalkit` package: the repository root in a source checkout."""
    return Path(__file__).resolve().parent.parent


def _git(*args: str) -> str | None:
    """stdout of `git ARGS` run in the source root, or None on any failure (no git, not a repo,
    timeout, 'dubious ownership', ...)."""
    # GIT_OPTIONAL_LOCKS=0: `git status` must not take index.lock in a checkout others are using.
    env = dict(os.environ, LC_ALL="C", GIT_OPTIONAL_LOCKS="0")
    try:
        p = subprocess.run(
            ["git", *args], cwd=_source_root(), env=env, capture_output=True, text=True,
            timeout=_GIT_TIMEOUT_S, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return p.stdout if p.returncode == 0 else None


def _in_own_checkout() -> bool:
    """True only if the source root *is* a git work tree's top level. An installed copy in
    site-packages can sit inside some unrelated repository (a venv in the user's project): its
    commit would be a lie, so we report None there."""
    out = _git("rev-parse", "--show-toplevel")
    if not out:
        return False
    try:
        return Path(out.strip()).resolve() == _source_root()
    except OSError:
        return False


def git_commit() -> str | None:
    """Full SHA of HEAD of the evalkit source tree, or None when it is not a git checkout."""
    if not _in_own_checkout():
        return _head_from_files()  # git refused (another user's checkout) or is not installed
    out = _git("rev-parse", "HEAD")
    return (out or "").strip() or _head_from_files()


def _head_from_files() -> str | None:
    """HEAD's commit read from the source root's own `.git` files, without running git: git refuses
    a checkout another user owns ("dubious ownership"), so every run of an ordinary user of a shared
    install was tagged "unknown" (session 33). Reading the files runs none of the repository's
    configuration, which is what git's refusal guards against."""
    import re

    git = _source_root() / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if re.fullmatch(r"[0-9a-f]{40}", head):
            return head  # a detached HEAD
        if not head.startswith("ref: "):
            return None
        ref = head[5:].strip()
        if ".." in ref:
            return None
        loose = git / ref
        if loose.is_file():
            sha = loose.read_text().strip()
            return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        for line in (git / "packed-refs").read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1] == ref and re.fullmatch(r"[0-9a-f]{40}", parts[0]):
                return parts[0]
    except OSError:
        return None
    return None


def git_dirty() -> bool | None:
    """True if tracked files differ from HEAD (staged or not), None when not a git checkout.

    Untracked files are ignored: outputs such as mlflow.db or clip folders in the checkout would
    otherwise mark every run dirty.
    """
    if not _in_own_checkout():
        return None
    out = _git("status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out.strip())


def _cpu_count() -> int:
    # The CPUs this process may use (containers, taskset), not the host's total.
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    """hostname, platform, python, torch, cpu_count, gpu (name, or "none"), gpu_count.

    torch is imported here, not at module import. CUDA is only queried when
    `torch.cuda.is_available()`, so a CPU-only machine never initialises it. Cached: the machine
    does not change within a process.
    """
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": "none",
        "cpu_count": _cpu_count(),
        "gpu": "none",
        "gpu_count": 0,
    }
    try:
        import torch
    except ImportError:
        return info
    info["torch"] = str(torch.__version__)
    try:
        if torch.cuda.is_available():
            info["gpu_count"] = torch.cuda.device_count()
            info["gpu"] = torch.cuda.get_device_name(0)
        elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            info["gpu"], info["gpu_count"] = "apple-mps", 1
    except Exception:  # a broken driver must not stop a run from being recorded
        pass
    return info
