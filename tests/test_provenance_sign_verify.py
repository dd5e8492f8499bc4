"""Signing and verification end to end with real c2pa, real keys made here and real MP4s (world
clips and the real footage): valid / trusted / invalid / absent, the manifest's assertions, the
watermark surviving a stripped or re-encoded manifest, disagreeing signals, atomic writes, and
hostile files giving a structured result, never a traceback. < 60 s."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shutil
from fractions import Fraction

import av
import c2pa
import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evalkit.video import remux as video_remux
from evalkit.errors import BadInputError, EvalkitError, MissingResourceError, VideoError
from evalkit.provenance.c2pa import (
    SOURCE_TYPES, SigningError, WatermarkInfo, _sign_context, build_manifest, has_c2pa_box, sign_file, sign_video,
)
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import VERDICTS, load_trust, verify_exit_code, verify_file
from evalkit.provenance.watermark import embed
from evalkit.video import psnr, read_video, write_video
from evalkit.world import WorldConfig, make_clip

GEN = {"name": "uvit", "version": "small"}
PROMPT = "a small red ball falls and bounces on the floor"
PARAMS = {"prompt": PROMPT, "seed": 7, "sampler": "ddim", "steps": 50, "guidance": 4.0,
          "weights_sha256": "ab" * 32}
TOP_KEYS = {"file", "readable", "error", "provenance", "watermark", "detector", "verdict", "reasons", "checked_part"}
PROV_KEYS = {"state", "failures", "signer", "issuer", "digital_source_type", "generator", "actions"}
WM_KEYS = {"detected", "payload", "p_value", "bit_confidence", "matches_manifest"}
DET_KEYS = {"p_generated", "name", "threshold"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("prov")
    creds = init_keys(root / "credentials")
    # A fixed watermark secret (the file keeps its 0600 mode), so the tests are deterministic:
    # with a fresh random key each run, the payload failed to come back for about one key in
    # 25-50 (measured: this clip after CRF 18 then CRF 30, 1 of 48 keys; the carphone excerpt
    # below, 1 of 25), and those tests failed by chance.
    creds.watermark_key.write_text("7e57" * 16 + "\n")
    signer = load_signer(creds.signer_cert, creds.signer_key)
    clip = make_clip("test", 2, 5, WorldConfig(frames=16, size=128))
    src = write_video(root / "world.mp4", clip)
    signed = sign_video(src, root / "world.signed.mp4", signer=signer, generator=GEN, params=PARAMS)
    wm_key = load_watermark_key(creds.watermark_key)
    marked = sign_file(src, root / "world.marked.mp4", signer, watermark=True, wm_key=wm_key,
                       generator=GEN, params=PARAMS)
    return dict(root=root, creds=creds, signer=signer, src=src, signed=signed, marked=marked,
                wm_key=wm_key, trust=[creds.ca_cert])


def manifest_of(path) -> dict:
    with c2pa.Reader(str(path)) as r:
        store = json.loads(r.json())
    return store["manifests"][store["active_manifest"]]


def assertion(manifest, label):
    return next((a["data"] for a in manifest["assertions"] if a["label"] == label), None)


def check_schema(r):
    # every key of the contract, and of the optional ones only "missing" (a path that is not there)
    assert TOP_KEYS <= set(r) <= TOP_KEYS | {"missing"} and r.get("missing", True) is True
    assert PROV_KEYS <= set(r["provenance"]) and WM_KEYS <= set(r["watermark"]) and set(r["detector"]) == DET_KEYS
    assert r["provenance"]["state"] in ("absent", "invalid", "valid", "trusted")
    assert r["verdict"] in VERDICTS and r["reasons"] and all(isinstance(x, str) for x in r["reasons"])
    assert r["error"] is None or (isinstance(r["error"], str) and "\n" not in r["error"])
    json.dumps(r, allow_nan=False)


def flip_in_mdat(path, dst, offset=64):
    data = bytearray(path.read_bytes())
    i = data.rfind(b"mdat")
    assert i > 0
    data[i + 4 + offset] ^= 0xFF
    dst.write_bytes(bytes(data))
    return dst


def remux(src, dst):
    """Stream copy into a new MP4 (no re-encode): what ffmpeg -c copy does; drops the manifest."""
    return video_remux(src, dst)


# ---------------------------------------------------------------------------------------------


def test_signed_world_clip_is_valid_trusted_and_still_decodes(env):
    signed = env["signed"]
    original, after = read_video(env["src"]), read_video(signed)
    assert np.array_equal(original.frames, after.frames) and after.fps == original.fps
    r = verify_file(signed)
    check_schema(r)
    assert r["readable"] and r["provenance"]["state"] == "valid"
    assert r["provenance"]["failures"] == ["signingCredential.untrusted"]
    r = verify_file(signed, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    p = r["provenance"]
    assert p["state"] == "trusted" and p["failures"] == []
    assert p["digital_source_type"] == SOURCE_TYPES["trained"] and p["generator"] == "uvit small"
    assert p["actions"] == ["c2pa.created"] and "C2PA signer" in p["signer"] and "root CA" in p["issuer"]
    assert r["verdict"] == "ai-generated (signed)"
    assert any("no watermark" in x for x in r["reasons"])  # AI claimed but not marked: said
    assert any("trust anchor you gave" in x for x in r["reasons"])
    assert r["detector"] == {"p_generated": None, "name": None, "threshold": None}
    assert any("No detector was run" in x for x in r["reasons"])
    assert verify_exit_code([r]) == 0


def test_manifest_assertions(env):
    m = manifest_of(env["signed"])
    actions = assertion(m, "c2pa.actions.v2")["actions"]
    assert actions[0] == {"action": "c2pa.created", "digitalSourceType": SOURCE_TYPES["trained"],
                          "softwareAgent": GEN}
    gen = assertion(m, "org.evalkit.generation")
    assert gen["prompt_sha256"] == hashlib.sha256(PROMPT.encode()).hexdigest()
    assert {k: gen[k] for k in ("seed", "sampler", "steps", "guidance", "weights_sha256")} == \
        {k: PARAMS[k] for k in ("seed", "sampler", "steps", "guidance", "weights_sha256")}
    assert PROMPT not in json.dumps(m) and "prompt" not in gen
    tm = assertion(m, "cawg.training-mining")["entries"]
    assert set(tm) >= {"cawg.ai_generative_training", "cawg.ai_training", "cawg.ai_inference",
                       "cawg.data_mining"}
    assert all(v["use"] == "notAllowed" for v in tm.values())
    assert assertion(m, "c2pa.soft-binding") is None  # not watermarked
    assert m["claim_generator_info"][0]["name"] == "evalkit"
    # with include_prompt the text is there on request only
    asked = build_manifest(title="t", params={"prompt": "p"}, include_prompt=True)
    assert assertion(asked, "org.evalkit.generation")["prompt"] == "p"

    mk = manifest_of(env["marked"].path)
    acts = [a["action"] for a in assertion(mk, "c2pa.actions.v2")["actions"]]
    assert acts == ["c2pa.created", "c2pa.watermarked"]
    sb = assertion(mk, "c2pa.soft-binding")
    assert sb["alg"] == "org.evalkit.watermark.v1"
    assert base64.b64decode(sb["blocks"][0]["value"]).hex() == env["marked"].payload
    assert json.loads(sb["alg_params"])["key_id"] == env["wm_key"].fingerprint
    assert sb["blocks"][0]["scope"]["timespan"] == {"start": 0, "end": 2000}


def test_watermarked_signed_clip_signals_agree(env):
    r = verify_file(env["marked"].path, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    wm = r["watermark"]
    assert r["provenance"]["state"] == "trusted" and "c2pa.watermarked" in r["provenance"]["actions"]
    assert wm["detected"] and wm["payload"] == env["marked"].payload and wm["matches_manifest"] is True
    assert wm["p_value"] < 1e-6 and wm["bit_confidence"] > 0.5
    assert r["verdict"] == "ai-generated (signed)"
    assert read_video(env["marked"].path).frames.shape == (16, 128, 128, 3)


def test_one_flipped_mdat_byte_is_tampering(env, tmp_path):
    bad = flip_in_mdat(env["marked"].path, tmp_path / "tampered.mp4")
    r = verify_file(bad, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    assert r["provenance"]["state"] == "invalid"
    assert "assertion.bmffHash.mismatch" in r["provenance"]["failures"]
    assert r["verdict"] == "tampered" and any("changed after it was signed" in x for x in r["reasons"])
    assert verify_exit_code([r]) == 1


def test_remux_strips_the_manifest_but_not_the_watermark(env, tmp_path):
    stripped = remux(env["marked"].path, tmp_path / "remuxed.mp4")
    assert not has_c2pa_box(stripped)
    r = verify_file(stripped, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    assert r["provenance"]["state"] == "absent"
    assert r["watermark"]["detected"] and r["watermark"]["payload"] == env["marked"].payload
    assert r["watermark"]["matches_manifest"] is None
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"


def test_reencode_at_crf30_keeps_the_watermark(env, tmp_path):
    clip = read_video(env["marked"].path)
    reenc = write_video(tmp_path / "crf30.mp4", clip, crf=30)
    r = verify_file(reenc, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "absent"  # a re-encode writes a new file without the manifest
    assert r["watermark"]["detected"] and r["watermark"]["payload"] == env["marked"].payload
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"
    assert verify_exit_code([r]) == 0


def test_payload_differs_from_soft_binding(env, tmp_path):
    key = env["wm_key"]
    frames = read_video(env["src"]).frames
    marked = write_video(tmp_path / "m.mp4", embed(frames, b"AAAAAAAA", key), fps=8)
    lie = WatermarkInfo(payload=b"BBBBBBBB", key_id=key.fingerprint)
    out = sign_video(marked, tmp_path / "lie.mp4", signer=env["signer"], watermark=lie)
    r = verify_file(out, trust=env["trust"], wm_key=key)
    assert r["watermark"]["payload"] == b"AAAAAAAA".hex() and r["watermark"]["matches_manifest"] is False
    assert r["verdict"] == "conflicting signals" and verify_exit_code([r]) == 1
    # a capture claim on a watermarked video is a conflict too
    cap = sign_video(marked, tmp_path / "cap.mp4", signer=env["signer"], source_type="capture")
    r = verify_file(cap, wm_key=key)
    assert r["verdict"] == "conflicting signals"
    assert any("camera capture" in x for x in r["reasons"])


def test_real_footage_signed_as_capture(env, real_videos_dir, tmp_path):
    src = shutil.copy(real_videos_dir / "carphone_pristine.mp4", tmp_path / "carphone.mp4")
    before = hashlib.sha256(open(src, "rb").read()).hexdigest()
    out = sign_video(src, tmp_path / "carphone.signed.mp4", signer=env["signer"], source_type="capture",
                     generator={"name": "camera"})
    assert hashlib.sha256(open(src, "rb").read()).hexdigest() == before
    assert read_video(out).frames.shape == read_video(src).frames.shape
    r = verify_file(out, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    assert r["provenance"]["state"] == "trusted" and r["provenance"]["digital_source_type"] == SOURCE_TYPES["capture"]
    assert r["watermark"]["checked"] and not r["watermark"]["detected"]  # unmarked real footage
    assert r["verdict"] == "capture (signed)"
    assert verify_file(out)["provenance"]["state"] == "valid"
    # unmarked, unsigned real footage: no evidence
    r = verify_file(src, wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "absent" and not r["watermark"]["detected"] and r["verdict"] == "unknown"


def test_real_footage_watermarked_then_stripped(env, real_videos_dir, tmp_path):
    src = shutil.copy(real_videos_dir / "bikes.mp4", tmp_path / "bikes.mp4")
    res = sign_file(src, tmp_path / "bikes.marked.mp4", env["signer"], source_type="composite",
                    watermark=True, wm_key=env["wm_key"])
    r = verify_file(res.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "trusted" and r["watermark"]["matches_manifest"] is True
    assert r["verdict"] == "ai-composite (signed)"
    r = verify_file(remux(res.path, tmp_path / "bikes.remux.mp4"), wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "absent" and r["watermark"]["payload"] == res.payload
    # signed as a composite, registered as one: stripped, still a composite (since session 33)
    assert r["verdict"] == "ai-composite (watermark only, manifest stripped)"


def test_a_copied_mark_on_real_footage_is_a_trace_not_a_verdict_of_ai(env, real_videos_dir, tmp_path):
    """Copy attack: the exact mark of a marked clip (marked - original, which anyone holding both
    has) added to real camera footage. Its pattern reads, its payload does not: before, that
    camera video was called 'ai-generated (watermark only, manifest stripped)'."""
    import cv2

    from evalkit.provenance import watermark as wm

    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=16).frames
    target = np.stack([cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in bikes])
    src = make_clip("test", 1, 5, WorldConfig(size=256, frames=16)).frames
    mark = wm.embed(src, b"forged!!", env["wm_key"]).astype(np.int16) - src
    forged = write_video(tmp_path / "forged.mp4", np.clip(target + mark, 0, 255).astype(np.uint8), fps=25)
    r = verify_file(forged, wm_key=env["wm_key"])
    assert r["watermark"]["detected"] and r["watermark"]["payload"] is None
    assert r["verdict"] == "watermark trace (payload unreadable)" and verify_exit_code([r]) == 0
    assert any("copied from another video" in x for x in r["reasons"])
    unmarked = write_video(tmp_path / "bikes256.mp4", target, fps=25)
    assert verify_file(unmarked, wm_key=env["wm_key"])["verdict"] == "unknown"


@pytest.mark.parametrize("name, fmt, codec, pix_fmt", [("clip.avi", "avi", "mpeg4", "yuv420p"),
                                                     ("clip.gif", "gif", "gif", "rgb8")])
def test_avi_and_gif_are_signed_in_place(env, tmp_path, name, fmt, codec, pix_fmt):
    """c2pa embeds manifests in AVI (RIFF) and GIF too; they were refused ('only MP4/MOV')."""
    import av

    src = tmp_path / name
    frames = make_clip("test", 3, 5, WorldConfig(frames=8, size=64)).frames
    with av.open(str(src), "w", format=fmt) as c:
        s = c.add_stream(codec, rate=8)
        s.width, s.height, s.pix_fmt = 64, 64, pix_fmt
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    signed = sign_file(src, tmp_path / f"signed{src.suffix}", env["signer"], generator=GEN, params=PARAMS).path
    r = verify_file(signed, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "trusted" and r["verdict"] == "ai-generated (signed)"
    assert read_video(signed).num_frames == 8  # still plays
    with pytest.raises(SigningError, match="already carries a C2PA manifest"):
        sign_file(signed, tmp_path / f"again{src.suffix}", env["signer"])
    edit = sign_file(signed, tmp_path / f"edit{src.suffix}", env["signer"], edit=True).path
    r = verify_file(edit, trust=env["trust"])
    assert r["verdict"] == "ai-generated (signed)" and r["provenance"]["ingredients"]
    data = bytearray(signed.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the media, past the headers
    (tmp_path / f"tampered{src.suffix}").write_bytes(bytes(data))
    r = verify_file(tmp_path / f"tampered{src.suffix}", trust=env["trust"])
    assert r["verdict"] == "tampered" and "assertion.dataHash.mismatch" in r["provenance"]["failures"]
    with pytest.raises(BadInputError, match="name the output .mp4"):  # a watermarked copy is H.264 MP4
        sign_file(src, tmp_path / f"marked{src.suffix}", env["signer"], watermark=True, wm_key=env["wm_key"])


def test_excerpt_of_a_signed_long_clip_keeps_the_watermark(env, real_videos_dir, tmp_path):
    # an investigator's usual case: a 3-second excerpt of a marked video, cut mid-segment and
    # re-encoded, its manifest gone
    src = shutil.copy(real_videos_dir / "carphone_pristine.mp4", tmp_path / "carphone.mp4")  # 120 frames
    res = sign_file(src, tmp_path / "carphone.marked.mp4", env["signer"], source_type="composite",
                    watermark=True, wm_key=env["wm_key"])
    clip = read_video(res.path)
    excerpt = write_video(tmp_path / "excerpt.mp4", clip.frames[37:110], fps=clip.fps, crf=23)
    r = verify_file(excerpt, trust=env["trust"], wm_key=env["wm_key"])
    check_schema(r)
    assert r["provenance"]["state"] == "absent"
    assert r["watermark"]["detected"] and r["watermark"]["payload"] == res.payload
    assert r["verdict"] == "ai-composite (watermark only, manifest stripped)"  # registered as a composite


def test_never_overwrites_its_input_and_leaves_nothing_on_failure(env, tmp_path):
    src = shutil.copy(env["src"], tmp_path / "in.mp4")
    before = open(src, "rb").read()
    with pytest.raises(BadInputError, match="never overwrites its input"):
        sign_video(src, src, signer=env["signer"])
    os.link(src, tmp_path / "hard.mp4")
    with pytest.raises(BadInputError, match="never overwrites its input"):
        sign_video(src, tmp_path / "hard.mp4", signer=env["signer"])
    os.symlink(src, tmp_path / "sym.mp4")
    with pytest.raises(BadInputError, match="never overwrites its input"):
        sign_file(tmp_path / "sym.mp4", src, env["signer"], watermark=True, wm_key=env["wm_key"])
    assert open(src, "rb").read() == before
    with pytest.raises(SigningError, match="already carries a C2PA manifest"):
        sign_video(env["signed"], tmp_path / "twice.mp4", signer=env["signer"])
    (tmp_path / "fake.mp4").write_bytes(b"not a video at all" * 10)
    with pytest.raises(VideoError):
        sign_video(tmp_path / "fake.mp4", tmp_path / "out.mp4", signer=env["signer"])
    with pytest.raises(MissingResourceError):
        sign_video(tmp_path / "missing.mp4", tmp_path / "out.mp4", signer=env["signer"])
    with pytest.raises(BadInputError, match="trained, capture or composite"):
        sign_video(src, tmp_path / "out.mp4", signer=env["signer"], source_type="drawn")
    with pytest.raises(BadInputError, match=r"\.mp4"):
        sign_video(src, tmp_path / "out.mkv", signer=env["signer"])
    mkv = write_video(tmp_path / "film.mkv", read_video(src).frames, fps=8)
    for out in ("copy.mkv", "copy.mp4"):  # the input's container is what to change, whatever the output
        with pytest.raises(BadInputError, match=r"film\.mkv: only MP4/MOV, AVI and GIF .* --sidecar"):
            sign_video(mkv, tmp_path / out, signer=env["signer"])
    mkv.unlink()
    bare = tmp_path / "saved_bare"  # an MP4 saved without its suffix: renaming it is the fix named first
    bare.write_bytes(src.read_bytes())
    with pytest.raises(BadInputError, match=r"suffix: a name without a suffix\); rename it saved_bare\.mp4"):
        sign_video(bare, tmp_path / "copy.mp4", signer=env["signer"])
    bare.unlink()
    tiny = write_video(tmp_path / "tiny.mp4", np.full((4, 16, 16, 3), 90, np.uint8), fps=8)
    with pytest.raises(BadInputError, match=r"tiny\.mp4: cannot watermark .* without --watermark"):
        sign_file(tiny, tmp_path / "out.mp4", env["signer"], watermark=True, wm_key=env["wm_key"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.mp4", "hard.mp4", "in.mp4", "sym.mp4", "tiny.mp4"]


def test_trust_and_detector_options(env, tmp_path):
    with pytest.raises(MissingResourceError):
        verify_file(env["signed"], trust=[tmp_path / "none.pem"])
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(EvalkitError, match="no certificate found"):
        load_trust([tmp_path / "junk.pem"])
    other = init_keys(tmp_path / "other")  # a different CA: valid, not trusted
    assert verify_file(env["signed"], trust=[other.ca_cert])["provenance"]["state"] == "valid"
    both = verify_file(env["signed"], trust=[other.ca_cert, env["creds"].ca_cert])
    assert both["provenance"]["state"] == "trusted"
    # the root as CAs hand it out: one DER certificate (.cer), or a PKCS#7 bundle (.p7b) with another CA
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.serialization import pkcs7
    from evalkit.provenance.credentials import load_certificates

    (root,), (other_root,) = load_certificates(env["creds"].ca_cert), load_certificates(other.ca_cert)
    (tmp_path / "root.cer").write_bytes(root.public_bytes(ser.Encoding.DER))
    (tmp_path / "roots.p7b").write_bytes(pkcs7.serialize_certificates([other_root, root], ser.Encoding.DER))
    (tmp_path / "roots-pem.p7b").write_bytes(pkcs7.serialize_certificates([root], ser.Encoding.PEM))
    for anchors in ("root.cer", "roots.p7b", "roots-pem.p7b"):
        assert verify_file(env["signed"], trust=[tmp_path / anchors])["provenance"]["state"] == "trusted", anchors
    (tmp_path / "other.cer").write_bytes(other_root.public_bytes(ser.Encoding.DER))
    assert verify_file(env["signed"], trust=[tmp_path / "other.cer"])["provenance"]["state"] == "valid"

    def detector(clip):
        return 0.9
    detector.threshold = 0.7
    r = verify_file(env["src"], wm_key=env["wm_key"], detector=detector)
    assert r["detector"] == {"p_generated": 0.9, "name": "detector", "threshold": 0.7}
    assert r["verdict"] == "likely ai-generated (detector only)"
    # between its cut-offs the detector decides nothing: "not generated" was said of p 0.95
    class Banded:  # a detector with two cut-offs, as evalkit's own
        threshold, real_below = 0.7, 0.1

        def __init__(self, p):
            self.p = p

        def __call__(self, clip):
            return self.p

    for p_gen, says in ((0.5, "The detector is uncertain (p_generated 0.500; generated at >= 0.700, real under 0.100)"),
                        (0.05, "The detector says not generated (p_generated 0.050 < 0.700, under its real cut-off")):
        r = verify_file(env["src"], wm_key=env["wm_key"], detector=Banded(p_gen))
        assert r["verdict"] == "unknown" and any(x.startswith(says) for x in r["reasons"]), r["reasons"]

    def broken(clip):
        raise RuntimeError("model weights missing")
    r = verify_file(env["src"], detector=broken)
    check_schema(r)
    assert r["detector"]["p_generated"] is None and any("detector failed" in x for x in r["reasons"])


HOSTILE = {
    "empty.mp4": lambda good: b"",
    "text.mp4": lambda good: b"hello, I am not a video\n" * 20,
    "random.mp4": lambda good: random.Random(1).randbytes(6000),
    "truncated.mp4": lambda good: good[: len(good) // 2],
    "header_only.mp4": lambda good: good[:200],
    "garbage_jumbf.mp4": lambda good: _garble_manifest(good),
    "huge_box.mp4": lambda good: _huge_box(good),
    "picture.png": lambda good: bytes.fromhex("89504e470d0a1a0a") + b"\0" * 64,
}


def _garble_manifest(good: bytes) -> bytes:
    i = good.find(b"uuid")
    return good[: i + 40] + random.Random(2).randbytes(600) + good[i + 640:]


def _huge_box(good: bytes) -> bytes:
    i = good.find(b"uuid")
    return good[: i - 4] + (2**31).to_bytes(4, "big") + good[i:]


def test_hostile_files_give_a_structured_result(env, tmp_path):
    good = env["marked"].path.read_bytes()
    results = {}
    for name, make in HOSTILE.items():
        (tmp_path / name).write_bytes(make(good))
        results[name] = r = verify_file(tmp_path / name, trust=env["trust"], wm_key=env["wm_key"])
        check_schema(r)
    (tmp_path / "folder.mp4").mkdir()
    for p in (tmp_path / "folder.mp4", tmp_path / "missing.mp4"):
        r = verify_file(p)
        check_schema(r)
        assert not r["readable"] and r["error"] and r["verdict"] == "unreadable"
    # a path that is not there is exit 3, as for every command; a folder is bad input
    assert verify_exit_code([verify_file(tmp_path / "missing.mp4")]) == 3
    assert verify_exit_code([verify_file(tmp_path / "folder.mp4")]) == 2
    for name in ("empty.mp4", "text.mp4", "random.mp4", "picture.png"):
        assert not results[name]["readable"] and results[name]["verdict"] == "unreadable", name
        assert results[name]["provenance"]["state"] == "absent"
    assert results["garbage_jumbf.mp4"]["provenance"]["state"] == "invalid"
    assert results["garbage_jumbf.mp4"]["error"]
    assert results["truncated.mp4"]["provenance"]["state"] in ("invalid", "absent")
    assert not results["truncated.mp4"]["readable"]
    assert verify_exit_code(list(results.values())) == 2


def test_randomly_mutated_signed_files_never_raise(env, tmp_path):
    """Seeded byte mutations of a signed file: a structured answer every time."""
    good = bytearray(env["signed"].read_bytes())
    rng = random.Random(5)
    states = set()
    for i in range(60):
        data = bytearray(good)
        kind = i % 4
        if kind == 0:  # flip a few random bytes anywhere
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # overwrite a run inside the manifest
            j = data.find(b"uuid") + rng.randrange(8, 3000)
            data[j:j + 16] = rng.randbytes(16)
        elif kind == 2:  # truncate
            data = data[: rng.randrange(1, len(data))]
        else:  # corrupt a box size
            j = rng.choice([m for m in range(len(data) - 8) if data[m + 4:m + 8] in (b"moov", b"mdat", b"uuid")])
            data[j:j + 4] = rng.randbytes(4)
        p = tmp_path / f"m{i}.mp4"
        p.write_bytes(bytes(data))
        r = verify_file(p, trust=env["trust"], wm_key=env["wm_key"] if i % 3 == 0 else None)
        check_schema(r)
        states.add(r["provenance"]["state"])
    assert "invalid" in states


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=24)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.floats(0, 1, exclude_min=True, exclude_max=True)))
def test_hypothesis_mutations_never_raise(env, tmp_path_factory, edits, cut):
    data = bytearray(env["signed"].read_bytes())
    for where, junk in edits:
        i = int(where * len(data))
        data[i:i + len(junk)] = junk
    if cut is not None:
        data = data[: max(1, int(cut * len(data)))]
    p = tmp_path_factory.mktemp("hyp", numbered=True) / "m.mp4"
    p.write_bytes(bytes(data))
    check_schema(verify_file(p, trust=env["trust"]))


def test_verify_reports_the_edits_the_watermark_read_shows(env, tmp_path, real_videos_dir):
    # stripped copies, cropped from a corner, mirrored, and both: the verdict stands, and the
    # read says what was done to the picture (where in the marked frame the crop came from)
    clip = read_video(env["marked"].path)
    h, w = clip.frames.shape[1:3]
    tilt = cv2.getRotationMatrix2D((w / 2, h / 2), 4.0, 1.0)  # 4 degrees counter-clockwise
    edits = {}
    for name, frames in (("cropped", clip.frames[:, 24:, 24:]), ("mirrored", clip.frames[:, :, ::-1]),
                         ("both", clip.frames[:, 24:, 24:][:, :, ::-1]),
                         ("turned", np.rot90(clip.frames, 1, axes=(1, 2))),
                         ("tilted", np.stack([cv2.warpAffine(f, tilt, f.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
                                              for f in clip.frames])),
                         ("mirrored-tilted", np.stack([cv2.warpAffine(np.ascontiguousarray(f[:, ::-1]), tilt,
                                                                      f.shape[1::-1], borderMode=cv2.BORDER_REFLECT)
                                                       for f in clip.frames]))):
        p = write_video(tmp_path / f"{name}.mp4", np.ascontiguousarray(frames), fps=clip.fps, crf=18)
        r = verify_file(p, trust=env["trust"], wm_key=env["wm_key"])
        check_schema(r)
        assert r["verdict"] == "ai-generated (watermark only, manifest stripped)", name
        assert r["watermark"]["payload"] == env["marked"].payload
        assert any("edited after marking" in x for x in r["reasons"])
        edits[name] = r["watermark"]["edits"]
    assert edits["mirrored"] == ["mirrored left-right"]
    assert edits["turned"] == ["rotated 90° counter-clockwise"]
    assert len(edits["tilted"]) == 1 and re.fullmatch(r"rotated (3\.[89]|4\.[0-2])° counter-clockwise",
                                                      edits["tilted"][0]), edits["tilted"]
    # mirrored first, then tilted: both named, the angle as the tilt was applied
    assert edits["mirrored-tilted"][0] == "mirrored left-right" and edits["mirrored-tilted"][1:] == edits["tilted"]
    assert edits["both"] == ["mirrored left-right", edits["cropped"][0]], edits["both"]
    assert len(edits["cropped"]) == 1 and edits["cropped"][0] == (
        "cropped off centre: the video shows 19%-100% of the marked frame's height and 19%-100% of its width")
    # an unedited re-encode shows no edit
    plain = write_video(tmp_path / "plain.mp4", clip.frames, fps=clip.fps, crf=23)
    assert verify_file(plain, trust=env["trust"], wm_key=env["wm_key"])["watermark"]["edits"] == []
    # nor does the signed file itself, nor footage marked and re-encoded (its mark reads at 0.97-0.98,
    # which a +-2% band called a contrast edit until session 20)
    assert verify_file(env["marked"].path, trust=env["trust"], wm_key=env["wm_key"])["watermark"]["edits"] == []
    bikes = write_video(tmp_path / "bikes.mp4", read_video(real_videos_dir / "bikes.mp4", max_frames=24))
    marked = sign_file(bikes, tmp_path / "bikes.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                       generator=GEN, params=PARAMS)
    r = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["watermark"]["detected"] and r["watermark"]["edits"] == []


def test_watermarking_keeps_the_sound(env, tmp_path):
    from test_video import decoded_audio, tone_strength, with_audio

    clip = make_clip("test", 4, 5, WorldConfig(frames=24, size=128))
    src, _ = with_audio(tmp_path / "talk.mp4", clip.frames, "aac")
    marked = sign_file(src, tmp_path / "talk.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                       generator=GEN, params=PARAMS)
    name, pcm = decoded_audio(marked.path)
    assert name == "aac" and tone_strength(pcm) > 0.9
    with av.open(str(src)) as a, av.open(str(marked.path)) as b:  # the sound's packets, unchanged
        assert [bytes(p) for p in a.demux(a.streams.audio[0]) if p.size] == \
            [bytes(p) for p in b.demux(b.streams.audio[0]) if p.size]
    r = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "trusted" and r["watermark"]["matches_manifest"] is True


def test_watermarking_keeps_the_clock_of_a_variable_rate_broadcast_clip(env, tmp_path):
    # A TS starts its clock at 1.4 s and a phone drops frames: the marked copy must show each
    # frame when the source did and keep the sound in step (before: 1/fps apart from 0, so the
    # picture ran 1.4 s ahead of the copied sound).
    from test_video import _bar_and_click, _clicked

    clip = make_clip("test", 4, 5, WorldConfig(frames=24, size=64))
    src, times = _clicked(tmp_path / "news.ts", clip.frames, "mpegts", 1.4, 1.4, gaps=(4, 15))
    marked = sign_file(src, tmp_path / "news.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                       generator=GEN, params=PARAMS)
    with av.open(str(marked.path)) as c:
        written = [f.time for f in c.decode(video=0)]
    assert np.diff(written) == pytest.approx(np.diff(times), abs=2e-3)
    shown, heard = _bar_and_click(marked.path)
    assert abs(shown - heard) < 0.03
    r = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "trusted" and r["watermark"]["matches_manifest"] is True


def test_only_a_gain_well_outside_a_re_encodes_band_is_called_an_edit():
    from evalkit.provenance.verify_words import edits as _edits

    assert _edits({"gain": 0.97}) == [] and _edits({"gain": 1.03}) == []  # what CRF 18-30 read as
    assert _edits({"gain": 0.84}) == ["contrast, brightness or saturation lowered, or the picture shrunk (the mark "
                                      "reads at 0.84 of its strength)"]  # a half-size copy reads at 0.77
    assert _edits({"gain": 1.19}) == ["contrast, brightness or saturation raised (the mark reads at 1.19 of its strength)"]


def test_a_video_over_the_decode_budget_is_checked_on_a_reduced_part(env, tmp_path, real_videos_dir):
    # before session 20 the watermark and detector of any video over the budget went unchecked
    # ("could not be decoded"): 4 GiB is 30 s of 1080p, and suspect videos are often longer
    from evalkit.video import VideoLimits

    hd = write_video(tmp_path / "hd.mp4", read_video(real_videos_dir / "bigbuckbunny.mp4", max_frames=40))
    marked = sign_file(hd, tmp_path / "hd.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                       generator=GEN, params=PARAMS)
    whole = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"])
    assert whole["checked_part"] is None and whole["watermark"]["detected"]
    budget = VideoLimits(max_decoded_bytes=40 * 640 * 360 * 3)  # 40 frames at half size; 1/4 at full
    r = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"], limits=budget)
    check_schema(r)
    assert r["checked_part"] == {"frames_read": 40, "frames": 40, "shrink": 2}
    assert r["watermark"]["detected"] and r["watermark"]["matches_manifest"] is True
    assert r["verdict"] == "ai-generated (signed)"
    assert any("first 40 frames of 40, reduced 2x" in x for x in r["reasons"])
    short = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"],
                        limits=VideoLimits(max_decoded_bytes=12 * 640 * 360 * 3))
    assert short["checked_part"]["frames_read"] == 12 and short["watermark"]["checked"]
    assert short["readable"] and short["error"] is None


def test_fragmented_mp4_is_signed_and_its_tampering_caught(env, tmp_path):
    # screen recorders and browsers write fragmented MP4 (moof/mdat pairs, an empty moov)
    frames = make_clip("test", 2, 0, WorldConfig(frames=48, size=128)).frames
    src = tmp_path / "frag.mp4"
    with av.open(str(src), "w", format="mp4",
                 options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as c:
        s = c.add_stream("libx264", rate=24, options={"g": "12"})
        s.width, s.height, s.pix_fmt = 128, 128, "yuv420p"
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode(None))
    assert src.read_bytes().count(b"moof") >= 4
    signed = sign_video(src, tmp_path / "frag.signed.mp4", signer=env["signer"], generator=GEN, params=PARAMS)
    assert verify_file(signed, trust=env["trust"])["provenance"]["state"] == "trusted"
    r = verify_file(flip_in_mdat(signed, tmp_path / "frag.tampered.mp4", offset=100), trust=env["trust"])
    assert r["verdict"] == "tampered" and "assertion.bmffHash.mismatch" in r["provenance"]["failures"]
    marked = sign_file(src, tmp_path / "frag.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                       generator=GEN, params=PARAMS)
    r = verify_file(marked.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["provenance"]["state"] == "trusted" and r["watermark"]["matches_manifest"] is True


def _camera_file(path, frames, pix_fmt="yuv420p", rotation=None, options=None, **codec_attrs):
    """H.264 of `frames` with what cameras write beside the pixels: a display matrix, colour
    tags, a pixel aspect (as codec-context attributes)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=8)
        s.height, s.width = frames.shape[1:3]
        s.pix_fmt, s.options = pix_fmt, options or {}
        for k, v in codec_attrs.items():
            setattr(s.codec_context, k, v)
        if rotation is not None:
            s.set_display_rotation(rotation)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        c.mux(s.encode())
    return path


