"""`evalkit verify --html`: one self-contained page with each file's verdict, frames and evidence,
built from real signed, tampered and unreadable files (real c2pa, keys made here, real MP4s)."""

from __future__ import annotations

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from evalkit.cli import main
from evalkit.provenance.c2pa import sign_file
from evalkit.provenance.credentials import init_keys, load_watermark_key
from evalkit.provenance.signers import load_signer
from evalkit.video import write_video
from evalkit.world import WorldConfig, make_clip
from reports.browser import check_page, find_browser
from reports.verification import frame_strip, verdict_colour

DATA_IMG = re.compile(r'<img class="strip" alt="frames of ([^"]+)" src="data:image/jpeg;base64,([^"]+)"')


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A signed and watermarked world clip, a copy with one media byte flipped, a broken file."""
    root = tmp_path_factory.mktemp("verify-html")
    creds = init_keys(root / "credentials")
    creds.watermark_key.write_text("7e57" * 16 + "\n")  # deterministic, as the provenance tests
    src = write_video(root / "world.mp4", make_clip("test", 2, 5, WorldConfig(frames=16, size=64)))
    signed = root / "signed.mp4"
    sign_file(src, signed, load_signer(creds.signer_cert, creds.signer_key), source_type="trained",
              watermark=True, wm_key=load_watermark_key(creds.watermark_key))
    data = bytearray(signed.read_bytes())
    data[data.find(b"mdat") + 400] ^= 0xFF
    tampered = root / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    broken = root / "broken.mp4"
    broken.write_bytes(signed.read_bytes()[:2000])
    return {"root": root, "creds": creds, "signed": signed, "tampered": tampered, "broken": broken}


def test_frame_strip_spreads_frames_over_the_clip(tmp_path):
    # frame i is filled with grey level 10 * i: the strip's panels show which frames were taken
    frames = np.stack([np.full((48, 64, 3), 10 * i, np.uint8) for i in range(20)])
    strip = Image.open(io.BytesIO(frame_strip(write_video(tmp_path / "ramp.mp4", frames, fps=10, crf=0), n=5, height=24)))
    assert strip.format == "JPEG" and strip.size[1] == 24
    panel = 32  # 64x48 at height 24
    levels = [np.asarray(strip.convert("L"))[:, i * (panel + 4):i * (panel + 4) + panel].mean() for i in range(5)]
    assert strip.size[0] == 5 * panel + 4 * 4
    assert levels[0] < 5 and abs(levels[-1] - 190) < 6 and np.all(np.diff(levels) > 30)  # first .. last
    assert frame_strip(tmp_path / "missing.mp4") is None
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all")
    assert frame_strip(tmp_path / "junk.mp4") is None


def test_verify_html_report(files, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EVALKIT_HOME", str(files["root"]))  # its credentials/ hold the watermark key
    out = tmp_path / "sub" / "verify.html"
    argv = ["verify", str(files["signed"]), str(files["tampered"]), str(files["broken"]), "--no-detector",
            "--trust", str(files["creds"].ca_cert), "--html", str(out)]
    assert main(argv) == 2  # the broken file makes it exit 2, and the report still covers all three
    assert f"report written to {out}" in capsys.readouterr().err
    page = out.read_text()
    assert page.count('class="card"') == 3
    for verdict in ("ai-generated (signed)", "tampered", "unreadable"):
        assert f">{verdict}</span>" in page
    assert "assertion.bmffHash.mismatch" in page and "trusted" in page and "trainedAlgorithmicMedia" in page
    strips = {name.rsplit("/", 1)[-1]: Image.open(io.BytesIO(base64.b64decode(b64)))
              for name, b64 in DATA_IMG.findall(page)}
    assert sorted(strips) == ["signed.mp4", "tampered.mp4"]  # the broken file says it has no preview
    assert all(im.size[1] == 96 and im.size[0] > 6 * 96 for im in strips.values())
    assert "No frames could be decoded" in page
    assert verdict_colour("tampered") != verdict_colour("ai-generated (signed)") != verdict_colour("unknown")
    if find_browser() is not None:  # CI always has one (.ci/run installs chromium)
        res = check_page(out, screenshot=tmp_path / "verify.png")
        assert res.checked and res.images == 2 and res.images_bad == 0 and res.js_errors == 0, res


def test_verify_html_bad_path_fails_before_any_work(files, tmp_path, capsys):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert main(["verify", str(files["signed"]), "--no-detector", "--html", str(folder)]) == 2
    err = capsys.readouterr()
    assert "is a folder" in err.err and err.out == ""  # refused before verifying anything


def test_verify_mlflow_records_the_verification(files, tmp_path, monkeypatch, capsys, mlflow_store):
    from mlflow.tracking import MlflowClient

    from reports.verification import VERIFY_EXPERIMENT

    monkeypatch.setenv("EVALKIT_HOME", str(files["root"]))
    argv = ["verify", str(files["signed"]), str(files["tampered"]), "--no-detector", "--mlflow",
            "--trust", str(files["creds"].ca_cert)]
    assert main(argv) == 1  # the tampered copy fails the check
    err = capsys.readouterr().err
    run_id = re.search(r"MLflow run (\w+) in experiment 'evalkit-verify'", err).group(1)
    client = MlflowClient(mlflow_store)
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == VERIFY_EXPERIMENT
    m, p = run.data.metrics, run.data.params
    assert m["files"] == 2 and m["readable"] == 2
    assert m["verdict.ai-generated_signed"] == 1 and m["verdict.tampered"] == 1
    assert p["detector"] == "none" and len(p["trust_sha256"]) == 64
    assert {a.path for a in client.list_artifacts(run_id)} == {"verify.json", "verify.html"}
    logged = json.loads(open(client.download_artifacts(run_id, "verify.json", str(tmp_path))).read())
    assert [r["verdict"] for r in logged] == ["ai-generated (signed)", "tampered"]
    assert "PRIVATE KEY" not in json.dumps(logged) + json.dumps(p)  # never a key in the record
