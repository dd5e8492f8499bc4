"""Prompt files, model specs, the world/control/folder generators and generated folders."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from evalkit.clipset import iter_clips, read_index
from evalkit.errors import BadInputError, MissingResourceError, UnavailableError
from evalkit.video import write_video
from evalkit.world import make_clip
from generators.base import Generator, generate_folder, get_generator, load_prompts
from generators.folder import FolderGenerator

PROMPTS = [make_clip("test", i).prompt for i in range(3)]


def test_load_prompts_from_text_jsonl_and_literal(tmp_path):
    txt = tmp_path / "p.txt"
    txt.write_text(f"# a comment\n{PROMPTS[0]}\n\n  {PROMPTS[1]}  \n")
    assert [p.text for p in load_prompts(str(txt))] == PROMPTS[:2]
    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"prompt": PROMPTS[2], "probe": {"kind": "fall"}, "id": "q7"}) + "\n")
    (p,) = load_prompts(str(jl))
    assert (p.text, p.probe, p.id) == (PROMPTS[2], {"kind": "fall"}, "q7")
    assert load_prompts("a red ball")[0].text == "a red ball"
    assert load_prompts("a cat w/ a hat")[0].text == "a cat w/ a hat"  # a slash among words: a prompt
    # a folder, or one word that reads as a path, is not taken as the prompt "prompts" (it was, exit 0)
    with pytest.raises(BadInputError, match="is a folder"):
        load_prompts(str(tmp_path))
    for missing in ("prompts/list", "./my_prompts", "prompts.yaml", str(tmp_path / "nowhere")):
        with pytest.raises(MissingResourceError, match="no such prompts file"):
            load_prompts(missing)
    # saved by a Windows editor: UTF-8 with a BOM and CRLF lines; the BOM is not part of a prompt
    win = tmp_path / "win.txt"
    win.write_bytes(("\ufeff" + "\r\n".join(PROMPTS) + "\r\n").encode("utf-8"))
    assert [p.text for p in load_prompts(str(win))] == PROMPTS
    win_jl = tmp_path / "win.jsonl"
    win_jl.write_bytes(("\ufeff" + json.dumps({"prompt": PROMPTS[0]}) + "\r\n").encode("utf-8"))
    assert load_prompts(str(win_jl))[0].text == PROMPTS[0]


def test_load_prompts_as_other_benchmarks_list_them(tmp_path):
    """VBench's JSON (a list of objects with prompt_en), plain JSON lists, and CSV/TSV tables
    with a prompt column: each read as its prompts, not line by line as text."""
    vb = tmp_path / "VBench_full_info.json"
    vb.write_text(json.dumps([{"prompt_en": PROMPTS[0], "dimension": ["subject_consistency"]},
                              {"prompt_en": PROMPTS[1], "dimension": ["overall_consistency"]}], indent=4))
    assert [p.text for p in load_prompts(str(vb))] == PROMPTS[:2]
    plain = tmp_path / "list.JSON"
    plain.write_text(json.dumps(PROMPTS))
    assert [p.text for p in load_prompts(str(plain))] == PROMPTS
    csv_file = tmp_path / "prompts.csv"
    csv_file.write_text('id,Prompt,category\n7,"' + PROMPTS[0] + '",physics\n,,\n8,"' + PROMPTS[1] + '",x\n')
    got = load_prompts(str(csv_file))
    assert [(p.text, p.id) for p in got] == [(PROMPTS[0], "7"), (PROMPTS[1], "8")]  # the blank row skipped
    tsv = tmp_path / "prompts.tsv"
    tsv.write_text("caption\n" + "\n".join(PROMPTS) + "\n")
    assert [p.text for p in load_prompts(str(tsv))] == PROMPTS
    jl = tmp_path / "captions.jsonl"
    jl.write_text(json.dumps({"caption": PROMPTS[2]}) + "\n")
    assert load_prompts(str(jl))[0].text == PROMPTS[2]
    with pytest.raises(MissingResourceError):
        load_prompts(str(tmp_path / "missing.json"))


@pytest.mark.parametrize("content,suffix,fragment", [
    ("", ".txt", "no prompts"),
    ("{not json\n", ".jsonl", "not valid JSON"),
    ('{"title": "x"}\n', ".jsonl", "no prompt key"),
    ('{"prompts": ["x"]}', ".json", "must be a list"),
    ('["a red ball", 3]', ".json", "entry 2"),
    ("[not json", ".json", "not valid JSON"),
    ("id,title\n1,a red ball\n", ".csv", "no prompt key"),
    ('{"prompt": "   "}\n', ".jsonl", "empty prompt"),
    ("x" * 1200 + "\n", ".txt", "over the limit"),
])
def test_bad_prompt_files_name_the_line(tmp_path, content, suffix, fragment):
    f = tmp_path / f"bad{suffix}"
    f.write_text(content)
    with pytest.raises(BadInputError, match=fragment) as e:
        load_prompts(str(f))
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_missing_prompt_file_and_empty_literal():
    with pytest.raises(MissingResourceError):
        load_prompts("nowhere/prompts.txt")
    with pytest.raises(BadInputError):
        load_prompts("   ")
    # a literal prompt too long to be a file name (the OS refuses it: ENAMETOOLONG), or one with a
    # NUL byte, is read as a prompt: over the limit is a one-line error, not an internal error
    with pytest.raises(BadInputError, match="over the limit"):
        load_prompts("a red ball falls " * 200)
    assert load_prompts("a red ball " * 30)[0].text == ("a red ball " * 30).strip()  # 330 chars, no spaces cut
    with pytest.raises(BadInputError, match="over the limit"):
        load_prompts("x" * 5000)
    with pytest.raises(BadInputError, match="which is not text"):  # since session 33: a NUL is no prompt text
        load_prompts("a red\x00ball")


def test_specs():
    assert isinstance(get_generator("world"), Generator)
    assert get_generator("control:frozen").spec == "control:frozen"
    with pytest.raises(BadInputError):
        get_generator("control:blurry")
    with pytest.raises(BadInputError):
        get_generator("flow:foo")  # an unknown kind (gan: is a real family now)
    with pytest.raises((MissingResourceError, UnavailableError)):  # not in the HF cache / diffusers not installed
        get_generator("diffusers:some/model")


def test_world_generator_is_deterministic_and_controls_behave():
    world = get_generator("world")
    a, b = world.generate(PROMPTS[:2], [5, 6])
    assert np.array_equal(a.frames, world.generate(PROMPTS[:1], [5])[0].frames)
    assert not np.array_equal(a.frames, b.frames)
    frozen = get_generator("control:frozen").generate(PROMPTS[:1], [5])[0]
    assert np.all(frozen.frames == a.frames[:1]) and frozen.frames.shape == a.frames.shape
    shuffled = get_generator("control:shuffled").generate(PROMPTS[:1], [5])[0]
    assert sorted(map(bytes, shuffled.frames)) == sorted(map(bytes, a.frames))
    noise = get_generator("control:noise").generate(PROMPTS[:1], [5])[0]
    assert noise.frames.shape == a.frames.shape and 100 < noise.frames.mean() < 155
    with pytest.raises(BadInputError):
        world.generate(["a cat on a sofa"], [0])


def test_generate_folder_records_protocol_and_round_trips(tmp_path):
    from generators.base import Prompt

    prompts = [Prompt(PROMPTS[0], {"kind": "x"}, "alpha"), Prompt(PROMPTS[1])]
    recs = generate_folder(get_generator("world"), prompts, tmp_path / "gen", n_per_prompt=2, seed=3,
                           batch_size=3, progress=False)
    index = read_index(tmp_path / "gen")
    assert [r["id"] for r in index] == ["alpha-00", "alpha-01", "p0001-00", "p0001-01"] == [r["id"] for r in recs]
    assert len({r["seed"] for r in index}) == 4
    for r in index:
        assert {"model", "weights_sha256", "sampler", "steps", "guidance", "seed", "scene"} <= set(r)
    assert index[0]["probe"] == {"kind": "x"} and "probe" not in index[2]
    again = generate_folder(get_generator("world"), prompts, tmp_path / "gen2", n_per_prompt=2, seed=3,
                            progress=False)
    for x, y in zip(iter_clips(tmp_path / "gen"), iter_clips(tmp_path / "gen2")):
        assert np.array_equal(x.frames, y.frames)
    assert [r["seed"] for r in again] == [r["seed"] for r in recs]


def test_an_index_saved_with_a_bom_and_crlf_reads(tmp_path):
    from evalkit.clipset import read_index
    from evalkit.world.export import render_folder

    render_folder(tmp_path / "w", split="test", n=2, seed=0, progress=False)
    index = tmp_path / "w" / "index.jsonl"
    before = read_index(tmp_path / "w")
    index.write_bytes(("\ufeff" + index.read_text(encoding="utf-8").replace("\n", "\r\n")).encode("utf-8"))
    assert read_index(tmp_path / "w") == before


def test_folder_generator_reads_videos_over_the_decode_budget_reduced(tmp_path, monkeypatch):
    from evalkit.world import WorldConfig

    (tmp_path / "v").mkdir()
    big = write_video(tmp_path / "v" / "a_red_ball_falls-0.mp4", make_clip("test", 0, 1, WorldConfig(size=128)))
    monkeypatch.setenv("EVALKIT_MAX_DECODED_BYTES", str(16 * 128 * 128))  # a third of the clip decoded
    (clip,) = FolderGenerator(tmp_path / "v").generate(["a red ball falls"], [0])
    assert clip.frames.shape == (16, 64, 64, 3) and clip.meta["read_reduced"] == 2  # before: refused
    assert big.is_file()


def test_folder_generator_by_index_and_by_file_name(tmp_path):
    generate_folder(get_generator("world"), load_prompts(PROMPTS[0]), tmp_path / "made", n_per_prompt=2,
                    progress=False)
    gen = FolderGenerator(tmp_path / "made")
    clips = gen.generate([PROMPTS[0], PROMPTS[0].upper()], [0, 0])
    made = list(iter_clips(tmp_path / "made"))
    assert np.array_equal(clips[0].frames, made[0].frames) and np.array_equal(clips[1].frames, made[1].frames)
    with pytest.raises(BadInputError, match="only 2 videos"):
        gen.generate([PROMPTS[0]], [0])
    loose = tmp_path / "loose"
    loose.mkdir()
    write_video(loose / "a_red_ball_falls-0.mp4", make_clip("test", 0))
    write_video(loose / "a red ball falls-1.mp4", make_clip("test", 1))
    g2 = FolderGenerator(loose)
    assert len(g2.generate(["A red ball falls", "a red ball falls"], [0, 0])) == 2
    with pytest.raises(BadInputError, match="no video for prompt"):
        g2.generate(["a blue cube"], [0])


def test_folder_samples_by_number_prompts_in_any_script_and_clashes(tmp_path):
    """Found with other tools' folders (session 29): "-10" was sample 2 (name order), a prompt in
    Chinese matched a clip of another Chinese prompt (both normalised to ""), and "x-0.mp4" beside
    "x-0.webm" were samples 0 and 1."""
    from generators.folder import normalise

    loose = tmp_path / "loose"
    loose.mkdir()
    for k, i in ((0, 0), (1, 1), (2, 2), (10, 3)):
        write_video(loose / f"a_red_ball_falls-{k}.mp4", make_clip("test", i))
    gen = FolderGenerator(loose)
    got = gen.generate(["a red ball falls"] * 4, [0] * 4)
    want = [iter_one(loose / f"a_red_ball_falls-{k}.mp4") for k in (0, 1, 2, 10)]
    assert all(np.array_equal(a.frames, b) for a, b in zip(got, want))
    assert normalise("一只蓝色方块") == "一只蓝色方块" and normalise("A Red-Ball, falls!") == "a red ball falls"
    assert normalise("Ｒｅｄ　ＢＡＬＬ") == "red ball" and normalise("Straße") == normalise("STRASSE")
    zh = tmp_path / "zh"
    zh.mkdir()
    write_video(zh / "一只红球落下.mp4", make_clip("test", 0))
    with pytest.raises(BadInputError, match="no video for prompt '一只蓝色方块'"):
        FolderGenerator(zh).generate(["一只蓝色方块"], [0])
    assert len(FolderGenerator(zh).generate(["一只红球落下"], [0])) == 1
    clash = tmp_path / "clash"
    clash.mkdir()
    write_video(clash / "x-0.mp4", make_clip("test", 0))
    write_video(clash / "x-0.mkv", make_clip("test", 1))
    with pytest.raises(BadInputError, match="are both sample 0 of 'x'"):
        FolderGenerator(clash)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(BadInputError, match="is a file"):
        FolderGenerator(tmp_path / "afile")


def test_folder_records_name_their_video_and_no_seed(tmp_path):
    """A folder: model's index recorded a seed that chose nothing and not which video answered."""
    (tmp_path / "v").mkdir()
    write_video(tmp_path / "v" / "a_red_ball_falls-0.mp4", make_clip("test", 0))
    (rec,) = generate_folder(FolderGenerator(tmp_path / "v"), load_prompts("a red ball falls"), tmp_path / "o",
                             progress=False)
    assert rec["seed"] is None and rec["source_file"].endswith("a_red_ball_falls-0.mp4")
    (world,) = generate_folder(get_generator("world"), load_prompts(PROMPTS[0]), tmp_path / "w", progress=False)
    assert isinstance(world["seed"], int) and "source_file" not in world


