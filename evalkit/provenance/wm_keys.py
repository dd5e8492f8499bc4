"""The watermark secret: `load_watermark_key` reads the key file `keys init` writes (or one the user
names with `--watermark-key` / `$EVALKIT_WATERMARK_KEY`), refusing what is no secret: a file open to
group or others, a certificate or key (a public certificate let anyone read and forge the mark,
session 32) and, for marking, a secret under MIN_WATERMARK_SECRET bytes."""

from __future__ import annotations

import os
from pathlib import Path

from evalkit.errors import MissingResourceError

MIN_WATERMARK_SECRET = 16  # bytes of a key file


def _is_der_credential(data: bytes) -> bool:
    """Whether `data` parses as a DER certificate or key (two leading bytes alone also match about
    3 random keys in 65,536)."""
    if data[:1] != b"\x30":
        return False
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    for load in (x509.load_der_x509_certificate, lambda d: serialization.load_der_private_key(d, None),
                 serialization.load_der_public_key):
        try:
            load(data)
            return True
        except (ValueError, TypeError):
            continue
    return False


def load_watermark_key(path: Path | str | None = None, dir: Path | str | None = None,
                       required: bool = True, embedding: bool = True):
    """The watermark key (`evalkit.provenance.watermark.WatermarkKey`) from `path`, else
    `$EVALKIT_WATERMARK_KEY` (a file path), else `watermark.key` in the credentials folder.
    Returns None when none exists and not `required`; a key file open to group/others is refused,
    and so are a certificate or key file and, for `embedding`, a secret under MIN_WATERMARK_SECRET
    bytes (reading with one, marks made before the rule, stays possible)."""
    from evalkit.provenance.credentials import CredentialsError, _read_private, default_paths
    from evalkit.provenance.watermark import make_key

    named = path is None and bool(os.environ.get("EVALKIT_WATERMARK_KEY"))  # the user's variable names it
    if path is None:
        path = os.environ.get("EVALKIT_WATERMARK_KEY") or default_paths(dir).watermark_key
    p = Path(path).expanduser()
    if not p.exists() and not p.is_symlink():
        if not required and not named:  # a key the user named must be there (verify skipped the check)
            return None
        raise MissingResourceError(f"{p}: no such watermark key; give the key file with --watermark-key (or "
                                   "$EVALKIT_WATERMARK_KEY), or make one with `evalkit keys init` (in a new "
                                   "--dir where credentials exist)")
    data = _read_private(p, "watermark key file")
    try:
        secret = data.strip()
        if not secret:  # (`keys init --force` was suggested: it replaced the signing keys too)
            raise CredentialsError(f"{p}: the watermark key file is empty; write a secret of at least "
                                   f"{MIN_WATERMARK_SECRET} random bytes into it (keys init writes 32), or give "
                                   "another --watermark-key")
        # anywhere in the file (OpenSSL writes "Bag Attributes" lines first), and DER parsed whole (a
        # strip() cut a certificate's last byte when it was whitespace, and the parse failed)
        if b"-----BEGIN" in data or _is_der_credential(data) or _is_der_credential(secret):
            # a certificate (public: every signed manifest carries it) or a key used as the secret let
            # anyone holding it read and forge the mark (session 32)
            raise CredentialsError(f"{p}: is a certificate or key, not a watermark secret; give the watermark "
                                   "key file (`keys init` writes watermark.key)")
        if len(secret) < MIN_WATERMARK_SECRET and embedding:  # (reading old marks made with one stays possible)
            raise CredentialsError(f"{p}: a watermark secret of {len(secret)} bytes is too short to keep the mark "
                                   f"private; use at least {MIN_WATERMARK_SECRET} random bytes (keys init writes 32)")
        return make_key(secret)
    finally:
        del data


def watermark_key_for_reading(path: Path | str | None = None):
    """(key or None, why the default key cannot be used or None), for reading marks (`verify`).
    A key the user names (`path`, `$EVALKIT_WATERMARK_KEY`) must be there and usable: it raises
    as `load_watermark_key` does. The default key is optional: one that cannot be read (another
    user's, a folder in its place, no secret in it) must not stop the manifest and detector
    checks; the caller says why the watermark went unchecked."""
    from evalkit.errors import EvalkitError

    if path is not None or os.environ.get("EVALKIT_WATERMARK_KEY"):
        return load_watermark_key(path, required=True, embedding=False), None  # a short key of old marks reads
    try:
        return load_watermark_key(required=False, embedding=False), None
    except EvalkitError as e:
        return None, str(e)
    except OSError as e:  # its folder closed to this user: even whether the key exists cannot be seen
        from evalkit.provenance.credentials import default_paths
        from evalkit.safe_text import printable

        return None, printable(f"{default_paths().watermark_key}: cannot be read ({e.strerror}); check the "
                               "permissions of its folder, or give another key with --watermark-key")


__all__ = ["MIN_WATERMARK_SECRET", "load_watermark_key", "watermark_key_for_reading"]
