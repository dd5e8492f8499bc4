"""A signing chain in the order C2PA needs it: the signing certificate, then each issuer in turn.

Chains come in every order: a DER PKCS#7 bundle is a SET, sorted by its bytes (often root
first); PKCS#12 exports keep whatever order the exporter had; hand-made PEM files put the root
anywhere. c2pa signs any order it is given and every verifier then reads the signature as
untrusted, so `order_chain` finds the signing certificate (the one the private key belongs to, or
else the one that issued none of the others), follows issuer names and signatures up the file,
and refuses, naming it, a certificate that is not on that path or a CA certificate that is
not valid today (session 32: such chains were signed with exit 0 and never trusted). A
cross-signed copy of a chain member (CA bundles carry both paths) is dropped, not refused.
"""

from __future__ import annotations

import datetime as _dt

from evalkit.errors import BadInputError


def _spki(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def issued(child, parent) -> bool:
    """True when `parent`'s key signed `child` (names and signature both checked)."""
    from cryptography.exceptions import InvalidSignature

    if child.issuer != parent.subject:
        return False
    try:
        child.verify_directly_issued_by(parent)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _unique(certs: list) -> list:
    seen, out = set(), []
    for c in certs:
        fp = c.fingerprint(c.signature_hash_algorithm) if c.signature_hash_algorithm else c.tbs_certificate_bytes
        if fp not in seen:
            seen.add(fp)
            out.append(c)
    return out


def _is_ca(cert) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _leaf(certs: list, public_key):
    if public_key is not None:
        own = [c for c in certs if _spki(c.public_key()) == _spki(public_key)]
        if own:
            return own[0]
        return certs[0]  # no certificate of this key: the caller's key check names the mismatch
    # no key (a callback signer): the certificate that issued none of the others and is no CA (an
    # unrelated root also issued none, and was taken for the leaf, session 32)
    tops = [c for c in certs if not any(o is not c and issued(o, c) for o in certs)]
    ends = [c for c in tops if not _is_ca(c)] or tops
    return ends[0] if len(ends) == 1 else certs[0]


def _alternates(chain: list, rest: list) -> list:
    """The certificates of `rest` on another path to the same keys: a cross-signed copy of a
    chain member (same subject and key, another issuer) and the CAs that issued such copies, as CA
    bundles carry them. They are dropped, not refused (they named a member of the chain as stray)."""
    same = {(c.subject.public_bytes(), _spki(c.public_key())) for c in chain}
    alt = [c for c in rest if (c.subject.public_bytes(), _spki(c.public_key())) in same]
    grew = True
    while grew:
        grew = False
        for c in rest:
            if c not in alt and any(issued(a, c) for a in alt):
                alt.append(c)
                grew = True
    return alt


def order_chain(certs: list, where, public_key=None, describe=str) -> list:
    """`certs` as leaf, its issuer, that one's issuer, ... (a self-signed root may end it).

    `public_key`: the signing key's public half (a callback signer has none: then the leaf is the
    certificate that issued none of the others). Raises BadInputError naming `where` and the
    certificate for one off the leaf's path or a CA certificate out of its validity period."""
    certs = _unique(list(certs))
    leaf = _leaf(certs, public_key)
    chain, rest = [leaf], [c for c in certs if c is not leaf]
    while rest and chain[-1].issuer != chain[-1].subject:
        parent = next((c for c in rest if issued(chain[-1], c)), None)
        if parent is None:
            break
        chain.append(parent)
        rest.remove(parent)
    rest = [c for c in rest if c not in _alternates(chain, rest)]
    if rest:
        stray = rest[0]
        raise BadInputError(
            f"{where}: the certificate {describe(stray.subject)} (issued by {describe(stray.issuer)}, serial "
            f"{stray.serial_number:x}) is not an issuer on the signing certificate's chain "
            f"({' <- '.join(describe(c.subject) for c in chain)}): it signed none of them, or a certificate "
            "between is missing; remove it or add the missing CA certificate")
    now = _dt.datetime.now(_dt.timezone.utc)
    for c in chain[1:]:
        if not c.not_valid_before_utc <= now <= c.not_valid_after_utc:
            raise BadInputError(
                f"{where}: the CA certificate {describe(c.subject)} in the chain is not valid now (valid "
                f"{c.not_valid_before_utc:%Y-%m-%d} to {c.not_valid_after_utc:%Y-%m-%d}); renew it from its CA")
        if not _is_ca(c):
            raise BadInputError(f"{where}: {describe(c.subject)} issues a certificate of the chain but is not a "
                                "CA certificate (basicConstraints CA:true); the chain cannot be trusted")
    return chain


__all__ = ["order_chain", "issued"]
