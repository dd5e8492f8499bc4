"""`evalkit score` end to end: the world scores as real data, the controls as what they are,
and every number carries its CI, N and protocol."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from evalkit.cli import main
from evalkit.world import make_clip
from generators.base import Prompt, generate_folder, get_generator

PROMPTS = [Prompt(make_clip("test", i, seed=9).prompt) for i in range(8)]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("score")
    from evalkit.world.export import render_folder

    render_folder(root / "ref", split="test", n=24, seed=1, progress=False)
    for spec in ("world", "control:noise", "control:shuffled"):
        generate_folder(get_generator(spec), PROMPTS, root / spec.replace(":", "-"), n_per_prompt=2, seed=3,
                        progress=False)
    return root


def score(capsys, folders, name, *extra):
    out = folders / f"{name}.json"
    assert main(["score", str(folders / name), "--reference", str(folders / "ref"), "--json", str(out), *extra]) == 0
    capsys.readouterr()
    return json.loads(out.read_text())


def test_world_scores_like_real_data_and_controls_do_not(capsys, folders, mlflow_store):
    world = score(capsys, folders, "world")
    noise = score(capsys, folders, "control-noise")
    shuffled = score(capsys, folders, "control-shuffled")
    w, n, s = world["metrics"], noise["metrics"], shuffled["metrics"]
    for m in (w, n, s):
        for name, e in m.items():
            assert {"value", "ci_low", "ci_high", "n", "protocol"} <= set(e), name
            assert "generation" in e["protocol"]
            assert e["ci_low"] is not None and e["ci_low"] <= e["value"] <= e["ci_high"], name
            if name == "recall":  # the share of reference clips covered: n is theirs
                assert e["n"] == e["protocol"]["n_reference"] == 24
            else:
                assert e["n"] == 16 or name.startswith("physics_law.") or name == "conditional_diversity"
    assert w["physics_score"]["value"] > 0.9 and n["physics_score"]["value"] == 0.0
    assert s["physics_score"]["value"] < w["physics_score"]["value"]
    assert w["clip_alignment"]["value"] > n["clip_alignment"]["value"] + 30
    assert w["clip_retrieval_top1"]["value"] > 0.5
    assert n["fvd"]["value"] > 5 * w["fvd"]["value"]  # small-N FVD of real data is far from 0
    assert w["flicker"]["value"] > s["flicker"]["value"] > n["flicker"]["value"]
    assert w["warp_error"]["value"] < s["warp_error"]["value"]
    assert w["fvd"]["protocol"]["backbone"]["backbone"] == "world-video-encoder"
    assert len(w["fvd"]["protocol"]["backbone"]["weights_sha256"]) == 64
    # each set metric names its own estimator (the KVD entry carried FVD's note and no kernel)
    assert "ddof=1" in w["fvd"]["protocol"]["definition"] and "FVD" in w["fvd"]["protocol"]["note"]
    assert "whole sets" in w["kvd"]["protocol"]["definition"] and "^3" in w["kvd"]["protocol"]["definition"]
    assert "FVD" not in w["kvd"]["protocol"]["note"]
    assert w["conditional_diversity"]["n"] == 8  # prompts with two samples each
    assert w["conditional_diversity"]["value"] > 0  # two seeds of a prompt give two scenes
    assert any("N=16" in x for x in world["warnings"])  # small-N FVD is flagged, never silent
    assert not any("not world clips" in x for x in world["warnings"])  # the world backbones' own domain
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_store)
    runs = client.search_runs([client.get_experiment_by_name("evalkit-score").experiment_id])
    assert len(runs) == 3 and {"fvd", "fvd_ci_low", "fvd_n", "physics_score"} <= set(runs[0].data.metrics)
    row = world["per_clip"][0]
    assert {"id", "clip_alignment", "flicker", "warp_error", "physics_score", "physics_pass", "physics_laws"} <= set(row)


def test_score_bad_input(capsys, folders, tmp_path, mlflow_store):
    assert main(["score", str(folders / "world"), "--metrics", "fvd"]) == 2
    assert main(["score", str(folders / "world"), "--metrics", "fvd,vibes", "--reference", "x"]) == 2
    assert main(["score", str(tmp_path / "nothing"), "--metrics", "flicker"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and "Traceback" not in err
    # a --json target that cannot be a file is refused before the scoring, not after it
    (tmp_path / "afile").write_text("x")
    for target, says in ((tmp_path, "is a folder"), (tmp_path / "afile" / "s.json", "is a file, not a folder")):
        assert main(["score", str(folders / "world"), "--metrics", "flicker", "--json", str(target)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.glob(".*partial")) and not list(tmp_path.parent.glob(f".{tmp_path.name}*"))


def test_a_folder_of_videos_without_an_index_is_scored(capsys, folders, tmp_path, real_videos_dir, mlflow_store):
    # real footage and another tool's files come as loose videos: read in name order, prompted by
    # their names; the physics probes say they have nothing to test rather than staying silent
    import shutil

    from evalkit.clipset import read_index
    from evalkit.video import read_video, write_video

    loose = tmp_path / "loose"
    loose.mkdir()
    for i, name in enumerate(("bikes.mp4", "bigbuckbunny.mp4")):
        clip = read_video(real_videos_dir / name, max_frames=16)
        write_video(loose / f"a_clip_of_{name[:-4]}-{i}.mkv", clip.frames[:, :144, :144], fps=clip.fps)
    shutil.copy(folders / "world" / read_index(folders / "world")[0]["file"], loose / "world.mp4")
    recs = read_index(loose)
    assert [r["prompt"] for r in recs] == ["a clip of bigbuckbunny", "a clip of bikes", "world"]  # name order
    out = tmp_path / "s.json"
    assert main(["score", str(loose), "--reference", str(folders / "ref"), "--json", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["flicker"]["n"] == 3 and res["metrics"]["fvd"]["n"] == 3
    assert "physics_score" not in res["metrics"]
    assert any("physics: 3 of 3 clips" in w for w in res["warnings"])
    # the shipped backbones know the world only: real footage and its prompts are named as such
    off = [w for w in res["warnings"] if "not world clips" in w]
    assert len(off) == 2 and "--i3d PATH" in off[0] and "--clip-weights PATH" in off[1]
    # (the world clip here is named world.mp4, so its prompt is "world"); the reference is world clips
    assert off[0].startswith("fvd: 3 of 27 candidate and reference clips") and off[1].startswith("clip: 3 of 3 prompted clips")
    # a one-frame "video" is a one-line error naming it, not a traceback
    write_video(loose / "still.mp4", read_video(loose / "world.mp4").frames[:1], fps=8)
    capsys.readouterr()
    assert main(["score", str(loose), "--metrics", "flicker"]) == 2
    err = capsys.readouterr().err
    assert "still.mp4: 1 frame" in err and err.count("\n") == 1 and "--skip-unreadable" in err
    # ... or, asked to, a folder with broken files scores the rest and names what it left out
    (loose / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(200))
    assert main(["score", str(loose), "--metrics", "flicker", "--skip-unreadable", "--json", str(out),
                 "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["flicker"]["n"] == 3
    assert sorted(Path(k["file"]).name for k in res["skipped"]) == ["broken.mp4", "still.mp4"]
    assert all(k["set"] == "candidates" and k["why"] for k in res["skipped"])
    (warn,) = [w for w in res["warnings"] if "--skip-unreadable" in w]
    assert warn.startswith("2 candidates could not be scored") and "still.mp4: 1 frame" in warn
    only_broken = tmp_path / "only_broken"
    only_broken.mkdir()
    (only_broken / "broken.mp4").write_bytes(bytes(100))
    capsys.readouterr()
    assert main(["score", str(only_broken), "--metrics", "flicker", "--skip-unreadable", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "no video in it could be scored (1 left out" in err and err.count("\n") == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["score", str(empty), "--metrics", "flicker"]) == 2
    assert "no index.jsonl and no videos" in capsys.readouterr().err


def test_a_clip_over_the_decode_budget_is_scored_reduced(tmp_path, monkeypatch, capsys):
    """A 10-second 4K phone clip needs 7.5 GB decoded at 30 fps: it was refused ('pass max_frames', which
    score has no option for). Now it is read with every frame reduced by a whole factor, all
    frames kept, and the result says so. Shown here with a small budget and small clips."""
    from evalkit.errors import VideoError
    from evalkit.metrics.flicker import temporal_flicker_score
    from evalkit.video import read_video, shrink_to_fit
    from evalkit.world import WorldConfig
    from evalkit.world.export import render_folder

    render_folder(tmp_path / "w", split="test", n=3, seed=2, config=WorldConfig(size=128), progress=False)
    clip = tmp_path / "w" / "clips" / sorted(p.name for p in (tmp_path / "w" / "clips").iterdir())[0]
    whole = 16 * 128 * 128 * 3
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(whole // 3))  # 1/2 fits (a quarter), 1/1 does not
    assert shrink_to_fit(clip) == 2
    out = tmp_path / "s.json"
    assert main(["score", str(tmp_path / "w"), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert all(r["read_reduced"] == 2 for r in res["per_clip"])
    assert any("3 of 3 clips are over the decode budget" in w and "1/2" in w for w in res["warnings"])
    first = res["per_clip"][0]
    assert first["flicker"] == temporal_flicker_score(read_video(clip, shrink=2).frames)
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", "1000")  # not even at the smallest size allowed
    with pytest.raises(VideoError, match="EVALKIT_MAX_DECODED_BYTES"):
        shrink_to_fit(clip)
    assert main(["score", str(tmp_path / "w"), "--metrics", "flicker", "--no-mlflow"]) == 2
    assert capsys.readouterr().err.count("evalkit: error") == 1


def test_one_video_file_is_a_set_of_one(folders, tmp_path, capsys):
    """`score FILE`: before, 'no such folder of clips; check the path' for a file that exists."""
    from evalkit.clipset import read_index

    rec = read_index(folders / "world")[0]
    out = tmp_path / "one.json"
    assert main(["score", str(folders / "world" / rec["file"]), "--metrics", "flicker,physics", "--json", str(out),
                 "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    # a clip of a clip folder keeps its index record: its world prompt, so the probes test it
    assert res["per_clip"][0]["id"] == rec["id"] and res["metrics"]["physics_score"]["n"] == 1
    assert res["metrics"]["flicker"]["n"] == 1
    loose = tmp_path / "a_red_ball_falls-2.mp4"
    loose.write_bytes((folders / "world" / rec["file"]).read_bytes())
    assert main(["score", str(loose), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    assert json.loads(out.read_text())["per_clip"][0]["id"] == "a_red_ball_falls-2"
    bare = tmp_path / "saved_without_a_suffix"  # probe, verify and detect read it; score refused it by name
    bare.write_bytes(loose.read_bytes())
    assert main(["score", str(bare), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    assert json.loads(out.read_text())["per_clip"][0]["id"] == "saved_without_a_suffix"
    from PIL import Image  # FFmpeg opens a PDF of JPEG pages as an mjpeg stream: no clip

    pages = [Image.fromarray(np.full((32, 32, 3), 60 * i, np.uint8)) for i in range(4)]
    pages[0].save(tmp_path / "report.pdf", save_all=True, append_images=pages[1:])
    capsys.readouterr()
    assert main(["score", str(tmp_path / "report.pdf"), "--metrics", "flicker", "--no-mlflow"]) == 2
    assert "neither a folder of clips nor a video file" in capsys.readouterr().err
    capsys.readouterr()
    notes = tmp_path / "notes.txt"
    notes.write_text("x")
    assert main(["score", str(notes), "--metrics", "flicker", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "neither a folder of clips nor a video file" in err and err.count("\n") == 1


def test_clips_of_two_frames_and_of_many_are_scored_together(folders, tmp_path, capsys):
    """A 2-frame clip beside 16-frame ones: CLIP took 2 frame embeddings of it against 8 of the
    others and failed to stack them (internal error); temporal_hf, which needs 3 frames, had no
    value at all for a folder of 2-frame clips and crashed the CI. Now each is scored as far as
    it can be, and what is left out is said."""
    from evalkit.clipset import read_index
    from evalkit.metrics.clip_alignment import clip_alignment
    from evalkit.metrics.backbones import get_backbone
    from evalkit.metrics.score import _frames_tensor
    from evalkit.video import read_video, write_video

    mixed, pair = tmp_path / "mixed", tmp_path / "pair"
    mixed.mkdir(), pair.mkdir()
    recs = read_index(folders / "world")[:3]
    clips = [read_video(folders / "world" / r["file"]) for r in recs]
    for i, (r, c) in enumerate(zip(recs, clips)):
        write_video(mixed / f"{r['prompt'].replace(' ', '_')}-{i}.mp4", c.frames, fps=c.fps, crf=0)
    write_video(mixed / "short.mp4", clips[0].frames[:2], fps=clips[0].fps, crf=0)
    write_video(pair / "short.mp4", clips[0].frames[:2], fps=clips[0].fps, crf=0)
    out = tmp_path / "s.json"
    assert main(["score", str(mixed), "--metrics", "clip,flicker", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["clip_alignment"]["n"] == 4 and res["metrics"]["temporal_hf"]["n"] == 3
    assert any(w.startswith("temporal_hf: 1 of 4 clips have none") for w in res["warnings"])
    # each clip's CLIPScore is its own, whatever the others' lengths
    short_frames = _frames_tensor(read_video(mixed / "short.mp4").frames)
    alone = clip_alignment(short_frames, ["short"], get_backbone("world-clip"))["per_clip"][0]
    short = next(r for r in res["per_clip"] if r["id"] == "short")
    assert short["clip_alignment"] == pytest.approx(alone, abs=1e-6)
    assert main(["score", str(pair), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert "temporal_hf" not in res["metrics"] and res["metrics"]["flicker"]["n"] == 1
    assert any(w.startswith("temporal_hf: 1 of 1 clips have none") and "no value" in w for w in res["warnings"])


def test_fvd_warns_when_one_set_is_stretched_to_the_backbones_length(folders, tmp_path):
    """4-frame candidates against 16-frame references: FVD ran, the candidates stretched by
    repeating frames, with the policy only in the JSON's protocol."""
    from evalkit.clipset import read_index
    from evalkit.video import read_video, write_video

    short = tmp_path / "short"
    short.mkdir()
    for i, r in enumerate(read_index(folders / "world")[:4]):
        c = read_video(folders / "world" / r["file"])
        write_video(short / f"{r['prompt'].replace(' ', '_')}-{i}.mp4", c.frames[:4], fps=c.fps, crf=0)
    out = tmp_path / "s.json"
    said = {}
    for name in (short, folders / "world"):
        assert main(["score", str(name), "--reference", str(folders / "ref"), "--metrics", "fvd", "--json",
                     str(out), "--no-mlflow"]) == 0
        said[name.name] = [w for w in json.loads(out.read_text())["warnings"] if "stretched by repeating" in w]
    assert said["world"] == []  # the same length as the reference: nothing to say
    (warning,) = said["short"]
    assert warning.startswith("fvd: 4 of 4 candidate and 0 of ") and "compare sets of the same length" in warning


