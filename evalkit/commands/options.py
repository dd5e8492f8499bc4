"""Option types and checks the commands share."""

from __future__ import annotations

import os

import click

from evalkit.errors import BadInputError, MissingResourceError

SPLIT = click.Choice(["train", "test", "ood"])
SEED = click.IntRange(0, 2**63 - 1)  # numpy's SeedSequence takes no negative seed (-1 was an internal error)


def positive(ctx, param, value):
    if value is not None and (value != value or value in (float("inf"), float("-inf")) or value <= 0):
        raise click.BadParameter(f"must be a positive finite number, got {value}")
    return value


def guidance_scale(ctx, param, value):
    """A guidance scale: finite and >= 0 (NaN and inf ran, and wrote NaN into the index, which
    is no JSON)."""
    if value is not None and not (value == value and 0 <= value < float("inf")):
        raise click.BadParameter(f"must be a finite number >= 0, got {value}")
    return value


def frame_rate(ctx, param, value):
    """A frame rate a video can hold: finite, at least 0.01 and at most 1000 (inf overflowed the
    timestamps, 1e-9 divided by zero)."""
    if value is not None and not (value == value and 0.01 <= value <= 1000):
        raise click.BadParameter(f"must be a frame rate from 0.01 to 1000, got {value}")
    return value


def require(path, kind: str, what: str, fix: str, label: str = ""):
    """`path` if it is a `kind` ("file" or "dir"); else exit 3 (not there: "no such WHAT") or 2 (something
    else there), naming `fix`. Used instead of click's exists=True, whose "does not exist" was exit 2
    and named no fix. `label`: the option's name before the path ("--registry ")."""
    from evalkit.errors import path_is
    from evalkit.safe_text import printable

    if path is None or path_is(path, kind):
        return path
    name = f"{label}{printable(path)}"
    if not os.path.exists(path):
        raise MissingResourceError(f"{name}: no such {what}; {fix}")
    raise BadInputError(f"{name}: is not a {'file' if kind == 'file' else 'folder'}; {fix}")


def require_file(path, what: str, fix: str):
    return require(path, "file", what, fix)


def sentence(text: str) -> str:
    """Help text that starts a sentence (the shared texts below also follow "With --sign: ")."""
    return text[:1].upper() + text[1:]


WATERMARK_KEY_HELP = ("the watermark key file (default: $EVALKIT_WATERMARK_KEY, else watermark.key of `evalkit keys "
                      "init`); mode 0600.")
CERT_HELP = ("certificate chain, in any order (the key's certificate is taken as the signer and the rest "
             "put in issuer order): PEM, DER or PKCS#7; or a PKCS#12 bundle (.p12/.pfx: key and chain, "
             "no --key needed). Default: the credentials of `evalkit keys init`.")
KEY_HELP = "private key, PEM or DER (mode 0600); an encrypted one opens with $EVALKIT_KEY_PASSPHRASE."


def check_tsa(tsa: str | None, signing: bool = True) -> None:
    if tsa is not None and not signing:
        raise BadInputError("--tsa dates signatures: give it with --sign")
    if tsa is not None and not tsa.startswith(("http://", "https://")):
        raise BadInputError(f"--tsa {tsa}: give the time-stamp authority's http(s) URL")
