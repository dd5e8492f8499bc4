"""Users' own chains in the orders they come in (session 32's red team): a DER PKCS#7 bundle
sorted root first, PEM files in any order, a PKCS#12 export root first, a stray certificate, an
expired intermediate; and a key given through a pipe. Real keys and c2pa, made here."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evalkit.errors import BadInputError
from evalkit.provenance.c2pa import sign_video
from evalkit.provenance.signers import load_signer

NOW = dt.datetime.now(dt.timezone.utc)
KU = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
          encipher_only=False, decipher_only=False)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Chain Test Org"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(cn, key, issuer_cert=None, issuer_key=None, ca=True, days=(-1, 365)):
    issuer_name = issuer_cert.subject if issuer_cert is not None else _name(cn)
    signing_key = issuer_key or key
    b = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(issuer_name).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(NOW + dt.timedelta(days=days[0])).not_valid_after(NOW + dt.timedelta(days=days[1]))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **KU), critical=True)
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signing_key.public_key()), critical=False))
    if not ca:
        b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    return b.sign(signing_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    keys = {n: ec.generate_private_key(ec.SECP256R1()) for n in ("root", "inter", "leaf", "root2", "old")}
    root = _cert("Chain Root", keys["root"])
    inter = _cert("Chain Intermediate", keys["inter"], root, keys["root"])
    leaf = _cert("Chain Signer", keys["leaf"], inter, keys["inter"], ca=False)
    root2 = _cert("Other Root", keys["root2"])
    old_inter = _cert("Expired Intermediate", keys["old"], root, keys["root"], days=(-30, -1))
    inter_x = _cert("Chain Intermediate", keys["inter"], root2, keys["root2"])  # cross-signed by another root
    old_leaf = _cert("Chain Signer", keys["leaf"], old_inter, keys["old"], ca=False)
    pem = lambda *cs: b"".join(c.public_bytes(serialization.Encoding.PEM) for c in cs)  # noqa: E731
    key_path = d / "leaf.key"
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, keys["leaf"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    os.close(fd)
    files = {
        "ordered": pem(leaf, inter, root), "leaf_root_inter": pem(leaf, root, inter),
        "inter_first": pem(inter, leaf), "stray": pem(leaf, inter, root2), "expired_inter": pem(old_leaf, old_inter),
        "cross": pem(leaf, inter, inter_x, root, root2), "stray_first": pem(root2, inter, leaf, root),
    }
    for name, data in files.items():
        (d / f"{name}.pem").write_bytes(data)
    (d / "sorted.p7b").write_bytes(pkcs7.serialize_certificates([leaf, inter, root], serialization.Encoding.DER))
    (d / "root.pem").write_bytes(pem(root))
    p12 = pkcs12.serialize_key_and_certificates(b"s", keys["leaf"], leaf, [root, inter],
                                                serialization.NoEncryption())
    fd = os.open(d / "rootfirst.p12", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, p12)
    os.close(fd)
    return d


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from evalkit.video import write_video
    from evalkit.world import WorldConfig, make_clip

    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", make_clip("test", 0, 1, WorldConfig(frames=8, size=32)))


def _trusted(path: Path, anchors: Path) -> str:
    ctx = c2pa.Context(c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False},
                                                "trust": {"trust_anchors": anchors.read_text()}}))
    with c2pa.Reader(str(path), context=ctx) as r:
        return r.get_validation_state()


@pytest.mark.parametrize("chain", ["ordered.pem", "leaf_root_inter.pem", "inter_first.pem", "sorted.p7b",
                                   "rootfirst.p12", "cross.pem"])
def test_any_order_of_a_true_chain_signs_trusted(pki, clip, tmp_path, chain):
    key = None if chain.endswith(".p12") else pki / "leaf.key"
    signer = load_signer(pki / chain, key)
    assert signer.subject.startswith("Chain Signer") and signer.issuer.startswith("Chain Intermediate")
    first, second = x509.load_pem_x509_certificates(signer.chain_pem())[:2]
    assert first.subject == x509.load_pem_x509_certificates((pki / "ordered.pem").read_bytes())[0].subject
    assert second.subject.rfc4514_string().endswith("CN=Chain Intermediate") or "Chain Intermediate" in \
        second.subject.rfc4514_string()
    out = sign_video(clip, tmp_path / "s.mp4", signer=signer)
    assert _trusted(out, pki / "root.pem") == "Trusted"


def test_a_callback_signer_takes_the_end_certificate_not_a_stray_root(pki):
    """Without a key the leaf is the certificate that issued none of the others: an unrelated root
    issued none either, was taken for the leaf, and a real intermediate was named stray."""
    from evalkit.provenance.signers import callback_signer

    with pytest.raises(BadInputError, match="the certificate Other Root .*is not an issuer"):
        callback_signer(["true"], pki / "stray_first.pem")
    assert callback_signer(["true"], pki / "cross.pem").subject.startswith("Chain Signer")


def test_a_stray_or_expired_ca_certificate_is_named_before_signing(pki):
    with pytest.raises(BadInputError, match="Other Root .*is not an issuer on the signing certificate's chain") as e:
        load_signer(pki / "stray.pem", pki / "leaf.key")
    assert "\n" not in str(e.value)
    with pytest.raises(BadInputError, match="Expired Intermediate .*not valid now"):
        load_signer(pki / "expired_inter.pem", pki / "leaf.key")


def test_a_key_and_a_chain_through_pipes_sign(pki, clip, tmp_path):
    """`--key <(kms-get ...)`: a pipe reads once; both were read twice ("not a private key")."""
    env = dict(os.environ, EVALKIT_HOME=str(tmp_path / "home"))
    out = tmp_path / "piped.mp4"
    cmd = (f"{sys.executable} -m evalkit sign {clip} {out} --cert <(cat {pki / 'ordered.pem'}) "
           f"--key /dev/stdin < <(cat {pki / 'leaf.key'})")
    p = subprocess.run(["bash", "-c", cmd], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert _trusted(out, pki / "root.pem") == "Trusted"
    # a certificate given as the key is named as such (not "chmod 600" of a certificate)
    p = subprocess.run([sys.executable, "-m", "evalkit", "sign", str(clip), str(tmp_path / "x.mp4"), "--cert",
                        str(pki / "ordered.pem"), "--key", str(pki / "root.pem")], env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and "is a certificate, not a private key" in p.stderr and p.stderr.count("\n") == 1


def test_generate_signs_with_the_users_own_chain_and_watermark_key(pki, tmp_path):
    """`generate --sign` had no --cert/--key: the message sent users to options that did not exist."""
    env = dict(os.environ, EVALKIT_HOME=str(tmp_path / "home"), EVALKIT_SOFT_BINDINGS=str(tmp_path / "reg"))
    wm = tmp_path / "wm.key"
    fd = os.open(wm, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, os.urandom(32).hex().encode())
    os.close(fd)
    prompt = "a small red ball falls and bounces on the floor, on a dark background"
    args = [sys.executable, "-m", "evalkit", "generate", "--model", "world", "--prompts", prompt, "--size", "64",
            "--out", str(tmp_path / "g"), "--sign", "--cert", str(pki / "sorted.p7b"), "--key", str(pki / "leaf.key"),
            "--watermark", "--watermark-key", str(wm)]
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    clip = next((tmp_path / "g" / "clips").glob("*.mp4"))
    assert _trusted(clip, pki / "root.pem") == "Trusted"
    v = subprocess.run([sys.executable, "-m", "evalkit", "verify", "--json", "--no-detector", "--watermark-key", str(wm),
                        str(clip)], env=env, capture_output=True, text=True, timeout=300)
    r = json.loads(v.stdout)
    assert r["watermark"]["detected"] and r["watermark"]["matches_manifest"] is True, v.stderr
    # without the key (none under this home) the mark cannot be read, and verify says so, not a crash
    v = subprocess.run([sys.executable, "-m", "evalkit", "verify", "--json", "--no-detector", "--watermark-key",
                        str(tmp_path / "none.key"), str(clip)], env=env, capture_output=True, text=True, timeout=300)
    assert v.returncode == 3 and "no such watermark key" in v.stderr and v.stderr.count("\n") == 1
    p = subprocess.run(args[:-5] + ["--watermark-key", str(wm)], env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "--watermark-key" in p.stderr and "only applies with --watermark" in p.stderr


def _secret_file(path: Path, data: bytes) -> Path:
    """A key file as `keys init` writes one: 0600 from the moment it exists."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


