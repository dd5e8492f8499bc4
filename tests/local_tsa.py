"""A minimal RFC 3161 time-stamp authority for tests (no network here): answers a TimeStampReq
with a TimeStampResp whose token is CMS SignedData over a TSTInfo, signed by a test TSA
certificate (P-256, extended key usage timeStamping) with the ESS signing-certificate-v2
attribute that validators require. Built with pyasn1 and cryptography, real keys and real DER."""

from __future__ import annotations

import datetime as dt
import hashlib
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pyasn1.codec.der import decoder, encoder
from pyasn1.type import univ, useful
from pyasn1_modules import rfc3161, rfc5035, rfc5280, rfc5652

from http_stub import serve

SHA256 = univ.ObjectIdentifier("2.16.840.1.101.3.4.2.1")
ECDSA_SHA256 = univ.ObjectIdentifier("1.2.840.10045.4.3.2")
ID_CT_TSTINFO = univ.ObjectIdentifier("1.2.840.113549.1.9.16.1.4")
ID_SIGNED_DATA = univ.ObjectIdentifier("1.2.840.113549.1.7.2")
ID_CONTENT_TYPE = univ.ObjectIdentifier("1.2.840.113549.1.9.3")
ID_MESSAGE_DIGEST = univ.ObjectIdentifier("1.2.840.113549.1.9.4")
ID_SIGNING_CERT_V2 = univ.ObjectIdentifier("1.2.840.113549.1.9.16.2.47")
POLICY = univ.ObjectIdentifier("1.3.6.1.4.1.99999.1")


def make_tsa(ca_cert_pem: bytes, ca_key_pem: bytes, name: str = "evalkit test TSA"):
    """(certificate, key) of a TSA issued by the given CA."""
    ca = x509.load_pem_x509_certificate(ca_cert_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "evalkit tests")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _attribute(oid, value) -> rfc5652.Attribute:
    a = rfc5652.Attribute()
    a["attrType"] = oid
    a["attrValues"].append(value)
    return a


def time_stamp_response(request_der: bytes, cert, key, serial: int, when: dt.datetime) -> bytes:
    req, _ = decoder.decode(request_der, asn1Spec=rfc3161.TimeStampReq())
    tst = rfc3161.TSTInfo()
    tst["version"] = 1
    tst["policy"] = POLICY
    tst["messageImprint"] = req["messageImprint"]
    tst["serialNumber"] = serial
    tst["genTime"] = useful.GeneralizedTime(when.strftime("%Y%m%d%H%M%SZ"))
    if req["nonce"].isValue:
        tst["nonce"] = req["nonce"]
    tst_der = encoder.encode(tst)

    cert_der = cert.public_bytes(serialization.Encoding.DER)
    asn1_cert, _ = decoder.decode(cert_der, asn1Spec=rfc5280.Certificate())
    ess = rfc5035.SigningCertificateV2()
    cid = rfc5035.ESSCertIDv2()
    cid["certHash"] = hashlib.sha256(cert_der).digest()  # hashAlgorithm defaults to SHA-256
    ess["certs"].append(cid)
    attrs = [_attribute(ID_CONTENT_TYPE, ID_CT_TSTINFO),
             _attribute(ID_MESSAGE_DIGEST, univ.OctetString(hashlib.sha256(tst_der).digest())),
             _attribute(ID_SIGNING_CERT_V2, ess)]
    # the signature covers the attributes DER-encoded as a SET OF (universal tag, not [0])
    to_sign = rfc5652.SignedAttributes()
    for a in attrs:
        to_sign.append(a)
    signature = key.sign(encoder.encode(to_sign), ec.ECDSA(hashes.SHA256()))

    si = rfc5652.SignerInfo()
    si["version"] = 1
    ias = rfc5652.IssuerAndSerialNumber()
    ias["issuer"] = asn1_cert["tbsCertificate"]["issuer"]
    ias["serialNumber"] = asn1_cert["tbsCertificate"]["serialNumber"]
    si["sid"]["issuerAndSerialNumber"] = ias
    si["digestAlgorithm"]["algorithm"] = SHA256
    for a in attrs:  # the [0]-tagged field, instantiated by pyasn1 on access
        si["signedAttrs"].append(a)
    si["signatureAlgorithm"]["algorithm"] = ECDSA_SHA256
    si["signature"] = signature

    sd = rfc5652.SignedData()
    sd["version"] = 3
    alg = rfc5280.AlgorithmIdentifier()
    alg["algorithm"] = SHA256
    sd["digestAlgorithms"].append(alg)
    sd["encapContentInfo"]["eContentType"] = ID_CT_TSTINFO
    sd["encapContentInfo"]["eContent"] = tst_der  # bytes: pyasn1 makes them the [0]-tagged OCTET STRING
    choice = rfc5652.CertificateChoices()
    choice["certificate"] = asn1_cert
    sd["certificates"].append(choice)
    sd["signerInfos"].append(si)

    token = rfc5652.ContentInfo()
    token["contentType"] = ID_SIGNED_DATA
    token["content"] = encoder.encode(sd)  # ANY, explicitly [0]-tagged
    resp = rfc3161.TimeStampResp()
    resp["status"]["status"] = 0  # granted
    resp["timeStampToken"] = token
    return encoder.encode(resp)


class LocalTSA:
    """`with LocalTSA(cert, key) as url:` serves time stamps on 127.0.0.1 until the block ends;
    `requests` counts the tokens issued."""

    def __init__(self, cert, key):
        self.cert, self.key, self.requests = cert, key, 0
        self._serving = None

    def _respond(self, body: bytes) -> tuple[str, bytes]:
        self.requests += 1
        return "application/timestamp-reply", time_stamp_response(body, self.cert, self.key, self.requests,
                                                                  dt.datetime.now(dt.timezone.utc))

    def __enter__(self) -> str:
        self._serving = serve(self._respond)
        return self._serving.__enter__() + "/tsa"

    def __exit__(self, *exc):
        return self._serving.__exit__(*exc)
