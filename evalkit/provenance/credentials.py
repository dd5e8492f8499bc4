"""Signing credentials for C2PA: a development CA, user-supplied chains checked against the C2PA
certificate profile, private key files, and the watermark secret (signers: `signers`).

    paths = init_keys()                        # $EVALKIT_HOME/credentials/{ca,signer}.{pem,key}
    problems = check_certificate_profile(load_certificates("chain.pem")[0])

What C2PA (c2pa-python 0.38.1, c2pa-rs 0.91.3) accepts, found by signing and reading back:

* The leaf may not be self-signed: `evalkit keys init` makes a root CA (CA:true, keyCertSign)
  and an ES256 (P-256) end-entity certificate issued by it.
* The leaf: X.509 v3; basicConstraints CA:false (critical); keyUsage digitalSignature
  (critical); an extended key usage C2PA allows, and with c2pa-rs's *default* trust
  configuration that means **emailProtection** (1.3.6.1.5.5.7.3.4): documentSigning
  (1.3.6.1.5.5.7.3.36) and the C2PA claim-signing OID (1.3.6.1.4.1.62558.2.1) were refused
  with "certificate missing required EKU" (they pass only when the validator's `trust_config`
  lists them), and a leaf with no EKU, with serverAuth only, without keyUsage, or self-signed
  was refused with "the certificate is invalid". anyExtendedKeyUsage is forbidden by the C2PA
  profile. Plus subject and authority key identifiers and an organisation name (O=).
* `signer.pem` holds the chain leaf first, then the CA (the order c2pa wants: signer, then
  issuers). A validator trusts it only when the CA is given as a trust anchor.

Secrets: private keys are written 0600 through `os.open(..., 0o600)` on a temporary name and
renamed, so no moment exists where a key is readable by others. A key file readable by group or
others is refused (with `chmod 600` advice only when it is the caller's own: `key_owners`), and so
is a credentials folder others could swap files in (a /tmp-like one is only warned about). Key bytes are read only to build the c2pa signer and are dropped right after:
`Signer` keeps paths, never bytes, and no message or repr here contains them.
"""

from __future__ import annotations

import datetime as _dt
import os
import re
import secrets
import stat
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

from evalkit.atomic import folder_lock
from evalkit.errors import BadInputError, MissingResourceError
from evalkit.provenance.key_owners import check_credentials_folder, of_another_user, owner_name

CA_FILE, CA_KEY_FILE = "ca.pem", "ca.key"
SIGNER_FILE, SIGNER_KEY_FILE = "signer.pem", "signer.key"
# An encrypted signing key is opened with the passphrase in this variable (never logged, never
# echoed); the decrypted key lives only in memory while c2pa builds its signer.
PASSPHRASE_ENV = "EVALKIT_KEY_PASSPHRASE"
WATERMARK_KEY_FILE = "watermark.key"  # the secret `--watermark` marks with, 32 random bytes (hex)
CREDENTIALS_DIRNAME = "credentials"

CA_DAYS = 3650
SIGNER_DAYS = 730
_SKEW = _dt.timedelta(minutes=5)  # not-before set a little in the past: clocks differ

# Extended key usages. C2PA allows these for claim signing; c2pa-rs 0.91.3 accepts the first
# with its default trust configuration (see the module docstring).
OID_EMAIL_PROTECTION = "1.3.6.1.5.5.7.3.4"
OID_DOCUMENT_SIGNING = "1.3.6.1.5.5.7.3.36"
OID_C2PA_CLAIM_SIGNING = "1.3.6.1.4.1.62558.2.1"
OID_ANY_EKU = "2.5.29.37.0"
C2PA_ALLOWED_EKUS = (OID_EMAIL_PROTECTION, OID_DOCUMENT_SIGNING, OID_C2PA_CLAIM_SIGNING)


class CredentialsError(BadInputError):
    """A key, certificate or signing command that cannot be used (exit code 2)."""


