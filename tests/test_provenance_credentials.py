"""Signing credentials: the development CA and signer that `evalkit keys init` makes meet the C2PA
certificate profile and are accepted by real c2pa; keys are 0600, never overwritten, never shown;
user chains and callback (KMS/HSM) signers. Real keys made here, real c2pa, no mocks. < 30 s."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
import sys
import textwrap
from pathlib import Path

import c2pa
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from evalkit.errors import EvalkitError, MissingResourceError
from evalkit.provenance.c2pa import SigningError, sign_video
from evalkit.provenance.credentials import CredentialsError, check_certificate_profile, init_keys, load_certificates, load_watermark_key
from evalkit.provenance.signers import callback_signer, load_signer, normalise_signature
from evalkit.video import write_video
from evalkit.world import WorldConfig, make_clip

ORG = "evalkit test org"


@pytest.fixture(scope="module")
def creds(tmp_path_factory):
    return init_keys(tmp_path_factory.mktemp("creds") / "credentials", org=ORG)


@pytest.fixture(scope="module")
def clip_mp4(tmp_path_factory):
    clip = make_clip("test", 0, 1, WorldConfig(frames=8, size=32))
    return write_video(tmp_path_factory.mktemp("clip") / "clip.mp4", clip)


def _trusted_context(ca_pem: Path):
    return c2pa.Context(c2pa.Settings.from_dict({"verify": {"remote_manifest_fetch": False},
                                                 "trust": {"trust_anchors": ca_pem.read_text()}}))


def _state(path, ca_pem=None):
    ctx = _trusted_context(ca_pem) if ca_pem else c2pa.Context()
    with c2pa.Reader(str(path), context=ctx) as r:
        return r.get_validation_state(), json.loads(r.json())


def _secret_fragments(*key_paths) -> list[str]:
    """Base64 lines of the PEM key bodies and the raw private scalars: none may leak."""
    out = []
    for p in key_paths:
        text = Path(p).read_text()
        out += [line for line in text.splitlines() if line and not line.startswith("-----")]
        try:
            k = serialization.load_pem_private_key(text.encode(), None)
            out.append(format(k.private_numbers().private_value, "x"))
        except (ValueError, TypeError, AttributeError):
            out.append(text.strip())  # the watermark secret (hex)
    return [f for f in out if len(f) >= 16]


# ---------------------------------------------------------------------------------------------


def test_init_keys_writes_files_with_private_permissions(creds):
    for p in (creds.ca_cert, creds.ca_key, creds.signer_cert, creds.signer_key, creds.watermark_key):
        assert p.is_file() and p.parent == creds.dir
    for p in (creds.ca_key, creds.signer_key, creds.watermark_key):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(creds.dir.stat().st_mode) & 0o077 == 0
    assert not [p for p in creds.dir.iterdir() if p.name.startswith(".") and p.name != ".evalkit.lock"]  # no temporaries
    assert "PRIVATE KEY" not in creds.signer_cert.read_text() + creds.ca_cert.read_text()


def test_default_folder_is_evalkit_home(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    paths = init_keys()
    assert paths.dir == tmp_path / "home" / "credentials"
    assert load_signer().cert_path == paths.signer_cert


def test_certificates_meet_the_c2pa_profile(creds):
    leaf, ca = load_certificates(creds.signer_cert)  # leaf first, then the CA
    (ca_alone,) = load_certificates(creds.ca_cert)
    assert ca == ca_alone
    assert leaf.version == x509.Version.v3 and ca.version == x509.Version.v3
    assert leaf.issuer == ca.subject and ca.issuer == ca.subject and leaf.subject != ca.subject

    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and not ku.value.key_cert_sign
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.EMAIL_PROTECTION]
    ski = leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski.digest == x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == ORG
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert leaf.public_key().curve.name == "secp256r1"
    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    now = dt.datetime.now(dt.timezone.utc)
    assert leaf.not_valid_before_utc < now < leaf.not_valid_after_utc <= ca.not_valid_after_utc
    assert leaf.not_valid_after_utc - now > dt.timedelta(days=300)

    cbc = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert cbc.critical and cbc.value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign

    assert check_certificate_profile(leaf) == []
    problems = check_certificate_profile(ca)
    assert any("CA" in p for p in problems) and any("self-signed" in p for p in problems)


def test_c2pa_accepts_the_keys(creds, clip_mp4, tmp_path):
    out = sign_video(clip_mp4, tmp_path / "signed.mp4", signer=load_signer(creds.signer_cert, creds.signer_key))
    state, store = _state(out)
    assert state == "Valid"  # intact, signer not trusted without an anchor
    assert [s["code"] for s in store["validation_status"]] == ["signingCredential.untrusted"]
    state, store = _state(out, creds.ca_cert)
    assert state == "Trusted" and not store.get("validation_status")
    sig = store["manifests"][store["active_manifest"]]["signature_info"]
    assert sig["alg"].lower() == "es256" and ORG in sig["issuer"] + sig["common_name"]


def test_refuses_to_overwrite_without_force(creds, tmp_path):
    d = tmp_path / "c"
    first = init_keys(d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    with pytest.raises(CredentialsError) as e:
        init_keys(d)
    msg = str(e.value)
    assert "\n" not in msg and "--force" in msg and "already exist" in msg
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    again = init_keys(d, force=True)
    assert again.signer_key.read_bytes() != before["signer.key"]
    assert stat.S_IMODE(again.signer_key.stat().st_mode) == 0o600
    assert first.dir == again.dir
    assert load_signer(again.signer_cert, again.signer_key).alg == "es256"


def test_refuses_a_key_readable_by_others(creds, tmp_path):
    key = tmp_path / "signer.key"
    key.write_bytes(creds.signer_key.read_bytes())
    key.chmod(0o644)
    with pytest.raises(CredentialsError) as e:
        load_signer(creds.signer_cert, key)
    msg = str(e.value)
    assert "\n" not in msg and f"chmod 600 {key}" in msg and "0644" in msg
    key.chmod(0o640)
    with pytest.raises(CredentialsError, match="chmod 600"):
        load_signer(creds.signer_cert, key)
    key.chmod(0o600)
    assert load_signer(creds.signer_cert, key).key_path == key


def test_bad_user_credentials_are_one_line_errors(creds, tmp_path):
    other = init_keys(tmp_path / "other")
    with pytest.raises(CredentialsError, match="belongs to no certificate in") as e:
        load_signer(creds.signer_cert, other.signer_key)
    assert "keys init --force" not in str(e.value)  # not keys init's own pair: --force would lose the key
    with pytest.raises(CredentialsError, match="both --cert and --key"):
        load_signer(creds.signer_cert, None)
    with pytest.raises(MissingResourceError, match="no such private key"):
        load_signer(creds.signer_cert, tmp_path / "missing.key")
    with pytest.raises(MissingResourceError, match="keys init"):
        load_signer(dir=tmp_path / "empty")
    # a self-signed leaf, as users keep trying: refused before c2pa sees it
    k = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "me")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(k, hashes.SHA256()))
    (tmp_path / "self.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp = tmp_path / "self.key"
    fd = os.open(kp, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.NoEncryption()))
    os.close(fd)
    with pytest.raises(CredentialsError) as e:
        load_signer(tmp_path / "self.pem", kp)
    msg = str(e.value)
    assert "\n" not in msg and "self-signed" in msg and "C2PA certificate profile" in msg
    assert "organisation" in msg and "emailProtection" in msg
    # an encrypted key, a garbage key, a cert file that is a key
    enc = tmp_path / "enc.key"
    fd = os.open(enc, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                 serialization.BestAvailableEncryption(b"pw")))
    os.close(fd)
    with pytest.raises(CredentialsError, match="encrypted"):
        load_signer(creds.signer_cert, enc)
    with pytest.raises(CredentialsError, match="contains a private key"):
        load_signer(creds.signer_key, creds.signer_key)
    with pytest.raises(CredentialsError, match="no certificate found"):
        load_certificates(creds.watermark_key)


def _write_private(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    os.close(fd)
    return path


def test_keys_as_organisations_keep_them(creds, clip_mp4, tmp_path, monkeypatch):
    """The same signing key as OpenSSL and PKI tools write it: encrypted with a passphrase
    (EVALKIT_KEY_PASSPHRASE), SEC1 'EC PRIVATE KEY' PEM, DER. Each signs a manifest that
    verifies; before, only unencrypted PEM was read."""
    key = serialization.load_pem_private_key(creds.signer_key.read_bytes(), None)
    pem, der, p8 = serialization.Encoding.PEM, serialization.Encoding.DER, serialization.PrivateFormat.PKCS8
    forms = {
        "encrypted.pem": key.private_bytes(pem, p8, serialization.BestAvailableEncryption(b"correct horse 42")),
        "sec1.pem": key.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL,
                                      serialization.NoEncryption()),
        "key.der": key.private_bytes(der, p8, serialization.NoEncryption()),
        "encrypted.der": key.private_bytes(der, p8, serialization.BestAvailableEncryption(b"correct horse 42")),
    }
    monkeypatch.setenv("EVALKIT_KEY_PASSPHRASE", "correct horse 42")
    for name, data in forms.items():
        path = _write_private(tmp_path / name, data)
        out = sign_video(clip_mp4, tmp_path / f"{name}.mp4", signer=load_signer(creds.signer_cert, path))
        state, _ = _state(out, creds.ca_cert)
        assert state == "Trusted", name
        assert path.read_bytes() == data  # never rewritten on disk
    enc = tmp_path / "encrypted.pem"
    monkeypatch.setenv("EVALKIT_KEY_PASSPHRASE", "wrong horse")
    with pytest.raises(CredentialsError, match="does not open this key") as e:
        load_signer(creds.signer_cert, enc)
    assert "horse" not in str(e.value) and "\n" not in str(e.value)
    monkeypatch.delenv("EVALKIT_KEY_PASSPHRASE")
    with pytest.raises(CredentialsError, match="EVALKIT_KEY_PASSPHRASE"):
        load_signer(creds.signer_cert, enc)


def test_a_pkcs12_bundle_signs_alone(creds, clip_mp4, tmp_path, monkeypatch):
    """Key and chain in one passphrase-protected .p12/.pfx, as Windows and many CAs export them:
    `--cert bundle.p12` alone signs."""
    from cryptography.hazmat.primitives.serialization import pkcs12

    key = serialization.load_pem_private_key(creds.signer_key.read_bytes(), None)
    leaf, ca = load_certificates(creds.signer_cert)[0], load_certificates(creds.ca_cert)[0]
    data = pkcs12.serialize_key_and_certificates(b"signer", key, leaf, [ca],
                                                 serialization.BestAvailableEncryption(b"bundle pass"))
    bundle = _write_private(tmp_path / "signer.pfx", data)
    monkeypatch.setenv("EVALKIT_KEY_PASSPHRASE", "bundle pass")
    assert load_certificates(bundle)[0] == leaf
    for signer in (load_signer(bundle), load_signer(bundle, bundle)):
        out = sign_video(clip_mp4, tmp_path / f"p12-{signer.key_path.name}-{id(signer)}.mp4", signer=signer)
        assert _state(out, creds.ca_cert)[0] == "Trusted"
    monkeypatch.setenv("EVALKIT_KEY_PASSPHRASE", "nope")
    with pytest.raises(CredentialsError, match="does not open this PKCS#12 bundle") as e:
        load_signer(bundle)
    assert "nope" not in str(e.value) and "\n" not in str(e.value)
    monkeypatch.delenv("EVALKIT_KEY_PASSPHRASE")
    with pytest.raises(CredentialsError, match="EVALKIT_KEY_PASSPHRASE"):
        load_signer(bundle)
    os.chmod(bundle, 0o644)  # it holds a key: readable by others is refused like a key file
    monkeypatch.setenv("EVALKIT_KEY_PASSPHRASE", "bundle pass")
    with pytest.raises(CredentialsError, match="accessible by group or others"):
        load_signer(bundle)


SIGN_SCRIPT = textwrap.dedent("""
    import sys
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
    sig = key.sign(sys.stdin.buffer.read(), ec.ECDSA(hashes.SHA256()))
    if sys.argv[2] == "raw":
        r, s = decode_dss_signature(sig)
        sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    if sys.argv[2] == "fail":
        sys.stderr.write(open(sys.argv[1]).read())   # a careless tool printing its key
        sys.exit(3)
    sys.stdout.buffer.write(sig)
