"""Testing a known payload (`wm_confirm.confirm_payload`): found where the blind read fails after
heavy re-encoding, never for another payload or key or an unmarked clip, and used by `verify`
when a manifest names the payload. Real x264 encodes, real c2pa, keys made here. < 40 s."""

from __future__ import annotations

import base64
import os

import c2pa
import numpy as np
import pytest

from evalkit.clip import Clip
from evalkit.provenance.c2pa import WatermarkInfo, _sign_context, build_manifest
from evalkit.provenance.credentials import init_keys
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import verify_file
from evalkit.provenance.watermark import detect, embed, make_key
from evalkit.provenance.wm_confirm import confirm_payload
from evalkit.provenance.wm_scheme import WatermarkInputError
from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip

KEY = make_key("7e57" * 16)
# World test clip 0 at 128 px through x264 CRF 38: the blind read loses the payload with this
# key (measured on test clips 0-3 and 5 at CRF 38/40/42: blind 7 of 15, the known payload 12 of
# 15; session 19's least-squares luma mark)
PAYLOAD = bytes(range(5, 13))


@pytest.fixture(scope="module")
def crf38(tmp_path_factory):
    root = tmp_path_factory.mktemp("confirm")
    clip = make_clip("test", 0, 5, WorldConfig(frames=16, size=128))
    marked = embed(clip.frames, PAYLOAD, KEY)
    path = write_video(root / "crf38.mp4", Clip(frames=marked, fps=8.0), crf=38)
    return dict(root=root, marked=marked, path=path, frames=read_video(path).frames, clip=clip)


def test_known_payload_is_found_where_the_blind_read_fails(crf38):
    blind = detect(crf38["frames"], KEY)
    assert blind.payload is None and not blind.detected
    d = confirm_payload(crf38["frames"], KEY, PAYLOAD)
    assert d.detected and d.payload == PAYLOAD and d.p_value < 1e-12
    assert d.geometry["method"] == "known payload" and d.geometry["code_agreement"] > 0.7
    # another payload, or the right payload under another key, is not there
    assert not confirm_payload(crf38["frames"], KEY, bytes(8)).detected
    assert not confirm_payload(crf38["frames"], make_key("ab" * 32), PAYLOAD).detected
    # clean marked frames: overwhelming
    assert confirm_payload(crf38["marked"], KEY, PAYLOAD).p_value < 1e-40


def test_no_detection_without_the_mark(real_videos_dir):
    """The null: unmarked world clips and real footage, random keys and payloads."""
    rng = np.random.default_rng(0)
    clips = [make_clip("test", i, 9, WorldConfig(frames=8, size=64)).frames for i in range(20)]
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        frames = read_video(real_videos_dir / name, max_frames=48).frames
        clips += [frames[a:a + 8] for a in range(0, 40, 8)]
    ps = []
    for k, frames in enumerate(clips * 2):
        key = make_key(rng.bytes(32))
        d = confirm_payload(frames, key, rng.bytes(8))
        assert not d.detected and d.payload is None
        ps.append(d.p_value)
    # the bound is conservative: small p-values stay rare
    assert np.mean(np.asarray(ps) < 0.05) <= 0.1 and min(ps) > 1e-4


def test_a_named_payload_is_tested_at_the_cuts_near_bars_measured_off(real_videos_dir, tmp_path):
    """Bars a codec rang at are measured off (14 px bars on the 176x144 carphone footage, CRF 30:
    (0, 12)); no view's read confirmed the payload (p 0.2, session 37). The known-payload test now
    also tries the cuts near the measured bars that fit best, as `detect`'s bar search reads them;
    the same bars around unmarked footage stay unconfirmed."""
    carphone = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=32).frames
    bars = ((0, 0), (14, 14), (0, 0), (0, 0))
    boxed = read_video(write_video(tmp_path / "boxed.mp4", np.pad(embed(carphone, PAYLOAD, KEY), bars),
                                   fps=8.0, crf=30)).frames
    d = confirm_payload(boxed, KEY, PAYLOAD)
    assert d.detected and d.payload == PAYLOAD and d.geometry["bars"] == (14, 14, 0, 0), (d.p_value, d.geometry)
    plain = read_video(write_video(tmp_path / "plain.mp4", np.pad(carphone, bars), fps=8.0, crf=30)).frames
    d = confirm_payload(plain, KEY, PAYLOAD)
    assert not d.detected and d.p_value > 1e-3, (d.p_value, d.geometry)


def test_bad_payload_is_a_clear_error(crf38):
    with pytest.raises(WatermarkInputError, match="8 to 32 bytes"):
        confirm_payload(crf38["frames"], KEY, b"short")


