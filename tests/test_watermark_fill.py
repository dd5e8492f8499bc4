"""The short-video "blur-pad" reformat: a landscape clip scaled to the width of a 9:16 frame, the
rows above and below filled with a zoomed, blurred copy of the same frames (`wm_fill` finds the
picture where the sharp picture meets the smooth fill). Real footage, real H.264. < 30 s."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from evalkit.provenance import registry, wm_grid
from evalkit.provenance.verify_words import edits
from evalkit.provenance.watermark import detect, embed, make_key
from evalkit.provenance.wm_confirm import confirm_payload
from evalkit.provenance.wm_fill import find_fill
from evalkit.video import read_video, write_video
from evalkit.world import WorldConfig, make_clip

PAYLOAD = bytes.fromhex("0123456789abcdef")
W, H = 360, 640  # the portrait frame


def blur_pad(frames: np.ndarray) -> np.ndarray:
    """Each frame [h, w, 3] scaled to width W and centred in a W x H frame over a copy zoomed to
    cover it and box-blurred (radius 20), as ffmpeg's boxblur blur-pad recipe does."""
    h, w = frames.shape[1:3]
    fh = round(h * W / w / 2) * 2
    zw = int(np.ceil(w * H / h))
    y, x = (H - fh) // 2, (zw - W) // 2
    out = []
    for f in frames:
        bg = cv2.blur(np.ascontiguousarray(cv2.resize(f, (zw, H))[:, x:x + W]), (41, 41))
        bg[y:y + fh] = cv2.resize(f, (W, fh), interpolation=cv2.INTER_AREA)
        out.append(bg)
    return np.stack(out)


def _h264(tmp_path, frames, name):
    return read_video(write_video(tmp_path / name, frames, fps=25, crf=23)).frames


@pytest.fixture(scope="module")
def bikes(real_videos_dir):
    return read_video(real_videos_dir / "bikes.mp4", max_frames=32).frames  # 640x272


def test_a_blur_padded_clip_is_found_and_its_payload_read(bikes, tmp_path):
    key = make_key(b"blur-pad test secret")
    marked = embed(bikes, PAYLOAD, key)
    padded = _h264(tmp_path, blur_pad(marked), "marked.mp4")
    y0, y1, x0, x1 = find_fill(padded)
    fh = round(272 * W / 640 / 2) * 2
    assert abs(y0 - (H - fh) // 2) <= 2 and abs(y1 - ((H - fh) // 2 + fh)) <= 2 and (x0, x1) == (0, W)
    d = detect(padded, key)
    assert d.detected and d.payload == PAYLOAD
    assert d.geometry["view"].startswith("blur-fill") and "fill_box" in d.geometry
    c = confirm_payload(padded, key, PAYLOAD)
    assert c.detected and c.geometry["view"].startswith("blur-fill")
    # verify's words and the soft-binding registry read the picture as the mark was read: the
    # whole padded frame compared "different" with the registered picture (session 38)
    assert any("short-video reformat" in e for e in edits(d.geometry, padded))
    root = tmp_path / "registry"
    registry.register(PAYLOAD.hex(), key.fingerprint, wm_grid.mean_frame(marked), root=root)
    res = registry.resolve(PAYLOAD.hex(), key.fingerprint, padded, d.geometry, root=root)
    assert res["found"] and res["content"] == "match", res


def test_the_same_layout_unmarked_is_not_detected(bikes, tmp_path):
    padded = _h264(tmp_path, blur_pad(bikes), "plain.mp4")
    assert find_fill(padded) is not None  # the read runs, and finds nothing
    d = detect(padded, make_key(b"blur-pad test secret"))
    assert not d.detected and d.payload is None


def test_a_clip_without_fill_reports_no_box(bikes, real_videos_dir):
    assert find_fill(bikes) is None
    world = make_clip("test", 3, 0, WorldConfig(frames=24, size=128)).frames
    assert find_fill(world) is None
    # a portrait crop of the footage, a bicycle over cobbles blurred by the depth of field below
    # it only: each side must be smooth on its own (pooled, the two sides read as a fill; the
    # session's review)
    whole = read_video(real_videos_dir / "bikes.mp4", max_frames=240).frames
    h, w = whole.shape[1:3]
    pw = (h * 9 // 16) // 2 * 2
    crop = np.ascontiguousarray(whole[224:240, :, (w - pw) // 2:(w - pw) // 2 + pw])
    assert find_fill(crop) is None