def test_videos_an_index_leaves_out_are_named(folders, tmp_path):
    import shutil

    part = tmp_path / "part"
    shutil.copytree(folders / "world", part)
    lines = (part / "index.jsonl").read_text().splitlines()
    (part / "index.jsonl").write_text("\n".join(lines[:2]) + "\n")
    out = tmp_path / "s.json"
    assert main(["score", str(part), "--metrics", "flicker", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["flicker"]["n"] == 2
    assert any(w.startswith(f"{len(lines) - 2} videos of {part} are not in its index.jsonl") for w in res["warnings"])


def test_a_clip_without_a_prompt_is_left_out_of_clip_alignment(folders, tmp_path):
    """An index line with an empty prompt was scored against the empty text, as if that meant
    something; now it is left out of CLIP alignment and the warning says so."""
    import shutil

    from evalkit.clipset import read_index

    recs = read_index(folders / "world")[:3]
    (tmp_path / "set").mkdir()
    lines = []
    for i, r in enumerate(recs):
        shutil.copy(folders / "world" / r["file"], tmp_path / "set" / f"{i}.mp4")
        lines.append(json.dumps({"id": f"c{i}", "file": f"{i}.mp4", "prompt": "" if i == 1 else r["prompt"]}))
    (tmp_path / "set" / "index.jsonl").write_text("\n".join(lines) + "\n")
    out = tmp_path / "s.json"
    assert main(["score", str(tmp_path / "set"), "--metrics", "clip", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    assert res["metrics"]["clip_alignment"]["n"] == 2
    assert [("clip_alignment" in r) for r in res["per_clip"]] == [True, False, True]
    assert any(w.startswith("clip: 1 of 3 clips have an empty prompt") for w in res["warnings"])


def test_videos_named_by_number_are_indexed_from_their_prompt_list(capsys, folders, tmp_path):
    """Tools that number their outputs after a prompt list (0000.mp4, ...): a number is no
    prompt, and `evalkit index` gives each video its prompt."""
    import shutil

    import numpy as np

    from evalkit.clipset import read_index
    from evalkit.errors import BadInputError
    from evalkit.video import read_video
    from generators.folder import FolderGenerator

    world = read_index(folders / "ref")[:3]
    num = tmp_path / "numbered"
    num.mkdir()
    for i, rec in enumerate(world, 1):  # numbered from 1, with a second sample of the first
        shutil.copy(folders / "ref" / rec["file"], num / f"{i:04d}.mp4")
    shutil.copy(folders / "ref" / world[1]["file"], num / "0001_1.mp4")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("# the tool's list\n" + "".join(r["prompt"] + "\n" for r in world))
    assert {r["prompt"] for r in read_index(num)} == {""}  # a number says nothing about the video
    res = tmp_path / "s.json"
    assert main(["score", str(num), "--metrics", "clip", "--json", str(res), "--no-mlflow"]) == 2  # nothing scored
    assert not res.exists() and "evalkit index FOLDER --prompts LIST" in capsys.readouterr().err
    with pytest.raises(BadInputError, match="named by number.*evalkit index"):
        FolderGenerator(num).generate([world[0]["prompt"]], [0])

    # a dangling index.jsonl link planted in a downloaded folder is never written through (it made
    # a file wherever the folder's author pointed it, session 33)
    (num / "index.jsonl").symlink_to(tmp_path / "planted.txt")
    assert main(["index", str(num), "--prompts", str(prompts)]) == 2
    assert not (tmp_path / "planted.txt").exists() and "is a link" in capsys.readouterr().err
    (num / "index.jsonl").unlink()
    assert main(["index", str(num), "--prompts", str(prompts)]) == 0
    recs = read_index(num)
    assert [(r["file"], r["prompt"], r["sample"]) for r in recs] == [
        ("0001.mp4", world[0]["prompt"], 0), ("0001_1.mp4", world[0]["prompt"], 1),
        ("0002.mp4", world[1]["prompt"], 0), ("0003.mp4", world[2]["prompt"], 0)]
    before = (num / "index.jsonl").read_bytes()
    assert main(["index", str(num), "--prompts", str(prompts)]) == 2  # never overwritten
    assert (num / "index.jsonl").read_bytes() == before
    # folder: hands out a prompt's samples in their numbered order
    got = FolderGenerator(num).generate([world[0]["prompt"]] * 2, [0, 1])
    want = [read_video(num / "0001.mp4").frames, read_video(num / "0001_1.mp4").frames]
    assert all(np.array_equal(g.frames, w) for g, w in zip(got, want))
    assert not np.array_equal(want[0], want[1])
    assert main(["score", str(num), "--metrics", "clip", "--json", str(res), "--no-mlflow"]) == 0
    assert json.loads(res.read_text())["metrics"]["clip_alignment"]["n"] == 4

    # a missing video: 0- and 1-based numbering cannot be told apart, so --start must say
    (num / "index.jsonl").unlink()
    (num / "0002.mp4").unlink()
    capsys.readouterr()
    assert main(["index", str(num), "--prompts", str(prompts)]) == 2
    assert "give --start" in capsys.readouterr().err and not (num / "index.jsonl").exists()
    assert main(["index", str(num), "--prompts", str(prompts), "--start", "2"]) == 2
    assert "0001.mp4: number 1 has no prompt" in capsys.readouterr().err
    assert main(["index", str(num), "--prompts", str(prompts), "--start", "1"]) == 0
    assert [r["prompt"] for r in read_index(num)][-1] == world[2]["prompt"]
    # the same number in two containers: two samples of that prompt, with ids kept apart
    (num / "index.jsonl").unlink()
    shutil.copy(num / "0003.mp4", num / "0003.mkv")
    assert main(["index", str(num), "--prompts", str(prompts), "--start", "1"]) == 0
    threes = [r for r in read_index(num) if r["video_number"] == 3]
    assert sorted(r["id"] for r in threes) == ["0003", "0003.mp4"] and {r["prompt"] for r in threes} == {world[2]["prompt"]}
    (num / "0003.mkv").unlink()
    # a video not named by number is named, and nothing is written
    (num / "index.jsonl").unlink()
    shutil.copy(num / "0003.mp4", num / "extra take.mp4")
    assert main(["index", str(num), "--prompts", str(prompts), "--start", "1"]) == 2
    assert "extra take.mp4: not named by number" in capsys.readouterr().err and not (num / "index.jsonl").exists()


def test_a_bad_file_anywhere_stops_the_run_before_any_scoring(capsys, folders, tmp_path, monkeypatch):
    """Headers are read first: a broken reference file or a one-frame still at the end of the
    candidates is named before the first clip is scored, not after all of them."""
    import shutil

    from evalkit.metrics import score as score_mod

    scored = []
    real_row = score_mod._flicker_row
    monkeypatch.setattr(score_mod, "_flicker_row", lambda frames, row: (scored.append(1), real_row(frames, row)))
    ref = tmp_path / "ref"
    shutil.copytree(folders / "ref", ref)
    (ref / "clips" / "zz-broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypisom" + bytes(300))
    with open(ref / "index.jsonl", "a") as f:  # the last record of the reference
        f.write(json.dumps({"id": "zz-broken", "file": "clips/zz-broken.mp4", "prompt": ""}) + "\n")
    capsys.readouterr()
    assert main(["score", str(folders / "world"), "--reference", str(ref), "--no-mlflow"]) == 2
    assert "zz-broken.mp4" in capsys.readouterr().err and scored == []
    cands = tmp_path / "cands"
    shutil.copytree(folders / "world", cands)
    from evalkit.video import read_video, write_video

    first = sorted((cands / "clips").iterdir())[0]
    write_video(cands / "clips" / "zz-still.mp4", read_video(first).frames[:1], fps=8)
    with open(cands / "index.jsonl", "a") as f:
        f.write(json.dumps({"id": "zz-still", "file": "clips/zz-still.mp4", "prompt": "a still"}) + "\n")
    assert main(["score", str(cands), "--metrics", "flicker", "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert "zz-still.mp4: 1 frame (candidates)" in err and "--skip-unreadable" in err and scored == []


def test_short_clips_same_name_pairs_and_nothing_to_score(folders, tmp_path, capsys):
    """Found with other footage (session 30): 2-frame world clips were said to have "no world
    prompt"; `x.mkv` beside `x.mp4` gave two per-clip rows with one id; a request no metric could
    answer exited 0 with "metrics": {}; the retrieval protocol's `candidates` became a count."""
    from evalkit.clipset import read_index
    from evalkit.errors import EXIT_BAD_INPUT
    from evalkit.video import read_video, write_video

    short, pair = tmp_path / "short", tmp_path / "pair"
    short.mkdir(), pair.mkdir()
    recs = read_index(folders / "world")[:3]
    for i, r in enumerate(recs):
        c = read_video(folders / "world" / r["file"])
        name = f"{r['prompt'].replace(' ', '_')}-{i}"
        write_video(short / f"{name}.mp4", c.frames[:2], fps=c.fps, crf=0)
        write_video(pair / f"{name}.mp4", c.frames, fps=c.fps, crf=0)
        write_video(pair / f"{name}.mkv", c.frames, fps=c.fps, crf=0)
    capsys.readouterr()
    assert main(["score", str(short), "--metrics", "physics", "--no-mlflow"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "shorter than the 3 frames a motion needs" in err and "no world prompt" not in err
    assert err.count("\n") == 1
    out = tmp_path / "s.json"
    assert main(["score", str(short), "--metrics", "physics,flicker", "--json", str(out), "--no-mlflow"]) == 0
    assert any("shorter than the 3 frames" in w for w in json.loads(out.read_text())["warnings"])
    assert main(["score", str(pair), "--metrics", "flicker,clip", "--json", str(out), "--no-mlflow"]) == 0
    res = json.loads(out.read_text())
    ids = [r["id"] for r in res["per_clip"]]
    assert len(ids) == 6 == len(set(ids))
    assert res["metrics"]["clip_retrieval_top1"]["protocol"]["candidates"] == str(pair)
    assert res["metrics"]["clip_retrieval_top1"]["protocol"]["n_prompts"] == len({r["prompt"] for r in recs})


def test_a_reference_longer_than_the_frame_limit_is_read_to_the_backbones_length(folders, tmp_path, monkeypatch):
    """FVD reads a reference clip's first 16 frames; the header check before the run refused a
    reference clip over the frame limit all the same (a 21,120-frame film, session 30)."""
    from evalkit.video import read_video, write_video

    ref = tmp_path / "ref"
    ref.mkdir()
    for i, f in enumerate(sorted((folders / "ref" / "clips").glob("*.mp4"))[:4]):
        c = read_video(f)
        write_video(ref / f"long-{i}.mp4", np.concatenate([c.frames] * 3), fps=c.fps)  # 48 frames
    monkeypatch.setenv("EVALKIT_MAX_FRAMES", "40")
    out = tmp_path / "s.json"
    assert main(["score", str(folders / "world"), "--reference", str(ref), "--metrics", "fvd", "--json", str(out),
                 "--no-mlflow"]) == 0
    assert json.loads(out.read_text())["metrics"]["fvd"]["n"] > 0


def test_design_contract_json_alone_on_stdout_seeds_of_any_type_and_pr_intervals(folders, tmp_path, capsys):
    """Session 31's DESIGN audit: `--json -` (or /dev/stdout) mixed the table into the JSON and
    `-` wrote a file named "-"; a seed written as text in an index was an internal error after
    all the scoring; precision and recall of a few clips read "1 [1, 1]" and were dropped
    without a word under 4 clips."""
    import shutil

    from evalkit.metrics.precision_recall import precision_recall_with_ci

    cand = tmp_path / "cand"
    shutil.copytree(folders / "world", cand)
    lines = (cand / "index.jsonl").read_text().splitlines()
    recs = [json.loads(x) for x in lines]
    recs[0]["seed"] = "1"  # text, as a hand-written index may have it
    (cand / "index.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    capsys.readouterr()
    assert main(["score", str(cand), "--reference", str(folders / "ref"), "--metrics", "fvd,flicker",
                 "--json", "-", "--no-mlflow"]) == 0
    out, err = capsys.readouterr()
    res = json.loads(out)  # nothing but the JSON on stdout
    assert not (tmp_path / "-").exists() and "flicker" in err  # the table went to stderr
    gen = res["metrics"]["flicker"]["protocol"]["generation"]
    assert gen["n_seeds"] == len(gen["seeds"]) and "1" in gen["seeds"]
    assert any("precision and recall from 16 candidate" in w for w in res["warnings"])
    p = res["metrics"]["precision"]
    assert p["protocol"]["ci"].startswith("bootstrap-recentred-2sample+wilson") and "note" in p["protocol"]
    # all six fake clips inside the real manifold: no longer a point
    g = np.random.default_rng(0)
    real = g.normal(size=(40, 4))
    prec, rec = precision_recall_with_ci(real, real[:6] * 0.5, k=3)
    assert prec.value == 1.0 and prec.ci_low < 0.7 and prec.ci_high == 1.0


def test_set_level_intervals_do_not_depend_on_the_order_clips_are_listed(folders, tmp_path):
    """The bootstrap drew clips by list position: reversing index.jsonl moved the FVD interval from
    [327, 946] to [315, 1075] for the same clips (session 33). In content order it cannot."""
    import shutil

    swapped = tmp_path / "reversed"
    shutil.copytree(folders / "world", swapped)
    lines = (swapped / "index.jsonl").read_text().splitlines()
    (swapped / "index.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    got = []
    for name in (folders / "world", swapped):
        out = tmp_path / f"{name.name}.json"
        assert main(["score", str(name), "--reference", str(folders / "ref"), "--metrics", "fvd", "--json",
                     str(out), "--no-mlflow"]) == 0
        got.append({k: (m["value"], m["ci_low"], m["ci_high"], m["n"])
                    for k, m in json.loads(out.read_text())["metrics"].items()})
    assert got[0] == got[1] and {"fvd", "kvd", "precision", "recall"} <= set(got[0])


def test_a_set_of_one_for_fvd_is_refused_before_any_scoring(folders, tmp_path, capsys):
    """"fvd needs at least 2 clips in each set" came after every clip was scored, naming no input
    (session 33)."""
    from evalkit.clipset import read_index

    one = folders / "world" / read_index(folders / "world")[0]["file"]
    assert main(["score", str(one), "--reference", str(folders / "ref"), "--no-mlflow"]) == 2
    err = capsys.readouterr().err
    assert f"{one}: 1 clip (candidates); FVD compares sets of at least 2" in err and "--metrics clip,flicker" in err


def test_folders_of_copies_of_one_clip_get_no_set_level_interval(folders, tmp_path, capsys):
    """Four copies of one clip against four of another read "FVD 1382 [1382, 1382]": every
    resample is the same number, and a zero-width interval claims a certainty four copies cannot
    give (session 34). FVD and KVD now have no interval (null), with the reason and a warning;
    flicker, bounded, gets the worst case its range allows, not a point."""
    import shutil

    from evalkit.clipset import read_index

    for name, src in (("a", "world"), ("b", "ref")):
        first = folders / src / read_index(folders / src)[0]["file"]
        (tmp_path / name).mkdir()
        for i in range(4):
            shutil.copy(first, tmp_path / name / f"copy{i}{first.suffix}")
    out = tmp_path / "copies.json"
    assert main(["score", str(tmp_path / "a"), "--reference", str(tmp_path / "b"), "--metrics", "fvd,flicker",
                 "--json", str(out), "--no-mlflow"]) == 0
    captured = capsys.readouterr()
    m = json.loads(out.read_text())["metrics"]
    for k in ("fvd", "kvd"):
        assert m[k]["value"] > 0 and m[k]["ci_low"] is None and m[k]["ci_high"] is None and m[k]["n"] == 4
        assert m[k]["protocol"]["ci"].startswith("not-estimable(every resample equal")
    assert "fvd, kvd: no confidence interval" in captured.err and "(no CI)" in captured.out
    assert m["flicker"]["ci_low"] < m["flicker"]["value"] - 0.1 and m["flicker"]["protocol"]["ci"] == "wilson-bounded@0.95"