""")


@pytest.mark.parametrize("form", ["der", "raw"])
def test_callback_signer_with_a_command(creds, clip_mp4, tmp_path, form):
    script = tmp_path / "kms_sign.py"
    script.write_text(SIGN_SCRIPT)
    signer = callback_signer([sys.executable, str(script), str(creds.signer_key), form], creds.signer_cert)
    assert signer.kind == "callback" and signer.alg == "es256"
    out = sign_video(clip_mp4, tmp_path / f"cb-{form}.mp4", signer=signer)
    state, _ = _state(out, creds.ca_cert)
    assert state == "Trusted"


def test_failing_callback_leaves_nothing_and_leaks_nothing(creds, clip_mp4, tmp_path):
    script = tmp_path / "kms_sign.py"
    script.write_text(SIGN_SCRIPT)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    signer = callback_signer([sys.executable, str(script), str(creds.signer_key), "fail"], creds.signer_cert)
    with pytest.raises(SigningError) as e:
        sign_video(clip_mp4, out_dir / "x.mp4", signer=signer)
    msg = str(e.value)
    assert "\n" not in msg and "status 3" in msg
    assert list(out_dir.iterdir()) == []
    for frag in _secret_fragments(creds.signer_key):
        assert frag not in msg
    with pytest.raises(SigningError, match="not found"):
        sign_video(clip_mp4, out_dir / "y.mp4",
                   signer=callback_signer(["/nonexistent/kms-sign"], creds.signer_cert))
    with pytest.raises(CredentialsError, match="list of strings"):
        callback_signer("kms-sign --key k", creds.signer_cert)
    assert list(out_dir.iterdir()) == []


def test_private_key_bytes_never_appear(creds, tmp_path, capfd):
    """Every message, repr and string this module produces, grepped for key material."""
    texts = []
    signer = load_signer(creds.signer_cert, creds.signer_key)
    texts += [repr(signer), str(signer), repr(creds), str(creds), creds.summary(),
              repr(signer.c2pa_signer()), repr(load_watermark_key(dir=creds.dir))]
    leaky = tmp_path / "leaky.key"
    leaky.write_bytes(creds.signer_key.read_bytes())
    leaky.chmod(0o644)
    wrong = tmp_path / "wrong.key"
    fd = os.open(wrong, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, creds.signer_key.read_bytes()[:-40] + b"garbage\n")
    os.close(fd)
    for call in (lambda: load_signer(creds.signer_cert, leaky),
                 lambda: load_signer(creds.signer_cert, wrong),
                 lambda: load_signer(creds.signer_key, creds.signer_key),
                 lambda: load_signer(creds.ca_cert, creds.ca_key),
                 lambda: init_keys(creds.dir),
                 lambda: load_watermark_key(leaky)):
        with pytest.raises(EvalkitError) as e:
            call()
        texts += [str(e.value), repr(e.value)]
        assert e.value.__cause__ is None or "PRIVATE" not in str(e.value.__cause__)
    out, err = capfd.readouterr()
    texts += [out, err]
    blob = "\n".join(texts)
    assert "PRIVATE KEY" not in blob
    for frag in _secret_fragments(creds.signer_key, creds.ca_key, creds.watermark_key):
        assert frag not in blob


def test_watermark_key_file(creds, tmp_path, monkeypatch):
    key = load_watermark_key(dir=creds.dir)
    assert key.fingerprint == load_watermark_key(creds.watermark_key).fingerprint
    assert load_watermark_key(tmp_path / "none.key", required=False) is None
    with pytest.raises(MissingResourceError):
        load_watermark_key(tmp_path / "none.key")
    monkeypatch.setenv("EVALKIT_WATERMARK_KEY", str(creds.watermark_key))
    assert load_watermark_key().fingerprint == key.fingerprint


def test_normalise_signature():
    k = ec.generate_private_key(ec.SECP256R1())
    der = k.sign(b"x", ec.ECDSA(hashes.SHA256()))
    raw = normalise_signature(der, "es256")
    assert len(raw) == 64 and normalise_signature(raw, "es256") == raw
    with pytest.raises(ValueError):
        normalise_signature(b"\x01\x02", "es256")


def test_weak_rsa_keys_and_a_spoilt_bundle_are_named(creds, tmp_path):
    """A 1024-bit RSA leaf was refused by c2pa as "the certificate is invalid", blamed on the video;
    one malformed block in a bundle of anchors read as "no certificate found"."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    k = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "weak")])
    now = dt.datetime.now(dt.timezone.utc)
    weak = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(k.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(k, hashes.SHA256()))
    assert "its RSA key has 1024 bits; C2PA needs at least 2048" in check_certificate_profile(weak)
    assert not any("RSA" in p for p in check_certificate_profile(load_certificates(creds.signer_cert)[0]))
    good = creds.ca_cert.read_text()
    lines = good.splitlines()
    lines[3] = lines[3][:10] + "!!!!" + lines[3][14:]  # a corrupted line inside the block
    bundle = tmp_path / "anchors.pem"
    bundle.write_text(good + "\n".join(lines) + "\n" + good)
    with pytest.raises(CredentialsError, match=r"anchors.pem: certificate block 2 of 3 is malformed"):
        load_certificates(bundle)


