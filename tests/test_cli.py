"""The command-line contract: help everywhere, one-line errors with documented exit codes,
`world render` writing playable MP4s whose pixels match their ground truth."""

from __future__ import annotations

import json
import subprocess
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import cli, main
from evalkit.clipset import iter_clips, read_index
from evalkit.errors import EXIT_BAD_INPUT, EXIT_MISSING, EXIT_UNAVAILABLE
from evalkit.video import probe_video

from test_world_render import check_clip_against_track


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def all_command_paths(group=cli, prefix=()):
    for name, cmd in group.commands.items():
        path = prefix + (name,)
        yield path
        if hasattr(cmd, "commands"):
            yield from all_command_paths(cmd, path)


CONTRACT = [("demo",), ("world", "render"), ("generator", "train"), ("generate",), ("score",),
            ("keys", "init"), ("sign",), ("verify",), ("detectors", "train"), ("detect",),
            ("bench", "run"), ("leaderboard",), ("audit",)]


def test_every_contract_command_exists_and_has_help(capsys):
    paths = set(all_command_paths())
    for path in CONTRACT:
        assert path in paths, path
    for path in paths:
        code, out, err = run(capsys, *path, "--help")
        assert code == 0 and "Usage: evalkit " + " ".join(path) in out, path


def test_output_files_that_cannot_be_files_are_refused_before_the_work(capsys, tmp_path):
    """A folder given as a checkpoint or an export, or a path under a file: one line, exit 2,
    before any training (they were a misleading "no such checkpoint" and an internal error)."""
    (tmp_path / "afile").write_text("keep")
    ship = "generators/uvit/weights/small-stage1.safetensors"
    for argv, says in ((("generator", "train", "--preset", "tiny", "--max-steps", "1", "--out", str(tmp_path)),
                        "is a folder"),
                       (("generator", "train", "--preset", "tiny", "--max-steps", "1", "--out",
                         str(tmp_path / "afile" / "t.pt")), "is a file, not a folder"),
                       (("generator", "export", ship, str(tmp_path / "afile" / "e.safetensors")),
                        "is a file, not a folder")):
        code, _, err = run(capsys, *argv)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, err
    assert (tmp_path / "afile").read_text() == "keep" and len(list(tmp_path.iterdir())) == 1


def test_outputs_never_overwrite_what_the_command_reads(capsys, tmp_path, monkeypatch):
    """An output path that is the video being verified, a clip or the index of the folder being
    scored, the policy being audited or the MLflow store read: one line, exit 2, the input kept
    byte for byte (each was overwritten, exit 0)."""
    from evalkit.world import WorldConfig, make_clip
    from evalkit.video import write_video

    clips = tmp_path / "clips"
    clips.mkdir()
    clip = write_video(clips / "a red ball falls.mp4", make_clip("test", 0, 0, WorldConfig(frames=8, size=32)))
    (clips / "index.jsonl").write_text(json.dumps({"id": "a", "file": clip.name, "prompt": "a red ball falls"}) + "\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("suite: world-v1\nchecks: {}\n")
    store = tmp_path / "store.db"
    import sqlite3
    db = sqlite3.connect(store)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store}")
    link = tmp_path / "link.mp4"
    link.symlink_to(clip)
    before = {p: p.read_bytes() for p in (clip, clips / "index.jsonl", policy, store)}
    for argv, says in (
            (("verify", str(clip), "--no-detector", "--html", str(clip)), "is an input of this command"),
            (("verify", str(clips), "--no-detector", "--html", str(link)), "is a file of the input folder"),
            (("score", str(clips), "--metrics", "flicker", "--no-mlflow", "--json", str(clips / "index.jsonl")),
             "is a file of the input folder"),
            (("score", str(clips), "--metrics", "flicker", "--no-mlflow", "--json", str(clip)), "input folder"),
            (("audit", "--model", "world", "--policy", str(policy), "--html", str(policy)), "is an input"),
            (("leaderboard", "--suite", "world-v1", "--out", str(store)), "is the MLflow store"),
            (("report", "--suite", "world-v1", "--out", str(store)), "is the MLflow store"),
            (("report", "--suite", "world-v1", "--out", str(tmp_path / "r.png"), "--check"),
             "--check writes its screenshot to")):
        code, out, err = run(capsys, *argv)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, (argv, err)
    assert all(p.read_bytes() == b for p, b in before.items())
    # an output beside the inputs is fine, and written
    code, _, err = run(capsys, "score", str(clips), "--metrics", "flicker", "--no-mlflow", "--json",
                       str(clips / "scores.json"))
    assert code == 0 and json.loads((clips / "scores.json").read_text())["metrics"], err