@dataclass(frozen=True)
class KeyPaths:
    """Where `init_keys` wrote the credentials."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    signer_cert: Path  # leaf + CA chain, the file to give as --cert
    signer_key: Path
    watermark_key: Path
    # what the user should know about where they are (a shared /tmp-like folder), for stderr
    warning: str | None = field(default=None, compare=False)

    def summary(self) -> str:
        import shlex

        from evalkit.safe_text import printable

        def arg(p) -> str:  # pasted back into a shell: quoted where needed, never a control character
            return printable(shlex.quote(str(p)))

        return (f"wrote a development CA and an ES256 signing certificate to {printable(self.dir)}: "
                f"sign with --cert {arg(self.signer_cert)} --key {arg(self.signer_key)} (the default when the folder "
                f"is $EVALKIT_HOME/credentials); verifiers trust it "
                f"with --trust {arg(self.ca_cert)}")


def credentials_dir(create_home: bool = False) -> Path:
    """`$EVALKIT_HOME/credentials` (not created here; the home only when `create_home`: reading
    keys needs no home, `keys init` makes it private before writing into it)."""
    from evalkit.home import evalkit_home

    return evalkit_home(create=create_home) / CREDENTIALS_DIRNAME


def default_paths(dir: Path | str | None = None) -> KeyPaths:
    d = Path(dir).expanduser() if dir is not None else credentials_dir()
    return KeyPaths(d, d / CA_FILE, d / CA_KEY_FILE, d / SIGNER_FILE, d / SIGNER_KEY_FILE,
                    d / WATERMARK_KEY_FILE)


# ---------------------------------------------------------------------------------------------
# Writing files


def _write_atomic(path: Path, data: bytes, mode: int) -> Path:
    """Write `data` to a hidden temporary file created with `mode` (never wider), then rename it
    over `path`. Returns the temporary path on failure cleanup; raises OSError."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have narrowed a certificate's 0644; keys stay 0600
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _name(org: str, role: str):
    """O=org, CN="org role"; X.509 caps each at 64 characters, so a long organisation name is
    shortened in the CN (the O keeps it whole)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    # 64 UTF-8 bytes, not characters: a 20-character Chinese name is 60 bytes (session 33)
    room = 64 - len(role.encode()) - 1
    cut = org.encode()[:room].decode("utf-8", "ignore")  # never half a character
    cn = f"{cut.rstrip()} {role}"
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_certificates(org: str):
    """(ca_key, ca_cert, leaf_key, leaf_cert), all P-256 / ECDSA-SHA256."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = _dt.datetime.now(_dt.timezone.utc)
    ku = dict(content_commitment=False, key_encipherment=False, data_encipherment=False,
              key_agreement=False, encipher_only=False, decipher_only=False)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(org, "root CA")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (x509.CertificateBuilder()
          .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - _SKEW).not_valid_after(now + _dt.timedelta(days=CA_DAYS))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **ku),
                         critical=True)
          .add_extension(ca_ski, critical=False)
          .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))

    leaf_key = ec.generate_private_key(ec.SECP256R1())
    # The key's own short id in its name: every `keys init` with the default organisation made the
    # same signer name, so a bundle or a video re-signed with someone else's keys read like ours.
    key_id = x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()).digest.hex()[:8]
    leaf = (x509.CertificateBuilder()
            .subject_name(_name(org, f"C2PA signer {key_id}")).issuer_name(ca_name)
            .public_key(leaf_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _SKEW).not_valid_after(now + _dt.timedelta(days=SIGNER_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **ku),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return ca_key, ca, leaf_key, leaf


def init_keys(dir: Path | str | None = None, org: str = "evalkit development",
              force: bool = False) -> KeyPaths:
    """Make a development root CA and an ES256 end-entity certificate C2PA accepts.

    Writes `ca.pem`, `ca.key`, `signer.pem` (leaf then CA), `signer.key` and `watermark.key`
    (the secret for `--watermark`) under `dir` (default `$EVALKIT_HOME/credentials`, created
    0700). Keys are 0600 from the moment they exist; certificates 0644. Existing credentials are
    never replaced unless `force` (the old keys are then lost). Raises `CredentialsError`."""
    if not isinstance(org, str) or not org.strip() or len(org.encode("utf-8", "replace")) > 64:
        raise CredentialsError(f"organisation name {org!r}: give 1 to 64 characters (64 bytes in UTF-8: about 21 "
                               "Chinese or Japanese characters)")
    paths = default_paths(dir if dir is not None else credentials_dir(create_home=True))
    d = paths.dir
    if d.exists() and not d.is_dir():
        raise CredentialsError(f"{d}: exists and is not a folder; give another --dir")
    targets = [paths.ca_cert, paths.ca_key, paths.signer_cert, paths.signer_key, paths.watermark_key]

    def check_absent() -> None:
        existing = [p.name for p in targets if p.exists() or p.is_symlink()]
        if existing and not force:
            raise CredentialsError(f"{d}: credentials already exist ({', '.join(existing)}); "
                                   "pass --force to replace them (the old keys are lost) or choose another --dir")

    check_absent()
    check_credentials_folder(d)  # before mkdir: a refused --dir leaves no empty folder behind
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as e:
        raise CredentialsError(f"{d}: cannot create the folder ({e.strerror}); choose another --dir") from None
    warning = check_credentials_folder(d)  # again: another user may have made `d` first, in a shared folder
    # One `keys init` at a time a folder: two at once interleaved their renames into a certificate
    # of one run beside the key of the other (a quarter of tries), or both wrote without --force.
    with folder_lock(d):
        check_absent()
        return replace(_write_new_credentials(paths, org), warning=warning)


def _write_new_credentials(paths: KeyPaths, org: str) -> KeyPaths:
    from cryptography.hazmat.primitives import serialization

    d = paths.dir

    ca_key, ca, leaf_key, leaf = _make_certificates(org.strip())
    pem = serialization.Encoding.PEM

    def key_bytes(k) -> bytes:
        return k.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())

    contents = [
        (paths.ca_key, key_bytes(ca_key), 0o600),
        (paths.signer_key, key_bytes(leaf_key), 0o600),
        (paths.watermark_key, (secrets.token_hex(32) + "\n").encode(), 0o600),
        (paths.ca_cert, ca.public_bytes(pem), 0o644),
        (paths.signer_cert, leaf.public_bytes(pem) + ca.public_bytes(pem), 0o644),
    ]
    temps: list[tuple[Path, Path]] = []
    try:
        for path, data, mode in contents:
            temps.append((_write_atomic(path, data, mode), path))
        for tmp, path in temps:  # all written: now rename, keys first
            os.replace(tmp, path)
    except OSError as e:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise CredentialsError(f"{d}: cannot write credentials ({e.strerror}); check the folder's "
                               "permissions and free space") from None
    finally:
        del contents
    return paths


# ---------------------------------------------------------------------------------------------
# Reading and checking


def check_key_permissions(path: Path, what: str = "private key") -> None:
    """Refuse a secret (a private key, a watermark key) readable or writable by group or others
    (POSIX only). Another user's key (one root reads, or one shared through a group) is refused
    too, but `chmod` is its owner's to run, so the advice differs."""
    if os.name != "posix":
        return
    st = path.stat()
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return
    if not of_another_user(st):
        raise CredentialsError(f"{path}: {what} is accessible by group or others (mode {mode:04o}); "
                               f"run `chmod 600 {path}` and try again")
    import shlex

    # "chmod 600" fails for a user who does not own the file; as root it works, but would change
    # another user's file behind their back, so neither is advised (session 34).
    copy = "~/" + shlex.quote(f"my-{path.name}")  # the tilde outside the quotes, for the shell to expand
    raise CredentialsError(f"{path}: {what} belongs to another user, {owner_name(st.st_uid)}, and is accessible by "
                           f"group or others (mode {mode:04o}); copy it to a file of your own with mode 600 "
                           f"(`install -m 600 {shlex.quote(str(path))} {copy}`) and give that, or ask its owner "
                           f"to run `chmod 600` on it")


def _read_private(path, what: str) -> bytes:
    """The bytes of a secret file, read once (a key given as `<(kms-get ...)` or `/dev/stdin` is a
    pipe: it can be read only once). A certificate given where a key belongs is named as such,
    before its (usually 0644) permissions are."""
    p = Path(path).expanduser()
    if not p.exists():
        raise MissingResourceError(f"{p}: no such {what}; run `evalkit keys init` or give the right path")
    if p.is_dir():
        raise CredentialsError(f"{p}: is a folder, not a {what}; give the file itself")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CredentialsError(f"{p}: cannot read the {what} ({e.strerror}); {_unreadable_advice(p, e)}") from None
    if what == "private key" and b"-----BEGIN CERTIFICATE-----" in data and b"PRIVATE KEY-----" not in data:
        raise CredentialsError(f"{p}: is a certificate, not a private key; give the certificate as --cert and "
                               "its key as --key")
    if what == "watermark key file" and b"-----BEGIN" in data:
        raise CredentialsError(f"{p}: is a certificate or key, not a watermark secret; give the watermark key "
                               "file (`keys init` writes watermark.key)")
    check_key_permissions(p, what)
    return data


def _unreadable_advice(p: Path, e: OSError) -> str:
    """What to do about a secret file the OS refuses to read: its owner's permissions are theirs
    to change, so "check its permissions" is advice only for one's own file."""
    import errno

    try:
        st = p.stat()
    except OSError:
        st = None
    if e.errno == errno.EACCES and st is not None and of_another_user(st):
        return (f"it belongs to another user, {owner_name(st.st_uid)}: ask its owner for a copy of your own "
                "(mode 600), or give another file")
    return "check its permissions"


def load_certificates(path) -> list:
    """The certificates of a file, in file order (leaf first for a signing chain): PEM (one or
    many), or as CAs and browsers export them: one DER certificate (.cer, .der, .crt), a
    PKCS#7 bundle (.p7b, .p7c; DER or PEM), or the certificates of a PKCS#12 bundle (.p12, .pfx:
    its own certificate first)."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import pkcs7

    p = Path(path).expanduser()
    if not p.exists():
        raise MissingResourceError(f"{p}: no such certificate file; check the path")
    if p.is_dir():
        raise CredentialsError(f"{p}: is a folder, not a PEM certificate file")
    if is_pkcs12(p):
        return _open_pkcs12(p)[1]
    try:
        data = p.read_bytes()
    except OSError as e:
        raise CredentialsError(f"{p}: cannot read the certificate file ({e.strerror}); check its permissions") from None
    if b"PRIVATE KEY-----" in data:
        raise CredentialsError(f"{p}: contains a private key; give a file with certificates only "
                               "(keep keys in their own 0600 file)")
    certs = []
    for load in (x509.load_pem_x509_certificates, lambda d: [x509.load_der_x509_certificate(d)],
                 pkcs7.load_pem_pkcs7_certificates, pkcs7.load_der_pkcs7_certificates):
        try:
            with warnings.catch_warnings():  # OpenSSL's crl2pkcs7 writes BER: read, without a 2-line warning
                warnings.simplefilter("ignore", UserWarning)
                certs = list(load(data))
        except (ValueError, TypeError):  # not this encoding: try the next
            continue
        if certs:
            break
    if not certs:
        blocks = re.findall(rb"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", data, re.S)
        for i, block in enumerate(blocks, 1):  # name the block that spoils a bundle
            try:
                x509.load_pem_x509_certificate(block)
            except ValueError:
                raise CredentialsError(f"{p}: certificate block {i} of {len(blocks)} is malformed; fix or remove "
                                       "it") from None
        raise CredentialsError(f"{p}: no certificate found; give a PEM file with '-----BEGIN CERTIFICATE-----' "
                               "blocks, a DER certificate or a PKCS#7 (.p7b) bundle")
    return certs


def _ext(cert, cls):
    from cryptography import x509

    try:
        return cert.extensions.get_extension_for_class(cls)
    except x509.ExtensionNotFound:
        return None


def check_certificate_profile(cert) -> list[str]:
    """What keeps an end-entity certificate from the C2PA certificate profile ([] when none).

    Checks the points C2PA validators enforce: X.509 v3, not a CA, not self-signed, keyUsage
    (critical) with digitalSignature, an extended key usage from the C2PA list and not
    anyExtendedKeyUsage, subject and authority key identifiers, an organisation name, and
    the validity period covering now."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    problems = []
    if cert.version != x509.Version.v3:
        problems.append("not an X.509 v3 certificate")
    bc = _ext(cert, x509.BasicConstraints)
    if bc is not None and bc.value.ca:
        problems.append("is a CA certificate (basicConstraints CA:true)")
    if cert.issuer == cert.subject:
        problems.append("is self-signed (C2PA needs a certificate issued by a CA)")
    ku = _ext(cert, x509.KeyUsage)
    if ku is None or not ku.value.digital_signature:
        problems.append("keyUsage lacks digitalSignature")
    elif not ku.critical:
        problems.append("keyUsage is not marked critical")
    eku = _ext(cert, x509.ExtendedKeyUsage)
    oids = {o.dotted_string for o in eku.value} if eku is not None else set()
    if OID_ANY_EKU in oids:
        problems.append("has anyExtendedKeyUsage, which C2PA forbids")
    if not oids & set(C2PA_ALLOWED_EKUS):
        problems.append("extendedKeyUsage has no C2PA purpose (use emailProtection)")
    elif OID_EMAIL_PROTECTION not in oids:
        # documentSigning and the C2PA claim-signing OID are in the C2PA list, but c2pa-rs 0.91's
        # default trust configuration rejects them ("certificate missing required EKU").
        problems.append("extendedKeyUsage lacks emailProtection, the purpose c2pa's default "
                        "trust configuration requires")
    if _ext(cert, x509.SubjectKeyIdentifier) is None:
        problems.append("no subject key identifier")
    if _ext(cert, x509.AuthorityKeyIdentifier) is None:
        problems.append("no authority key identifier")
    if not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME):
        problems.append("subject has no organisation name (O=)")
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        problems.append(f"its RSA key has {key.key_size} bits; C2PA needs at least 2048")
    now = _dt.datetime.now(_dt.timezone.utc)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        problems.append(f"not valid now (valid {cert.not_valid_before_utc:%Y-%m-%d} to "
                        f"{cert.not_valid_after_utc:%Y-%m-%d})")
    return problems