def test_an_untrusted_signature_names_its_issuer_when_no_anchor_is_it(creds, clip_mp4, tmp_path):
    """Anchors given, signature intact, c2pa says only "untrusted": the reasons say which CA issued
    the signing certificate and that it is none of the anchors (an intermediate left out of the
    chain reads this way)."""
    from evalkit.provenance.verify import verify_file

    other = init_keys(tmp_path / "other", org="Other Org")
    out = sign_video(clip_mp4, tmp_path / "signed.mp4", signer=load_signer(creds.signer_cert, creds.signer_key))
    r = verify_file(out, trust=[other.ca_cert])
    assert r["provenance"]["state"] == "valid"
    (note,) = [x for x in r["reasons"] if "none of your trust anchors" in x]
    assert f"issued by {ORG} root CA" in note and "Other Org root CA" in note and "intermediate" in note
    r = verify_file(out, trust=[creds.ca_cert])
    assert r["provenance"]["state"] == "trusted" and not any("none of your trust" in x for x in r["reasons"])


def test_each_signer_is_named_by_its_own_key_and_long_organisations_fit(tmp_path):
    """Every `keys init` with the default organisation made the same signer name, so a bundle
    re-signed with someone else's keys read like ours; a 53-character organisation overflowed
    X.509's 64-character CN (an internal error)."""
    names = []
    for d, org in (("a", "evalkit development"), ("b", "evalkit development"), ("c", "O" * 64)):
        creds = init_keys(tmp_path / d, org=org)
        leaf, ca = load_certificates(creds.signer_cert)[:2]
        cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert len(cn) <= 64 and cn.endswith(leaf.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest.hex()[:8])
        assert leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == org
        assert check_certificate_profile(leaf) == []
        names.append(cn)
    assert names[0] != names[1] and names[0].startswith("evalkit development C2PA signer ")