def test_paths_the_os_refuses_are_one_line_errors(capsys, tmp_path):
    """A name over 255 bytes makes the OS itself refuse the path (ENAMETOOLONG), which Path.exists
    and is_file raise rather than answer: every command gave an internal error (exit 70). Now one
    line naming the path, shortened, with what to do; exit 2. In a batch (verify, detect) it is that
    file's error and the other files are still judged."""
    long = str(tmp_path / ("x" * 300))
    good = tmp_path / "ok.mp4"
    from evalkit.video import write_video

    write_video(good, np.zeros((4, 32, 32, 3), np.uint8), fps=8)
    assert run(capsys, "keys", "init")[0] == 0  # sign reaches its output path only with credentials
    for argv in (("probe", long + ".mp4"), ("score", long, "--metrics", "flicker"),
                 ("sign", str(good), long + ".mp4"), ("audit", "--model", "world", "--policy", long + ".yaml"),
                 ("generate", "--model", f"uvit:{long}.safetensors", "--prompts", "x", "--out", str(tmp_path / "g")),
                 ("generate", "--model", "world", "--prompts", "a red ball falls " * 200, "--out", str(tmp_path / "g"))):
        code, _, err = run(capsys, *argv)
        assert code == EXIT_BAD_INPUT and err.count("\n") == 1 and "internal error" not in err, (argv, err)
        assert "File name too long" in err or "over the limit" in err, err
        assert len(err) < 400 and ("characters)" in err or "over the limit" in err), err  # the name shortened
    code, out, err = run(capsys, "verify", "--no-detector", "--json", str(good), long + ".mp4")
    rows = [json.loads(x) for x in out.splitlines()]
    assert code == EXIT_BAD_INPUT and [r["readable"] for r in rows] == [True, False]
    assert "File name too long" in rows[1]["error"] and "internal error" not in err


def test_missing_generator_weights_exit_3(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--model", f"uvit:{tmp_path}/none.safetensors", "--prompts", "x",
                       "--out", str(tmp_path / "o"))
    assert code == EXIT_MISSING and "none.safetensors" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_missing_training_inputs_exit_3_naming_the_fix(capsys, tmp_path):
    """generator export / train --init-from / --text-init used click's exists=True: a missing file
    was exit 2 with click's words, against the README's "a path that is not there is exit 3"."""
    out = tmp_path / "t.pt"
    for argv, says in ((("generator", "export", str(tmp_path / "no.pt"), str(tmp_path / "x.safetensors")),
                        "generator train --out"),
                       (("generator", "train", "--preset", "tiny", "--max-steps", "1", "--out", str(out),
                         "--init-from", str(tmp_path / "no.safetensors")), "generator export"),
                       (("generator", "train", "--preset", "tiny", "--max-steps", "1", "--out", str(out),
                         "--text-init", str(tmp_path / "no.safetensors")), "pretrain-text")):
        code, _, err = run(capsys, *argv)
        assert code == EXIT_MISSING and says in err and err.count("\n") == 1, (argv, err)
    code, _, err = run(capsys, "generator", "export", str(tmp_path), str(tmp_path / "x.safetensors"))
    assert code == EXIT_BAD_INPUT and "is not a file" in err
    assert not out.exists() and not (tmp_path / "x.safetensors").exists()


def test_verify_registry_that_is_not_there_is_said(capsys, tmp_path):
    """A mistyped --registry read like a registry that was searched and lacked the payload (exit 0)."""
    from evalkit.video import write_video

    clip = tmp_path / "c.mp4"
    write_video(clip, np.zeros((4, 32, 32, 3), np.uint8), fps=8)
    code, out, err = run(capsys, "verify", "--no-detector", str(clip), "--registry", str(tmp_path / "typo"))
    assert code == EXIT_MISSING and "--registry" in err and "typo" in err and err.count("\n") == 1 and not out
    code, out, err = run(capsys, "verify", "--no-detector", str(clip), "--registry", str(clip))
    assert code == EXIT_BAD_INPUT and "is not a folder" in err and not out
    (tmp_path / "reg").mkdir()
    assert run(capsys, "verify", "--no-detector", str(clip), "--registry", str(tmp_path / "reg"))[0] == 0


