"""The soft-binding registry's picture check on what viewers make of a marked video (session 34):
an excerpt of moving footage is matched against the stretch it came from (it read "the mark was
copied onto this video"), an old record without stretches says "uncertain (an excerpt?)", a
hue-shifted copy matches, a copied mark still conflicts; and the words around a watermark read:
fades, edits of a trace, a payload below the threshold. Real c2pa, keys and MP4s made here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from evalkit.provenance import registry
from evalkit.provenance import registry_segments as seg
from evalkit.provenance import watermark as wm
from evalkit.provenance.c2pa import sign_file
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import format_result, verify_file
from evalkit.provenance.verify_words import faded, read_edits, read_fields
from evalkit.provenance.wm_grid import mean_frame
from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip


def panning(frames: int = 64, size: int = 96) -> np.ndarray:
    """A camera pan over a textured scene: each stretch of it shows another part, so the whole
    clip's mean frame is not an excerpt's."""
    rng = np.random.default_rng(3)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (size, size * 4, 3)).astype(np.float32), (0, 0), 6)
    scene = (scene - scene.mean()) * 4 + 128
    step = max((size * 3) // frames // 3, 1)  # slow enough that a stretch's mean keeps structure
    return np.stack([np.clip(scene[:, i * step:i * step + size], 0, 255).astype(np.uint8) for i in range(frames)])


def sign(tmp_path, monkeypatch, frames: np.ndarray) -> dict:
    """`frames` written losslessly and signed with a watermark into a fresh registry."""
    monkeypatch.setenv("EVALKIT_SOFT_BINDINGS", str(tmp_path / "registry"))
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    creds = init_keys(tmp_path / "home" / "credentials")
    creds.watermark_key.write_text("5eed" * 16 + "\n")
    signer, key = load_signer(creds.signer_cert, creds.signer_key), load_watermark_key(creds.watermark_key)
    src = write_video(tmp_path / "src.mp4", frames, fps=8.0, crf=0)
    res = sign_file(src, tmp_path / "signed.mp4", signer, watermark=True, wm_key=key)
    return dict(tmp=tmp_path, res=res, key=key, marked=read_video(res.path).frames, src=read_video(src).frames)


@pytest.fixture
def signed_pan(tmp_path, monkeypatch):
    return sign(tmp_path, monkeypatch, panning())


def test_an_excerpt_matches_its_stretch_of_the_registered_video(signed_pan):
    s = signed_pan
    rec = json.loads(s["res"].registered.read_text())
    assert rec["segments"]["frames"] == seg.SEGMENT and rec["segments"]["total"] == 64
    excerpt = write_video(s["tmp"] / "excerpt.mp4", s["marked"][36:64], fps=8.0, crf=18)
    frames = read_video(excerpt).frames
    # the premise: against the whole clip's picture the excerpt is not a match
    whole = np.asarray(rec["thumbnail"], np.float32)
    assert registry.compare(whole, mean_frame(frames))["content"] != "match"
    r = verify_file(excerpt, wm_key=s["key"])
    assert r["watermark"]["detected"] and r["watermark"]["payload"] == s["res"].payload
    reg = r["watermark"]["registry"]
    assert reg["content"] == "match" and abs(reg["excerpt"][0] - 36) <= seg.SEGMENT and reg["excerpt"][1] == 64
    assert r["verdict"] != "conflicting signals" and not any("copied onto" in x for x in r["reasons"])
    assert any("an excerpt of the registered video" in x for x in r["reasons"])

    # a record made before session 34 keeps the whole clip's picture only: "uncertain (an excerpt?)"
    old = {k: v for k, v in rec.items() if k not in ("segments", "value_thumbnail")}
    s["res"].registered.write_text(json.dumps(old))
    r = verify_file(excerpt, wm_key=s["key"])
    assert r["watermark"]["registry"]["content"] == "uncertain" and r["watermark"]["registry"]["whole_only"]
    assert r["verdict"] != "conflicting signals" and any("uncertain (an excerpt?)" in x for x in r["reasons"])
    assert not any("copied onto" in x for x in r["reasons"])


def test_a_mark_copied_onto_a_short_flat_clip_still_conflicts(tmp_path, monkeypatch):
    """The forgery, as long as an excerpt: every stretch of the registered video is tried, and a grey
    card matches none of them."""
    clip = make_clip("test", 2, 0, WorldConfig(frames=48, size=64, fps=8.0)).frames
    s = sign(tmp_path, monkeypatch, clip)
    src = s["src"][:24]
    pattern = wm.embed(s["src"], bytes.fromhex(s["res"].payload), s["key"])[:24].astype(np.int16) - src
    grey = np.full_like(src, int(src.mean()))
    forged = write_video(tmp_path / "forged.mp4", np.clip(grey + pattern, 0, 255).astype(np.uint8), fps=8.0, crf=0)
    r = verify_file(forged, wm_key=s["key"])
    assert r["watermark"]["payload"] == s["res"].payload  # the copy reads as marked ...
    assert r["watermark"]["registry"]["content"] == "different" and r["verdict"] == "conflicting signals"
    assert any("copied onto this video" in x and "stretch" in x for x in r["reasons"])


def test_a_grey_card_is_no_match_for_a_pan_that_averages_out(signed_pan):
    """A pan's whole mean is featureless, which a grey card "matched" (difference 0.21): its
    stretches are not, so the copied mark reads "uncertain", never "match"."""
    s = signed_pan
    src = s["src"][:32]
    pattern = s["marked"][:32].astype(np.int16) - src
    grey = np.full_like(src, int(src.mean()))
    forged = write_video(s["tmp"] / "forged.mp4", np.clip(grey + pattern, 0, 255).astype(np.uint8), fps=8.0, crf=0)
    r = verify_file(forged, wm_key=s["key"])
    if r["watermark"]["payload"] != s["res"].payload:  # (the codec's copy of the mark did not read)
        pytest.skip("the copied mark did not read with its payload")
    assert r["watermark"]["registry"]["content"] in ("uncertain", "different")


def hue_shift(frames: np.ndarray, degrees: int) -> np.ndarray:
    """OpenCV's HSV hue turned (in 2-degree units), value and saturation kept."""
    out = []
    for f in frames:
        hsv = cv2.cvtColor(f, cv2.COLOR_RGB2HSV)
        hsv[..., 0] = (hsv[..., 0].astype(int) + degrees // 2) % 180
        out.append(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))
    return np.stack(out)