def test_a_prompt_ending_in_a_number_finds_its_video(tmp_path):
    """"a_clock_showing_12.mp4" read as sample 12 of "a clock showing", and the prompt "a clock
    showing 12" found no video (session 29's known limit); both readings now find it, and a video
    named after the prompt outright still comes first."""
    d = tmp_path / "d"
    d.mkdir()
    write_video(d / "a_clock_showing_12.mp4", make_clip("test", 0))
    write_video(d / "3 red balls_2.mp4", make_clip("test", 1))
    gen = FolderGenerator(d)
    (a,) = gen.generate(["a clock showing 12"], [0])
    assert np.array_equal(a.frames, iter_one(d / "a_clock_showing_12.mp4"))
    assert len(gen.generate(["a clock showing"], [0])) == 1  # the other reading stands
    assert len(FolderGenerator(d).generate(["3 red balls 2"], [0])) == 1
    write_video(d / "a clock showing 12-0.mp4", make_clip("test", 2))
    (b,) = FolderGenerator(d).generate(["a clock showing 12"], [0])
    assert np.array_equal(b.frames, iter_one(d / "a clock showing 12-0.mp4"))
    numbered = tmp_path / "n"
    numbered.mkdir()
    write_video(numbered / "0007_2.mp4", make_clip("test", 0))
    with pytest.raises(BadInputError, match="named by number"):
        FolderGenerator(numbered).generate(["0007 2"], [0])