# ---------------------------------------------------------------------------------------------
# Whose files and folders (session 34: a red team's findings)


def _give_to_another_user(path: Path) -> None:
    """Make `path` another user's (uid 65534, `nobody` on most systems): only root may chown."""
    if not hasattr(os, "chown") or os.geteuid() == 65534:
        pytest.skip("needs POSIX ownership and a user other than 65534")
    try:
        os.chown(path, 65534, -1)
    except PermissionError:
        pytest.skip("chown to another user needs root; these tests run as an ordinary user here")


def test_another_users_key_open_to_others_is_refused_with_advice_its_reader_can_follow(creds, tmp_path):
    """`chmod 600` was advised for another user's key, which only its owner can run (or root,
    changing another user's file behind their back)."""
    for src, what, load in ((creds.signer_key, "private key", lambda p: load_signer(creds.signer_cert, p)),
                            (creds.watermark_key, "watermark key file", load_watermark_key)):
        key = tmp_path / src.name
        key.write_bytes(src.read_bytes())
        key.chmod(0o644)
        _give_to_another_user(key)
        with pytest.raises(CredentialsError) as e:
            load(key)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{key}: {what} belongs to another user")
        assert "uid 65534" in msg and "mode 0644" in msg and "ask its owner" in msg
        assert f"install -m 600 {key} ~/my-{key.name}" in msg and f"chmod 600 {key}" not in msg
        key.chmod(0o600)  # private to its owner: reading it (as root) exposes nothing
        assert load(key) is not None
    own = tmp_path / "own.key"
    own.write_bytes(creds.signer_key.read_bytes())
    own.chmod(0o640)
    with pytest.raises(CredentialsError, match=f"run `chmod 600 {own}`"):  # the owner's own fix
        load_signer(creds.signer_cert, own)