def test_sampling_flags_out_of_place_are_one_line_errors(capsys, tmp_path):
    code, _, err = run(capsys, "generate", "--model", "world", "--prompts", "x", "--out", str(tmp_path / "o"),
                       "--guidance-rescale", "0.5")
    assert code == EXIT_BAD_INPUT and "--guidance-rescale only applies to uvit" in err and err.count("\n") == 1
    code, _, err = run(capsys, "generate", "--model", "uvit:small-gpu", "--prompts", "x", "--out",
                       str(tmp_path / "o"), "--guidance-rescale", "1.5")
    assert code == EXIT_BAD_INPUT and "1.5" in err
    for model, value, says in (("world", "0:0.5", "--guidance-interval only applies to uvit"),
                               ("uvit:small-gpu", "0.9:0.1", "guidance interval 0.9:0.1: needs 0 <= LO < HI")):
        code, _, err = run(capsys, "generate", "--model", model, "--prompts", "x", "--out", str(tmp_path / "o"),
                           "--guidance-interval", value)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, err
    code, _, err = run(capsys, "bench", "run", "--suite", "world-v1", "--model", "diffusers:x",
                       "--guidance-interval", "0:0.5")
    assert code == EXIT_BAD_INPUT and "--guidance-interval: only for uvit models" in err, err
    # options no model of the run takes were ignored silently; a negative scale was taken
    for argv, says in ((("--model", "world", "--steps", "5"), "--steps: only for uvit (and diffusers) models"),
                       (("--model", "control:noise", "--sampler", "ddim"), "--sampler: only for uvit"),
                       (("--model", "world", "--guidance", "-3"), "-3")):
        code, _, err = run(capsys, "bench", "run", "--suite", "world-v1", "--out", str(tmp_path / "b"), *argv)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, err
    (tmp_path / "afile").write_text("keep")
    code, _, err = run(capsys, "bench", "run", "--suite", "world-v1", "--model", "world", "--out",
                       str(tmp_path / "afile"))
    assert code == EXIT_BAD_INPUT and "is a file; give a folder" in err and (tmp_path / "afile").read_text() == "keep"
    code, _, err = run(capsys, "generate", "--model", "uvit:small-gpu", "--prompts", "x", "--out",
                       str(tmp_path / "o"), "--guidance", "-1")
    assert code == EXIT_BAD_INPUT and "-1" in err
    assert not (tmp_path / "o").exists() and not (tmp_path / "b").exists()


def test_generate_sets_frames_size_and_fps_where_a_model_allows(capsys, tmp_path):
    prompt = "a small red ball falls and bounces on the floor, on a dark background"
    code, out, err = run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "w"),
                         "--frames", "8", "--size", "48", "--fps", "12")
    assert code == 0, err
    (rec,) = read_index(tmp_path / "w")
    assert (rec["frames"], rec["size"], rec["fps"]) == (8, [48, 48], 12.0)
    info = probe_video(tmp_path / "w" / rec["file"])
    assert (info.frames, info.width, info.fps) == (8, 48, 12.0)
    for argv, fragment in [(("--model", "uvit:small-gpu", "--frames", "8"), "--frames do not apply to uvit"),
                           (("--model", "world", "--size", "48x64"), "square frames"),
                           (("--model", "world", "--size", "7"), "at least 8 pixels"),
                           (("--model", "world", "--size", "33"), "even frame size; use 34"),
                           (("--model", "control:frozen", "--size", "8200"), "EVALKIT_MAX_PIXELS"),
                           (("--model", "world", "--size", "big"), "give S or HxW"),
                           (("--model", "control:noise", "--device", "cuda"), "--device does not apply"),
                           (("--model", "world", "--precision", "bf16"), "--precision only applies to uvit")]:
        code, _, err = run(capsys, "generate", "--prompts", prompt, "--out", str(tmp_path / "o"), *argv)
        assert code == EXIT_BAD_INPUT and fragment in err and err.count("\n") == 1, (argv, err)
    assert not (tmp_path / "o").exists()


def test_version(capsys):
    from evalkit import __version__

    code, out, _ = run(capsys, "--version")
    assert code == 0 and __version__ in out


def test_ray_executor_without_ray_installed_says_how_to_get_it_and_exits_4(capsys, tmp_path, monkeypatch):
    import sys

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    code, out, err = run(capsys, "bench", "run", "--suite", "world-v1", "--model", "world", "--executor", "ray")
    assert code == EXIT_UNAVAILABLE
    assert "evalkit[ray]" in err and err.count("\n") == 1
    assert not (tmp_path / "evalkit-bench").exists()