def coloured_squares(frames: int = 8, size: int = 96) -> np.ndarray:
    """Saturated red squares (max 255) on a green ground (max 170), drifting: a turn of hue moves
    their luma (red becomes green, green blue) and keeps their max(R, G, B)."""
    out = np.zeros((frames, size, size, 3), np.uint8)
    out[..., 1] = 170
    for t in range(frames):
        for y, x in ((10, 12), (50, 20), (30, 60), (70, 70)):
            out[t, y:y + 18, x + t:x + t + 18] = (255, 0, 0)
    return out


def test_a_hue_shift_is_not_another_picture_but_a_grey_card_is():
    clip = coloured_squares()
    mean = mean_frame(clip)
    luma, value = registry.thumbnail(mean), seg.value_thumbnail(mean)
    shifted = mean_frame(hue_shift(clip, 120))
    assert registry.compare(luma, shifted)["content"] == "different"  # the premise: luma alone is turned about
    c = registry.compare(luma, shifted, value=value)
    assert c["content"] == "match" and "colours were changed" in c["why"]
    grey = np.full_like(clip, int(clip.mean()))
    assert registry.compare(luma, mean_frame(grey), value=value)["content"] == "different"
    other = make_clip("test", 6, 0, WorldConfig(frames=8, size=96, fps=8.0)).frames
    assert registry.compare(luma, mean_frame(other), value=value)["content"] != "match"


def test_segment_thumbnails_merge_a_long_clip_and_survive_a_record():
    frames = np.random.default_rng(0).integers(0, 255, (seg.SEGMENT * seg.MAX_SEGMENTS + 37, 8, 8, 3), np.uint8)
    out = seg.segment_thumbnails(frames)
    assert out["frames"] == 2 * seg.SEGMENT and out["total"] == len(frames) and len(out["luma"]) <= seg.MAX_SEGMENTS
    back = seg.from_json(seg.to_json(out))
    # a run of windows is the mean of its frames (the thumbnail is linear), up to uint8 rounding
    a, b, luma, _ = next(seg.runs(back, 3 * out["frames"]))
    assert np.abs(luma - registry.thumbnail(mean_frame(frames[a:b]))).max() <= 1.0
    assert seg.from_json({**seg.to_json(out), "total": 10 ** 9}) is None  # not what its arrays hold
    assert seg.from_json({"frames": 8}) is None


def levels_clip(levels) -> np.ndarray:
    tex = np.random.default_rng(1).uniform(0.8, 1.2, (1, 16, 16, 3))
    return np.clip(np.asarray(levels, float)[:, None, None, None] * tex, 0, 255).astype(np.uint8)