def test_watermarking_a_portrait_phone_video_keeps_it_upright(env, tmp_path):
    """A phone stores portrait video on its side with a display matrix; the marked re-encode
    holds the picture as players showed it (and no matrix), not turned a quarter."""
    frames = make_clip("test", 1, 3, WorldConfig(frames=16, size=128)).frames[:, :, 16:112]  # 128 x 96
    stored = np.ascontiguousarray(np.rot90(frames, k=1, axes=(1, 2)))  # on its side: 96 x 128
    # players turn it back a quarter clockwise
    src = _camera_file(tmp_path / "portrait.mp4", stored, rotation=-90, options={"crf": "12"})
    out = sign_file(src, tmp_path / "portrait.marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                    generator=GEN, params=PARAMS)
    with av.open(str(out.path)) as c:
        first = next(c.decode(video=0))
        assert (first.height, first.width) == (128, 96) and first.rotation == 0
    assert psnr(read_video(out.path).frames, frames) > 30  # upright, the same picture
    r = verify_file(out.path, trust=env["trust"], wm_key=env["wm_key"])
    assert r["watermark"]["detected"] and r["watermark"]["matches_manifest"] is True
    assert r["watermark"]["edits"] == []  # read as marked: no turn needed


def test_watermarking_keeps_hdr_colour_and_pixel_aspect(env, tmp_path):
    """An HDR (BT.2020 HLG) clip with non-square pixels: the marked re-encode says the same, so
    players neither wash its colours out as BT.709 nor squeeze it to square pixels."""
    frames = make_clip("test", 4, 1, WorldConfig(frames=16, size=128)).frames
    src = _camera_file(tmp_path / "hlg-anamorphic.mp4", frames, pix_fmt="yuv420p10le", color_primaries=9,
                       color_trc=18, colorspace=9, color_range=1, sample_aspect_ratio=Fraction(4, 3))
    out = sign_file(src, tmp_path / "marked.mp4", env["signer"], watermark=True, wm_key=env["wm_key"],
                    generator=GEN, params=PARAMS)
    with av.open(str(out.path)) as c:
        s = c.streams.video[0]
        assert (s.codec_context.color_primaries, s.codec_context.color_trc) == (9, 18)
        assert s.sample_aspect_ratio == Fraction(4, 3)
    assert psnr(read_video(out.path).frames, read_video(src).frames) > 38  # the same RGB, re-tagged
    assert verify_file(out.path, trust=env["trust"], wm_key=env["wm_key"])["watermark"]["matches_manifest"] is True


def _short_lived_signer(root, seconds: float):
    """A CA and a C2PA-profile signer whose certificate expires `seconds` from now, and the
    moment it does: c2pa refuses to sign with an expired certificate, so a test ages one."""
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives import serialization as ser
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    from evalkit.provenance.signers import Signer

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Short Org"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = dt.datetime.now(dt.timezone.utc)
    ku = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False)
    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    def cert(subject, key, until, ca: bool):
        b = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name("Short CA"))
             .public_key(key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(until)
             .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
             .add_extension(x509.KeyUsage(digital_signature=not ca, key_cert_sign=ca, crl_sign=ca, **ku), critical=True)
             .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
             .add_extension(aki, critical=False))
        if not ca:
            b = b.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        return b.sign(ca_key, hashes.SHA256())

    ca = cert("Short CA", ca_key, now + dt.timedelta(days=30), True)
    expiry = now + dt.timedelta(seconds=seconds)
    leaf = cert("Short signer", leaf_key, expiry, False)
    (root / "chain.pem").write_bytes(leaf.public_bytes(ser.Encoding.PEM) + ca.public_bytes(ser.Encoding.PEM))
    (root / "ca.pem").write_bytes(ca.public_bytes(ser.Encoding.PEM))
    fd = os.open(root / "leaf.key", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, leaf_key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption()))
    os.close(fd)
    return Signer(cert_path=root / "chain.pem", alg="es256", subject="Short signer (Short Org)",
                  issuer="Short CA", key_path=root / "leaf.key"), root / "ca.pem", expiry