def test_prompts_that_differ_only_in_symbols_keep_their_own_videos(tmp_path):
    """Session 32: "a C++ programmer" and "a C# programmer" (or two emoji) folded to one pool, and
    each prompt got the other's clip; a fold that names two prompts is now refused."""
    d = tmp_path / "sym"
    d.mkdir()
    names = ["a C# programmer at work", "a C++ programmer at work", "🐱 plays the piano", "🐶 plays the piano"]
    for i, name in enumerate(names):
        write_video(d / f"{name}-0.mp4", make_clip("test", i))
    for i, name in enumerate(names):
        (clip,) = FolderGenerator(d).generate([name], [0])
        assert np.array_equal(clip.frames, iter_one(d / f"{name}-0.mp4")), name
    with pytest.raises(BadInputError, match="matches the videos of .* once symbols are ignored"):
        FolderGenerator(d).generate(["a C programmer at work"], [0])
    (loose,) = FolderGenerator(d).generate(["A C++ Programmer at  work"], [0])  # case and spaces still fold
    assert np.array_equal(loose.frames, iter_one(d / "a C++ programmer at work-0.mp4"))


def test_tools_numbered_outputs_are_not_prompts(tmp_path, capsys):
    """Open-Sora and Latte write sample_0000.mp4 with a prompts.txt: every clip was scored against
    the prompt "sample", and `evalkit index` refused the names."""
    from evalkit.cli import main
    from evalkit.clipset import prompt_from_name

    assert prompt_from_name("sample_0000") == "" and prompt_from_name("video_3") == ""
    assert prompt_from_name("Output-12_1") == "" and prompt_from_name("red ball_2") == "red ball"
    d = tmp_path / "opensora"
    d.mkdir()
    for i in range(3):
        write_video(d / f"sample_{i:04d}.mp4", make_clip("test", i))
    with pytest.raises(BadInputError, match="named by number"):
        FolderGenerator(d).generate(["sample"], [0])
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    assert main(["index", str(d), "--prompts", str(tmp_path / "prompts.txt")]) == 0, capsys.readouterr().err
    assert [r["prompt"] for r in read_index(d)] == PROMPTS
    (clip,) = FolderGenerator(d).generate([PROMPTS[1]], [0])
    assert np.array_equal(clip.frames, iter_one(d / "sample_0001.mp4"))
    # in a folder named by prompt, a generic word and a number is a prompt like any other
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    write_video(mixed / "Clip 3.mp4", make_clip("test", 0))
    write_video(mixed / "a red ball.mp4", make_clip("test", 1))
    (c3,) = FolderGenerator(mixed).generate(["Clip 3"], [0])
    assert np.array_equal(c3.frames, iter_one(mixed / "Clip 3.mp4"))
    # two tools' numbered outputs in one folder: whose video 0 is it? refused, naming both
    two = tmp_path / "two"
    two.mkdir()
    for stem in ("sample_0000", "sample_0001", "video_0000", "video_0001"):
        write_video(two / f"{stem}.mp4", make_clip("test", 0))
    (tmp_path / "p2.txt").write_text("\n".join(PROMPTS[:2]) + "\n")
    assert main(["index", str(two), "--prompts", str(tmp_path / "p2.txt")]) == 2
    err = capsys.readouterr().err
    assert "sample_0000.mp4 and video_0000.mp4 are both video 0, sample 0" in err and err.count("\n") == 1