def _alg_for(public_key) -> str:
    """The C2PA signing algorithm for a public key: es256/es384/es512, ps256 or ed25519."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        alg = {"secp256r1": "es256", "secp384r1": "es384", "secp521r1": "es512"}.get(public_key.curve.name)
        if alg:
            return alg
        raise CredentialsError(f"the signing certificate's elliptic curve {public_key.curve.name} is not "
                               f"allowed by C2PA; {_ALGS}")
    if isinstance(public_key, rsa.RSAPublicKey):
        return "ps256"
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        return "ed25519"
    kind = type(public_key).__name__.removeprefix("_").replace("PublicKey", "")
    raise CredentialsError(f"the signing certificate's {kind} key is not supported by C2PA; {_ALGS}")


_ALGS = "use an ECDSA P-256, P-384 or P-521 key (ES256/384/512), RSA of 2048 bits or more (PS256) or Ed25519"


def _describe(name) -> str:
    from cryptography.x509.oid import NameOID

    def first(oid):
        v = name.get_attributes_for_oid(oid)
        return str(v[0].value) if v else None

    cn, org = first(NameOID.COMMON_NAME), first(NameOID.ORGANIZATION_NAME)
    if cn and org and org not in cn:
        return f"{cn} ({org})"
    return cn or org or name.rfc4514_string()


def _checked_chain(cert_path, public_key=None) -> tuple[list, str]:
    """Load a signing chain, put it in issuer order (`chains.order_chain`: the certificate of
    `public_key` first), check the leaf against the C2PA profile; (certs, alg)."""
    from evalkit.provenance.chains import order_chain

    certs = order_chain(load_certificates(cert_path), cert_path, public_key, describe=_describe)
    problems = check_certificate_profile(certs[0])
    if problems:
        raise CredentialsError(f"{cert_path}: the signing certificate {_describe(certs[0].subject)} does not meet "
                               f"the C2PA certificate profile: {'; '.join(problems)}; "
                               "`evalkit keys init` makes one that does")
    try:
        return certs, _alg_for(certs[0].public_key())
    except CredentialsError as e:
        raise CredentialsError(f"{cert_path}: {e}") from None


PKCS12_SUFFIXES = (".p12", ".pfx")


def is_pkcs12(path) -> bool:
    """A PKCS#12 bundle (key and chain in one file, as Windows and many CAs export them)."""
    return Path(path).suffix.lower() in PKCS12_SUFFIXES