def test_a_fade_is_a_ramp_at_an_end_not_a_dark_shot():
    shot_then_dark = [135] * 30 + list(np.linspace(64, 82, 18))  # bikes.mp4: a cut to a darker shot
    assert not faded(levels_clip(shot_then_dark))
    assert not faded(levels_clip([20] * 10 + [120] * 22))  # a cut from a dark shot
    ramp = [120 * min(1.0, (i + 1) / 8) for i in range(32)]
    assert faded(levels_clip(ramp)) and faded(levels_clip(ramp[::-1]))
    assert not faded(levels_clip([120] * 12 + [40] * 8 + [120] * 12))  # a dark middle


def test_a_trace_reports_only_strongly_evidenced_edits_and_no_gain():
    geometry = {"view": "as-is", "rotation": -0.5, "gain": 0.87, "box": (0.15, 0.95, 0.05, 0.84), "crop": "off-centre"}
    weak = wm.Detection(True, None, 1e-7, 0.5, np.zeros(64), geometry=geometry)
    assert read_edits(weak, None) == []
    strong = wm.Detection(True, None, 1e-30, 0.5, np.zeros(64), geometry=geometry)
    named = read_edits(strong, None)
    assert any(e.startswith("cropped off centre") for e in named) and not any("strength" in e for e in named)
    full = wm.Detection(True, b"\x01" * 8, 1e-30, 1.0, np.zeros(64), geometry=geometry)
    assert any("strength" in e for e in read_edits(full, None))  # a payload read reports it all