def iter_one(path):
    from evalkit.video import read_video

    return read_video(path).frames


def test_hand_written_indexes_are_checked_line_by_line(tmp_path):
    """Values of the wrong type were internal errors; a video listed twice counted twice (N too
    large); a Latin-1 index a decoding error; videos in per-prompt subfolders 'no videos'."""
    from evalkit.clipset import read_index

    d = tmp_path / "d"
    d.mkdir()
    write_video(d / "a.mp4", make_clip("test", 0))
    ok = {"id": "a", "file": "a.mp4", "prompt": "a red ball"}
    for bad, says in (({**ok, "file": None}, "file must be"), ({**ok, "file": 3}, "file must be"),
                      ({**ok, "id": [1]}, "id must be"), ({**ok, "prompt": 7}, "prompt must be text"),
                      ({**ok, "file": "sub\\a.mp4"}, "write paths with /"),
                      # another tool's keys: which one is missing and what the record has
                      ({"video": "a.mp4", "caption": "a red ball", "id": "a"},
                       r"no 'file' or 'prompt' key \(the record has: caption, id, video\)"),
                      ([1, 2], "not an index record")):
        (d / "index.jsonl").write_text(json.dumps(bad) + "\n")
        with pytest.raises(BadInputError, match=says):
            read_index(d)
    (d / "index.jsonl").write_text(json.dumps(ok) + "\n" + json.dumps({**ok, "id": "b"}) + "\n")
    with pytest.raises(BadInputError, match=r"index.jsonl:2: file 'a.mp4' is listed already \(line 1\)"):
        read_index(d)
    (d / "index.jsonl").write_text(json.dumps({**ok, "id": 1}) + "\n" + json.dumps({**ok, "id": "1", "file": "b.mp4"}))
    with pytest.raises(BadInputError, match="duplicate id"):
        read_index(d)
    (d / "index.jsonl").write_text(json.dumps({**ok, "prompt": None}) + "\n")
    assert read_index(d)[0]["prompt"] == ""  # null: no prompt, as an empty one
    (d / "index.jsonl").write_bytes(json.dumps({**ok, "prompt": "café"}, ensure_ascii=False).encode("latin-1"))
    with pytest.raises(BadInputError, match="not UTF-8 text"):
        read_index(d)
    nested = tmp_path / "nested"
    (nested / "a red ball falls").mkdir(parents=True)
    write_video(nested / "a red ball falls" / "0.mp4", make_clip("test", 0))
    with pytest.raises(BadInputError, match="its videos are in subfolders"):
        read_index(nested)