def test_a_watermark_key_must_be_a_secret(pki, tmp_path, monkeypatch):
    """Session 32: a public certificate given as --watermark-key (every manifest carries it) let
    anyone read and forge the mark; a 5-byte secret passed; an empty one suggested `keys init
    --force`, which replaces the signing keys; $EVALKIT_WATERMARK_KEY naming a missing file made
    verify skip the watermark without a word."""
    from evalkit.errors import MissingResourceError
    from evalkit.provenance.credentials import load_watermark_key

    def secret(name, data):
        return _secret_file(tmp_path / name, data)

    cert = secret("cert.pem", (pki / "root.pem").read_bytes())
    for path, says in ((cert, "is a certificate or key, not a watermark secret"),
                       (pki / "leaf.key", "is a certificate or key"),
                       (secret("short", b"short\n"), "too short"),
                       (secret("empty", b""), "is empty")):
        with pytest.raises(BadInputError, match=says) as e:
            load_watermark_key(path)
        assert "--force" not in str(e.value)
    assert load_watermark_key(secret("ok", os.urandom(16).hex().encode())) is not None
    monkeypatch.setenv("EVALKIT_WATERMARK_KEY", str(tmp_path / "gone.key"))
    with pytest.raises(MissingResourceError, match="no such watermark key"):
        load_watermark_key(required=False)  # named, so it must be there


def test_watermark_keys_are_judged_by_what_they_are(tmp_path):
    """Random binary keys that begin like DER are secrets; a short key still reads old marks."""
    from evalkit.provenance.credentials import load_watermark_key

    def secret(name, data):
        return _secret_file(tmp_path / name, data)

    assert load_watermark_key(secret("der-like", b"\x30\x82" + os.urandom(30))) is not None
    # a certificate after OpenSSL's "Bag Attributes" lines is still a certificate
    bagged = secret("bagged.pem", b"Bag Attributes\n    friendlyName: me\nsubject=/CN=x\n" + b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    with pytest.raises(BadInputError, match="is a certificate or key"):
        load_watermark_key(bagged)
    short = secret("short", b"fourteen-bytes")
    with pytest.raises(BadInputError, match="too short"):
        load_watermark_key(short)  # for marking: refused
    assert load_watermark_key(short, embedding=False) is not None  # for reading: allowed
