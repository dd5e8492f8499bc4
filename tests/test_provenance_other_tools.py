"""MP4s signed by another C2PA tool: the reference implementation's own test videos
(tests/data/c2pa-rs, c2pa-rs's fixtures, unchanged). `video1.mp4` is a non-fragmented MP4 with a
BMFF-hashed manifest over a parent signed by someone else; `nested_moov_1000.mp4` is that
project's hostile file of 1,000 nested `moov` boxes. Real c2pa, real PyAV. < 10 s."""

from __future__ import annotations

import json
from pathlib import Path

import av

from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_OK
from evalkit.bmff import _top_level_boxes
from evalkit.provenance.verify import verify_file
from evalkit.video import remux

DATA = Path(__file__).parent / "data" / "c2pa-rs"


def test_another_tools_signed_mp4_is_valid_with_its_history():
    r = verify_file(DATA / "video1.mp4")
    prov = r["provenance"]
    assert r["readable"] and r["error"] is None
    assert prov["state"] == "valid" and prov["failures"] == ["signingCredential.untrusted"]
    assert prov["signer"] == "C2PA Signer (C2PA Test Signing Cert)"
    assert prov["time_stamp"].startswith("2023-12-02")
    (parent,) = prov["ingredients"]
    assert parent["relationship"] == "parentOf" and parent["signer"] == "Bob" and parent["failures"] == []
    assert r["verdict"] == "signed (source not stated)"


def test_a_flipped_media_byte_in_another_tools_mp4_is_tampering(tmp_path):
    boxes, complete, _ = _top_level_boxes(DATA / "video1.mp4")
    assert complete
    (mdat,) = [pos for kind, pos, _, _ in boxes if kind == "mdat"]
    data = bytearray((DATA / "video1.mp4").read_bytes())
    data[mdat + 5000] ^= 0xFF
    (tmp_path / "flipped.mp4").write_bytes(data)
    r = verify_file(tmp_path / "flipped.mp4")
    assert r["provenance"]["state"] == "invalid"
    assert "assertion.bmffHash.mismatch" in r["provenance"]["failures"]
    assert r["verdict"] == "tampered"


def test_remuxing_another_tools_mp4_strips_its_manifest_not_its_frames(tmp_path):
    out = remux(DATA / "video1.mp4", tmp_path / "remuxed.mp4")
    r = verify_file(out)
    assert r["provenance"]["state"] == "absent" and r["verdict"] == "unknown"
    with av.open(str(DATA / "video1.mp4")) as a, av.open(str(out)) as b:
        assert sum(1 for _ in a.demux(video=0)) == sum(1 for _ in b.demux(video=0))


def test_a_thousand_nested_moov_boxes_is_a_one_line_error(capsys):
    r = verify_file(DATA / "nested_moov_1000.mp4")
    assert not r["readable"] and r["verdict"] == "unreadable"
    assert "nested_moov_1000.mp4" in r["error"] and "\n" not in r["error"]
    assert main(["verify", str(DATA / "nested_moov_1000.mp4"), "--json"]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert json.loads(out)["verdict"] == "unreadable" and "Traceback" not in err
    assert main(["verify", str(DATA / "video1.mp4")]) == EXIT_OK
