"""Signers: a certificate chain with its private key (PEM, DER, encrypted or PKCS#12) or with a
signing command (a KMS or HSM), as the `c2pa.Signer` that c2pa-python signs with.

    signer = load_signer()                     # the defaults made by `evalkit keys init`
    signer = load_signer("chain.pem", "signer.key")
    signer = callback_signer(["my-kms-sign", "--key", "k1"], "chain.pem")   # KMS / HSM

The chain is put in issuer order and checked against the C2PA certificate profile first
(`chains`, `credentials`). `Signer` holds the chain and public facts: key bytes are read just
while c2pa builds its signer, then dropped, and no message or repr here contains them. The one
exception is a key given through a pipe (`--key <(kms-get ...)`, `/dev/stdin`), which can be read
only once: it is kept in memory (never in a message or repr) until the signer is built.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from evalkit.errors import MissingResourceError
from evalkit.provenance.credentials import (
    PASSPHRASE_ENV, CredentialsError, _checked_chain, _describe, _open_pkcs12, _read_private, default_paths,
    is_pkcs12, load_certificates,
)


@dataclass(eq=False)
class Signer:
    """A signing identity: a certificate chain and either a key file or a signing command.

    Holds paths and public facts only, never key bytes; `c2pa_signer()` builds (and caches, per
    time-stamp authority) the `c2pa.Signer`, reading the key file just for that moment."""

    cert_path: Path
    alg: str
    subject: str  # the leaf's "CN (O)"
    issuer: str
    key_path: Path | None = None
    command: tuple[str, ...] | None = None
    timeout_s: float = 30.0
    chain: bytes | None = field(default=None, repr=False)  # PEM, issuer order (read once: a pipe reads once)
    _cache: dict = field(default_factory=dict, repr=False)
    _last_error: list = field(default_factory=list, repr=False)
    _piped_key: bytes | None = field(default=None, repr=False)  # PKCS#8 PEM of a key that came through a pipe

    def __repr__(self) -> str:
        how = f"key={self.key_path}" if self.key_path else f"command={self.command[0] if self.command else None!r}"
        return f"Signer(cert={self.cert_path}, alg={self.alg}, subject={self.subject!r}, {how})"

    @property
    def kind(self) -> str:
        return "key" if self.key_path is not None else "callback"

    def chain_pem(self) -> bytes:
        """The chain as c2pa takes it: PEM, signing certificate first, then each issuer."""
        if self.chain is not None:
            return self.chain
        return _pem(_checked_chain(self.cert_path)[0])

    def c2pa_signer(self, tsa_url: str | None = None):
        """The c2pa-python `Signer` for this identity (cached per `tsa_url`)."""
        import c2pa

        if tsa_url is not None and not str(tsa_url).startswith(("http://", "https://")):
            raise CredentialsError(f"time-stamp authority {tsa_url!r}: give an http(s) URL")
        cached = self._cache.get(tsa_url)
        if cached is not None and cached.is_valid:
            return cached
        alg = getattr(c2pa.C2paSigningAlg, self.alg.upper())
        chain = self.chain_pem()
        try:
            if self.key_path is not None:
                key = self._piped_key if self._piped_key is not None else _key_pem_for_c2pa(self.key_path)
                try:
                    info = c2pa.C2paSignerInfo(alg, chain, key, tsa_url)
                    signer = c2pa.Signer.from_info(info)
                finally:
                    del key
                    info = None  # noqa: F841  (drop the only reference to the ctypes copy)
            else:
                signer = c2pa.Signer.from_callback(self._sign_callback, alg, chain.decode("ascii"), tsa_url)
        except c2pa.C2paError as e:
            raise CredentialsError(f"{self.cert_path}: c2pa cannot make a signer from this chain "
                                   f"({type(e).__name__.lstrip('_')}); check the certificate and key") from None
        self._cache[tsa_url] = signer
        return signer

    def take_error(self) -> str | None:
        """The last signing-command failure (a message without secrets), cleared on read."""
        return self._last_error.pop() if self._last_error else None

    def _sign_callback(self, data: bytes) -> bytes:
        """Run the signing command: data on stdin, a DER or raw (r||s) signature on stdout."""
        self._last_error.clear()
        try:
            p = subprocess.run(list(self.command), input=data, capture_output=True,
                               timeout=self.timeout_s, check=False)
        except FileNotFoundError:
            self._last_error.append(f"signing command {self.command[0]!r} not found")
            raise RuntimeError(self._last_error[-1]) from None
        except subprocess.TimeoutExpired:
            self._last_error.append(f"signing command timed out after {self.timeout_s:g} s")
            raise RuntimeError(self._last_error[-1]) from None
        except OSError as e:
            self._last_error.append(f"signing command could not run ({e.strerror})")
            raise RuntimeError(self._last_error[-1]) from None
        if p.returncode != 0:
            # Its stderr is not repeated: a signing tool may print anything there.
            self._last_error.append(f"signing command exited with status {p.returncode}")
            raise RuntimeError(self._last_error[-1])
        try:
            return normalise_signature(p.stdout, self.alg)
        except ValueError as e:
            self._last_error.append(f"signing command output: {e}")
            raise RuntimeError(self._last_error[-1]) from None


def normalise_signature(sig: bytes, alg: str) -> bytes:
    """ECDSA signatures as raw r||s (what COSE carries); DER input is converted. Others as is."""
    sizes = {"es256": 32, "es384": 48, "es512": 66}
    if not sig:
        raise ValueError("empty signature")
    n = sizes.get(alg)
    if n is None:
        return sig
    if len(sig) == 2 * n:
        return sig
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    try:
        r, s = decode_dss_signature(sig)
    except ValueError:
        raise ValueError(f"not a {alg.upper()} signature (neither DER nor {2 * n} raw bytes, "
                         f"got {len(sig)} bytes)") from None
    return r.to_bytes(n, "big") + s.to_bytes(n, "big")


def _parse_private_key(data: bytes, key_path):
    """The key in `data`: PEM (PKCS#8, or SEC1/PKCS#1 as OpenSSL writes them) or DER; encrypted
    ones opened with `$EVALKIT_KEY_PASSPHRASE`. Errors never carry the parser's message (it sits
    next to key bytes) nor the passphrase."""
    from cryptography.hazmat.primitives import serialization

    load = serialization.load_pem_private_key if b"-----BEGIN" in data else serialization.load_der_private_key
    try:
        return load(data, password=None)
    except TypeError:  # encrypted
        secret = os.environ.get(PASSPHRASE_ENV)
        if not secret:
            raise CredentialsError(f"{key_path}: the private key is encrypted; set {PASSPHRASE_ENV} to its "
                                   "passphrase (from Python, `callback_signer` can sign through a KMS or HSM "
                                   "instead)") from None
        try:
            return load(data, password=secret.encode())
        except Exception:  # noqa: BLE001
            raise CredentialsError(f"{key_path}: the passphrase in {PASSPHRASE_ENV} does not open this "
                                   "key; check it") from None
    except Exception:  # noqa: BLE001
        raise CredentialsError(f"{key_path}: not a private key (PEM or DER); give the key that matches "
                               "--cert") from None


def _pem(certs) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _load_private_key(key_path):
    if is_pkcs12(key_path):
        key = _open_pkcs12(key_path)[0]
        if key is None:
            raise CredentialsError(f"{key_path}: this PKCS#12 bundle holds no private key; export it with "
                                   "the key")
        return key
    data = _read_private(key_path, "private key")
    try:
        return _parse_private_key(data, key_path)
    finally:
        del data


def _key_pem_for_c2pa(key_path) -> bytes:
    """The signing key as c2pa reads it: unencrypted PKCS#8 PEM, made in memory (a DER, SEC1 or
    encrypted key file is never rewritten on disk)."""
    from cryptography.hazmat.primitives import serialization

    pk = _load_private_key(key_path)
    try:
        return pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    finally:
        del pk


def load_signer(cert: Path | str | None = None, key: Path | str | None = None,
                dir: Path | str | None = None) -> Signer:
    """The signing identity from `cert` (chain, leaf first) and `key`, or the defaults that
    `init_keys` wrote (`dir`, default `$EVALKIT_HOME/credentials`).

    Refuses a key readable by group/others, a key that does not match the certificate, and a
    leaf outside the C2PA certificate profile, each with a one-line `CredentialsError`."""
    if cert is not None and key is None and is_pkcs12(cert):
        key = cert  # one bundle holds both
    if (cert is None) != (key is None):
        raise CredentialsError("give both --cert and --key, or neither (to use the credentials of "
                               "`evalkit keys init`), or one PKCS#12 bundle as --cert (a file named .p12 or "
                               ".pfx: a bundle through a pipe has no name to be known by)")
    if cert is None:
        paths = default_paths(dir)
        if not paths.signer_cert.exists() or not paths.signer_key.exists():
            raise MissingResourceError(f"no signing credentials in {paths.dir}; run `evalkit keys init` "
                                       "or give --cert and --key")
        cert, key = paths.signer_cert, paths.signer_key
    cert, key = Path(cert).expanduser(), Path(key).expanduser()
    pk = _load_private_key(key)  # read once: existence, permissions, then the key
    certs, alg = _checked_chain(cert, pk.public_key())  # issuer order, the key's certificate first
    from cryptography.hazmat.primitives import serialization

    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if pk.public_key().public_bytes(*spki) != certs[0].public_key().public_bytes(*spki):
        # `keys init`'s own pair (its CA beside them issued the certificate): a replacement was cut
        # short. The user's own certificate copied there is not: `--force` would destroy their key.
        made_here = False
        if (cert.name, key.name) == ("signer.pem", "signer.key") and cert.parent == key.parent \
                and (cert.parent / "ca.pem").is_file():
            from evalkit.provenance.chains import issued

            try:
                made_here = any(issued(certs[0], ca) for ca in load_certificates(cert.parent / "ca.pem"))
            except Exception:  # noqa: BLE001  an unreadable ca.pem: not keys init's set
                made_here = False
        raise CredentialsError(f"{key}: this private key belongs to no certificate in {cert}; "
                               + ("a `keys init` was stopped while replacing them: make a new set with "
                                  "`evalkit keys init --force`" if made_here else
                                  "give the key of the signing certificate, or its chain"))
    piped = None
    if not is_pkcs12(key) and not key.is_file():  # a pipe or a device: it cannot be read again at signing
        piped = pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption())
    del pk
    return Signer(cert_path=cert, alg=alg, subject=_describe(certs[0].subject),
                  issuer=_describe(certs[0].issuer), key_path=key, chain=_pem(certs), _piped_key=piped)


def callback_signer(command: list[str] | tuple[str, ...], cert_chain_path: Path | str,
                    timeout_s: float = 30.0) -> Signer:
    """A signer for a KMS or HSM: `command` reads the bytes to sign on stdin and writes the
    signature on stdout (DER or raw r||s for ECDSA), exiting 0. The chain (leaf first) must meet
    the C2PA profile; its leaf's key type sets the algorithm (P-256 gives ES256)."""
    if isinstance(command, (str, bytes)) or not command or not all(isinstance(c, str) for c in command):
        raise CredentialsError("a signing command is a non-empty list of strings, e.g. "
                               "['my-kms-sign', '--key-id', 'k1']")
    if not timeout_s > 0:
        raise CredentialsError(f"signing command timeout must be positive, got {timeout_s}")
    cert = Path(cert_chain_path).expanduser()
    certs, alg = _checked_chain(cert)
    return Signer(cert_path=cert, alg=alg, subject=_describe(certs[0].subject),
                  issuer=_describe(certs[0].issuer), command=tuple(command), timeout_s=float(timeout_s),
                  chain=_pem(certs))


__all__ = ["Signer", "callback_signer", "load_signer", "normalise_signature"]