def _open_pkcs12(path) -> tuple:
    """(private key, [its certificate, then the others]) of a PKCS#12 bundle; its passphrase from
    `$EVALKIT_KEY_PASSPHRASE` (bundles are almost always encrypted). It holds a private key, so
    it must be 0600 like any key file."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    data = _read_private(path, "PKCS#12 bundle")
    secret = os.environ.get(PASSPHRASE_ENV)
    try:
        try:
            key, cert, others = pkcs12.load_key_and_certificates(data, secret.encode() if secret else None)
        except ValueError:
            if secret:  # wrong passphrase, or not PKCS#12 at all: both are this file's problem
                raise CredentialsError(f"{path}: the passphrase in {PASSPHRASE_ENV} does not open this "
                                       "PKCS#12 bundle, or it is not one; check both") from None
            raise CredentialsError(f"{path}: a PKCS#12 bundle that needs its passphrase (or not one); set "
                                   f"{PASSPHRASE_ENV}") from None
    finally:
        del data
    if cert is None:
        raise CredentialsError(f"{path}: this PKCS#12 bundle holds no certificate for its key; export it "
                               "with the certificate chain")
    return key, [cert, *(c for c in others if c != cert)]




def _scrub(text: str) -> str:
    """A message safe to show: PEM blocks removed, one line."""
    import re

    text = re.sub(r"-----BEGIN [A-Z ]+-----.*?(-----END [A-Z ]+-----|$)", "[PEM redacted]", str(text),
                  flags=re.S)
    return " ".join(text.split())


__all__ = ["KeyPaths", "CredentialsError", "init_keys", "load_certificates", "check_certificate_profile",
           "check_key_permissions", "load_watermark_key", "default_paths", "credentials_dir", "is_pkcs12",
           "C2PA_ALLOWED_EKUS", "MIN_WATERMARK_SECRET"]


# The watermark secret is read by `wm_keys` (it imports this module lazily, so either may come first).
from evalkit.provenance.wm_keys import MIN_WATERMARK_SECRET, load_watermark_key  # noqa: E402