def test_ray_options_without_the_ray_executor_exit_2(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "bench", "run", "--suite", "world-v1", "--model", "world", "--workers", "2")
    assert code == EXIT_BAD_INPUT and "--executor ray" in err and err.count("\n") == 1


def test_diffusers_model_not_in_the_local_cache_says_how_to_get_it_and_exits_3(capsys, tmp_path, monkeypatch):
    pytest.importorskip("diffusers")
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "generate", "--model", "diffusers:some/pipeline", "--prompts", "a red ball",
                         "--out", "OUT")
    assert code == EXIT_MISSING and "huggingface-cli download some/pipeline" in err and err.count("\n") == 1
    assert not (tmp_path / "OUT").exists()


@pytest.mark.parametrize("argv,fragment", [
    (["world", "render", "OUT", "--split", "bogus"], "--split"),
    (["world", "render", "OUT", "--n", "0"], "--n"),
    (["world", "render", "OUT", "--size", "33"], "even"),
    (["world", "render", "OUT", "--frames", "1"], "frames"),
    (["world", "render", "OUT", "--fps", "abc"], "--fps"),
    (["world", "render"], "OUT"),
    # session 30: internal errors (seed -1, fps 1e-9), NaN/inf noise written to the index, and a
    # 100,000-frame clip no command could read
    (["world", "render", "OUT", "--seed", "-1"], "--seed"),
    (["world", "render", "OUT", "--fps", "1e-9"], "--fps"),
    (["world", "render", "OUT", "--noise", "nan"], "--noise"),
    (["world", "render", "OUT", "--noise", "inf"], "--noise"),
    (["world", "render", "OUT", "--frames", "100000"], "EVALKIT_MAX_FRAMES"),
    (["no-such-command"], "no-such-command"),
    (["world", "render", "OUT", "--bogus-flag"], "--bogus-flag"),
])
def test_bad_flags_are_one_line_errors_with_exit_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *argv)
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith("evalkit: error:") and err.count("\n") == 1 and fragment in err
    assert not (tmp_path / "OUT").exists() and not list(tmp_path.iterdir())


def test_world_render_writes_playable_clips_matching_ground_truth(capsys, tmp_path):
    out = tmp_path / "ref"
    code, stdout, err = run(capsys, "world", "render", str(out), "--split", "ood", "--n", "6",
                            "--frames", "12", "--size", "64", "--fps", "10", "--seed", "4")
    assert code == 0, err
    records = read_index(out)
    errors = []
    assert len(records) == 6 and sorted(p.name for p in (out / "clips").iterdir()) == sorted(
        Path(r["file"]).name for r in records)
    for rec, clip in zip(records, iter_clips(out)):
        info = probe_video(out / rec["file"])
        assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
        assert clip.frames.shape == (12, 64, 64, 3) and clip.fps == pytest.approx(10)
        assert rec["split"] == "ood" and rec["size"] == [64, 64] and rec["frames"] == 12
        # H.264 and 4:2:0 chroma smear small objects whose luma is close to the background's
        # (a small blue square on texture, say), but the centres stay close to the track.
        errors += check_clip_against_track(clip.frames, rec, tol_px=1.5, area_rel=None)
    assert np.hypot(*np.array(errors).T).mean() < 0.3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no leftovers


def test_world_render_refuses_to_overwrite_a_non_empty_folder(capsys, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    code, _, err = run(capsys, "world", "render", str(out), "--n", "2")
    assert code == EXIT_BAD_INPUT and "not empty" in err
    assert (out / "precious.txt").read_text() == "keep me" and len(list(out.iterdir())) == 1
    # ... and a folder asked for under a file is one line too (it was an internal error)
    code, _, err = run(capsys, "world", "render", str(out / "precious.txt" / "clips"), "--n", "2")
    assert code == EXIT_BAD_INPUT and "is a file, not a folder" in err and err.count("\n") == 1
    assert len(list(out.iterdir())) == 1


def test_world_render_is_deterministic(capsys, tmp_path):
    for name in ("a", "b"):
        assert run(capsys, "world", "render", str(tmp_path / name), "--n", "3", "--seed", "9")[0] == 0
    assert (tmp_path / "a/index.jsonl").read_text() == (tmp_path / "b/index.jsonl").read_text()
    for ca, cb in zip(iter_clips(tmp_path / "a"), iter_clips(tmp_path / "b")):
        assert np.array_equal(ca.frames, cb.frames)


def test_probe_reports_real_footage_and_bad_files(capsys, tmp_path, real_videos_dir):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 20)
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes((real_videos_dir / "carphone_pristine.mp4").read_bytes()[:200_000])
    code, out, err = run(capsys, "probe", "--json", str(real_videos_dir / "bikes.mp4"), str(empty),
                         str(text), str(truncated))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == EXIT_BAD_INPUT
    assert rows[0]["readable"] and (rows[0]["width"], rows[0]["height"], rows[0]["frames"]) == (640, 272, 250)
    for row, name in zip(rows[1:], ("empty.mp4", "notes.mp4", "cut.mp4")):
        assert not row["readable"] and name in row["error"] and "\n" not in row["error"]
    code, _, err = run(capsys, "probe", str(tmp_path / "missing.mp4"))
    assert code == EXIT_MISSING and "missing.mp4" in err and err.count("\n") == 1