def test_exported_weights_have_one_byte_layout_whatever_the_metadata_order(tmp_path):
    """safetensors writes its metadata map in hash order (it differs between processes); the
    exports rewrite the header sorted, so the same weights and metadata give the same SHA-256."""
    from safetensors.torch import load_file, save_file

    from evalkit.hashing import sha256_file
    from generators.checkpoints import canonical_header

    tensors = {"b": torch.arange(6.0).view(2, 3), "a": torch.ones(4, dtype=torch.float16)}
    meta = {"format": "x", "model_config": "{}", "train_config": "{}", "step": "3"}
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    save_file(tensors, str(a), metadata=meta)
    save_file(tensors, str(b), metadata=dict(reversed(list(meta.items()))))
    for p in (a, b):
        canonical_header(p)
    assert sha256_file(a) == sha256_file(b)
    back = load_file(str(a))
    assert torch.equal(back["b"], tensors["b"]) and torch.equal(back["a"], tensors["a"])


def test_prompt_ids_name_files_inside_out_only_and_once(tmp_path, capsys):
    """Found in session 30: an id "../../victim" wrote (and overwrote) victim-00.mp4 outside --out;
    two prompts of one id lost a clip and wrote an index no command could read; a killed run's
    staging folder stayed; a symlinked --out failed after all the work."""
    from evalkit.cli import main
    from evalkit.errors import EXIT_BAD_INPUT

    prompt = PROMPTS[0]
    victim = tmp_path / "victim-00.mp4"
    victim.write_text("precious")
    bad = tmp_path / "bad.jsonl"
    for ids in (["../../victim"], ["sub/x"], ["a\u0000b"], [{"k": 1}], ["a", "a"], ["p0001", None]):
        bad.write_text("".join(json.dumps({"prompt": prompt, **({"id": i} if i is not None else {})}) + "\n"
                               for i in ids))
        assert main(["generate", "--model", "world", "--prompts", str(bad), "--out", str(tmp_path / "o" / "d")]) \
            == EXIT_BAD_INPUT, ids
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and ("id" in err), err
    assert victim.read_text() == "precious" and not (tmp_path / "o").exists()
    ok = tmp_path / "ok.jsonl"
    ok.write_text(json.dumps({"prompt": prompt, "id": 7}) + "\n" + json.dumps({"prompt": prompt}) + "\n")
    stale = tmp_path / ".made.partial-999999999"  # a killed run's staging folder (no such process)
    (stale / "clips").mkdir(parents=True)
    assert main(["generate", "--model", "world", "--prompts", str(ok), "--out", str(tmp_path / "made")]) == 0
    assert sorted(p.name for p in (tmp_path / "made" / "clips").iterdir()) == ["7-00.mp4", "p0001-00.mp4"]
    assert not stale.exists()
    (tmp_path / "empty").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "empty")
    assert main(["generate", "--model", "world", "--prompts", prompt, "--out", str(tmp_path / "link")]) \
        == EXIT_BAD_INPUT
    assert "symbolic link" in capsys.readouterr().err
    assert not [p for p in tmp_path.iterdir() if ".partial-" in p.name]


