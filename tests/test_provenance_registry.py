"""The soft-binding registry: `sign --watermark` records each payload with what its manifest says
and a thumbnail of the marked picture; `verify` finds the manifest of a stripped copy there, and
calls a mark copied onto another picture a conflict. Real c2pa, keys made here, real MP4s."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from evalkit.cli import main
from evalkit.provenance import registry
from evalkit.provenance import watermark as wm
from evalkit.provenance.c2pa import sign_file
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import verify_file
from evalkit.video import read_video, remux, write_video
from evalkit.world import WorldConfig, make_clip


@pytest.fixture
def signed(tmp_path, monkeypatch):
    """A world clip (dark background, 64 px) signed with a watermark into a fresh registry."""
    monkeypatch.setenv("EVALKIT_SOFT_BINDINGS", str(tmp_path / "registry"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))  # where the CLI finds the keys
    creds = init_keys(tmp_path / "home" / "credentials")
    creds.watermark_key.write_text("7e57" * 16 + "\n")  # a fixed key: deterministic payload reads
    signer, key = load_signer(creds.signer_cert, creds.signer_key), load_watermark_key(creds.watermark_key)
    clip = make_clip("test", 2, 0, WorldConfig(frames=24, size=64, fps=8.0))
    src = write_video(tmp_path / "src.mp4", clip.frames, fps=8.0, crf=0)
    res = sign_file(src, tmp_path / "signed.mp4", signer, watermark=True, wm_key=key,
                    generator={"name": "uvit", "version": "small"})
    return dict(tmp=tmp_path, src=src, res=res, key=key, signer=signer, frames=read_video(src).frames)


def test_sign_records_the_payload_and_a_stripped_copy_finds_its_manifest(signed):
    res, tmp = signed["res"], signed["tmp"]
    assert res.registered is not None and res.registry_error is None
    rec = json.loads(res.registered.read_text())
    assert rec["payload"] == res.payload and rec["key_id"] == res.key_id
    assert rec["manifest"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    text = res.registered.read_text()
    assert "7e57" * 16 not in text and "PRIVATE" not in text  # no secret in a record
    stripped = remux(res.path, tmp / "stripped.mkv")
    r = verify_file(stripped, wm_key=signed["key"])
    assert r["provenance"]["state"] == "absent" and r["watermark"]["payload"] == res.payload
    reg = r["watermark"]["registry"]
    assert reg["found"] and reg["content"] == "match" and reg["signed_file"] == "signed.mp4"
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"
    assert any("soft-binding registry holds this payload" in x and "signed by" in x for x in r["reasons"])
    json.dumps(r)  # the contract stays JSON


def test_a_mark_copied_onto_another_picture_conflicts_with_its_registration(signed):
    """The forgery the watermark alone cannot see: the exact mark (marked - original) added to a
    flat picture reads with the source's payload; the registry's thumbnail shows the picture is
    not the one that was marked."""
    frames, key, tmp = signed["frames"], signed["key"], signed["tmp"]
    pattern = wm.embed(frames, bytes.fromhex(signed["res"].payload), key).astype(np.int16) - frames
    grey = np.full_like(frames, int(frames.mean()))
    forged = write_video(tmp / "forged.mp4", np.clip(grey + pattern, 0, 255).astype(np.uint8), fps=8.0, crf=0)
    r = verify_file(forged, wm_key=key)
    assert r["watermark"]["payload"] == signed["res"].payload  # the copy reads as marked ...
    assert r["watermark"]["registry"]["content"] == "different"  # ... on another picture
    assert r["verdict"] == "conflicting signals"
    assert any("copied onto this video" in x for x in r["reasons"])
    assert main(["verify", str(forged), "--no-detector"]) != 0  # exit 1: a failed check
    # the real copy, re-encoded, is still the registered picture
    recoded = write_video(tmp / "recoded.mp4", read_video(signed["res"].path).frames, fps=8.0, crf=28)
    r = verify_file(recoded, wm_key=key)
    assert r["watermark"]["registry"]["content"] == "match" and r["verdict"] != "conflicting signals"


def test_no_register_and_a_damaged_record(signed, tmp_path, capsys):
    # the CLI's --no-register writes nothing; verify then says the payload is not registered
    out = tmp_path / "unregistered.mp4"
    assert main(["sign", str(signed["src"]), str(out), "--watermark", "--no-register"]) == 0
    assert "soft-binding registry" not in capsys.readouterr().out
    # a damaged record reads as absent, never as a traceback or a trusted answer
    rec = signed["res"].registered
    good = json.loads(rec.read_text())
    rec.write_text(json.dumps({**good, "manifest": ["not", "a", "dict"], "signed_file": {"x": 1}}))
    r = verify_file(remux(signed["res"].path, tmp_path / "h.mkv"), wm_key=signed["key"])  # hostile fields
    assert r["watermark"]["registry"]["found"] and r["watermark"]["registry"]["manifest"] == {}
    assert any("marked without a manifest" in x for x in r["reasons"])
    rec.write_text(rec.read_text()[:40])
    r = verify_file(remux(signed["res"].path, tmp_path / "s.mkv"), wm_key=signed["key"])
    assert r["watermark"]["registry"]["found"] is False
    assert any("not in the soft-binding registry" in x for x in r["reasons"])


def test_an_unwritable_registry_leaves_the_signed_file_and_says_why(signed, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("EVALKIT_SOFT_BINDINGS", str(blocker))
    res = sign_file(signed["src"], tmp_path / "again.mp4", signed["signer"], watermark=True, wm_key=signed["key"])
    assert res.path.is_file() and res.registered is None
    # the CLI prints it on stderr as "evalkit: warning: ..." (it was a line of stdout's summary)
    assert "soft-binding registry" in res.registry_error and "warning:" not in res.summary()


def test_compare_ignores_grading_and_turns_but_not_another_picture():
    rng = np.random.default_rng(0)

    def picture():  # a smooth random scene, mean 120, contrast 40 levels
        f = cv2.GaussianBlur(rng.normal(0, 1, (96, 128, 3)).astype(np.float32), (0, 0), 8)
        return np.clip(120 + 40 * (f - f.mean()) / f.std(), 0, 255).astype(np.float32)

    scene = picture()
    ref = registry.thumbnail(scene)
    assert registry.compare(ref, scene)["content"] == "match"
    assert registry.compare(ref, np.clip(scene * 0.8 + 10, 0, 255))["content"] == "match"   # graded
    assert registry.compare(ref, scene[:, ::-1])["content"] == "match"                     # mirrored
    assert registry.compare(ref, np.rot90(scene))["content"] == "match"                    # turned
    crop = scene[10:86, 13:115]  # 0.8 of each side, its box in the marked frame's unit square
    assert registry.compare(ref, crop, box=(10 / 96, 86 / 96, 13 / 128, 115 / 128))["content"] == "match"
    other = picture()
    assert registry.compare(ref, other)["content"] == "different"
    flat = np.full_like(scene, scene.mean())
    assert registry.compare(ref, flat)["content"] == "different"                           # a grey card
    assert registry.compare(registry.thumbnail(flat), flat + 3)["content"] == "match"     # both flat
    assert registry.compare(registry.thumbnail(flat), np.full_like(flat, 20))["content"] == "different"


def test_a_marked_video_re_signed_as_a_capture_is_traced_to_its_registration(signed, tmp_path):
    """Strip the manifest of a generated, marked video and sign the copy anew as a camera
    capture: the watermark contradicts the claim, and the registry names the original signing."""
    stripped = remux(signed["res"].path, tmp_path / "stripped.mp4")
    resigned = sign_file(stripped, tmp_path / "resigned.mp4", signed["signer"], source_type="capture")
    r = verify_file(resigned.path, wm_key=signed["key"])
    assert r["provenance"]["state"] == "valid" and r["verdict"] == "conflicting signals"
    reg = r["watermark"]["registry"]
    assert reg["found"] and reg["signed_file"] == "signed.mp4" and reg["content"] == "match"
    assert reg["manifest"]["digital_source_type"].endswith("trainedAlgorithmicMedia")
    assert any("claims a camera capture" in x for x in r["reasons"])
    assert any("soft-binding registry holds this payload: signed.mp4" in x for x in r["reasons"])
    # the original, whose manifest binds the payload, needs no look-up
    assert verify_file(signed["res"].path, wm_key=signed["key"])["watermark"]["registry"] is None


def test_a_capture_its_signer_marked_reads_as_a_capture_signed_or_stripped(signed, tmp_path, real_videos_dir):
    """`sign --source-type capture --watermark`: the mark is the signer's own soft binding, so
    neither the signed file nor a stripped copy (found in the registry) reads as AI-generated."""
    frames = read_video(real_videos_dir / "bikes.mp4", max_frames=24).frames[:, :128, 100:228]
    src = write_video(tmp_path / "camera.mp4", frames, fps=25.0, crf=0)
    cap = sign_file(src, tmp_path / "camera.signed.mp4", signed["signer"], source_type="capture",
                    watermark=True, wm_key=signed["key"])
    assert "note: a copy stripped of its manifest reads as a capture only where" in cap.summary()
    assert "note:" not in signed["res"].summary()  # a generated clip's mark needs no such note
    r = verify_file(cap.path, wm_key=signed["key"])
    assert r["watermark"]["matches_manifest"] is True and r["verdict"] == "capture (signed)"
    assert any("signer marked the capture itself" in x for x in r["reasons"])
    assert r["watermark"]["registry"]["found"]  # a capture that binds a mark is looked up too
    stripped = remux(cap.path, tmp_path / "camera.stripped.mp4")
    r = verify_file(stripped, wm_key=signed["key"])
    assert r["provenance"]["state"] == "absent" and r["watermark"]["payload"] == cap.payload
    assert r["verdict"] == "capture (watermark only, manifest stripped)"
    assert any("claims a camera capture" in x and "not a sign of generation" in x for x in r["reasons"])
    assert main(["verify", str(stripped)]) == 0
    # where the registry does not know the payload, the mark reads as evalkit's generated-media mark
    r = verify_file(stripped, wm_key=signed["key"], registry=tmp_path / "another-registry")
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"


def test_an_ai_mark_re_signed_as_a_capture_that_binds_it_conflicts(signed, tmp_path):
    """The forged claim: a generated clip's mark, stripped and re-signed as a capture whose soft
    binding names that payload. The manifest binds the mark, but the registry holds the payload
    as AI-generated."""
    res = signed["res"]
    stripped = remux(res.path, tmp_path / "stripped.mp4")
    forged = sign_file(stripped, tmp_path / "forged.mp4", signed["signer"], source_type="capture", watermark=True,
                       wm_key=signed["key"], payload=bytes.fromhex(res.payload), register=False)
    r = verify_file(forged.path, wm_key=signed["key"])
    assert r["watermark"]["matches_manifest"] is True and r["verdict"] == "conflicting signals"
    assert any("registered for AI-generated media" in x for x in r["reasons"])


def test_a_marked_clip_cut_into_a_longer_video_is_found_in_it_not_called_a_copy(signed):
    """A marked clip joined to other footage still carries its mark, but the whole video's mean
    is not its picture: that read as "the mark was copied onto this video" (conflicting, exit 1).
    The part that matches is found and named."""
    tmp, key = signed["tmp"], signed["key"]
    marked = read_video(signed["res"].path).frames
    other = make_clip("test", 7, 0, WorldConfig(frames=len(marked), size=64, fps=8.0)).frames
    for name, frames, where in (("after.mp4", np.concatenate([marked, other]), "frames 0-"),
                                ("between.mp4", np.concatenate([other[:12], marked, other[12:]]), "frames ")):
        joined = write_video(tmp / name, frames, fps=8.0, crf=0)
        r = verify_file(joined, wm_key=key)
        assert r["watermark"]["payload"] == signed["res"].payload, name
        reg = r["watermark"]["registry"]
        assert reg["content"] == "match" and reg["frames"][1] - reg["frames"][0] >= 8, (name, reg)
        assert r["verdict"] == "ai-generated (watermark only, manifest stripped)", name
        assert any(x.startswith(where.capitalize()) and "cut into a longer one" in x for x in r["reasons"]), r["reasons"]


def test_two_marked_clips_joined_report_both_marks(signed):
    """Two signed clips joined into one video: the first mark was reported and the second never
    mentioned. Where the registered picture matches only a part, the rest is read for a mark of
    its own."""
    tmp, key = signed["tmp"], signed["key"]
    other = write_video(tmp / "other.mp4", make_clip("test", 7, 0, WorldConfig(frames=24, size=64, fps=8.0)).frames,
                        fps=8.0, crf=0)
    second = sign_file(other, tmp / "other.signed.mp4", signed["signer"], watermark=True, wm_key=key,
                       generator={"name": "uvit", "version": "small"})
    assert second.payload != signed["res"].payload
    both = np.concatenate([read_video(signed["res"].path).frames, read_video(second.path).frames])
    r = verify_file(write_video(tmp / "both.mp4", both, fps=8.0, crf=0), wm_key=key)
    found = {r["watermark"]["payload"], *(m["payload"] for m in r["watermark"].get("other_marks", []))}
    assert found == {signed["res"].payload, second.payload}, r["reasons"]
    assert any("carry another evalkit mark" in x and "two marked videos were joined" in x for x in r["reasons"])


def test_signing_a_generated_clip_again_as_a_capture_cannot_launder_it(signed):
    """The payload comes from the picture, so the same clip signed twice gets the same one; the
    second signing (as a capture) replaced the record, and a stripped copy of the AI-signed file
    then read "capture (watermark only, manifest stripped)"."""
    tmp, key = signed["tmp"], signed["key"]
    again = sign_file(signed["src"], tmp / "as-capture.mp4", signed["signer"], watermark=True, wm_key=key,
                      source_type="capture")
    assert again.payload == signed["res"].payload
    rec = json.loads(signed["res"].registered.read_text())
    assert rec["manifest"]["digital_source_type"].endswith("trainedAlgorithmicMedia")  # the AI record stays
    assert [a["signed_file"] for a in rec["also"]] == ["as-capture.mp4"]
    r = verify_file(remux(signed["res"].path, tmp / "stripped.mkv"), wm_key=key)
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"
    assert any("also registered for as-capture.mp4 (digitalCapture" in x for x in r["reasons"])


def test_a_capture_joined_to_a_generated_clip_of_similar_footage_is_not_a_capture(signed, tmp_path, real_videos_dir):
    """Two clips of real footage at one size, one signed as a capture and one as generated, joined
    half and half: their mean picture is close enough to either clip's to "match" (about 0.26),
    so no part was looked for, the second mark was never read, and with the capture first the
    whole video read as a capture. The matching half is now named, and the other half's mark
    (registered as AI-generated) makes the join conflicting signals."""
    key, signer = signed["key"], signed["signer"]
    cam = read_video(real_videos_dir / "carphone_pristine.mp4", max_frames=92).frames[60:92]
    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=132).frames[100:132]
    gen = np.stack([cv2.resize(f, (cam.shape[2], cam.shape[1]), interpolation=cv2.INTER_AREA) for f in bikes])
    cap = sign_file(write_video(tmp_path / "cap.mp4", cam, fps=30.0, crf=0), tmp_path / "cap.signed.mp4", signer,
                    source_type="capture", watermark=True, wm_key=key)
    ai = sign_file(write_video(tmp_path / "ai.mp4", gen, fps=30.0, crf=0), tmp_path / "ai.signed.mp4", signer,
                   watermark=True, wm_key=key, generator={"name": "uvit", "version": "small"})
    c, a = read_video(cap.path).frames, read_video(ai.path).frames
    joined = write_video(tmp_path / "capture-then-ai.mp4", np.concatenate([c, a]), fps=30.0, crf=18)
    whole = registry.compare(registry.thumbnail(registry.picture_as_read(c, None)[0]),
                             registry.picture_as_read(read_video(joined).frames, None)[0])
    assert whole["content"] == "match" and whole["difference"] > registry.PART_LOOK  # the case that hid the join
    r = verify_file(joined, wm_key=key)
    assert r["watermark"]["payload"] == cap.payload and r["watermark"]["registry"]["frames"] == [0, 32]
    assert [m["payload"] for m in r["watermark"]["other_marks"]] == [ai.payload]
    assert r["verdict"] == "conflicting signals"
    assert any("registered as AI-generated" in x and "not a capture" in x for x in r["reasons"]), r["reasons"]
    # the other order was already called generated; it now names the capture half too
    r = verify_file(write_video(tmp_path / "ai-then-capture.mp4", np.concatenate([a, c]), fps=30.0, crf=18),
                    wm_key=key)
    assert r["verdict"] == "ai-generated (watermark only, manifest stripped)"
    assert r["watermark"]["registry"]["frames"] == [0, 32]
    assert [m["payload"] for m in r["watermark"]["other_marks"]] == [cap.payload]


def test_half_a_capture_joined_to_half_a_generated_clip_is_not_a_capture(signed, tmp_path, real_videos_dir):
    """Each half is only part of its registered picture, so no part matched, the second mark was
    never read, and the video read `capture (watermark only ...)`, exit 0 (session 31's recheck)."""
    key, signer = signed["key"], signed["signer"]
    bikes = read_video(real_videos_dir / "bikes.mp4", max_frames=128).frames[:, :144, :176]
    cap = sign_file(write_video(tmp_path / "a.mp4", bikes[:64], fps=30.0, crf=0), tmp_path / "a.signed.mp4", signer,
                    source_type="capture", watermark=True, wm_key=key)
    ai = sign_file(write_video(tmp_path / "b.mp4", bikes[64:], fps=30.0, crf=0), tmp_path / "b.signed.mp4", signer,
                   watermark=True, wm_key=key, generator={"name": "uvit", "version": "small"})
    both = np.concatenate([read_video(cap.path).frames[:32], read_video(ai.path).frames[32:]])
    r = verify_file(write_video(tmp_path / "halves.mp4", both, fps=30.0, crf=18), wm_key=key)
    assert {r["watermark"]["payload"], *(m["payload"] for m in r["watermark"].get("other_marks") or [])} \
        == {cap.payload, ai.payload}, r["reasons"]
    assert r["verdict"] in ("conflicting signals", "ai-generated (watermark only, manifest stripped)")


def test_a_mark_copied_onto_a_gradient_like_the_sources_does_not_match(tmp_path):
    """Session 35: a world clip on a gradient background, its mark copied onto a plain gradient
    of the same range (either way round) matched at 0.47: the gradient is most of both
    pictures. What lies on the registered gradient (the ball) is missing from the copy; edits of
    the real clip (tone curves, a vignette, a caption and logo, a crop, a turn) keep it."""
    from benchmarks.robustness import attacks

    clip = make_clip("test", 3, 0, WorldConfig(frames=24, size=64, fps=8.0))
    assert clip.meta["scene"].background == "gradient"
    frames = clip.frames
    ref = registry.thumbnail(registry.picture_as_read(frames, None)[0])
    rows = (frames.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])).mean(axis=(0, 2))
    ramp = np.linspace(rows[0], rows[-1], 64, dtype=np.float32)
    for gradient in (np.repeat(ramp[:, None], 64, 1), np.repeat(ramp[None, :], 64, 0)):
        picture = np.repeat(gradient[:, :, None], 3, 2)
        c = registry.compare(ref, picture)
        assert c["content"] == "different", c
        assert "missing" in c["why"]
    for name in ("gamma_0.7", "gamma_1.4", "vignette_0.4", "caption+logo+h264_crf23", "contrast_0.8"):
        edit = (attacks.EXTRA_ATTACKS.get(name) or attacks.ATTACKS[name])(frames, 8.0, tmp_path)
        assert registry.compare(ref, registry.picture_as_read(edit, None)[0])["content"] == "match", name
    mean = registry.picture_as_read(frames, None)[0]
    turned_crop = np.rot90(mean[6:58, 6:58])
    assert registry.compare(ref, turned_crop, box=(6 / 64, 58 / 64, 6 / 64, 58 / 64))["content"] == "match"