def test_probe_describes_a_video_over_the_decode_budget(capsys, monkeypatch, real_videos_dir):
    """Headers only: a video too big to decode whole (a 4K phone clip) is described, with the
    budget reported; the commands that decode read it reduced."""
    bikes = str(real_videos_dir / "bikes.mp4")  # 250 frames of 640x272: 130 MB decoded
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(100 << 20))
    code, out, _ = run(capsys, "probe", bikes)
    assert code == 0 and out.rstrip().endswith("over the decode budget (read reduced: EVALKIT_MAX_DECODED_BYTES)")
    code, out, _ = run(capsys, "probe", "--json", bikes)
    assert code == 0 and json.loads(out)["over_decode_budget"] is True
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(200 << 20))
    code, out, _ = run(capsys, "probe", "--json", bikes)
    assert json.loads(out)["over_decode_budget"] is False and json.loads(out)["frames"] == 250


def test_probe_counts_frames_where_the_container_holds_no_count(capsys, tmp_path):
    from evalkit.video import write_video

    frames = np.random.default_rng(0).integers(0, 256, (12, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "c.mkv", frames, fps=12)
    write_video(tmp_path / "c.mp4", frames, fps=12)
    code, out, _ = run(capsys, "probe", str(tmp_path / "c.mkv"), str(tmp_path / "c.mp4"))
    mkv, mp4 = out.splitlines()
    assert code == 0 and "12 frames (counted; the header holds no count)" in mkv and mp4.endswith(" 12 frames")


def test_console_script_exit_codes_without_traceback(tmp_path):
    exe = Path(sys.executable).with_name("evalkit")
    res = subprocess.run([str(exe), "world", "render", str(tmp_path / "x"), "--size", "31"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == EXIT_BAD_INPUT and "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1


def test_keys_sign_verify_round_trip_with_exit_codes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    assert run(capsys, "keys", "init")[0] == 0
    code, _, err = run(capsys, "keys", "init")
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1  # never overwrites without --force
    assert run(capsys, "world", "render", str(tmp_path / "w"), "--n", "1", "--size", "128")[0] == 0
    src = tmp_path / "w/clips/test-s0-00000.mp4"
    assert run(capsys, "sign", str(src), str(tmp_path / "s.mp4"), "--watermark")[0] == 0
    ca = tmp_path / "home/credentials/ca.pem"
    code, out, _ = run(capsys, "verify", "--json", "--trust", str(ca), str(tmp_path / "s.mp4"))
    (r,) = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and r["provenance"]["state"] == "trusted" and r["watermark"]["detected"]
    assert r["verdict"] == "ai-generated (signed)" and r["watermark"]["matches_manifest"] is True
    data = bytearray((tmp_path / "s.mp4").read_bytes())
    i = data.rfind(b"mdat") + 64
    data[i:i + 32] = bytes(b ^ 0xFF for b in data[i:i + 32])
    (tmp_path / "t.mp4").write_bytes(bytes(data))
    code, out, _ = run(capsys, "verify", "--json", str(tmp_path / "t.mp4"))
    assert code == 1 and json.loads(out)["provenance"]["state"] == "invalid"
    # a folder is its videos, in name order: the signed and the tampered copy side by side
    (tmp_path / "case").mkdir()
    for name in ("s.mp4", "t.mp4"):
        (tmp_path / "case" / name).write_bytes((tmp_path / name).read_bytes())
    code, out, _ = run(capsys, "verify", "--json", str(tmp_path / "case"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 1 and [Path(r["file"]).name for r in rows] == ["s.mp4", "t.mp4"]
    assert [r["provenance"]["state"] for r in rows] == ["valid", "invalid"]


def test_sign_with_a_time_stamp_authority(capsys, tmp_path, monkeypatch):
    """`sign --tsa URL` (RFC 3161): a TSA that is down or is not a TSA is a one-line error and no
    output file; a working one (run here) dates the signature."""
    from http_stub import closed_port, serve

    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    assert run(capsys, "keys", "init")[0] == 0
    assert run(capsys, "world", "render", str(tmp_path / "w"), "--n", "1")[0] == 0
    src = str(tmp_path / "w/clips/test-s0-00000.mp4")
    with serve(lambda body: ("application/timestamp-reply", b"this is not a time-stamp token")) as not_a_tsa:
        for url in (f"http://127.0.0.1:{closed_port()}/tsa", f"{not_a_tsa}/tsa"):
            code, _, err = run(capsys, "sign", src, str(tmp_path / "s.mp4"), "--tsa", url)
            assert code != 0 and "C2PA signing failed" in err and err.count("\n") == 1, err
            assert not (tmp_path / "s.mp4").exists() and len(list(tmp_path.iterdir())) == 2  # home, w
    code, _, err = run(capsys, "sign", src, str(tmp_path / "s.mp4"), "--tsa", "ftp://tsa.example")
    assert code == EXIT_BAD_INPUT and "http(s) URL" in err
    # and one that works: an RFC 3161 authority run here, its certificate from the user's CA
    pytest.importorskip("pyasn1_modules")
    from local_tsa import LocalTSA, make_tsa

    creds = tmp_path / "home/credentials"
    with LocalTSA(*make_tsa((creds / "ca.pem").read_bytes(), (creds / "ca.key").read_bytes())) as url:
        assert run(capsys, "sign", src, str(tmp_path / "s.mp4"), "--tsa", url)[0] == 0
    code, out, _ = run(capsys, "verify", "--json", "--trust", str(creds / "ca.pem"), str(tmp_path / "s.mp4"))
    r = json.loads(out)
    assert code == 0 and r["provenance"]["state"] == "trusted" and r["provenance"]["time_stamp"]


def test_generate_signs_and_watermarks_every_clip(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("EVALKIT_SOFT_BINDINGS", str(tmp_path / "registry"))
    prompt = "a small red ball falls and bounces on the floor, on a dark background"
    code, _, err = run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "g"),
                       "--sign")
    assert code == EXIT_MISSING and "keys init" in err and not (tmp_path / "g").exists()
    assert run(capsys, "keys", "init")[0] == 0
    assert run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "g"),
               "--n-per-prompt", "2", "--sign", "--watermark")[0] == 0
    records = read_index(tmp_path / "g")
    files = [str(tmp_path / "g" / r["file"]) for r in records]
    code, out, _ = run(capsys, "verify", "--json", "--trust", str(tmp_path / "home/credentials/ca.pem"), *files)
    results = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(results) == 2
    for r, rec in zip(results, records):
        assert r["provenance"]["state"] == "trusted" and r["verdict"] == "ai-generated (signed)"
        assert r["watermark"]["detected"] and r["watermark"]["payload"] == rec["watermark_payload"]
        assert "time_stamp" not in r["provenance"]
        # each clip's payload is in the soft-binding registry, under the clip's own name
        entry = tmp_path / "registry" / r["watermark"]["key_id"] / f"{rec['watermark_payload']}.json"
        assert json.loads(entry.read_text())["signed_file"] == Path(rec["file"]).name
    # a run that fails after signing some clips keeps none of them, and registers none (it did)
    before = sorted((tmp_path / "registry").rglob("*.json"))
    mixed = tmp_path / "mixed.txt"
    mixed.write_text(prompt + "\n" + "a purple elephant dances\n")
    code, _, err = run(capsys, "generate", "--model", "world", "--prompts", str(mixed), "--out",
                       str(tmp_path / "m"), "--n-per-prompt", "8", "--watermark")
    assert code == EXIT_BAD_INPUT and "not a world prompt" in err and not (tmp_path / "m").exists()
    assert sorted((tmp_path / "registry").rglob("*.json")) == before
    # marked, never signed: verify says so (it said "manifest stripped" of a manifest never there)
    assert run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "u"),
               "--watermark", "--seed", "5")[0] == 0  # (another clip: the one signed above is on record)
    (rec,) = read_index(tmp_path / "u")
    code, out, _ = run(capsys, "verify", "--json", "--no-detector", str(tmp_path / "u" / rec["file"]))
    assert json.loads(out)["verdict"] == "ai-generated (watermark only, unsigned)"
    code, _, err = run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "t"),
                       "--tsa", "http://127.0.0.1:1/tsa")
    assert code == EXIT_BAD_INPUT and "give it with --sign" in err
    pytest.importorskip("pyasn1_modules")
    from local_tsa import LocalTSA, make_tsa

    creds = tmp_path / "home/credentials"
    tsa = LocalTSA(*make_tsa((creds / "ca.pem").read_bytes(), (creds / "ca.key").read_bytes()))
    with tsa as url:
        assert run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "t"),
                   "--n-per-prompt", "2", "--sign", "--tsa", url)[0] == 0
    assert tsa.requests == 2  # one time-stamp a clip
    files = [str(tmp_path / "t" / r["file"]) for r in read_index(tmp_path / "t")]
    code, out, _ = run(capsys, "verify", "--json", "--trust", str(creds / "ca.pem"), *files)
    assert code == 0 and all(json.loads(line)["provenance"]["time_stamp"] for line in out.splitlines())