class _Own:
    """A user's own generator (the Generator protocol), with knobs for what goes wrong."""

    spec = "own:tiny"

    def __init__(self, proto=None, short_by=0, frames=None):
        self.proto = {"model": "own:tiny", "weights_sha256": None} if proto is None else proto
        self.short_by, self.frames = short_by, frames

    def protocol(self):
        return self.proto

    def generate(self, prompts, seeds):
        from evalkit.clip import Clip

        made = [Clip(frames=world(0), fps=8.0, prompt=p) for p in prompts]
        return made[:len(made) - self.short_by] if self.short_by else made


def world(i):
    return make_clip("test", i).frames


def test_a_python_generator_is_checked_before_and_while_it_makes_clips(tmp_path):
    """Session 32's red team, integrating its own model: a generator returning fewer clips lost
    prompts without a word; a protocol "seed" or "prompt" replaced every clip's; an id
    "../../x" wrote outside the folder; a numpy value failed the index after every clip."""
    prompts = load_prompts(PROMPTS[0]) * 1 + [load_prompts(PROMPTS[1])[0]]
    with pytest.raises(BadInputError, match=r"own:tiny: generate\(\) returned 1 clips for 2 prompts"):
        generate_folder(_Own(short_by=1), prompts, tmp_path / "a", progress=False)
    for proto, says in (({"model": "m", "seed": 3}, "has the key 'seed'"), ({"model": np.float32(1)}, "not plain JSON"),
                        ({"weights": None}, "does not name the model"), ([("model", "m")], "returned list")):
        with pytest.raises(BadInputError, match=says):
            generate_folder(_Own(proto=proto), prompts, tmp_path / "b", progress=False)
    from generators.base import Prompt

    for bad in ("../../escaped", "x\ny", 7.5):
        with pytest.raises(BadInputError):
            generate_folder(_Own(), [Prompt(PROMPTS[0], id=bad)], tmp_path / "c", progress=False)
    with pytest.raises(BadInputError, match="expected a generators.base.Prompt"):
        generate_folder(_Own(), [PROMPTS[0]], tmp_path / "d", progress=False)
    for kw in ({"batch_size": 0}, {"seed": -5}, {"n_per_prompt": 0}):
        with pytest.raises(BadInputError):
            generate_folder(_Own(), prompts, tmp_path / "e", progress=False, **kw)
    assert not any(tmp_path.iterdir())  # nothing made, nothing half-made
    recs = generate_folder(_Own(), prompts, tmp_path / "ok", progress=False)
    assert [r["prompt"] for r in recs] == [p.text for p in prompts] and recs[0]["model"] == "own:tiny"


