"""`generator recipe`: a lineage of stages runs in order from one command, each stage warm-started
from the one before it, skipped once finished and resumed exactly when interrupted."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from safetensors import safe_open

from evalkit.cli import main
from evalkit.errors import BadInputError
from generators.uvit.generate import lineage
from generators.uvit.recipes import RECIPES, Recipe, Stage, run_recipe
from generators.uvit.train import TrainConfig, lr_at, train


def train_config(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["train_config"])


def weights(path) -> dict:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def params(state) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in state.net.parameters()])


def test_stop_step_ends_training_part_way_down_the_schedule(tmp_path):
    tc = TrainConfig(preset="tiny", batch_size=4, max_steps=8, warmup_steps=2, stop_step=4,
                     sample_every_steps=10**9, checkpoint_every_minutes=10**6)
    state = train(tc, tmp_path / "a.pt", progress=False, log_mlflow=False)
    assert state.step == 4 and state.clips_seen == 16
    # its last steps took the 8-step schedule's learning rate, not a 4-step one's
    assert lr_at(tc, 3) > lr_at(replace(tc, max_steps=4), 3)
    short = train(replace(tc, max_steps=4, stop_step=None), tmp_path / "s.pt", progress=False, log_mlflow=False)
    assert short.step == 4 and not torch.equal(params(short), params(state))
    # resuming with a later stop continues the same run: equal to training straight to it
    again = train(replace(tc, stop_step=6), tmp_path / "a.pt", progress=False, log_mlflow=False)
    straight = train(replace(tc, stop_step=6), tmp_path / "b.pt", progress=False, log_mlflow=False)
    assert again.step == straight.step == 6 and torch.equal(params(again), params(straight))


def test_recipe_chains_stages_skips_finished_ones_and_resumes_an_interrupted_one(tmp_path, mlflow_store):
    out = tmp_path / "run"
    first = run_recipe("tiny", out, until="a", progress=False, echo=lambda *_: None)
    assert list(first["stages"]) == ["text", "a"] and first["final"] == "01-a.safetensors"
    assert not (out / "02-b.safetensors").exists()
    a_cfg = train_config(out / "01-a.safetensors")
    assert a_cfg["stop_step"] == 3 and a_cfg["max_steps"] == 8 and a_cfg["init_from"] is None
    a_bytes = (out / "01-a.safetensors").read_bytes()

    # stage b interrupted after one of its two steps: the recipe resumes it from its checkpoint
    stage_b = RECIPES["tiny"].stages[2]
    train(TrainConfig(**{**stage_b.train, "max_steps": 2}, stop_step=1, init_from=str(out / "01-a.safetensors"),
                      text_init=str(out / "00-text.safetensors")), out / "02-b.pt", progress=False,
          log_mlflow=False)
    lines = []
    done = run_recipe("tiny", out, progress=False, echo=lines.append)
    assert lines == ["recipe tiny: stage 3/3 b (2 steps)"]  # text and a were not run again
    assert (out / "01-a.safetensors").read_bytes() == a_bytes
    b_cfg = train_config(out / "02-b.safetensors")
    assert b_cfg["init_from"] == str((out / "01-a.safetensors").resolve())
    assert b_cfg["text_init"] == str((out / "00-text.safetensors").resolve()) and b_cfg["freeze_text"]
    assert done["stages"]["b"]["steps"] == 2 and done["final"] == "02-b.safetensors"
    # a finished stage's file changed since: not reported done ("3 stages done; weights" garbage)
    good = (out / "02-b.safetensors").read_bytes()
    (out / "02-b.safetensors").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match="stage b's weights changed since it was trained"):
        run_recipe("tiny", out, progress=False, echo=lambda *_: None)
    (out / "02-b.safetensors").write_bytes(good)

    # the same recipe run straight through in another folder gives the same weights (the files'
    # metadata differ: paths and minutes)
    run_recipe("tiny", tmp_path / "other", progress=False, echo=lambda *_: None)
    mine, theirs = weights(out / "02-b.safetensors"), weights(tmp_path / "other" / "02-b.safetensors")
    assert mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k]) for k in mine)
    hist = lineage(out / "02-b.safetensors")
    assert hist["complete"] and hist["steps"] == 3 + 2
    assert [s["file"] for s in hist["stages"]] == ["01-a.safetensors", "00-text.safetensors", "02-b.safetensors"]
    # every stage was an MLflow run
    from mlflow.tracking import MlflowClient

    runs = MlflowClient(mlflow_store).search_runs(
        [e.experiment_id for e in MlflowClient(mlflow_store).search_experiments()])
    assert len(runs) >= 3


def test_recipe_refuses_a_folder_of_another_recipe_or_definition(tmp_path, monkeypatch):
    out = tmp_path / "run"
    run_recipe("tiny", out, until="text", progress=False, log_mlflow=False, echo=lambda *_: None)
    changed = Recipe("tiny", "", (Stage("text", text={"preset": "tiny", "steps": 5, "batch_size": 8, "seed": 0}),))
    monkeypatch.setitem(RECIPES, "tiny", changed)
    with pytest.raises(BadInputError, match="another definition"):
        run_recipe("tiny", out, progress=False, log_mlflow=False)
    monkeypatch.setitem(RECIPES, "other", changed)
    with pytest.raises(BadInputError, match="holds a run of recipe 'tiny'"):
        run_recipe("other", out, progress=False, log_mlflow=False)
    (out / "recipe.json").write_text("{not json")
    with pytest.raises(BadInputError, match="not a recipe record"):
        run_recipe("tiny", out, progress=False, log_mlflow=False)
    # a folder of someone else's files: refused, nothing written into it (session 29's known limit)
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("x")
    with pytest.raises(BadInputError, match="holds other files and no recipe.json"):
        run_recipe("tiny", mine, progress=False, log_mlflow=False)
    assert [p.name for p in mine.iterdir()] == ["chapter1.tex"]


def test_recipe_cli_lists_recipes_and_rejects_bad_input(tmp_path, capsys):
    assert main(["generator", "recipe"]) == 0
    listing = capsys.readouterr().out
    assert "small-gpu:" in listing and "run-d" in listing and "25,748 denoiser steps" in listing
    assert main(["generator", "recipe", "nope", "--out-dir", str(tmp_path / "x")]) == 2
    assert main(["generator", "recipe", "tiny"]) == 2
    assert main(["generator", "recipe", "tiny", "--out-dir", str(tmp_path / "y"), "--until", "zz"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nope'" in err and "--out-dir" in err and "no such stage" in err
    assert not (tmp_path / "x").exists()


def test_small_gpu_recipe_matches_the_recorded_lineage():
    """The recipe is the record: its stage step counts are the README's and the shipped export's."""
    r = RECIPES["small-gpu"]
    steps = {s.name: s.steps for s in r.stages}
    assert steps == {"text": 1500, "stage1": 2281, "stage2": 450, "run-a": 2395, "run-b": 6152, "run-c": 7590,
                     "run-d": 445, "gpu-1": 3835, "gpu-2": 2600}
    # every training stage's settings make a valid config, and the last one is the shipped model's
    configs = [TrainConfig(**s.train, stop_step=s.stop_step).model_config() for s in r.stages if s.text is None]
    with safe_open("generators/uvit/weights/small-gpu.safetensors", "pt") as f:
        shipped = json.loads(f.metadata()["model_config"])
    assert configs[-1].to_dict() == shipped
    last = train_config("generators/uvit/weights/small-gpu.safetensors")
    spec = r.stages[-1].train
    for k in ("batch_size", "lr", "warmup_steps", "max_steps", "seed", "freeze_text", "min_snr_gamma", "overrides"):
        assert last[k] == spec.get(k, TrainConfig.__dataclass_fields__[k].default), k


def test_lineage_never_takes_a_file_for_its_own_warm_start():
    """The shipped small-gpu was warm-started from a file of the same name (in another folder):
    that name must not resolve to the shipped file itself, which would count its steps twice."""
    hist = lineage("generators/uvit/weights/small-gpu.safetensors")
    assert [s["file"] for s in hist["stages"]] == ["small-gpu.safetensors"]
    assert hist["steps"] == 2600 and not hist["complete"]


def test_smoke_run_cuts_every_stage_and_keeps_its_own_folder(tmp_path):
    """--smoke runs each stage for two steps at its real settings (a check before a lent GPU's
    minutes are spent), and its folder can never be taken for, or continued as, a full run's."""
    from generators.uvit.recipes import SMOKE_STEPS, smoke_version

    cut = smoke_version(RECIPES["small-gpu"])
    assert [s.steps for s in cut.stages] == [SMOKE_STEPS] * len(cut.stages)
    assert [s.train.get("max_steps") for s in cut.stages] == [s.train.get("max_steps") for s in RECIPES["small-gpu"].stages]
    out = tmp_path / "smoke"
    record = run_recipe("tiny", out, smoke=True, progress=False, log_mlflow=False, metrics_jsonl=True,
                        echo=lambda *_: None)
    assert record["smoke"] is True and record["final"] == "02-b.safetensors"
    # stage a's real schedule stops at step 3, b's runs 2 steps: both cut to the smoke length
    assert [v["steps"] for v in record["stages"].values()] == [2, 2, 2]
    assert train_config(out / "01-a.safetensors")["max_steps"] == 8  # the stage's own schedule, cut short
    with pytest.raises(BadInputError, match="smoke run"):
        run_recipe("tiny", out, progress=False, log_mlflow=False)
    full = tmp_path / "full"
    run_recipe("tiny", full, until="text", progress=False, log_mlflow=False, echo=lambda *_: None)
    with pytest.raises(BadInputError, match="full run"):
        run_recipe("tiny", full, smoke=True, progress=False, log_mlflow=False)