def test_out_of_memory_is_one_line_exit_5_and_writes_nothing(capsys, tmp_path):
    from evalkit.errors import EXIT_OUT_OF_MEMORY

    # 5000 frames of 8192x8192 RGB: numpy refuses the 3.7 TiB array at once (a real MemoryError)
    code, out, err = run(capsys, "world", "render", str(tmp_path / "big"), "--n", "1", "--frames", "5000",
                         "--size", "8192")
    assert code == EXIT_OUT_OF_MEMORY and err.startswith("evalkit: error: out of memory") and err.count("\n") == 1
    assert "TiB" in err and not (tmp_path / "big").exists()


def test_torch_allocator_failures_read_as_out_of_memory():
    import torch

    from evalkit.errors import out_of_memory_message

    with pytest.raises(RuntimeError) as e:
        torch.empty(10**13)  # torch's CPU allocator fails with a plain RuntimeError
    msg = out_of_memory_message(e.value)
    assert msg is not None and "out of memory" in msg and "37252.9 GiB" in msg
    assert out_of_memory_message(RuntimeError("shape mismatch")) is None
    assert out_of_memory_message(ValueError("can't allocate memory")) is None


def test_bench_summary_columns_never_run_together():
    """Cells wider than a fixed column ran into the next one ('n=81.08e+03' read as n=81)."""
    from types import SimpleNamespace

    from evalkit.commands.bench import _summary_table

    m = {"cost.clips_per_s": {"value": 1000.2, "ci_low": 933.4, "ci_high": 1070.3, "n": 8},
         "fvd": {"value": 902.9, "ci_low": 31.0, "ci_high": 12400.0, "n": 90}}
    long = "folder:bench-out/tiny/a-model-with-a-long-name-b4294d3f"
    text = _summary_table([SimpleNamespace(model="world", metrics=m), SimpleNamespace(model=long, metrics=m)])
    lines = text.splitlines()
    assert long in lines[0]  # names whole
    fvd = next(x for x in lines if x.startswith("fvd"))
    assert fvd.split() == ["fvd", "903", "[31,", "1.24e+04]", "n=90", "903", "[31,", "1.24e+04]", "n=90"]
    assert len({len(x) for x in lines if not x.startswith(("clip", "physics", "prov", "water", "det"))}) == 1