def test_a_time_stamped_signature_outlives_its_certificate(env, tmp_path):
    """`tsa_url` (`sign --tsa`): an RFC 3161 authority (a real one, run here on 127.0.0.1 with
    pyasn1 and a certificate from the test CA) countersigns. Read after the signing certificate
    expired, the manifest still validates: the token proves it was signed while the certificate
    was good. Without a time-stamp the same reads 'invalid credential' (the test below)."""
    import datetime as dt
    import time

    pytest.importorskip("pyasn1_modules")
    from local_tsa import LocalTSA, make_tsa

    signer, ca, expiry = _short_lived_signer(tmp_path, 4.0)
    tsa_cert, tsa_key = make_tsa(env["creds"].ca_cert.read_bytes(), env["creds"].ca_key.read_bytes())
    tsa = LocalTSA(tsa_cert, tsa_key)
    with tsa as url:
        out = sign_video(env["src"], tmp_path / "stamped.mp4", signer=signer, generator=GEN, tsa_url=url)
    assert tsa.requests == 1
    time.sleep(max(0.0, (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
    r = verify_file(out, trust=[ca, env["creds"].ca_cert])
    assert r["provenance"]["state"] == "trusted" and r["verdict"] == "ai-generated (signed)", r["provenance"]
    stamped = dt.datetime.fromisoformat(r["provenance"]["time_stamp"])
    assert stamped < expiry and any("time-stamp authority dated the signature" in x for x in r["reasons"])


def test_an_expired_signing_credential_is_not_called_tampering(env, tmp_path):
    """A manifest signed without a time-stamp, read after its certificate expired: the media is
    as signed, the credential is not. That is its own verdict; a changed byte is still tampering."""
    import datetime as dt
    import time

    signer, ca, expiry = _short_lived_signer(tmp_path, 4.0)
    out = tmp_path / "signed.mp4"
    b = c2pa.Builder(build_manifest(title="x.mp4", generator=GEN, source_type="trained"), context=_sign_context())
    try:
        with open(env["src"], "rb") as fin, open(out, "w+b") as fout:
            b.sign(signer.c2pa_signer(None), "video/mp4", fin, fout)
    finally:
        b.close()
    assert verify_file(out, trust=[ca])["verdict"] == "ai-generated (signed)"  # while the certificate is good
    time.sleep(max(0.0, (expiry - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.5)
    r = verify_file(out, trust=[ca])
    assert r["provenance"]["state"] == "invalid" and "signingCredential.expired" in r["provenance"]["failures"]
    assert r["verdict"] == "invalid credential" and r["verdict"] in VERDICTS
    assert "matches its manifest" in r["reasons"][0] and "signingCredential.expired" in r["reasons"][0]
    assert any("Unvouched for" in x and "trainedAlgorithmicMedia" in x for x in r["reasons"])
    assert verify_exit_code([r]) == 1
    bad = tmp_path / "bad.mp4"
    data = bytearray(out.read_bytes())
    i = data.rfind(b"mdat") + 200
    data[i] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert verify_file(bad, trust=[ca])["verdict"] == "tampered"  # both: the changed media decides


def test_sign_and_verify_take_bytes_paths_and_name_a_missing_signer(env, tmp_path):
    src = os.fsencode(env["src"])
    out = sign_file(src, os.fsencode(tmp_path / "b.signed.mp4"), env["signer"])
    assert out.path == tmp_path / "b.signed.mp4"
    assert verify_file(os.fsencode(out.path), trust=env["trust"])["verdict"] == "ai-generated (signed)"
    with pytest.raises(BadInputError, match=r"^signer: got NoneType; give a Signer: "
                                            r"evalkit\.provenance\.signers\.load_signer\(\)"):
        sign_file(env["src"], tmp_path / "none.mp4", None)
    assert not (tmp_path / "none.mp4").exists()