def test_clip_from_tensor_refuses_other_conventions():
    from evalkit.clip import Clip

    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert Clip.from_tensor(x * 1.05 - 0.02).frames.dtype == np.uint8  # a sampler's ringing: clipped
    noisy = (x + 0.08 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-0.45, 1.45)
    assert Clip.from_tensor(noisy).frames.dtype == np.uint8  # added noise past the range: clipped
    for bad in (x * 2 - 1, x * 255, torch.full_like(x, float("nan"))):
        with pytest.raises(ValueError):
            Clip.from_tensor(bad)
    u8 = (x * 255).round().to(torch.uint8)
    assert np.array_equal(Clip.from_tensor(u8).frames, u8.permute(0, 2, 3, 1).numpy())  # 0-255 as it is
    assert Clip.from_tensor(x.numpy()).num_frames == 4
    with pytest.raises(ValueError, match="finite"):
        Clip(frames=world(0), fps=float("inf"))


def test_write_video_refuses_rates_its_encoder_cannot_keep(tmp_path):
    from evalkit.errors import EvalkitError

    for fps in (5000.0, 1e-6):
        with pytest.raises(EvalkitError, match="frames a second"):
            write_video(tmp_path / "x.mp4", world(0), fps=fps)
    assert not (tmp_path / "x.mp4").exists()


def test_a_folder_of_a_users_generated_clips_keeps_their_protocol(tmp_path):
    """The way to bench one's own Python generator: generate_folder, then folder:. The bench then
    recorded sampler, steps and weights as None although the index held them."""
    gen = _Own(proto={"model": "own:tiny", "weights_sha256": "ab" * 32, "sampler": "euler", "steps": 30,
                      "guidance": 4.0})
    generate_folder(gen, load_prompts(PROMPTS[0]), tmp_path / "mine", progress=False)
    proto = FolderGenerator(tmp_path / "mine").protocol()
    assert proto["model"] == f"folder:{tmp_path / 'mine'}" and proto["source_model"] == "own:tiny"
    assert (proto["weights_sha256"], proto["sampler"], proto["steps"], proto["guidance"]) == ("ab" * 32, "euler", 30, 4.0)
    (tmp_path / "plain").mkdir()  # videos without an index: nothing known
    write_video(tmp_path / "plain" / "a.mp4", world(0), fps=8)
    assert FolderGenerator(tmp_path / "plain").protocol()["sampler"] is None