def test_a_payload_below_the_threshold_is_no_payload(tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_SOFT_BINDINGS", str(tmp_path / "registry"))
    d = wm.Detection(False, bytes.fromhex("4585bd6a8d8d8b34"), 1.8e-6, 0.99, np.zeros(64))
    fields = read_fields(d)
    assert fields["payload"] is None and fields["payload_below_threshold"] == "4585bd6a8d8d8b34"
    r = {"file": "x.mp4", "verdict": "unknown", "error": None, "reasons": [],
         "provenance": {"state": "absent", "failures": [], "signer": None},
         "watermark": {**fields, "checked": True, "edits": [], "registry": None}}
    line = format_result(r).splitlines()[2]
    assert line == "  watermark: not found (best read p 1.8e-06, above the 1e-06 threshold; its bits decode to 4585bd6a8d8d8b34)"
    from evalkit.provenance.verify_words import below_threshold_note

    assert below_threshold_note(r["watermark"], "abcdef123456") is None  # not registered: nothing said
    registry.register("4585bd6a8d8d8b34", "abcdef123456", np.zeros((8, 8, 3), np.float32), signed_file="w.mp4")
    note = below_threshold_note(r["watermark"], "abcdef123456")
    assert "w.mp4" in note and "not a detection" in note


def test_flat_pictures_never_vouch_for_a_copied_mark():
    """Session 34's recheck: the max(R, G, B) picture of a saturated clip is flat, and so is a grey
    card's, so a card with the copied mark matched at 0.18 (0.99 in luma); a flat stretch of the
    registered video (an end card) confirmed a flat forgery as "an excerpt"; and every record made
    before the stretches called any mismatch "uncertain (an excerpt?)", a grey card too."""
    frame = np.zeros((64, 64, 3), np.float32)
    frame[:, :32] = (200, 0, 0)  # red against blue of the same max(R, G, B): luma has structure,
    frame[:, 32:] = (0, 0, 200)  # value none
    frame[20:44, 20:44] = (0, 200, 0)
    luma, value = registry.thumbnail(frame), seg.value_thumbnail(frame)
    card = np.full_like(frame, float(registry.thumbnail(frame).mean()))
    assert registry.compare(luma, card, value=value)["content"] == "different"
    # a flat window among structured ones can make a flat suspect uncertain at most
    flat_end = np.concatenate([np.repeat(frame[None], 24, 0), np.full((8, 64, 64, 3), 160.0, np.float32)])
    rec = {"thumbnail": luma, "value_thumbnail": value,
           "segments": seg.from_json(seg.to_json(seg.segment_thumbnails(flat_end.astype(np.uint8))))}
    whole = registry.compare(luma, np.full_like(frame, 160.0), value=value)
    run = registry._matching_run(rec, np.full_like(frame, 160.0), None, 16, whole)
    assert run.get("content", whole["content"]) != "match"
    # against an older record (the whole picture only), a flat suspect is no excerpt
    assert not registry._could_be_excerpt(whole, card)
    assert registry._could_be_excerpt({"difference": 0.85}, frame)


def pan_at(speed: int, frames: int = 72, size: int = 96, seed: int = 3) -> np.ndarray:
    """A camera pan over a textured scene at `speed` px a frame: at 6, each 40-frame stretch
    averages to a nearly featureless picture, while its 8-frame windows still differ."""
    rng = np.random.default_rng(seed)
    scene = cv2.GaussianBlur(rng.uniform(0, 255, (size, size + speed * frames + 1, 3)).astype(np.float32), (0, 0), 6)
    scene = (scene - scene.mean()) * 4 + 128
    return np.stack([np.clip(scene[:, i * speed:i * speed + size], 0, 255).astype(np.uint8) for i in range(frames)])


KEY = wm.make_key(b"registry motion study")
PAYLOAD = bytes.fromhex("5e55103500c0ffee")


def registered(tmp_path, frames: np.ndarray) -> np.ndarray:
    """`frames` marked and registered (whole picture and windows) in tmp_path/registry: the marked frames."""
    marked = wm.embed(frames, PAYLOAD, KEY)
    registry.register(PAYLOAD.hex(), KEY.fingerprint, mean_frame(marked), root=tmp_path / "registry",
                      segments=seg.segment_thumbnails(marked))
    return marked


def look_up(tmp_path, frames: np.ndarray, crf: int | None = 23) -> dict | None:
    """`verify`'s registry look-up of `frames` (re-encoded at `crf`), None where the payload does not read."""
    if crf is not None:
        frames = read_video(write_video(tmp_path / "copy.mp4", frames, fps=8.0, crf=crf)).frames
    d = wm.detect(frames, KEY)
    if d.payload != PAYLOAD:
        return None
    return registry.resolve(PAYLOAD.hex(), KEY.fingerprint, frames, d.geometry, tmp_path / "registry")


def test_an_excerpt_of_a_fast_pan_matches_by_its_windows_and_a_grey_card_does_not(tmp_path):
    """Session 35: an excerpt of a fast pan has a featureless mean frame, as its stretch of the
    registered video has, so the mean frames alone could not tell it from a grey card with the
    mark copied on: it read "uncertain". Its 8-frame windows change as the registered ones do
    (found in step); the card's do not change at all, so it stays uncertain."""
    frames = pan_at(6)
    marked = registered(tmp_path, frames)
    r = look_up(tmp_path, marked[30:70])
    assert r is not None and r["content"] == "match", r
    assert abs(r["excerpt"][0] - 30) <= seg.SEGMENT and abs(r["excerpt"][1] - 70) <= seg.SEGMENT
    assert "window by window" in r["why"] and "an excerpt" in r["why"]
    pattern = marked[30:70].astype(np.int16) - frames[30:70]
    card = np.clip(np.full_like(frames[30:70], int(frames.mean())) + pattern, 0, 255).astype(np.uint8)
    forged = look_up(tmp_path, card, crf=None)
    assert forged is None or forged["content"] != "match", forged


def test_an_excerpt_at_twice_the_speed_is_named_where_the_whole_matched_loosely(tmp_path):
    """Session 35: frames 16-79 of a slow pan played at twice the speed (every other frame) matched
    the whole registered picture loosely (0.42), so no stretch of another length was looked at
    and the excerpt went unnamed. A stretch at twice the excerpt's length that matches by more
    than a loose match's margin is named."""
    marked = registered(tmp_path, pan_at(1, frames=96))
    r = look_up(tmp_path, marked[16:80:2])
    assert r is not None and r["content"] == "match", r
    assert "excerpt" in r and abs(r["excerpt"][0] - 16) <= seg.SEGMENT and abs(r["excerpt"][1] - 80) <= seg.SEGMENT, r
    whole = look_up(tmp_path, marked[::2])  # the whole clip at twice the speed is the whole, not an excerpt
    assert whole is not None and whole["content"] == "match" and "excerpt" not in whole, whole


def test_the_mark_on_a_still_of_the_registered_background_is_no_match(tmp_path):
    """Session 35: the mark copied onto the registered clip's own background (the per-pixel median
    of its frames: what moved is gone) matched its picture (0.00-0.30). The registered video's
    windows change there and the copy's hold still: uncertain. A re-encoded copy still matches."""
    frames = make_clip("test", 2, 0, WorldConfig(frames=24, size=64, fps=8.0)).frames
    marked = registered(tmp_path, frames)
    plate = np.repeat(np.median(frames, axis=0)[None], len(frames), 0).astype(np.int16)
    forged = look_up(tmp_path, np.clip(plate + marked.astype(np.int16) - frames, 0, 255).astype(np.uint8), crf=None)
    assert forged is not None and forged["content"] == "uncertain" and "holds still" in forged["why"], forged
    genuine = look_up(tmp_path, marked, crf=30)
    assert genuine is not None and genuine["content"] == "match", genuine