def test_keys_init_refuses_a_folder_anyone_can_write_and_warns_of_a_shared_one(tmp_path, capsys):
    """Credentials went without a word into folders where other users can swap the files (their
    CA as ca.pem, which verifiers then trust). Writable by all without the sticky bit: refused, as
    ssh refuses keys there; /tmp-like (sticky): written, with a warning."""
    from evalkit.cli import main

    open_ = tmp_path / "open"
    open_.mkdir()
    open_.chmod(0o777)
    for d in (open_, open_ / "sub" / "creds"):
        with pytest.raises(CredentialsError) as e:
            init_keys(d)
        msg = str(e.value)
        assert "\n" not in msg and msg.startswith(f"{d}: the folder") and "writable by every user" in msg
        assert "mode 0777, no sticky bit" in msg and "only you can write" in msg and f"chmod o-w {open_}" in msg
    assert list(open_.iterdir()) == []  # nothing written, not even the folder asked for
    assert main(["keys", "init", "--dir", str(open_)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "writable by every user" in err

    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    assert main(["keys", "init", "--dir", str(shared)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("wrote a development CA") and err.count("\n") == 1
    assert err.startswith(f"evalkit: warning: {shared}: every user can write this folder (mode 1777)")
    assert "only you can write" in err and (shared / "signer.key").is_file()
    # a folder of one's own inside the shared one (as $TMPDIR/creds) is safe: the sticky bit guards it
    assert init_keys(shared / "mine").warning is None and init_keys(tmp_path / "private").warning is None


def test_keys_init_refuses_a_folder_another_user_made_in_a_shared_one(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    planted = shared / "creds"  # made first by someone else, where anyone may make folders
    planted.mkdir()
    _give_to_another_user(planted)
    with pytest.raises(CredentialsError) as e:
        init_keys(planted)
    assert str(e.value).startswith(f"{planted}: belongs to another user") and "uid 65534" in str(e.value)
    assert list(planted.iterdir()) == []


def _damage(key: Path, how: str) -> None:
    if how == "a folder in its place":
        key.unlink()
        key.mkdir()
    elif how == "empty":
        key.write_bytes(b"")
    elif how == "a certificate":
        key.write_bytes((key.parent / "ca.pem").read_bytes())
    elif how == "open to others":
        key.chmod(0o644)
    elif how == "another user's, open to others":
        key.chmod(0o644)
        _give_to_another_user(key)
    elif how == "unreadable (mode 0000)":
        if os.geteuid() == 0:
            pytest.skip("root reads a file of mode 0000")
        key.chmod(0)


@pytest.mark.parametrize("how", ["a folder in its place", "empty", "a certificate", "open to others",
                                 "another user's, open to others", "unreadable (mode 0000)"])
def test_verify_goes_on_without_a_default_watermark_key_it_cannot_use(creds, clip_mp4, tmp_path, monkeypatch,
                                                                      capsys, how):
    """A damaged default watermark key stopped `verify` before any verdict; it is optional there, so
    the manifest is still checked and each result says why the mark was not. A key the user names
    stays an error, and so does the key `sign --watermark` and `generate --watermark` mark with."""
    from evalkit.cli import main

    home = tmp_path / "home"
    keys = init_keys(home / "credentials")
    signed = sign_video(clip_mp4, tmp_path / "signed.mp4", signer=load_signer(keys.signer_cert, keys.signer_key))
    monkeypatch.setenv("EVALKIT_HOME", str(home))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("EVALKIT_WATERMARK_KEY", raising=False)
    _damage(keys.watermark_key, how)

    assert main(["verify", "--json", "--no-detector", str(signed)]) == 0
    out, err = capsys.readouterr()
    r = json.loads(out)
    assert r["readable"] and r["provenance"]["state"] == "valid" and r["verdict"] == "ai-generated (signed)"
    assert r["watermark"]["checked"] is False
    (why,) = [x for x in r["reasons"] if "watermark" in x and "not checked" in x]
    assert why.startswith("The watermark was not checked: the default watermark key file could not be used "
                          f"({keys.watermark_key}: ") and "--watermark-key" in why
    assert err.count("\n") == 1 and err.startswith("evalkit: warning: the default watermark key cannot be used")

    assert main(["verify", "--no-detector", "--watermark-key", str(keys.watermark_key), str(signed)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"evalkit: error: {keys.watermark_key}: ")
    for argv, made in ((["sign", str(clip_mp4), str(tmp_path / "marked.mp4"), "--watermark"], tmp_path / "marked.mp4"),
                       (["generate", "--model", "world", "--prompts", "a red ball falls", "--out",
                         str(tmp_path / "gen"), "--sign", "--watermark"], tmp_path / "gen")):
        assert main(argv) == 2, argv[0]
        out, err = capsys.readouterr()
        assert err.count("\n") == 1 and err.startswith(f"evalkit: error: {keys.watermark_key}: ")
        assert not made.exists()