def test_verify_tests_the_payload_a_manifest_names(crf38, tmp_path):
    """A re-encoded copy checked against the original's manifest (a sidecar): the media changed
    (tampered), and the watermark is confirmed as the one the manifest's soft binding names."""
    creds = init_keys(tmp_path / "credentials")
    signer = load_signer(creds.signer_cert, creds.signer_key)
    original = write_video(tmp_path / "original.mp4", Clip(frames=crf38["marked"], fps=8.0), crf=18)
    info = WatermarkInfo(payload=PAYLOAD, key_id=KEY.fingerprint)
    b = c2pa.Builder(build_manifest(title="original.mp4", watermark=info, duration_ms=2000), context=_sign_context())
    try:
        b.set_no_embed()
        with open(original, "rb") as fin, open(tmp_path / "signed.mp4", "w+b") as fout:
            store = b.sign(signer.c2pa_signer(None), "video/mp4", fin, fout)
    finally:
        b.close()
    side = tmp_path / "original.c2pa"
    side.write_bytes(store)
    r = verify_file(crf38["path"], trust=[creds.ca_cert], wm_key=KEY, manifest=side)
    assert r["provenance"]["state"] == "invalid" and r["verdict"] == "tampered"
    wm = r["watermark"]
    assert wm["detected"] and wm["method"] == "known payload" and wm["payload"] == PAYLOAD.hex()
    assert wm["matches_manifest"] is True and wm["blind_p_value"] >= 1e-6
    # without a named payload the same copy is read blind, and the mark is not claimed
    r = verify_file(crf38["path"], wm_key=KEY)
    assert not r["watermark"]["detected"] and r["watermark"]["method"] == "blind"


def test_a_hostile_soft_binding_is_a_note_not_a_traceback(crf38, tmp_path):
    creds = init_keys(tmp_path / "credentials")
    signer = load_signer(creds.signer_cert, creds.signer_key)
    manifest = build_manifest(title="x.mp4", watermark=WatermarkInfo(payload=PAYLOAD, key_id=KEY.fingerprint))
    sb = next(a["data"] for a in manifest["assertions"] if a["label"] == "c2pa.soft-binding")
    sb["blocks"][0]["value"] = base64.b64encode(b"\x01" * 40).decode()  # another tool's 320-bit binding
    b = c2pa.Builder(manifest, context=_sign_context())
    try:
        with open(crf38["path"], "rb") as fin, open(tmp_path / "x.mp4", "w+b") as fout:
            b.sign(signer.c2pa_signer(None), "video/mp4", fin, fout)
    finally:
        b.close()
    r = verify_file(tmp_path / "x.mp4", wm_key=KEY)
    assert not r["watermark"]["detected"]
    assert any("could not be tested" in x for x in r["reasons"])
    assert os.path.exists(tmp_path / "x.mp4")


def test_a_miss_on_tiny_frames_is_called_weak_evidence(tmp_path):
    small = make_clip("test", 1, 5, WorldConfig(frames=8, size=32)).frames
    path = write_video(tmp_path / "tiny.mp4", Clip(frames=small, fps=8.0))
    r = verify_file(path, wm_key=KEY)
    assert not r["watermark"]["detected"]
    assert any("below the size the watermark is reliable at" in x for x in r["reasons"])
    r = verify_file(write_video(tmp_path / "big.mp4", Clip(frames=unmarked_64px(), fps=8.0)), wm_key=KEY)
    assert not any("below the size" in x for x in r["reasons"])


def unmarked_64px():
    return make_clip("test", 7, 5, WorldConfig(frames=8, size=64)).frames


def test_a_payload_near_the_embedded_one_is_not_confirmed():
    """A manifest naming the embedded payload with one bit flipped was confirmed (p 1.8e-26) from
    the head of the codeword, which the two payloads share; the tail (the keyed check) is now
    required to agree on its own, and it agrees with another payload only by chance."""
    key = make_key("near")
    payload = bytes.fromhex("0123456789abcdef")
    marked = embed(make_clip("test", 0, 7, WorldConfig(frames=24, size=128, fps=8.0)).frames, payload, key)
    true = confirm_payload(marked, key, payload)
    assert true.detected and true.payload == payload and true.geometry["tail_p_value"] < 1e-10
    for bit in (0, 32, 63):
        near = bytearray(payload)
        near[bit // 8] ^= 0x80 >> (bit % 8)
        d = confirm_payload(marked, key, bytes(near))
        assert not d.detected and d.payload is None and d.geometry["tail_p_value"] > 1e-2, (bit, d.geometry)