def test_generate_refuses_frame_rates_and_lengths_no_video_holds(capsys, tmp_path):
    prompt = "a small red ball falls and bounces on the floor, on a dark background"
    for flag, value, says in (("--fps", "inf", "frame rate from 0.01 to 1000"),
                              ("--fps", "1e-9", "frame rate from 0.01 to 1000"),
                              ("--fps", "nan", "frame rate from 0.01 to 1000"),
                              ("--frames", "100000", "over the 20000 frames evalkit reads")):
        code, _, err = run(capsys, "generate", "--model", "world", "--prompts", prompt, "--out",
                           str(tmp_path / "o"), flag, value)
        assert code == EXIT_BAD_INPUT and says in err and err.count("\n") == 1, (flag, value, err)
    assert not (tmp_path / "o").exists()


def test_a_mistyped_model_spec_is_named_before_its_flags(capsys, tmp_path):
    """`--model uvit --steps 2` said "--steps only apply to uvit and diffusers models, not uvit"."""
    for spec in ("uvit", "uvi:tiny", "UVIT:small-gpu"):
        code, _, err = run(capsys, "generate", "--model", spec, "--prompts", "x", "--out", str(tmp_path / "o"),
                           "--steps", "2")
        assert code == EXIT_BAD_INPUT and f"unknown model spec '{spec}'" in err, err


