"""Where a video's C2PA manifest lives: embedded, in a sidecar `.c2pa` beside it or given with
`--manifest`, or at a remote URL the file names, fetched only when asked (`--fetch-remote`; here
from a local HTTP server the test starts). Real c2pa, real keys made here, real MP4s. < 20 s."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import c2pa
import pytest

from evalkit.cli import main
from evalkit.errors import EXIT_BAD_INPUT, EXIT_CHECK_FAILED, EXIT_OK, BadInputError, MissingResourceError
from evalkit.provenance.c2pa import _sign_context, build_manifest
from evalkit.provenance.credentials import init_keys
from evalkit.provenance.signers import load_signer
from evalkit.provenance.verify import verify_file
from evalkit.video import write_video
from evalkit.world import WorldConfig, make_clip


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server for the remote manifests (the test machine has no internet)."""
    root = tmp_path_factory.mktemp("www")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def env(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("remote")
    creds = init_keys(root / "credentials")
    signer = load_signer(creds.signer_cert, creds.signer_key)
    src = write_video(root / "world.mp4", make_clip("test", 2, 5, WorldConfig(frames=16, size=64)))
    www, base = server
    url = f"{base}/manifests/remote.c2pa"
    b = c2pa.Builder(build_manifest(title="remote.mp4", generator={"name": "uvit", "version": "small"}),
                     context=_sign_context())
    try:
        b.set_no_embed()
        b.set_remote_url(url)
        out = root / "remote.mp4"
        with open(src, "rb") as fin, open(out, "w+b") as fout:
            store = b.sign(signer.c2pa_signer(None), "video/mp4", fin, fout)
    finally:
        b.close()
    (www / "manifests").mkdir()
    (www / "manifests" / "remote.c2pa").write_bytes(store)
    return dict(root=root, creds=creds, src=src, remote=out, store=store, url=url, trust=[creds.ca_cert])


def test_a_remote_manifest_is_named_but_not_fetched_by_default(env):
    r = verify_file(env["remote"], trust=env["trust"])
    prov = r["provenance"]
    assert prov["state"] == "absent" and prov["remote_url"] == env["url"] and r["error"] is None
    assert r["verdict"] == "unknown"
    assert any(env["url"] in x and "--fetch-remote" in x for x in r["reasons"])


def test_fetched_when_asked(env):
    r = verify_file(env["remote"], trust=env["trust"], fetch_remote=True)
    prov = r["provenance"]
    assert prov["state"] == "trusted" and prov["manifest_source"] == "remote"
    assert r["verdict"] == "ai-generated (signed)" and prov["generator"] == "uvit small"
    assert any(f"fetched from {env['url']}" in x for x in r["reasons"])


def test_a_url_that_does_not_answer_is_a_one_line_error(env, tmp_path):
    dst = tmp_path / "remote.mp4"
    shutil.copy(env["remote"], dst)
    data = dst.read_bytes().replace(b"/manifests/remote.c2pa", b"/manifests/absent.c2pa")
    dst.write_bytes(data)
    r = verify_file(dst, trust=env["trust"], fetch_remote=True)
    assert r["provenance"]["state"] == "absent" and "absent.c2pa" in r["provenance"]["remote_url"]
    assert r["error"] and "could not be fetched" in r["error"] and "\n" not in r["error"]


def test_a_server_that_never_stops_sending_is_cut_off(env, tmp_path, monkeypatch):
    """A server answering with an endless body grew verify's memory until it was killed (session
    31): the download is capped at the manifest-store limit, with one line naming the URL."""
    import socket
    import threading

    import evalkit.provenance.manifest_read as mr

    monkeypatch.setattr(mr, "MAX_SIDECAR_BYTES", 4 << 20)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    port = sock.getsockname()[1]

    def flood():
        conn, _ = sock.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/c2pa\r\n\r\n")
        try:
            while True:
                conn.sendall(b"\0" * (1 << 20))
        except OSError:
            pass
    threading.Thread(target=flood, daemon=True).start()
    url = f"http://127.0.0.1:{port}/manifests/remote.c2pa"
    dst = tmp_path / "flood.mp4"
    data = env["remote"].read_bytes()
    assert env["url"].encode() in data and len(url) <= len(env["url"])
    dst.write_bytes(data.replace(env["url"].encode(), url.encode().ljust(len(env["url"]), b"/")))
    r = verify_file(dst, trust=env["trust"], fetch_remote=True)
    sock.close()
    assert r["error"] and "too large for a C2PA manifest store" in r["error"]
    assert any("could not be fetched" in x and "--fetch-remote" not in x for x in r["reasons"])


def test_sidecar_beside_the_file_or_given(env, tmp_path):
    video = tmp_path / "clip.mp4"
    shutil.copy(env["remote"], video)
    (tmp_path / "clip.c2pa").write_bytes(env["store"])
    r = verify_file(video, trust=env["trust"])
    assert r["provenance"]["state"] == "trusted" and r["provenance"]["manifest_source"] == "sidecar"
    assert r["provenance"]["remote_url"] == env["url"]  # still named; the sidecar answered it offline
    assert any("sidecar" in x for x in r["reasons"])

    other = tmp_path / "elsewhere"
    other.mkdir()
    copy = shutil.copy(env["remote"], other / "x.mp4")
    r = verify_file(copy, trust=env["trust"], manifest=tmp_path / "clip.c2pa")
    assert r["provenance"]["state"] == "trusted"


def test_a_sidecar_of_another_video_or_garbage_is_caught(env, tmp_path):
    video = shutil.copy(env["src"], tmp_path / "world.mp4")  # unsigned, no remote reference
    (tmp_path / "world.c2pa").write_bytes(env["store"])  # the manifest of another video
    r = verify_file(video, trust=env["trust"])
    assert r["verdict"] == "tampered" and "assertion.bmffHash.mismatch" in r["provenance"]["failures"]

    (tmp_path / "world.c2pa").write_bytes(b"not a manifest store" * 10)
    r = verify_file(video, trust=env["trust"])
    assert r["provenance"]["state"] == "invalid" and r["verdict"] == "tampered"
    assert r["error"] and "world.c2pa" in r["error"] and "\n" not in r["error"]
    with open(tmp_path / "world.c2pa", "wb") as f:  # sparse: 65 MiB on paper, nothing on disk
        f.truncate(65 << 20)
    r = verify_file(video, trust=env["trust"])
    assert r["provenance"]["state"] == "invalid" and "too large" in r["error"]
    with pytest.raises(MissingResourceError, match="no such manifest file"):
        verify_file(video, manifest=tmp_path / "missing.c2pa")


def test_cli_manifest_options(env, tmp_path, capsys):
    side = tmp_path / "store.c2pa"
    side.write_bytes(env["store"])
    args = ["verify", "--no-detector", "--trust", str(env["creds"].ca_cert)]
    assert main(args + [str(env["remote"]), "--manifest", str(side)]) == EXIT_OK
    assert "ai-generated (signed)" in capsys.readouterr().out
    assert main(args + [str(env["remote"]), str(env["src"]), "--manifest", str(side)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "one FILE" in err and len(err.strip().splitlines()) == 1
    assert main(args + [str(env["src"]), "--manifest", str(side)]) == EXIT_CHECK_FAILED  # not its manifest
    assert "tampered" in capsys.readouterr().out
    # a --manifest that is no manifest store at all is the user's wrong file, not a tampered video
    junk = tmp_path / "notes.c2pa"
    junk.write_bytes(b"\x00\x00\x00\x10notjumbf" + bytes(64))
    assert main(args + [str(env["remote"]), "--manifest", str(junk)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "not a C2PA manifest store" in err and len(err.strip().splitlines()) == 1
    assert main(args + [str(env["remote"]), "--fetch-remote", "--json"]) == EXIT_OK
    assert '"manifest_source": "remote"' in capsys.readouterr().out


def _webm(path, frames):
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream("libvpx-vp9", rate=8)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for pk in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pk)
        for pk in s.encode():
            c.mux(pk)
    return path


def test_sign_with_a_sidecar_any_container(env, tmp_path, capsys):
    """WebM (no embedding in c2pa): an unchanged copy and DST.c2pa; verify finds it beside the
    copy, catches a changed byte, and a watermarked Matroska copy carries the soft binding."""
    from evalkit.provenance.c2pa import SigningError, sign_file
    from evalkit.provenance.credentials import load_watermark_key

    signer = load_signer(env["creds"].signer_cert, env["creds"].signer_key)
    frames = make_clip("test", 3, 5, WorldConfig(frames=16, size=128)).frames
    src = _webm(tmp_path / "clip.webm", frames)
    res = sign_file(src, tmp_path / "out.webm", signer, sidecar=True)
    assert res.sidecar == tmp_path / "out.c2pa" and (tmp_path / "out.webm").read_bytes() == src.read_bytes()
    r = verify_file(tmp_path / "out.webm", trust=env["trust"])
    assert r["provenance"]["state"] == "trusted" and r["provenance"]["manifest_source"] == "sidecar"
    assert r["verdict"] == "ai-generated (signed)"
    data = bytearray((tmp_path / "out.webm").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "out.webm").write_bytes(bytes(data))
    r = verify_file(tmp_path / "out.webm", trust=env["trust"])
    assert r["verdict"] == "tampered" and "assertion.dataHash.mismatch" in r["provenance"]["failures"]

    key = load_watermark_key(env["creds"].watermark_key)
    res = sign_file(src, tmp_path / "wm.mkv", signer, sidecar=True, watermark=True, wm_key=key)
    r = verify_file(tmp_path / "wm.mkv", trust=env["trust"], wm_key=key)
    assert r["provenance"]["state"] == "trusted" and r["watermark"]["detected"]
    assert r["watermark"]["matches_manifest"] is True and r["watermark"]["payload"] == res.payload

    with pytest.raises(BadInputError, match="keeps the input's container"):
        sign_file(src, tmp_path / "x.mp4", signer, sidecar=True)
    with pytest.raises(SigningError, match="already carries a C2PA manifest"):  # an embedded one: no second
        signed = sign_file(env["src"], tmp_path / "emb.mp4", signer).path
        sign_file(signed, tmp_path / "emb2.mp4", signer, sidecar=True)
    assert not (tmp_path / "x.mp4").exists() and not (tmp_path / "emb2.c2pa").exists()
    # wm.mkv's sidecar is wm.c2pa: a wm.webm beside it would overwrite it (and wm.mkv then read tampered)
    with pytest.raises(BadInputError, match="is the sidecar of wm.mkv already"):
        sign_file(src, tmp_path / "wm.webm", signer, sidecar=True)
    assert verify_file(tmp_path / "wm.mkv", trust=env["trust"])["provenance"]["state"] == "trusted"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left behind

    args = ["sign", str(src), str(tmp_path / "cli.webm"), "--cert", str(env["creds"].signer_cert),
            "--key", str(env["creds"].signer_key), "--sidecar"]
    assert main(args) == EXIT_OK
    assert "sidecar" in capsys.readouterr().out and (tmp_path / "cli.c2pa").is_file()


def test_mutated_sidecars_never_raise(env, tmp_path):
    """A hostile sidecar: random byte flips, cuts and splices of a real manifest store give a
    structured result every time (state invalid, or trusted if a flip missed everything signed)."""
    import numpy as np

    rng = np.random.default_rng(18)
    video = shutil.copy(env["remote"], tmp_path / "v.mp4")
    store = env["store"]
    states = []
    for i in range(40):
        data = bytearray(store)
        kind = i % 3
        if kind == 0:
            for j in rng.integers(0, len(data), size=int(rng.integers(1, 8))):
                data[j] ^= int(rng.integers(1, 256))
        elif kind == 1:
            data = data[:int(rng.integers(0, len(data)))]
        else:
            a, b = sorted(rng.integers(0, len(data), size=2))
            data = data[:a] + bytes(rng.integers(0, 256, size=int(rng.integers(0, 64)), dtype=np.uint8)) + data[b:]
        (tmp_path / "v.c2pa").write_bytes(bytes(data))
        r = verify_file(video, trust=env["trust"])
        assert r["provenance"]["state"] in ("invalid", "valid", "trusted", "absent")
        assert r["error"] is None or "\n" not in r["error"]
        states.append(r["provenance"]["state"])
    assert states.count("invalid") >= 30  # nearly every mutation is caught
