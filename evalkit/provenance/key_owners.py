"""Whose key files and credential folders these are, and who else could swap them (POSIX).

    warning = check_credentials_folder(Path("creds"))   # raises CredentialsError where others could

Advice depends on the owner: `chmod 600` is for one's own key file only (another user cannot run
it, and root would change someone else's file behind their back, session 34).
"""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path


def owner_name(uid: int) -> str:
    """'alice (uid 1000)', or 'uid 1000' where the system knows no name for it."""
    try:
        import pwd

        from evalkit.safe_text import printable

        return f"{printable(pwd.getpwuid(uid).pw_name)} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def of_another_user(st: os.stat_result) -> bool:
    return os.name == "posix" and st.st_uid != os.geteuid()


def _folders_on_the_way(d: Path) -> list[Path]:
    """The existing folders on the path to `d`, `d` included: as written and, links resolved, where
    they lead (a link's target can sit in a folder the written path does not show)."""
    written, real = Path(os.path.abspath(d)), Path(os.path.realpath(d))
    seen: dict[Path, None] = {}
    for p in (written, *written.parents, real, *real.parents):
        if p.is_dir():
            seen.setdefault(p)
    return list(seen)


def check_credentials_folder(d: Path) -> str | None:
    """Refuse (`CredentialsError`) a credentials folder other users could swap files in: `d` or a
    folder above it writable by every user without the sticky bit (anyone may rename or delete what
    it holds: a CA of theirs put as ca.pem, which verifiers then trust, or the folder itself), or
    `d` made by another user in a folder every user can write. `ssh` refuses keys in such places.
    A /tmp-like `d` (world-writable, sticky) is returned as a warning only: there others cannot
    replace files they do not own, but they see what it holds and such folders are often emptied."""
    from evalkit.provenance.credentials import CredentialsError

    if os.name != "posix":
        return None
    itself = (Path(os.path.abspath(d)), Path(os.path.realpath(d)))
    for f in _folders_on_the_way(d):
        st = f.stat()
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            where = "the folder" if f in itself else f"the folder {f} above it"
            fix = f", or run `chmod o-w {shlex.quote(str(f))}`" if not of_another_user(st) else ""
            raise CredentialsError(f"{d}: {where} is writable by every user (mode {stat.S_IMODE(st.st_mode):04o}, "
                                   "no sticky bit), so anyone could replace the certificate and keys written "
                                   f"there; use a folder only you can write{fix}")
    if not d.is_dir():
        return None
    st, parent = d.stat(), itself[1].parent.stat()
    if parent.st_mode & stat.S_IWOTH and of_another_user(st) and st.st_uid != 0:
        raise CredentialsError(f"{d}: belongs to another user, {owner_name(st.st_uid)}, in a folder every user "
                               "can write, so they could replace the certificate and keys written there; use a "
                               "folder only you can write")
    if st.st_mode & stat.S_IWOTH:  # with the sticky bit (without it, refused above)
        return (f"{d}: every user can write this folder (mode {stat.S_IMODE(st.st_mode):04o}); the sticky bit "
                "keeps them from replacing these files, but they see what it holds and such folders are often "
                "emptied; use a folder only you can write")
    return None


__all__ = ["check_credentials_folder", "of_another_user", "owner_name"]