def test_options_a_model_cannot_use_are_refused_not_ignored(tmp_path):
    from generators.uvit.generate import UViTGenerator

    (tmp_path / "v").mkdir()
    with pytest.raises(BadInputError, match="takes no sampling options \\(guidance, steps\\)"):
        get_generator(f"folder:{tmp_path / 'v'}", steps=50, guidance=7.5)
    for bad in (0, "ten", 2.5):
        with pytest.raises(BadInputError, match="--steps"):
            UViTGenerator("small-gpu", steps=bad)


def test_numpy_numbers_and_tuples_read_as_the_index_holds_them(tmp_path):
    gen = _Own(proto={"model": "own:tiny", "size": (32, 32), "fps": 8})
    (rec,) = generate_folder(gen, load_prompts(PROMPTS[0]), tmp_path / "o", seed=np.int64(3),
                             batch_size=np.int32(2), progress=False)
    assert "size_requested" not in rec and "fps_requested" not in rec  # asked as made: nothing said
    gen = _Own(proto={"model": "own:tiny", "fps": 24})
    (rec,) = generate_folder(gen, load_prompts(PROMPTS[0]), tmp_path / "p", progress=False)
    assert rec["fps"] == 8.0 and rec["fps_requested"] == 24  # asked otherwise: said


def test_a_uvit_clip_does_not_depend_on_what_it_was_batched_with():
    """In a batch of 8 a clip came out 1 level off the same prompt and seed alone (the kernels chosen
    follow the batch's size; H.264 then spread it over 32,000 pixels), so a clip changed with the
    number of prompts in the same `generate` call (session 33). On the CPU each is sampled alone."""
    gen = get_generator("uvit:small-gpu", steps=3)
    p = "a red ball falls and bounces on the floor, on a dark background"
    others = ["a blue cube slides to the left, on a light background"] * 7
    alone = gen.generate([p], [5])[0].frames
    batched = gen.generate([*others[:4], p, *others[4:]], [*range(10, 14), 5, *range(14, 17)])[4].frames
    assert gen.batch_size >= 8 and np.array_equal(alone, batched)


def test_a_suite_yaml_is_read_as_its_prompts_and_a_plain_yaml_is_refused(tmp_path):
    """A suite YAML was read a line a prompt: 139 "prompts" such as "name: world-v1" (session 34)."""
    from benchmarks.suite import SUITES_DIR, load_suite

    suite = load_suite("world-v1")
    got = load_prompts(str(SUITES_DIR / "world-v1.yaml"))
    assert [(p.text, p.id, p.probe) for p in got] == [(q.text, q.id, q.probe) for q in suite.prompts]
    plain = tmp_path / "prompts.yaml"
    plain.write_text(f"- {PROMPTS[0]}\n- {PROMPTS[1]}\n")
    with pytest.raises(BadInputError, match=r"must be a mapping, got list; a \.yaml prompts file is read as a "
                                            r"benchmark suite .*give a text, \.jsonl, \.json or \.csv file$"):
        load_prompts(str(plain))


def test_generate_folder_takes_a_suites_prompts_with_the_suites_seeds(tmp_path):
    from benchmarks.suite import load_suite
    from generators.base import sample_seed

    suite = load_suite("world-v1")
    chosen = suite.select(2)  # one id and one ood prompt: places 0 and 20 in the suite
    records = generate_folder(get_generator("world"), chosen, tmp_path / "out", n_per_prompt=2, seed=suite.seed,
                              progress=False)
    assert [(r["id"], r["seed"], r["probe"]) for r in records] == [
        (f"{p.id}-{k:02d}", sample_seed(suite.seed, p.index, k), p.probe) for p in chosen for k in range(2)]
    assert chosen[1].index > 1  # the seeds are the suite's, not the list's