def test_small_messages_say_what_was_wrong(capsys, tmp_path, mlflow_store):
    """`--prompts ""` said ": is a folder" (Path("") is the working folder); an unknown audit run
    said "not found" twice; `--sampler DDIM` was unknown."""
    from generators.uvit.generate import UViTGenerator

    code, _, err = run(capsys, "generate", "--model", "world", "--prompts", "", "--out", str(tmp_path / "o"))
    assert code == EXIT_BAD_INPUT and "empty prompt" in err
    policy = Path(__file__).resolve().parents[1] / "reports" / "policies" / "release.yaml"
    args = ["audit", "--model", "world", "--policy", str(policy), "--run", "0123456789abcdef0123456789abcdef"]
    code, _, err = run(capsys, *args)  # no store yet: named, never made (session 32)
    assert code == EXIT_MISSING and "no MLflow store there" in err and err.count("\n") == 1, err
    from evalkit import tracking

    tracking.check_reachable()  # the store made, as any logging command makes it
    code, _, err = run(capsys, *args)
    assert code == EXIT_MISSING and err.lower().count("not found") == 1 and "check the id" in err, err
    assert UViTGenerator("small-gpu", sampler="DDIM").sampler == "ddim"


def test_read_only_commands_run_where_the_home_cannot_be_made(capsys, tmp_path, monkeypatch):
    """A read-only $HOME (a container user, a locked-down CI) must not stop `verify`, `detect` or
    `generate` with a shipped model: they only look things up there. Writing commands say why."""
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "home"))
    assert run(capsys, "keys", "init")[0] == 0
    assert run(capsys, "world", "render", str(tmp_path / "w"), "--n", "1", "--size", "64")[0] == 0
    signed = tmp_path / "s.mp4"
    assert run(capsys, "sign", str(tmp_path / "w/clips/test-s0-00000.mp4"), str(signed))[0] == 0
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("EVALKIT_HOME", str(tmp_path / "file" / "home"))  # under a file: cannot be made
    code, out, err = run(capsys, "verify", "--json", str(signed))
    assert code == 0 and json.loads(out)["provenance"]["state"] == "valid", err
    code, out, err = run(capsys, "detect", str(signed), "--json")
    assert code == 0 and 0.0 <= json.loads(out)[0]["p_generated"] <= 1.0, err
    prompt = "a small red ball falls and bounces on the floor, on a dark background"
    code, _, err = run(capsys, "generate", "--model", "uvit:small-gpu", "--prompts", prompt, "--steps", "2",
                       "--out", str(tmp_path / "g"))
    assert code == 0 and len(read_index(tmp_path / "g")) == 1, err
    code, _, err = run(capsys, "keys", "init")
    assert code == EXIT_BAD_INPUT and "cannot create EVALKIT_HOME" in err and err.count("\n") == 1
    assert not (tmp_path / "file" / "home").exists()


def test_info_says_where_the_home_is_and_makes_nothing(capsys, tmp_path, monkeypatch):
    """`info` is where a user looks when the home is the problem: it failed there, and made it."""
    (tmp_path / "file").write_text("x")
    for home, state in ((tmp_path / "file" / "home", "cannot be made"), (tmp_path / "new", "not made yet")):
        monkeypatch.setenv("EVALKIT_HOME", str(home))
        code, out, err = run(capsys, "info", "--json")
        d = json.loads(out)
        assert code == 0 and d["evalkit_home"] == str(home) and d["evalkit_home_state"].startswith(state), err
        assert not home.exists()


def test_a_users_package_named_like_evalkits_own_is_named_not_an_internal_error(tmp_path):
    """A project's own `generators/` in the working folder hid evalkit's `generators` under
    `python -m evalkit` (the folder is first on the path): "internal error: No module named
    'generators.base'", exit 70 (session 33)."""
    import subprocess

    (tmp_path / "generators").mkdir()
    (tmp_path / "generators" / "__init__.py").write_text("")
    env = {**os.environ, "EVALKIT_HOME": str(tmp_path / "home")}
    r = subprocess.run([sys.executable, "-m", "evalkit", "info"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{tmp_path / 'generators'}: a package named 'generators' there hides evalkit's own" in r.stderr
    (tmp_path / "generators" / "__init__.py").unlink()
    (tmp_path / "generators").rmdir()
    ok = subprocess.run([sys.executable, "-m", "evalkit", "--version"], cwd=tmp_path, capture_output=True, text=True,
                        env=env)
    assert ok.returncode == 0