def test_small_recipe_is_valid_and_reads_its_pretrained_text():
    """The planned uvit:small recipe (one GPU call, from scratch): every stage makes a valid config,
    the denoiser starts from the frozen pre-trained text encoder, and its totals are what its
    description promises."""
    r = RECIPES["small"]
    text, denoiser = r.stages
    assert text.text is not None and text.text["preset"] == "small"
    assert denoiser.use_text and denoiser.train["freeze_text"]
    cfg = TrainConfig(**denoiser.train).model_config()
    assert cfg.name == "small" and cfg.mix_ffn and cfg.head_channels == 16 and cfg.snr_shift == 4.0
    assert r.totals()["denoiser_clips"] == 384_000 and "6,000" in r.description


@pytest.mark.slow
@pytest.mark.parametrize("name", ["small", "small-gpu"])
def test_real_recipes_run_end_to_end_as_smoke_runs(tmp_path, name):
    """Every stage of the real recipes runs here, two steps each (a few minutes on a CPU)."""
    record = run_recipe(name, tmp_path / name, smoke=True, progress=False, log_mlflow=False, echo=lambda *_: None)
    assert len(record["stages"]) == len(RECIPES[name].stages) and record["final"]


def test_recipe_writes_each_stage_metrics_for_a_machine_without_mlflow(tmp_path, monkeypatch):
    one = Recipe("one", "", (Stage("a", {"preset": "tiny", "batch_size": 2, "max_steps": 25, "warmup_steps": 2,
                                         "log_every_steps": 25, "sample_every_steps": 10**9}),))
    monkeypatch.setitem(RECIPES, "one", one)
    run_recipe("one", tmp_path, progress=False, log_mlflow=False, metrics_jsonl=True, echo=lambda *_: None)
    rows = [json.loads(line) for line in (tmp_path / "00-a.metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [25] and rows[0]["loss"] > 0
